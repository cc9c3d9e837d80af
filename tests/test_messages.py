"""Notification payloads and push options (webpush_kit/messages.py)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

import pytest

from webpush_kit.errors import ValidationError
from webpush_kit.messages import (
    DEFAULT_TTL,
    MAX_PAYLOAD_BYTES,
    MAX_TTL,
    PAYLOAD_MARKER,
    WARN_PAYLOAD_BYTES,
    Notification,
    NotificationAction,
    PushOptions,
    check_payload_size,
)


def payload_of(n: Notification) -> dict[str, object]:
    data: dict[str, object] = json.loads(n.to_payload())
    return data


def test_payload_is_compact_utf8_json_with_our_marker() -> None:
    n = Notification(
        title="Grüße 🎉",
        body="日本語 ✓ 👍🏽",
        icon="/static/icon-192.png",
        badge="/static/badge.png",
        image="https://cdn.shop-example.com/i.jpg",
        url="/orders/42?from=push",
        tag="order-42",
        actions=[
            {"action": "open", "title": "Öffnen"},
            NotificationAction("later", "Later", "/i/later.png"),
        ],
        data={"order": 42, "items": ["a", "b"]},
        require_interaction=True,
        silent=True,
        renotify=True,
        timestamp=1_700_000_000_000,
    )
    raw = n.to_payload()
    assert isinstance(raw, bytes)
    assert "Grüße 🎉".encode() in raw  # UTF-8, not \\u escapes
    assert b": " not in raw and b", " not in raw  # compact
    assert json.loads(raw) == {
        PAYLOAD_MARKER: 1,
        "title": "Grüße 🎉",
        "body": "日本語 ✓ 👍🏽",
        "icon": "/static/icon-192.png",
        "badge": "/static/badge.png",
        "image": "https://cdn.shop-example.com/i.jpg",
        "url": "/orders/42?from=push",
        "tag": "order-42",
        "actions": [
            {"action": "open", "title": "Öffnen"},
            {"action": "later", "title": "Later", "icon": "/i/later.png"},
        ],
        "data": {"order": 42, "items": ["a", "b"]},
        "requireInteraction": True,
        "silent": True,
        "renotify": True,
        "timestamp": 1_700_000_000_000,
    }


def test_unset_members_are_left_out() -> None:
    assert payload_of(Notification("Hi")) == {PAYLOAD_MARKER: 1, "title": "Hi"}


def test_payload_is_deterministic_and_frozen_at_construction() -> None:
    data = {"k": 1}
    n = Notification("Hi", data=data)
    first = n.to_payload()
    data["k"] = 2  # the caller's later change does not alter what was validated
    assert n.to_payload() == first == Notification("Hi", data={"k": 1}).to_payload()


def test_timestamp_from_an_aware_datetime() -> None:
    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert payload_of(Notification("Hi", timestamp=when))["timestamp"] == int(
        when.timestamp() * 1000
    )
    with pytest.raises(ValidationError, match="timezone"):
        Notification("Hi", timestamp=datetime(2024, 1, 2))


@pytest.mark.parametrize("title", ["", "   ", None, 5])
def test_title_is_required(title: object) -> None:
    with pytest.raises(ValidationError) as info:
        Notification(title)  # type: ignore[arg-type]
    assert info.value.field == "title"


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "data:text/html,x",
        "//evil.example.com/x",
        "orders/42",
        "ftp://x.com",
        "https://",
        "/a b",
        "/a\nb",
        "",
        "\\\\evil",
        "/\\evil.com",
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    for name in ("url", "icon", "badge", "image"):
        with pytest.raises(ValidationError) as info:
            Notification("Hi", **{name: url})  # type: ignore[arg-type]
        assert info.value.field == name


@pytest.mark.parametrize(
    "url", ["/", "/orders/42?x=1#top", "https://shop-example.com/a", "http://localhost:5000/dev"]
)
def test_good_urls_are_accepted(url: str) -> None:
    assert payload_of(Notification("Hi", url=url))["url"] == url


def test_actions_are_validated() -> None:
    with pytest.raises(ValidationError, match="at most 2"):
        Notification("Hi", actions=[{"action": str(i), "title": str(i)} for i in range(3)])
    with pytest.raises(ValidationError) as info:
        Notification("Hi", actions=[{"action": "open"}])
    assert info.value.field == "actions.title"
    with pytest.raises(ValidationError, match="unknown members"):
        Notification("Hi", actions=[{"action": "a", "title": "A", "onclick": "x"}])
    with pytest.raises(ValidationError):
        Notification("Hi", actions=[{"action": "a", "title": "A", "icon": "javascript:x"}])
    with pytest.raises(ValidationError):
        Notification("Hi", actions="open")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Notification("Hi", actions=["open"])  # type: ignore[list-item]


def test_renotify_needs_a_tag() -> None:
    with pytest.raises(ValidationError) as info:
        Notification("Hi", renotify=True)
    assert info.value.code == "renotify_without_tag"
    assert payload_of(Notification("Hi", renotify=True, tag="t"))["renotify"] is True


@pytest.mark.parametrize("data", [{1, 2}, float("nan"), {"x": object()}])
def test_data_must_be_json(data: object) -> None:
    with pytest.raises(ValidationError) as info:
        Notification("Hi", data=data)
    assert info.value.field == "data"


def test_from_dict_accepts_json_names_and_refuses_unknown_members() -> None:
    n = Notification.from_dict(
        {
            "title": "Hi",
            "requireInteraction": True,
            "actions": [{"action": "a", "title": "A"}],
            PAYLOAD_MARKER: 1,
        }
    )
    assert n.require_interaction is True and n.actions == (NotificationAction("a", "A"),)
    assert Notification.from_dict(json.loads(n.to_payload())) == n  # round trip
    with pytest.raises(ValidationError, match="unknown member 'colour'"):
        Notification.from_dict({"title": "Hi", "colour": "red"})
    with pytest.raises(ValidationError):
        Notification.from_dict({"body": "no title"})


# --------------------------------------------------------------------------- size


def notification_of_size(size: int) -> Notification:
    empty = len(Notification("T", body="").to_payload())
    return Notification("T", body="x" * (size - empty))


def test_size_limit_3993_accepted_3994_refused() -> None:
    ok = notification_of_size(MAX_PAYLOAD_BYTES)
    assert len(ok.to_payload()) == 3993
    with pytest.raises(ValidationError) as info:
        notification_of_size(MAX_PAYLOAD_BYTES + 1)
    assert info.value.code == "payload_too_large" and info.value.status == 413
    check_payload_size(b"x" * 3993)
    with pytest.raises(ValidationError):
        check_payload_size(b"x" * 3994)


def test_size_counts_utf8_bytes_not_characters() -> None:
    empty = len(Notification("T", body="").to_payload())
    emoji = "🎉"  # 4 bytes in UTF-8
    fits = (MAX_PAYLOAD_BYTES - empty) // 4
    Notification("T", body=emoji * fits)
    with pytest.raises(ValidationError):
        Notification("T", body=emoji * (fits + 1))


def test_warning_above_3070_bytes(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="webpush_kit.messages")
    notification_of_size(WARN_PAYLOAD_BYTES).to_payload()
    assert not caplog.records
    notification_of_size(WARN_PAYLOAD_BYTES + 1).to_payload()
    assert len(caplog.records) == 1
    assert "Firefox for Android" in caplog.records[0].getMessage()


# --------------------------------------------------------------------------- options


def test_default_ttl_is_nonzero() -> None:
    options = PushOptions()
    assert options.ttl == DEFAULT_TTL > 0
    assert options.headers() == {"TTL": str(DEFAULT_TTL), "Urgency": "normal"}


@pytest.mark.parametrize("ttl", [0, -1, MAX_TTL + 1, True, 1.5, "60", None])
def test_bad_ttl_is_refused(ttl: object) -> None:
    with pytest.raises(ValidationError) as info:
        PushOptions(ttl=ttl)  # type: ignore[arg-type]
    assert info.value.field == "ttl"


def test_zero_ttl_message_explains_why() -> None:
    with pytest.raises(ValidationError, match="WNS"):
        PushOptions(ttl=0)


@pytest.mark.parametrize("urgency", ["very-low", "low", "normal", "high"])
def test_urgency_values(urgency: str) -> None:
    assert PushOptions(urgency=urgency).headers()["Urgency"] == urgency  # type: ignore[arg-type]


@pytest.mark.parametrize("urgency", ["urgent", "HIGH", "", "low, high", None])
def test_bad_urgency_is_refused(urgency: object) -> None:
    with pytest.raises(ValidationError) as info:
        PushOptions(urgency=urgency)  # type: ignore[arg-type]
    assert info.value.field == "urgency"


@pytest.mark.parametrize("topic", ["a", "order-42_status", "A" * 32])
def test_good_topics(topic: str) -> None:
    assert PushOptions(topic=topic).headers()["Topic"] == topic


@pytest.mark.parametrize(
    "topic", ["", "A" * 33, "has space", "a+b", "a/b", "a=", "ünï", 42, "abc\n", "abc\r\nX: y"]
)
def test_bad_topics_are_refused(topic: object) -> None:
    with pytest.raises(ValidationError) as info:
        PushOptions(topic=topic)  # type: ignore[arg-type]
    assert info.value.field == "topic"


def test_headers_are_a_fresh_dict_each_time() -> None:
    options = PushOptions(ttl=60, urgency="high", topic="t")
    h = options.headers()
    h["TTL"] = "0"
    assert options.headers() == {"TTL": "60", "Urgency": "high", "Topic": "t"}


# --- bad input found by a newcomer -------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"title": "\ud800"}, "title"),
        ({"title": "ok", "body": "tail \udcff"}, "body"),
        ({"title": "ok", "tag": "t\ud800"}, "tag"),
        ({"title": "ok", "icon": "/i\ud800.png"}, "icon"),
        ({"title": "ok", "badge": "/b\ud800.png"}, "badge"),
        ({"title": "ok", "image": "https://cdn.example.com/\ud800.jpg"}, "image"),
        ({"title": "ok", "url": "/news/\udfff"}, "url"),
        ({"title": "ok", "actions": [{"action": "a\ud800", "title": "A"}]}, "actions.action"),
        ({"title": "ok", "actions": [{"action": "a", "title": "\ud800"}]}, "actions.title"),
        ({"title": "ok", "actions": [{"action": "a", "title": "A", "icon": "/\ud800"}]},
         "actions.icon"),
        ({"title": "ok", "data": {"k": ["x", "\ud800"]}}, "data"),
        ({"title": "ok", "data": {"k\ud800": 1}}, "data"),
    ],
)
def test_a_lone_surrogate_is_blamed_on_its_own_field(
    kwargs: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        Notification(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
    assert "lone surrogate" in info.value.message
    str(info.value).encode("utf-8")  # printable: the character is shown escaped


def test_a_surrogate_in_data_names_its_path() -> None:
    with pytest.raises(ValidationError, match=r"data\.k\[1\] holds '\\ud800'"):
        Notification(title="ok", data={"k": ["x", "\ud800"]})


@pytest.mark.parametrize(("field", "value"), [("topic", "t\ud800"), ("urgency", "\ud800")])
def test_push_options_text_with_a_lone_surrogate_is_refused_by_field(
    field: str, value: str
) -> None:
    with pytest.raises(ValidationError) as info:
        PushOptions(**{field: value})  # type: ignore[arg-type]
    assert info.value.field == field


def test_deeply_nested_data_is_a_validation_error_not_a_recursion_error() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ValidationError, match="nested too deeply") as info:
        Notification(title="t", data=deep)
    assert info.value.field == "data"
    shallow: object = "leaf"
    for _ in range(31):
        shallow = {"k": shallow}
    assert Notification(title="t", data=shallow).data == shallow  # 32 levels are fine


def test_circular_data_says_so() -> None:
    loop: list[object] = []
    loop.append(loop)
    with pytest.raises(ValidationError, match="circular reference") as info:
        Notification(title="t", data={"a": loop})
    assert info.value.field == "data"


@pytest.mark.parametrize(
    ("ttl", "says", "not_says"),
    [
        (0, "WNS", None),
        (-5, "got -5: a time to live cannot be negative", "WNS"),
        (MAX_TTL + 1, f"got {MAX_TTL + 1}: push services", "WNS"),
        (10**5000, "16 digits or more", "WNS"),
    ],
    ids=["zero", "negative", "above-max", "5000-digits"],
)
def test_ttl_message_fits_the_value_given(ttl: int, says: str, not_says: str | None) -> None:
    with pytest.raises(ValidationError) as info:
        PushOptions(ttl=ttl)
    assert f"between 1 and {MAX_TTL} seconds" in info.value.message
    assert says in info.value.message
    if not_says is not None:
        assert not_says not in info.value.message


def test_notifications_are_explicitly_unhashable() -> None:
    for n in (Notification(title="t", data={}), Notification(title="t")):
        with pytest.raises(TypeError, match="unhashable type: 'Notification'"):
            hash(n)
    assert Notification(title="t", data={"a": 1}) == Notification(title="t", data={"a": 1})
    assert hash(PushOptions(ttl=60)) == hash(PushOptions(ttl=60))  # plain values: hashable
