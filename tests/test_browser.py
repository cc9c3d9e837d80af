"""A real Chromium visits the sample site (issue 2, item 7).

Driven through Playwright and the Chrome DevTools Protocol: the worker must register with
the site root as scope, keep working after the browser stops it (its MoEngage import is a
constant URL, here a local stand-in because the CDN is unreachable), and Chromium must pick
our manifest (``Page.getAppManifest``) with no errors.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from sample_site import create_app
from tests.conftest import STANDIN_SW_IMPORT, standin_blueprint

pytestmark = pytest.mark.browser


def sample_app(**config: Any) -> Flask:
    app = create_app({"WEBPUSH_MOENGAGE_SW_IMPORT": STANDIN_SW_IMPORT, **config})
    app.register_blueprint(standin_blueprint())
    return app


class Devtools:
    """A page with a CDP session that has been listening to service worker events since
    before ``ServiceWorker.enable`` (TESTING.md)."""

    def __init__(self, context: Any, origin: str) -> None:
        context.grant_permissions(["notifications"], origin=origin)
        self.origin = origin
        self.page = context.new_page()
        self.cdp = context.new_cdp_session(self.page)
        self.registrations: dict[str, dict[str, Any]] = {}
        self.cdp.on("ServiceWorker.workerRegistrationUpdated", self._on_registrations)
        self.cdp.send("ServiceWorker.enable")

    def _on_registrations(self, event: dict[str, Any]) -> None:
        for reg in event["registrations"]:
            self.registrations[reg["registrationId"]] = reg

    def ready_scope(self, url: str) -> str:
        self.page.goto(url)
        # `ready` resolves when activation starts; a push delivered through CDP before the
        # worker is "activated" can be dropped, so wait for that state too.
        scope: str = self.page.evaluate("""Promise.race([
            navigator.serviceWorker.ready.then(r =>
                r.active.state === 'activated' ? r.scope : new Promise(resolve =>
                    r.active.addEventListener('statechange', () => {
                        if (r.active.state === 'activated') resolve(r.scope);
                    }))),
            new Promise((_, reject) => setTimeout(
                () => reject(new Error('no activated service worker after 20 s')), 20000)),
        ])""")
        return scope

    def registration_id(self, scope: str) -> str:
        for _ in range(50):
            for reg in self.registrations.values():
                if reg["scopeURL"] == scope and not reg["isDeleted"]:
                    return str(reg["registrationId"])
            self.page.wait_for_timeout(100)
        raise AssertionError(f"no registration for {scope}: {self.registrations}")

    def notifications(self, expected: int, seconds: float = 15.0) -> list[str]:
        """Titles shown so far, polling until ``expected`` appear (a loaded CI machine can
        take seconds to wake a worker) or ``seconds`` pass."""
        titles: list[str] = []
        # getNotifications() makes Chromium reconcile its notification store with what the
        # platform reports as displayed; asked too soon after showNotification() it can
        # drop a notification still on its way to the display, so the first look waits.
        self.page.wait_for_timeout(1000)
        for _ in range(int(seconds * 10)):
            titles = self.page.evaluate(
                "navigator.serviceWorker.ready.then(r => r.getNotifications())"
                ".then(ns => ns.map(n => n.title))")
            if len(titles) >= expected:
                break
            self.page.wait_for_timeout(100)
        return titles

    def push(self, scope: str, data: str) -> None:
        self.cdp.send("ServiceWorker.deliverPushMessage", {
            "origin": self.origin, "registrationId": self.registration_id(scope), "data": data,
        })


def test_worker_registers_at_root_and_survives_a_restart(
    live_server: Any, browser_context: Any
) -> None:
    server = live_server(sample_app())
    tools = Devtools(browser_context, server.url)
    assert tools.ready_scope(server.url + "/products/grinder") == server.url + "/"

    tools.push(server.url + "/", json.dumps({"title": "first"}))
    assert tools.notifications(1) == ["first"]
    # Stop the worker: the next push starts it again from its stored script, which works
    # only because every importScripts URL is constant (WEB-PUSH-RULES section 6).
    tools.cdp.send("ServiceWorker.stopAllWorkers")
    tools.page.wait_for_timeout(200)
    tools.push(server.url + "/", json.dumps({"title": "after restart"}))
    assert sorted(tools.notifications(2)) == ["after restart", "first"]


def test_chromium_finds_our_manifest_with_the_configured_members(
    live_server: Any, browser_context: Any
) -> None:
    server = live_server(sample_app())
    tools = Devtools(browser_context, server.url)
    tools.page.goto(server.url + "/")
    result = tools.cdp.send("Page.getAppManifest")
    assert result["url"] == server.url + "/manifest.json"
    assert result["errors"] == []
    raw = json.loads(result["data"])
    assert raw["name"] == "Sample Coffee Shop" and raw["gcm_sender_id"] == "540868316921"
    # What Chromium made of our members (its parsed form; it omits short_name).
    parsed = result["manifest"]
    assert parsed["name"] == "Sample Coffee Shop"
    assert parsed["startUrl"] == parsed["scope"] == parsed["id"] == server.url + "/"
    assert parsed["display"] in ("standalone", "kStandalone")
    assert parsed["themeColor"] == "rgba(26,115,232,1)"
    assert {i["sizes"] for i in parsed["icons"]} == {"192x192", "512x512"}
    assert parsed["preferRelatedApplications"] is False


def test_page_without_a_head_tag_still_gets_the_manifest(
    live_server: Any, browser_context: Any
) -> None:
    server = live_server(sample_app())
    tools = Devtools(browser_context, server.url)
    tools.page.goto(server.url + "/minimal")
    result = tools.cdp.send("Page.getAppManifest")
    assert result["url"] == server.url + "/manifest.json" and result["errors"] == []
    mode = tools.page.evaluate("document.compatMode")
    assert mode == "CSS1Compat"  # the insertion did not push the page into quirks mode


def test_page_with_its_own_manifest_link_keeps_it(
    live_server: Any, browser_context: Any
) -> None:
    server = live_server(sample_app())
    tools = Devtools(browser_context, server.url)
    tools.page.goto(server.url + "/pwa")
    result = tools.cdp.send("Page.getAppManifest")
    assert result["url"] == server.url + "/static/own-manifest.json"


def test_under_a_url_prefix_the_scope_is_the_prefix(
    live_server: Any, browser_context: Any
) -> None:
    outer = Flask("outer")
    server = live_server(DispatcherMiddleware(outer, {"/shop": sample_app()}))
    tools = Devtools(browser_context, server.url)
    assert tools.ready_scope(server.url + "/shop/cart") == server.url + "/shop/"
    result = tools.cdp.send("Page.getAppManifest")
    assert result["url"] == server.url + "/shop/manifest.json" and result["errors"] == []
    tools.push(server.url + "/shop/", json.dumps({"title": "prefixed"}))
    assert tools.notifications(1) == ["prefixed"]


def test_control_a_changing_import_url_loses_pushes_after_a_restart(
    live_server: Any, browser_context: Any
) -> None:
    """The negative control for the restart test above (WEB-PUSH-RULES section 6): the same
    check fails for a worker whose importScripts URL changes between runs, as the seed's
    dated line does. It proves the restart test can tell the two apart."""
    app = Flask("control")
    worker = (
        "importScripts('/lib.js?t=' + Date.now());\n"
        "self.addEventListener('push', function (e) {\n"
        "  e.waitUntil(self.registration.showNotification(e.data.text()));\n"
        "});\n"
    )

    @app.get("/")
    def index() -> str:
        return ("<!doctype html><html><head><script>navigator.serviceWorker.register"
                "('/sw.js')</script></head><body></body></html>")

    @app.get("/sw.js")
    def sw() -> tuple[str, int, dict[str, str]]:
        return worker, 200, {"Content-Type": "text/javascript", "Cache-Control": "no-cache"}

    @app.get("/lib.js")
    def lib() -> tuple[str, int, dict[str, str]]:
        return "self.lib = 1;", 200, {"Content-Type": "text/javascript"}

    server = live_server(app)
    tools = Devtools(browser_context, server.url)
    assert tools.ready_scope(server.url + "/") == server.url + "/"
    tools.push(server.url + "/", "first")
    assert tools.notifications(1) == ["first"]
    tools.cdp.send("ServiceWorker.stopAllWorkers")
    tools.page.wait_for_timeout(200)
    tools.push(server.url + "/", "lost")
    assert tools.notifications(2, seconds=5) == ["first"]  # the restarted worker failed
