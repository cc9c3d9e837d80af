"""The command line (issue 5, items 1 and 5): ``init`` round-trips, clear errors with exit
status 2 and no traceback, and the same commands under ``flask webpush``."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sample_site import create_app
from webpush_kit.cli import flask_group, main, register_commands
from webpush_kit.export import settings_file
from webpush_kit.flask import WebPushKit
from webpush_kit.settings import Settings, iter_options, toml_key

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = Path(sys.executable).with_name("webpush-kit")


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


# --- init ------------------------------------------------------------------------------


def test_init_round_trips_to_the_defaults(tmp_path: Path) -> None:
    out = tmp_path / "webpush.toml"
    code, output = invoke("init", "--out", str(out))
    assert code == 0 and "wrote" in output
    assert Settings.from_toml(out) == Settings()


def test_init_lists_every_option_with_its_doc_by_section(tmp_path: Path) -> None:
    out = tmp_path / "webpush.toml"
    invoke("init", "--out", str(out))
    text = out.read_text()
    sections = tomllib.loads(text)
    for f in iter_options():
        section = f.metadata["section"]
        assert f"[{section}]" in text
        assert f"# {toml_key(f)} = " in text, f.name  # commented out: it is the default
        assert f.metadata["doc"].split()[0] in text
        assert sections[section] == {}  # every value is a comment


def test_init_of_non_default_settings_uncomments_only_those() -> None:
    settings = WebPushKit.settings(create_app())
    text = settings_file(settings).decode()
    data = tomllib.loads(text)
    assert data["moengage"] == {"app_id": "XXXXXXXXXXX", "debug": True}
    assert data["manifest"]["gcm_sender_id"] == "540868316921"
    assert Settings.from_toml_data(data) == settings


def test_init_never_writes_secrets(tmp_path: Path) -> None:
    settings = Settings(database_url="postgresql://shop:s3cret@db/shop")
    text = settings_file(settings).decode()
    assert "s3cret" not in text and "keep secrets out of files" in text


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "webpush.toml"
    out.write_text("# mine\n")
    code, output = invoke("init", "--out", str(out))
    assert code == 1 and "--force" in output and out.read_text() == "# mine\n"
    code, _ = invoke("init", "--out", str(out), "--force")
    assert code == 0 and Settings.from_toml(out) == Settings()
    assert (tmp_path / "webpush.toml.bak").read_text() == "# mine\n"


def test_init_to_stdout() -> None:
    code, output = invoke("init", "--out", "-")
    assert code == 0 and tomllib.loads(output) is not None
    assert output.encode() == settings_file(command="webpush-kit init")


# --- bad settings: exit status 2, one clear line, no traceback ------------------------

BAD_CONFIGS = {
    "not-toml": ("[moengage\napp_id = 1\n", "not valid TOML"),
    "unknown-key": ('[moengage]\ndata_centre = "dc_2"\n', "did you mean [moengage] data_center"),
    "bad-value": ('[moengage]\ndata_center = "eu"\n', "dc_<n>"),
    "bad-type": ("[manifest]\nicons = 3\n", "[manifest] icons"),
    "not-a-section": ('app_id = "x"\n', "sections such as [moengage]"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
@pytest.mark.parametrize("command", ["export", "doctor"])
def test_bad_config_is_a_clear_error_with_exit_status_2(
    case: str, command: str, tmp_path: Path
) -> None:
    text, expected = BAD_CONFIGS[case]
    config = tmp_path / "webpush.toml"
    config.write_text(text)
    args = ["export", "--config", str(config), "--out", str(tmp_path / "o")] \
        if command == "export" else ["doctor", str(tmp_path), "--config", str(config)]
    code, output = invoke(*args)
    assert code == 2, output
    assert expected in output and "Traceback" not in output
    assert not (tmp_path / "o").exists()


def test_missing_config_file(tmp_path: Path) -> None:
    code, output = invoke("export", "--config", str(tmp_path / "nope.toml"), "--out", "o")
    assert code == 2 and "webpush-kit init" in output


def test_export_needs_a_config_outside_flask(tmp_path: Path) -> None:
    code, output = invoke("export", "--out", str(tmp_path / "o"))
    assert code == 2 and "--config" in output


def test_export_needs_something_to_do(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_bytes(settings_file())
    code, output = invoke("export", "--config", str(tmp_path / "c.toml"))
    assert code == 2 and "--out" in output


def test_console_script_bad_config_has_no_traceback(tmp_path: Path) -> None:
    """The installed `webpush-kit` entry point, in a real process."""
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} missing: the package is not installed (bash .ci/setup --test)")
    config = tmp_path / "webpush.toml"
    config.write_text('[moengage]\ndata_center = "eu"\n')
    proc = subprocess.run([str(SCRIPT), "export", "--config", str(config), "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "data_center" in proc.stderr and "Traceback" not in proc.stderr
    version = subprocess.run([str(SCRIPT), "--version"], capture_output=True, text=True,
                             timeout=60)
    assert version.returncode == 0 and "webpush-kit" in version.stdout


# --- groups ------------------------------------------------------------------------------


def test_other_groups_can_reuse_the_commands() -> None:
    every = {"init", "export", "doctor", "vapid", "send"}
    group = register_commands(click.Group("mine"))
    assert set(group.commands) == every
    assert set(main.commands) >= every
    assert set(flask_group().commands) == every


def test_flask_webpush_export_uses_the_apps_settings(tmp_path: Path) -> None:
    app = create_app()
    out = tmp_path / "out"
    result = app.test_cli_runner().invoke(args=["webpush", "export", "--out", str(out)])
    assert result.exit_code == 0, result.output
    client = app.test_client()
    for path in ("manifest.json", "serviceworker.js", "webpush-kit.js"):
        assert (out / path).read_bytes() == client.get("/" + path).data
    again = app.test_cli_runner().invoke(args=["webpush", "export", "--out", str(out)])
    assert "0 written" in again.output


def test_flask_webpush_init_writes_the_apps_settings(tmp_path: Path) -> None:
    app = create_app()
    out = tmp_path / "webpush.toml"
    result = app.test_cli_runner().invoke(args=["webpush", "init", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert Settings.from_toml(out) == WebPushKit.settings(app)
    assert "flask webpush init" in out.read_text()


def test_flask_webpush_doctor_on_a_folder(tmp_path: Path) -> None:
    app = create_app()
    runner = app.test_cli_runner()
    runner.invoke(args=["webpush", "export", "--out", str(tmp_path)])
    result = runner.invoke(args=["webpush", "doctor", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "OK:" in result.output


def test_flask_command_in_a_real_process(tmp_path: Path) -> None:
    flask = Path(sys.executable).with_name("flask")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [str(flask), "--app", "sample_site:create_app", "webpush", "export", "--out",
         str(tmp_path / "out")],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "serviceworker.js").exists()
