"""``webpush-kit doctor`` (issue 5, item 4): every rule fails with the right message on a
site that breaks it, served for real on loopback, and passes on a good site."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask, Response, redirect

from sample_site import create_app
from webpush_kit.cli import main
from webpush_kit.doctor import Check, Report, check_https, diagnose
from webpush_kit.export import settings_file
from webpush_kit.flask import WebPushKit
from webpush_kit.settings import Settings

GOOD_MANIFEST: dict[str, Any] = {
    "name": "Good Shop", "short_name": "Good", "id": "/", "start_url": "/", "scope": "/",
    "display": "standalone",
    "icons": [{"src": "/i192.png", "sizes": "192x192", "type": "image/png"},
              {"src": "/i512.png", "sizes": "512x512", "type": "image/png"}],
}
GOOD_PAGE = (b'<!doctype html><html><head><meta charset="utf-8">'
             b'<link rel="manifest" href="/manifest.json"><title>Shop</title></head>'
             b"<body><header><h1>Shop</h1></header></body></html>")
GOOD_SW = b"self.addEventListener('push', function (event) {});\n"
SEED_LINE = (
    b'importScripts("//cdn.moengage.com/webpush/releases/serviceworker_cdn.min.latest.js?date="+\n'
    b'new Date().getUTCFullYear()+""+new Date().getUTCMonth()+""+new Date().getUTCDate());\n'
)
MOENGAGE = Settings(moengage_app_id="APPID123")
DC1_IMPORT = b'importScripts("https://cdn.moengage.com/release/dc_1/versions/2/' \
             b'serviceworker_cdn.min.latest.js");\n'


def site(
    *,
    page: bytes = GOOD_PAGE,
    sw: bytes = GOOD_SW,
    sw_path: str = "/serviceworker.js",
    sw_type: str = "text/javascript; charset=utf-8",
    sw_headers: dict[str, str] | None = None,
    sw_redirect: bool = False,
    manifest: Any = GOOD_MANIFEST,
    manifest_type: str = "application/manifest+json",
) -> Flask:
    """A hand-written site (no webpush_kit), so each test can break exactly one rule."""
    app = Flask(__name__)

    @app.get("/")
    def index() -> Response:
        return Response(page, mimetype="text/html")

    @app.get(sw_path)
    def worker() -> Any:
        if sw_redirect:
            return redirect("/static-sw.js", code=301)
        headers = {"Cache-Control": "no-cache", **(sw_headers or {})}
        return Response(sw, content_type=sw_type, headers=headers)

    @app.get("/static-sw.js")
    def redirected_worker() -> Response:
        return Response(sw, content_type=sw_type, headers={"Cache-Control": "no-cache"})

    @app.get("/manifest.json")
    def manifest_json() -> Response:
        body = manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode()
        return Response(body, content_type=manifest_type)

    return app


Start = Callable[[Any], Any]


def doctor(live_server: Start, app: Flask, settings: Settings | None = None) -> Report:
    server = live_server(app)
    return diagnose(server.url + "/", settings or Settings(), timeout=5)


def only(report: Report, id_: str) -> Check:
    found = report.by_id(id_)
    assert len(found) == 1, (id_, report.to_text())
    return found[0]


def failed_ids(report: Report) -> set[str]:
    return {c.id for c in report.failures()}


# --- passes ------------------------------------------------------------------------------


def test_a_good_site_passes(live_server: Start) -> None:
    report = doctor(live_server, site())
    assert report.ok, report.to_text()
    ids = {c.id for c in report.checks if c.status == "pass"}
    assert {"https", "page.manifest-link", "page.manifest-first", "worker.status",
            "worker.mime", "worker.scope", "worker.cache", "manifest.mime", "manifest.json",
            "manifest.icons", "manifest.display", "manifest.ios", "manifest.id",
            "manifest.name", "manifest.start_url", "manifest.gcm_sender_id"} <= ids


def test_the_flask_sample_site_passes_with_its_own_settings(live_server: Start) -> None:
    app = create_app()
    report = doctor(live_server, app, WebPushKit.settings(app))
    assert report.ok, report.to_text()
    assert "dc_1" in only(report, "worker.moengage-import").message
    assert only(report, "manifest.gcm_sender_id").status == "pass"


# --- each rule, broken ------------------------------------------------------------------


def test_worker_with_the_wrong_type(live_server: Start) -> None:
    report = doctor(live_server, site(sw_type="text/plain; charset=utf-8"))
    check = only(report, "worker.mime")
    assert check.status == "fail"
    assert "text/plain" in check.message and "not a JavaScript type" in check.message
    assert check.fix is not None and "text/javascript" in check.fix
    assert failed_ids(report) == {"worker.mime"}


def test_worker_behind_a_redirect(live_server: Start) -> None:
    report = doctor(live_server, site(sw_redirect=True))
    check = only(report, "worker.status")
    assert check.status == "fail"
    assert "301" in check.message and "behind a redirect" in check.message
    assert "/static-sw.js" in check.message


def test_worker_with_a_long_max_age(live_server: Start) -> None:
    report = doctor(live_server, site(sw_headers={"Cache-Control": "public, max-age=86400"}))
    check = only(report, "worker.cache")
    assert check.status == "fail" and "max-age=86400" in check.message
    assert check.fix is not None and "no-cache" in check.fix
    assert failed_ids(report) == {"worker.cache"}


@pytest.mark.parametrize("value,status", [
    ("no-cache", "pass"), ("max-age=0", "pass"), ("no-store", "pass"),
    ("max-age=600, no-cache", "pass"), ("max-age=31536000, immutable", "fail"),
    ("public", "warn"),
])
def test_cache_control_values(live_server: Start, value: str, status: str) -> None:
    report = doctor(live_server, site(sw_headers={"Cache-Control": value}))
    assert only(report, "worker.cache").status == status


def test_worker_outside_its_scope(live_server: Start) -> None:
    settings = Settings(sw_path="/js/sw.js")
    report = doctor(live_server, site(sw_path="/js/sw.js"), settings)
    check = only(report, "worker.scope")
    assert check.status == "fail" and "/js/" in check.message
    assert check.fix is not None and "Service-Worker-Allowed: /" in check.fix
    allowed = site(sw_path="/js/sw.js", sw_headers={"Service-Worker-Allowed": "/"})
    assert only(doctor(live_server, allowed, settings), "worker.scope").status == "pass"


def test_manifest_with_no_icons(live_server: Start) -> None:
    manifest = {k: v for k, v in GOOD_MANIFEST.items() if k != "icons"}
    report = doctor(live_server, site(manifest=manifest))
    check = only(report, "manifest.icons")
    assert check.status == "fail" and "no icons" in check.message
    assert "no icons for the Home Screen" in only(report, "manifest.ios").message
    assert failed_ids(report) == {"manifest.icons", "manifest.ios"}


def test_manifest_with_display_browser(live_server: Start) -> None:
    report = doctor(live_server, site(manifest={**GOOD_MANIFEST, "display": "browser"}))
    display = only(report, "manifest.display")
    assert display.status == "fail" and '"browser"' in display.message
    ios = only(report, "manifest.ios")
    assert ios.status == "fail" and "Home Screen" in ios.message
    assert failed_ids(report) == {"manifest.display", "manifest.ios"}


def test_manifest_without_id(live_server: Start) -> None:
    manifest = {k: v for k, v in GOOD_MANIFEST.items() if k != "id"}
    check = only(doctor(live_server, site(manifest=manifest)), "manifest.id")
    assert check.status == "fail" and check.fix is not None and '"id": "/"' in check.fix


def test_invalid_manifest_json(live_server: Start) -> None:
    report = doctor(live_server, site(manifest=b'{"name": "x",\n}'))
    check = only(report, "manifest.json")
    assert check.status == "fail" and "line 2, column 1" in check.message


def test_manifest_as_json_is_a_warning_and_as_html_a_failure(live_server: Start) -> None:
    warn = doctor(live_server, site(manifest_type="application/json"))
    assert only(warn, "manifest.mime").status == "warn" and warn.ok
    fail = doctor(live_server, site(manifest_type="text/html"))
    assert only(fail, "manifest.mime").status == "fail"


def test_manifest_link_in_body(live_server: Start) -> None:
    page = (b'<!doctype html><html><head><title>t</title></head><body><p>hi</p>'
            b'<link rel="manifest" href="/manifest.json"></body></html>')
    check = only(doctor(live_server, site(page=page)), "page.manifest-link")
    assert check.status == "fail" and "sits in <body>" in check.message


def test_manifest_link_pushed_into_body_by_text(live_server: Start) -> None:
    # No <head> tag and text before the link: the parser has already opened the body.
    page = b'<!doctype html>Hello<link rel="manifest" href="/manifest.json">'
    check = only(doctor(live_server, site(page=page)), "page.manifest-link")
    assert check.status == "fail" and "<body>" in check.message


def test_page_without_a_manifest_link(live_server: Start) -> None:
    page = b"<!doctype html><html><head><title>t</title></head><body></body></html>"
    check = only(doctor(live_server, site(page=page)), "page.manifest-link")
    assert check.status == "fail" and check.fix is not None and "--patch-html" in check.fix


def test_an_earlier_manifest_link_wins(live_server: Start) -> None:
    page = (b'<!doctype html><html><head><link rel="manifest" href="/other.json">'
            b'<link rel="manifest" href="/manifest.json"></head><body></body></html>')
    check = only(doctor(live_server, site(page=page)), "page.manifest-first")
    assert check.status == "fail" and "/other.json" in check.message


def test_the_seeds_dated_import_line(live_server: Start) -> None:
    report = doctor(live_server, site(sw=SEED_LINE + GOOD_SW), MOENGAGE)
    check = only(report, "worker.import-constant")
    assert check.status == "fail"
    assert "?date=" in check.message and "builds its URL at run time" in check.message
    assert "pushes are lost" in check.message
    assert check.fix is not None and "--merge-sw" in check.fix


def test_import_for_another_data_centre(live_server: Start) -> None:
    settings = MOENGAGE.replace(moengage_data_center="dc_2")
    check = only(doctor(live_server, site(sw=DC1_IMPORT + GOOD_SW), settings),
                 "worker.moengage-import")
    assert check.status == "fail"
    assert "dc_1" in check.message and "dc_2" in check.message


def test_missing_moengage_import(live_server: Start) -> None:
    check = only(doctor(live_server, site(), MOENGAGE), "worker.moengage-import")
    assert check.status == "fail" and "no importScripts line" in check.message


def test_matching_import_passes(live_server: Start) -> None:
    report = doctor(live_server, site(sw=DC1_IMPORT + GOOD_SW), MOENGAGE)
    assert only(report, "worker.moengage-import").status == "pass"
    assert only(report, "worker.import-constant").status == "pass"


def test_gcm_sender_id_must_match_the_settings(live_server: Start) -> None:
    settings = Settings(gcm_sender_id="540868316921")
    report = doctor(live_server, site(), settings)
    check = only(report, "manifest.gcm_sender_id")
    assert check.status == "fail" and "missing" in check.message and "540868316921" in check.message
    other = {**GOOD_MANIFEST, "gcm_sender_id": "103953800507"}
    check = only(doctor(live_server, site(manifest=other), settings), "manifest.gcm_sender_id")
    assert check.status == "fail" and "103953800507" in check.message


@pytest.mark.parametrize("url,status", [
    ("https://shop.example/", "pass"), ("http://127.0.0.1:8000/", "pass"),
    ("http://localhost/", "pass"), ("http://[::1]:5000/", "pass"),
    ("http://shop.example/", "fail"),
])
def test_https_is_required_except_on_loopback(url: str, status: str) -> None:
    assert check_https(url).status == status


def test_unreachable_site(tmp_path: Path) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    report = diagnose(f"http://127.0.0.1:{port}/", Settings(), timeout=2)
    assert not report.ok
    assert "could not" in only(report, "worker.status").message


# --- the command: --json shape and exit codes -------------------------------------------


def test_json_output_and_exit_status(live_server: Start, tmp_path: Path) -> None:
    good = live_server(site())
    result = CliRunner().invoke(main, ["doctor", good.url + "/", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert set(data) == {"target", "kind", "ok", "counts", "checks"}
    assert data["ok"] is True and data["kind"] == "url" and data["target"] == good.url + "/"
    assert set(data["counts"]) == {"pass", "warn", "fail", "skip"}
    for check in data["checks"]:
        assert set(check) <= {"id", "status", "message", "fix", "context"}
        assert check["status"] in ("pass", "warn", "fail", "skip")

    bad = live_server(site(sw_type="text/html"))
    result = CliRunner().invoke(main, ["doctor", bad.url + "/", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["counts"]["fail"] == 1
    failure = next(c for c in data["checks"] if c["status"] == "fail")
    assert failure["id"] == "worker.mime" and "fix" in failure


def test_text_output_names_the_failure_and_its_fix(live_server: Start) -> None:
    bad = live_server(site(sw_type="text/plain"))
    result = CliRunner().invoke(main, ["doctor", bad.url + "/"])
    assert result.exit_code == 1
    assert "FAIL  worker.mime" in result.output and "fix: serve it as" in result.output
    assert "FAILED: 1 failed" in result.output


def test_config_is_used_and_a_bad_one_exits_2(live_server: Start, tmp_path: Path) -> None:
    server = live_server(site(sw=DC1_IMPORT + GOOD_SW))
    config = tmp_path / "webpush.toml"
    config.write_bytes(settings_file(MOENGAGE))
    result = CliRunner().invoke(main, ["doctor", server.url + "/", "--config", str(config)])
    assert result.exit_code == 0, result.output
    config.write_text("[moengage]\napp_id = [1]\n")
    result = CliRunner().invoke(main, ["doctor", server.url + "/", "--config", str(config)])
    assert result.exit_code == 2 and "Traceback" not in result.output


# --- folder targets ------------------------------------------------------------------------


def exported(tmp_path: Path, settings: Settings) -> Path:
    config = tmp_path / "webpush.toml"
    config.write_bytes(settings_file(settings))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["export", "--config", str(config), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_export_folder_passes(tmp_path: Path) -> None:
    settings = WebPushKit.settings(create_app())
    report = diagnose(str(exported(tmp_path, settings)), settings)
    assert report.ok, report.to_text()
    contexts = {c.context for c in report.by_id("worker.mime")}
    assert contexts == {"nginx", "apache", "caddy"}


def test_folder_with_an_edited_server_config_fails(tmp_path: Path) -> None:
    settings = WebPushKit.settings(create_app())
    out = exported(tmp_path, settings)
    conf = out / "webpush-kit.nginx.conf"
    text = conf.read_text()
    conf.write_text(text.replace('default_type "text/javascript; charset=utf-8"',
                                 'default_type "text/plain"', 1)
                    .replace('Cache-Control "no-cache"', 'Cache-Control "max-age=86400"'))
    report = diagnose(str(out), settings)
    failed = {(c.id, c.context) for c in report.failures()}
    assert {("worker.cache", "nginx"), ("worker.mime", "nginx")} <= failed
    assert not {c.context for c in report.failures()} - {"nginx"}  # apache, caddy still fine


def test_folder_prefix_is_read_from_the_export(tmp_path: Path) -> None:
    settings = WebPushKit.settings(create_app())
    config = tmp_path / "webpush.toml"
    config.write_bytes(settings_file(settings))
    out = tmp_path / "www"
    CliRunner().invoke(main, ["export", "--config", str(config), "--out", str(out),
                              "--prefix", "/shop"])
    result = CliRunner().invoke(main, ["doctor", str(out), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "/shop/serviceworker.js" in result.output


def test_folder_without_an_export(tmp_path: Path) -> None:
    report = diagnose(str(tmp_path), Settings())
    assert {"worker.status", "manifest.status", "server.config"} <= failed_ids(report)


def test_readme_doctor_examples_pass_the_settings(tmp_path: Path) -> None:
    """Without --config doctor assumes the defaults (no MoEngage) and warns about the
    MoEngage import of a site exported with an app id; the README's examples give it."""
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.S)
    lines = [ln for b in blocks for ln in b.splitlines() if ln.startswith("webpush-kit doctor")]
    assert lines and all("--config webpush.toml" in ln for ln in lines), lines

    config = tmp_path / "webpush.toml"
    config.write_bytes(settings_file(MOENGAGE))
    out = tmp_path / "www"
    assert CliRunner().invoke(main, ["export", "--config", str(config), "--out", str(out)]
                              ).exit_code == 0
    bare = CliRunner().invoke(main, ["doctor", str(out), "--json"])
    given = CliRunner().invoke(main, ["doctor", str(out), "--config", str(config), "--json"])

    def status(output: str) -> str:
        checks = json.loads(output)["checks"]
        return next(c["status"] for c in checks if c["id"] == "worker.moengage-import")
    assert status(bare.output) == "warn"
    assert status(given.output) == "pass"
