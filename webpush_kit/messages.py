"""What a push says (``Notification``) and how it travels (``PushOptions``).

The payload is compact UTF-8 JSON that our service worker reads::

    {"webpush_kit": 1, "title": "...", "body": "...", "icon": "/i.png", "url": "/news/1",
     "tag": "...", "actions": [{"action": "open", "title": "Open"}], "data": {...},
     "requireInteraction": true, "silent": true, "renotify": true, "timestamp": 1700000000000}

Members that are unset are left out. ``"webpush_kit": 1`` marks the push as ours, so a
worker that also imports the MoEngage worker can leave MoEngage's pushes to MoEngage and
never show two notifications for one push. Option names follow the JavaScript
``showNotification()`` options, so the worker passes them through unchanged.

Size limits (checked before encryption, on the plaintext):

* above 3993 bytes the push is refused: aes128gcm adds an 86-byte header, a 1-byte
  delimiter and a 16-byte tag, and RFC 8030 section 7.2 only guarantees 4096 bytes;
* above 3070 bytes a warning is logged: Firefox for Android (autopush's FCM bridge)
  rejects such bodies. Keep payloads around 2 KB; send an id and fetch the rest.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Literal, get_args

from webpush_kit.errors import ValidationError

__all__ = [
    "DEFAULT_TTL",
    "MAX_ACTIONS",
    "MAX_DATA_DEPTH",
    "MAX_PAYLOAD_BYTES",
    "MAX_TTL",
    "PAYLOAD_MARKER",
    "WARN_PAYLOAD_BYTES",
    "Notification",
    "NotificationAction",
    "PushOptions",
    "Urgency",
    "check_payload_size",
    "lone_surrogate",
]

logger = logging.getLogger(__name__)

#: Top-level member that tells our service worker a push is ours.
PAYLOAD_MARKER = "webpush_kit"
#: Largest plaintext that fits one aes128gcm record in 4096 bytes (RFC 8291 section 4).
MAX_PAYLOAD_BYTES = 3993
#: Above this, Firefox for Android drops the push (autopush#748).
WARN_PAYLOAD_BYTES = 3070
#: Chrome shows at most two actions (``Notification.maxActions``); more are dropped there.
MAX_ACTIONS = 2
#: One week: long enough to reach a phone that was off for a weekend, short enough that
#: stale news is not shown. ``TTL: 0`` is refused by WNS (Edge) with 400.
DEFAULT_TTL = 7 * 24 * 3600
#: Four weeks, the longest TTL FCM and autopush keep a message.
MAX_TTL = 28 * 24 * 3600
MAX_URL_LENGTH = 2048
#: Deepest nesting of lists and objects in ``Notification.data`` (a push payload is at
#: most 3993 bytes: real data needs a few levels; more is a mistake or an attack).
MAX_DATA_DEPTH = 32

Urgency = Literal["very-low", "low", "normal", "high"]
_URGENCIES: tuple[str, ...] = get_args(Urgency)
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")


def lone_surrogate(text: str) -> str | None:
    """Describe the first character of ``text`` that UTF-8 cannot encode (a lone surrogate
    such as ``"\\ud800"``, left by ``errors="surrogateescape"`` decoding), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"{text[exc.start]!r} at position {exc.start}"
    return None


def _check_utf8(value: str, name: str, code: str) -> None:
    problem = lone_surrogate(value)
    if problem:
        raise ValidationError(
            f"holds {problem}, a lone surrogate that cannot be sent as UTF-8; pass valid "
            "Unicode text (was it decoded with errors='surrogateescape'?)",
            field=name,
            code=code,
        )


#: (parent path, key, container): built cheaply per member, spelt out only on error.
_Path = tuple[Any, Any, object] | None


def _spell(path: _Path) -> str:
    keys: list[Any] = []
    while path is not None:
        path, key, _ = path
        keys.append(key)
    out = "data"
    for key in reversed(keys):
        out += f".{key}" if isinstance(key, str) else f"[{key!r}]"
    return out.encode("utf-8", "backslashreplace").decode("utf-8")


def _check_data(value: object) -> None:
    """``data`` as JSON will take it: nested at most ``MAX_DATA_DEPTH`` levels (deeper
    would exhaust the stack in ``json.dumps``), every string valid Unicode. Walked without
    recursion; other problems (sets, bytes, NaN, cycles) are left to ``json.dumps``."""
    stack: list[tuple[object, int, _Path]] = [(value, 0, None)]
    while stack:
        v, depth, path = stack.pop()
        if isinstance(v, str):
            problem = lone_surrogate(v)
            if problem:
                raise ValidationError(
                    f"{_spell(path)} holds {problem}, a lone surrogate that cannot be sent "
                    "as UTF-8; pass valid Unicode text",
                    field="data",
                    code="invalid_data",
                )
            continue
        if not isinstance(v, dict | list | tuple):
            continue
        if depth >= MAX_DATA_DEPTH:
            node, seen = path, {id(v)}
            while node is not None:
                node, _, container = node
                if id(container) in seen:
                    raise ValidationError(
                        "contains itself (a circular reference); JSON needs a tree",
                        field="data",
                        code="invalid_data",
                    )
                seen.add(id(container))
            raise ValidationError(
                f"is nested too deeply: lists and objects may be nested at most "
                f"{MAX_DATA_DEPTH} levels (a push carries at most {MAX_PAYLOAD_BYTES} bytes; "
                "send an id and fetch the details when the notification is clicked)",
                field="data",
                code="invalid_data",
            )
        if isinstance(v, dict):
            for k, item in v.items():
                problem = lone_surrogate(k) if isinstance(k, str) else None
                if problem:
                    raise ValidationError(
                        f"a member name in {_spell(path)} holds {problem}, a lone surrogate "
                        "that cannot be sent as UTF-8; pass valid Unicode text",
                        field="data",
                        code="invalid_data",
                    )
                stack.append((item, depth + 1, (path, k, v)))
        else:
            stack.extend((item, depth + 1, (path, i, v)) for i, item in enumerate(v))


def check_payload_size(payload: bytes) -> None:
    """Refuse a plaintext that cannot be encrypted into 4096 bytes; warn when it is risky."""
    size = len(payload)
    if size > MAX_PAYLOAD_BYTES:
        raise ValidationError(
            f"payload is {size} bytes; at most {MAX_PAYLOAD_BYTES} fit one encrypted push "
            "(RFC 8291). Shorten the text or send an id and fetch details on click",
            field="payload",
            code="payload_too_large",
            status=413,
        )
    if size > WARN_PAYLOAD_BYTES:
        logger.warning(
            "push payload is %d bytes: Firefox for Android rejects pushes above %d bytes; "
            "keep payloads around 2 KB",
            size,
            WARN_PAYLOAD_BYTES,
        )


def _check_url(value: object, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValidationError("must be a non-empty string or None", field=name, code="invalid_url")
    _check_utf8(value, name, "invalid_url")
    if len(value) > MAX_URL_LENGTH:
        raise ValidationError(
            f"is longer than {MAX_URL_LENGTH} characters", field=name, code="invalid_url"
        )
    if any(ch.isspace() or ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValidationError(
            "must not contain spaces or control characters", field=name, code="invalid_url"
        )
    lower = value.lower()
    if lower.startswith(("https://", "http://")):
        if len(value.split("/", 3)[2]) == 0:
            raise ValidationError("has no host", field=name, code="invalid_url")
        return value
    if value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    raise ValidationError(
        "must be an http(s) URL or a root-relative path such as /news/1 "
        "(no javascript:, data:, or protocol-relative //host URLs)",
        field=name,
        code="invalid_url",
    )


def _check_text(value: object, name: str, *, required: bool = False) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str):
        raise ValidationError("must be a string", field=name, code="invalid_text")
    if required and not value.strip():
        raise ValidationError("is required and must not be blank", field=name, code="missing_text")
    _check_utf8(value, name, "invalid_text")
    return value


@dataclass(frozen=True, slots=True)
class NotificationAction:
    """A button on the notification; ``action`` comes back in ``notificationclick``."""

    action: str
    title: str
    icon: str | None = None

    def __post_init__(self) -> None:
        for name in ("action", "title"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ValidationError(
                    "is required and must be a non-empty string",
                    field=f"actions.{name}",
                    code="invalid_action",
                )
            _check_utf8(value, f"actions.{name}", "invalid_action")
        _check_url(self.icon, "actions.icon")

    def to_json(self) -> dict[str, str]:
        out = {"action": self.action, "title": self.title}
        if self.icon is not None:
            out["icon"] = self.icon
        return out


def _coerce_action(value: object, index: int) -> NotificationAction:
    if isinstance(value, NotificationAction):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"action", "title", "icon"}
        if unknown:
            raise ValidationError(
                f"unknown members {sorted(unknown)}; allowed: action, title, icon",
                field=f"actions.{index}",
                code="invalid_action",
            )
        return NotificationAction(
            action=value.get("action"),  # type: ignore[arg-type]  # checked in __post_init__
            title=value.get("title"),  # type: ignore[arg-type]
            icon=value.get("icon"),
        )
    raise ValidationError(
        "must be {action, title, icon?}", field=f"actions.{index}", code="invalid_action"
    )


@dataclass(frozen=True, eq=True, unsafe_hash=False, slots=True)
class Notification:
    """A notification as our service worker shows it. Validated on construction.

    Not hashable (``data`` is usually a dict): ``hash()`` says so for the whole object.
    """

    __hash__: ClassVar[None] = None  # type: ignore[assignment]

    title: str
    body: str | None = None
    icon: str | None = None
    badge: str | None = None
    image: str | None = None
    url: str | None = None
    tag: str | None = None
    actions: Sequence[NotificationAction | Mapping[str, str]] = ()
    data: Any = None
    require_interaction: bool = False
    silent: bool = False
    renotify: bool = False
    #: Milliseconds since the epoch (what ``showNotification`` wants), or a datetime.
    timestamp: int | datetime | None = None
    _payload: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_text(self.title, "title", required=True)
        for name in ("body", "tag"):
            _check_text(getattr(self, name), name)
        for name in ("icon", "badge", "image", "url"):
            _check_url(getattr(self, name), name)
        for name in ("require_interaction", "silent", "renotify"):
            if not isinstance(getattr(self, name), bool):
                raise ValidationError("must be true or false", field=name, code="invalid_flag")
        if self.renotify and not self.tag:
            # Browsers throw a TypeError from showNotification() in this case.
            raise ValidationError(
                "renotify needs a tag (browsers refuse renotify without one)",
                field="renotify",
                code="renotify_without_tag",
            )
        if isinstance(self.actions, (str, bytes)) or not isinstance(self.actions, Sequence):
            raise ValidationError("must be a list", field="actions", code="invalid_action")
        actions = tuple(_coerce_action(a, i) for i, a in enumerate(self.actions))
        if len(actions) > MAX_ACTIONS:
            raise ValidationError(
                f"at most {MAX_ACTIONS} actions (Chrome shows no more); got {len(actions)}",
                field="actions",
                code="too_many_actions",
            )
        object.__setattr__(self, "actions", actions)
        ts = self.timestamp
        if isinstance(ts, datetime):
            if ts.tzinfo is None:
                raise ValidationError(
                    "a datetime timestamp needs a timezone",
                    field="timestamp",
                    code="invalid_timestamp",
                )
            object.__setattr__(self, "timestamp", int(ts.timestamp() * 1000))
        elif ts is not None and (isinstance(ts, bool) or not isinstance(ts, int) or ts < 0):
            raise ValidationError(
                "must be milliseconds since the epoch", field="timestamp", code="invalid_timestamp"
            )
        _check_data(self.data)
        try:
            payload = json.dumps(
                self._to_dict(), ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode("utf-8")
        except (TypeError, ValueError) as exc:  # only data can fail: the rest is checked
            raise ValidationError(
                f"must be JSON-serialisable ({exc})", field="data", code="invalid_data"
            ) from None
        object.__setattr__(self, "_payload", payload)
        if len(payload) > MAX_PAYLOAD_BYTES:
            check_payload_size(payload)

    def _to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {PAYLOAD_MARKER: 1, "title": self.title}
        for name in ("body", "icon", "badge", "image", "url", "tag"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.actions:
            out["actions"] = [
                a.to_json() for a in self.actions if isinstance(a, NotificationAction)
            ]
        if self.data is not None:
            out["data"] = self.data
        if self.require_interaction:
            out["requireInteraction"] = True
        if self.silent:
            out["silent"] = True
        if self.renotify:
            out["renotify"] = True
        if self.timestamp is not None:
            out["timestamp"] = self.timestamp
        return out

    def to_payload(self) -> bytes:
        """Compact UTF-8 JSON, size-checked (see the module docstring)."""
        check_payload_size(self._payload)
        return self._payload

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notification:
        """Build from JSON-style keys (``requireInteraction`` or ``require_interaction``)."""
        if not isinstance(data, Mapping):
            raise ValidationError(
                "must be a JSON object", field="notification", code="invalid_notification"
            )
        aliases = {"requireInteraction": "require_interaction"}
        allowed = {
            "title",
            "body",
            "icon",
            "badge",
            "image",
            "url",
            "tag",
            "actions",
            "data",
            "require_interaction",
            "silent",
            "renotify",
            "timestamp",
        }
        kwargs: dict[str, Any] = {}
        for key, value in data.items():
            if key == PAYLOAD_MARKER:
                continue
            name = aliases.get(key, key)
            if name not in allowed:
                raise ValidationError(
                    f"unknown member {key!r}; allowed: {', '.join(sorted(allowed))}",
                    field="notification",
                    code="invalid_notification",
                )
            kwargs[name] = value
        if "title" not in kwargs:
            raise ValidationError("is required", field="title", code="missing_text")
        if isinstance(kwargs.get("actions"), list):
            kwargs["actions"] = tuple(kwargs["actions"])
        return cls(**kwargs)


@dataclass(frozen=True, slots=True)
class PushOptions:
    """Delivery options sent as the ``TTL``, ``Urgency`` and ``Topic`` headers (RFC 8030)."""

    ttl: int = DEFAULT_TTL
    urgency: Urgency = "normal"
    topic: str | None = None

    def __post_init__(self) -> None:
        ttl = self.ttl
        if isinstance(ttl, bool) or not isinstance(ttl, int):
            raise ValidationError(
                "must be a whole number of seconds", field="ttl", code="invalid_ttl"
            )
        if not 1 <= ttl <= MAX_TTL:
            # str() of an int above 4300 digits raises ValueError: never format one.
            shown = str(ttl) if -(10**15) < ttl < 10**15 else (
                f"a {'negative ' if ttl < 0 else ''}number of 16 digits or more"
            )
            if ttl == 0:
                why = (
                    "0 is refused because Edge's push service (WNS) answers TTL 0 with 400 "
                    "-- use e.g. 60 for 'deliver now or drop'"
                )
            elif ttl < 0:
                why = f"got {shown}: a time to live cannot be negative"
            else:
                why = (
                    f"got {shown}: push services (FCM, autopush) keep a message at most "
                    f"{MAX_TTL} seconds"
                )
            raise ValidationError(
                f"must be between 1 and {MAX_TTL} seconds (28 days); {why}",
                field="ttl",
                code="invalid_ttl",
            )
        if self.urgency not in _URGENCIES:
            raise ValidationError(
                f"must be one of {', '.join(_URGENCIES)}", field="urgency", code="invalid_urgency"
            )
        if self.topic is not None and (
            not isinstance(self.topic, str) or not _TOPIC.fullmatch(self.topic)
        ):
            raise ValidationError(
                "must be 1 to 32 characters from the base64url alphabet (A-Z a-z 0-9 - _)",
                field="topic",
                code="invalid_topic",
            )

    def headers(self) -> dict[str, str]:
        """A fresh dict of the RFC 8030 headers for these options."""
        out = {"TTL": str(self.ttl), "Urgency": self.urgency}
        if self.topic is not None:
            out["Topic"] = self.topic
        return out
