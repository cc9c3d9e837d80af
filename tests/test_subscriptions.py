"""Tests for webpush_kit.subscriptions: what a browser may post, and what it may not."""

from __future__ import annotations

import base64
import json
import math
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from webpush_kit.errors import ConfigError, ValidationError
from webpush_kit.subscriptions import (
    DEFAULT_POLICY,
    MAX_DETAIL_BYTES,
    OPT_IN_EVENT_TYPES,
    EndpointPolicy,
    OptInEvent,
    Subscription,
    b64url_decode,
    b64url_encode,
    parse_endpoint,
    parse_opt_in_event,
    parse_opt_in_events,
    parse_subscription,
)

FCM = "https://fcm.googleapis.com/fcm/send/dQk8Y2YdQxs:APA91bF" + "x" * 140
FCM_VAPID = "https://fcm.googleapis.com/wp/cNFbHxTVrDs:APA91bHaVW" + "y" * 120
GCM = "https://android.googleapis.com/gcm/send/eR4Ge7Aq2Ag:APA91bEN" + "z" * 100
MOZILLA = "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABl" + "Q" * 300
APPLE = "https://web.push.apple.com/QGuQyavXutnMHxLbjNQLGRr6R_2DC4nHkyzUoj2MXJ0"
WNS = (
    "https://wns2-par02p.notify.windows.com/w/?token=BQYAAADtQ%2bH7KUCZB%2f" + "a" * 200 + "%3d%3d"
)


def raw_p256dh() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


P256DH_RAW = raw_p256dh()
AUTH_RAW = os.urandom(16)
P256DH = b64url_encode(P256DH_RAW)
AUTH = b64url_encode(AUTH_RAW)


def body(endpoint: object = FCM, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "endpoint": endpoint,
        "expirationTime": None,
        "keys": {"p256dh": P256DH, "auth": AUTH},
    }
    keys = overrides.pop("keys", None)
    if keys is not None:
        data["keys"] = {**data["keys"], **keys}
    data.update(overrides)
    return data


def without(mapping: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k not in names}


def std_b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode().rstrip("=")


def p256dh_with_plus_or_slash() -> str:
    """A real key whose standard-base64 spelling uses + or / (so it differs)."""
    while True:
        raw = raw_p256dh()
        text = std_b64(raw)
        if "+" in text or "/" in text:
            return text


# --------------------------------------------------------------------------- bad corpus

BAD: list[tuple[str, object, str, str | None]] = [
    # (id, posted data, code, field)
    ("list", [FCM, P256DH, AUTH], "invalid_subscription", None),
    ("string", json.dumps(body()), "invalid_subscription", None),
    ("null", None, "invalid_subscription", None),
    ("number", 42, "invalid_subscription", None),
    ("endpoint-missing", without(body(), "endpoint"), "invalid_endpoint", "endpoint"),
    ("endpoint-null", body(None), "invalid_endpoint", "endpoint"),
    ("endpoint-number", body(123), "invalid_endpoint", "endpoint"),
    ("endpoint-empty", body(""), "invalid_endpoint", "endpoint"),
    ("endpoint-object", body({"url": FCM}), "invalid_endpoint", "endpoint"),
    ("http", body(FCM.replace("https:", "http:")), "endpoint_not_https", "endpoint"),
    ("ftp", body("ftp://fcm.googleapis.com/x"), "endpoint_not_https", "endpoint"),
    (
        "javascript",
        body("javascript://fcm.googleapis.com/%0aalert(1)"),
        "endpoint_not_https",
        "endpoint",
    ),
    ("no-scheme", body("fcm.googleapis.com/fcm/send/x"), "invalid_endpoint", "endpoint"),
    ("scheme-relative", body("//fcm.googleapis.com/fcm/send/x"), "invalid_endpoint", "endpoint"),
    ("no-host", body("https:///fcm/send/x"), "invalid_endpoint", "endpoint"),
    ("ipv4", body("https://192.168.1.10/fcm/send/x"), "endpoint_ip_literal", "endpoint"),
    ("ipv4-metadata", body("https://169.254.169.254/latest"), "endpoint_ip_literal", "endpoint"),
    ("ipv4-decimal", body("https://2130706433/x"), "endpoint_ip_literal", "endpoint"),
    ("ipv4-short", body("https://127.1/x"), "endpoint_ip_literal", "endpoint"),
    ("ipv4-hex", body("https://0x7f.0.0.1/x"), "endpoint_ip_literal", "endpoint"),
    ("ipv4-hex-one-label", body("https://0X7F000001/x"), "endpoint_ip_literal", "endpoint"),
    ("ipv4-hex-last", body("https://127.0.0.0x1/x"), "endpoint_ip_literal", "endpoint"),
    ("ipv4-octal", body("https://0177.0.0.01/x"), "endpoint_ip_literal", "endpoint"),
    ("ipv6", body("https://[2001:db8::1]/x"), "endpoint_ip_literal", "endpoint"),
    ("ipv6-loopback", body("https://[::1]:8443/x"), "endpoint_ip_literal", "endpoint"),
    ("ipv4-loopback", body("https://127.0.0.1:8443/x"), "endpoint_ip_literal", "endpoint"),
    (
        "credentials",
        body("https://user:pass@fcm.googleapis.com/x"),
        "endpoint_has_credentials",
        "endpoint",
    ),
    ("username", body("https://user@fcm.googleapis.com/x"), "endpoint_has_credentials", "endpoint"),
    (
        "at-confusion",
        body("https://evil.example@fcm.googleapis.com/x"),
        "endpoint_has_credentials",
        "endpoint",
    ),
    (
        "backslash",
        body("https://evil.example\\@fcm.googleapis.com/x"),
        "invalid_endpoint",
        "endpoint",
    ),
    (
        "unknown-host",
        body("https://evil.example.com/fcm/send/x"),
        "endpoint_host_not_allowed",
        "endpoint",
    ),
    (
        "suffix-trick",
        body("https://fcm.googleapis.com.evil.example/x"),
        "endpoint_host_not_allowed",
        "endpoint",
    ),
    (
        "prefix-trick",
        body("https://notfcm.googleapis.com/x"),
        "endpoint_host_not_allowed",
        "endpoint",
    ),
    (
        "wildcard-bare-suffix",
        body("https://push.apple.com/x"),
        "endpoint_host_not_allowed",
        "endpoint",
    ),
    (
        "wildcard-glued",
        body("https://evilpush.apple.com/x"),
        "endpoint_host_not_allowed",
        "endpoint",
    ),
    ("trailing-dot", body("https://fcm.googleapis.com./x"), "invalid_endpoint", "endpoint"),
    (
        "localhost-not-allowed",
        body("http://localhost:8090/notify/abc"),
        "endpoint_not_https",
        "endpoint",
    ),
    (
        "localhost-https-not-allowed",
        body("https://localhost:8090/notify/abc"),
        "endpoint_host_not_allowed",
        "endpoint",
    ),
    ("fragment", body(FCM + "#frag"), "endpoint_has_fragment", "endpoint"),
    ("empty-fragment", body(FCM + "#"), "endpoint_has_fragment", "endpoint"),
    (
        "too-long",
        body("https://fcm.googleapis.com/fcm/send/" + "a" * 2048),
        "endpoint_too_long",
        "endpoint",
    ),
    ("space", body("https://fcm.googleapis.com/fcm/send/a b"), "invalid_endpoint", "endpoint"),
    ("newline", body("https://fcm.googleapis.com/fcm/send/a\nb"), "invalid_endpoint", "endpoint"),
    ("non-ascii-host", body("https://fcm.googleapis.cöm/x"), "invalid_endpoint", "endpoint"),
    ("bad-port", body("https://fcm.googleapis.com:99999/x"), "invalid_endpoint", "endpoint"),
    ("bad-host-label", body("https://fcm_.googleapis.com/x"), "invalid_endpoint", "endpoint"),
    ("keys-missing", without(body(), "keys"), "invalid_keys", "keys"),
    ("keys-null", body(keys=None) | {"keys": None}, "invalid_keys", "keys"),
    ("keys-list", body() | {"keys": [P256DH, AUTH]}, "invalid_keys", "keys"),
    ("keys-string", body() | {"keys": P256DH}, "invalid_keys", "keys"),
    ("p256dh-missing", body() | {"keys": {"auth": AUTH}}, "invalid_p256dh", "keys.p256dh"),
    ("p256dh-null", body(keys={"p256dh": None}), "invalid_p256dh", "keys.p256dh"),
    ("p256dh-number", body(keys={"p256dh": 4}), "invalid_p256dh", "keys.p256dh"),
    ("p256dh-empty", body(keys={"p256dh": ""}), "invalid_p256dh", "keys.p256dh"),
    ("p256dh-bytes-list", body(keys={"p256dh": list(P256DH_RAW)}), "invalid_p256dh", "keys.p256dh"),
    (
        "p256dh-standard-b64",
        body(keys={"p256dh": p256dh_with_plus_or_slash()}),
        "invalid_p256dh",
        "keys.p256dh",
    ),
    ("p256dh-bad-chars", body(keys={"p256dh": "!!" + P256DH[2:]}), "invalid_p256dh", "keys.p256dh"),
    (
        "p256dh-inner-padding",
        body(keys={"p256dh": P256DH[:40] + "=" + P256DH[41:]}),
        "invalid_p256dh",
        "keys.p256dh",
    ),
    (
        "p256dh-too-much-padding",
        body(keys={"p256dh": P256DH + "==="}),
        "invalid_p256dh",
        "keys.p256dh",
    ),
    (
        "p256dh-impossible-length",
        body(keys={"p256dh": P256DH[:85]}),
        "invalid_p256dh",
        "keys.p256dh",
    ),
    (
        "p256dh-64-bytes",
        body(keys={"p256dh": b64url_encode(P256DH_RAW[:64])}),
        "invalid_p256dh",
        "keys.p256dh",
    ),
    (
        "p256dh-66-bytes",
        body(keys={"p256dh": b64url_encode(P256DH_RAW + b"\x00")}),
        "invalid_p256dh",
        "keys.p256dh",
    ),
    (
        "p256dh-compressed-prefix",
        body(keys={"p256dh": b64url_encode(b"\x02" + P256DH_RAW[1:])}),
        "invalid_p256dh",
        "keys.p256dh",
    ),
    (
        "p256dh-compressed-33",
        body(keys={"p256dh": b64url_encode(b"\x02" + P256DH_RAW[1:33])}),
        "invalid_p256dh",
        "keys.p256dh",
    ),
    (
        "p256dh-off-curve",
        body(keys={"p256dh": b64url_encode(b"\x04" + b"\x01" * 64)}),
        "p256dh_not_on_curve",
        "keys.p256dh",
    ),
    (
        "p256dh-zero-point",
        body(keys={"p256dh": b64url_encode(b"\x04" + b"\x00" * 64)}),
        "p256dh_not_on_curve",
        "keys.p256dh",
    ),
    (
        "p256dh-coords-out-of-range",
        body(keys={"p256dh": b64url_encode(b"\x04" + b"\xff" * 64)}),
        "p256dh_not_on_curve",
        "keys.p256dh",
    ),
    (
        "p256dh-flipped-y",
        body(keys={"p256dh": b64url_encode(P256DH_RAW[:-1] + bytes([P256DH_RAW[-1] ^ 1]))}),
        "p256dh_not_on_curve",
        "keys.p256dh",
    ),
    ("auth-missing", body() | {"keys": {"p256dh": P256DH}}, "invalid_auth", "keys.auth"),
    ("auth-number", body(keys={"auth": 16}), "invalid_auth", "keys.auth"),
    ("auth-empty", body(keys={"auth": ""}), "invalid_auth", "keys.auth"),
    (
        "auth-15-bytes",
        body(keys={"auth": b64url_encode(AUTH_RAW[:15])}),
        "invalid_auth",
        "keys.auth",
    ),
    (
        "auth-17-bytes",
        body(keys={"auth": b64url_encode(AUTH_RAW + b"!")}),
        "invalid_auth",
        "keys.auth",
    ),
    ("auth-standard-b64", body(keys={"auth": "ab+/" * 5 + "aa"}), "invalid_auth", "keys.auth"),
    ("auth-space", body(keys={"auth": AUTH[:10] + " " + AUTH[11:]}), "invalid_auth", "keys.auth"),
    ("expiration-bool", body(expirationTime=True), "invalid_expiration_time", "expirationTime"),
    ("expiration-false", body(expirationTime=False), "invalid_expiration_time", "expirationTime"),
    (
        "expiration-string",
        body(expirationTime="1700000000000"),
        "invalid_expiration_time",
        "expirationTime",
    ),
    ("expiration-nan", body(expirationTime=math.nan), "invalid_expiration_time", "expirationTime"),
    ("expiration-inf", body(expirationTime=math.inf), "invalid_expiration_time", "expirationTime"),
    ("expiration-negative", body(expirationTime=-1), "invalid_expiration_time", "expirationTime"),
    (
        "expiration-huge-int",
        body(expirationTime=10**400),
        "invalid_expiration_time",
        "expirationTime",
    ),
    ("expiration-list", body(expirationTime=[1]), "invalid_expiration_time", "expirationTime"),
    (
        "encoding-unknown",
        body(contentEncoding="gzip"),
        "invalid_content_encoding",
        "contentEncoding",
    ),
    ("encoding-number", body(contentEncoding=1), "invalid_content_encoding", "contentEncoding"),
    (
        "encoding-case",
        body(contentEncoding="AES128GCM"),
        "invalid_content_encoding",
        "contentEncoding",
    ),
]


def test_corpus_is_big_and_ids_unique() -> None:
    assert len(BAD) >= 40
    assert len({case[0] for case in BAD}) == len(BAD)


@pytest.mark.parametrize(("data", "code", "field"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_subscription_is_refused(data: object, code: str, field: str | None) -> None:
    with pytest.raises(ValidationError) as info:
        parse_subscription(data)
    err = info.value
    assert err.code == code
    assert err.field == field
    assert err.status == 400
    assert len(err.message) > 15  # says something useful
    body = err.to_dict()["error"]
    assert body["code"] == code
    assert body.get("field") == field


# --------------------------------------------------------------------------- good cases


@pytest.mark.parametrize(
    "endpoint",
    [
        FCM,
        FCM_VAPID,
        GCM,
        MOZILLA,
        APPLE,
        WNS,
        "https://updates-autopush.push.services.mozilla.com/wpush/v1/abc",
        "https://api.push.apple.com/3/device/abc",
    ],
    ids=["fcm", "fcm-vapid", "gcm", "mozilla", "apple", "wns", "mozilla-sub", "apple-api"],
)
def test_each_browser_endpoint_shape_is_accepted(endpoint: str) -> None:
    sub = parse_subscription(body(endpoint))
    assert sub == Subscription(endpoint=endpoint, p256dh=P256DH, auth=AUTH)
    assert b64url_decode(sub.p256dh) == P256DH_RAW
    assert b64url_decode(sub.auth) == AUTH_RAW


def test_wns_query_string_is_kept_byte_for_byte() -> None:
    sub = parse_subscription(body(WNS))
    assert sub.endpoint == WNS
    assert "?token=BQYAAADtQ%2bH7KUCZB%2f" in sub.endpoint


def test_scheme_and_host_are_lower_cased_path_is_not() -> None:
    sub = parse_subscription(body("HTTPS://FCM.GoogleAPIs.com/fcm/send/AbC:Def"))
    assert sub.endpoint == "https://fcm.googleapis.com/fcm/send/AbC:Def"


def test_padding_is_tolerated_and_stored_canonical() -> None:
    padded_p = P256DH + "=" * (-len(P256DH) % 4)
    padded_a = AUTH + "=" * (-len(AUTH) % 4)
    assert padded_p != P256DH and padded_a != AUTH
    sub = parse_subscription(body(keys={"p256dh": padded_p, "auth": padded_a}))
    assert sub.p256dh == P256DH and "=" not in sub.p256dh
    assert sub.auth == AUTH and "=" not in sub.auth
    assert len(sub.p256dh) == 87 and len(sub.auth) == 22


def test_expiration_time_and_encoding_and_extras() -> None:
    sub = parse_subscription(
        body(expirationTime=1_700_000_000_000, contentEncoding="aesgcm", options={"x": 1})
    )
    assert sub.expiration_time == 1_700_000_000_000.0
    assert isinstance(sub.expiration_time, float)
    assert sub.content_encoding == "aesgcm"
    assert parse_subscription(body(expirationTime=0.5)).expiration_time == 0.5
    assert parse_subscription(body(contentEncoding=None)).content_encoding == "aes128gcm"
    assert parse_subscription(without(body(), "expirationTime")).expiration_time is None


def test_to_json_round_trips() -> None:
    sub = parse_subscription(body(APPLE, expirationTime=5))
    assert parse_subscription(sub.to_json()) == sub


# --------------------------------------------------------------------------- policy


DEV = EndpointPolicy(allow_localhost_http=True)


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://localhost:8090/notify/abc",
        "http://127.0.0.1:8090/notify/abc",
        "http://[::1]:8090/notify/abc",
        "https://localhost:8443/notify/abc",
        "http://LOCALHOST:8090/notify/abc",
        # The package's one loopback rule (webpush_kit._net): names under localhost and
        # all of 127.0.0.0/8 too.
        "http://push.localhost:8090/notify/abc",
        "http://127.0.0.2:8090/notify/abc",
    ],
)
def test_localhost_only_when_allowed(endpoint: str) -> None:
    assert (
        parse_subscription(body(endpoint), DEV).endpoint
        == endpoint.lower().replace("/notify/abc", "") + "/notify/abc"
    )
    with pytest.raises(ValidationError) as info:
        parse_subscription(body(endpoint))
    assert info.value.code in {
        "endpoint_not_https",
        "endpoint_host_not_allowed",
        "endpoint_ip_literal",
    }


@pytest.mark.parametrize(
    ("endpoint", "code"),
    [
        ("http://localhost/notify/abc", "invalid_endpoint"),
        ("http://10.0.0.1:8090/x", "endpoint_not_https"),
        ("https://10.0.0.1:8090/x", "endpoint_ip_literal"),
        ("http://example.com:8090/x", "endpoint_not_https"),
        ("http://localhost.evil.example:8090/x", "endpoint_not_https"),
        ("ws://localhost:8090/x", "endpoint_not_https"),
        ("http://127.1:8090/x", "endpoint_not_https"),
        ("http://[::ffff:127.0.0.1]:8090/x", "endpoint_not_https"),
        ("http://0.0.0.0:8090/x", "endpoint_not_https"),
    ],
)
def test_dev_policy_still_refuses_the_rest(endpoint: str, code: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_subscription(body(endpoint), DEV)
    assert (info.value.code, info.value.field) == (code, "endpoint")


def test_policy_with_hosts_extends_and_keeps_defaults() -> None:
    policy = DEFAULT_POLICY.with_hosts("push.example.org", "*.Self-Hosted.example")
    assert policy.allowed_hosts[: len(DEFAULT_POLICY.allowed_hosts)] == DEFAULT_POLICY.allowed_hosts
    assert parse_endpoint("https://push.example.org/x", policy)
    assert parse_endpoint("https://a.self-hosted.example/x", policy)
    assert parse_endpoint(FCM, policy) == FCM
    with pytest.raises(ValidationError):
        parse_endpoint("https://self-hosted.example/x", policy)
    with pytest.raises(ValidationError):
        parse_endpoint("https://push.example.org/x")  # default policy unchanged
    assert policy.with_hosts("push.example.org") == policy  # no duplicates


@pytest.mark.parametrize(
    "pattern",
    [
        "*.com",
        "*.",
        "",
        "bad host",
        "*.*.example.com",
        "https://push.example.org",
        "push.example.org:443",
        7,
    ],
)
def test_policy_refuses_bad_patterns(pattern: object) -> None:
    with pytest.raises(ConfigError):
        EndpointPolicy(allowed_hosts=(pattern,))  # type: ignore[arg-type]


def test_policy_refuses_a_bare_string() -> None:
    with pytest.raises(ConfigError):
        EndpointPolicy(allowed_hosts="push.example.org")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- base64url


@given(st.binary(max_size=200))
def test_b64url_round_trip_with_and_without_padding(raw: bytes) -> None:
    text = b64url_encode(raw)
    assert "=" not in text and "+" not in text and "/" not in text
    assert b64url_decode(text) == raw
    assert b64url_decode(base64.urlsafe_b64encode(raw).decode()) == raw


@pytest.mark.parametrize("text", ["a", "ab+c", "ab/c", "a=bc", "abcd=", "ab===", "é", "ab c"])
def test_b64url_decode_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        b64url_decode(text)


_json = st.recursive(
    st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(
    st.dictionaries(
        st.sampled_from(["endpoint", "keys", "expirationTime", "contentEncoding", "x"]), _json
    )
)
def test_arbitrary_json_only_ever_raises_validation_error(data: dict[str, Any]) -> None:
    try:
        parse_subscription(data)
    except ValidationError as err:
        assert err.code and err.message


# --------------------------------------------------------------------------- events


def test_event_types_are_the_documented_ones() -> None:
    assert set(OPT_IN_EVENT_TYPES) == {
        "prompt_shown",
        "prompt_allowed",
        "prompt_dismissed",
        "prompt_blocked",
        "soft_ask_shown",
        "soft_ask_allowed",
        "soft_ask_dismissed",
        "subscribed",
        "unsubscribed",
        "identified",
        "reset",
    }


def test_good_event() -> None:
    event = parse_opt_in_event(
        {
            "type": "subscribed",
            "endpoint": APPLE,
            "detail": {"source": "MOE_LIFECYCLE"},
            "timestamp": 1_700_000_000_123,
            "extra": 1,
        }
    )
    assert event == OptInEvent(
        type="subscribed",
        endpoint=APPLE,
        detail={"source": "MOE_LIFECYCLE"},
        client_time=1_700_000_000_123.0,
    )
    assert parse_opt_in_event({"type": "reset"}) == OptInEvent(type="reset")


BAD_EVENTS: list[tuple[str, object, str, str | None]] = [
    ("not-object", ["prompt_shown"], "invalid_event", None),
    ("type-missing", {}, "invalid_event_type", "type"),
    ("type-unknown", {"type": "clicked"}, "invalid_event_type", "type"),
    ("type-number", {"type": 1}, "invalid_event_type", "type"),
    (
        "endpoint-bad",
        {"type": "subscribed", "endpoint": "https://evil.example/x"},
        "endpoint_host_not_allowed",
        "endpoint",
    ),
    ("endpoint-number", {"type": "subscribed", "endpoint": 5}, "invalid_endpoint", "endpoint"),
    ("detail-list", {"type": "reset", "detail": [1]}, "invalid_detail", "detail"),
    ("detail-string", {"type": "reset", "detail": "x"}, "invalid_detail", "detail"),
    ("detail-nan", {"type": "reset", "detail": {"x": math.nan}}, "invalid_detail", "detail"),
    (
        "detail-too-big",
        {"type": "reset", "detail": {"x": "a" * MAX_DETAIL_BYTES}},
        "detail_too_large",
        "detail",
    ),
    (
        "detail-too-big-utf8",
        {"type": "reset", "detail": {"x": "é" * (MAX_DETAIL_BYTES // 2)}},
        "detail_too_large",
        "detail",
    ),
    ("detail-surrogate", {"type": "reset", "detail": {"x": "\ud800"}}, "invalid_detail", "detail"),
    ("timestamp-bool", {"type": "reset", "timestamp": True}, "invalid_timestamp", "timestamp"),
    ("timestamp-string", {"type": "reset", "timestamp": "now"}, "invalid_timestamp", "timestamp"),
    ("timestamp-negative", {"type": "reset", "timestamp": -5}, "invalid_timestamp", "timestamp"),
]


@pytest.mark.parametrize(
    ("data", "code", "field"), [c[1:] for c in BAD_EVENTS], ids=[c[0] for c in BAD_EVENTS]
)
def test_bad_event_is_refused(data: object, code: str, field: str | None) -> None:
    with pytest.raises(ValidationError) as info:
        parse_opt_in_event(data)
    assert (info.value.code, info.value.field) == (code, field)


def test_deeply_nested_detail_is_refused_not_crashing() -> None:
    detail: dict[str, Any] = {}
    node = detail
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(ValidationError) as info:
        parse_opt_in_event({"type": "reset", "detail": detail})
    assert info.value.code in {"invalid_detail", "detail_too_large"}


def test_event_batch_names_the_bad_item() -> None:
    events = parse_opt_in_events([{"type": "prompt_shown"}, {"type": "prompt_allowed"}])
    assert [e.type for e in events] == ["prompt_shown", "prompt_allowed"]
    with pytest.raises(ValidationError) as info:
        parse_opt_in_events([{"type": "prompt_shown"}, {"type": "nope"}])
    assert (info.value.code, info.value.field) == ("invalid_event_type", "events[1].type")
    with pytest.raises(ValidationError) as info:
        parse_opt_in_events([{"type": "prompt_shown", "endpoint": "http://fcm.googleapis.com/"}])
    assert (info.value.code, info.value.field) == ("endpoint_not_https", "events[0].endpoint")
    for bad in ([], {"type": "reset"}, "events", [{"type": "reset"}] * 101):
        with pytest.raises(ValidationError) as info:
            parse_opt_in_events(bad)
        assert info.value.code == "invalid_events"


# --------------------------------------------------------------------------- newcomer's bad input


@pytest.mark.parametrize(
    ("endpoint", "code"),
    [
        ("https://fcm.googleapis.com:8443/fcm/send/x", "endpoint_port_not_allowed"),
        ("https://web.push.apple.com:80/abc", "endpoint_port_not_allowed"),
        ("https://fcm.googleapis.com", "invalid_endpoint"),
        ("https://fcm.googleapis.com/", "invalid_endpoint"),
        ("https://fcm.googleapis.com?token=x", "invalid_endpoint"),
        ("https://updates.push.services.mozilla.com/", "invalid_endpoint"),
    ],
)
def test_a_port_or_a_missing_path_is_refused(endpoint: str, code: str) -> None:
    with pytest.raises(ValidationError) as info:
        parse_endpoint(endpoint)
    assert info.value.code == code and info.value.field == "endpoint"
    assert ("port" if code == "endpoint_port_not_allowed" else "no path") in info.value.message


@pytest.mark.parametrize(
    "endpoint",
    [FCM, FCM_VAPID, GCM, MOZILLA, APPLE, WNS,
     "https://updates-autopush.push.services.mozilla.com/wpush/v1/abc",
     "https://wns2-by3p.notify.windows.com/w/?token=BQYAAA%3d%3d",
     "https://fcm.googleapis.com:443/fcm/send/x"],  # the default port, spelt out
)
def test_real_endpoint_formats_still_pass(endpoint: str) -> None:
    assert parse_endpoint(endpoint).lower() == endpoint.lower()


def test_loopback_endpoints_keep_their_port_and_may_have_no_path() -> None:
    dev = EndpointPolicy(allow_localhost_http=True)
    assert parse_endpoint("http://localhost:8090/", dev) == "http://localhost:8090/"


def test_an_unknown_host_names_the_owners_setting() -> None:
    with pytest.raises(ValidationError) as info:
        parse_endpoint("https://push.example.org/abc")
    assert "push_hosts" in info.value.message and "WEBPUSH_PUSH_HOSTS" in info.value.message
    assert "EndpointPolicy" not in info.value.message


@pytest.mark.parametrize("pattern", ["*.co.uk", "*.com.au", "*.co.jp", "*.github.io", "*.uk"])
def test_policy_refuses_wildcards_over_public_suffixes(pattern: str) -> None:
    with pytest.raises(ConfigError) as info:
        EndpointPolicy(allowed_hosts=(pattern,))
    assert "public suffix" in info.value.allowed or "two labels" in info.value.allowed


def test_policy_accepts_wildcards_over_an_owned_domain() -> None:
    policy = EndpointPolicy(allowed_hosts=("*.example.co.uk", "*.example.com"))
    assert parse_endpoint("https://push.example.co.uk/x", policy)
    with pytest.raises(ValidationError):
        parse_endpoint("https://other.co.uk/x", policy)


def test_a_lone_surrogate_in_an_endpoint_is_called_non_ascii() -> None:
    with pytest.raises(ValidationError) as info:
        parse_endpoint("https://fcm.googleapis.com/fcm/send/\ud800")
    assert "non-ASCII" in info.value.message and "control" not in info.value.message
    with pytest.raises(ValidationError) as info:
        parse_endpoint("https://fcm.googleapis.com/fcm/send/a b")
    assert "spaces" in info.value.message and "non-ASCII" not in info.value.message


def test_event_detail_with_a_lone_surrogate_or_deep_nesting_says_so() -> None:
    with pytest.raises(ValidationError) as info:
        parse_opt_in_event({"type": "prompt_shown", "detail": {"k": "\udcff"}})
    assert info.value.field == "detail" and "lone surrogate" in info.value.message
    str(info.value).encode("utf-8")
    deep: object = 1
    for _ in range(100_000):
        deep = {"k": deep}
    with pytest.raises(ValidationError, match="nested too deeply"):
        parse_opt_in_event({"type": "prompt_shown", "detail": deep})
