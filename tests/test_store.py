"""Tests for webpush_kit.store, each run on SQLite and on the real PostgreSQL server."""

from __future__ import annotations

import multiprocessing
import os
import traceback
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from webpush_kit.errors import ConfigError, ValidationError, WebPushKitError
from webpush_kit.store import (
    SCHEMA_VERSION,
    Store,
    SubscriptionRecord,
    meta,
    normalize_url,
    opt_in_events,
    subscriptions,
)
from webpush_kit.subscriptions import (
    OptInEvent,
    Subscription,
    b64url_encode,
    parse_opt_in_event,
    parse_subscription,
)

# Fixtures store / store_url (SQLite and PostgreSQL), pg_url, sqlite_url live there.
pytest_plugins = ["tests.dbs"]

FCM = "https://fcm.googleapis.com/fcm/send/"


def new_keys() -> tuple[str, str]:
    raw = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    )
    return b64url_encode(raw), b64url_encode(os.urandom(16))


def make_sub(endpoint: str, **kw: Any) -> Subscription:
    p256dh, auth = new_keys()
    return parse_subscription(
        {"endpoint": endpoint, "expirationTime": None, "keys": {"p256dh": p256dh, "auth": auth}}
        | kw
    )


def table_names(store: Store) -> set[str]:
    return set(sa.inspect(store.engine).get_table_names())


def row_count(store: Store, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def snapshot(store: Store) -> tuple[list[Any], list[Any]]:
    with store.engine.connect() as conn:
        subs = conn.execute(sa.select(subscriptions).order_by(subscriptions.c.id)).all()
        events = conn.execute(sa.select(opt_in_events).order_by(opt_in_events.c.id)).all()
    return [tuple(r) for r in subs], [tuple(r) for r in events]


# --------------------------------------------------------------------------- schema


def test_tables_created_lazily_with_schema_version(store_url: str) -> None:
    first = Store(store_url)
    assert not {n for n in table_names(first) if n.startswith("webpush_")}
    assert first.counts() == {"active": 0, "expired": 0, "unsubscribed": 0, "total": 0}
    assert {"webpush_kit_meta", "webpush_subscriptions", "webpush_opt_in_events"} <= table_names(
        first
    )
    with first.engine.connect() as conn:
        assert conn.execute(sa.select(meta.c.key, meta.c.value)).all() == [
            ("schema_version", str(SCHEMA_VERSION))
        ]
    second = Store(store_url)  # idempotent on an existing schema
    assert second.counts()["total"] == 0
    with second.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(meta)).scalar_one() == 1
    first.dispose()
    second.dispose()


def test_newer_schema_version_is_refused(store_url: str) -> None:
    old = Store(store_url)
    old.save_subscription(make_sub(FCM + "keep"), user_id="u1", anonymous_id=None)
    with old.engine.begin() as conn:
        conn.execute(sa.update(meta).values(value=str(SCHEMA_VERSION + 1)))
    before = snapshot(old)
    newer = Store(store_url)
    with pytest.raises(WebPushKitError) as info:
        newer.save_subscription(make_sub(FCM + "other"), user_id="u2", anonymous_id=None)
    assert info.value.code == "schema_version_unsupported"
    assert "upgrade webpush_kit" in info.value.message
    with pytest.raises(WebPushKitError):
        newer.counts()
    assert snapshot(old) == before
    old.dispose()
    newer.dispose()


# --------------------------------------------------------------------------- upsert


def test_upsert_never_duplicates_and_refreshes(store: Store) -> None:
    sub = make_sub(FCM + "a")
    first, created = store.save_subscription(
        sub, user_id="u1", anonymous_id="anon1", user_agent="UA/1", vapid_key="V1"
    )
    assert created is True
    assert first.status == "active" and first.failure_count == 0
    assert first.created_at.tzinfo is not None and first.created_at.utcoffset() == timedelta(0)
    store.record_outcome(sub.endpoint, ok=False, error="HTTP 500")
    store.mark_expired(sub.endpoint, "HTTP 410 Gone")
    assert store.get(sub.endpoint).status == "expired"  # type: ignore[union-attr]

    refreshed = make_sub(FCM + "a", expirationTime=1_800_000_000_000)
    second, created = store.save_subscription(
        refreshed, user_id="u1", anonymous_id="anon1", user_agent=None, vapid_key=None
    )
    assert created is False
    assert second.id == first.id
    assert (second.p256dh, second.auth) == (refreshed.p256dh, refreshed.auth)
    assert second.expiration_time == 1_800_000_000_000.0
    assert second.status == "active" and second.failure_count == 0 and second.last_error is None
    assert second.user_agent == "UA/1" and second.vapid_key == "V1"  # kept when not given
    assert second.created_at == first.created_at
    assert second.last_seen_at >= first.last_seen_at
    assert store.get(sub.endpoint) == second
    assert store.counts()["total"] == 1 and row_count(store, subscriptions) == 1


def test_post_under_another_user_transfers_ownership(store: Store) -> None:
    sub = make_sub(FCM + "shared")
    store.save_subscription(sub, user_id="alice", anonymous_id="dev1")
    record, created = store.save_subscription(sub, user_id="bob", anonymous_id=None)
    assert not created
    assert record.user_id == "bob"
    assert record.anonymous_id is None  # alice's anonymous id does not follow bob
    assert store.subscriptions_for_user("alice") == []
    assert [r.endpoint for r in store.subscriptions_for_user("bob")] == [sub.endpoint]


def test_anonymous_post_keeps_user_only_for_the_same_anonymous_id(store: Store) -> None:
    sub = make_sub(FCM + "anon")
    store.save_subscription(sub, user_id="alice", anonymous_id="dev1")
    same, _ = store.save_subscription(sub, user_id=None, anonymous_id="dev1")
    assert (same.user_id, same.anonymous_id) == ("alice", "dev1")
    kept, _ = store.save_subscription(sub, user_id="alice", anonymous_id=None)
    assert (kept.user_id, kept.anonymous_id) == ("alice", "dev1")
    other, _ = store.save_subscription(sub, user_id=None, anonymous_id="dev2")
    assert (other.user_id, other.anonymous_id) == (None, "dev2")
    nobody, _ = store.save_subscription(sub, user_id=None, anonymous_id=None)
    assert (nobody.user_id, nobody.anonymous_id) == (None, None)
    assert row_count(store, subscriptions) == 1


@pytest.mark.parametrize("length", [600, 2048])
def test_long_endpoints(store: Store, length: int) -> None:
    endpoint = FCM + "x" * (length - len(FCM))
    assert len(endpoint) == length
    record, created = store.save_subscription(make_sub(endpoint), user_id=None, anonymous_id="a")
    assert created and record.endpoint == endpoint
    other = endpoint[:-1] + "y"  # differs only in the last character
    _, created = store.save_subscription(make_sub(other), user_id=None, anonymous_id="a")
    assert created
    assert store.get(endpoint).endpoint == endpoint  # type: ignore[union-attr]
    assert store.counts()["total"] == 2


def test_remove_keeps_the_row(store: Store) -> None:
    sub = make_sub(FCM + "rm")
    store.save_subscription(sub, user_id="u", anonymous_id=None)
    assert store.remove_subscription(sub.endpoint) is True
    assert store.remove_subscription(FCM + "unknown") is False
    record = store.get(sub.endpoint)
    assert record is not None and record.status == "unsubscribed"
    # A repeated removal (a second DELETE) removes nothing and changes nothing.
    assert store.remove_subscription(sub.endpoint) is False
    assert store.get(sub.endpoint) == record
    assert store.subscriptions_for_user("u") == []
    assert store.subscriptions_for_user("u", active_only=False) == [record]
    store.mark_expired(sub.endpoint, "410")  # the user's choice wins
    assert store.get(sub.endpoint).status == "unsubscribed"  # type: ignore[union-attr]
    assert store.get(FCM + "never") is None


def test_user_agent_is_cleaned_and_truncated(store: Store) -> None:
    sub = make_sub(FCM + "ua")
    record, _ = store.save_subscription(
        sub, user_id=None, anonymous_id=None, user_agent="Mozilla\x00/5.0\n" + "x" * 1000
    )
    assert record.user_agent is not None
    assert len(record.user_agent) == 512 and "\x00" not in record.user_agent


# --------------------------------------------------------------------------- iteration


def bulk_insert(store: Store, count: int, status: str = "active", prefix: str = "bulk") -> None:
    """Fast fixture rows (the keys are valid but shared; iteration does not care)."""
    p256dh, auth = new_keys()
    now = datetime.now(UTC)
    store.counts()  # create the tables
    rows = [
        {
            "endpoint": f"{FCM}{prefix}-{status}-{i}",
            "p256dh": p256dh,
            "auth": auth,
            "content_encoding": "aes128gcm",
            "expiration_time": None,
            "user_id": None,
            "anonymous_id": None,
            "vapid_key": None,
            "user_agent": None,
            "status": status,
            "failure_count": 0,
            "last_error": None,
            "created_at": now,
            "updated_at": now,
            "last_seen_at": now,
        }
        for i in range(count)
    ]
    with store.engine.begin() as conn:
        conn.execute(sa.insert(subscriptions), rows)


@pytest.fixture
def selects(store: Store) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def listen(conn: Any, cursor: Any, statement: str, params: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "webpush_subscriptions" in statement:
            seen.append((statement, params))

    sa.event.listen(store.engine, "before_cursor_execute", listen)
    # The sender's reads go straight to the driver (Store._read), past SQLAlchemy's
    # events: record what they send there too.
    read = store._read

    def raw_read(raw: Any, params: Any, rows: Any) -> Any:
        listen(None, None, raw.sql, raw.params(params))
        return read(raw, params, rows)

    store._read = raw_read  # type: ignore[method-assign]
    yield seen
    del store._read
    sa.event.remove(store.engine, "before_cursor_execute", listen)


def assert_keyset(statement: str, params: Any) -> None:
    """Pagination by ``id > last``; SQLite renders ``LIMIT ? OFFSET ?`` with offset 0."""
    assert "webpush_subscriptions.id >" in statement and "LIMIT" in statement.upper()
    if "OFFSET" in statement.upper():
        assert list(params)[-1] == 0 if isinstance(params, tuple | list) else False


def test_iter_active_streams_in_bounded_batches(
    store: Store, selects: list[tuple[str, Any]]
) -> None:
    bulk_insert(store, 1200)
    bulk_insert(store, 50, status="expired")
    selects.clear()
    iterator = store.iter_active(batch_size=500)
    assert selects == []  # nothing read before the first item is asked for
    first = next(iterator)
    assert isinstance(first, SubscriptionRecord)
    assert len(selects) == 1
    assert_keyset(*selects[0])
    rest = list(iterator)
    records = [first, *rest]
    assert len(records) == 1200
    assert all(r.status == "active" for r in records)
    ids = [r.id for r in records]
    assert ids == sorted(ids) and len(set(ids)) == 1200
    assert len(selects) == 3  # 500 + 500 + 200
    for statement, params in selects:
        assert_keyset(statement, params)


def test_iter_active_exact_multiple_and_changes_between_batches(store: Store) -> None:
    bulk_insert(store, 20)
    seen = []
    for record in store.iter_active(batch_size=10):
        seen.append(record.endpoint)
        if len(seen) == 5:  # rows added or expired mid-stream: no crash, no repeats
            bulk_insert(store, 3, prefix="late")
            store.mark_expired(f"{FCM}bulk-active-19", "410")
    assert len(seen) == len(set(seen)) == 19 + 3
    assert list(store.iter_active(batch_size=1000)) == list(store.iter_active(batch_size=7))


@pytest.mark.parametrize("size", [0, -1, 10_001, True, 1.5, "10"])
def test_iter_active_refuses_bad_batch_size(store: Store, size: Any) -> None:
    with pytest.raises(ValidationError) as info:
        store.iter_active(batch_size=size)
    assert info.value.code == "invalid_batch_size"


# --------------------------------------------------------------------------- outcomes


def test_record_outcome_and_mark_expired(store: Store) -> None:
    sub = make_sub(FCM + "out")
    created, _ = store.save_subscription(sub, user_id="u", anonymous_id=None)
    store.record_outcome(sub.endpoint, ok=False, error="HTTP 503")
    store.record_outcome(sub.endpoint, ok=False, error="HTTP 429" + "!" * 900)
    failed = store.get(sub.endpoint)
    assert failed is not None
    assert failed.failure_count == 2 and failed.last_error is not None
    assert failed.last_error.startswith("HTTP 429") and len(failed.last_error) == 500
    assert failed.status == "active"
    store.record_outcome(sub.endpoint, ok=True)
    ok = store.get(sub.endpoint)
    assert ok is not None
    assert (ok.failure_count, ok.last_error, ok.status) == (0, None, "active")
    assert ok.last_seen_at >= created.last_seen_at
    store.mark_expired(sub.endpoint, "HTTP 410 Gone")
    gone = store.get(sub.endpoint)
    assert gone is not None and (gone.status, gone.last_error) == ("expired", "HTTP 410 Gone")
    assert list(store.iter_active()) == []
    store.record_outcome(FCM + "unknown", ok=True)  # unknown endpoints are a no-op
    store.mark_expired(FCM + "unknown", "410")


def test_record_outcomes_batch(store: Store) -> None:
    subs = [make_sub(f"{FCM}batch{i}") for i in range(4)]
    for s in subs:
        store.save_subscription(s, user_id=None, anonymous_id=None)
    store.record_outcome(subs[0].endpoint, ok=False, error="old")
    store.record_outcomes(
        [
            (subs[0].endpoint, "delivered", None),
            (subs[1].endpoint, "failed", "HTTP 500"),
            (subs[1].endpoint, "failed", "HTTP 502"),
            (subs[2].endpoint, "expired", "HTTP 404"),
            (FCM + "unknown", "failed", "x"),
        ]
    )
    got = {s.endpoint: store.get(s.endpoint) for s in subs}
    assert got[subs[0].endpoint].failure_count == 0  # type: ignore[union-attr]
    assert got[subs[1].endpoint].failure_count == 2  # type: ignore[union-attr]
    assert got[subs[2].endpoint].status == "expired"  # type: ignore[union-attr]
    assert got[subs[3].endpoint].failure_count == 0  # type: ignore[union-attr]
    assert store.counts() == {"active": 3, "expired": 1, "unsubscribed": 0, "total": 4}
    store.record_outcomes([])


@pytest.mark.parametrize(
    "batch",
    [
        [(FCM + "batch0", "bounced", None)],
        [(FCM + "batch0", "failed")],
        [(FCM + "batch0", "failed", None), ("x" * 3000, "failed", None)],
        ["nope"],
    ],
)
def test_record_outcomes_rejects_the_whole_bad_batch(store: Store, batch: Any) -> None:
    sub = make_sub(FCM + "batch0")
    store.save_subscription(sub, user_id=None, anonymous_id=None)
    before = snapshot(store)
    with pytest.raises(ValidationError) as info:
        store.record_outcomes(batch)
    assert info.value.code in {"invalid_outcome", "endpoint_too_long"}
    assert snapshot(store) == before


# --------------------------------------------------------------------------- identity


def test_link_anonymous_and_unlink_user(store: Store) -> None:
    a, b, c = (make_sub(f"{FCM}link{i}") for i in range(3))
    store.save_subscription(a, user_id=None, anonymous_id="dev1")
    store.save_subscription(b, user_id=None, anonymous_id="dev1")
    store.save_subscription(c, user_id="carol", anonymous_id="dev1")
    assert store.link_anonymous("dev1", "alice") == 2  # carol's stays carol's
    assert sorted(r.endpoint for r in store.subscriptions_for_user("alice")) == sorted(
        [a.endpoint, b.endpoint]
    )
    assert store.link_anonymous("dev1", "alice") == 0
    assert store.link_anonymous("nobody", "alice") == 0
    assert store.unlink_user("alice", endpoint=a.endpoint) == 1
    assert [r.endpoint for r in store.subscriptions_for_user("alice")] == [b.endpoint]
    assert store.unlink_user("alice") == 1
    assert store.subscriptions_for_user("alice") == []
    record = store.get(b.endpoint)
    assert record is not None and record.status == "active" and record.user_id is None
    assert store.counts()["total"] == 3


# --------------------------------------------------------------------------- events


def test_events_are_recorded_and_linked_to_their_subscription(store: Store) -> None:
    sub = make_sub(FCM + "ev")
    record, _ = store.save_subscription(sub, user_id=None, anonymous_id="dev1")
    events = [
        parse_opt_in_event({"type": "prompt_shown"}),
        parse_opt_in_event(
            {
                "type": "subscribed",
                "endpoint": sub.endpoint,
                "detail": {"via": "MOE_LIFECYCLE", "n": 1},
                "timestamp": 5,
            }
        ),
        parse_opt_in_event({"type": "subscribed", "endpoint": FCM + "not-stored"}),
    ]
    assert store.record_events(events, user_id=None, anonymous_id="dev1") == 3
    assert store.record_events([], user_id=None, anonymous_id=None) == 0
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(opt_in_events).order_by(opt_in_events.c.id)).all()
    assert [r.type for r in rows] == ["prompt_shown", "subscribed", "subscribed"]
    assert [r.subscription_id for r in rows] == [None, record.id, None]
    assert rows[2].endpoint == FCM + "not-stored"
    assert rows[1].detail == '{"n":1,"via":"MOE_LIFECYCLE"}'
    assert rows[1].client_time == 5.0
    assert all(r.anonymous_id == "dev1" and r.user_id is None for r in rows)
    assert all(r.created_at.tzinfo is not None for r in rows)


@pytest.mark.parametrize(
    "bad",
    [
        OptInEvent(type="clicked"),
        OptInEvent(type="reset", detail={"x": "y" * 5000}),
        OptInEvent(type="reset", detail={"x": float("nan")}),
        OptInEvent(type="reset", endpoint="x" * 3000),
        OptInEvent(type="reset", client_time=float("inf")),
        {"type": "reset"},
    ],
    ids=["type", "detail-size", "detail-nan", "endpoint", "time", "not-an-event"],
)
def test_a_bad_event_in_a_batch_writes_nothing(store: Store, bad: Any) -> None:
    good = [OptInEvent(type="prompt_shown"), OptInEvent(type="prompt_allowed")]
    store.counts()
    with pytest.raises(ValidationError):
        store.record_events([*good, bad, *good], user_id="u", anonymous_id="a")
    assert row_count(store, opt_in_events) == 0


def test_events_are_all_or_nothing_even_when_the_database_fails(store: Store) -> None:
    store.counts()

    def fail_after_insert(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO webpush_opt_in_events"):
            raise RuntimeError("disk on fire")

    sa.event.listen(store.engine, "after_cursor_execute", fail_after_insert)
    try:
        with pytest.raises(RuntimeError):
            store.record_events(
                [OptInEvent(type="prompt_shown")] * 5, user_id="u", anonymous_id=None
            )
    finally:
        sa.event.remove(store.engine, "after_cursor_execute", fail_after_insert)
    assert row_count(store, opt_in_events) == 0


def test_funnel_counts_distinct_people_per_type(store: Store) -> None:
    def ev(t: str) -> OptInEvent:
        return OptInEvent(type=t)

    store.record_events([ev("prompt_shown")] * 3, user_id=None, anonymous_id="dev1")
    store.record_events(
        [ev("prompt_shown"), ev("prompt_allowed"), ev("subscribed")],
        user_id="alice",
        anonymous_id="dev2",
    )
    store.record_events(
        [ev("prompt_shown"), ev("prompt_dismissed")], user_id=None, anonymous_id="dev3"
    )
    store.record_events([ev("prompt_shown")] * 2, user_id=None, anonymous_id=None)
    # alice again from another device: still one person
    store.record_events([ev("prompt_shown")], user_id="alice", anonymous_id="dev9")
    funnel = store.funnel()
    assert funnel["prompt_shown"] == 1 + 1 + 1 + 2  # dev1, alice, dev3, two unknowns
    assert funnel["prompt_allowed"] == 1
    assert funnel["prompt_dismissed"] == 1
    assert funnel["subscribed"] == 1
    assert funnel["prompt_blocked"] == 0
    assert set(funnel) >= {"soft_ask_shown", "identified", "reset"}


def test_counts_per_status(store: Store) -> None:
    subs = [make_sub(f"{FCM}count{i}") for i in range(5)]
    for s in subs:
        store.save_subscription(s, user_id=None, anonymous_id=None)
    store.mark_expired(subs[0].endpoint, "410")
    store.remove_subscription(subs[1].endpoint)
    store.remove_subscription(subs[2].endpoint)
    assert store.counts() == {"active": 2, "expired": 1, "unsubscribed": 2, "total": 5}


# --------------------------------------------------------------------------- erasure


def test_forget_erases_the_users_subscriptions_and_events(store: Store) -> None:
    mine = make_sub(FCM + "mine")
    also_mine = make_sub(FCM + "mine2")
    pre_login = make_sub(FCM + "prelogin")
    theirs = make_sub(FCM + "theirs")
    store.save_subscription(mine, user_id="alice", anonymous_id="devA")
    store.save_subscription(also_mine, user_id="alice", anonymous_id=None)
    store.save_subscription(pre_login, user_id=None, anonymous_id="devA")
    store.save_subscription(theirs, user_id="bob", anonymous_id="devB")
    store.record_events([OptInEvent(type="prompt_shown")], user_id=None, anonymous_id="devA")
    store.record_events([OptInEvent(type="identified")], user_id="alice", anonymous_id="devA")
    # logged out, same browser: an event about alice's subscription without her id
    store.record_events(
        [OptInEvent(type="unsubscribed", endpoint=also_mine.endpoint)],
        user_id=None,
        anonymous_id="devZ",
    )
    store.record_events([OptInEvent(type="prompt_shown")], user_id="bob", anonymous_id="devB")
    store.record_events([OptInEvent(type="prompt_shown")], user_id=None, anonymous_id="devC")

    assert store.forget("alice") == (2, 2)
    assert store.get(mine.endpoint) is None
    assert store.get(also_mine.endpoint) is None
    # Anonymous rows stay (an anonymous id proves nothing); nothing links them to her now.
    assert store.get(pre_login.endpoint) is not None
    assert store.get(theirs.endpoint) is not None
    with store.engine.connect() as conn:
        left = conn.execute(
            sa.select(opt_in_events.c.user_id, opt_in_events.c.anonymous_id).order_by(
                opt_in_events.c.id
            )
        ).all()
        users = set(conn.execute(sa.select(subscriptions.c.user_id)).scalars())
    assert [tuple(r) for r in left] == [(None, "devA"), ("bob", "devB"), (None, "devC")]
    assert "alice" not in users
    assert store.forget("alice") == (0, 0)
    assert store.forget("nobody") == (0, 0)


def test_forget_never_erases_rows_of_others_sharing_an_anonymous_id(store: Store) -> None:
    # Found by a newcomer: alice, logged in, posts events under an anonymous id she learnt
    # (bob's, also used by a logged-out guest); forget("alice") erased bob's events and
    # the guest's subscription.
    bob_sub, guest_sub, alice_sub = (make_sub(FCM + n) for n in ("bob", "guest", "alice"))
    store.save_subscription(bob_sub, user_id="bob", anonymous_id="victim-anon")
    store.save_subscription(guest_sub, user_id=None, anonymous_id="victim-anon")
    store.save_subscription(alice_sub, user_id="alice", anonymous_id="victim-anon")
    store.record_events([OptInEvent(type="identified"), OptInEvent(type="prompt_allowed")],
                        user_id="bob", anonymous_id="victim-anon")
    store.record_events([OptInEvent(type="prompt_shown")], user_id=None,
                        anonymous_id="victim-anon")
    store.record_events([OptInEvent(type="prompt_shown")], user_id="alice",
                        anonymous_id="victim-anon")
    assert store.forget("alice") == (1, 1)
    assert store.get(bob_sub.endpoint) is not None
    assert store.get(guest_sub.endpoint) is not None
    with store.engine.connect() as conn:
        left = conn.execute(sa.select(opt_in_events.c.user_id)).scalars().all()
    assert sorted(left, key=str) == sorted(["bob", "bob", None], key=str)


def test_deleting_a_subscription_keeps_its_events_unlinked(store: Store) -> None:
    sub = make_sub(FCM + "fk")
    record, _ = store.save_subscription(sub, user_id=None, anonymous_id="x")
    store.record_events(
        [OptInEvent(type="subscribed", endpoint=sub.endpoint)], user_id=None, anonymous_id="other"
    )
    with store.engine.begin() as conn:
        conn.execute(sa.delete(subscriptions).where(subscriptions.c.id == record.id))
        assert conn.execute(sa.select(opt_in_events.c.subscription_id)).scalar_one() is None


# --------------------------------------------------------------------------- bad input


BAD_CALLS: list[tuple[str, Any, str | None]] = [
    (
        "user-id-too-long",
        lambda s, sub: s.save_subscription(sub, user_id="u" * 256, anonymous_id=None),
        "user_id",
    ),
    (
        "user-id-empty",
        lambda s, sub: s.save_subscription(sub, user_id="", anonymous_id=None),
        "user_id",
    ),
    (
        "user-id-nul",
        lambda s, sub: s.save_subscription(sub, user_id="a\x00b", anonymous_id=None),
        "user_id",
    ),
    (
        "user-id-int",
        lambda s, sub: s.save_subscription(sub, user_id=5, anonymous_id=None),
        "user_id",
    ),
    (
        "user-id-surrogate",
        lambda s, sub: s.save_subscription(sub, user_id="\ud800", anonymous_id=None),
        "user_id",
    ),
    (
        "anon-too-long",
        lambda s, sub: s.save_subscription(sub, user_id=None, anonymous_id="a" * 256),
        "anonymous_id",
    ),
    (
        "vapid-key",
        lambda s, sub: s.save_subscription(
            sub, user_id=None, anonymous_id=None, vapid_key="k" * 300
        ),
        "vapid_key",
    ),
    (
        "not-a-subscription",
        lambda s, sub: s.save_subscription(sub.to_json(), user_id=None, anonymous_id=None),
        None,
    ),
    (
        "bad-p256dh",
        lambda s, sub: s.save_subscription(
            Subscription(sub.endpoint, "AAAA", sub.auth), user_id=None, anonymous_id=None
        ),
        "keys.p256dh",
    ),
    (
        "bad-auth",
        lambda s, sub: s.save_subscription(
            Subscription(sub.endpoint, sub.p256dh, "AAAA"), user_id=None, anonymous_id=None
        ),
        "keys.auth",
    ),
    (
        "bad-expiration",
        lambda s, sub: s.save_subscription(
            Subscription(sub.endpoint, sub.p256dh, sub.auth, float("nan")),
            user_id=None,
            anonymous_id=None,
        ),
        "expirationTime",
    ),
    (
        "bad-encoding",
        lambda s, sub: s.save_subscription(
            Subscription(sub.endpoint, sub.p256dh, sub.auth, None, "gzip"),
            user_id=None,
            anonymous_id=None,
        ),
        "contentEncoding",
    ),
    (
        "huge-endpoint",
        lambda s, sub: s.save_subscription(
            Subscription(FCM + "x" * 3000, sub.p256dh, sub.auth), user_id=None, anonymous_id=None
        ),
        "endpoint",
    ),
    ("remove-huge", lambda s, sub: s.remove_subscription("x" * 3000), "endpoint"),
    ("remove-int", lambda s, sub: s.remove_subscription(5), "endpoint"),
    ("link-empty", lambda s, sub: s.link_anonymous("", "u"), "anonymous_id"),
    ("link-none-user", lambda s, sub: s.link_anonymous("a", None), "user_id"),
    ("unlink-long", lambda s, sub: s.unlink_user("u" * 300), "user_id"),
    ("forget-none", lambda s, sub: s.forget(None), "user_id"),
    ("for-user-long", lambda s, sub: s.subscriptions_for_user("u" * 300), "user_id"),
    (
        "events-user",
        lambda s, sub: s.record_events(
            [OptInEvent(type="reset")], user_id="u" * 300, anonymous_id=None
        ),
        "user_id",
    ),
    (
        "events-string",
        lambda s, sub: s.record_events("reset", user_id=None, anonymous_id=None),
        "events",
    ),
    ("outcome-endpoint", lambda s, sub: s.record_outcome("", ok=True), "endpoint"),
    ("expired-endpoint", lambda s, sub: s.mark_expired(None, "410"), "endpoint"),
    ("reason-type", lambda s, sub: s.mark_expired(sub.endpoint, 410), "reason"),
]


@pytest.mark.parametrize(
    ("call", "field"), [c[1:] for c in BAD_CALLS], ids=[c[0] for c in BAD_CALLS]
)
def test_bad_input_raises_and_changes_nothing(store: Store, call: Any, field: str | None) -> None:
    sub = make_sub(FCM + "stable")
    store.save_subscription(sub, user_id="keep", anonymous_id="keep-anon")
    store.record_events(
        [OptInEvent(type="subscribed", endpoint=sub.endpoint)],
        user_id="keep",
        anonymous_id="keep-anon",
    )
    before = snapshot(store)
    with pytest.raises(ValidationError) as info:
        call(store, sub)
    assert info.value.field == field
    assert snapshot(store) == before


# --------------------------------------------------------------------------- engines


def test_urls_are_mapped_to_psycopg_and_others_refused() -> None:
    assert normalize_url("postgres://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"
    for bad in ("mysql://u:secret@h/db", "not a url"):
        with pytest.raises(ConfigError) as info:
            Store(bad)
        assert "secret" not in str(info.value)


def test_sqlite_file_store_uses_wal_and_creates_its_folder(tmp_path: Any) -> None:
    path = tmp_path / "instance" / "deep" / "webpush.db"
    st = Store.for_sqlite_path(path)
    st.save_subscription(make_sub(FCM + "wal"), user_id=None, anonymous_id=None)
    assert path.exists()
    with st.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    st.dispose()


def test_handed_in_engine_is_used_and_left_open(store_url: str) -> None:
    engine = sa.create_engine(normalize_url(store_url))
    st = Store(engine)
    assert st.engine is engine
    st.save_subscription(make_sub(FCM + "engine"), user_id="u", anonymous_id=None)
    st.dispose()
    with engine.connect() as conn:  # still usable by its owner
        assert conn.execute(sa.select(sa.func.count()).select_from(subscriptions)).scalar() == 1
    engine.dispose()


# --------------------------------------------------------------------------- processes

WORKERS = 4
PER_WORKER = 300
STRIDE = 100  # worker i posts endpoints i*100 .. i*100+299: heavy overlap


def _upsert_worker(url: str, index: int, start: Any, results: Any) -> None:
    try:
        st = Store(url)
        subs = [
            make_sub(f"{FCM}mp-{n}") for n in range(index * STRIDE, index * STRIDE + PER_WORKER)
        ]
        start.wait()
        created = 0
        for sub in subs:
            _, was_created = st.save_subscription(
                sub,
                user_id=f"user{index}",
                anonymous_id=f"anon{index}",
                user_agent=f"worker {index}",
            )
            created += was_created
        st.dispose()
        results.put((index, created, None))
    except BaseException:
        results.put((index, 0, traceback.format_exc()))


def test_several_processes_upsert_at_once(store_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_upsert_worker, args=(store_url, i, start, results))
        for i in range(WORKERS)
    ]
    for p in procs:
        p.start()
    start.set()  # all of them hit the fresh database (tables not created yet) together
    outcomes = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    errors = [err for _, _, err in outcomes if err]
    assert not errors, errors[0]
    distinct = (WORKERS - 1) * STRIDE + PER_WORKER
    st = Store(store_url)
    assert st.counts()["total"] == distinct
    assert sum(created for _, created, _ in outcomes) == distinct  # each created exactly once
    with st.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                subscriptions.c.endpoint, subscriptions.c.user_id, subscriptions.c.anonymous_id
            )
        ).all()
    for endpoint, user_id, anonymous_id in rows:
        n = int(endpoint.rsplit("-", 1)[1])
        posters = {i for i in range(WORKERS) if i * STRIDE <= n < i * STRIDE + PER_WORKER}
        assert user_id in {f"user{i}" for i in posters}
        assert anonymous_id == "anon" + user_id[4:]  # a row never mixes two posters
    st.dispose()


def test_one_store_shared_by_threads(store: Store) -> None:
    subs = [make_sub(f"{FCM}thread-{n}") for n in range(40)]

    def post(index: int) -> None:
        for sub in subs:
            store.save_subscription(sub, user_id=f"t{index}", anonymous_id=None)
        store.record_events(
            [OptInEvent(type="prompt_shown")], user_id=f"t{index}", anonymous_id=None
        )

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(post, range(6)))
    assert store.counts()["total"] == 40
    assert store.funnel()["prompt_shown"] == 6


def _forked_child(url: str, results: Any) -> None:
    try:
        st = _FORK_PARENT_STORE[url]  # inherited from the parent, pool included
        # the parent's pooled connections must not be reused by the child
        assert st.engine.pool.checkedin() == 0, "child inherited pooled connections"  # type: ignore[attr-defined]
        st.save_subscription(make_sub(FCM + "from-child"), user_id="child", anonymous_id=None)
        results.put(None)
    except BaseException:
        results.put(traceback.format_exc())


_FORK_PARENT_STORE: dict[str, Store] = {}


def test_store_used_in_a_forked_child(store: Store, store_url: str) -> None:
    store.save_subscription(make_sub(FCM + "from-parent"), user_id="parent", anonymous_id=None)
    _FORK_PARENT_STORE[store_url] = store
    assert store.engine.pool.checkedin() >= 1  # type: ignore[attr-defined]
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=_forked_child, args=(store_url, results))
    child.start()
    error = results.get(timeout=120)
    child.join(timeout=60)
    _FORK_PARENT_STORE.clear()
    assert error is None, error
    # the parent's pooled connection still works after the child went away
    store.save_subscription(make_sub(FCM + "parent-again"), user_id="parent", anonymous_id=None)
    assert store.counts()["total"] == 3


def _kill_other_backends(store: Store) -> int:
    """Terminate every other server process of the store's database (what a server restart
    or an idle-connection reaper does): the store's pooled connections are now dead, and
    it only finds out when it next uses them."""
    with store.engine.connect() as conn:
        killed = conn.exec_driver_sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).scalar_one()
        conn.invalidate()  # this one too: nothing alive stays in the pool
    return int(killed)


@pytest.mark.parametrize("replaces", [False, True], ids=["one-statement", "transaction"])
def test_postgresql_save_and_read_survive_a_dead_pooled_connection(
    pg_url: str, replaces: bool
) -> None:
    # The plain save is one autocommit upsert (idempotent, so it is sent again on a new
    # connection); a save that retires a replaced row is a transaction, sent again only
    # when the connection died before COMMIT. Either way the caller sees no error.
    store = Store(pg_url)
    old = make_sub(FCM + "dead-conn-old")
    store.save_subscription(old, user_id="u1", anonymous_id=None)
    # Hold several pooled connections at once so the pool has more than one to lose.
    conns = [store.engine.raw_connection() for _ in range(3)]
    for c in conns:
        c.close()
    assert _kill_other_backends(store) >= 1
    new = make_sub(FCM + "dead-conn-new")
    record, created = store.save_subscription(
        new, user_id="u2", anonymous_id="a2", replaces=old.endpoint if replaces else None
    )
    assert created is True and record.user_id == "u2"
    assert _kill_other_backends(store) >= 1
    got = store.get(new.endpoint)
    assert got is not None and (got.user_id, got.p256dh) == ("u2", new.p256dh)
    assert store.get(old.endpoint).status == ("unsubscribed" if replaces else "active")  # type: ignore[union-attr]
    store.dispose()


def test_record_outcomes_more_delivered_than_one_statement_takes(store: Store) -> None:
    # Delivered outcomes are written as UPDATE ... WHERE endpoint IN (...), in chunks:
    # SQLite refuses more than 32766 parameters in one statement.
    bulk_insert(store, 2500)
    eps = [r.endpoint for r in store.iter_active()]
    with store.engine.begin() as conn:
        conn.execute(subscriptions.update().values(failure_count=2, last_error="503"))
    store.record_outcomes([(e, "delivered", None) for e in eps[:2400]])
    rows = {r.endpoint: r for r in store.iter_active()}
    assert all(rows[e].failure_count == 0 and rows[e].last_error is None for e in eps[:2400])
    assert all(rows[e].failure_count == 2 for e in eps[2400:])


def test_an_id_that_is_not_unicode_text_is_refused_as_such(store: Store) -> None:
    with pytest.raises(ValidationError) as info:
        store.save_subscription(make_sub(FCM + "surrogate"), user_id="\ud800",
                                anonymous_id=None)
    assert info.value.field == "user_id" and "lone surrogate" in info.value.message
    with pytest.raises(ValidationError, match="control characters"):
        store.save_subscription(make_sub(FCM + "nul"), user_id="a\x00", anonymous_id=None)
    assert store.counts()["total"] == 0


def test_an_sqlite_path_that_is_a_folder_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        Store.for_sqlite_path(tmp_path)
    assert info.value.key == "database_url" and "not a folder" in info.value.allowed
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="folder that exists"):
        Store.for_sqlite_path(blocker / "sub" / "db.sqlite3")
