"""Bad input on the command line: one clear line, exit status 2, never a traceback.

Cases found by trying the CLI from a fresh clone as a newcomer would.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from webpush_kit.cli import main
from webpush_kit.vapid import VapidKey


@pytest.mark.parametrize("target", ["http://[::1", "http://exa mple.com/", "ftp://x.example/",
                                    "https:///nohost"])
def test_doctor_refuses_a_malformed_url(target: str) -> None:
    result = CliRunner().invoke(main, ["doctor", target])
    assert result.exit_code == 2, result.output
    assert "Invalid value for TARGET" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def _config(tmp_path: Path, database_url: str) -> Path:
    key = tmp_path / "vapid.pem"
    VapidKey.generate().save_pem(key)
    path = tmp_path / "webpush.toml"
    path.write_text(f'[push]\nvapid_private_key = "{key}"\n'
                    'vapid_subject = "mailto:push@example.com"\n'
                    f'[store]\ndatabase_url = "{database_url}"\n', encoding="utf-8")
    return path


def test_send_never_creates_a_database_at_a_mistyped_path(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "webpush_kit.sqlite3"
    config = _config(tmp_path, f"sqlite:///{missing}")
    result = CliRunner().invoke(main, ["send", "--config", str(config), "--all",
                                       "--title", "hi"])
    assert result.exit_code == 2, result.output
    assert "no SQLite database at" in result.output
    assert not missing.exists() and not missing.parent.exists()


def test_send_with_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    config = _config(tmp_path, "postgresql://user:secret@127.0.0.1:1/webpush")
    result = CliRunner().invoke(main, ["send", "--config", str(config), "--all",
                                       "--title", "hi"])
    assert result.exit_code == 2, result.output
    assert "cannot read" in result.output and "Connection refused" in result.output
    assert "secret" not in result.output  # the password is never printed
    assert len(result.output.strip().splitlines()) == 1


def test_send_shows_no_password_of_an_unsupported_database(tmp_path: Path) -> None:
    config = _config(tmp_path, "mysql://u:s3cretpw@127.0.0.1/shop")
    result = CliRunner().invoke(main, ["send", "--config", str(config), "--all",
                                       "--title", "hi"])
    assert result.exit_code == 2, result.output
    assert "only SQLite" in result.output and "u:***@127.0.0.1" in result.output
    assert "s3cretpw" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("extra", [[], ["--dry-run"], ["--dry-run", "--json"]])
def test_send_never_creates_tables_in_a_database_that_has_none(
    tmp_path: Path, extra: list[str]
) -> None:
    import sqlite3

    db = tmp_path / "shop.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    config = _config(tmp_path, f"sqlite:///{db}")
    result = CliRunner().invoke(main, ["send", "--config", str(config), "--all",
                                       "--title", "hi", *extra])
    assert result.exit_code == 2, result.output
    assert "holds no webpush_kit tables" in result.output and "nothing sent" in result.output
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert tables == {"customers"}


@pytest.mark.parametrize("problem", ["missing folder", "read-only folder"])
def test_init_into_a_folder_it_cannot_write_is_one_line(tmp_path: Path, problem: str) -> None:
    import os

    if problem == "missing folder":
        out = tmp_path / "nope" / "webpush.toml"
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o500)
        out = folder / "webpush.toml"
        if os.access(folder, os.W_OK):  # root ignores the mode bits
            folder.chmod(0o700)
            out = folder / "sub" / "webpush.toml"
    result = CliRunner().invoke(main, ["init", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: cannot write {out}")
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def _error_line(output: str) -> str:
    """The one line that says what is wrong (click puts its usage lines above it)."""
    errors = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, output
    assert "Traceback" not in output
    return errors[0]


def _init(tmp_path: Path) -> Path:
    config = tmp_path / "webpush.toml"
    assert CliRunner().invoke(main, ["init", "--out", str(config)]).exit_code == 0
    return config


@pytest.mark.parametrize("prefix", ["//evil", "//evil/shop", "/shop//x", "/a/../b", "/..",
                                    "/shop?x=1", "/shop#top", "/my shop", "/shop\n",
                                    "/shop\x00", "/sh\"op", "\\\\evil", "/café"])
@pytest.mark.parametrize("command", ["export", "doctor"])
def test_prefix_is_checked_like_the_settings_paths(
    tmp_path: Path, prefix: str, command: str
) -> None:
    config = _init(tmp_path)
    out = tmp_path / "www"
    args = ["export", "--out", str(out)] if command == "export" else ["doctor", str(out)]
    result = CliRunner().invoke(main, [*args, "--config", str(config), "--prefix", prefix])
    assert result.exit_code == 2, result.output
    line = _error_line(result.output)
    assert "Invalid value for '--prefix'" in line and "start with a single /" in line
    assert not out.exists()  # nothing written


def test_prefix_without_a_leading_slash_is_refused_with_the_fix(tmp_path: Path) -> None:
    config = _init(tmp_path)
    out = tmp_path / "www"
    result = CliRunner().invoke(main, ["export", "--config", str(config), "--out", str(out),
                                       "--prefix", "nope"])
    assert result.exit_code == 2, result.output
    assert "write '/nope'" in _error_line(result.output)
    assert not out.exists()


@pytest.mark.parametrize("prefix", ["", "/", "/shop", "/shop/", "/a-b/c.d_e~f", "/caf%C3%A9"])
def test_good_prefixes_still_export(tmp_path: Path, prefix: str) -> None:
    config = _init(tmp_path)
    out = tmp_path / "www"
    result = CliRunner().invoke(main, ["export", "--config", str(config), "--out", str(out),
                                       "--prefix", prefix])
    assert result.exit_code == 0, result.output
    snippet = next(out.rglob("head-snippet.html")).read_text()
    expected = prefix.rstrip("/")
    assert f'<script src="{expected}/webpush-kit.js"' in snippet


@pytest.mark.parametrize(("args", "fragment"), [
    (["export", "--config", "{config}", "--out", ""], "give a folder"),
    (["export", "--config", "{config}", "--out", " "], "give a folder"),
    (["vapid", "generate", "--out", "", "--force"], "give a file name"),
    (["vapid", "generate", "--out", "{tmp}/keys/", "--force"], "is a folder"),
    (["vapid", "generate", "--out", "{tmp}", "--force"], "is a directory"),
    (["init", "--out", ""], "give a file name"),
])
def test_blank_or_folder_out_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], fragment: str
) -> None:
    config = _init(tmp_path)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)  # `--out ""` used to mean this folder
    args = [a.format(config=config, tmp=tmp_path) for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    line = _error_line(result.output)
    assert "Invalid value for '--out'" in line and fragment in line
    assert list(work.iterdir()) == []
    assert not (tmp_path / "keys").exists()


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "NaN", "inf", "-inf", "1e10", "soon"])
def test_doctor_timeout_must_be_a_positive_finite_number(tmp_path: Path, timeout: str) -> None:
    result = CliRunner().invoke(main, ["doctor", str(tmp_path), "--timeout", timeout])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--timeout'" in _error_line(result.output)
    assert "out of range" not in result.output  # no check ran with it


def test_doctor_timeout_accepts_a_fraction(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["doctor", str(tmp_path), "--timeout", "0.5"])
    assert result.exit_code == 1, result.output  # ran: an empty folder fails its checks
    assert "worker.status" in result.output


def test_a_relative_sqlite_path_is_also_found_beside_the_settings_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the key file's path is: tried from the working directory, then from the folder
    # of the settings file (a newcomer ran send from another folder and got "no database").
    import sqlite3

    site = tmp_path / "site"
    site.mkdir()
    with sqlite3.connect(site / "push.sqlite3") as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    config = _config(site, "sqlite:///push.sqlite3")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(main, ["send", "--config", str(config), "--all",
                                       "--title", "hi"])
    # Found: it holds no webpush_kit tables yet, which is what send now says.
    assert "holds no webpush_kit tables" in result.output, result.output
    assert str(site / "push.sqlite3") in result.output
    config.write_text(config.read_text().replace("push.sqlite3", "typo.sqlite3"))
    result = CliRunner().invoke(main, ["send", "--config", str(config), "--all",
                                       "--title", "hi"])
    assert result.exit_code == 2
    assert f"no SQLite database at typo.sqlite3 or {site / 'typo.sqlite3'}" in result.output
    assert not (site / "typo.sqlite3").exists() and not (elsewhere / "typo.sqlite3").exists()
