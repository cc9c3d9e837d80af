"""Validation of what a browser posts: push subscriptions and opt-in events.

Everything here is pure (no Flask, no database) so the blueprint, the CLI and tests share
one set of rules. A failure raises :class:`~webpush_kit.errors.ValidationError` with a
stable ``code`` and the dotted ``field`` at fault, and a message that says how to fix it.

Decisions worth knowing:

* Keys must use the base64url alphabet (``A-Z a-z 0-9 - _``). Browsers emit base64url
  without padding (Push API ``toJSON()``); trailing ``=`` padding is tolerated, standard
  base64 (``+``/``/``) is refused because no browser is known to send it and accepting it
  would let two spellings of one key coexist. Keys are stored re-encoded canonically.
* The endpoint's scheme and host are lower-cased (they are case-insensitive); path and
  query are kept byte for byte (WNS endpoints carry ``?token=``).
* Loopback endpoints (``localhost``, ``127.0.0.1``, ``[::1]``, explicit port required) are
  admitted only when the policy sets ``allow_localhost_http``; they bypass the host
  allowlist, since they exist for local push-service emulators in development and tests.
* Other endpoints are ``https://`` on a host of the allowlist, with no port but 443 and
  a path of their own: real push endpoints (FCM, Mozilla autopush, Apple, WNS) always
  look like that, and a bare host or another port is a mistake or a probe.
* Host patterns: ``*.suffix`` needs two labels and no well-known public suffix
  (``*.com`` and ``*.co.uk`` would admit every site registered under them).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import math
import re
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Final
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.asymmetric import ec

from webpush_kit._net import is_loopback_host
from webpush_kit.errors import ConfigError, ValidationError

__all__ = [
    "CONTENT_ENCODINGS",
    "DEFAULT_POLICY",
    "DEFAULT_PUSH_HOSTS",
    "MAX_DETAIL_BYTES",
    "MAX_ENDPOINT_LENGTH",
    "MAX_EVENTS_PER_BATCH",
    "OPT_IN_EVENT_TYPES",
    "EndpointPolicy",
    "OptInEvent",
    "Subscription",
    "b64url_decode",
    "b64url_encode",
    "detail_json",
    "host_pattern_problem",
    "parse_auth",
    "parse_endpoint",
    "parse_opt_in_event",
    "parse_opt_in_events",
    "parse_p256dh",
    "parse_subscription",
]

MAX_ENDPOINT_LENGTH: Final = 2048
MAX_DETAIL_BYTES: Final = 2048
MAX_EVENTS_PER_BATCH: Final = 100
# Latest representable JavaScript-ish time we accept (year 9999, in ms since the epoch).
MAX_TIMESTAMP_MS: Final = 253_402_300_799_999.0
CONTENT_ENCODINGS: Final = ("aes128gcm", "aesgcm")

DEFAULT_PUSH_HOSTS: Final[tuple[str, ...]] = (
    "fcm.googleapis.com",  # Chrome, Chromium-based browsers
    "android.googleapis.com",  # old Chrome (GCM)
    "updates.push.services.mozilla.com",  # Firefox
    "*.push.services.mozilla.com",  # Firefox, other autopush hosts
    "*.push.apple.com",  # Safari: web.push.apple.com
    "*.notify.windows.com",  # Edge on Windows: wns2-*.notify.windows.com
)

OPT_IN_EVENT_TYPES: Final[tuple[str, ...]] = (
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
)

_B64URL_RE: Final = re.compile(r"[A-Za-z0-9_-]*={0,2}")
# Spaces, control characters, backslash, DEL (the endpoint is already known to be ASCII).
_BAD_ENDPOINT_CHAR_RE: Final = re.compile(r"[\x00-\x20\\\x7f]")
_LABEL_RE: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_P256DH_BYTES: Final = 65
_AUTH_BYTES: Final = 16


# --------------------------------------------------------------------------- base64url


def b64url_decode(value: str) -> bytes:
    """Decode base64url, with or without ``=`` padding.

    Raises ``ValueError`` for any character outside the base64url alphabet (``+`` and
    ``/`` included), misplaced padding, or an impossible length.
    """
    if not isinstance(value, str) or _B64URL_RE.fullmatch(value) is None:
        raise ValueError("not base64url: use only A-Z a-z 0-9 - _ (and optional = padding)")
    body = value.rstrip("=")
    if value != body and len(value) % 4 != 0:
        raise ValueError("wrong amount of = padding")
    if len(body) % 4 == 1:
        raise ValueError("impossible base64url length")
    try:
        return base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    except binascii.Error as exc:  # pragma: no cover - the regex above catches these
        raise ValueError(str(exc)) from exc


def b64url_encode(data: bytes) -> str:
    """Encode as canonical base64url: no padding, the form browsers emit."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Subscription:
    """A validated ``PushSubscription``; keys are canonical base64url (no padding)."""

    endpoint: str
    p256dh: str
    auth: str
    expiration_time: float | None = None
    content_encoding: str = "aes128gcm"

    def to_json(self) -> dict[str, Any]:
        """The ``PushSubscription.toJSON()`` shape (what pywebpush calls subscription_info)."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": self.expiration_time,
            "keys": {"p256dh": self.p256dh, "auth": self.auth},
        }


#: Common two-label public suffixes (second-level registries and shared hosting): a
#: wildcard over one of them (``*.co.uk``) would admit every site registered under it.
#: Not the whole Public Suffix List, which would be a dependency; ``*.com``-like single
#: labels are refused by the two-label rule.
PUBLIC_SUFFIXES: Final = frozenset(
    f"{second}.{tld}"
    for tld, seconds in {
        "uk": "co org me ltd plc net sch ac gov nhs police",
        "au": "com net org edu gov asn id",
        "jp": "co ne or ac go ad ed gr lg",
        "nz": "co org net ac govt geek school",
        "za": "co org net ac gov web",
        "br": "com net org gov edu art",
        "cn": "com net org gov edu ac",
        "hk": "com net org gov edu idv",
        "tw": "com net org gov edu idv",
        "in": "co net org firm gen ind ac edu gov",
        "kr": "co or ne ac go re",
        "il": "co org net ac gov",
        "id": "co or web ac go",
        "th": "co or in ac go",
        "sg": "com net org edu gov",
        "my": "com net org edu gov",
        "ph": "com net org edu gov",
        "vn": "com net org edu gov",
        "mx": "com net org edu gob",
        "ar": "com net org edu gob",
        "co": "com net org edu gov",
        "pe": "com net org edu gob",
        "tr": "com net org edu gov",
        "ua": "com net org edu gov",
        "pl": "com net org edu gov",
        "es": "com org nom edu gob",
        "at": "co or ac gv",
        "eg": "com net org edu gov",
        "ng": "com net org edu gov",
        "ke": "co or ne ac go",
        "sa": "com net org edu gov",
        "ae": "co net org ac gov",
        "ru": "com net org",
        "com": "github herokuapp appspot blogspot amazonaws cloudfront firebaseapp",
        "io": "github gitlab",
        "net": "azurewebsites cloudfront",
        "app": "netlify vercel web",
        "dev": "pages workers",
    }.items()
    for second in seconds.split()
)
_HOST_PATTERN_HINT: Final = "an exact host (push.example.com) or *.suffix (*.push.example.com)"


def host_pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` cannot be a push-service host pattern, or None when it can.

    The one rule for ``EndpointPolicy`` and the ``push_hosts`` setting: an exact host,
    or ``*.`` and a suffix of at least two labels that is not a public suffix
    (``*.example.com`` yes; ``*.com``, ``*.co.uk`` no).
    """
    text = pattern.strip().lower()
    wildcard = text.startswith("*.")
    host = text[2:] if wildcard else text
    labels = host.split(".")
    if not all(_LABEL_RE.fullmatch(label) for label in labels):
        return f"use {_HOST_PATTERN_HINT}"
    if wildcard and len(labels) < 2:
        return (f"*.{host} would admit every .{host} host as a push service: a wildcard "
                "needs a suffix of at least two labels, such as *.push.example.com")
    if wildcard and host in PUBLIC_SUFFIXES:
        return (f"{host} is a public suffix shared by unrelated sites, so *.{host} would "
                "admit all of them as push services: name your push service's own domain, "
                f"such as *.push.example.{host}")
    return None


def _check_host_pattern(pattern: object) -> str:
    if not isinstance(pattern, str):
        raise ConfigError("allowed_hosts", pattern, "each entry must be a host name string")
    problem = host_pattern_problem(pattern)
    if problem:
        raise ConfigError("allowed_hosts", pattern, problem)
    return pattern.strip().lower()


@dataclass(frozen=True)
class EndpointPolicy:
    """Which push-service hosts a subscription endpoint may point at (SSRF guard).

    Patterns are exact hosts or ``*.suffix``; ``*.suffix`` matches subdomains of the
    suffix only, never the suffix itself. Matching is case-insensitive.
    """

    allowed_hosts: tuple[str, ...] = DEFAULT_PUSH_HOSTS
    allow_localhost_http: bool = False
    _exact: frozenset[str] = field(init=False, repr=False, compare=False)
    _suffixes: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.allowed_hosts, str):
            raise ConfigError("allowed_hosts", self.allowed_hosts, "give a list of hosts")
        patterns = tuple(dict.fromkeys(_check_host_pattern(p) for p in self.allowed_hosts))
        object.__setattr__(self, "allowed_hosts", patterns)
        object.__setattr__(self, "_exact", frozenset(p for p in patterns if not p.startswith("*.")))
        object.__setattr__(self, "_suffixes", tuple(p[1:] for p in patterns if p.startswith("*.")))

    def with_hosts(self, *patterns: str) -> EndpointPolicy:
        """A copy that also admits ``patterns`` (for self-hosted push services)."""
        merged = tuple(dict.fromkeys((*self.allowed_hosts, *patterns)))
        return replace(self, allowed_hosts=merged)

    def allows_host(self, host: str) -> bool:
        """Whether ``host`` (already lower-case, no port) is on the allowlist."""
        return host in self._exact or any(host.endswith(s) for s in self._suffixes)


DEFAULT_POLICY: Final = EndpointPolicy()


@dataclass(frozen=True)
class OptInEvent:
    """One opt-in funnel step reported by the browser.

    ``client_time`` is the browser's clock in ms since the epoch (``Date.now()``); it is
    informational, the store keeps its own ``created_at``.
    """

    type: str
    endpoint: str | None = None
    detail: dict[str, Any] | None = None
    client_time: float | None = None


# --------------------------------------------------------------------------- endpoint


def _bad_endpoint(message: str, code: str, field_name: str) -> ValidationError:
    return ValidationError(message, field=field_name, code=code)


#: The last label of a host that a resolver could read as (part of) an IPv4 address.
_NUMERIC_LABEL_RE: Final = re.compile(r"0x[0-9a-f]*|[0-9]+", re.IGNORECASE)


def _is_ip_literal(host: str) -> bool:
    if ":" not in host and not _NUMERIC_LABEL_RE.fullmatch(host.rsplit(".", 1)[-1]):
        return False  # a name such as fcm.googleapis.com: the common case, decided here
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if ":" in host:
        return True
    # Shorthand IPv4 forms that resolvers accept: 2130706433, 0x7f.1, 127.1
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def parse_endpoint(
    value: object, policy: EndpointPolicy = DEFAULT_POLICY, *, field_name: str = "endpoint"
) -> str:
    """Validate a push endpoint URL against ``policy``; return it with scheme/host lower-cased."""
    if not isinstance(value, str) or not value:
        raise _bad_endpoint(
            "must be a non-empty URL string (subscription.endpoint)", "invalid_endpoint", field_name
        )
    if len(value) > MAX_ENDPOINT_LENGTH:
        raise _bad_endpoint(
            f"is {len(value)} characters; at most {MAX_ENDPOINT_LENGTH} are accepted",
            "endpoint_too_long",
            field_name,
        )
    if not value.isascii():
        # Browsers give endpoints percent-encoded: raw non-ASCII (or a lone surrogate
        # such as "\ud800", which a JSON body can carry) is never one.
        raise _bad_endpoint(
            "contains non-ASCII characters; post subscription.endpoint exactly as the "
            "browser gives it (an ASCII URL)",
            "invalid_endpoint",
            field_name,
        )
    if _BAD_ENDPOINT_CHAR_RE.search(value):
        raise _bad_endpoint(
            "contains spaces, control characters or backslashes; post "
            "subscription.endpoint exactly as the browser gives it",
            "invalid_endpoint",
            field_name,
        )
    if "#" in value:
        raise _bad_endpoint("must not contain a #fragment", "endpoint_has_fragment", field_name)
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise _bad_endpoint("is not a valid URL", "invalid_endpoint", field_name) from None
    scheme = parts.scheme.lower()
    if not scheme or not parts.netloc or not value.lower().startswith(scheme + "://"):
        raise _bad_endpoint("must be an absolute https:// URL", "invalid_endpoint", field_name)
    if "@" in parts.netloc:
        raise _bad_endpoint(
            "must not carry user:password@ credentials", "endpoint_has_credentials", field_name
        )
    host = (parts.hostname or "").lower()
    bracketed = "[" in parts.netloc or "]" in parts.netloc
    if not host:
        raise _bad_endpoint("has no host name", "invalid_endpoint", field_name)

    if policy.allow_localhost_http and is_loopback_host(host):
        if port is None:
            raise _bad_endpoint(
                "a loopback development endpoint needs an explicit port",
                "invalid_endpoint",
                field_name,
            )
        if scheme not in ("http", "https"):
            raise _bad_endpoint("must use http:// or https://", "endpoint_not_https", field_name)
    else:
        if scheme != "https":
            raise _bad_endpoint(
                "must use https:// (http://localhost is admitted only when the owner sets "
                "allow_localhost_endpoints, WEBPUSH_ALLOW_LOCALHOST_ENDPOINTS, for development)",
                "endpoint_not_https",
                field_name,
            )
        if bracketed or _is_ip_literal(host):
            raise _bad_endpoint(
                "must name a push service host, not an IP address",
                "endpoint_ip_literal",
                field_name,
            )
        if not all(_LABEL_RE.fullmatch(label) for label in host.split(".")):
            raise _bad_endpoint("has an invalid host name", "invalid_endpoint", field_name)
        if not policy.allows_host(host):
            raise _bad_endpoint(
                f"host {host!r} is not a known push service (the site owner can add one "
                "with the push_hosts setting, WEBPUSH_PUSH_HOSTS)",
                "endpoint_host_not_allowed",
                field_name,
            )
        # Push services (FCM, autopush, Apple, WNS) answer on 443 and give each
        # subscription its own path: another port or no path is not a push endpoint.
        if port is not None and port != 443:
            raise _bad_endpoint(
                f"must not name port {port}: push service endpoints use the default https "
                "port; post subscription.endpoint exactly as the browser gives it",
                "endpoint_port_not_allowed",
                field_name,
            )
        if parts.path in ("", "/"):
            raise _bad_endpoint(
                "has no path: a push endpoint is the full URL the browser gives "
                "(https://host/path-of-this-subscription), not the push service's address",
                "invalid_endpoint",
                field_name,
            )
    prefix_len = len(parts.scheme) + 3 + len(parts.netloc)
    return f"{scheme}://{parts.netloc.lower()}{value[prefix_len:]}"


# --------------------------------------------------------------------------- keys


def _decode_key(value: object, field_name: str, code: str, size: int) -> bytes:
    if not isinstance(value, str) or not value:
        raise ValidationError(
            f"must be a base64url string (from PushSubscription.toJSON().{field_name})",
            field=field_name,
            code=code,
        )
    try:
        raw = b64url_decode(value)
    except ValueError as exc:
        raise ValidationError(
            f"is not valid base64url ({exc}); send the value of "
            f"PushSubscription.toJSON().{field_name} unchanged",
            field=field_name,
            code=code,
        ) from None
    if len(raw) != size:
        raise ValidationError(
            f"decodes to {len(raw)} bytes; it must be exactly {size}",
            field=field_name,
            code=code,
        )
    return raw


def parse_p256dh(value: object) -> str:
    """Validate a ``keys.p256dh`` value (a P-256 point); return it as canonical base64url."""
    raw = _decode_key(value, "keys.p256dh", "invalid_p256dh", _P256DH_BYTES)
    if raw[0] != 0x04:
        raise ValidationError(
            "must be an uncompressed P-256 point (first byte 0x04)",
            field="keys.p256dh",
            code="invalid_p256dh",
        )
    if not _on_p256(raw):
        raise ValidationError(
            "is not a point on the P-256 curve; the key is corrupt or was not made by "
            "a browser's pushManager.subscribe()",
            field="keys.p256dh",
            code="p256dh_not_on_curve",
        )
    return b64url_encode(raw)


@lru_cache(maxsize=4096)
def _on_p256(point: bytes) -> bool:
    """Whether an uncompressed point is on P-256 (remembered: every page load re-posts
    the same keys, and the check costs more than the rest of the validation)."""
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        return False
    return True


def parse_auth(value: object) -> str:
    """Validate a ``keys.auth`` value (16 bytes); return it as canonical base64url."""
    return b64url_encode(_decode_key(value, "keys.auth", "invalid_auth", _AUTH_BYTES))


def _parse_number(value: object, field_name: str, code: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(
            "must be null or a number of milliseconds since the epoch",
            field=field_name,
            code=code,
        )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or number < 0 or number > MAX_TIMESTAMP_MS:
        raise ValidationError(
            "must be a finite, non-negative number of milliseconds since the epoch",
            field=field_name,
            code=code,
        )
    return number


def parse_subscription(data: object, policy: EndpointPolicy = DEFAULT_POLICY) -> Subscription:
    """Validate a ``PushSubscription.toJSON()`` object; unknown members are ignored."""
    if not isinstance(data, Mapping):
        raise ValidationError(
            "the subscription must be a JSON object: PushSubscription.toJSON()",
            code="invalid_subscription",
        )
    endpoint = parse_endpoint(data.get("endpoint"), policy)
    keys = data.get("keys")
    if not isinstance(keys, Mapping):
        raise ValidationError(
            "must be an object with p256dh and auth (PushSubscription.toJSON().keys)",
            field="keys",
            code="invalid_keys",
        )
    p256dh = parse_p256dh(keys.get("p256dh"))
    auth = parse_auth(keys.get("auth"))
    expiration = _parse_number(
        data.get("expirationTime"), "expirationTime", "invalid_expiration_time"
    )
    encoding = data.get("contentEncoding", "aes128gcm")
    if encoding is None:
        encoding = "aes128gcm"
    if encoding not in CONTENT_ENCODINGS:
        raise ValidationError(
            "must be 'aes128gcm' or 'aesgcm' (one of PushManager.supportedContentEncodings)",
            field="contentEncoding",
            code="invalid_content_encoding",
        )
    return Subscription(
        endpoint=endpoint,
        p256dh=p256dh,
        auth=auth,
        expiration_time=expiration,
        content_encoding=str(encoding),
    )


# --------------------------------------------------------------------------- events


def detail_json(detail: object, field_name: str = "detail") -> str | None:
    """Serialise an event detail compactly; refuse what JSON or the size bound cannot hold."""
    if detail is None:
        return None
    if not isinstance(detail, Mapping):
        raise ValidationError(
            "must be a JSON object or null", field=field_name, code="invalid_detail"
        )
    try:
        text = json.dumps(
            detail, ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True
        )
    except RecursionError:
        raise ValidationError(
            "is nested too deeply; keep it to a few levels of objects and arrays",
            field=field_name,
            code="invalid_detail",
        ) from None
    except (TypeError, ValueError):
        raise ValidationError(
            "must be plain JSON (objects, arrays, strings, finite numbers, booleans, null)",
            field=field_name,
            code="invalid_detail",
        ) from None
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"holds text that is not valid Unicode ({text[exc.start]!r}, a lone surrogate "
            "from a \\ud800-\\udfff escape without its pair); send well-formed strings",
            field=field_name,
            code="invalid_detail",
        ) from None
    if size > MAX_DETAIL_BYTES:
        raise ValidationError(
            f"is {size} bytes as JSON; keep it under {MAX_DETAIL_BYTES}",
            field=field_name,
            code="detail_too_large",
        )
    return text


def parse_opt_in_event(
    data: object, policy: EndpointPolicy = DEFAULT_POLICY, *, prefix: str = ""
) -> OptInEvent:
    """Validate one opt-in event ``{type, endpoint?, detail?, timestamp?}``.

    ``prefix`` is prepended to field names (``events[3].``) for batch error messages.
    """
    if not isinstance(data, Mapping):
        raise ValidationError(
            "an event must be a JSON object {type, endpoint?, detail?, timestamp?}",
            field=prefix.rstrip(".") or None,
            code="invalid_event",
        )
    event_type = data.get("type")
    if not isinstance(event_type, str) or event_type not in OPT_IN_EVENT_TYPES:
        raise ValidationError(
            "must be one of " + ", ".join(OPT_IN_EVENT_TYPES),
            field=f"{prefix}type",
            code="invalid_event_type",
        )
    endpoint = data.get("endpoint")
    if endpoint is not None:
        endpoint = parse_endpoint(endpoint, policy, field_name=f"{prefix}endpoint")
    detail = data.get("detail")
    text = detail_json(detail, f"{prefix}detail")
    client_time = _parse_number(data.get("timestamp"), f"{prefix}timestamp", "invalid_timestamp")
    return OptInEvent(
        type=event_type,
        endpoint=endpoint,
        detail=None if text is None else json.loads(text),
        client_time=client_time,
    )


def parse_opt_in_events(
    data: object, policy: EndpointPolicy = DEFAULT_POLICY, *, limit: int = MAX_EVENTS_PER_BATCH
) -> list[OptInEvent]:
    """Validate a batch (a JSON array) of events; the first bad one fails the whole batch."""
    if isinstance(data, str | bytes | Mapping) or not isinstance(data, Iterable):
        raise ValidationError(
            "must be a JSON array of events", field="events", code="invalid_events"
        )
    items = list(data)
    if not items or len(items) > limit:
        raise ValidationError(
            f"send between 1 and {limit} events per request",
            field="events",
            code="invalid_events",
        )
    return [
        parse_opt_in_event(item, policy, prefix=f"events[{i}].") for i, item in enumerate(items)
    ]
