"""Fixtures shared by the suite: live servers on loopback and a real Chromium.

Real parts, not mocks: pages are served by a real WSGI server on 127.0.0.1 and driven by
Debian's Chromium through Playwright (``.ci/setup --test`` installs both). On CI a missing
part fails the run instead of skipping, so a green CI always means the browser ran.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

ROOT = Path(__file__).resolve().parent.parent
STANDINS = Path(__file__).resolve().parent / "standins"
CHROMIUM = os.environ.get("WEBPUSH_KIT_CHROMIUM", "/usr/bin/chromium")
# Keep Chromium off the closed network (TESTING.md): no background fetches, no sync.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def require(condition: bool, why: str) -> None:
    """Skip locally when a real part is missing, but fail on CI: never a silent pass."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI must run every test: run `bash .ci/setup --test`)")
    pytest.skip(why)


class LiveServer:
    """A WSGI app served by a real threaded HTTP server on 127.0.0.1, random port."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def live_server() -> Iterator[Callable[[Callable[..., Any]], LiveServer]]:
    """``live_server(app)`` starts a server for ``app``; all are stopped after the test."""
    started: list[LiveServer] = []

    def start(app: Callable[..., Any]) -> LiveServer:
        server = LiveServer(app)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Debian Chromium per test module (contexts are per test).

    Module scope, not session: Playwright's sync API keeps an event loop marked as running
    on the main thread while it lives, and the sender's sync methods rightly refuse to
    block a thread that runs an event loop; so the browser is stopped after the modules
    that need it."""
    require(Path(CHROMIUM).exists() and shutil.which("node") is not None,
            f"Chromium not found at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                     headless=True)
        yield browser
        browser.close()


@pytest.fixture
def browser_context(chromium: Any) -> Iterator[Any]:
    """A fresh profile (no service workers, no permissions) per test."""
    context = chromium.new_context()
    yield context
    context.close()


def standin_blueprint() -> Any:
    """Serves tests/standins/ at /_standin/: local stand-ins for MoEngage's CDN files.

    Stand-ins, because the real CDN is unreachable here, and an installed worker whose
    importScripts URL cannot be fetched fails to install (WEB-PUSH-RULES section 6)."""
    from flask import Blueprint, send_from_directory

    bp = Blueprint("standin", __name__, url_prefix="/_standin")

    @bp.get("/<path:name>")
    def standin(name: str) -> Any:
        resp = send_from_directory(STANDINS, name, mimetype="text/javascript")
        resp.headers["Cache-Control"] = "no-cache"
        return resp

    return bp


STANDIN_SW_IMPORT = "/_standin/moengage/serviceworker_cdn.min.latest.js"
