"""The self-hosted part of the service worker in a real Chromium (issue 4, item 5).

Pushes are delivered through CDP (``ServiceWorker.deliverPushMessage``) to the worker the
extension serves, and ``registration.getNotifications()`` shows what it displayed. Every
push must show exactly one notification (Safari revokes the permission of a site whose
push shows none; two for one push is a bug), with and without the MoEngage import line:

* without it, our handler shows every push, parsing the payload defensively;
* with it (pointed at the local stand-in, tests/standins/moengage, since the CDN is
  unreachable here), the stand-in shows MoEngage's pushes and ignores ours, and our
  handler ignores every push without the ``webpush_kit`` marker.

Two events cannot be fired for real in headless Chromium, so those tests dispatch them
synthetically inside the real worker, and stub only what the browser gates:

* ``notificationclick``: CDP has no way to click a notification. A synthetic
  ``NotificationEvent`` reaches our handler, but ``clients.openWindow()`` and
  ``WindowClient.focus()`` then reject ("InvalidAccessError: Not allowed to open a
  window": window interaction is only allowed while the browser dispatches a real click),
  and ``waitUntil`` throws on an untrusted event. So the test records what the handler
  asks ``openWindow``/``focus`` to do; ``matchAll`` and the notification are real.
* ``pushsubscriptionchange``: Chromium never fires it (WEB-PUSH-RULES 3.6), and
  ``pushManager.subscribe()`` fails here (no push service; TESTING.md). The test replaces
  ``subscribe`` with a stand-in that returns a subscription made from keys the test
  generated; the handler's real ``fetch`` calls go to the real server, whose store is
  then checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.conftest import STANDIN_SW_IMPORT, standin_blueprint
from tests.pushservice import Recipient
from tests.test_browser import Devtools
from webpush_kit.flask import WebPushKit
from webpush_kit.messages import Notification
from webpush_kit.subscriptions import Subscription
from webpush_kit.vapid import VapidKey

pytestmark = pytest.mark.browser

SUBJECT = "mailto:webpush-demo@example.com"
SITE_NAME = "Push Test Shop"
PAGE = ("<!doctype html><html><head><meta charset=utf-8><title>{title}</title><script>"
        "navigator.serviceWorker.register('/serviceworker.js')</script></head>"
        "<body><h1>{title}</h1></body></html>")


def push_app(instance: Path, *, moengage: bool) -> tuple[Flask, VapidKey]:
    """A self-hosted site; with ``moengage`` its worker also imports the MoEngage stand-in."""
    key = VapidKey.generate()
    app = Flask("sw_push_test", instance_path=str(instance))
    options: dict[str, Any] = {
        "vapid_private_key": key.private_raw_b64(),
        "vapid_subject": SUBJECT,
        "manifest_name": SITE_NAME,
        "inject_head": False,  # the page registers the worker itself: only the worker is tested
    }
    if moengage:
        options.update(moengage_app_id="XXXXXXXXXXX", moengage_sw_import=STANDIN_SW_IMPORT)
    WebPushKit(app, **options)
    app.register_blueprint(standin_blueprint())

    @app.get("/")
    def index() -> str:
        return PAGE.format(title="home")

    @app.get("/orders/<int:n>")
    def order(n: int) -> str:
        return PAGE.format(title=f"order {n}")

    return app, key


class Worker:
    """A page on the site, its registration and CDP, and the worker's notifications."""

    def __init__(self, context: Any, server: Any) -> None:
        self.context = context
        self.tools = Devtools(context, server.url)
        self.scope = self.tools.ready_scope(server.url + "/")
        # Also wait until the worker has claimed the page (its activate handler finished):
        # on a loaded machine a push delivered earlier was seen to be dropped.
        self.tools.page.evaluate("""navigator.serviceWorker.controller ? true :
            new Promise(resolve => navigator.serviceWorker.addEventListener(
                'controllerchange', () => resolve(true)))""")

    def push(self, data: str) -> None:
        self.tools.push(self.scope, data)

    def shown(self, expected: int) -> list[dict[str, Any]]:
        """The notifications shown, once ``expected`` appeared, after a pause long enough
        for a second handler's notification to appear too (so "exactly one" means it)."""
        self.tools.notifications(expected)
        self.tools.page.wait_for_timeout(400)
        shown: list[dict[str, Any]] = self.tools.page.evaluate(
            """navigator.serviceWorker.ready.then(r => r.getNotifications()).then(ns =>
                 ns.map(n => ({title: n.title, body: n.body, tag: n.tag, data: n.data,
                               requireInteraction: n.requireInteraction})))""")
        return shown

    def clear(self) -> None:
        self.tools.page.evaluate("""navigator.serviceWorker.ready.then(r => r.getNotifications())
            .then(ns => ns.forEach(n => n.close()))""")

    def service_worker(self) -> Any:
        for worker in self.context.service_workers:
            if worker.url.endswith("/serviceworker.js"):
                return worker
        return self.context.wait_for_event("serviceworker")


@pytest.fixture
def site(tmp_path: Path, live_server: Any, browser_context: Any, request: Any) -> Any:
    moengage = bool(getattr(request, "param", False))
    app, key = push_app(tmp_path, moengage=moengage)
    server = live_server(app)
    worker = Worker(browser_context, server)
    worker.app, worker.key, worker.url = app, key, server.url  # type: ignore[attr-defined]
    return worker


OURS = Notification(
    title="Grüße aus Köln 🎉",
    body="日本語 ✓ — emoji 👍🏽👨‍👩‍👧",
    url="/orders/42",
    tag="order-42",
    require_interaction=True,
)

# payload -> (title, body) our handler shows when it is the only handler
DEFENSIVE = {
    "empty": ("", SITE_NAME, ""),
    "not JSON": ("plain text ✓ 🚀", SITE_NAME, "plain text ✓ 🚀"),
    "JSON without title": (json.dumps({"body": "no title here"}), SITE_NAME, "no title here"),
    "JSON array": ("[1, 2]", SITE_NAME, "[1, 2]"),
}


@pytest.mark.parametrize("site", [False, True], indirect=True, ids=["alone", "with-moengage"])
def test_our_notification_shows_once_with_every_member(site: Any) -> None:
    site.push(OURS.to_payload().decode("utf-8"))
    shown = site.shown(1)
    assert len(shown) == 1, shown
    n = shown[0]
    assert (n["title"], n["body"], n["tag"]) == (OURS.title, OURS.body, OURS.tag)
    assert n["requireInteraction"] is True
    assert n["data"]["url"] == site.url + "/orders/42"
    assert n["data"]["webpush_kit"] == 1


@pytest.mark.parametrize("name", sorted(DEFENSIVE))
def test_alone_every_push_shows_exactly_one_notification(site: Any, name: str) -> None:
    payload, title, body = DEFENSIVE[name]
    site.push(payload)
    shown = site.shown(1)
    assert [(n["title"], n["body"]) for n in shown] == [(title, body)]


@pytest.mark.parametrize("site", [True], indirect=True, ids=["with-moengage"])
@pytest.mark.parametrize("name", [*sorted(DEFENSIVE), "MoEngage JSON"])
def test_with_moengage_pushes_not_ours_are_left_to_moengage(site: Any, name: str) -> None:
    payload = DEFENSIVE[name][0] if name in DEFENSIVE else json.dumps(
        {"title": "From MoEngage", "body": "campaign"})
    site.push(payload)
    shown = site.shown(1)
    assert len(shown) == 1, shown
    # The stand-in's notification (it marks its data), never ours.
    assert shown[0]["data"] == {"moengage": True}
    if name == "MoEngage JSON":
        assert shown[0]["title"] == "From MoEngage"


@pytest.mark.parametrize("site", [False, True], indirect=True, ids=["alone", "with-moengage"])
def test_after_the_worker_is_stopped_the_next_push_still_shows(site: Any) -> None:
    site.push(Notification(title="first").to_payload().decode())
    assert [n["title"] for n in site.shown(1)] == ["first"]
    site.tools.cdp.send("ServiceWorker.stopAllWorkers")
    site.tools.page.wait_for_timeout(200)
    site.push(Notification(title="after restart").to_payload().decode())
    assert sorted(n["title"] for n in site.shown(2)) == ["after restart", "first"]


# --- notificationclick ----------------------------------------------------------------

CLICK = """async (which) => {
  // Record what the handler asks for: a synthetic click may not open or focus windows.
  const calls = [];
  self.clients.openWindow = (url) => { calls.push(['open', url]); return Promise.resolve(null); };
  WindowClient.prototype.focus = function () {
    calls.push(['focus', this.url]); return Promise.resolve(this);
  };
  const ns = await self.registration.getNotifications();
  const notification = ns.find(n => n.title === which);
  const event = new NotificationEvent('notificationclick', {notification});
  let wait = null;
  event.waitUntil = (p) => { wait = p; };  // waitUntil throws on an untrusted event
  self.dispatchEvent(event);
  if (wait) await wait;
  const left = (await self.registration.getNotifications()).map(n => n.title);
  return {calls, left};
}"""


def test_click_opens_the_url_when_no_window_shows_it(site: Any) -> None:
    site.push(OURS.to_payload().decode())
    site.shown(1)
    result = site.service_worker().evaluate(CLICK, OURS.title)
    assert result["calls"] == [["open", site.url + "/orders/42"]]
    assert result["left"] == []  # the handler closed the notification


def test_click_focuses_a_window_already_showing_the_url(site: Any) -> None:
    other = site.context.new_page()
    other.goto(site.url + "/orders/42")
    other.evaluate("navigator.serviceWorker.ready")
    site.push(OURS.to_payload().decode())
    site.shown(1)
    result = site.service_worker().evaluate(CLICK, OURS.title)
    assert result["calls"] == [["focus", site.url + "/orders/42"]]


def test_click_without_url_goes_to_the_start_url(site: Any) -> None:
    site.push(Notification(title="no url").to_payload().decode())
    site.shown(1)
    # The test's page is at the start URL: it is focused (the handler compares absolute
    # URLs; a relative start URL never matched an open window before).
    result = site.service_worker().evaluate(CLICK, "no url")
    assert result["calls"] == [["focus", site.url + "/"]]
    site.tools.page.goto(site.url + "/orders/1")
    site.push(Notification(title="no url again").to_payload().decode())
    site.shown(1)
    result = site.service_worker().evaluate(CLICK, "no url again")
    assert result["calls"] == [["open", site.url + "/"]]


@pytest.mark.parametrize("site", [True], indirect=True, ids=["with-moengage"])
def test_click_on_a_moengage_notification_is_left_to_moengage(site: Any) -> None:
    site.push(json.dumps({"title": "From MoEngage"}))
    site.shown(1)
    result = site.service_worker().evaluate(CLICK, "From MoEngage")
    assert result["calls"] == [] and result["left"] == ["From MoEngage"]


# --- pushsubscriptionchange -----------------------------------------------------------

CHANGE = """async ({endpoint, p256dh, auth, old}) => {
  const asked = [];
  // Stand-in for pushManager.subscribe(), which cannot reach a push service here.
  self.registration.pushManager.subscribe = (options) => {
    asked.push({userVisibleOnly: options.userVisibleOnly,
                keyLength: options.applicationServerKey.byteLength});
    const key = new Uint8Array(options.applicationServerKey).buffer;
    return Promise.resolve({
      endpoint, options: {userVisibleOnly: true, applicationServerKey: key},
      toJSON: () => ({endpoint, expirationTime: null, keys: {p256dh, auth}}),
    });
  };
  const event = new ExtendableEvent('pushsubscriptionchange');
  if (old) Object.defineProperty(event, 'oldSubscription', {value: {endpoint: old}});
  let wait = null;
  event.waitUntil = (p) => { wait = p; };
  self.dispatchEvent(event);
  const response = await wait;
  return {asked, status: response.status, body: await response.json()};
}"""


def test_pushsubscriptionchange_resubscribes_and_reposts(site: Any) -> None:
    store = WebPushKit.store(site.app)
    old = Recipient.generate()
    old_endpoint = "https://fcm.googleapis.com/wp/old-subscription"
    store.save_subscription(Subscription(old_endpoint, old.p256dh, old.auth),
                           user_id=None, anonymous_id=None)
    new = Recipient.generate()
    endpoint = "https://fcm.googleapis.com/wp/new-subscription"
    result = site.service_worker().evaluate(CHANGE, {
        "endpoint": endpoint, "p256dh": new.p256dh, "auth": new.auth, "old": old_endpoint})
    # It subscribed with the server's key, fetched from the vapid-public-key endpoint.
    assert result["asked"] == [{"userVisibleOnly": True, "keyLength": 65}]
    assert result["status"] == 201 and result["body"]["created"] is True, result
    record = store.get(endpoint)
    assert record is not None and record.status == "active"
    assert (record.p256dh, record.auth) == (new.p256dh, new.auth)
    # The key it was made with is recorded, so a later key rotation is reported.
    assert record.vapid_key == site.key.public_key_b64
    old_record = store.get(old_endpoint)
    assert old_record is None or old_record.status != "active"
