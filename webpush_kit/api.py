"""The JSON endpoints the browser client posts to: a request in, core calls, a response out.

No Flask here: the adapter (``webpush_kit.flask``) turns a request into an
:class:`ApiRequest`, calls :meth:`CallbackApi.handle` and sends the :class:`ApiResponse`
back. Everything below is under ``settings.api_path`` (default ``/webpush-kit/api``):

========================  ======================================================
``POST /subscription``    save or refresh a subscription (201 created, 200 refreshed)
``DELETE /subscription``  mark one unsubscribed; also ``POST /subscription/remove``
``POST /events``          a batch of opt-in events (at most 50; all or nothing)
``POST /identify``        link the subscription it presents (this browser's) to the user
``POST /reset``           unlink the user from this browser's subscription (logout)
``GET /vapid-public-key`` the applicationServerKey, when self-hosted (else 404)
========================  ======================================================

Rules every POST passes before anything is written (so a rejection writes nothing):

* **Same origin only.** ``Sec-Fetch-Site`` must be ``same-origin`` when the browser sends
  it (every current browser does); otherwise an ``Origin`` header must name this host.
  A request with neither header is accepted: current browsers send ``Origin`` with every
  cross-origin POST, so it comes from a server-side client (or a test). Together with the
  next rule this is the CSRF defence: a cross-site page can send ``application/json`` only
  after a CORS preflight, which these endpoints never approve (no
  ``Access-Control-Allow-*`` headers, ``OPTIONS`` is 405), and a form cannot send it.
  Behind a TLS-terminating proxy the request looks like ``http`` while the page's
  ``Origin`` is ``https``; that one upgrade is accepted, the host must still match.
* ``Content-Type: application/json`` (UTF-8) only (415), bodies up to ``max_body_bytes``
  (413), valid JSON without ``NaN``/``Infinity`` (400 ``invalid_json``), an object (400).
* Rejections are 4xx ``{"error": {"code", "message", "field"?}}``.

Whose user id a callback is linked to (issue 3, item 3):

* With a ``user_id_loader``, the loader's id is the only one ever linked. Whatever the
  browser sends as ``user_token`` or ``user_id`` is ignored, not refused: a page rendered
  before a login or logout in another tab must not break the callback, and the session
  is the authority. When the loader returns None the callback is anonymous.
* Without a loader, a user id is accepted only inside a ``user_token`` the server signed
  (``webpush_head(user_id=...)``): forged 403 ``forged_user_token``, expired 403
  ``expired_user_token``. A bare ``user_id`` is only a claim: without a token it is 403
  ``unsigned_user_id``, and one that differs from the token's is 403
  ``user_token_mismatch``.
* Anonymous ids (MoEngage device uuid, Segment ``anonymousId``) are accepted as they
  are, within bounds, and recorded, but they never link anything: a subscription is
  linked to a user only by a request that presents that subscription (its endpoint),
  on ``/subscription`` or ``/identify`` with a verified user. Proof of possession: the
  endpoint is an unguessable URL only that browser and the server know, while an
  anonymous id is readable by every script on the page and leaks (analytics, shared
  links). Linking "every anonymous subscription of this anonymous id" at login would let
  a logged-in attacker who learned a victim's anonymous id take the victim browser's
  subscription into their own account. So the API never calls ``Store.link_anonymous``
  (nor ``save_subscription(link_anonymous=True)``); the browser client sends its current
  subscription with every ``/identify`` instead.

Most ``/subscription`` posts are the re-sync every page load makes. The row is read
first, and a post that would change nothing (same keys and owner, active, seen within
``REFRESH_INTERVAL``) writes nothing: a read takes no write lock and waits for no flush.

Responses never carry user ids: a subscription answer says only its status, whether it
was created, and whether it is linked to a user.

Bodies (every member but the first of each is optional; ``user_token``/``user_id`` and
``anonymous_id`` may accompany any of them):

* ``/subscription``: ``{subscription: PushSubscription.toJSON(), anonymous_id,
  user_token, old_endpoint, source, application_server_key}``; ``old_endpoint`` (a
  subscription this one replaces, from the service worker's ``pushsubscriptionchange``)
  is marked unsubscribed in the same transaction. A worker cannot see the page's user
  token, so when the post carries no verified user, the new subscription inherits the old
  row's user id and anonymous id (the old endpoint is a secret URL only this browser and
  the server know); a verified user (loader or token) still wins.
* ``/subscription/remove`` and ``DELETE /subscription``: ``{endpoint}``.
* ``/events``: ``{events: [{type, endpoint?, detail?, timestamp?}, ...]}``.
* ``/identify``: ``{user_token | loader, subscription?, anonymous_id,
  application_server_key}``; saves and links the subscription when there is one (the
  only one it links: other subscriptions of the anonymous id are left alone, see above),
  and records an ``identified`` event with the anonymous id. ``linked`` in the answer
  says whether the presented subscription is now linked to the user.
* ``/reset``: ``{endpoint, anonymous_id}``. Holding the endpoint (a secret URL only this
  browser and the server know) is what entitles a browser to unlink it: at logout the
  session is usually gone already. An expired token is tolerated here, a forged one is
  not. Records a ``reset`` event.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from webpush_kit.errors import ConfigError, ValidationError
from webpush_kit.identity import UserTokens, check_anonymous_id, check_user_id
from webpush_kit.settings import Settings
from webpush_kit.store import Store, SubscriptionRecord
from webpush_kit.subscriptions import (
    DEFAULT_PUSH_HOSTS,
    EndpointPolicy,
    OptInEvent,
    Subscription,
    b64url_decode,
    b64url_encode,
    parse_endpoint,
    parse_opt_in_events,
    parse_subscription,
)
from webpush_kit.vapid import VapidKey

log = logging.getLogger("webpush_kit")

__all__ = [
    "ACTIONS",
    "MAX_EVENTS_PER_REQUEST",
    "SOURCES",
    "ApiRequest",
    "ApiResponse",
    "CallbackApi",
    "endpoint_policy",
    "error_response",
    "load_vapid_key",
]

#: Events per ``POST /events``; the client flushes its queue in batches of this size.
MAX_EVENTS_PER_REQUEST: Final = 50
#: What may report a subscription (``source``): informational, but bounded.
SOURCES: Final = (
    "moengage",
    "self-hosted",
    "resync",
    "pushsubscriptionchange",
    "identify",
)
#: action -> methods it answers.
ACTIONS: Final[Mapping[str, tuple[str, ...]]] = {
    "subscription": ("POST", "DELETE"),
    "subscription/remove": ("POST",),
    "events": ("POST",),
    "identify": ("POST",),
    "reset": ("POST",),
    "vapid-public-key": ("GET", "HEAD"),
}
#: A refresh that would change nothing is not written when the row was seen this recently
#: (the client re-syncs on every page load; ``last_seen_at`` is accurate to this much).
REFRESH_INTERVAL: Final = timedelta(hours=1)
#: Longest unknown action echoed in a 404 message (the rest is cut, with an ellipsis).
_MAX_SHOWN_ACTION: Final = 80
_JSON_TYPE_RE: Final = re.compile(r"application/json\s*(;\s*charset\s*=\s*\"?utf-8\"?\s*)?", re.I)


@dataclass(frozen=True)
class ApiRequest:
    """What the core needs to know about one HTTP request.

    ``read_body(limit)`` returns at most ``limit`` bytes of the body; it is called only
    after the origin and content-type checks pass, so a refused request is never read.
    """

    method: str
    content_type: str | None
    content_length: int | None
    read_body: Callable[[int], bytes]
    scheme: str
    host: str
    origin: str | None = None
    sec_fetch_site: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: dict[str, Any]
    headers: tuple[tuple[str, str], ...] = ()


class _Reject(Exception):
    """A refusal decided before validation: status, code, message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(
    status: int, code: str, message: str, headers: tuple[tuple[str, str], ...] = ()
) -> ApiResponse:
    """The one error shape: ``{"error": {"code", "message"}}``."""
    return ApiResponse(status, {"error": {"code": code, "message": message}}, headers)


def endpoint_policy(settings: Settings) -> EndpointPolicy:
    """The push-service allowlist: the well-known services plus the owner's hosts."""
    return EndpointPolicy(
        allowed_hosts=(*DEFAULT_PUSH_HOSTS, *settings.push_hosts),
        allow_localhost_http=settings.allow_localhost_endpoints,
    )


_RAW_KEY_RE: Final = re.compile(r"[A-Za-z0-9_+/-]{42,44}={0,2}")


def load_vapid_key(value: str, base: str | Path | None = None) -> VapidKey:
    """The ``vapid_private_key`` setting: a key file (PEM, DER or raw; a relative path is
    tried as given, then under ``base``, the instance folder) or the raw key itself."""
    path = Path(value).expanduser()
    candidates = [path] if path.is_absolute() or base is None else [path, Path(base) / path]
    for candidate in candidates:
        if candidate.is_file():
            return VapidKey.load(candidate)
    if _RAW_KEY_RE.fullmatch(value.strip()):
        return VapidKey.from_raw(value.strip())
    # Name the value only when it looks like a path: never echo something key-like.
    shown = value if ("/" in value or "." in value) and len(value) < 300 else "<not shown>"
    raise ConfigError("vapid_private_key", shown, "the path of an existing key file (PEM, DER "
                      "or raw; relative paths are also tried in the instance folder), or the "
                      "raw private key as base64url; create one with `webpush-kit vapid "
                      "generate`")


# --------------------------------------------------------------------------- checks


def _default_port(scheme: str) -> int | None:
    return {"http": 80, "https": 443}.get(scheme)


def _host_port(netloc: str, scheme: str) -> tuple[str, int | None] | None:
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").lower()
    if not host:
        return None
    return host, port if port is not None else _default_port(scheme)


@lru_cache(maxsize=256)
def _same_origin(origin: str, scheme: str, host: str) -> bool:
    """Whether ``Origin`` names this server (scheme upgrade http->https tolerated).

    Cached: a site sees the same few (Origin, scheme, Host) triples on every request."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    o_scheme = parts.scheme.lower()
    if o_scheme not in ("http", "https") or parts.path or parts.query or parts.fragment:
        return False
    if parts.username is not None or parts.password is not None:
        return False
    theirs = _host_port(parts.netloc, o_scheme)
    if theirs is None:
        return False
    if o_scheme == scheme:
        return theirs == _host_port(host, scheme)
    if o_scheme == "https" and scheme == "http":
        # TLS ended at a proxy: the Host header carries no port or the public one.
        ours = _host_port(host, "https")
        return ours is not None and theirs[0] == ours[0] and (
            theirs[1] == ours[1] or ":" not in host.rsplit("]", 1)[-1]
        )
    return False


def _check_origin(req: ApiRequest) -> None:
    site = req.sec_fetch_site
    if site is not None:
        if site.strip().lower() != "same-origin":
            raise _Reject(403, "cross_origin", f"refused a {site!r} request: these endpoints "
                          "answer only pages of this site (Sec-Fetch-Site: same-origin)")
        return
    if req.origin is not None and not _same_origin(req.origin, req.scheme, req.host):
        raise _Reject(403, "cross_origin", "refused a request from another origin: these "
                      "endpoints answer only pages of this site (Origin must be this site)")


def _check_content_type(req: ApiRequest) -> None:
    ctype = (req.content_type or "").strip()
    if not _JSON_TYPE_RE.fullmatch(ctype):
        raise _Reject(415, "unsupported_media_type", "send the body as JSON with "
                      "Content-Type: application/json (UTF-8)")


class _NotJson(ValueError):
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's json reads them, JSON has none."""


def _reject_constant(name: str) -> Any:
    raise _NotJson(name)


def _read_json(req: ApiRequest, limit: int) -> dict[str, Any]:
    if req.content_length is not None and req.content_length > limit:
        raise _Reject(413, "body_too_large", f"the body is {req.content_length} bytes; at "
                      f"most {limit} are accepted")
    raw = req.read_body(limit + 1)
    if len(raw) > limit:
        raise _Reject(413, "body_too_large", f"the body is larger than {limit} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Reject(400, "invalid_json", f"the body is not valid UTF-8 (byte {exc.start}); "
                      "send JSON encoded as UTF-8") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise _Reject(400, "invalid_json", f"the body is not valid JSON: {exc.msg} at line "
                      f"{exc.lineno} column {exc.colno}") from None
    except _NotJson as exc:
        raise _Reject(400, "invalid_json", f"the body holds {exc}, which is not JSON; send "
                      "finite numbers (or null)") from None
    except RecursionError:
        raise _Reject(400, "invalid_json", "the body's JSON is nested too deeply; the "
                      "endpoints take a few levels of objects and arrays") from None
    except ValueError:  # int("9" * 5000): above sys.get_int_max_str_digits()
        raise _Reject(400, "invalid_json", "the body holds a number too large (more than "
                      f"{sys.get_int_max_str_digits()} digits)") from None
    if not isinstance(data, dict):
        raise _Reject(400, "invalid_body", "the body must be a JSON object")
    return data


#: Posts of a subscription the browser has only just made (see ``CallbackApi._save``).
_FRESH_SOURCES: Final = frozenset({"moengage", "self-hosted"})


def _check_source(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or value not in SOURCES:
        raise ValidationError("must be one of " + ", ".join(SOURCES), field="source",
                              code="invalid_source")
    return value


def _check_server_key(value: object) -> str | None:
    """``application_server_key``: the key the subscription was made with (VAPID)."""
    if value is None:
        return None
    bad = ValidationError("must be the subscription's options.applicationServerKey as "
                          "base64url (a 65-byte uncompressed P-256 point)",
                          field="application_server_key", code="invalid_application_server_key")
    if not isinstance(value, str) or len(value) > 100:
        raise bad
    try:
        raw = b64url_decode(value)
    except ValueError:
        raise bad from None
    if len(raw) != 65 or raw[0] != 0x04:
        raise bad
    return b64url_encode(raw)


def _unchanged(
    rec: SubscriptionRecord,
    sub: Subscription,
    user_id: str | None,
    anonymous_id: str | None,
    user_agent: str | None,
    server_key: str | None,
) -> bool:
    """Whether saving ``sub`` would leave ``rec`` as it is (apart from ``last_seen_at``,
    when that was set within ``REFRESH_INTERVAL``).

    The owner rule is the store's (see :mod:`webpush_kit.store`): a post naming a user
    takes the row; an anonymous post keeps the user only with the same anonymous id; the
    anonymous id is kept only when the post names the same user. Anything uncertain
    (a user agent the store would clean, a failure count to reset) counts as a change.
    """
    if rec.status != "active" or rec.failure_count or rec.last_error is not None:
        return False
    if datetime.now(UTC) - rec.last_seen_at > REFRESH_INTERVAL:
        return False
    if (rec.p256dh, rec.auth, rec.content_encoding, rec.expiration_time) != (
        sub.p256dh, sub.auth, sub.content_encoding, sub.expiration_time
    ):
        return False
    if server_key is not None and rec.vapid_key != server_key:
        return False
    if user_agent is not None and rec.user_agent != user_agent:
        return False
    if user_id is not None:
        new_user: str | None = user_id
    elif anonymous_id is not None and anonymous_id == rec.anonymous_id:
        new_user = rec.user_id
    else:
        new_user = None
    if anonymous_id is not None:
        new_anon: str | None = anonymous_id
    elif user_id is not None and user_id == rec.user_id:
        new_anon = rec.anonymous_id
    else:
        new_anon = None
    return new_user == rec.user_id and new_anon == rec.anonymous_id


def _saved(record: SubscriptionRecord, created: bool) -> ApiResponse:
    """The answer to a subscription post: never a user id, only whether one is linked."""
    return ApiResponse(201 if created else 200, {
        "status": record.status,
        "created": created,
        "linked": record.user_id is not None,
    })


def _loader_user_id(value: object) -> str | None:
    """Normalise what a user_id_loader returned (Flask-Login ids are often ints)."""
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise TypeError(f"user_id_loader returned {type(value).__name__}; return the "
                        "user id as a string, or None when nobody is logged in")
    return check_user_id(value, field="user_id_loader()")


# --------------------------------------------------------------------------- the API


class CallbackApi:
    """The endpoints' logic, given ways to reach the store, tokens and logged-in user.

    ``store`` and ``tokens`` are callables so nothing is opened before a request needs
    it; ``tokens`` returns None when the app has no secret key (no token can be valid).
    ``user_id_loader``, when given, is called during :meth:`handle` (in the framework's
    request context).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: Callable[[], Store],
        tokens: Callable[[], UserTokens | None],
        user_id_loader: Callable[[], object] | None = None,
        vapid_public_key: str | None = None,
    ) -> None:
        self.settings = settings
        self.policy = endpoint_policy(settings)
        self._store = store
        self._tokens = tokens
        self.user_id_loader = user_id_loader
        self.vapid_public_key = vapid_public_key
        self._views: dict[str, Callable[[ApiRequest, dict[str, Any]], ApiResponse]] = {
            "POST subscription": self._save,
            "DELETE subscription": self._remove,
            "POST subscription/remove": self._remove,
            "POST events": self._events,
            "POST identify": self._identify,
            "POST reset": self._reset,
        }

    # ---------------------------------------------------------------- dispatch

    def handle(self, action: str, req: ApiRequest) -> ApiResponse:
        """Answer one request for ``action`` (the path below ``api_path``, no slash)."""
        methods = ACTIONS.get(action)
        if methods is None:
            shown = action if len(action) <= _MAX_SHOWN_ACTION else \
                action[:_MAX_SHOWN_ACTION] + "\u2026"
            return error_response(404, "not_found", f"no endpoint {shown!r}; see the "
                                  "webpush_kit.api documentation for the endpoints")
        method = req.method.upper()
        if method not in methods:
            return error_response(405, "method_not_allowed",
                                  f"{action} answers {', '.join(methods)}, not {method}",
                                  (("Allow", ", ".join(methods)),))
        try:
            if action == "vapid-public-key":
                return self._vapid_public_key()
            _check_origin(req)
            _check_content_type(req)
            body = _read_json(req, self.settings.max_body_bytes)
            return self._views[f"{method} {action}"](req, body)
        except _Reject as exc:
            return error_response(exc.status, exc.code, exc.message)
        except ValidationError as exc:
            status = exc.status if 400 <= exc.status < 500 else 400
            return ApiResponse(status, exc.to_dict())

    # ---------------------------------------------------------------- identity

    def _user_id(self, body: Mapping[str, Any]) -> str | None:
        """The verified user id this request may link to, or None (anonymous)."""
        if self.user_id_loader is not None:
            return _loader_user_id(self.user_id_loader())
        claimed = body.get("user_id")
        if claimed is not None:
            if isinstance(claimed, int) and not isinstance(claimed, bool):
                claimed = str(claimed)
            claimed = check_user_id(claimed, field="user_id")
        token = body.get("user_token")
        if token is None:
            if claimed is not None:
                raise ValidationError("a user id is accepted only with the user_token the "
                                      "page was rendered with (webpush_head(user_id=...))",
                                      field="user_id", code="unsigned_user_id", status=403)
            return None
        tokens = self._tokens()
        if tokens is None:
            raise ValidationError("the user token was not signed by this site (it has no "
                                  "SECRET_KEY)", field="user_token", code="forged_user_token",
                                  status=403)
        user_id = tokens.verify(token)
        if claimed is not None and claimed != user_id:
            raise ValidationError("names another user than the page's user token; reload "
                                  "the page after logging in", field="user_id",
                                  code="user_token_mismatch", status=403)
        return user_id

    # ---------------------------------------------------------------- views

    def _vapid_public_key(self) -> ApiResponse:
        if self.vapid_public_key is None:
            return error_response(404, "not_configured", "this site has no VAPID key "
                                  "(set vapid_private_key for self-hosted push)")
        return ApiResponse(200, {"publicKey": self.vapid_public_key},
                           (("Cache-Control", "no-cache"),))

    def _save(self, req: ApiRequest, body: dict[str, Any]) -> ApiResponse:
        sub = parse_subscription(body.get("subscription"), self.policy)
        anonymous_id = check_anonymous_id(body.get("anonymous_id"))
        old = body.get("old_endpoint")
        old_endpoint = None if old is None else parse_endpoint(old, self.policy,
                                                               field_name="old_endpoint")
        source = _check_source(body.get("source"))
        server_key = _check_server_key(body.get("application_server_key"))
        user_id = self._user_id(body)
        # Everything is valid: now write.
        store = self._store()
        if source in _FRESH_SOURCES or (old_endpoint is not None
                                        and old_endpoint != sub.endpoint):
            # A subscription the browser has just made (the SDK's HARD_ASK_ALLOWED, our
            # subscribe()) is nearly always new: write at once, no read first.
            # pushsubscriptionchange: retire the old row and save the new one in one
            # transaction; without a verified user the new one keeps the old one's owner.
            record, created = store.save_subscription(
                sub, user_id=user_id, anonymous_id=anonymous_id,
                user_agent=req.user_agent, vapid_key=server_key, replaces=old_endpoint,
            )
            return _saved(record, created)
        # Most posts are the re-sync of every page load: read first, and write only what
        # changes something (a read takes no write lock and waits for no disk flush).
        before = store.get(sub.endpoint)
        if before is not None and _unchanged(
            before, sub, user_id, anonymous_id, req.user_agent, server_key
        ):
            return _saved(before, False)
        # Only the posted subscription takes the verified user: never other subscriptions
        # of the same anonymous id (whoever knows an anonymous id must not gain them).
        record, created = store.save_subscription(
            sub, user_id=user_id, anonymous_id=anonymous_id,
            user_agent=req.user_agent, vapid_key=server_key,
        )
        return _saved(record, created)

    def _remove(self, req: ApiRequest, body: dict[str, Any]) -> ApiResponse:
        endpoint = parse_endpoint(body.get("endpoint"), self.policy)
        removed = self._store().remove_subscription(endpoint)
        return ApiResponse(200, {"removed": removed})

    def _events(self, req: ApiRequest, body: dict[str, Any]) -> ApiResponse:
        events = parse_opt_in_events(body.get("events"), self.policy,
                                     limit=MAX_EVENTS_PER_REQUEST)
        anonymous_id = check_anonymous_id(body.get("anonymous_id"))
        user_id = self._user_id(body)
        n = self._store().record_events(events, user_id=user_id, anonymous_id=anonymous_id)
        return ApiResponse(200, {"recorded": n})

    def _identify(self, req: ApiRequest, body: dict[str, Any]) -> ApiResponse:
        raw_sub = body.get("subscription")
        sub = None if raw_sub is None else parse_subscription(raw_sub, self.policy)
        anonymous_id = check_anonymous_id(body.get("anonymous_id"))
        server_key = _check_server_key(body.get("application_server_key"))
        user_id = self._user_id(body)
        if user_id is None:
            raise ValidationError(
                "identify needs a verified user: the user_token the page was rendered with "
                "(webpush_head(user_id=...)), or a user_id_loader that returns the "
                "logged-in user", field="user_token", code="user_not_verified", status=403)
        store = self._store()
        linked = False
        if sub is not None:
            # Presenting the endpoint proves this is that browser's subscription: it (and
            # only it) is linked. The anonymous id links nothing: it is no secret.
            record, _ = store.save_subscription(
                sub, user_id=user_id, anonymous_id=anonymous_id,
                user_agent=req.user_agent, vapid_key=server_key)
            linked = record.user_id is not None
        store.record_events(
            [OptInEvent("identified", endpoint=None if sub is None else sub.endpoint)],
            user_id=user_id, anonymous_id=anonymous_id,
        )
        return ApiResponse(200, {"linked": linked})

    def _reset(self, req: ApiRequest, body: dict[str, Any]) -> ApiResponse:
        raw = body.get("endpoint")
        endpoint = None if raw is None else parse_endpoint(raw, self.policy)
        anonymous_id = check_anonymous_id(body.get("anonymous_id"))
        try:
            user_id = self._user_id(body)
        except ValidationError as exc:
            if exc.code != "expired_user_token":
                raise
            user_id = None  # logging out from an old page: the endpoint alone is enough
        store = self._store()
        unlinked = 0
        if endpoint is not None:
            # Possessing the endpoint is possessing the browser's subscription: unlink it
            # from whoever it is linked to (at logout the session is usually gone already).
            record = store.get(endpoint)
            if record is not None and record.user_id is not None:
                user_id = user_id or record.user_id
                unlinked = store.unlink_user(record.user_id, endpoint)
        store.record_events([OptInEvent("reset", endpoint=endpoint)],
                            user_id=user_id, anonymous_id=anonymous_id)
        return ApiResponse(200, {"unlinked": unlinked > 0})
