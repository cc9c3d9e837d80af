"""Send web pushes: encrypt, sign, post concurrently, and record one outcome per subscription.

How a run works (``Sender.send_many`` and friends):

* records are pulled from the iterable in small chunks on a single "store" thread (the
  same thread writes outcomes back), so a store streaming from a database never blocks
  the event loop and memory stays bounded by ``concurrency`` and the chunk size;
* ``concurrency`` workers each take a record, encrypt the payload for it (aes128gcm, or
  aesgcm when the subscription was stored so), and post it with a VAPID header signed
  once per push-service origin (``VapidSigner``);
* the outcome rules (RFC 8030 section 5 and WEB-PUSH-RULES section 4):

  ======================  =================================================  ==============
  answer                  what we do                                          outcome
  ======================  =================================================  ==============
  2xx                     done                                                delivered
  404, 410                done; the store marks the subscription expired      expired
  429                     wait ``Retry-After`` (capped) and retry             failed if out
  5xx, 408, timeout,      exponential backoff with jitter, retry up to        of retries
  connection error        ``max_retries`` times
  other 4xx, 3xx          never retried; the push service's reason is kept    rejected
  ======================  =================================================  ==============

  A subscription made with another VAPID key is reported as ``key_mismatch`` without
  sending, and one whose keys cannot be used is ``invalid``;
* outcomes go back to the store in batches (``record_outcomes``), and the run returns a
  ``Summary``.

The HTTP layer is a ``Transport`` (:mod:`webpush_kit.transport`) so tests and benchmarks
can point the sender anywhere. The default, ``Http1Transport``, keeps a keep-alive pool
per push-service origin on plain asyncio protocols; ``AiohttpTransport`` is the
alternative (see that module for why the default is not aiohttp).

Sync methods (``send``, ``send_many``, ``send_to_user``, ``send_to_all``) run the async core
(``asend``...) on a private event-loop thread, so pools survive between calls from a
Flask view or the CLI. Call ``close()`` (or use ``with``) when done.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import email.utils
import itertools
import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from types import TracebackType
from typing import Any, Protocol, TypeVar

import http_ece  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from webpush_kit.errors import ValidationError, WebPushKitError
from webpush_kit.messages import Notification, PushOptions, check_payload_size, lone_surrogate
from webpush_kit.transport import (
    AiohttpTransport,
    Http1Transport,
    Transport,
    TransportError,
    TransportResponse,
    TransportTimeout,
)
from webpush_kit.vapid import VapidSigner, endpoint_origin

__all__ = [
    "AiohttpTransport",
    "EncryptedPayload",
    "Http1Transport",
    "Outcome",
    "OutcomeKind",
    "OutcomeSink",
    "PushTarget",
    "SendAborted",
    "Sender",
    "SubscriptionSource",
    "Summary",
    "Transport",
    "TransportError",
    "TransportResponse",
    "TransportTimeout",
    "encrypt_payload",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Longest reason text kept from a push service's answer.
MAX_REASON_LENGTH = 300
#: Records pulled from the source per hop to the store thread.
_CHUNK = 256


# --------------------------------------------------------------------------------------
# What the sender reads and writes
# --------------------------------------------------------------------------------------


class PushTarget(Protocol):
    """A subscription to push to. ``Subscription`` and ``SubscriptionRecord`` both fit.

    Optional attributes read when present: ``content_encoding`` ("aes128gcm" or
    "aesgcm") and ``vapid_key`` (the applicationServerKey it was made with).
    """

    @property
    def endpoint(self) -> str: ...
    @property
    def p256dh(self) -> str: ...
    @property
    def auth(self) -> str: ...


class OutcomeSink(Protocol):
    """Where outcomes go: ``(endpoint, 'delivered'|'expired'|'failed', error)`` batches."""

    def record_outcomes(self, outcomes: Sequence[tuple[str, str, str | None]]) -> None: ...


class SubscriptionSource(OutcomeSink, Protocol):
    """What ``send_to_user``/``send_to_all`` need from a store (``store.Store`` fits)."""

    def iter_active(self, batch_size: int = ...) -> Iterator[PushTarget]: ...

    def subscriptions_for_user(
        self, user_id: str, *, active_only: bool = ...
    ) -> Sequence[PushTarget]: ...


@dataclass(frozen=True, slots=True)
class _JsonTarget:
    endpoint: str
    p256dh: str
    auth: str
    content_encoding: str = "aes128gcm"
    vapid_key: str | None = None


def _target_from_json(data: Mapping[str, Any]) -> _JsonTarget:
    """Accept the browser's ``PushSubscription.toJSON()`` shape for one-off sends."""
    keys = data.get("keys")
    if not isinstance(keys, Mapping):
        raise ValidationError(
            "missing keys.p256dh and keys.auth", field="keys", code="invalid_subscription"
        )
    endpoint, p256dh, auth = data.get("endpoint"), keys.get("p256dh"), keys.get("auth")
    for name, value in (("endpoint", endpoint), ("keys.p256dh", p256dh), ("keys.auth", auth)):
        if not isinstance(value, str) or not value:
            raise ValidationError(
                "must be a non-empty string", field=name, code="invalid_subscription"
            )
    encoding = data.get("content_encoding") or data.get("contentEncoding") or "aes128gcm"
    return _JsonTarget(str(endpoint), str(p256dh), str(auth), str(encoding))


# --------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------


class OutcomeKind(StrEnum):
    DELIVERED = "delivered"
    EXPIRED = "expired"
    #: The push service refused the request (400/401/403/413, other 4xx): never retried.
    REJECTED = "rejected"
    #: Retries ran out (5xx, 429, timeouts, connection errors).
    FAILED = "failed"
    #: Made with another VAPID key: not sent (the browser must re-subscribe).
    KEY_MISMATCH = "key_mismatch"
    #: The subscription's keys or endpoint cannot be used: not sent.
    INVALID = "invalid"
    #: The same endpoint came twice in one run: sent once, counted here the second time.
    DUPLICATE = "duplicate"

    @property
    def store_status(self) -> str:
        """The status ``Store.record_outcomes`` understands."""
        if self is OutcomeKind.DELIVERED:
            return "delivered"
        if self is OutcomeKind.EXPIRED:
            return "expired"
        return "failed"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one subscription."""

    endpoint: str
    kind: OutcomeKind
    status: int | None = None
    attempts: int = 0
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind is OutcomeKind.DELIVERED

    def store_entry(self) -> tuple[str, str, str | None]:
        error = None
        if self.kind is not OutcomeKind.DELIVERED:
            error = f"{self.kind.value}: {self.reason}" if self.reason else self.kind.value
        return (self.endpoint, self.kind.store_status, error)


@dataclass(slots=True)
class Summary:
    """Counts per outcome kind for a run, plus a few failure samples per kind."""

    counts: dict[OutcomeKind, int] = field(default_factory=dict)
    total: int = 0
    #: HTTP requests made, retries included.
    requests: int = 0
    #: Seconds the run took (monotonic clock).
    duration: float = 0.0
    failures: list[Outcome] = field(default_factory=list)
    samples_per_kind: int = 5

    def add(self, outcome: Outcome) -> None:
        kind = outcome.kind
        n = self.counts.get(kind, 0)
        self.counts[kind] = n + 1
        self.total += 1
        self.requests += outcome.attempts
        if kind not in (OutcomeKind.DELIVERED, OutcomeKind.EXPIRED, OutcomeKind.DUPLICATE) and (
            n < self.samples_per_kind
        ):
            self.failures.append(outcome)

    def count(self, kind: OutcomeKind | str) -> int:
        return self.counts.get(OutcomeKind(kind), 0)

    @property
    def delivered(self) -> int:
        return self.count(OutcomeKind.DELIVERED)

    @property
    def expired(self) -> int:
        return self.count(OutcomeKind.EXPIRED)

    @property
    def failed(self) -> int:
        """Everything that was neither delivered nor expired (nor a duplicate)."""
        ok = (OutcomeKind.DELIVERED, OutcomeKind.EXPIRED, OutcomeKind.DUPLICATE)
        return sum(n for k, n in self.counts.items() if k not in ok)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "requests": self.requests,
            "duration": round(self.duration, 3),
            "counts": {k.value: n for k, n in sorted(self.counts.items())},
            "failures": [
                {
                    "endpoint": o.endpoint,
                    "kind": o.kind.value,
                    "status": o.status,
                    "attempts": o.attempts,
                    "reason": o.reason,
                }
                for o in self.failures
            ],
        }

    def __str__(self) -> str:
        parts = ", ".join(f"{n} {k.value}" for k, n in sorted(self.counts.items())) or "nothing"
        rate = self.total / self.duration if self.duration > 0 else 0.0
        return f"{self.total} subscriptions in {self.duration:.1f}s ({rate:.0f}/s): {parts}"


class SendAborted(WebPushKitError):
    """The run stopped early (the source or the store failed). ``summary`` has what was done."""

    code = "send_aborted"

    def __init__(self, message: str, summary: Summary) -> None:
        super().__init__(message)
        self.summary = summary


# --------------------------------------------------------------------------------------
# Encryption
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EncryptedPayload:
    body: bytes
    #: Content-Encoding plus, for aesgcm, ``Encryption`` and ``Crypto-Key`` (``dh=`` only).
    headers: dict[str, str]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    text = text.strip().rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _decode_keys(p256dh: str, auth: str) -> tuple[bytes, bytes]:
    try:
        receiver = _b64url_decode(p256dh)
        secret = _b64url_decode(auth)
    except (binascii.Error, ValueError, AttributeError, TypeError):
        raise ValidationError(
            "keys are not base64url", field="keys", code="invalid_subscription"
        ) from None
    if len(receiver) != 65 or receiver[0] != 4:
        raise ValidationError(
            "must be a 65-byte uncompressed P-256 point",
            field="keys.p256dh",
            code="invalid_subscription",
        )
    if len(secret) != 16:
        raise ValidationError("must be 16 bytes", field="keys.auth", code="invalid_subscription")
    return receiver, secret


def encrypt_payload(
    payload: bytes, p256dh: str, auth: str, content_encoding: str = "aes128gcm"
) -> EncryptedPayload:
    """Encrypt ``payload`` for one subscription (RFC 8291), with a fresh ephemeral key.

    aes128gcm is the standard; aesgcm (draft) is kept for subscriptions stored with it.
    """
    receiver, secret = _decode_keys(p256dh, auth)
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    try:
        if content_encoding == "aes128gcm":
            body = http_ece.encrypt(
                payload,
                private_key=ephemeral,
                dh=receiver,
                auth_secret=secret,
                version="aes128gcm",
            )
            return EncryptedPayload(bytes(body), {"Content-Encoding": "aes128gcm"})
        if content_encoding == "aesgcm":
            salt = os.urandom(16)
            dh = _b64url(
                ephemeral.public_key().public_bytes(
                    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
                )
            )
            body = http_ece.encrypt(
                payload,
                salt=salt,
                private_key=ephemeral,
                keyid=dh,
                dh=receiver,
                auth_secret=secret,
                version="aesgcm",
            )
            return EncryptedPayload(
                bytes(body),
                {
                    "Content-Encoding": "aesgcm",
                    "Encryption": f"salt={_b64url(salt)}",
                    "Crypto-Key": f"dh={dh}",
                },
            )
    except (ValueError, http_ece.ECEException) as exc:
        message = getattr(exc, "message", None) or str(exc)
        raise ValidationError(
            f"cannot encrypt for this subscription ({message})",
            field="keys.p256dh",
            code="invalid_subscription",
        ) from None
    raise ValidationError(
        f"unsupported content encoding {content_encoding!r}; use aes128gcm or aesgcm",
        field="content_encoding",
        code="invalid_subscription",
    )


# --------------------------------------------------------------------------------------
# Retry helpers
# --------------------------------------------------------------------------------------


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _reason(resp: TransportResponse) -> str:
    text = " ".join(resp.body.decode("utf-8", "replace").split())
    reason = f"HTTP {resp.status}: {text}" if text else f"HTTP {resp.status}"
    if len(reason) > MAX_REASON_LENGTH:
        reason = reason[: MAX_REASON_LENGTH - 3] + "..."
    return reason


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return value


_DONE: Any = object()


# --------------------------------------------------------------------------------------
# Sender
# --------------------------------------------------------------------------------------


Message = Notification | bytes | str


class Sender:
    """Encrypts, signs and posts pushes; see the module docstring for the rules.

    ``concurrency`` requests are in flight at most; each has ``timeout`` seconds; a
    retryable failure is retried ``max_retries`` times after ``backoff * 2**n`` seconds
    (with jitter, at most ``max_backoff``), or after ``Retry-After`` capped at
    ``max_retry_after``; a 429 with ``Retry-After`` holds back the whole origin. Outcomes
    are written to the store ``batch_size`` at a time. ``sleep`` is how delays are waited
    for (replaceable in tests).
    """

    def __init__(
        self,
        signer: VapidSigner,
        *,
        transport: Transport | None = None,
        concurrency: int = 100,
        timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 60.0,
        batch_size: int = 500,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not isinstance(signer, VapidSigner):
            raise TypeError("signer must be a VapidSigner")
        _positive("concurrency", concurrency, integer=True)
        _positive("timeout", timeout)
        _positive("batch_size", batch_size, integer=True)
        for name, value in (
            ("max_retries", max_retries),
            ("backoff", backoff),
            ("max_backoff", max_backoff),
            ("max_retry_after", max_retry_after),
        ):
            _positive(name, value, integer=name == "max_retries", zero_ok=True)
        self.signer = signer
        self.transport: Transport = transport or Http1Transport(limit_per_origin=concurrency)
        self.concurrency = concurrency
        self.timeout = float(timeout)
        self.max_retries = max_retries
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.max_retry_after = float(max_retry_after)
        self.batch_size = batch_size
        self._public_key = _b64url_decode(signer.public_key_b64)
        self._origins: dict[str, str] = {}  # "scheme://authority" prefix -> origin
        self._paused: dict[str, float] = {}  # origin -> loop time before which not to send
        self._sleep = sleep  # injectable, like VapidSigner's clock: tests see each delay
        self._runner = _LoopRunner()

    # --- async core ------------------------------------------------------------------

    async def asend(
        self,
        subscription: PushTarget | Mapping[str, Any],
        message: Message,
        options: PushOptions | None = None,
        *,
        store: OutcomeSink | None = None,
    ) -> Outcome:
        """Send one push. The outcome is also recorded in ``store`` when given."""
        _check_options(options)
        target = (
            _target_from_json(subscription) if isinstance(subscription, Mapping) else (subscription)
        )
        payload = _payload_bytes(message)
        outcome = await self._deliver(target, payload, self._base_headers(options))
        if store is not None:
            await asyncio.to_thread(store.record_outcomes, [outcome.store_entry()])
        return outcome

    async def asend_many(
        self,
        subscriptions: Iterable[PushTarget],
        message: Message,
        options: PushOptions | None = None,
        *,
        store: OutcomeSink | None = None,
        on_progress: Callable[[Outcome], None] | None = None,
        dedupe: bool = True,
    ) -> Summary:
        """Send to every subscription the iterable yields, streaming it.

        ``dedupe`` skips an endpoint seen earlier in the run; it remembers every endpoint,
        so pass ``False`` for sources that are unique already (``send_to_all`` does) to keep
        memory flat. ``on_progress`` is called with each outcome, on the sender's loop.
        """
        _check_options(options)
        payload = _payload_bytes(message)
        run = _Run(self, payload, self._base_headers(options), store, on_progress, dedupe)
        return await run.execute(subscriptions)

    async def asend_to_user(
        self,
        store: SubscriptionSource,
        user_id: str,
        message: Message,
        options: PushOptions | None = None,
        *,
        on_progress: Callable[[Outcome], None] | None = None,
    ) -> Summary:
        """Send to the user's active subscriptions and record the outcomes in ``store``."""
        _check_options(options)  # validate before touching the store
        payload = _payload_bytes(message)
        records = await asyncio.to_thread(store.subscriptions_for_user, user_id)
        return await self.asend_many(
            records, payload, options, store=store, on_progress=on_progress
        )

    async def asend_to_all(
        self,
        store: SubscriptionSource,
        message: Message,
        options: PushOptions | None = None,
        *,
        on_progress: Callable[[Outcome], None] | None = None,
    ) -> Summary:
        """Send to every active subscription, streamed from ``store`` in batches."""
        _check_options(options)  # before the store is read
        payload = _payload_bytes(message)
        records = await asyncio.to_thread(store.iter_active, self.batch_size)
        # Endpoints are the store's unique key, so no dedupe set growing with the count.
        return await self.asend_many(
            records, payload, options, store=store, on_progress=on_progress, dedupe=False
        )

    async def aclose(self) -> None:
        """Close connections held for the running loop (for callers of the async API)."""
        await self.transport.aclose()

    # --- sync wrappers ---------------------------------------------------------------

    def send(
        self,
        subscription: PushTarget | Mapping[str, Any],
        message: Message,
        options: PushOptions | None = None,
        *,
        store: OutcomeSink | None = None,
    ) -> Outcome:
        return self._runner.run(lambda: self.asend(subscription, message, options, store=store))

    def send_many(
        self,
        subscriptions: Iterable[PushTarget],
        message: Message,
        options: PushOptions | None = None,
        *,
        store: OutcomeSink | None = None,
        on_progress: Callable[[Outcome], None] | None = None,
        dedupe: bool = True,
    ) -> Summary:
        return self._runner.run(
            lambda: self.asend_many(
                subscriptions, message, options, store=store, on_progress=on_progress, dedupe=dedupe
            )
        )

    def send_to_user(
        self,
        store: SubscriptionSource,
        user_id: str,
        message: Message,
        options: PushOptions | None = None,
        *,
        on_progress: Callable[[Outcome], None] | None = None,
    ) -> Summary:
        return self._runner.run(
            lambda: self.asend_to_user(store, user_id, message, options, on_progress=on_progress)
        )

    def send_to_all(
        self,
        store: SubscriptionSource,
        message: Message,
        options: PushOptions | None = None,
        *,
        on_progress: Callable[[Outcome], None] | None = None,
    ) -> Summary:
        return self._runner.run(
            lambda: self.asend_to_all(store, message, options, on_progress=on_progress)
        )

    def close(self) -> None:
        """Close pooled connections and stop the private loop thread (sync API)."""
        self._runner.close(self.transport.aclose)

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Sender:
        return self

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- one subscription ------------------------------------------------------------

    def _base_headers(self, options: PushOptions | None) -> dict[str, str]:
        headers = (options if options is not None else PushOptions()).headers()
        headers["Content-Type"] = "application/octet-stream"
        return headers

    def _key_mismatch(self, target: PushTarget) -> str | None:
        made_with = getattr(target, "vapid_key", None)
        if not made_with or made_with.rstrip("=") == self.signer.public_key_b64:
            return None
        try:
            if _b64url_decode(made_with) == self._public_key:
                return None
        except (binascii.Error, ValueError):
            pass
        return (
            f"subscribed with VAPID key {made_with[:16]}..., we sign with "
            f"{self.signer.public_key_b64[:16]}...; the browser must re-subscribe"
        )

    def _origin(self, endpoint: str) -> str:
        """``endpoint_origin``, cached by the URL's ``scheme://authority`` prefix."""
        cut = endpoint.find("/", endpoint.find("//") + 2)
        prefix = endpoint if cut < 0 else endpoint[:cut]
        origin = self._origins.get(prefix)
        if origin is None:
            origin = endpoint_origin(endpoint)
            if len(self._origins) >= 1024:
                self._origins.clear()
            self._origins[prefix] = origin
        return origin

    async def _deliver(
        self, target: PushTarget, payload: bytes, base_headers: Mapping[str, str]
    ) -> Outcome:
        endpoint = getattr(target, "endpoint", "")
        if not isinstance(endpoint, str):
            endpoint = str(endpoint)
        try:
            return await self._deliver_to(target, endpoint, payload, base_headers)
        except Exception as exc:  # a broken transport or record must not lose the outcome
            logger.exception("unexpected error while sending to %.80s", endpoint)
            reason = f"internal error: {type(exc).__name__}: {exc}"
            return Outcome(endpoint, OutcomeKind.FAILED, reason=reason[:MAX_REASON_LENGTH])

    async def _deliver_to(
        self, target: PushTarget, endpoint: str, payload: bytes, base_headers: Mapping[str, str]
    ) -> Outcome:
        try:
            mismatch = self._key_mismatch(target)
            if mismatch:
                return Outcome(endpoint, OutcomeKind.KEY_MISMATCH, reason=mismatch)
            encoding = getattr(target, "content_encoding", None) or "aes128gcm"
            origin = self._origin(endpoint)
            encrypted = encrypt_payload(payload, target.p256dh, target.auth, encoding)
            token = self.signer.token_for_origin(origin)
        except ValidationError as exc:
            return Outcome(endpoint, OutcomeKind.INVALID, reason=exc.message)
        headers = dict(base_headers)
        headers.update(encrypted.headers)
        key = self.signer.public_key_b64
        if encoding == "aesgcm":
            # The draft-era scheme, as the web-push reference library sends it for aesgcm.
            headers["Authorization"] = f"WebPush {token}"
            headers["Crypto-Key"] = f"{headers['Crypto-Key']};p256ecdsa={key}"
        else:
            headers["Authorization"] = f"vapid t={token}, k={key}"
        return await self._post_with_retries(endpoint, origin, headers, encrypted.body)

    async def _post_with_retries(
        self, endpoint: str, origin: str, headers: Mapping[str, str], body: bytes
    ) -> Outcome:
        loop = asyncio.get_running_loop()
        attempts = 0
        while True:
            pause = self._paused.get(origin)
            if pause is not None:
                wait = pause - loop.time()
                if wait > 0:
                    await self._sleep(wait)
            attempts += 1
            status: int | None = None
            delay: float | None = None
            try:
                resp = await self.transport.post(endpoint, headers, body, self.timeout)
            except TransportTimeout as exc:
                reason = f"timeout: {exc}"
            except TransportError as exc:
                reason = f"connection error: {exc}"
            else:
                status = resp.status
                if 200 <= status < 300:
                    return Outcome(endpoint, OutcomeKind.DELIVERED, status, attempts)
                reason = _reason(resp)
                if status in (404, 410):
                    return Outcome(endpoint, OutcomeKind.EXPIRED, status, attempts, reason)
                if status == 429 or status >= 500 or status == 408:
                    retry_after = parse_retry_after(_header(resp.headers, "Retry-After"))
                    if retry_after is not None:
                        delay = min(retry_after, self.max_retry_after)
                        if status == 429:
                            # The whole origin is rate limited, not just this subscription:
                            # hold it back; the wait happens at the top of the next attempt.
                            until = loop.time() + delay
                            self._paused[origin] = max(self._paused.get(origin, 0.0), until)
                            delay = 0.0
                else:
                    return Outcome(endpoint, OutcomeKind.REJECTED, status, attempts, reason)
            if attempts > self.max_retries:
                return Outcome(
                    endpoint,
                    OutcomeKind.FAILED,
                    status,
                    attempts,
                    f"{reason} (gave up after {attempts} attempts)",
                )
            if delay is None:
                base = min(self.backoff * (2 ** (attempts - 1)), self.max_backoff)
                delay = base * (0.5 + random.random() / 2)  # jitter, not crypto
            if delay > 0:
                await self._sleep(delay)


def _positive(name: str, value: object, *, integer: bool = False, zero_ok: bool = False) -> None:
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ValueError(f"{name} must be a {'whole ' if integer else ''}number, got {value!r}")
    if value < 0 or (value == 0 and not zero_ok):
        raise ValueError(f"{name} must be {'>= 0' if zero_ok else '> 0'}, got {value!r}")


def _check_options(options: object) -> None:
    """``options`` must be a PushOptions (or None): a dict such as ``{"ttl": 5}`` would
    otherwise fail deep inside the send, or be silently ignored when empty."""
    if options is None or isinstance(options, PushOptions):
        return
    hint = " (for a dict of options: PushOptions(**options))" if isinstance(
        options, Mapping) else ""
    raise TypeError(
        f"options must be PushOptions(ttl=..., urgency=..., topic=...), not "
        f"{type(options).__name__}; pass PushOptions(...) from webpush_kit.messages{hint}"
    )


def _payload_bytes(message: Message) -> bytes:
    if isinstance(message, Notification):
        return message.to_payload()
    if isinstance(message, str):
        problem = lone_surrogate(message)
        if problem:
            raise ValidationError(
                f"holds {problem}, a lone surrogate that cannot be sent as UTF-8; pass "
                "valid Unicode text",
                field="payload",
                code="invalid_payload",
            )
        message = message.encode("utf-8")
    if not isinstance(message, bytes | bytearray):
        raise TypeError("message must be a Notification, bytes or str")
    if not message:
        raise ValidationError(
            "is empty; send a Notification or non-empty bytes",
            field="payload",
            code="empty_payload",
        )
    check_payload_size(bytes(message))
    return bytes(message)


# --------------------------------------------------------------------------------------
# One run over many subscriptions
# --------------------------------------------------------------------------------------


def _take(iterator: Iterator[T], n: int) -> tuple[list[T], Exception | None]:
    """Up to ``n`` items, and the error that ended the source early (items kept)."""
    items: list[T] = []
    try:
        for item in itertools.islice(iterator, n):
            items.append(item)
    except Exception as exc:
        return items, exc
    return items, None


class _Run:
    """State of one ``send_many``: a producer, ``concurrency`` workers, and a store writer."""

    def __init__(
        self,
        sender: Sender,
        payload: bytes,
        headers: dict[str, str],
        store: OutcomeSink | None,
        on_progress: Callable[[Outcome], None] | None,
        dedupe: bool,
    ) -> None:
        self.sender = sender
        self.payload = payload
        self.headers = headers
        self.store = store
        self.on_progress = on_progress
        self.seen: set[str] | None = set() if dedupe else None
        self.summary = Summary()
        self.pending: list[tuple[str, str, str | None]] = []
        self.error: BaseException | None = None
        self.stop = False
        self.progress_failed = False

    async def execute(self, subscriptions: Iterable[PushTarget]) -> Summary:
        sender = self.sender
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webpush-store")
        writes: asyncio.Queue[Any] = asyncio.Queue(maxsize=2)
        buffer: deque[PushTarget] = deque()
        fetching = asyncio.Lock()
        exhausted = False
        iterator: Iterator[PushTarget] | None = None

        async def next_record() -> Any:
            # Workers pull records themselves; one of them refills the small buffer from
            # the source (on the store thread) when it runs dry. Memory: one chunk.
            nonlocal exhausted, iterator
            if self.stop:
                return _DONE
            if buffer:
                return buffer.popleft()
            async with fetching:
                if buffer:
                    return buffer.popleft()
                if exhausted or self.stop:
                    return _DONE
                error: Exception | None
                try:
                    if iterator is None:
                        iterator = iter(subscriptions)
                    chunk, error = await loop.run_in_executor(io, _take, iterator, _CHUNK)
                except Exception as exc:
                    chunk, error = [], exc
                if error is not None:
                    # The source broke: still send what it gave, then stop.
                    exhausted = True
                    if self.error is None:
                        self.error = error
                if not chunk:
                    exhausted = True
                    return _DONE
                buffer.extend(chunk)
                return buffer.popleft()

        async def work() -> None:
            while True:
                record = await next_record()
                if record is _DONE:
                    return
                if self.seen is not None:
                    endpoint = getattr(record, "endpoint", None)
                    if isinstance(endpoint, str):
                        if endpoint in self.seen:
                            duplicate = Outcome(
                                endpoint,
                                OutcomeKind.DUPLICATE,
                                reason="endpoint already sent in this run",
                            )
                            await self.finish(duplicate, writes)
                            continue
                        self.seen.add(endpoint)
                outcome = await sender._deliver(record, self.payload, self.headers)
                await self.finish(outcome, writes)

        async def write() -> None:
            while True:
                batch = await writes.get()
                if batch is _DONE:
                    return
                if self.store is None:
                    continue
                try:
                    await loop.run_in_executor(io, _record, self.store, batch)
                except Exception as exc:
                    self.fail(exc)

        writer = asyncio.create_task(write())
        tasks = [asyncio.create_task(work()) for _ in range(sender.concurrency)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            if self.pending:
                batch, self.pending = self.pending, []
                await asyncio.shield(writes.put(batch))
            await asyncio.shield(writes.put(_DONE))
            await asyncio.shield(writer)
            io.shutdown(wait=False)
            self.summary.duration = time.monotonic() - started
        logger.info("web push run: %s", self.summary)
        if self.error is not None:
            raise SendAborted(
                f"sending stopped early: {type(self.error).__name__}: {self.error}", self.summary
            ) from self.error
        return self.summary

    def fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
        self.stop = True

    async def finish(self, outcome: Outcome, writes: asyncio.Queue[Any]) -> None:
        self.summary.add(outcome)
        if self.on_progress is not None:
            try:
                self.on_progress(outcome)
            except Exception:
                if not self.progress_failed:
                    logger.exception("on_progress callback failed; progress not reported")
                self.progress_failed = True
        if self.store is not None and outcome.kind is not OutcomeKind.DUPLICATE:
            self.pending.append(outcome.store_entry())
            if len(self.pending) >= self.sender.batch_size:
                batch, self.pending = self.pending, []
                await writes.put(batch)


def _record(store: OutcomeSink, batch: list[tuple[str, str, str | None]]) -> None:
    """Write a batch; if the store refuses it for one bad entry, write the rest one by one."""
    try:
        store.record_outcomes(batch)
    except ValidationError:
        for entry in batch:
            try:
                store.record_outcomes([entry])
            except ValidationError as exc:
                logger.warning("outcome for %.80s not recorded: %s", entry[0], exc)


# --------------------------------------------------------------------------------------
# A private event loop for the sync API
# --------------------------------------------------------------------------------------


class _LoopRunner:
    """Runs coroutines on one long-lived loop in a daemon thread (restarted after fork)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._pid = 0

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._pid != os.getpid() or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="webpush-sender", daemon=True
                )
                thread.start()
                self._loop, self._thread, self._pid = loop, thread, os.getpid()
            return self._loop

    def run(self, factory: Callable[[], Awaitable[T]]) -> T:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RuntimeError(
                "the sync Sender methods cannot run inside an event loop; "
                "await the async ones (asend, asend_many, asend_to_user, asend_to_all)"
            )
        loop = self._ensure()

        async def call() -> T:
            return await factory()

        future = asyncio.run_coroutine_threadsafe(call(), loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()
            raise

    def close(self, final: Callable[[], Awaitable[None]] | None = None) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None or self._pid != os.getpid():
            return
        if final is not None and not loop.is_closed():

            async def call() -> None:
                await final()

            try:
                asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=10)
            except Exception:
                logger.debug("closing the transport failed", exc_info=True)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()
