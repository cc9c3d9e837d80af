"""The JSON endpoints (issue 3, items 3 and 4), on SQLite and on PostgreSQL.

Every bad request of the corpus below must get a 4xx JSON error with the expected code
and leave the database exactly as it was (every table compared row by row). The good
paths check the ownership rules: upsert, ownership transfer, the user_id_loader winning
over whatever the browser sends, a subscription linked at login only when the request
presents it (never by anonymous id: the attack regression below), reset.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from itsdangerous import TimestampSigner
from werkzeug.test import TestResponse

import webpush_kit.api as api_module
from tests.loadgen import key_pool, subscription_json
from webpush_kit.errors import ConfigError
from webpush_kit.flask import WebPushKit
from webpush_kit.identity import UserTokens
from webpush_kit.store import Store, metadata
from webpush_kit.subscriptions import b64url_decode, b64url_encode
from webpush_kit.vapid import VapidKey

pytest_plugins = ["tests.dbs"]

SECRET = "api-test-secret"
API = "/webpush-kit/api"
SUBJECT = "mailto:push@example.com"
POOL = key_pool(4)


def make_app(url: str, **options: Any) -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = SECRET
    WebPushKit(app, database_url=url, inject_head=False, **options)
    return app


@pytest.fixture
def app_factory(store_url: str) -> Iterator[Callable[..., Flask]]:
    apps: list[Flask] = []

    def make(**options: Any) -> Flask:
        app = make_app(store_url, **options)
        apps.append(app)
        return app

    yield make
    for app in apps:
        WebPushKit.store(app).dispose()


@pytest.fixture
def app(app_factory: Callable[..., Flask]) -> Flask:
    return app_factory()


def sub(i: int = 0, salt: str = "t") -> dict[str, Any]:
    return subscription_json(i, salt, POOL)


def tokens() -> UserTokens:
    return UserTokens(SECRET, 7 * 24 * 3600)


def expired_token(user_id: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real token for ``user_id``, signed eight days ago (the default max age is 7)."""
    with monkeypatch.context() as m:
        now = TimestampSigner.get_timestamp
        m.setattr(TimestampSigner, "get_timestamp", lambda self: now(self) - 8 * 86400)
        return tokens().sign(user_id)


def post(client: Any, path: str, body: Any, **headers: str) -> TestResponse:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers.setdefault("Content-Type", "application/json")
    return client.open(API + "/" + path, method="POST", data=data, headers=headers)


def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every webpush_kit table."""
    out = {}
    with store.engine.connect() as conn:
        for table in metadata.sorted_tables:
            order = list(table.primary_key.columns)
            out[table.name] = [tuple(r) for r in conn.execute(
                sa.select(table).order_by(*order))]
    return out


def rows(app: Flask) -> list[dict[str, Any]]:
    from webpush_kit.store import subscriptions

    with WebPushKit.store(app).engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            sa.select(subscriptions).order_by(subscriptions.c.id))]


def events(app: Flask) -> list[dict[str, Any]]:
    from webpush_kit.store import opt_in_events

    with WebPushKit.store(app).engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            sa.select(opt_in_events).order_by(opt_in_events.c.id))]


# --- the bad-input corpus --------------------------------------------------------------


@dataclass
class Ctx:
    """What a bad request is built from: a valid subscription and tokens."""

    good: dict[str, Any]
    valid_token: str
    forged_token: str
    expired_token: str
    max_body: int = 16384
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self, **changes: Any) -> dict[str, Any]:
        """A valid subscription post with ``changes`` (``None`` removes a member)."""
        body: dict[str, Any] = {"subscription": json.loads(json.dumps(self.good)),
                                "anonymous_id": "anon-1"}
        for key, value in changes.items():
            if value is None:
                body.pop(key, None)
            else:
                body[key] = value
        return body

    def sub(self, **changes: Any) -> dict[str, Any]:
        s = json.loads(json.dumps(self.good))
        for key, value in changes.items():
            if key in ("p256dh", "auth"):
                s["keys"][key] = value
            elif value is None:
                s.pop(key, None)
            else:
                s[key] = value
        return {"subscription": s}


@dataclass
class Bad:
    name: str
    build: Callable[[Ctx], dict[str, Any]]  # {path, body, headers?, method?}
    status: int
    code: str


def _p256dh_variant(ctx: Ctx, kind: str) -> str:
    raw = b64url_decode(ctx.good["keys"]["p256dh"])
    if kind == "off_curve":
        return b64url_encode(raw[:-1] + bytes([raw[-1] ^ 1]))
    if kind == "compressed":
        return b64url_encode(bytes([2 + (raw[-1] & 1)]) + raw[1:33])
    if kind == "short":
        return b64url_encode(raw[:64])
    if kind == "std_base64":
        text = ctx.good["keys"]["p256dh"]
        return text[:10] + "+/" + text[12:]
    raise AssertionError(kind)


def S(name: str, status: int, code: str, **changes: Any) -> Bad:
    """A /subscription post whose subscription has ``changes``."""
    return Bad(name, lambda c: {"path": "subscription", "body": {**c.body(), **c.sub(**{
        k: (v(c) if callable(v) else v) for k, v in changes.items()})}}, status, code)


def B(name: str, status: int, code: str, **changes: Any) -> Bad:
    """A /subscription post whose body members have ``changes``."""
    return Bad(name, lambda c: {"path": "subscription", "body": c.body(**{
        k: (v(c) if callable(v) else v) for k, v in changes.items()})}, status, code)


def E(name: str, status: int, code: str, events: Any, **extra: Any) -> Bad:
    """An /events post."""
    return Bad(name, lambda c: {"path": "events", "body": {
        "events": events(c) if callable(events) else events, "anonymous_id": "anon-1",
        **{k: (v(c) if callable(v) else v) for k, v in extra.items()}}}, status, code)


def R(name: str, status: int, code: str, **request: Any) -> Bad:
    """A raw request."""
    return Bad(name, lambda c: {k: (v(c) if callable(v) else v) for k, v in request.items()},
               status, code)


ENDPOINT = "https://fcm.googleapis.com/fcm/send/abc"
GOOD_EVENT = {"type": "prompt_shown"}

CORPUS: list[Bad] = [
    # transport: body, type, size, origin
    R("malformed_json", 400, "invalid_json", path="subscription", body=b'{"subscription":'),
    R("empty_body", 400, "invalid_json", path="subscription", body=b""),
    R("not_utf8", 400, "invalid_json", path="subscription", body=b'{"anonymous_id": "\xff"}'),
    R("nan_literal", 400, "invalid_json", path="subscription",
      body=b'{"subscription": {"expirationTime": NaN}}'),
    R("deep_nesting", 400, "invalid_json", path="events", body=b"[" * 6000 + b"]" * 6000),
    R("deep_nesting_objects", 400, "invalid_json", path="subscription",
      body=b'{"a":' * 2500 + b"1" + b"}" * 2500),
    R("number_5000_digits", 400, "invalid_json", path="subscription",
      body=b'{"subscription": {"expirationTime": ' + b"9" * 5000 + b"}}"),
    R("array_body", 400, "invalid_body", path="subscription", body=b"[]"),
    R("null_body", 400, "invalid_body", path="events", body=b"null"),
    R("string_body", 400, "invalid_body", path="identify", body=b'"alice"'),
    R("text_plain", 415, "unsupported_media_type", path="subscription",
      body=lambda c: json.dumps(c.body()).encode(), headers={"Content-Type": "text/plain"}),
    R("no_content_type", 415, "unsupported_media_type", path="subscription",
      body=lambda c: json.dumps(c.body()).encode(), headers={"Content-Type": ""}),
    R("form_urlencoded", 415, "unsupported_media_type", path="events",
      body=b"events=1", headers={"Content-Type": "application/x-www-form-urlencoded"}),
    R("json_latin1", 415, "unsupported_media_type", path="subscription",
      body=lambda c: json.dumps(c.body()).encode(),
      headers={"Content-Type": "application/json; charset=latin-1"}),
    R("json_lookalike", 415, "unsupported_media_type", path="subscription",
      body=lambda c: json.dumps(c.body()).encode(),
      headers={"Content-Type": "application/jsonx"}),
    R("oversize_body", 413, "body_too_large", path="subscription",
      body=lambda c: json.dumps({**c.body(), "pad": "x" * c.max_body}).encode()),
    R("oversize_events", 413, "body_too_large", path="events",
      body=lambda c: json.dumps({"events": [GOOD_EVENT] * 2000}).encode()),
    R("origin_other_site", 403, "cross_origin", path="subscription",
      body=lambda c: c.body(), headers={"Origin": "https://evil.example"}),
    R("origin_null", 403, "cross_origin", path="subscription",
      body=lambda c: c.body(), headers={"Origin": "null"}),
    R("origin_other_port", 403, "cross_origin", path="events",
      body={"events": [GOOD_EVENT]}, headers={"Origin": "http://localhost:8080"}),
    R("origin_subdomain", 403, "cross_origin", path="subscription",
      body=lambda c: c.body(), headers={"Origin": "http://evil.localhost"}),
    R("fetch_cross_site", 403, "cross_origin", path="subscription",
      body=lambda c: c.body(), headers={"Sec-Fetch-Site": "cross-site"}),
    R("fetch_same_site", 403, "cross_origin", path="identify",
      body=lambda c: {"user_token": c.valid_token}, headers={"Sec-Fetch-Site": "same-site"}),
    R("fetch_none", 403, "cross_origin", path="reset", body={"endpoint": ENDPOINT},
      headers={"Sec-Fetch-Site": "none"}),
    # the subscription
    B("subscription_missing", 400, "invalid_subscription", subscription=None),
    B("subscription_string", 400, "invalid_subscription", subscription="https://x"),
    S("endpoint_missing", 400, "invalid_endpoint", endpoint=None),
    S("endpoint_number", 400, "invalid_endpoint", endpoint=42),
    S("endpoint_http", 400, "endpoint_not_https",
      endpoint="http://fcm.googleapis.com/fcm/send/abc"),
    S("endpoint_ipv4", 400, "endpoint_ip_literal", endpoint="https://192.168.1.10/push/abc"),
    S("endpoint_ipv6", 400, "endpoint_ip_literal", endpoint="https://[::1]/push/abc"),
    S("endpoint_decimal_ip", 400, "endpoint_ip_literal", endpoint="https://2130706433/abc"),
    S("endpoint_unknown_host", 400, "endpoint_host_not_allowed",
      endpoint="https://push.evil.example/abc"),
    S("endpoint_suffix_trick", 400, "endpoint_host_not_allowed",
      endpoint="https://fcm.googleapis.com.evil.example/abc"),
    S("endpoint_credentials", 400, "endpoint_has_credentials",
      endpoint="https://user:pw@fcm.googleapis.com/fcm/send/abc"),
    S("endpoint_fragment", 400, "endpoint_has_fragment",
      endpoint="https://fcm.googleapis.com/fcm/send/abc#x"),
    S("endpoint_too_long", 400, "endpoint_too_long",
      endpoint="https://fcm.googleapis.com/fcm/send/" + "a" * 3000),
    S("endpoint_localhost_http", 400, "endpoint_not_https",
      endpoint="http://localhost:8090/notify/abc"),
    S("endpoint_port", 400, "endpoint_port_not_allowed",
      endpoint="https://fcm.googleapis.com:8443/fcm/send/abc"),
    S("endpoint_no_path", 400, "invalid_endpoint", endpoint="https://fcm.googleapis.com"),
    S("endpoint_root_path", 400, "invalid_endpoint", endpoint="https://fcm.googleapis.com/"),
    S("endpoint_lone_surrogate", 400, "invalid_endpoint",
      endpoint="https://fcm.googleapis.com/fcm/send/\ud800"),
    S("keys_missing", 400, "invalid_keys", keys=None),
    S("keys_list", 400, "invalid_keys", keys=["a", "b"]),
    S("p256dh_bad_base64", 400, "invalid_p256dh", p256dh="!!!not base64!!!"),
    S("p256dh_standard_base64", 400, "invalid_p256dh",
      p256dh=lambda c: _p256dh_variant(c, "std_base64")),
    S("p256dh_not_on_curve", 400, "p256dh_not_on_curve",
      p256dh=lambda c: _p256dh_variant(c, "off_curve")),
    S("p256dh_compressed", 400, "invalid_p256dh",
      p256dh=lambda c: _p256dh_variant(c, "compressed")),
    S("p256dh_64_bytes", 400, "invalid_p256dh", p256dh=lambda c: _p256dh_variant(c, "short")),
    S("p256dh_number", 400, "invalid_p256dh", p256dh=12345),
    S("auth_15_bytes", 400, "invalid_auth", auth=b64url_encode(b"\x01" * 15)),
    S("auth_32_bytes", 400, "invalid_auth", auth=b64url_encode(b"\x01" * 32)),
    S("expiration_string", 400, "invalid_expiration_time", expirationTime="tomorrow"),
    S("expiration_negative", 400, "invalid_expiration_time", expirationTime=-1),
    R("expiration_overflows_to_infinity", 400, "invalid_expiration_time", path="subscription",
      body=lambda c: json.dumps(c.body()).replace(
          '"expirationTime": null', '"expirationTime": 1e400').encode()),
    S("content_encoding_bogus", 400, "invalid_content_encoding", contentEncoding="gzip"),
    B("anonymous_id_spaces", 400, "invalid_anonymous_id", anonymous_id="a b c"),
    B("anonymous_id_too_long", 400, "invalid_anonymous_id", anonymous_id="a" * 300),
    B("anonymous_id_number", 400, "invalid_anonymous_id", anonymous_id=7),
    B("source_bogus", 400, "invalid_source", source="attacker"),
    B("server_key_bad", 400, "invalid_application_server_key",
      application_server_key="AAAA"),
    B("old_endpoint_bad_host", 400, "endpoint_host_not_allowed",
      old_endpoint="https://evil.example/x"),
    # whose user id
    B("forged_user_token", 403, "forged_user_token", user_token=lambda c: c.forged_token),
    B("expired_user_token", 403, "expired_user_token", user_token=lambda c: c.expired_token),
    B("user_token_number", 403, "invalid_user_token", user_token=12345),
    B("unsigned_user_id", 403, "unsigned_user_id", user_id="alice"),
    B("user_token_for_someone_else", 403, "user_token_mismatch",
      user_token=lambda c: c.valid_token, user_id="mallory"),
    B("user_id_too_long", 400, "invalid_user_id", user_token=lambda c: c.valid_token,
      user_id="u" * 300),
    B("user_id_lone_surrogate", 400, "invalid_user_id", user_token=lambda c: c.valid_token,
      user_id="alice\ud800"),
    B("user_token_lone_surrogate", 403, "invalid_user_token", user_token="\ud800"),
    # events
    E("events_too_many", 400, "invalid_events", [GOOD_EVENT] * 51),
    E("events_empty", 400, "invalid_events", []),
    E("events_not_a_list", 400, "invalid_events", {"type": "prompt_shown"}),
    E("event_unknown_type", 400, "invalid_event_type", [{"type": "clicked_ad"}]),
    E("events_one_bad_in_a_batch", 400, "invalid_event_type",
      [GOOD_EVENT, {"type": "subscribed"}, {"type": 3}]),
    E("event_detail_too_large", 400, "detail_too_large",
      [{"type": "prompt_shown", "detail": {"x": "y" * 3000}}]),
    E("event_detail_list", 400, "invalid_detail", [{"type": "prompt_shown", "detail": [1]}]),
    E("event_detail_lone_surrogate", 400, "invalid_detail",
      [{"type": "prompt_shown", "detail": {"k": "\udcff"}}]),
    E("event_endpoint_bad_host", 400, "endpoint_host_not_allowed",
      [{"type": "subscribed", "endpoint": "https://evil.example/x"}]),
    E("event_timestamp_string", 400, "invalid_timestamp",
      [{"type": "prompt_shown", "timestamp": "now"}]),
    E("events_forged_user_token", 403, "forged_user_token", [GOOD_EVENT],
      user_token=lambda c: c.forged_token),
    # the other endpoints
    R("remove_without_endpoint", 400, "invalid_endpoint", path="subscription/remove", body={}),
    R("delete_bad_endpoint", 400, "endpoint_not_https", path="subscription", method="DELETE",
      body={"endpoint": "http://fcm.googleapis.com/x"}),
    R("identify_without_user", 403, "user_not_verified", path="identify",
      body={"anonymous_id": "anon-1"}),
    R("identify_forged_user_token", 403, "forged_user_token", path="identify",
      body=lambda c: {"user_token": c.forged_token, "subscription": c.good}),
    R("identify_bad_subscription", 400, "p256dh_not_on_curve", path="identify",
      body=lambda c: {"user_token": c.valid_token, **c.sub(
          p256dh=_p256dh_variant(c, "off_curve"))}),
    R("reset_bad_endpoint", 400, "endpoint_not_https", path="reset",
      body={"endpoint": "http://fcm.googleapis.com/x"}),
    R("reset_forged_user_token", 403, "forged_user_token", path="reset",
      body=lambda c: {"endpoint": c.good["endpoint"], "user_token": c.forged_token}),
    R("get_subscription", 405, "method_not_allowed", path="subscription", method="GET"),
    R("put_events", 405, "method_not_allowed", path="events", method="PUT",
      body={"events": [GOOD_EVENT]}),
    R("cors_preflight", 405, "method_not_allowed", path="subscription", method="OPTIONS",
      headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}),
    R("unknown_path", 404, "not_found", path="subscriptions", body={}),
    R("unknown_path_60k", 404, "not_found", path="a" * 60_000, body={}),
    R("trailing_slash", 404, "not_found", path="subscription/", body={}),
    R("vapid_key_not_configured", 404, "not_configured", path="vapid-public-key",
      method="GET"),
]


def test_the_corpus_is_big_enough_and_named_uniquely() -> None:
    names = [case.name for case in CORPUS]
    assert len(names) >= 40 and len(set(names)) == len(names)


@pytest.mark.parametrize("case", CORPUS, ids=[case.name for case in CORPUS])
def test_bad_input_is_refused_and_writes_nothing(
    app: Flask, case: Bad, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    seed = sub(0, "seed")
    ctx = Ctx(
        good=sub(1, "good"),
        valid_token=tokens().sign("alice"),
        forged_token=UserTokens("another-secret", 3600).sign("alice"),
        expired_token=expired_token("alice", monkeypatch),
    )
    # Content first, so "unchanged" means something: a subscription and an event.
    assert post(client, "subscription", {"subscription": seed, "anonymous_id": "anon-1",
                                          "user_token": ctx.valid_token}).status_code == 201
    assert post(client, "events", {"events": [GOOD_EVENT], "anonymous_id": "anon-1"}
                ).status_code == 200
    store = WebPushKit.store(app)
    before = snapshot(store)

    spec = case.build(ctx)
    body = spec.get("body")
    data = None if body is None else (body if isinstance(body, bytes)
                                      else json.dumps(body).encode())
    headers = {"Content-Type": "application/json", **spec.get("headers", {})}
    if headers["Content-Type"] == "":
        del headers["Content-Type"]
    response = client.open(API + "/" + spec["path"], method=spec.get("method", "POST"),
                           data=data, headers=headers)

    assert response.status_code == case.status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == case.code, error
    assert isinstance(error["message"], str) and error["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    assert snapshot(store) == before


# --- good paths --------------------------------------------------------------------------


def test_upsert_creates_then_refreshes_one_row(app: Flask) -> None:
    client = app.test_client()
    s = sub(0)
    r = post(client, "subscription", {"subscription": s})
    assert (r.status_code, r.get_json()) == (201, {"status": "active", "created": True,
                                                   "linked": False})
    first = rows(app)[0]
    r = post(client, "subscription", {"subscription": s})
    assert (r.status_code, r.get_json()["created"]) == (200, False)
    assert rows(app) == [first]  # nothing changed: nothing written
    s2 = {**s, "keys": {"p256dh": POOL[1][0], "auth": POOL[1][1]}}
    assert post(client, "subscription", {"subscription": s2}).status_code == 200
    [row] = rows(app)
    assert (row["id"], row["p256dh"], row["auth"]) == (first["id"], POOL[1][0], POOL[1][1])


def test_an_unchanged_refresh_is_written_once_the_interval_passed(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    post(client, "subscription", {"subscription": sub(0)})
    seen = rows(app)[0]["last_seen_at"]
    monkeypatch.setattr(api_module, "REFRESH_INTERVAL", timedelta(0))
    post(client, "subscription", {"subscription": sub(0)})
    assert rows(app)[0]["last_seen_at"] > seen


@pytest.mark.parametrize("source", ["moengage", "self-hosted"])
def test_a_fresh_subscription_post_is_written_without_reading_first(
    app: Flask, source: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The browser has just subscribed: the endpoint upserts at once. The same answers and
    # rows as the read-first path, even when the subscription was already stored.
    client = app.test_client()
    store = WebPushKit.store(app)
    reads: list[str] = []
    get = store.get
    monkeypatch.setattr(store, "get", lambda endpoint: reads.append(endpoint) or get(endpoint))
    t = tokens()
    body = {"subscription": sub(0), "source": source, "anonymous_id": "anon-a"}
    r = post(client, "subscription", {**body, "user_token": t.sign("alice")})
    assert (r.status_code, r.get_json()) == (201, {"status": "active", "created": True,
                                                   "linked": True})
    r = post(client, "subscription", {**body, "user_token": t.sign("bob")})
    assert (r.status_code, r.get_json()["created"]) == (200, False)
    assert reads == []
    [row] = rows(app)
    assert (row["user_id"], row["anonymous_id"], row["status"]) == ("bob", "anon-a", "active")
    # A page-load re-sync still reads first and writes nothing when nothing changed.
    r = post(client, "subscription", {**body, "source": "resync", "user_token": t.sign("bob")})
    assert (r.status_code, r.get_json()["created"]) == (200, False)
    assert reads == [row["endpoint"]] and rows(app) == [row]


def test_a_post_under_another_user_transfers_ownership(app: Flask) -> None:
    client = app.test_client()
    s = sub(0)
    t = tokens()
    post(client, "subscription", {"subscription": s, "user_token": t.sign("alice"),
                                  "anonymous_id": "anon-a"})
    assert rows(app)[0]["user_id"] == "alice"
    r = post(client, "subscription", {"subscription": s, "user_token": t.sign("bob"),
                                      "anonymous_id": "anon-b"})
    assert r.get_json() == {"status": "active", "created": False, "linked": True}
    assert "bob" not in r.get_data(as_text=True)  # answers never name users
    assert (rows(app)[0]["user_id"], rows(app)[0]["anonymous_id"]) == ("bob", "anon-b")
    # Someone else, logged out, on the same profile: the subscription is nobody's.
    post(client, "subscription", {"subscription": s, "anonymous_id": "anon-c"})
    assert (rows(app)[0]["user_id"], rows(app)[0]["anonymous_id"]) == (None, "anon-c")
    assert len(rows(app)) == 1


def test_the_loader_wins_over_whatever_the_browser_sends(
    app_factory: Callable[..., Flask],
) -> None:
    who: dict[str, Any] = {"id": "carol"}
    app = app_factory(user_id_loader=lambda: who["id"])
    client = app.test_client()
    t = tokens()
    # A token for dave, a bare user id, a forged token: all ignored, carol is linked.
    for extra in ({"user_token": t.sign("dave")}, {"user_id": "dave"},
                  {"user_token": "forged.token.value"}):
        r = post(client, "subscription", {"subscription": sub(0), **extra})
        assert r.status_code in (200, 201), r.get_json()
        assert rows(app)[0]["user_id"] == "carol"
    who["id"] = 42  # Flask-Login ids are often ints
    post(client, "subscription", {"subscription": sub(0)})
    assert rows(app)[0]["user_id"] == "42"
    who["id"] = None  # logged out: anonymous, whatever token the page still carries
    post(client, "subscription", {"subscription": sub(0), "user_token": t.sign("dave"),
                                  "anonymous_id": "anon-x"})
    assert rows(app)[0]["user_id"] is None


def test_identify_links_only_the_presented_subscription_never_by_anonymous_id(
    app: Flask,
) -> None:
    client = app.test_client()
    t = tokens()
    post(client, "subscription", {"subscription": sub(0), "anonymous_id": "anon-1"})
    post(client, "subscription", {"subscription": sub(1), "anonymous_id": "anon-1"})
    post(client, "subscription", {"subscription": sub(2), "anonymous_id": "anon-2"})
    assert [r["user_id"] for r in rows(app)] == [None, None, None]
    # The anonymous id alone proves nothing (any script on the page can read it).
    r = post(client, "identify", {"user_token": t.sign("alice"), "user_id": "alice",
                                  "anonymous_id": "anon-1"})
    assert (r.status_code, r.get_json()) == (200, {"linked": False})
    assert [r["user_id"] for r in rows(app)] == [None, None, None]
    [event] = events(app)
    assert (event["type"], event["user_id"], event["anonymous_id"], event["subscription_id"]) \
        == ("identified", "alice", "anon-1", None)
    # Presenting a subscription (its endpoint) links that one, and only that one.
    r = post(client, "identify", {"user_token": t.sign("alice"), "anonymous_id": "anon-1",
                                  "subscription": sub(1)})
    assert (r.status_code, r.get_json()) == (200, {"linked": True})
    assert [r["user_id"] for r in rows(app)] == [None, "alice", None]
    assert [(e["type"], e["anonymous_id"], e["subscription_id"]) for e in events(app)] == [
        ("identified", "anon-1", None), ("identified", "anon-1", rows(app)[1]["id"])]


def test_a_signed_in_post_links_only_the_posted_subscription(app: Flask) -> None:
    client = app.test_client()
    post(client, "subscription", {"subscription": sub(0), "anonymous_id": "anon-1"})
    r = post(client, "subscription", {"subscription": sub(1), "anonymous_id": "anon-1",
                                      "user_token": tokens().sign("alice")})
    assert r.get_json() == {"status": "active", "created": True, "linked": True}
    assert [r["user_id"] for r in rows(app)] == [None, "alice"]
    # The same when an existing anonymous row becomes the user's, and on
    # pushsubscriptionchange: the anonymous id's other subscription stays anonymous.
    post(client, "subscription", {"subscription": sub(2), "anonymous_id": "anon-1"})
    post(client, "subscription", {"subscription": sub(2), "anonymous_id": "anon-1",
                                  "user_token": tokens().sign("alice")})
    post(client, "subscription", _change(1, 3, anonymous_id="anon-1",
                                         user_token=tokens().sign("alice")))
    assert [(r["user_id"], r["status"]) for r in rows(app)] == [
        (None, "active"), ("alice", "unsubscribed"), ("alice", "active"), ("alice", "active")]


VICTIM_ANON = "3f0c9a52-7d1e-4b8e-9c2a-5e6f7a8b9c0d"  # the victim browser's MoEngage uuid


@pytest.mark.parametrize("verified_by", ["user_token", "user_id_loader"])
def test_a_leaked_anonymous_id_does_not_hand_the_victims_subscription_to_an_attacker(
    app_factory: Callable[..., Flask], verified_by: str
) -> None:
    """Regression: /identify and /subscription used to give the verified user every
    anonymous subscription stored with the posted anonymous id. An anonymous id is no
    secret (page scripts, analytics, shared links), so a logged-in attacker who learned a
    victim's could take the victim browser's push subscription into their account. Now
    only a subscription whose endpoint the request presents is linked."""
    who: dict[str, str | None] = {"id": None}
    if verified_by == "user_id_loader":
        app = app_factory(user_id_loader=lambda: who["id"])
    else:
        app = app_factory()

    def as_user(user_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` posted by ``user_id``: the session names them, or the page's token."""
        who["id"] = user_id
        return body if verified_by == "user_id_loader" else {
            **body, "user_token": tokens().sign(user_id)}

    def row_for(endpoint: str) -> dict[str, Any]:
        [row] = [r for r in rows(app) if r["endpoint"] == endpoint]
        return row

    victim, attacker = app.test_client(), app.test_client()
    victim_sub = sub(0, "victim")
    mallory_subs = [sub(i, "mallory") for i in range(1, 5)]

    # The victim's browser, logged out, re-syncs its subscription under its anonymous id.
    who["id"] = None
    r = post(victim, "subscription", {"subscription": victim_sub, "anonymous_id": VICTIM_ANON})
    assert r.get_json() == {"status": "active", "created": True, "linked": False}

    # Mallory, logged in, posts the victim's anonymous id: with no subscription, ...
    r = post(attacker, "identify", as_user("mallory", {"anonymous_id": VICTIM_ANON}))
    assert (r.status_code, r.get_json()) == (200, {"linked": False})
    # ... with her own subscription on /identify, ...
    r = post(attacker, "identify", as_user("mallory", {"anonymous_id": VICTIM_ANON,
                                                       "subscription": mallory_subs[0]}))
    assert (r.status_code, r.get_json()) == (200, {"linked": True})
    # ... on /subscription with a new one, with one of hers that changes owner, and on
    # pushsubscriptionchange.
    r = post(attacker, "subscription", as_user("mallory", {
        "subscription": mallory_subs[1], "anonymous_id": VICTIM_ANON}))
    assert (r.status_code, r.get_json()["linked"]) == (201, True)
    who["id"] = None
    post(attacker, "subscription", {"subscription": mallory_subs[2],
                                    "anonymous_id": VICTIM_ANON})
    r = post(attacker, "subscription", as_user("mallory", {
        "subscription": mallory_subs[2], "anonymous_id": VICTIM_ANON}))
    assert (r.status_code, r.get_json()["linked"]) == (200, True)
    r = post(attacker, "subscription", as_user("mallory", {
        "subscription": mallory_subs[3], "old_endpoint": mallory_subs[1]["endpoint"],
        "source": "pushsubscriptionchange", "anonymous_id": VICTIM_ANON}))
    assert (r.status_code, r.get_json()["linked"]) == (201, True)

    # The victim's subscription is still nobody's; Mallory has only her own.
    row = row_for(victim_sub["endpoint"])
    assert (row["user_id"], row["anonymous_id"], row["status"]) == (None, VICTIM_ANON, "active")
    assert {r["endpoint"] for r in rows(app) if r["user_id"] == "mallory"} == {
        s["endpoint"] for s in mallory_subs}
    # The attempts are on record, with the anonymous id they named.
    identified = [e for e in events(app) if e["type"] == "identified"]
    assert [(e["user_id"], e["anonymous_id"]) for e in identified] == [
        ("mallory", VICTIM_ANON), ("mallory", VICTIM_ANON)]
    # Her sends (send_to_user reads this) cannot reach the victim's browser.
    reachable = WebPushKit.store(app).subscriptions_for_user("mallory")
    assert victim_sub["endpoint"] not in {rec.endpoint for rec in reachable}

    # The victim logging in presents their own subscription: that links it.
    r = post(victim, "identify", as_user("victor", {"anonymous_id": VICTIM_ANON,
                                                    "subscription": victim_sub}))
    assert (r.status_code, r.get_json()) == (200, {"linked": True})
    row = row_for(victim_sub["endpoint"])
    assert (row["user_id"], row["anonymous_id"]) == ("victor", VICTIM_ANON)
    assert {r["endpoint"] for r in rows(app) if r["user_id"] == "mallory"} == {
        s["endpoint"] for s in mallory_subs}


def test_identify_with_the_subscription_links_it(app: Flask) -> None:
    client = app.test_client()
    post(client, "subscription", {"subscription": sub(0), "anonymous_id": "anon-1"})
    r = post(client, "identify", {"user_token": tokens().sign("bob"), "subscription": sub(0)})
    assert r.get_json() == {"linked": True}
    assert rows(app)[0]["user_id"] == "bob"
    assert events(app)[0]["subscription_id"] == rows(app)[0]["id"]


def test_reset_unlinks_the_user_and_keeps_the_subscription(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    s = sub(0)
    post(client, "subscription", {"subscription": s, "user_token": tokens().sign("alice"),
                                  "anonymous_id": "anon-1"})
    r = post(client, "reset", {"endpoint": s["endpoint"], "anonymous_id": "anon-1"})
    assert (r.status_code, r.get_json()) == (200, {"unlinked": True})
    [row] = rows(app)
    assert (row["user_id"], row["status"]) == (None, "active")
    [event] = events(app)
    assert (event["type"], event["user_id"], event["subscription_id"]) == (
        "reset", "alice", row["id"])
    # Logging out from a page whose token has expired still works.
    post(client, "subscription", {"subscription": s, "user_token": tokens().sign("bob")})
    r = post(client, "reset", {"endpoint": s["endpoint"],
                               "user_token": expired_token("bob", monkeypatch)})
    assert r.get_json() == {"unlinked": True} and rows(app)[0]["user_id"] is None


def test_remove_marks_the_subscription_unsubscribed(app: Flask) -> None:
    client = app.test_client()
    s0, s1 = sub(0), sub(1)
    post(client, "subscription", {"subscription": s0})
    post(client, "subscription", {"subscription": s1})
    r = post(client, "subscription/remove", {"endpoint": s0["endpoint"]})
    assert r.get_json() == {"removed": True}
    r = client.delete(API + "/subscription", json={"endpoint": s1["endpoint"]})
    assert r.get_json() == {"removed": True}
    assert [r["status"] for r in rows(app)] == ["unsubscribed", "unsubscribed"]
    before = rows(app)
    r = client.delete(API + "/subscription", json={"endpoint": s1["endpoint"]})
    assert (r.status_code, r.get_json()) == (200, {"removed": False})  # already removed
    assert rows(app) == before
    assert post(client, "subscription/remove", {"endpoint": ENDPOINT}).get_json() == {
        "removed": False}
    # Subscribing again re-activates the row.
    post(client, "subscription", {"subscription": s0})
    assert rows(app)[0]["status"] == "active"


def test_a_replaced_subscription_is_retired(app: Flask) -> None:
    client = app.test_client()
    post(client, "subscription", {"subscription": sub(0)})
    post(client, "subscription", {"subscription": sub(1), "old_endpoint": sub(0)["endpoint"],
                                  "source": "pushsubscriptionchange"})
    assert [r["status"] for r in rows(app)] == ["unsubscribed", "active"]


def _change(old: int, new: int, **extra: Any) -> dict[str, Any]:
    """What the service worker posts on pushsubscriptionchange (no token, no anon id)."""
    return {"subscription": sub(new), "old_endpoint": sub(old)["endpoint"],
            "source": "pushsubscriptionchange", **extra}


def test_pushsubscriptionchange_carries_the_owner_over(app: Flask) -> None:
    client = app.test_client()
    post(client, "subscription", {"subscription": sub(0), "anonymous_id": "anon-a",
                                  "user_token": tokens().sign("alice")})
    r = post(client, "subscription", _change(0, 1))
    assert (r.status_code, r.get_json()) == (201, {"status": "active", "created": True,
                                                   "linked": True})
    old, new = rows(app)
    assert (old["status"], old["user_id"], old["anonymous_id"]) == (
        "unsubscribed", "alice", "anon-a")
    assert (new["status"], new["user_id"], new["anonymous_id"]) == ("active", "alice", "anon-a")
    # An anonymous owner is carried over too, and the chain goes on.
    post(client, "subscription", {"subscription": sub(5), "anonymous_id": "anon-z"})
    post(client, "subscription", _change(5, 6))
    assert (rows(app)[-1]["user_id"], rows(app)[-1]["anonymous_id"]) == (None, "anon-z")


def test_pushsubscriptionchange_a_verified_user_wins(
    app_factory: Callable[..., Flask],
) -> None:
    app = app_factory()
    client = app.test_client()
    post(client, "subscription", {"subscription": sub(0), "anonymous_id": "anon-a",
                                  "user_token": tokens().sign("alice")})
    post(client, "subscription", _change(0, 1, user_token=tokens().sign("bob"),
                                         anonymous_id="anon-b"))
    old, new = rows(app)
    assert old["status"] == "unsubscribed"
    assert (new["user_id"], new["anonymous_id"]) == ("bob", "anon-b")
    # The loader's user wins the same way.
    loaded = app_factory(user_id_loader=lambda: "carol")
    client = loaded.test_client()
    post(client, "subscription", {"subscription": sub(2), "user_token": tokens().sign("dave")})
    post(client, "subscription", _change(2, 3))
    assert [(r["user_id"], r["status"]) for r in rows(loaded)][-2:] == [
        ("carol", "unsubscribed"), ("carol", "active")]


def test_pushsubscriptionchange_from_an_unknown_endpoint_is_anonymous(app: Flask) -> None:
    client = app.test_client()
    r = post(client, "subscription", _change(7, 1))
    assert (r.status_code, r.get_json()) == (201, {"status": "active", "created": True,
                                                   "linked": False})
    [row] = rows(app)
    assert (row["endpoint"], row["user_id"], row["anonymous_id"], row["status"]) == (
        sub(1)["endpoint"], None, None, "active")


def test_pushsubscriptionchange_writes_nothing_when_the_save_fails(
    app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app.test_client()
    post(client, "subscription", {"subscription": sub(0), "user_token": tokens().sign("alice")})
    store = WebPushKit.store(app)
    before = snapshot(store)
    # The database refuses the new row, after the old one was already marked unsubscribed.
    with store.engine.begin() as conn:
        if store.engine.dialect.name == "sqlite":
            conn.exec_driver_sql(
                "CREATE TRIGGER boom BEFORE INSERT ON webpush_subscriptions "
                "BEGIN SELECT RAISE(ABORT, 'boom'); END")
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION 'boom'; END $$")
            conn.exec_driver_sql(
                "CREATE TRIGGER boom BEFORE INSERT ON webpush_subscriptions "
                "FOR EACH ROW EXECUTE FUNCTION boom()")
    app.config["PROPAGATE_EXCEPTIONS"] = False
    r = post(client, "subscription", _change(0, 1))
    assert r.status_code == 500
    assert snapshot(store) == before  # the old row is not retired either


def test_events_are_recorded_for_the_verified_user(app: Flask) -> None:
    client = app.test_client()
    s = sub(0)
    post(client, "subscription", {"subscription": s})
    batch = [{"type": "prompt_shown", "timestamp": 1.7e12},
             {"type": "prompt_allowed", "detail": {"source": "MOE_LIFECYCLE"}},
             {"type": "subscribed", "endpoint": s["endpoint"]}]
    r = post(client, "events", {"events": batch, "anonymous_id": "anon-1",
                                "user_token": tokens().sign("alice")})
    assert r.get_json() == {"recorded": 3}
    got = [(e["type"], e["user_id"], e["anonymous_id"], e["subscription_id"]) for e in
           events(app)]
    assert got == [("prompt_shown", "alice", "anon-1", None),
                   ("prompt_allowed", "alice", "anon-1", None),
                   ("subscribed", "alice", "anon-1", rows(app)[0]["id"])]
    assert post(client, "events", {"events": [GOOD_EVENT] * 50}).get_json() == {
        "recorded": 50}


def test_same_origin_requests_are_accepted(app: Flask) -> None:
    client = app.test_client()
    for headers in ({"Origin": "http://localhost"}, {"Sec-Fetch-Site": "same-origin"},
                    # TLS ended at a proxy: the page is https, the request reaches us as http.
                    {"Origin": "https://localhost"}, {}):
        r = post(client, "events", {"events": [GOOD_EVENT]}, **headers)
        assert r.status_code == 200, (headers, r.get_json())


def test_vapid_public_key_is_served_from_a_raw_key_or_a_key_file(
    store_url: str, tmp_path: Path
) -> None:
    key = VapidKey.generate()
    app = make_app(store_url, vapid_private_key=key.private_raw_b64(), vapid_subject=SUBJECT)
    r = app.test_client().get(API + "/vapid-public-key")
    assert (r.status_code, r.get_json()) == (200, {"publicKey": key.public_key_b64})
    assert r.headers["Cache-Control"] == "no-cache"
    # A relative path is looked up in the instance folder.
    instance = tmp_path / "instance"
    instance.mkdir()
    key.save_pem(instance / "vapid.pem")
    app2 = Flask(__name__, instance_path=str(instance))
    WebPushKit(app2, vapid_private_key="vapid.pem", vapid_subject=SUBJECT,
               database_url=store_url)
    assert app2.test_client().get(API + "/vapid-public-key").get_json() == {
        "publicKey": key.public_key_b64}


def test_a_bad_vapid_setting_fails_at_start_up_without_echoing_the_key(
    store_url: str,
) -> None:
    with pytest.raises(ConfigError) as info:
        make_app(store_url, vapid_private_key="not-a-key-and-not-a-file",
                 vapid_subject=SUBJECT)
    assert "not-a-key-and-not-a-file" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        make_app(store_url, vapid_private_key="/no/such/dir/vapid.pem", vapid_subject=SUBJECT)
    assert "/no/such/dir/vapid.pem" in str(info.value)


def test_unexpected_errors_are_a_json_500_without_a_traceback(
    app_factory: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    def loader() -> str:
        raise RuntimeError("secret detail from the loader")

    app = app_factory(user_id_loader=loader)
    app.testing = True  # even when exceptions would propagate
    r = post(app.test_client(), "subscription", {"subscription": sub(0)})
    assert r.status_code == 500
    assert r.get_json() == {"error": {"code": "internal_error", "message": (
        "the server could not handle this request; the error is in the server log")}}
    assert "secret detail" in caplog.text  # logged for the owner, not sent to the browser


def test_flasks_own_size_limit_answers_json_too(app_factory: Callable[..., Flask]) -> None:
    app = app_factory()
    app.config["MAX_CONTENT_LENGTH"] = 100
    r = post(app.test_client(), "subscription", {"subscription": sub(0)})
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "body_too_large"


# --- store wiring ------------------------------------------------------------------------


def test_default_store_is_sqlite_in_the_instance_folder(tmp_path: Path) -> None:
    instance = tmp_path / "instance" / "nested"
    app = Flask(__name__, instance_path=str(instance))
    WebPushKit(app)
    store = WebPushKit.store(app)
    assert store is WebPushKit.store(app)
    assert store.engine.dialect.name == "sqlite"
    assert Path(str(store.engine.url.database)) == instance / "webpush_kit.sqlite3"
    with app.test_request_context():
        assert WebPushKit.store() is store
    store.counts()
    assert (instance / "webpush_kit.sqlite3").is_file()
    store.dispose()


def test_a_handed_in_engine_is_used(store_url: str) -> None:
    engine = sa.create_engine(store_url.replace("postgresql://", "postgresql+psycopg://"))
    app = Flask(__name__)
    WebPushKit(app, engine=engine, database_url="sqlite:////nonexistent/ignored.db")
    assert WebPushKit.store(app).engine is engine
    post(app.test_client(), "subscription", {"subscription": sub(0)})
    assert len(rows(app)) == 1
    engine.dispose()


def test_the_endpoint_allowlist_follows_the_settings(app_factory: Callable[..., Flask]) -> None:
    own = {**sub(0), "endpoint": "https://push.example.net/send/abc"}
    local = {**sub(1), "endpoint": "http://localhost:8090/notify/abc"}
    strict = app_factory()
    for s, code in ((own, "endpoint_host_not_allowed"), (local, "endpoint_not_https")):
        r = post(strict.test_client(), "subscription", {"subscription": s})
        assert (r.status_code, r.get_json()["error"]["code"]) == (400, code)
    open_app = app_factory(push_hosts=("push.example.net",), allow_localhost_endpoints=True)
    for s in (own, local):
        assert post(open_app.test_client(), "subscription",
                    {"subscription": s}).status_code == 201
