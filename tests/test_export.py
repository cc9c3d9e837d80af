"""``webpush-kit export`` (issue 5, items 2 and 3): the same bytes as the Flask blueprint,
re-runs that change nothing, files that are not ours left alone, and merging into a site's
own manifest and worker, each table case run twice."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from flask import Flask

from sample_site import create_app
from webpush_kit.assets import render_assets
from webpush_kit.cli import main
from webpush_kit.doctor import served_headers
from webpush_kit.errors import ValidationError
from webpush_kit.export import (
    STATE_FILE,
    ExportConflictError,
    apply_export,
    export_files,
    plan_export,
    settings_file,
)
from webpush_kit.flask import WebPushKit
from webpush_kit.merge import find_moengage_imports
from webpush_kit.settings import Settings

SAMPLE = WebPushKit.settings(create_app())
CUSTOM = Settings(
    manifest_name="Café Crème",
    sw_path="/push/sw.js",
    sw_scope="/",
    client_path="/js/wk.js",
    manifest_path="/app.webmanifest",
    manifest_extra={"categories": ["shopping"], "description": "naïve <b> & co"},
)
VARIANTS = {
    "sample-site": (SAMPLE, ""),
    "custom-paths": (CUSTOM, ""),
    "prefix": (SAMPLE, "/shop"),
    "defaults": (Settings(), ""),
}
EXPECTED_IMPORT = "https://cdn.moengage.com/release/dc_1/versions/2/serviceworker_cdn.min.latest.js"


def run(*args: str, code: int = 0) -> Result:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def write_config(path: Path, settings: Settings) -> Path:
    path.write_bytes(settings_file(settings))
    assert Settings.from_toml(path) == settings  # the file says what we mean
    return path


def app_for(settings: Settings) -> Flask:
    app = Flask(__name__)
    WebPushKit(app, **settings.to_dict())
    return app


def files_under(root: Path) -> dict[str, tuple[bytes, int]]:
    return {p.relative_to(root).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def aged() -> Iterator[Any]:
    """Set every file's mtime to a fixed old time, so any write shows up."""
    def age(root: Path) -> None:
        for p in root.rglob("*"):
            if p.is_file():
                os.utime(p, ns=(10**18, 10**18))
    yield age


# --- the same bytes and headers as the blueprint ----------------------------------------


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_export_is_byte_identical_to_the_blueprint(variant: str, tmp_path: Path) -> None:
    settings, prefix = VARIANTS[variant]
    config = write_config(tmp_path / "webpush.toml", settings)
    out = tmp_path / "out"
    args = ["export", "--config", str(config), "--out", str(out)]
    run(*args, *(["--prefix", prefix] if prefix else []))
    client = app_for(settings).test_client()
    base = f"http://localhost{prefix}"
    bundle = render_assets(settings, prefix)
    for asset in bundle.assets:
        served = client.get(asset.path[len(prefix):], base_url=base)
        assert served.status_code == 200, asset.path
        on_disk = out / asset.path.lstrip("/")
        assert on_disk.read_bytes() == served.data, asset.path
    snippet = (out / prefix.lstrip("/") / "head-snippet.html").read_bytes()
    assert snippet == bundle.head_snippet + b"\n"


@pytest.mark.parametrize("server", ["nginx", "apache", "caddy"])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_server_configs_send_the_blueprint_headers(variant: str, server: str) -> None:
    settings, prefix = VARIANTS[variant]
    bundle = render_assets(settings, prefix)
    files = export_files(bundle)
    name = {"nginx": "webpush-kit.nginx.conf", "apache": ".htaccess",
            "caddy": "webpush-kit.Caddyfile"}[server]
    config = files[(prefix.strip("/") + "/" if prefix else "") + name].decode()
    client = app_for(settings).test_client()
    for asset in bundle.assets:
        flask_headers = client.get(asset.path[len(prefix):],
                                   base_url=f"http://localhost{prefix}").headers
        configured = served_headers(server, config, asset.path)
        assert configured is not None, (server, asset.path)
        for header in ("Content-Type", "Cache-Control", "X-Content-Type-Options",
                       "Service-Worker-Allowed"):
            assert configured.get(header.lower()) == flask_headers.get(header), header


def test_exported_paths_mirror_url_paths(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", CUSTOM)
    run("export", "--config", str(config), "--out", str(tmp_path / "www"), "--prefix", "/shop")
    got = set(files_under(tmp_path / "www"))
    assert got == {
        STATE_FILE, "shop/app.webmanifest", "shop/push/sw.js", "shop/js/wk.js",
        "shop/head-snippet.html", "shop/webpush-kit.nginx.conf", "shop/.htaccess",
        "shop/webpush-kit.Caddyfile",
    }
    state = json.loads((tmp_path / "www" / STATE_FILE).read_text())
    assert state["prefix"] == "/shop" and set(state["files"]) == got - {STATE_FILE}


def test_server_option_writes_only_those(tmp_path: Path) -> None:
    config = write_config(tmp_path / "c.toml", SAMPLE)
    run("export", "--config", str(config), "--out", str(tmp_path / "o"), "--server", "nginx")
    names = set(files_under(tmp_path / "o"))
    assert "webpush-kit.nginx.conf" in names
    assert ".htaccess" not in names and "webpush-kit.Caddyfile" not in names


# --- re-runs, and files that are not ours ------------------------------------------------


def test_rerun_changes_nothing_not_even_mtimes(tmp_path: Path, aged: Any) -> None:
    config = write_config(tmp_path / "c.toml", SAMPLE)
    out = tmp_path / "out"
    run("export", "--config", str(config), "--out", str(out))
    aged(out)
    before = files_under(out)
    result = run("export", "--config", str(config), "--out", str(out))
    assert "0 written, 7 unchanged" in result.output
    assert files_under(out) == before


def test_changed_settings_rewrite_only_the_affected_files(tmp_path: Path, aged: Any) -> None:
    out = tmp_path / "out"
    run("export", "--config", str(write_config(tmp_path / "a.toml", SAMPLE)), "--out", str(out))
    aged(out)
    before = files_under(out)
    changed = SAMPLE.replace(manifest_name="Renamed Shop")
    run("export", "--config", str(write_config(tmp_path / "b.toml", changed)), "--out", str(out))
    after = files_under(out)
    differ = {k for k in after if after[k] != before.get(k)}
    # The name reaches the manifest and the worker's default notification title.
    assert differ == {"manifest.json", "serviceworker.js", STATE_FILE}


def test_refuses_a_file_it_did_not_write_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"name": "the site\'s own"}\n')
    config = write_config(tmp_path / "c.toml", SAMPLE)
    result = run("export", "--config", str(config), "--out", str(out), code=1)
    assert "not overwriting" in result.output and "manifest.json" in result.output
    assert "--force" in result.output
    assert set(files_under(out)) == {"manifest.json"}  # nothing else written either
    # --force replaces it and keeps the site's file as a backup.
    run("export", "--config", str(config), "--out", str(out), "--force")
    assert (out / "manifest.json.bak").read_text() == '{"name": "the site\'s own"}\n'
    assert (out / "manifest.json").read_bytes() == render_assets(SAMPLE).manifest.body


def test_a_file_edited_after_export_is_no_longer_ours(tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.toml", SAMPLE)
    run("export", "--config", str(config), "--out", str(out))
    with (out / "serviceworker.js").open("a") as f:
        f.write("// edited by hand\n")
    changed = write_config(tmp_path / "d.toml", SAMPLE.replace(moengage_data_center="dc_2"))
    result = run("export", "--config", str(changed), "--out", str(out), code=1)
    assert "serviceworker.js" in result.output
    assert (out / "serviceworker.js").read_text().endswith("// edited by hand\n")


def test_an_identical_file_is_adopted_without_a_write(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    body = render_assets(SAMPLE).serviceworker.body
    (out / "serviceworker.js").write_bytes(body)
    os.utime(out / "serviceworker.js", ns=(10**18, 10**18))
    run("export", "--config", str(write_config(tmp_path / "c.toml", SAMPLE)), "--out", str(out))
    assert (out / "serviceworker.js").stat().st_mtime_ns == 10**18
    state = json.loads((out / STATE_FILE).read_text())
    assert "serviceworker.js" in state["files"]


def test_an_unreadable_state_file_makes_every_existing_file_foreign(tmp_path: Path) -> None:
    out = tmp_path / "out"
    bundle = render_assets(SAMPLE)
    apply_export(plan_export(bundle, out))
    (out / STATE_FILE).write_text("not json")
    (out / "manifest.json").write_text("{}")
    plan = plan_export(bundle, out)
    assert [f.path for f in plan.conflicts] == ["manifest.json"]
    assert any("not a webpush-kit state file" in n for n in plan.notes)
    with pytest.raises(ExportConflictError):
        apply_export(plan)


def test_dry_run_prints_the_files_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.toml", SAMPLE)
    result = run("export", "--config", str(config), "--out", str(out), "--dry-run")
    assert not out.exists()
    assert "+++ b/serviceworker.js" in result.output
    assert "7 file(s) would change" in result.output


def test_dry_run_that_would_refuse_exits_1_like_the_real_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "manifest.json").write_text('{"name": "the site\'s own"}\n')
    config = write_config(tmp_path / "c.toml", SAMPLE)
    dry = run("export", "--config", str(config), "--out", str(out), "--dry-run", code=1)
    assert f"would refuse {out / 'manifest.json'}" in dry.output
    # The last line says why the status is 1, in the words of the real run.
    assert dry.output.strip().splitlines()[-1].startswith("Error: dry run: not overwriting")
    assert set(files_under(out)) == {"manifest.json"}
    real = run("export", "--config", str(config), "--out", str(out), code=1)
    assert "not overwriting" in real.output
    # With --force the dry run says what it would replace, and succeeds.
    forced = run("export", "--config", str(config), "--out", str(out), "--dry-run", "--force")
    assert "would replace" in forced.output
    assert set(files_under(out)) == {"manifest.json"}


def test_paths_that_cannot_go_into_server_config_are_refused() -> None:
    with pytest.raises(ValidationError, match="cannot be written safely"):
        export_files(render_assets(Settings(sw_path="/sw$1.js")))


def test_two_outputs_on_one_path_are_refused() -> None:
    with pytest.raises(ValidationError, match="two exported files"):
        export_files(render_assets(Settings(client_path="/head-snippet.html")))


# --- merging into the site's own files, table-driven, each run twice --------------------

MERGE_SETTINGS = Settings(
    moengage_app_id="APPID123",
    gcm_sender_id="540868316921",
    manifest_extra={"categories": ["shopping"]},
)

MANIFESTS = {
    "no-gcm-two-spaces":
        '{\n  "name": "Shop",\n  "icons": [{"src": "/a.png", "sizes": "192x192"}]\n}\n',
    "other-gcm-one-line":
        '{"name": "Shop", "gcm_sender_id": "103953800507", "display": "standalone"}',
    "same-gcm": '{\n  "gcm_sender_id": "540868316921",\n  "categories": ["shopping"]\n}\n',
    "nested-members": (
        '{\n    "name": "Nested",\n    "shortcuts": [\n        {"name": "Cart", "url": "/cart", '
        '"icons": [{"src": "/c.png", "sizes": "96x96"}]}\n    ],\n    "share_target": '
        '{"action": "/share", "params": {"title": "t"}}\n}\n'
    ),
    "unicode": '{\n  "name": "Café ☕ 日本",\n  "description": "na\\u00efve \\"quoted\\""\n}\n',
    "tabs": '{\n\t"name": "Tabs",\n\t"display": "standalone"\n}\n',
    "crlf": '{\r\n  "name": "Windows",\r\n  "start_url": "/"\r\n}\r\n',
    "bom": '\ufeff{\n  "name": "BOM"\n}\n',
}


@pytest.mark.parametrize("case", sorted(MANIFESTS))
def test_merge_manifest_cases_twice(case: str, tmp_path: Path) -> None:
    original = MANIFESTS[case]
    path = tmp_path / "manifest.json"
    path.write_bytes(original.encode("utf-8"))
    config = write_config(tmp_path / "c.toml", MERGE_SETTINGS)
    first = run("export", "--config", str(config), "--merge-manifest", str(path))
    after_first = path.read_bytes()
    text = after_first.decode("utf-8")
    data = json.loads(text.lstrip("\ufeff"))
    old = json.loads(original.lstrip("\ufeff"))
    assert data["gcm_sender_id"] == "540868316921"
    assert data["categories"] == ["shopping"]
    for key, value in old.items():  # every other member kept, in its order
        if key not in ("gcm_sender_id", "categories"):
            assert data[key] == value
    old_order = [k for k in old if k not in ("gcm_sender_id", "categories")]
    assert [k for k in data if k in old_order] == old_order
    assert text.startswith("\ufeff") == original.startswith("\ufeff")
    if "\r\n" in original:
        assert "\n" not in text.replace("\r\n", "")
    if "\t" in original:
        assert '\n\t"gcm_sender_id"' in text
    if case == "same-gcm":
        assert "unchanged" in first.output and after_first == original.encode()
    second = run("export", "--config", str(config), "--merge-manifest", str(path))
    assert "unchanged" in second.output and "patched" not in second.output
    assert path.read_bytes() == after_first


SEED_LINE = (
    'importScripts("//cdn.moengage.com/webpush/releases/serviceworker_cdn.min.latest.js?date="+\n'
    'new Date().getUTCFullYear()+""+new Date().getUTCMonth()+""+new Date().getUTCDate());\n'
)
OWN_CODE = "self.addEventListener('fetch', function (event) { /* the site's own */ });\n"
WORKERS = {
    "no-import": OWN_CODE,
    "same-import": f'importScripts("{EXPECTED_IMPORT}");\n' + OWN_CODE,
    "older-moengage": 'importScripts("https://cdn.moengage.com/webpush/releases/'
                      'serviceworker_cdn.min.latest.js");\n' + OWN_CODE,
    "seed-dated-line": SEED_LINE + OWN_CODE,
    "use-strict": "'use strict';\n" + OWN_CODE,
    "licence-crlf": "/* (c) Shop, MIT */\r\n'use strict';\r\n" + OWN_CODE.replace("\n", "\r\n"),
}


@pytest.mark.parametrize("case", sorted(WORKERS))
def test_merge_sw_cases_twice(case: str, tmp_path: Path) -> None:
    original = WORKERS[case]
    path = tmp_path / "serviceworker.js"
    path.write_bytes(original.encode())
    config = write_config(tmp_path / "c.toml", MERGE_SETTINGS)
    first = run("export", "--config", str(config), "--merge-sw", str(path))
    text = path.read_bytes().decode()
    imports = find_moengage_imports(text)
    assert len(imports) == 1 and imports[0].is_constant and imports[0].url == EXPECTED_IMPORT
    assert OWN_CODE.replace("\n", "\r\n" if "\r\n" in original else "\n") in text
    if "'use strict';" in original:
        assert text.index("'use strict';") < text.index("importScripts(")
    if case == "seed-dated-line":
        assert "?date=" not in text
        assert "built at run time" in first.output and "pushes are lost" in first.output
    if case == "same-import":
        assert text == original
    second = run("export", "--config", str(config), "--merge-sw", str(path))
    assert "patched" not in second.output
    assert path.read_bytes().decode() == text


def test_merge_refuses_invalid_json_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text('{\n  "name": "x",\n}\n')
    config = write_config(tmp_path / "c.toml", MERGE_SETTINGS)
    out = tmp_path / "out"
    result = run("export", "--config", str(config), "--merge-manifest", str(path),
                 "--out", str(out), code=1)
    assert "line 3, column 1" in result.output
    assert path.read_text() == '{\n  "name": "x",\n}\n'
    assert not out.exists()  # nothing is written when any part fails


def test_merge_sw_without_a_moengage_import_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "sw.js"
    path.write_text(OWN_CODE)
    config = write_config(tmp_path / "c.toml", Settings())
    result = run("export", "--config", str(config), "--merge-sw", str(path), code=1)
    assert "moengage_app_id" in result.output


def test_merging_skips_our_own_copy_of_that_file(tmp_path: Path) -> None:
    sw = tmp_path / "site-sw.js"
    sw.write_text(OWN_CODE)
    config = write_config(tmp_path / "c.toml", MERGE_SETTINGS)
    out = tmp_path / "out"
    run("export", "--config", str(config), "--merge-sw", str(sw), "--out", str(out))
    assert not (out / "serviceworker.js").exists()
    assert (out / "manifest.json").exists() and (out / "webpush-kit.nginx.conf").exists()
    assert (tmp_path / "site-sw.js.bak").read_text() == OWN_CODE


def test_merge_dry_run_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "serviceworker.js"
    path.write_text(SEED_LINE + OWN_CODE)
    config = write_config(tmp_path / "c.toml", MERGE_SETTINGS)
    result = run("export", "--config", str(config), "--merge-sw", str(path), "--dry-run")
    assert path.read_text() == SEED_LINE + OWN_CODE
    assert not (tmp_path / "serviceworker.js.bak").exists()
    assert f'+importScripts("{EXPECTED_IMPORT}");' in result.output
    assert "-new Date().getUTCFullYear()" in result.output
