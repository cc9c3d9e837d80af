"""Where subscriptions and opt-in events live: SQLAlchemy Core on SQLite or PostgreSQL.

SQLite (the default, a file in the Flask instance folder) runs in WAL mode with a 30 s
busy timeout and foreign keys on; every write transaction starts with ``BEGIN IMMEDIATE``
so several worker processes can write at once without ``database is locked`` or the
deadlock a deferred read-then-write transaction can hit. ``synchronous = NORMAL`` (the
setting SQLite recommends with WAL) never corrupts the file; a power cut may lose the last
commits, a crashed process loses nothing. It makes a commit about 3x cheaper.
PostgreSQL is used through psycopg 3 (``postgres://`` and ``postgresql://`` URLs are
mapped to it).

Tables are created on first use, idempotently and safely when several processes start at
once (SQLite: the write lock; PostgreSQL: an advisory transaction lock). The
``webpush_kit_meta`` table records ``schema_version``; a database written by a newer
webpush_kit is refused rather than misread.

Ownership rules of :meth:`Store.save_subscription` (a subscription belongs to a browser
profile, which people may share): the row always describes its last poster. A post that
names a user id takes the subscription (ownership transfer). A post without a user id
keeps the stored user id only when it carries the same anonymous id as the stored one
(same person, e.g. a page load before the login state was known); otherwise the
subscription becomes anonymous (a different person on a shared profile). The anonymous
id is carried over symmetrically: kept only when the post names the same user.
A subscription that replaces another (``replaces=``, the browser's
``pushsubscriptionchange``) and names no user inherits the replaced row's owner.

Every input is validated before anything is written; bad input raises
:class:`~webpush_kit.errors.ValidationError` and leaves the database unchanged.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Dialect, Engine, make_url

from webpush_kit.errors import ConfigError, ValidationError, WebPushKitError
from webpush_kit.messages import lone_surrogate
from webpush_kit.subscriptions import (
    CONTENT_ENCODINGS,
    MAX_ENDPOINT_LENGTH,
    OPT_IN_EVENT_TYPES,
    OptInEvent,
    Subscription,
    detail_json,
    parse_auth,
    parse_p256dh,
)

__all__ = [
    "OUTCOME_STATUSES",
    "SCHEMA_VERSION",
    "STATUSES",
    "Store",
    "SubscriptionRecord",
    "metadata",
    "opt_in_events",
    "subscriptions",
]

SCHEMA_VERSION: Final = 1
STATUSES: Final = ("active", "expired", "unsubscribed")
OUTCOME_STATUSES: Final = ("delivered", "expired", "failed")
MAX_ID_LENGTH: Final = 255
MAX_USER_AGENT_LENGTH: Final = 512
MAX_ERROR_LENGTH: Final = 500
MAX_EVENTS_PER_CALL: Final = 1000
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
#: PostgreSQL connections are replaced after this long (below common server/proxy idle
#: limits), and pinged at checkout only after this long unused in the pool: a busy
#: server pays no ping per query (``pool_pre_ping`` would), an idle one finds out that a
#: pooled connection died before using it.
PG_POOL_RECYCLE_S: Final = 1800
PG_PING_AFTER_IDLE_S: Final = 10.0
# pg_advisory_xact_lock key serialising table creation ("webpush" in ASCII).
_PG_SCHEMA_LOCK: Final = 0x77656270757368


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores naive UTC text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _id_type() -> sa.types.TypeEngine[int]:
    # INTEGER PRIMARY KEY is SQLite's rowid alias (autoincrementing); BIGINT elsewhere.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


metadata = sa.MetaData()

meta = sa.Table(
    "webpush_kit_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

subscriptions = sa.Table(
    "webpush_subscriptions",
    metadata,
    sa.Column("id", _id_type(), primary_key=True, autoincrement=True),
    sa.Column("endpoint", sa.Text, nullable=False, unique=True),
    sa.Column("p256dh", sa.String(128), nullable=False),
    sa.Column("auth", sa.String(64), nullable=False),
    sa.Column("content_encoding", sa.String(16), nullable=False),
    sa.Column("expiration_time", sa.Float, nullable=True),
    sa.Column("user_id", sa.String(MAX_ID_LENGTH), nullable=True, index=True),
    sa.Column("anonymous_id", sa.String(MAX_ID_LENGTH), nullable=True, index=True),
    sa.Column("vapid_key", sa.String(MAX_ID_LENGTH), nullable=True),
    sa.Column("user_agent", sa.String(MAX_USER_AGENT_LENGTH), nullable=True),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("failure_count", sa.Integer, nullable=False),
    sa.Column("last_error", sa.String(MAX_ERROR_LENGTH), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen_at", UTCDateTime(), nullable=False),
    sa.CheckConstraint(
        "status IN ('active', 'expired', 'unsubscribed')", name="webpush_subscriptions_status"
    ),
)

opt_in_events = sa.Table(
    "webpush_opt_in_events",
    metadata,
    sa.Column("id", _id_type(), primary_key=True, autoincrement=True),
    sa.Column("type", sa.String(32), nullable=False, index=True),
    sa.Column("user_id", sa.String(MAX_ID_LENGTH), nullable=True, index=True),
    sa.Column("anonymous_id", sa.String(MAX_ID_LENGTH), nullable=True, index=True),
    sa.Column(
        "subscription_id",
        _id_type(),
        sa.ForeignKey("webpush_subscriptions.id", ondelete="SET NULL"),
        nullable=True,
        index=True,
    ),
    sa.Column("endpoint", sa.Text, nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
    sa.Column("client_time", sa.Float, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
)


@dataclass(frozen=True)
class SubscriptionRecord:
    """One stored subscription row."""

    id: int
    endpoint: str
    p256dh: str
    auth: str
    content_encoding: str
    expiration_time: float | None
    user_id: str | None
    anonymous_id: str | None
    vapid_key: str | None
    user_agent: str | None
    status: str
    failure_count: int
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    last_seen_at: datetime

    @property
    def subscription(self) -> Subscription:
        """The push subscription alone, as the sender needs it."""
        return Subscription(
            endpoint=self.endpoint,
            p256dh=self.p256dh,
            auth=self.auth,
            expiration_time=self.expiration_time,
            content_encoding=self.content_encoding,
        )


_RECORD_FIELDS: Final = tuple(f.name for f in fields(SubscriptionRecord))


def _record(row: sa.Row[Any]) -> SubscriptionRecord:
    m = row._mapping
    return SubscriptionRecord(**{name: m[name] for name in _RECORD_FIELDS})


# --------------------------------------------------------------------------- input checks


def _now() -> datetime:
    return datetime.now(UTC)


def _bad(field: str, message: str, code: str) -> ValidationError:
    return ValidationError(message, field=field, code=code)


def _check_id(value: object, field: str) -> str | None:
    """A user or anonymous id: None, or 1..255 printable characters."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _bad(field, "must be a non-empty string or null", f"invalid_{field}")
    if len(value) > MAX_ID_LENGTH:
        raise _bad(field, f"is longer than {MAX_ID_LENGTH} characters", f"invalid_{field}")
    if lone_surrogate(value):
        raise _bad(field, "is not valid Unicode text (it holds a lone surrogate such as "
                   "\\ud800); pass the id as the user's real text", f"invalid_{field}")
    if not value.isprintable():
        raise _bad(field, "must not contain control characters", f"invalid_{field}")
    return value


def _require_id(value: object, field: str) -> str:
    checked = _check_id(value, field)
    if checked is None:
        raise _bad(field, "is required", f"invalid_{field}")
    return checked


def _check_endpoint(value: object, field: str = "endpoint") -> str:
    """The lookup key; the full URL rules live in subscriptions.parse_endpoint."""
    if not isinstance(value, str) or not value:
        raise _bad(field, "must be a non-empty string", "invalid_endpoint")
    if len(value) > MAX_ENDPOINT_LENGTH:
        raise _bad(field, f"is longer than {MAX_ENDPOINT_LENGTH} characters", "endpoint_too_long")
    if not value.isascii() or not value.isprintable() or " " in value:
        raise _bad(field, "must be a URL without spaces or control characters", "invalid_endpoint")
    return value


def _clean_text(value: object, limit: int, field: str) -> str | None:
    """Free text we only keep for people (user agent, errors): cleaned and truncated."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(field, "must be a string or null", f"invalid_{field}")
    text = value.encode("utf-8", "replace").decode("utf-8")
    text = "".join(ch if ch.isprintable() else " " for ch in text).strip()
    return text[:limit] or None


def _check_subscription(sub: object) -> Subscription:
    if not isinstance(sub, Subscription):
        raise ValidationError(
            "save_subscription needs a Subscription from parse_subscription()",
            code="invalid_subscription",
        )
    endpoint = _check_endpoint(sub.endpoint)
    p256dh = parse_p256dh(sub.p256dh)
    auth = parse_auth(sub.auth)
    exp = sub.expiration_time
    if exp is not None and (
        isinstance(exp, bool)
        or not isinstance(exp, int | float)
        or not math.isfinite(exp)
        or exp < 0
    ):
        raise _bad(
            "expirationTime",
            "must be null or a finite, non-negative number",
            "invalid_expiration_time",
        )
    if sub.content_encoding not in CONTENT_ENCODINGS:
        raise _bad("contentEncoding", "must be 'aes128gcm' or 'aesgcm'", "invalid_content_encoding")
    return Subscription(
        endpoint=endpoint,
        p256dh=p256dh,
        auth=auth,
        expiration_time=None if exp is None else float(exp),
        content_encoding=sub.content_encoding,
    )


def _check_vapid_key(value: object) -> str | None:
    if value is None:
        return None
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_ID_LENGTH
        or not value.isascii()
        or not value.isprintable()
    ):
        raise _bad(
            "vapid_key",
            f"must be a printable ASCII string of at most {MAX_ID_LENGTH} characters",
            "invalid_vapid_key",
        )
    return value


def _event_row(event: object, index: int) -> dict[str, Any]:
    prefix = f"events[{index}]."
    if not isinstance(event, OptInEvent):
        raise ValidationError(
            "must be an OptInEvent from parse_opt_in_event()",
            field=f"events[{index}]",
            code="invalid_event",
        )
    if event.type not in OPT_IN_EVENT_TYPES:
        raise _bad(
            prefix + "type", "must be one of " + ", ".join(OPT_IN_EVENT_TYPES), "invalid_event_type"
        )
    endpoint = (
        None if event.endpoint is None else _check_endpoint(event.endpoint, prefix + "endpoint")
    )
    ct = event.client_time
    if ct is not None and (
        isinstance(ct, bool) or not isinstance(ct, int | float) or not math.isfinite(ct)
    ):
        raise _bad(prefix + "timestamp", "must be null or a finite number", "invalid_timestamp")
    return {
        "type": event.type,
        "endpoint": endpoint,
        "detail": detail_json(event.detail, prefix + "detail"),
        "client_time": None if ct is None else float(ct),
    }


# --------------------------------------------------------------------------- engines


#: The drivers the store is written and tested for, per backend.
_DRIVERS: Final = {"sqlite": "pysqlite", "postgresql": "psycopg"}


def normalize_url(url: str) -> sa.URL:
    """Parse a database URL; ``postgres://`` and ``postgresql://`` use psycopg 3.

    Only the parse and the backend are checked here (no import, no connection); see
    :func:`check_database_url` for the driver."""
    if not isinstance(url, str):
        raise ConfigError("database_url", url, "a URL string such as sqlite:///path/to/file.db")
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        raise ConfigError(
            "database_url",
            _hide_password(url),
            "use sqlite:///path/to/file.db or postgresql://user@host/db",
        ) from None
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS:
        raise ConfigError(
            "database_url",
            parsed.render_as_string(hide_password=True),
            "only SQLite (sqlite:///file.db) and PostgreSQL (postgresql://...) are supported",
        )
    if parsed.get_driver_name() != _DRIVERS[backend]:
        raise ConfigError(
            "database_url",
            parsed.render_as_string(hide_password=True),
            "PostgreSQL through psycopg 3 (postgresql:// or postgresql+psycopg://), SQLite "
            "through Python's sqlite3 (sqlite:///file.db)",
        )
    return parsed


def check_database_url(url: str) -> sa.URL:
    """:func:`normalize_url`, and the driver importable: what start-up checks, so that a
    wrong URL stops the app there instead of failing every request."""
    parsed = normalize_url(url)
    try:
        parsed.get_dialect().import_dbapi()
    except ImportError as exc:
        raise ConfigError(
            "database_url",
            parsed.render_as_string(hide_password=True),
            f"its driver is not installed ({exc.name or exc}): pip install "
            "'webpush_kit[postgres]'",
        ) from None
    return parsed


def check_engine(engine: Engine) -> None:
    """An engine handed in must use a backend and driver the store supports."""
    if not isinstance(engine, Engine):
        raise ConfigError("engine", engine, "an SQLAlchemy Engine (give a URL string as "
                          "database_url instead)")
    dialect = engine.dialect
    if _DRIVERS.get(dialect.name) != dialect.driver:
        raise ConfigError(
            "engine",
            engine.url.render_as_string(hide_password=True),
            "an engine on SQLite (Python's sqlite3) or PostgreSQL through psycopg 3",
        )


def _hide_password(url: str) -> str:
    """``url`` with what looks like a password replaced by ***, for a URL that does not
    even parse (an error message must not show it)."""
    return re.sub(r"(//[^/?#@:]*:)[^/?#@]*@", r"\1***@", url)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" hook (below) emit BEGIN, so we choose its kind.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    mode = conn.get_execution_options().get("webpush_sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {'IMMEDIATE' if mode == 'IMMEDIATE' else 'DEFERRED'}")


def _pg_on_checkin(_dbapi_conn: Any, record: Any) -> None:
    if record is not None:
        record.info["webpush_idle_since"] = time.monotonic()
        record.info["webpush_reused"] = True


def _pg_on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """Ping a connection that sat unused in the pool for a while (a cheap local check
    otherwise); a dead one makes the pool connect afresh (``DisconnectionError``)."""
    if dbapi_conn.closed:
        raise sa.exc.DisconnectionError("the pooled connection is closed")
    idle_since = record.info.get("webpush_idle_since")
    if idle_since is None or time.monotonic() - idle_since < PG_PING_AFTER_IDLE_S:
        return
    record.info["webpush_idle_since"] = None
    try:
        _pg_ping(dbapi_conn)
    except Exception as exc:
        raise sa.exc.DisconnectionError(f"the pooled connection is dead: {exc}") from exc


def _pg_ping(dbapi_conn: Any) -> None:
    autocommit = dbapi_conn.autocommit
    dbapi_conn.autocommit = True
    try:
        dbapi_conn.execute("SELECT 1")
    finally:
        if not dbapi_conn.closed:
            dbapi_conn.autocommit = autocommit


def _configure_postgresql(engine: Engine) -> None:
    if not event.contains(engine, "checkin", _pg_on_checkin):
        event.listen(engine, "checkin", _pg_on_checkin)
    if not event.contains(engine, "checkout", _pg_on_checkout):
        event.listen(engine, "checkout", _pg_on_checkout)


def _configure_sqlite(engine: Engine) -> None:
    if not event.contains(engine, "connect", _sqlite_on_connect):
        event.listen(engine, "connect", _sqlite_on_connect)
    if not event.contains(engine, "begin", _sqlite_on_begin):
        event.listen(engine, "begin", _sqlite_on_begin)


# --------------------------------------------------------------------------- statements

_EXISTS: Final = sa.select(subscriptions.c.id).where(
    subscriptions.c.endpoint == sa.bindparam("b_endpoint")
)


# Built once: the API reads a subscription on every callback (the page-load re-sync).
_GET: Final = sa.select(subscriptions).where(
    subscriptions.c.endpoint == sa.bindparam("b_endpoint")
)


# One keyset page of active subscriptions (the sender streams them all).
_ACTIVE: Final = (
    sa.select(subscriptions)
    .where(subscriptions.c.status == "active", subscriptions.c.id > sa.bindparam("b_last"))
    .order_by(subscriptions.c.id)
    .limit(sa.bindparam("b_limit"))
)


class _Raw:
    """A statement compiled once for a dialect, run straight on the driver's cursor.

    Parameters and results go through the same bind and result processors SQLAlchemy
    itself applies (SQLite's datetime text, the UTC conversion); result processors are
    looked up once, from the first result's column types, as SQLAlchemy does.
    """

    def __init__(
        self,
        stmt: Any,
        dialect: Dialect,
        *,
        column_keys: Sequence[str] | None = None,
        result_types: Sequence[sa.types.TypeEngine[Any]] = (),
    ) -> None:
        compiled = stmt.compile(dialect=dialect, column_keys=column_keys)
        self._compiled = compiled
        self.dialect = dialect
        self.sql = str(compiled)
        self._order = tuple(compiled.positiontup or ()) if dialect.positional else None
        self._binds = {
            name: proc
            for name, bind in compiled.binds.items()
            if (proc := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }
        self._result_types = tuple(result_types)
        self._processors: tuple[Callable[[Any], Any] | None, ...] | None = None

    def params(self, values: Mapping[str, Any]) -> Any:
        params = self._compiled.construct_params(dict(values))
        for name, proc in self._binds.items():
            if name in params and params[name] is not None:
                params[name] = proc(params[name])
        if self._order is not None:
            return tuple(params[name] for name in self._order)
        return params

    def row(self, row: Sequence[Any], cursor: Any) -> list[Any]:
        """``row`` of ``cursor``'s result, processed (the description is read once)."""
        processors = self._processors
        if processors is None:
            processors = self._processors = tuple(
                t.dialect_impl(self.dialect).result_processor(self.dialect, d[1])
                for t, d in zip(self._result_types, cursor.description, strict=True)
            )
        return [
            value if proc is None or value is None else proc(value)
            for proc, value in zip(processors, row, strict=True)
        ]


_SUBSCRIPTION_TYPES: Final = tuple(c.type for c in subscriptions.c)
_VALUE_KEYS: Final = tuple(c.name for c in subscriptions.c if c.name != "id")


class _RawStatements:
    """The callback hot path's statements, compiled once per store."""

    def __init__(self, dialect: Dialect) -> None:
        assert tuple(c.name for c in _GET.selected_columns) == _RECORD_FIELDS
        assert tuple(c.name for c in subscriptions.c) == _RECORD_FIELDS
        sqlite = dialect.name == "sqlite"
        self.get = _Raw(_GET, dialect, result_types=_SUBSCRIPTION_TYPES)
        self.active = _Raw(_ACTIVE, dialect, result_types=_SUBSCRIPTION_TYPES)
        self.exists = _Raw(_EXISTS, dialect)
        self.retire = _Raw(_RETIRE, dialect, result_types=(
            subscriptions.c.user_id.type, subscriptions.c.anonymous_id.type))
        self.link = _Raw(_LINK, dialect)
        self.upsert = _Raw(
            _upsert_statement(dialect.name), dialect, column_keys=_VALUE_KEYS,
            result_types=_SUBSCRIPTION_TYPES + (() if sqlite else (sa.Boolean(),)),
        )


_IN_CHUNK: Final = 1000

# Records a delivery to many subscriptions at once (same time, failures reset).
_DELIVERED: Final = (
    sa.update(subscriptions)
    .where(subscriptions.c.endpoint.in_(sa.bindparam("b_endpoints", expanding=True)))
    .values(
        failure_count=0,
        last_error=None,
        last_seen_at=sa.bindparam("b_now"),
        updated_at=sa.bindparam("b_now"),
    )
)

# Marks a replaced subscription unsubscribed and returns its owner.
_RETIRE: Final = (
    sa.update(subscriptions)
    .where(subscriptions.c.endpoint == sa.bindparam("b_endpoint"))
    .values(status="unsubscribed", updated_at=sa.bindparam("b_now"))
    .returning(subscriptions.c.user_id, subscriptions.c.anonymous_id)
)

# Gives a user the anonymous subscriptions of an anonymous id (login).
_LINK: Final = (
    sa.update(subscriptions)
    .where(
        subscriptions.c.anonymous_id == sa.bindparam("b_anon"),
        subscriptions.c.user_id.is_(None),
    )
    .values(user_id=sa.bindparam("b_user"), updated_at=sa.bindparam("b_now"))
)


@lru_cache(maxsize=2)
def _upsert_statement(dialect_name: str) -> Any:
    """``INSERT ... ON CONFLICT (endpoint) DO UPDATE ... RETURNING``, built once per dialect.

    Executed with a dict of column values. On PostgreSQL it also returns ``created``:
    ``xmax = 0`` holds only for a row this statement inserted, not one it updated.
    """
    t = subscriptions
    insert = sqlite_dialect.insert if dialect_name == "sqlite" else pg_dialect.insert
    stmt = insert(t)
    ex = stmt.excluded
    new_user = sa.case(
        (ex.user_id.is_not(None), ex.user_id),
        (sa.and_(ex.anonymous_id.is_not(None), t.c.anonymous_id == ex.anonymous_id), t.c.user_id),
        else_=sa.null(),
    )
    new_anon = sa.case(
        (ex.anonymous_id.is_not(None), ex.anonymous_id),
        (sa.and_(ex.user_id.is_not(None), t.c.user_id == ex.user_id), t.c.anonymous_id),
        else_=sa.null(),
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[t.c.endpoint],
        set_={
            "p256dh": ex.p256dh,
            "auth": ex.auth,
            "content_encoding": ex.content_encoding,
            "expiration_time": ex.expiration_time,
            "user_id": new_user,
            "anonymous_id": new_anon,
            "vapid_key": sa.func.coalesce(ex.vapid_key, t.c.vapid_key),
            "user_agent": sa.func.coalesce(ex.user_agent, t.c.user_agent),
            "status": "active",
            "failure_count": 0,
            "last_error": None,
            "updated_at": ex.updated_at,
            "last_seen_at": ex.last_seen_at,
        },
    )
    if dialect_name == "sqlite":
        return stmt.returning(*t.c)
    return stmt.returning(*t.c, sa.literal_column("(xmax = 0)", sa.Boolean).label("created"))


# --------------------------------------------------------------------------- the store


@dataclass(frozen=True, slots=True)
class _Attempt:
    number: int
    limit: int

    def retry(self, pooled: Any) -> bool:
        """Whether to try again after ``pooled`` was found dead (see Store._attempts)."""
        return self.number <= self.limit and bool(pooled.info.get("webpush_reused"))


_T = TypeVar("_T")

_LIVE_STORES: weakref.WeakSet[Store] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_LIVE_STORES):
        store._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Store:
    """Subscriptions and opt-in events in one SQL database.

    Safe to share between threads and across ``fork()`` (a child drops the pooled
    connections it inherited from its parent).
    A handed-in engine is used as is, except that a SQLite engine gets the connection
    hooks described in the module docstring (hand it in before it first connects), and
    :meth:`dispose` leaves it open for its owner.
    """

    def __init__(self, url_or_engine: str | Engine) -> None:
        if isinstance(url_or_engine, Engine):
            self._engine = url_or_engine
            self._owns_engine = False
            check_engine(url_or_engine)
        elif isinstance(url_or_engine, str):
            url = check_database_url(url_or_engine)
            options: dict[str, Any] = {}
            if url.get_backend_name() == "postgresql":
                options["pool_recycle"] = PG_POOL_RECYCLE_S
            self._engine = sa.create_engine(url, **options)
            self._owns_engine = True
        else:
            raise ConfigError("database_url", url_or_engine, "give a URL string or an Engine")
        self._sqlite = self._engine.dialect.name == "sqlite"
        if self._sqlite:
            _configure_sqlite(self._engine)
        else:
            _configure_postgresql(self._engine)
        self._raw = _RawStatements(self._engine.dialect)
        self._attempt_list: tuple[_Attempt, ...] = ()
        self._ready = False
        self._lock = threading.Lock()
        _LIVE_STORES.add(self)

    @classmethod
    def for_sqlite_path(cls, path: str | os.PathLike[str]) -> Store:
        """A store in the SQLite file at ``path`` (its folder is created if missing)."""
        file = Path(path).expanduser().resolve()
        if file.is_dir():
            raise ConfigError("database_url", str(file), "a path to an SQLite file, not a "
                              "folder (for example <folder>/webpush.sqlite3)")
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError("database_url", str(file), "a path in a folder that exists "
                              f"or can be created ({exc.strerror or exc})") from None
        return cls(str(sa.URL.create("sqlite", database=str(file))))

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tests and for owners who need raw access)."""
        return self._engine

    def dispose(self) -> None:
        """Close pooled connections (only for an engine this store created)."""
        if self._owns_engine:
            self._engine.dispose()

    def _after_fork(self) -> None:
        # A forked worker (gunicorn --preload) must not reuse its parent's connections.
        self._lock = threading.Lock()
        if self._owns_engine:
            self._engine.dispose(close=False)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    # ---------------------------------------------------------------- plumbing

    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            if write and self._sqlite:
                conn.execution_options(webpush_sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    def _attempts(self) -> Iterator[_Attempt]:
        """Attempts for one raw statement or transaction.

        After a database restart every pooled connection is dead, and each is found out
        only when used (a connection idle for ``PG_PING_AFTER_IDLE_S`` is pinged at
        checkout, a busy one is not). A dead connection that had been used before is
        dropped and the work retried on the next one, at most as many times as the pool
        keeps connections, plus one for a fresh connection; a fresh connection that
        fails is an error, not retried."""
        pool = self._engine.pool
        size = pool.size() if isinstance(pool, sa.QueuePool) else 1
        attempts = self._attempt_list
        if len(attempts) != size + 2:
            attempts = self._attempt_list = tuple(_Attempt(n, size + 1) for n in range(1, size + 3))
        return iter(attempts)

    def _write(self, work: Callable[[Any], _T], *, one_statement: bool = False) -> _T:
        """``work(cursor)`` in one write transaction straight on the driver (SQLite:
        ``BEGIN IMMEDIATE``). Run again on another connection when a pooled one turned
        out to be dead before COMMIT was sent (nothing was committed; see
        :meth:`_attempts`); lost during COMMIT, the outcome is unknown and the error is
        reported.

        ``one_statement`` (PostgreSQL): ``work`` runs a single idempotent statement, sent
        in autocommit: one round trip instead of BEGIN, the statement and COMMIT, with
        the same atomicity (a statement is its own transaction). Being idempotent, it is
        run again if the connection died under it."""
        dbapi_error = self._engine.dialect.loaded_dbapi.Error
        autocommit = one_statement and not self._sqlite
        for attempt in self._attempts():
            pooled = self._engine.raw_connection()
            dbapi_conn = pooled.dbapi_connection
            assert dbapi_conn is not None
            committing = False
            try:
                if autocommit:
                    dbapi_conn.autocommit = True
                cursor = dbapi_conn.cursor()
                try:
                    if self._sqlite:
                        cursor.execute("BEGIN IMMEDIATE")
                    try:
                        result = work(cursor)
                        committing = True
                        if self._sqlite:
                            cursor.execute("COMMIT")
                        elif not autocommit:
                            dbapi_conn.commit()
                    except BaseException:
                        if not committing and not autocommit:
                            dbapi_conn.rollback()
                        raise
                finally:
                    cursor.close()
                return result
            except dbapi_error as exc:
                dead = self._engine.dialect.is_disconnect(exc, dbapi_conn, None)
                if dead:
                    retry = attempt.retry(pooled)  # before invalidate() forgets its info
                    pooled.invalidate(exc)
                    if retry and (autocommit or not committing):
                        continue
                raise sa.exc.DBAPIError.instance(
                    None, None, exc, dbapi_error,
                    connection_invalidated=dead, dialect=self._engine.dialect,
                ) from exc
            finally:
                if autocommit and not dbapi_conn.closed:
                    dbapi_conn.autocommit = False
                pooled.close()
        raise AssertionError("unreachable")

    def _read_one(self, endpoint: str) -> SubscriptionRecord | None:
        """One row by endpoint (see :meth:`_read`)."""
        raw = self._raw.get

        def one(cursor: Any) -> SubscriptionRecord | None:
            row = cursor.fetchone()
            return None if row is None else SubscriptionRecord(*raw.row(row, cursor))

        return self._read(raw, {"b_endpoint": endpoint}, one)

    def _read(self, raw: _Raw, params: Mapping[str, Any], rows: Callable[[Any], _T]) -> _T:
        """``rows(cursor)`` after running the read ``raw`` straight on the driver: no
        SQLAlchemy Connection, no explicit transaction (SQLite's autocommit SELECT;
        psycopg in autocommit for the one statement), the SQL compiled once. Retried on
        a dead pooled connection."""
        for attempt in self._attempts():
            pooled = self._engine.raw_connection()
            dbapi_conn = pooled.dbapi_connection
            assert dbapi_conn is not None
            try:
                if not self._sqlite:
                    dbapi_conn.autocommit = True
                cursor = dbapi_conn.cursor()
                try:
                    cursor.execute(raw.sql, raw.params(params))
                    result = rows(cursor)
                finally:
                    cursor.close()
            except self._engine.dialect.loaded_dbapi.Error as exc:
                dead = self._engine.dialect.is_disconnect(exc, dbapi_conn, None)
                if dead:
                    retry = attempt.retry(pooled)
                    pooled.invalidate(exc)
                    if retry:
                        continue
                raise sa.exc.DBAPIError.instance(
                    raw.sql, None, exc, self._engine.dialect.loaded_dbapi.Error,
                    connection_invalidated=dead, dialect=self._engine.dialect,
                ) from exc
            finally:
                if not self._sqlite and not dbapi_conn.closed:
                    dbapi_conn.autocommit = False
                pooled.close()
            return result
        raise AssertionError("unreachable")

    def has_schema(self) -> bool:
        """Whether the database holds webpush_kit's tables, found without creating them
        (every other method creates them on first use)."""
        if self._ready:
            return True
        with self._engine.connect() as conn:
            return sa.inspect(conn).has_table(subscriptions.name)

    def _ensure_schema(self) -> None:
        if self._ready:
            return
        with self._lock:
            if self._ready:
                return
            with self._tx(write=True) as conn:
                if not self._sqlite:
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_SCHEMA_LOCK)))
                metadata.create_all(conn)
                stored = conn.execute(
                    sa.select(meta.c.value).where(meta.c.key == "schema_version")
                ).scalar_one_or_none()
                if stored is None:
                    conn.execute(
                        sa.insert(meta).values(key="schema_version", value=str(SCHEMA_VERSION))
                    )
                elif not stored.isdigit() or int(stored) > SCHEMA_VERSION:
                    raise WebPushKitError(
                        f"the database holds webpush_kit schema version {stored!r}, newer "
                        f"than this webpush_kit understands ({SCHEMA_VERSION}); upgrade "
                        "webpush_kit (pip install -U webpush_kit) or point it at another "
                        "database",
                        code="schema_version_unsupported",
                    )
            self._ready = True

    # ---------------------------------------------------------------- subscriptions

    def save_subscription(
        self,
        sub: Subscription,
        *,
        user_id: str | None,
        anonymous_id: str | None,
        user_agent: str | None = None,
        vapid_key: str | None = None,
        replaces: str | None = None,
        link_anonymous: bool = False,
    ) -> tuple[SubscriptionRecord, bool]:
        """Insert or refresh ``sub`` by endpoint in one statement; True when created.

        A refresh updates the keys, re-activates the row and resets its failures; see the
        module docstring for which user/anonymous id the row ends up with.

        In the same transaction (all or nothing):

        * ``replaces``: the endpoint of a subscription this one replaces (the browser's
          ``pushsubscriptionchange``) is marked unsubscribed. When the post names no user,
          the new subscription inherits that row's user id, and its anonymous id unless
          the post names one: knowing the old endpoint (a secret URL only this browser
          and the server know) proves it is the same browser.
        * ``link_anonymous``: with a user id and an anonymous id, the anonymous id's other
          anonymous subscriptions are given to the user too (see :meth:`link_anonymous`,
          and its warning: only with an anonymous id the server trusts).
        """
        sub = _check_subscription(sub)
        user = _check_id(user_id, "user_id")
        anon = _check_id(anonymous_id, "anonymous_id")
        agent = _clean_text(user_agent, MAX_USER_AGENT_LENGTH, "user_agent")
        vapid = _check_vapid_key(vapid_key)
        old = None if replaces is None else _check_endpoint(replaces, "old_endpoint")
        if old == sub.endpoint:
            old = None
        self._ensure_schema()
        now = _now()
        raw = self._raw
        posted_user, posted_anon = user, anon

        def work(cursor: Any) -> tuple[SubscriptionRecord, bool]:
            user, anon = posted_user, posted_anon
            if old is not None:
                cursor.execute(raw.retire.sql, raw.retire.params({"b_endpoint": old, "b_now": now}))
                found = cursor.fetchone()
                if found is not None and user is None:
                    previous_user, previous_anon = raw.retire.row(found, cursor)
                    user = previous_user
                    anon = anon if anon is not None else previous_anon
            values = {
                "endpoint": sub.endpoint,
                "p256dh": sub.p256dh,
                "auth": sub.auth,
                "content_encoding": sub.content_encoding,
                "expiration_time": sub.expiration_time,
                "user_id": user,
                "anonymous_id": anon,
                "vapid_key": vapid,
                "user_agent": agent,
                "status": "active",
                "failure_count": 0,
                "last_error": None,
                "created_at": now,
                "updated_at": now,
                "last_seen_at": now,
            }
            existed = False
            if self._sqlite:
                # Exact under BEGIN IMMEDIATE: no other writer can slip in between.
                cursor.execute(raw.exists.sql, raw.exists.params({"b_endpoint": sub.endpoint}))
                existed = cursor.fetchone() is not None
            cursor.execute(raw.upsert.sql, raw.upsert.params(values))
            fields = raw.upsert.row(cursor.fetchone(), cursor)
            # PostgreSQL: RETURNING (xmax = 0), true only for a row this statement inserted.
            created = not existed if self._sqlite else bool(fields.pop())
            if link_anonymous and user is not None and anon is not None:
                cursor.execute(
                    raw.link.sql, raw.link.params({"b_anon": anon, "b_user": user, "b_now": now})
                )
            return SubscriptionRecord(*fields), created

        # PostgreSQL: the plain save (no replaced row, no link) is the upsert alone.
        linking = link_anonymous and posted_user is not None and posted_anon is not None
        return self._write(work, one_statement=old is None and not linking)

    def remove_subscription(self, endpoint: str) -> bool:
        """Mark a subscription unsubscribed (kept for the funnel); False if unknown or
        already unsubscribed (a repeated removal changes nothing, not even updated_at)."""
        key = _check_endpoint(endpoint)
        self._ensure_schema()
        now = _now()
        with self._tx(write=True) as conn:
            result = conn.execute(
                sa.update(subscriptions)
                .where(subscriptions.c.endpoint == key,
                       subscriptions.c.status != "unsubscribed")
                .values(status="unsubscribed", updated_at=now)
            )
            return result.rowcount > 0

    def get(self, endpoint: str) -> SubscriptionRecord | None:
        """The stored subscription with this endpoint, if any."""
        key = _check_endpoint(endpoint)
        self._ensure_schema()
        return self._read_one(key)

    def link_anonymous(self, anonymous_id: str, user_id: str) -> int:
        """Give ``user_id`` every anonymous subscription stored with ``anonymous_id``.

        For the site's own server-side code only, with an anonymous id it trusts (for
        example one it issued and kept in its session). Never call it with an id a browser
        sent: anonymous ids are readable by page scripts and leak (analytics, shared links),
        so anyone logged in who learned one could take another browser's subscription. The
        HTTP API links only the subscription a request presents (its endpoint is the
        proof), see :mod:`webpush_kit.api`."""
        anon = _require_id(anonymous_id, "anonymous_id")
        user = _require_id(user_id, "user_id")
        self._ensure_schema()
        with self._tx(write=True) as conn:
            result = conn.execute(_LINK, {"b_anon": anon, "b_user": user, "b_now": _now()})
            return result.rowcount

    def unlink_user(self, user_id: str, endpoint: str | None = None) -> int:
        """Drop the user link of the user's subscriptions (logout/reset); rows stay."""
        user = _require_id(user_id, "user_id")
        key = None if endpoint is None else _check_endpoint(endpoint)
        self._ensure_schema()
        t = subscriptions
        stmt = sa.update(t).where(t.c.user_id == user)
        if key is not None:
            stmt = stmt.where(t.c.endpoint == key)
        with self._tx(write=True) as conn:
            return conn.execute(stmt.values(user_id=None, updated_at=_now())).rowcount

    def subscriptions_for_user(
        self, user_id: str, *, active_only: bool = True
    ) -> list[SubscriptionRecord]:
        """The user's subscriptions, oldest first."""
        user = _require_id(user_id, "user_id")
        self._ensure_schema()
        t = subscriptions
        stmt = sa.select(t).where(t.c.user_id == user).order_by(t.c.id)
        if active_only:
            stmt = stmt.where(t.c.status == "active")
        with self._tx(write=False) as conn:
            return [_record(row) for row in conn.execute(stmt)]

    def iter_active(self, batch_size: int = 500) -> Iterator[SubscriptionRecord]:
        """Stream active subscriptions by ascending id, one short transaction per batch.

        Keyset pagination (``id > last``): memory stays bounded by ``batch_size`` and no
        transaction is held while the caller works on a batch.
        """
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, int)
            or not (1 <= batch_size <= 10_000)
        ):
            raise _bad("batch_size", "must be an integer from 1 to 10000", "invalid_batch_size")
        self._ensure_schema()
        return self._iter_active(batch_size)

    def _iter_active(self, batch_size: int) -> Iterator[SubscriptionRecord]:
        # Straight on the driver with the SQL compiled once: a send reads every active
        # row, and SQLAlchemy's per-row Result machinery cost more than the query.
        raw = self._raw.active
        last_id = 0
        while True:
            params = {"b_last": last_id, "b_limit": batch_size}
            batch = self._read(raw, params, lambda cur: [
                SubscriptionRecord(*raw.row(row, cur)) for row in cur.fetchall()
            ])
            yield from batch
            if len(batch) < batch_size:
                return
            last_id = batch[-1].id

    # ---------------------------------------------------------------- sender outcomes

    def mark_expired(self, endpoint: str, reason: str) -> None:
        """The push service said the subscription is gone (404/410): stop sending to it."""
        key = _check_endpoint(endpoint)
        error = _clean_text(reason, MAX_ERROR_LENGTH, "reason")
        self._ensure_schema()
        with self._tx(write=True) as conn:
            self._expire(conn, [{"b_endpoint": key, "b_error": error, "b_now": _now()}])

    def record_outcome(self, endpoint: str, *, ok: bool, error: str | None = None) -> None:
        """Record one delivery attempt: ok resets the failure count, not ok increments it."""
        key = _check_endpoint(endpoint)
        text = _clean_text(error, MAX_ERROR_LENGTH, "error")
        self._ensure_schema()
        params = [{"b_endpoint": key, "b_error": text, "b_now": _now()}]
        with self._tx(write=True) as conn:
            (self._delivered if ok else self._failed)(conn, params)

    def record_outcomes(self, outcomes: Sequence[tuple[str, str, str | None]]) -> None:
        """Record many outcomes ``(endpoint, 'delivered'|'expired'|'failed', error)`` at once.

        One transaction for the whole batch; any bad entry rejects the batch.
        """
        now = _now()
        groups: dict[str, list[dict[str, Any]]] = {s: [] for s in OUTCOME_STATUSES}
        for i, item in enumerate(outcomes):
            if not isinstance(item, tuple | list) or len(item) != 3:
                raise _bad(f"outcomes[{i}]", "must be (endpoint, status, error)", "invalid_outcome")
            endpoint, status, error = item
            if status not in OUTCOME_STATUSES:
                raise _bad(
                    f"outcomes[{i}].status",
                    "must be delivered, expired or failed",
                    "invalid_outcome",
                )
            groups[status].append(
                {
                    "b_endpoint": _check_endpoint(endpoint, f"outcomes[{i}].endpoint"),
                    "b_error": _clean_text(error, MAX_ERROR_LENGTH, "error"),
                    "b_now": now,
                }
            )
        if not any(groups.values()):
            return
        self._ensure_schema()
        with self._tx(write=True) as conn:
            self._delivered(conn, groups["delivered"])
            self._failed(conn, groups["failed"])
            self._expire(conn, groups["expired"])

    @staticmethod
    def _delivered(conn: Connection, params: list[dict[str, Any]]) -> None:
        # The common outcome, and the same values for every row: one statement for the
        # batch (WHERE endpoint IN ...), not one execution per row.
        # Chunked: SQLite allows at most 32766 parameters in one statement.
        endpoints = [p["b_endpoint"] for p in params]
        for start in range(0, len(endpoints), _IN_CHUNK):
            conn.execute(_DELIVERED, {
                "b_endpoints": endpoints[start:start + _IN_CHUNK],
                "b_now": params[0]["b_now"],
            })

    @staticmethod
    def _failed(conn: Connection, params: list[dict[str, Any]]) -> None:
        if not params:
            return
        t = subscriptions
        conn.execute(
            sa.update(t)
            .where(t.c.endpoint == sa.bindparam("b_endpoint"))
            .values(
                failure_count=t.c.failure_count + 1,
                last_error=sa.bindparam("b_error"),
                updated_at=sa.bindparam("b_now"),
            ),
            params,
        )

    @staticmethod
    def _expire(conn: Connection, params: list[dict[str, Any]]) -> None:
        if not params:
            return
        t = subscriptions
        conn.execute(
            sa.update(t)
            .where(t.c.endpoint == sa.bindparam("b_endpoint"))
            .values(
                # An unsubscribed row stays unsubscribed: the user's choice wins.
                status=sa.case((t.c.status == "unsubscribed", t.c.status), else_="expired"),
                last_error=sa.bindparam("b_error"),
                updated_at=sa.bindparam("b_now"),
            ),
            params,
        )

    # ---------------------------------------------------------------- events

    def record_events(
        self, events: Sequence[OptInEvent], *, user_id: str | None, anonymous_id: str | None
    ) -> int:
        """Append opt-in events in one transaction (all or nothing); returns how many.

        An event naming the endpoint of a stored subscription is linked to it.
        """
        user = _check_id(user_id, "user_id")
        anon = _check_id(anonymous_id, "anonymous_id")
        if isinstance(events, str | bytes | Mapping):
            raise _bad("events", "must be a sequence of OptInEvent", "invalid_events")
        items = list(events)
        if len(items) > MAX_EVENTS_PER_CALL:
            raise _bad("events", f"at most {MAX_EVENTS_PER_CALL} events per call", "invalid_events")
        rows = [_event_row(e, i) for i, e in enumerate(items)]
        if not rows:
            return 0
        self._ensure_schema()
        now = _now()
        endpoints = {r["endpoint"] for r in rows if r["endpoint"] is not None}
        t = subscriptions
        with self._tx(write=True) as conn:
            ids: dict[str, int] = {}
            if endpoints:
                found = conn.execute(
                    sa.select(t.c.endpoint, t.c.id).where(t.c.endpoint.in_(endpoints))
                )
                ids = {ep: sid for ep, sid in found.all()}
            for r in rows:
                r.update(
                    user_id=user,
                    anonymous_id=anon,
                    subscription_id=ids.get(r["endpoint"]) if r["endpoint"] else None,
                    created_at=now,
                )
            conn.execute(sa.insert(opt_in_events), rows)
        return len(rows)

    # ---------------------------------------------------------------- reports

    def counts(self) -> dict[str, int]:
        """Subscriptions per status, plus ``total``."""
        self._ensure_schema()
        t = subscriptions
        with self._tx(write=False) as conn:
            found = conn.execute(sa.select(t.c.status, sa.func.count()).group_by(t.c.status)).all()
            result = {status: 0 for status in STATUSES}
            result.update({status: int(n) for status, n in found})
        result["total"] = sum(result[s] for s in STATUSES)
        return result

    def funnel(self) -> dict[str, int]:
        """Per event type, how many distinct people reported it.

        A person is the event's user id when it has one, else its anonymous id; an event
        with neither counts once on its own. So a visitor who saw the prompt on three page
        loads counts once for ``prompt_shown``. (A visitor seen anonymously and later as a
        user may count under both, since past events are never rewritten.)
        """
        self._ensure_schema()
        e = opt_in_events
        actor = sa.case(
            (e.c.user_id.is_not(None), sa.literal("u:") + e.c.user_id),
            (e.c.anonymous_id.is_not(None), sa.literal("a:") + e.c.anonymous_id),
            else_=sa.literal("e:") + sa.cast(e.c.id, sa.String),
        )
        with self._tx(write=False) as conn:
            found = conn.execute(
                sa.select(e.c.type, sa.func.count(sa.distinct(actor))).group_by(e.c.type)
            ).all()
            result = {kind: 0 for kind in OPT_IN_EVENT_TYPES}
            result.update({kind: int(n) for kind, n in found})
        return result

    def forget(self, user_id: str) -> tuple[int, int]:
        """Erase a user (right to erasure); returns (subscriptions, events) deleted.

        Deleted: the subscriptions linked to ``user_id``; the events recorded with that
        user id; and events without a user id that point at one of those subscriptions
        (by id or endpoint: a secret URL only that browser and the server know).

        Rows of anyone else are never touched, whatever ids they share: an anonymous id
        is whatever a browser sent, so anyone who learnt another visitor's anonymous id
        could post events under it while logged in and have ``forget`` erase that
        visitor's data. Anonymous rows (no user id) that carried one of the user's
        anonymous ids therefore stay; once the user's own rows are gone, nothing in the
        store links them to the user any more.
        """
        user = _require_id(user_id, "user_id")
        self._ensure_schema()
        t, e = subscriptions, opt_in_events
        with self._tx(write=True) as conn:
            doomed = conn.execute(
                sa.select(t.c.id, t.c.endpoint).where(t.c.user_id == user)
            ).all()
            sub_ids = [sid for sid, _ in doomed]
            endpoints = [ep for _, ep in doomed]
            condition = e.c.user_id == user
            if sub_ids:
                condition = sa.or_(condition, sa.and_(
                    e.c.user_id.is_(None),
                    sa.or_(e.c.subscription_id.in_(sub_ids), e.c.endpoint.in_(endpoints)),
                ))
            events_deleted = conn.execute(sa.delete(e).where(condition)).rowcount
            subs_deleted = 0
            if sub_ids:
                subs_deleted = conn.execute(sa.delete(t).where(t.c.id.in_(sub_ids))).rowcount
        return subs_deleted, events_deleted
