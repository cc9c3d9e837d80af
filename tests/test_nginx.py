"""The export served by a real nginx (issue 5, "tests that must exist"; TESTING.md).

The sample site's settings are exported with ``webpush-kit export``; Debian's nginx runs in
the foreground on a loopback port with a config file written here that includes the
exported location file. The served bytes and headers must be the Flask blueprint's,
``doctor`` must pass against nginx and against the Flask sample site, and a real Chromium
must register the worker at the root of the nginx-served site and find the manifest.

The MoEngage import points at a local stand-in (tests/standins/, copied into the web root):
the CDN is unreachable here, and an unreachable import fails the worker's installation.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sample_site import create_app
from tests.conftest import STANDIN_SW_IMPORT, STANDINS, require, standin_blueprint
from webpush_kit.cli import main
from webpush_kit.doctor import diagnose
from webpush_kit.export import settings_file
from webpush_kit.flask import WebPushKit
from webpush_kit.settings import Settings

NGINX = os.environ.get("WEBPUSH_KIT_NGINX", "/usr/sbin/nginx")
SAMPLE_STATIC = Path(__file__).resolve().parent.parent / "sample_site" / "static"
INDEX = b"""<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>A static shop served by nginx</title>
</head>
<body>
  <header><h1>Static shop</h1></header>
  <p>Plain HTML, patched by webpush-kit export --patch-html.</p>
</body>
</html>
"""
HEADERS = ("Content-Type", "Cache-Control", "Service-Worker-Allowed", "X-Content-Type-Options")


def sample_flask_app() -> Any:
    app = create_app({"WEBPUSH_MOENGAGE_SW_IMPORT": STANDIN_SW_IMPORT})
    app.register_blueprint(standin_blueprint())
    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Nginx:
    """nginx in the foreground (``daemon off``), config, pid and logs in a temp folder."""

    def __init__(self, work: Path, root: Path, include: Path) -> None:
        self.work = work
        (work / "logs").mkdir(parents=True, exist_ok=True)
        (work / "tmp").mkdir(exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        user = "user root;\n" if os.geteuid() == 0 else ""  # workers must read tmp_path
        temp = work / "tmp"
        self.conf = work / "nginx.conf"
        self.conf.write_text(f"""{user}worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/logs/error.log info;
events {{ worker_connections 64; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {work}/logs/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    server {{
        listen 127.0.0.1:{self.port};
        server_name localhost;
        root {root};
        index index.html;
        include {include};
    }}
}}
""")
        check = subprocess.run([NGINX, "-t", "-c", str(self.conf), "-p", str(work)],
                               capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stderr
        self.proc = subprocess.Popen(
            [NGINX, "-c", str(self.conf), "-p", str(work), "-g", "daemon off;"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"nginx exited: {self.proc.stderr.read()!r}")  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError("nginx did not start listening")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM: fast shutdown
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def nginx() -> Iterator[Callable[[Path, Path], Nginx]]:
    require(Path(NGINX).exists(), f"nginx not found at {NGINX}")
    started: list[Nginx] = []

    def start(root: Path, include: Path) -> Nginx:
        server = Nginx(root.parent / f"nginx-{len(started)}", root, include)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    """GET without following redirects (urllib would, silently)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=10) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers.items()), exc.read()


def export_site(tmp_path: Path, settings: Settings, prefix: str = "") -> tuple[Path, Path]:
    """Export into a web root with a static index.html, the stand-ins and the icons."""
    root = tmp_path / "www"
    page_dir = root / prefix.strip("/") if prefix else root
    page_dir.mkdir(parents=True)
    (page_dir / "index.html").write_bytes(INDEX)
    shutil.copytree(STANDINS, root / "_standin")
    shutil.copytree(SAMPLE_STATIC, page_dir / "static")
    config = tmp_path / "webpush.toml"
    config.write_bytes(settings_file(settings))
    args = ["export", "--config", str(config), "--out", str(root),
            "--patch-html", str(page_dir / "*.html"), "--no-backup"]
    result = CliRunner().invoke(main, args + (["--prefix", prefix] if prefix else []))
    assert result.exit_code == 0, result.output
    return root, config


@pytest.fixture
def sample_settings() -> Settings:
    return WebPushKit.settings(sample_flask_app())


def test_nginx_serves_the_blueprints_bytes_and_headers(
    tmp_path: Path, nginx: Any, sample_settings: Settings
) -> None:
    root, _ = export_site(tmp_path, sample_settings)
    server = nginx(root, root / "webpush-kit.nginx.conf")
    client = sample_flask_app().test_client()
    for path in ("/manifest.json", "/serviceworker.js", "/webpush-kit.js"):
        status, headers, body = get(server.url + path, **{"Service-Worker": "script"})
        flask = client.get(path)
        assert status == 200, path  # no redirect
        assert body == flask.data, path
        for name in HEADERS:
            assert headers.get(name) == flask.headers.get(name), (path, name)
        assert headers.get("ETag"), path
        # nginx's own validator works: a conditional request gets a 304.
        status, again, _ = get(server.url + path, **{"If-None-Match": headers["ETag"]})
        assert status == 304 and again.get("Cache-Control") == "no-cache"
    assert flask.headers.get("Service-Worker-Allowed") is None  # only the worker has it
    status, headers, _ = get(server.url + "/serviceworker.js")
    assert headers["Service-Worker-Allowed"] == "/"


def test_doctor_passes_against_nginx_and_the_flask_site(
    tmp_path: Path, nginx: Any, live_server: Any, sample_settings: Settings
) -> None:
    root, config = export_site(tmp_path, sample_settings)
    server = nginx(root, root / "webpush-kit.nginx.conf")
    result = CliRunner().invoke(main, ["doctor", server.url + "/", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output

    flask_site = live_server(sample_flask_app())
    report = diagnose(flask_site.url + "/", sample_settings)
    assert report.ok, report.to_text()
    # Both sites say the same thing, check for check.
    nginx_report = diagnose(server.url + "/", sample_settings)
    assert [(c.id, c.status) for c in nginx_report.checks] == \
        [(c.id, c.status) for c in report.checks]


def test_doctor_sees_nginx_break_a_rule(tmp_path: Path, nginx: Any,
                                        sample_settings: Settings) -> None:
    """The same include with a hand edit that redirects the worker: doctor catches it."""
    root, _ = export_site(tmp_path, sample_settings)
    include = root / "webpush-kit.nginx.conf"
    broken = tmp_path / "broken.conf"
    broken.write_text(include.read_text().replace(
        "    try_files $uri =404;\n}", "    return 301 /sw-moved.js;\n}", 2))
    server = nginx(root, broken)
    report = diagnose(server.url + "/", sample_settings)
    check = report.by_id("worker.status")[0]
    assert check.status == "fail" and "behind a redirect" in check.message


def test_nginx_under_a_prefix(tmp_path: Path, nginx: Any, sample_settings: Settings) -> None:
    root, config = export_site(tmp_path, sample_settings, prefix="/shop")
    server = nginx(root, root / "shop" / "webpush-kit.nginx.conf")
    status, headers, _ = get(server.url + "/shop/serviceworker.js")
    assert status == 200 and headers["Service-Worker-Allowed"] == "/shop/"
    result = CliRunner().invoke(main, ["doctor", server.url + "/shop/", "--config",
                                       str(config), "--prefix", "/shop"])
    assert result.exit_code == 0, result.output


@pytest.mark.browser
def test_chromium_registers_the_nginx_served_worker_at_the_root(
    tmp_path: Path, nginx: Any, browser_context: Any, sample_settings: Settings
) -> None:
    root, _ = export_site(tmp_path, sample_settings)
    server = nginx(root, root / "webpush-kit.nginx.conf")
    page = browser_context.new_page()
    cdp = browser_context.new_cdp_session(page)
    page.goto(server.url + "/")
    scope = page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
    assert scope == server.url + "/"
    script = page.evaluate(
        "navigator.serviceWorker.ready.then(r => r.active && r.active.scriptURL)")
    assert script == server.url + "/serviceworker.js"
    # An active worker means installation succeeded, imports included: the stand-in
    # MoEngage worker was fetched from nginx at its constant URL.
    result = cdp.send("Page.getAppManifest")
    assert result["url"] == server.url + "/manifest.json"
    assert result["errors"] == []
    data = json.loads(result["data"])
    assert data["name"] == "Sample Coffee Shop" and data["gcm_sender_id"] == "540868316921"
    assert result["manifest"]["startUrl"] == server.url + "/"
