"""The browser client in a real Chromium (issue 3, item 5), against a real server and store.

Two stand-ins, both because of what these machines cannot do (TESTING.md):

* the MoEngage Web SDK (``tests/standins/moengage/moe_webSdk.min.latest.js``): the real one
  cannot be downloaded here and refuses to start under HeadlessChrome. The stand-in records
  every call in ``window.__moeCalls`` and fires the documented window events on demand.
* ``PushManager.prototype.subscribe`` / ``getSubscription``: a real ``subscribe()`` needs a
  push service on the network and fails here with AbortError. The stand-in (``PUSH_STANDIN``
  below) returns subscriptions made from keys this test generated, keeps the current one
  in localStorage across page loads, and, like Chromium, refuses with InvalidStateError a
  subscribe() under another applicationServerKey while a subscription exists.

Everything else is real: the generated client script, the service worker registration,
the JSON endpoints, signed user tokens and the SQLite store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.apps import page_app
from tests.conftest import STANDIN_SW_IMPORT
from tests.loadgen import key_pool, subscription_json
from webpush_kit.store import Store, opt_in_events, subscriptions
from webpush_kit.subscriptions import parse_subscription
from webpush_kit.vapid import VapidKey

pytestmark = pytest.mark.browser

SDK_PATH = "/_standin/moengage/moe_webSdk.min.latest.js"

PUSH_STANDIN = r"""
(function () {
  var POOL = %(pool)s;
  var log = window.__pushLog = [];
  function b64url(bytes) {
    var s = '';
    for (var i = 0; i < bytes.length; i++) s += String.fromCharCode(bytes[i]);
    return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function bytes(b64) {
    var s = b64.replace(/-/g, '+').replace(/_/g, '/');
    s += '===='.slice(0, (4 - s.length %% 4) %% 4);
    var raw = atob(s), out = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
    return out;
  }
  function keyText(key) {
    if (!key) return null;
    if (typeof key === 'string') return key;
    return b64url(new Uint8Array(key.buffer ? key.buffer : key));
  }
  function current() { return JSON.parse(localStorage.getItem('__standinSub') || 'null'); }
  function make(saved) {
    return {
      endpoint: saved.endpoint,
      expirationTime: null,
      options: { userVisibleOnly: true,
                 applicationServerKey: saved.serverKey ? bytes(saved.serverKey).buffer : null },
      getKey: function (name) { return bytes(saved.keys[name]).buffer; },
      toJSON: function () {
        return { endpoint: saved.endpoint, expirationTime: null,
                 keys: { p256dh: saved.keys.p256dh, auth: saved.keys.auth } };
      },
      unsubscribe: function () {
        log.push(['unsubscribe', saved.endpoint]);
        localStorage.removeItem('__standinSub');
        return Promise.resolve(true);
      }
    };
  }
  var SEED = %(seed)s;
  if (SEED && !localStorage.getItem('__standinSeeded')) {
    localStorage.setItem('__standinSeeded', '1');
    localStorage.setItem('__standinSub', JSON.stringify(SEED));
  }
  window.__standinSeed = function (sub, serverKey) {
    localStorage.setItem('__standinSub', JSON.stringify(
      { endpoint: sub.endpoint, keys: sub.keys, serverKey: serverKey || null }));
  };
  PushManager.prototype.getSubscription = function () {
    var saved = current();
    return Promise.resolve(saved ? make(saved) : null);
  };
  PushManager.prototype.subscribe = function (options) {
    var key = keyText(options && options.applicationServerKey);
    log.push(['subscribe', { userVisibleOnly: options.userVisibleOnly,
                             applicationServerKey: key }]);
    var saved = current();
    if (saved && saved.serverKey !== key) {
      return Promise.reject(new DOMException('A subscription with a different ' +
        'applicationServerKey already exists.', 'InvalidStateError'));
    }
    if (!saved) {
      var next = Number(localStorage.getItem('__standinNext') || '0');
      localStorage.setItem('__standinNext', String(next + 1));
      var sub = POOL[next];
      saved = { endpoint: sub.endpoint, keys: sub.keys, serverKey: key };
      localStorage.setItem('__standinSub', JSON.stringify(saved));
    }
    return Promise.resolve(make(saved));
  };
})();
"""


@pytest.fixture(scope="module")
def pool() -> list[tuple[str, str]]:
    return key_pool(8)


@pytest.fixture
def subs(pool: list[tuple[str, str]]) -> list[dict[str, Any]]:
    salt = str(time.monotonic_ns())[-8:]
    return [subscription_json(i, salt, pool) for i in range(6)]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'browser.db'}"


@pytest.fixture
def db(db_url: str) -> Iterator[Store]:
    store = Store(db_url)
    store.counts()  # creates the tables, so the test can read them at any time
    yield store
    store.dispose()


class Browser:
    """A page of the test site with the push stand-in and a log of API answers."""

    def __init__(
        self,
        context: Any,
        base: str,
        pool: list[dict[str, Any]],
        seed: dict[str, Any] | None = None,
        seed_key: str | None = None,
    ) -> None:
        """``seed``: the subscription this browser already has when the test starts (made
        on an earlier visit), with the applicationServerKey ``seed_key``."""
        self.base = base
        self.context = context
        saved = None if seed is None else {
            "endpoint": seed["endpoint"], "keys": seed["keys"], "serverKey": seed_key}
        context.add_init_script(PUSH_STANDIN % {"pool": json.dumps(pool),
                                                "seed": json.dumps(saved)})
        self.page = context.new_page()
        self.answers: list[tuple[str, int, Any]] = []
        self.requests: list[str] = []
        self.page.on("request", lambda r: self.requests.append(f"{r.method} {r.url}"))
        self.page.on("response", self._on_response)

    def _on_response(self, response: Any) -> None:
        if "/webpush-kit/api/" in response.url and response.request.method != "GET":
            try:
                body = response.json()
            except Exception:  # reported as None
                body = None
            self.answers.append((response.url.rsplit("/api/", 1)[1], response.status, body))

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path)

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def ready(self) -> None:
        self.js("() => webpushKit.ready.then(() => true)")

    def moe_calls(self) -> list[dict[str, Any]]:
        calls: list[dict[str, Any]] = self.js("() => window.__moeCalls || []")
        return calls

    def wait_for(self, condition: Callable[[], Any], what: str, timeout_ms: int = 8000) -> Any:
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; answers: {self.answers}")
            self.page.wait_for_timeout(100)


def rows(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            sa.select(subscriptions).order_by(subscriptions.c.id))]


def events(store: Store) -> list[dict[str, Any]]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            sa.select(opt_in_events).order_by(opt_in_events.c.id))]


def moengage_app(db_url: str, **extra: Any) -> Any:
    return page_app(
        moengage_app_id="APPID1234",
        moengage_debug=True,
        moengage_data_center="dc_2",
        moengage_sw_import=STANDIN_SW_IMPORT,
        database_url=db_url,
        **extra,
    )


# --- MoEngage mode ---------------------------------------------------------------------


def test_sdk_loaded_with_the_settings_and_opt_in_events_posted_for_the_user(
    live_server: Any, browser_context: Any, db: Store, db_url: str, subs: list[dict[str, Any]]
) -> None:
    server = live_server(moengage_app(db_url))
    b = Browser(browser_context, server.url, subs)
    b.goto("/page?user=alice")
    b.ready()
    # The SDK comes from the sibling of the worker's import, initialised as the current
    # snippet does it: appId, env TEST (debug), logLevel, the data centre as cluster.
    assert b.js(f"() => !!document.querySelector('script[src=\"{SDK_PATH}\"]')")
    calls = b.moe_calls()
    assert calls[0] == {"name": "moe", "args": [
        {"appId": "APPID1234", "env": "TEST", "logLevel": 2, "cluster": "DC_2"}]}
    assert b.js("() => window.moengage_object") == "Moengage"
    assert b.js("() => Moengage === window.Moengage && typeof Moengage.device.getUuid")\
        == "function"
    uuid = b.js("() => Moengage.device.getUuid()")

    # What the SDK reports while it asks: one prompt is reported on several channels.
    b.js("sub => window.__standinSeed(sub)", subs[0])
    b.js("""sub => {
        __moeFire('MOE_LIFECYCLE', {name: 'SOFT_ASK_SHOWN'});
        __moeFire('MOE_OPT_IN', 'soft_ask_allowed');
        __moeFire('MOE_LIFECYCLE', {name: 'HARD_ASK_SHOWN'});
        __moeFire('MOE_OPT_IN', 'opt_in_shown');
        __moeFire('MOE_AUTOMATED_EVENTS', {name: 'MOE_OPT_IN_SHOWN', data: {}});
        __moeFire('MOE_LIFECYCLE', {name: 'HARD_ASK_ALLOWED', data: {
            token: sub.endpoint.split('/').pop(), endpoint: sub.endpoint, keys: sub.keys,
            expirationTime: null}});
        __moeFire('MOE_AUTOMATED_EVENTS', {name: 'MOE_USER_SUBSCRIBED',
                                           data: {MOE_WEB_PUSH_TOKEN: 'x'}});
        __moeFire('MOE_AUTOMATED_EVENTS', {name: 'MOE_PAGE_VIEWED', data: {}});
    }""", subs[0])
    b.wait_for(lambda: len(events(db)) >= 5, "the opt-in events")
    b.js("() => webpushKit.flush()")
    b.page.wait_for_timeout(300)

    [row] = rows(db)
    assert row["endpoint"] == subs[0]["endpoint"]
    assert row["p256dh"] == subs[0]["keys"]["p256dh"]
    assert (row["user_id"], row["anonymous_id"], row["status"]) == ("alice", uuid, "active")
    got = sorted((e["type"], e["user_id"], e["anonymous_id"]) for e in events(db))
    assert got == sorted((t, "alice", uuid) for t in (
        "soft_ask_shown", "soft_ask_allowed", "prompt_shown", "prompt_allowed", "subscribed"))
    subscribed = next(e for e in events(db) if e["type"] == "subscribed")
    assert subscribed["subscription_id"] == row["id"]
    assert json.loads(subscribed["detail"]) == {"name": "MOE_USER_SUBSCRIBED",
                                                "source": "MOE_AUTOMATED_EVENTS"}
    assert all(status < 300 for _, status, _ in b.answers), b.answers


def test_legacy_mode_initialises_the_sdk_the_way_the_older_snippet_does(
    live_server: Any, browser_context: Any, db_url: str, subs: list[dict[str, Any]]
) -> None:
    # The seed's legacy worker import (/webpush/ on the CDN); the SDK itself is pointed
    # at the stand-in, since the CDN is out of reach.
    server = live_server(page_app(moengage_app_id="APPID1234", moengage_debug=False,
                                  moengage_sw_import="legacy", moengage_sdk_url=SDK_PATH,
                                  database_url=db_url))
    b = Browser(browser_context, server.url, subs)
    b.goto("/page")
    b.wait_for(lambda: b.moe_calls(), "the SDK")
    assert b.moe_calls()[0] == {"name": "moe", "args": [
        {"app_id": "APPID1234", "debug_logs": 0, "cluster": "DC_1"}]}


def test_every_page_load_resyncs_the_current_subscription(
    live_server: Any, browser_context: Any, db: Store, db_url: str, subs: list[dict[str, Any]]
) -> None:
    server = live_server(moengage_app(db_url))
    b = Browser(browser_context, server.url, subs)
    b.goto("/page")
    b.ready()
    assert rows(db) == []  # not subscribed: nothing posted
    # Subscribed on an earlier visit (pushsubscriptionchange never fires in Chrome): the
    # next page load posts it, anonymously, then a page for bob links it to bob.
    b.js("sub => window.__standinSeed(sub)", subs[1])
    b.goto("/page")
    b.ready()
    b.wait_for(lambda: rows(db), "the re-synced subscription")
    assert rows(db)[0]["user_id"] is None
    b.goto("/page?user=bob")
    b.ready()
    b.wait_for(lambda: rows(db)[0]["user_id"] == "bob", "the link to bob")
    assert len(rows(db)) == 1


def test_identify_maps_traits_like_segment_and_reset_logs_out_everywhere(
    live_server: Any, browser_context: Any, db: Store, db_url: str, subs: list[dict[str, Any]]
) -> None:
    server = live_server(moengage_app(db_url))
    b = Browser(browser_context, server.url, subs, seed=subs[2])
    b.goto("/page?user=carol")
    b.ready()
    anonymous = b.js("() => Moengage.device.getUuid()")
    b.wait_for(lambda: rows(db), "the re-synced subscription")
    answer = b.js("""() => webpushKit.identify('carol', {
        id: 7, firstName: 'Carol', lastName: 'King', email: 'carol@example.com',
        phone: '+15550100', name: 'Carol King', username: 'ck', gender: 'female',
        birthday: '1990-05-01', plan: 'pro', empty: null, gone: undefined})""")
    assert answer == {"linked": True}
    calls = [c for c in b.moe_calls() if c["name"] != "moe"]
    assert calls == [
        {"name": "add_unique_user_id", "args": ["carol"]},
        {"name": "add_first_name", "args": ["Carol"]},
        {"name": "add_last_name", "args": ["King"]},
        {"name": "add_email", "args": ["carol@example.com"]},
        {"name": "add_mobile", "args": ["+15550100"]},
        {"name": "add_user_name", "args": ["Carol King"]},
        {"name": "add_user_attribute", "args": ["username", "ck"]},
        {"name": "add_gender", "args": ["female"]},
        {"name": "add_birthday", "args": [{"date": "1990-05-01T00:00:00.000Z"}]},
        {"name": "add_user_attribute", "args": ["plan", "pro"]},
    ]
    [row] = rows(db)
    assert (row["user_id"], row["anonymous_id"]) == ("carol", anonymous)
    assert [e["type"] for e in events(db)] == ["identified"]

    b.js("() => webpushKit.track('Added to cart', {sku: 'grinder'})")
    assert b.moe_calls()[-1] == {"name": "track_event",
                                 "args": ["Added to cart", {"sku": "grinder"}]}

    b.js("() => webpushKit.reset()")
    assert any(c["name"] == "destroy_session" for c in b.moe_calls())
    row = rows(db)[0]
    assert row["user_id"] is None and row["status"] == "active"  # the subscription stays
    reset = [e for e in events(db) if e["type"] == "reset"]
    assert len(reset) == 1 and reset[0]["user_id"] == "carol"
    # After the reset the browser is someone new: the SDK's new device id.
    new_uuid = b.js("() => Moengage.device.getUuid()")
    assert new_uuid != anonymous
    b.wait_for(lambda: rows(db)[0]["anonymous_id"] == new_uuid, "the re-sync as someone new")
    assert rows(db)[0]["user_id"] is None


def _identify_bodies(b: Browser) -> list[dict[str, Any]]:
    """Collects the bodies the page posts to /identify."""
    bodies: list[dict[str, Any]] = []

    def on_request(request: Any) -> None:
        if request.url.endswith("/webpush-kit/api/identify"):
            bodies.append(json.loads(request.post_data))

    b.page.on("request", on_request)
    return bodies


def test_identify_presents_this_browsers_subscription_and_links_only_it(
    live_server: Any, browser_context: Any, db: Store, db_url: str, subs: list[dict[str, Any]]
) -> None:
    # The server links only a subscription the request presents (never by anonymous id),
    # so identify() must send the browser's current one. The page was rendered logged
    # out (its re-sync is anonymous), then the session logs in: only identify can link.
    who: dict[str, str | None] = {"id": None}
    server = live_server(moengage_app(db_url, user_id_loader=lambda: who["id"]))
    b = Browser(browser_context, server.url, subs, seed=subs[0])
    bodies = _identify_bodies(b)
    b.goto("/page")
    b.ready()
    anonymous = b.js("() => Moengage.device.getUuid()")
    b.wait_for(lambda: rows(db), "the anonymous re-sync")
    assert (rows(db)[0]["user_id"], rows(db)[0]["anonymous_id"]) == (None, anonymous)
    # Another subscription stored under the same anonymous id is not this browser's.
    db.save_subscription(parse_subscription(subs[1]), user_id=None, anonymous_id=anonymous)
    who["id"] = "hana"
    assert b.js("() => webpushKit.identify('hana', {})") == {"linked": True}
    [body] = bodies
    assert body["subscription"] == {"endpoint": subs[0]["endpoint"], "expirationTime": None,
                                    "keys": subs[0]["keys"]}
    assert body["anonymous_id"] == anonymous
    assert [(r["endpoint"], r["user_id"]) for r in rows(db)] == [
        (subs[0]["endpoint"], "hana"), (subs[1]["endpoint"], None)]
    [event] = events(db)
    assert (event["type"], event["user_id"], event["anonymous_id"], event["subscription_id"]) \
        == ("identified", "hana", anonymous, rows(db)[0]["id"])


def test_identify_falls_back_to_the_subscription_the_sdk_reported(
    live_server: Any, browser_context: Any, db: Store, db_url: str, subs: list[dict[str, Any]]
) -> None:
    # When the push manager does not answer in time (a worker still installing, a page
    # outside its scope), identify() presents the subscription the SDK reported instead.
    who: dict[str, str | None] = {"id": None}
    server = live_server(moengage_app(db_url, user_id_loader=lambda: who["id"]))
    b = Browser(browser_context, server.url, subs)
    browser_context.add_init_script(
        "PushManager.prototype.getSubscription = () => new Promise(() => {});")
    bodies = _identify_bodies(b)
    b.goto("/page")
    b.ready()
    b.js("""sub => __moeFire('MOE_LIFECYCLE', {name: 'HARD_ASK_ALLOWED', data: {
        token: sub.endpoint.split('/').pop(), endpoint: sub.endpoint, keys: sub.keys,
        expirationTime: null}})""", subs[2])
    b.wait_for(lambda: rows(db), "the SDK's subscription")
    assert rows(db)[0]["user_id"] is None
    who["id"] = "ines"
    assert b.js("() => webpushKit.identify('ines', {})") == {"linked": True}
    [body] = bodies
    assert body["subscription"]["endpoint"] == subs[2]["endpoint"]
    [row] = rows(db)
    assert (row["endpoint"], row["user_id"]) == (subs[2]["endpoint"], "ines")


SEGMENT_STUB = """
window.analytics = (function () {
  var handlers = {}, log = window.__segmentLog = [];
  return {
    ready: function (cb) { setTimeout(cb, 0); },
    on: function (name, fn) { handlers[name] = fn; },
    identify: function (id, traits) { log.push(['identify', id]);
                                      if (handlers.identify) handlers.identify(id, traits, {}); },
    reset: function () { log.push(['reset']); },
    user: function () { return { anonymousId: function () { return 'seg-anon-1'; } }; }
  };
})();
"""


def test_segment_identify_and_reset_drive_the_client(
    live_server: Any, browser_context: Any, db: Store, db_url: str, subs: list[dict[str, Any]]
) -> None:
    server = live_server(moengage_app(db_url))
    browser_context.add_init_script(SEGMENT_STUB)
    b = Browser(browser_context, server.url, subs, seed=subs[3])
    b.goto("/page?user=dana")
    b.ready()
    b.page.wait_for_timeout(100)
    b.js("() => analytics.identify('dana', {firstName: 'Dana'})")
    b.wait_for(lambda: any(e["type"] == "identified" for e in events(db)), "identify")
    names = [c["name"] for c in b.moe_calls()]
    assert names[names.index("add_unique_user_id"):] == ["add_unique_user_id", "add_first_name"]
    assert rows(db)[0]["user_id"] == "dana"
    b.js("() => analytics.reset()")
    assert b.js("() => window.__segmentLog") == [["identify", "dana"], ["reset"]]
    b.wait_for(lambda: any(e["type"] == "reset" for e in events(db)), "reset")
    assert "destroy_session" in [c["name"] for c in b.moe_calls()]
    assert rows(db)[0]["user_id"] is None


def test_a_forged_user_token_is_refused_and_nothing_is_stored(
    live_server: Any, browser_context: Any, db: Store, db_url: str, subs: list[dict[str, Any]]
) -> None:
    server = live_server(moengage_app(db_url))
    b = Browser(browser_context, server.url, subs, seed=subs[4])
    b.goto("/page?user=alice&forge=1")
    b.ready()
    b.wait_for(lambda: b.answers, "the re-sync answer")
    assert b.answers[0][:2] == ("subscription", 403)
    assert b.answers[0][2]["error"]["code"] == "forged_user_token"
    result = b.js("""() => webpushKit.identify('alice', {}).then(
        () => 'accepted', e => e.status + ' ' + e.code)""")
    assert result == "403 forged_user_token"
    assert (rows(db) == [] and events(db) == [])


# --- self-hosted mode ------------------------------------------------------------------


def test_self_hosted_subscribe_stores_the_subscription_with_the_server_key(
    live_server: Any, browser_context: Any, db: Store, db_url: str, subs: list[dict[str, Any]]
) -> None:
    key = VapidKey.generate()
    server = live_server(page_app(vapid_private_key=key.private_raw_b64(),
                                  vapid_subject="mailto:push@example.com", database_url=db_url))
    browser_context.grant_permissions(["notifications"], origin=server.url)
    browser_context.add_init_script(SEGMENT_STUB)  # no MoEngage: Segment's anonymousId
    b = Browser(browser_context, server.url, subs)
    b.goto("/page?user=erin")
    b.ready()
    b.page.click("#subscribe")  # a user gesture, as Safari and Firefox require
    result = b.wait_for(lambda: b.js("() => window.__subscribeResult"), "subscribe()")
    assert result == {"ok": True, "result": {"status": "active", "created": True,
                                              "linked": True}}
    assert b.js("() => window.__pushLog") == [
        ["subscribe", {"userVisibleOnly": True, "applicationServerKey": key.public_key_b64}]]
    [row] = rows(db)
    assert (row["endpoint"], row["user_id"], row["vapid_key"], row["anonymous_id"]) == (
        subs[0]["endpoint"], "erin", key.public_key_b64, "seg-anon-1")
    b.js("() => webpushKit.flush()")
    b.wait_for(lambda: events(db), "the subscribed event")
    [event] = events(db)
    assert (event["type"], event["subscription_id"], event["user_id"]) == (
        "subscribed", row["id"], "erin")

    b.js("() => webpushKit.unsubscribe()")
    assert rows(db)[0]["status"] == "unsubscribed"
    assert b.js("() => window.__pushLog")[-1] == ["unsubscribe", subs[0]["endpoint"]]


def test_self_hosted_resubscribes_after_the_server_key_changed(
    live_server: Any, browser_context: Any, db: Store, db_url: str, subs: list[dict[str, Any]]
) -> None:
    old_key, key = VapidKey.generate(), VapidKey.generate()
    server = live_server(page_app(vapid_private_key=key.private_raw_b64(),
                                  vapid_subject="mailto:push@example.com", database_url=db_url))
    browser_context.grant_permissions(["notifications"], origin=server.url)
    # Subscribed under the site's previous key: a plain re-subscribe would throw
    # InvalidStateError; the client unsubscribes first and names the old endpoint.
    b = Browser(browser_context, server.url, subs[1:], seed=subs[0],
                seed_key=old_key.public_key_b64)
    db.save_subscription(parse_subscription(subs[0]), user_id="frank", anonymous_id=None,
                         vapid_key=old_key.public_key_b64)
    b.goto("/page?user=frank")
    b.ready()
    b.wait_for(lambda: len(rows(db)) == 2, "the new subscription")
    log = b.js("() => window.__pushLog")
    assert log == [["unsubscribe", subs[0]["endpoint"]],
                   ["subscribe", {"userVisibleOnly": True,
                                  "applicationServerKey": key.public_key_b64}]]
    old, new = rows(db)
    assert (old["endpoint"], old["status"]) == (subs[0]["endpoint"], "unsubscribed")
    # Neither MoEngage nor Segment on the page: a random id kept in localStorage.
    assert new["anonymous_id"] == b.js("() => localStorage.getItem('webpushKit.anonymousId')")
    assert len(new["anonymous_id"]) == 36
    assert (new["endpoint"], new["vapid_key"], new["user_id"], new["status"]) == (
        subs[1]["endpoint"], key.public_key_b64, "frank", "active")


# --- consent ---------------------------------------------------------------------------


def test_consent_gate_holds_everything_until_consent(
    live_server: Any, browser_context: Any, db: Store, db_url: str, subs: list[dict[str, Any]]
) -> None:
    server = live_server(moengage_app(db_url, consent_required=True))
    b = Browser(browser_context, server.url, subs, seed=subs[5])
    b.goto("/page?user=gina")
    b.page.wait_for_timeout(1500)
    b.js("() => { webpushKit.track('early', {}); return true; }")  # queued, not sent
    assert not any(SDK_PATH in r for r in b.requests)
    assert not any("/webpush-kit/api/" in r for r in b.requests)
    assert b.js("() => window.__moeCalls === undefined && window.moe === undefined")
    assert b.js("() => navigator.serviceWorker.getRegistrations().then(r => r.length)") == 0
    assert b.js("""() => Promise.race([webpushKit.ready.then(() => 'ready'),
                                       new Promise(r => setTimeout(() => r('waiting'), 300))])
                """) == "waiting"
    assert rows(db) == []

    b.js("() => webpushKit.consent(true)")
    b.wait_for(lambda: rows(db), "the first post after consent")
    assert rows(db)[0]["user_id"] == "gina"
    assert any(SDK_PATH in r for r in b.requests)
    assert {"name": "track_event", "args": ["early", {}]} in b.moe_calls()

    # The answer is remembered: the next page starts at once.
    b.goto("/page?user=gina")
    b.ready()
    assert b.moe_calls()[0]["name"] == "moe"
    b.js("() => webpushKit.consent(false)")
    b.goto("/page?user=gina")
    b.page.wait_for_timeout(500)
    assert b.js("() => window.__moeCalls === undefined")


# --- the sample site: session login, user_id_loader ------------------------------------


def test_sample_site_login_identifies_and_logout_resets(
    live_server: Any, browser_context: Any, tmp_path: Path, subs: list[dict[str, Any]]
) -> None:
    from sample_site import create_app
    from tests.conftest import standin_blueprint

    instance = tmp_path / "instance"
    app = create_app({"WEBPUSH_MOENGAGE_SW_IMPORT": STANDIN_SW_IMPORT,
                      "SAMPLE_INSTANCE_PATH": str(instance)})
    app.register_blueprint(standin_blueprint())
    server = live_server(app)
    db = Store.for_sqlite_path(instance / "webpush_kit.sqlite3")
    db.counts()
    try:
        b = Browser(browser_context, server.url, subs, seed=subs[0])
        b.goto("/")
        b.ready()
        b.wait_for(lambda: rows(db), "the anonymous re-sync")
        assert rows(db)[0]["user_id"] is None

        b.goto("/login")
        b.page.click("button[value=alice]")
        b.page.wait_for_url(server.url + "/")
        b.ready()
        b.wait_for(lambda: any(e["type"] == "identified" for e in events(db)), "identify")
        calls = [c for c in b.moe_calls() if c["name"] != "moe"]
        assert calls[0] == {"name": "add_unique_user_id", "args": ["alice"]}
        # (the page's JSON has its keys sorted: the trait calls follow that order)
        assert sorted(calls[1:], key=json.dumps) == sorted([
            {"name": "add_first_name", "args": ["Alice"]},
            {"name": "add_last_name", "args": ["Liddell"]},
            {"name": "add_email", "args": ["alice@example.com"]},
            {"name": "add_user_attribute", "args": ["plan", "espresso-club"]},
        ], key=json.dumps)
        assert rows(db)[0]["user_id"] == "alice"  # from the session, not from the page

        b.page.click("#logout")
        b.page.wait_for_url(server.url + "/")
        b.ready()
        b.wait_for(lambda: any(e["type"] == "reset" for e in events(db)), "reset")
        assert "destroy_session" in [c["name"] for c in b.moe_calls()]
        assert rows(db)[0]["user_id"] is None
        assert [e["user_id"] for e in events(db) if e["type"] == "reset"] == ["alice"]

        # The admin page lists it, for the admin demo user only.
        assert b.page.goto(server.url + "/admin").status == 403
        b.goto("/login")
        b.page.click("button[value=ops]")
        b.page.wait_for_url(server.url + "/")
        b.wait_for(lambda: len([e for e in events(db) if e["type"] == "identified"]) == 2,
                   "the second identify")
        b.goto("/admin")
        text = b.page.inner_text("#subscriptions")
        assert "fcm.googleapis.com/..." in text and subs[0]["endpoint"] not in text
        funnel = b.page.inner_text("#funnel")
        assert "identified\t2" in funnel and "reset\t1" in funnel  # alice and ops
    finally:
        db.dispose()
