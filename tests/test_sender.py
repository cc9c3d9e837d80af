"""The sender against a real loopback HTTP push service with scripted faults.

Every request goes over real HTTP to ``tests/pushservice.py``. Delays the sender chooses
(backoff, Retry-After) are captured through its injectable ``sleep`` instead of being
waited for, so tests check the exact delays without measuring time; only the request
timeout is real (a hanging service must be cut off by it).
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from tests.pushservice import PushService, Recipient, RecordedRequest, Reply
from webpush_kit.errors import ValidationError
from webpush_kit.messages import Notification, PushOptions
from webpush_kit.sender import (
    Outcome,
    OutcomeKind,
    SendAborted,
    Sender,
    SubscriptionSource,
    Transport,
    TransportResponse,
    parse_retry_after,
)
from webpush_kit.store import Store
from webpush_kit.subscriptions import Subscription
from webpush_kit.vapid import VapidClaims, VapidKey, VapidSigner

SUB = "mailto:push-admin@shop-example.com"
MESSAGE = Notification(title="Grüße 🎉", body="日本語 ✓ 👍🏽 — ünïcödé", url="/orders/42")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sleeps:
    """Records the delays the sender asks for and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@dataclass(frozen=True)
class Record:
    """What the store hands the sender (SubscriptionRecord's relevant fields)."""

    endpoint: str
    p256dh: str
    auth: str
    content_encoding: str = "aes128gcm"
    vapid_key: str | None = None
    user_id: str | None = None


class MemoryStore:
    """An in-memory store implementing the sender's SubscriptionSource protocol."""

    def __init__(self, records: Sequence[Record] = ()) -> None:
        self.records = list(records)
        self.batches: list[list[tuple[str, str, str | None]]] = []

    def iter_active(self, batch_size: int = 500) -> Iterator[Record]:
        yield from self.records

    def subscriptions_for_user(self, user_id: str, *, active_only: bool = True) -> list[Record]:
        return [r for r in self.records if r.user_id == user_id]

    def record_outcomes(self, outcomes: Sequence[tuple[str, str, str | None]]) -> None:
        self.batches.append(list(outcomes))

    @property
    def entries(self) -> list[tuple[str, str, str | None]]:
        return [e for batch in self.batches for e in batch]


@pytest.fixture
def service() -> Iterator[PushService]:
    with PushService() as svc:
        yield svc


@pytest.fixture
def recipient() -> Recipient:
    return Recipient.generate()


@pytest.fixture
def key() -> VapidKey:
    return VapidKey.generate()


@pytest.fixture
def signer(key: VapidKey) -> VapidSigner:
    return VapidSigner(key, VapidClaims(SUB))


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def sender(signer: VapidSigner, sleeps: Sleeps) -> Iterator[Sender]:
    with Sender(
        signer, timeout=5.0, max_retries=2, backoff=0.5, max_retry_after=30.0, sleep=sleeps
    ) as s:
        yield s


def sub(
    service: PushService, name: str, recipient: Recipient, content_encoding: str = "aes128gcm"
) -> Subscription:
    return Subscription(
        service.endpoint(name),
        recipient.p256dh,
        recipient.auth,
        content_encoding=content_encoding,
    )


def verify_vapid(request: RecordedRequest, public_key_b64: str) -> dict[str, object]:
    scheme, _, rest = request.headers["authorization"].partition(" ")
    assert scheme == "vapid"
    params = dict(p.strip().split("=", 1) for p in rest.split(","))
    assert params["k"] == public_key_b64
    head, body, sig = params["t"].split(".")
    raw = b64url_decode(sig)
    public = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), b64url_decode(public_key_b64)
    )
    public.verify(
        encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")),
        f"{head}.{body}".encode(),
        ec.ECDSA(hashes.SHA256()),
    )
    claims: dict[str, object] = json.loads(b64url_decode(body))
    return claims


# --------------------------------------------------------------------------- delivered


def test_delivered_with_correct_headers_and_decryptable_body(
    service: PushService, sender: Sender, recipient: Recipient, signer: VapidSigner
) -> None:
    options = PushOptions(ttl=3600, urgency="high", topic="order-42")
    outcome = sender.send(sub(service, "a", recipient), MESSAGE, options)
    assert outcome == Outcome(service.endpoint("a"), OutcomeKind.DELIVERED, 201, 1)
    [request] = service.requests_for("a")
    h = request.headers
    assert h["ttl"] == "3600" and int(h["ttl"]) > 0
    assert h["urgency"] == "high" and h["topic"] == "order-42"
    assert h["content-type"] == "application/octet-stream"
    assert h["content-encoding"] == "aes128gcm"
    claims = verify_vapid(request, signer.public_key_b64)
    assert claims["aud"] == service.url  # the origin: scheme://host:port, no path
    assert claims["sub"] == SUB
    exp = claims["exp"]
    assert isinstance(exp, int) and exp <= time.time() + 12 * 3600 + 5
    plaintext = recipient.decrypt(request)
    assert plaintext == MESSAGE.to_payload()
    assert json.loads(plaintext)["title"] == "Grüße 🎉"
    assert "👍🏽" in plaintext.decode("utf-8")
    # RFC 8291: salt(16) rs(4) idlen(1) keyid(65) + ciphertext + delimiter + tag
    assert len(request.body) == 86 + len(plaintext) + 1 + 16


def test_default_ttl_header_is_nonzero(
    service: PushService, sender: Sender, recipient: Recipient
) -> None:
    sender.send(sub(service, "a", recipient), MESSAGE)
    [request] = service.requests_for("a")
    assert int(request.headers["ttl"]) > 0 and request.headers["urgency"] == "normal"
    assert "topic" not in request.headers


def test_raw_bytes_and_str_payloads(
    service: PushService, sender: Sender, recipient: Recipient
) -> None:
    sender.send(sub(service, "b", recipient), b"\x00\x01binary")
    sender.send(sub(service, "s", recipient), "plain text ✓")
    assert recipient.decrypt(service.requests_for("b")[0]) == b"\x00\x01binary"
    assert recipient.decrypt(service.requests_for("s")[0]) == "plain text ✓".encode()


def test_largest_payload_fits_in_4096_bytes(
    service: PushService, sender: Sender, recipient: Recipient
) -> None:
    payload = "é".encode() * 1996 + b"x"  # 3993 bytes
    assert sender.send(sub(service, "big", recipient), payload).kind is OutcomeKind.DELIVERED
    [request] = service.requests_for("big")
    assert len(request.body) == 4096
    assert recipient.decrypt(request) == payload


def test_too_large_payload_is_refused_before_sending(
    service: PushService, sender: Sender, recipient: Recipient
) -> None:
    with pytest.raises(ValidationError) as info:
        sender.send(sub(service, "big", recipient), b"x" * 3994)
    assert info.value.status == 413
    with pytest.raises(ValidationError):
        sender.send_many([sub(service, "big", recipient)], b"")
    assert service.requests == []


def test_aesgcm_subscription(
    service: PushService, sender: Sender, recipient: Recipient, signer: VapidSigner
) -> None:
    outcome = sender.send(sub(service, "old", recipient, content_encoding="aesgcm"), MESSAGE)
    assert outcome.kind is OutcomeKind.DELIVERED
    [request] = service.requests_for("old")
    h = request.headers
    assert h["content-encoding"] == "aesgcm"
    assert h["encryption"].startswith("salt=")
    crypto_key = dict(p.split("=", 1) for p in h["crypto-key"].split(";"))
    assert len(b64url_decode(crypto_key["dh"])) == 65
    assert crypto_key["p256ecdsa"] == signer.public_key_b64
    scheme, token = h["authorization"].split(" ")
    assert scheme == "WebPush" and token == signer.token_for(service.endpoint("old"))
    assert recipient.decrypt(request) == MESSAGE.to_payload()


def test_2xx_other_than_201_is_delivered(
    service: PushService, sender: Sender, recipient: Recipient
) -> None:
    service.script("a", Reply(202))
    assert sender.send(sub(service, "a", recipient), MESSAGE).kind is OutcomeKind.DELIVERED


# --------------------------------------------------------------------------- outcome rules


@pytest.mark.parametrize("status", [404, 410])
def test_404_and_410_are_expired_and_not_retried(
    status: int, service: PushService, sender: Sender, recipient: Recipient
) -> None:
    service.script("gone", Reply(status, body=b'{"reason":"unsubscribed"}'))
    outcome = sender.send(sub(service, "gone", recipient), MESSAGE)
    assert outcome.kind is OutcomeKind.EXPIRED and outcome.status == status
    assert outcome.attempts == 1 and service.count("gone") == 1
    assert outcome.reason is not None and "unsubscribed" in outcome.reason


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, b"Invalid TTL header"),
        (401, b"Unauthorized"),
        (403, b'{"reason":"BadJwtToken"}'),
        (413, b"Payload too large"),
        (405, b"Method not allowed"),
        (301, b""),
    ],
)
def test_client_errors_are_rejected_with_reason_and_never_retried(
    status: int,
    body: bytes,
    service: PushService,
    sender: Sender,
    recipient: Recipient,
    sleeps: Sleeps,
) -> None:
    service.script(
        "bad",
        Reply(
            status, body=body, headers={"Location": "https://x.example"} if status == 301 else {}
        ),
    )
    outcome = sender.send(sub(service, "bad", recipient), MESSAGE)
    assert outcome.kind is OutcomeKind.REJECTED and outcome.status == status
    assert outcome.attempts == 1 and service.count("bad") == 1
    assert outcome.reason is not None and body.decode() in outcome.reason
    assert str(status) in outcome.reason
    assert sleeps.delays == []


def test_reason_is_truncated(service: PushService, sender: Sender, recipient: Recipient) -> None:
    service.script("bad", Reply(400, body=b"y" * 100_000))
    outcome = sender.send(sub(service, "bad", recipient), MESSAGE)
    assert outcome.reason is not None and len(outcome.reason) <= 300


def test_429_honours_retry_after_seconds(
    service: PushService, sender: Sender, recipient: Recipient, sleeps: Sleeps
) -> None:
    service.script("rl", Reply(429, headers={"Retry-After": "7"}), Reply(201))
    outcome = sender.send(sub(service, "rl", recipient), MESSAGE)
    assert outcome.kind is OutcomeKind.DELIVERED and outcome.attempts == 2
    assert service.count("rl") == 2
    assert sleeps.delays == [pytest.approx(7.0, abs=0.5)]


def test_429_honours_retry_after_http_date_capped(
    service: PushService, signer: VapidSigner, recipient: Recipient, sleeps: Sleeps
) -> None:
    later = email.utils.formatdate(time.time() + 3600, usegmt=True)
    service.script("rl", Reply(429, headers={"Retry-After": later}), Reply(201))
    with Sender(signer, max_retry_after=20.0, sleep=sleeps) as sender:
        outcome = sender.send(sub(service, "rl", recipient), MESSAGE)
    assert outcome.kind is OutcomeKind.DELIVERED
    assert sleeps.delays == [pytest.approx(20.0, abs=0.5)]  # an hour asked, capped


def test_429_holds_back_the_whole_origin(
    service: PushService, sender: Sender, recipient: Recipient, sleeps: Sleeps
) -> None:
    service.script("rl", Reply(429, headers={"Retry-After": "9"}), Reply(201))
    sender.send(sub(service, "rl", recipient), MESSAGE)
    sleeps.delays.clear()
    # The sender's own clock has not moved past the pause (sleep was skipped): the next
    # request to the same push service waits for what is left of it first.
    sender.send(sub(service, "other", recipient), MESSAGE)
    assert len(sleeps.delays) == 1 and 0 < sleeps.delays[0] <= 9.0


def test_429_without_retry_after_backs_off_then_fails(
    service: PushService, sender: Sender, recipient: Recipient, sleeps: Sleeps
) -> None:
    service.script("rl", Reply(429))
    outcome = sender.send(sub(service, "rl", recipient), MESSAGE)
    assert outcome.kind is OutcomeKind.FAILED and outcome.status == 429
    assert outcome.attempts == 3 and service.count("rl") == 3  # 1 + max_retries
    assert len(sleeps.delays) == 2


def test_500_then_201_is_delivered_after_a_retry(
    service: PushService, sender: Sender, recipient: Recipient, sleeps: Sleeps
) -> None:
    service.script("flaky", Reply(500, body=b"oops"), Reply(201))
    outcome = sender.send(sub(service, "flaky", recipient), MESSAGE)
    assert outcome.kind is OutcomeKind.DELIVERED and outcome.attempts == 2
    assert service.count("flaky") == 2
    assert len(sleeps.delays) == 1 and 0.25 <= sleeps.delays[0] <= 0.5
    first, second = service.requests_for("flaky")
    assert recipient.decrypt(first) == recipient.decrypt(second) == MESSAGE.to_payload()


def test_5xx_retried_with_exponential_backoff_up_to_the_limit(
    service: PushService, signer: VapidSigner, recipient: Recipient, sleeps: Sleeps
) -> None:
    service.script("down", Reply(503, body=b"maintenance"))
    with Sender(signer, max_retries=4, backoff=1.0, max_backoff=5.0, sleep=sleeps) as sender:
        outcome = sender.send(sub(service, "down", recipient), MESSAGE)
    assert outcome.kind is OutcomeKind.FAILED and outcome.status == 503
    assert outcome.attempts == 5 and service.count("down") == 5
    assert outcome.reason is not None and "maintenance" in outcome.reason
    bases = [1.0, 2.0, 4.0, 5.0]  # doubled each time, capped by max_backoff; jitter 50-100%
    assert len(sleeps.delays) == 4
    for delay, base in zip(sleeps.delays, bases, strict=True):
        assert base / 2 <= delay <= base


def test_hanging_service_times_out_is_retried_then_fails_without_stalling_the_run(
    service: PushService, signer: VapidSigner, recipient: Recipient, sleeps: Sleeps
) -> None:
    service.script("hang", Reply(hang=True))
    subs = [sub(service, "hang", recipient)] + [
        sub(service, f"ok{i}", recipient) for i in range(20)
    ]
    with Sender(signer, timeout=0.2, max_retries=2, concurrency=4, sleep=sleeps) as sender:
        summary = sender.send_many(subs, MESSAGE)
    assert summary.count(OutcomeKind.DELIVERED) == 20
    assert summary.count(OutcomeKind.FAILED) == 1
    [failure] = summary.failures
    assert failure.endpoint == service.endpoint("hang")
    assert failure.attempts == 3 and service.count("hang") == 3
    assert failure.reason is not None and "timeout" in failure.reason
    assert all(service.count(f"ok{i}") == 1 for i in range(20))


def test_hang_then_answer_is_delivered_on_retry(
    service: PushService, signer: VapidSigner, recipient: Recipient, sleeps: Sleeps
) -> None:
    service.script("slow", Reply(hang=True), Reply(201))
    with Sender(signer, timeout=0.2, sleep=sleeps) as sender:
        outcome = sender.send(sub(service, "slow", recipient), MESSAGE)
    assert outcome.kind is OutcomeKind.DELIVERED and outcome.attempts == 2


def test_dropped_connection_is_retried(
    service: PushService, sender: Sender, recipient: Recipient
) -> None:
    service.script("drop", Reply(drop=True), Reply(201))
    outcome = sender.send(sub(service, "drop", recipient), MESSAGE)
    assert outcome.kind is OutcomeKind.DELIVERED and outcome.attempts == 2


def test_refused_connection_fails_after_retries(
    signer: VapidSigner, recipient: Recipient, sleeps: Sleeps
) -> None:
    service = PushService().start()
    endpoint = service.endpoint("x")
    service.stop()  # nothing listens on that port any more
    with Sender(signer, max_retries=1, sleep=sleeps) as sender:
        outcome = sender.send(Subscription(endpoint, recipient.p256dh, recipient.auth), MESSAGE)
    assert outcome.kind is OutcomeKind.FAILED and outcome.attempts == 2
    assert outcome.reason is not None and "connection error" in outcome.reason


def test_key_mismatch_is_reported_without_sending(
    service: PushService, sender: Sender, recipient: Recipient, signer: VapidSigner
) -> None:
    other = VapidKey.generate().public_key_b64
    mismatched = Record(
        service.endpoint("old-key"), recipient.p256dh, recipient.auth, vapid_key=other
    )
    same_padded = Record(
        service.endpoint("same-key"),
        recipient.p256dh,
        recipient.auth,
        vapid_key=signer.public_key_b64 + "=",
    )
    unknown = Record(service.endpoint("no-key"), recipient.p256dh, recipient.auth)
    summary = sender.send_many([mismatched, same_padded, unknown], MESSAGE)
    assert summary.count("key_mismatch") == 1 and summary.delivered == 2
    [failure] = summary.failures
    assert failure.kind is OutcomeKind.KEY_MISMATCH and "re-subscribe" in (failure.reason or "")
    assert service.count("old-key") == 0


def test_unusable_subscription_is_invalid_without_sending(
    service: PushService, sender: Sender, recipient: Recipient
) -> None:
    bad_key = Record(service.endpoint("bad-key"), "A" * 87, recipient.auth)  # not on the curve
    short = Record(service.endpoint("short"), recipient.p256dh[:40], recipient.auth)
    bad_auth = Record(service.endpoint("bad-auth"), recipient.p256dh, "!!")
    weird = Record(
        service.endpoint("enc"), recipient.p256dh, recipient.auth, content_encoding="aesgcm128"
    )
    not_url = Record("mailto:x@y.com", recipient.p256dh, recipient.auth)
    summary = sender.send_many([bad_key, short, bad_auth, weird, not_url], MESSAGE)
    assert summary.count(OutcomeKind.INVALID) == 5
    assert service.requests == []


def test_a_broken_transport_does_not_lose_the_outcome(
    signer: VapidSigner, recipient: Recipient
) -> None:
    class Broken(Transport):
        async def post(
            self, url: str, headers: Mapping[str, str], body: bytes, timeout: float
        ) -> TransportResponse:
            raise KeyError("bug")

    with Sender(signer, transport=Broken()) as sender:
        summary = sender.send_many(
            [
                Subscription(f"https://push.example.net/{i}", recipient.p256dh, recipient.auth)
                for i in range(3)
            ],
            MESSAGE,
        )
    assert summary.count(OutcomeKind.FAILED) == 3
    assert all("internal error" in (f.reason or "") for f in summary.failures)


def test_injected_transport_sees_the_request(signer: VapidSigner, recipient: Recipient) -> None:
    seen: list[tuple[str, dict[str, str], bytes, float]] = []

    class Fake(Transport):
        async def post(
            self, url: str, headers: Mapping[str, str], body: bytes, timeout: float
        ) -> TransportResponse:
            seen.append((url, dict(headers), body, timeout))
            return TransportResponse(201, {})

    with Sender(signer, transport=Fake(), timeout=3.5) as sender:
        endpoint = "https://wns2-by3p.notify.windows.com/w/?token=BQYAAA%3d%3d"
        outcome = sender.send(Subscription(endpoint, recipient.p256dh, recipient.auth), MESSAGE)
    assert outcome.kind is OutcomeKind.DELIVERED
    [(url, headers, _, timeout)] = seen
    assert url == endpoint  # the query string is kept (WNS needs it)
    assert timeout == 3.5
    claims = json.loads(
        b64url_decode(headers["Authorization"].split("t=")[1].split(".")[1].rstrip(","))
    )
    assert claims["aud"] == "https://wns2-by3p.notify.windows.com"


# --------------------------------------------------------------------------- runs


def test_every_subscription_gets_exactly_one_outcome_and_nothing_is_sent_twice(
    service: PushService, signer: VapidSigner, recipient: Recipient, sleeps: Sleeps
) -> None:
    service.script("flaky", Reply(500), Reply(201))
    service.script("gone", Reply(410))
    service.script("bad", Reply(403))
    names = [f"s{i}" for i in range(300)] + ["flaky", "gone", "bad"]
    records = [sub(service, n, recipient) for n in names]
    records += [sub(service, "s7", recipient), sub(service, "gone", recipient)]  # repeated
    outcomes: list[Outcome] = []
    with Sender(signer, concurrency=16, sleep=sleeps) as sender:
        summary = sender.send_many(records, MESSAGE, on_progress=outcomes.append)
    assert summary.total == len(outcomes) == len(records)
    assert Counter(o.endpoint for o in outcomes) == Counter(r.endpoint for r in records)
    assert summary.count(OutcomeKind.DUPLICATE) == 2
    assert summary.delivered == 301 and summary.expired == 1
    assert summary.count(OutcomeKind.REJECTED) == 1
    counts = service.counts()
    assert all(counts[f"s{i}"] == 1 for i in range(300))
    assert counts["flaky"] == 2 and counts["gone"] == 1 and counts["bad"] == 1
    assert summary.requests == sum(counts.values())


def test_outcomes_are_written_to_the_store_in_batches(
    service: PushService, signer: VapidSigner, recipient: Recipient, sleeps: Sleeps
) -> None:
    service.script("gone", Reply(404))
    service.script("bad", Reply(413, body=b"too big"))
    service.script("down", Reply(500))
    names = [f"s{i}" for i in range(10)] + ["gone", "bad", "down"]
    store = MemoryStore(
        [Record(service.endpoint(n), recipient.p256dh, recipient.auth) for n in names]
    )
    with Sender(signer, batch_size=4, max_retries=1, sleep=sleeps) as sender:
        summary = sender.send_to_all(store, MESSAGE)
    assert summary.total == 13
    assert [len(b) for b in store.batches] == [4, 4, 4, 1]
    entries = {e[0]: e for e in store.entries}
    assert len(entries) == len(store.entries) == 13
    assert entries[service.endpoint("s0")] == (service.endpoint("s0"), "delivered", None)
    assert entries[service.endpoint("gone")][1] == "expired"
    bad = entries[service.endpoint("bad")]
    assert bad[1] == "failed" and bad[2] is not None and "rejected" in bad[2]
    assert "too big" in bad[2]
    down = entries[service.endpoint("down")]
    assert down[1] == "failed" and down[2] is not None and "HTTP 500" in down[2]


def test_send_to_user_only_reaches_that_user(
    service: PushService, sender: Sender, recipient: Recipient
) -> None:
    store = MemoryStore(
        [
            Record(service.endpoint(f"{u}{i}"), recipient.p256dh, recipient.auth, user_id=u)
            for u in ("alice", "bob")
            for i in range(3)
        ]
    )
    summary = sender.send_to_user(store, "alice", MESSAGE)
    assert summary.delivered == 3
    assert sorted(service.counts()) == ["alice0", "alice1", "alice2"]
    assert len(store.entries) == 3


def test_runs_stream_with_bounded_in_flight_work(
    service: PushService, signer: VapidSigner, recipient: Recipient
) -> None:
    pulled = 0
    done = 0
    most_ahead = 0

    def source() -> Iterator[Subscription]:
        nonlocal pulled, most_ahead
        for i in range(3000):
            most_ahead = max(most_ahead, pulled - done)
            pulled += 1
            yield sub(service, f"g{i}", recipient)

    def progress(_: Outcome) -> None:
        nonlocal done
        done += 1

    with Sender(signer, concurrency=10) as sender:
        summary = sender.send_many(source(), MESSAGE, on_progress=progress, dedupe=False)
    assert summary.delivered == 3000
    # Never more than one pulled chunk plus what the workers hold: not the whole source.
    assert most_ahead <= 256 + 10


def test_a_failing_source_aborts_with_the_partial_summary(
    service: PushService, sender: Sender, recipient: Recipient
) -> None:
    def source() -> Iterator[Subscription]:
        for i in range(5):
            yield sub(service, f"p{i}", recipient)
        raise RuntimeError("database went away")

    store = MemoryStore()
    with pytest.raises(SendAborted) as info:
        sender.send_many(source(), MESSAGE, store=store)
    assert "database went away" in str(info.value)
    assert info.value.summary.delivered == 5
    assert len(store.entries) == 5  # what was done is still recorded


def test_a_store_refusing_one_entry_still_records_the_others(
    service: PushService, sender: Sender, recipient: Recipient
) -> None:
    class Picky(MemoryStore):
        def record_outcomes(self, outcomes: Sequence[tuple[str, str, str | None]]) -> None:
            if any("bad" in e[0] for e in outcomes):
                raise ValidationError("bad endpoint", field="endpoint")
            super().record_outcomes(outcomes)

    store = Picky()
    records = [
        sub(service, "ok1", recipient),
        sub(service, "bad", recipient),
        sub(service, "ok2", recipient),
    ]
    sender.send_many(records, MESSAGE, store=store)
    assert sorted(e[0] for e in store.entries) == [service.endpoint("ok1"), service.endpoint("ok2")]


def test_summary_keeps_a_bounded_sample_of_failures(
    service: PushService, sender: Sender, recipient: Recipient
) -> None:
    service.script("bad", Reply(403))
    records = [
        Record(service.endpoint("bad") + f"?n={i}", recipient.p256dh, recipient.auth)
        for i in range(40)
    ]
    summary = sender.send_many(records, MESSAGE)
    assert summary.count(OutcomeKind.REJECTED) == 40 and summary.failed == 40
    assert len(summary.failures) == 5
    assert summary.as_dict()["counts"] == {"rejected": 40}
    assert "40 rejected" in str(summary)


def test_one_vapid_signature_per_run(
    service: PushService, sender: Sender, recipient: Recipient, signer: VapidSigner
) -> None:
    sender.send_many([sub(service, f"v{i}", recipient) for i in range(50)], MESSAGE)
    assert signer.signatures == 1


def test_async_api_and_sync_api_guard(
    service: PushService, signer: VapidSigner, recipient: Recipient
) -> None:
    async def main() -> Outcome:
        async with Sender(signer) as sender:
            with pytest.raises(RuntimeError, match="await the async"):
                sender.send(sub(service, "x", recipient), MESSAGE)
            outcome = await sender.asend(
                {
                    "endpoint": service.endpoint("json"),
                    "keys": {"p256dh": recipient.p256dh, "auth": recipient.auth},
                },
                MESSAGE,
            )
            summary = await sender.asend_many([sub(service, "m", recipient)], MESSAGE)
            assert summary.delivered == 1
            return outcome

    outcome = asyncio.run(main())
    assert outcome.kind is OutcomeKind.DELIVERED
    assert service.count("x") == 0 and service.count("json") == 1


def test_sender_can_be_reused_after_close(
    service: PushService, signer: VapidSigner, recipient: Recipient
) -> None:
    sender = Sender(signer)
    assert sender.send(sub(service, "a", recipient), MESSAGE).ok
    sender.close()
    assert sender.send(sub(service, "b", recipient), MESSAGE).ok
    sender.close()
    sender.close()


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 0 ", now) == 0.0
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after(date, now) == pytest.approx(30.0, abs=1)
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now) == 0.0
    for junk in (None, "", "soon", "-5", "1.5", "Mon, 99 Foo 2024"):
        assert parse_retry_after(junk, now) is None


def test_bad_sender_settings_are_refused(signer: VapidSigner) -> None:
    for kwargs in (
        {"concurrency": 0},
        {"timeout": 0},
        {"max_retries": -1},
        {"concurrency": 1.5},
        {"backoff": -1},
        {"batch_size": True},
    ):
        with pytest.raises(ValueError):
            Sender(signer, **kwargs)


# --------------------------------------------------------------------------- real store


def test_real_sqlite_store_gets_every_outcome(
    tmp_path: Path, service: PushService, signer: VapidSigner, recipient: Recipient, sleeps: Sleeps
) -> None:
    service.script("gone", Reply(410))
    service.script("bad", Reply(400, body=b"bad topic"))
    service.script("flaky", Reply(503), Reply(201))
    store = Store.for_sqlite_path(tmp_path / "push.db")
    other_key = VapidKey.generate().public_key_b64
    names = {f"u{i}": "alice" for i in range(5)} | {
        "gone": "bob",
        "bad": "bob",
        "flaky": "bob",
        "rotated": "carol",
    }
    for name, user in names.items():
        store.save_subscription(
            sub(service, name, recipient),
            user_id=user,
            anonymous_id=None,
            vapid_key=other_key if name == "rotated" else signer.public_key_b64,
        )
    source: SubscriptionSource = store  # the real Store fits the protocol (checked by mypy)
    with Sender(signer, batch_size=3, sleep=sleeps) as sender:
        summary = sender.send_to_all(source, MESSAGE)
        assert summary.total == len(names)
        assert summary.delivered == 6 and summary.expired == 1
        assert summary.count("rejected") == 1 and summary.count("key_mismatch") == 1
        gone = store.get(service.endpoint("gone"))
        assert gone is not None and gone.status == "expired"
        bad = store.get(service.endpoint("bad"))
        assert bad is not None and bad.status == "active" and bad.failure_count == 1
        assert bad.last_error is not None and "bad topic" in bad.last_error
        rotated = store.get(service.endpoint("rotated"))
        assert rotated is not None and rotated.failure_count == 1
        assert rotated.last_error is not None and "key_mismatch" in rotated.last_error
        flaky = store.get(service.endpoint("flaky"))
        assert flaky is not None and flaky.failure_count == 0
        assert service.count("rotated") == 0 and service.count("gone") == 1
        # A second run does not send to the expired subscription.
        service.clear()
        again = sender.send_to_all(store, MESSAGE)
        assert again.total == len(names) - 1 and service.count("gone") == 0
        for_alice = sender.send_to_user(store, "alice", MESSAGE)
        assert for_alice.delivered == 5
    store.dispose()


# --------------------------------------------------------------------------- wrong options


class ReadCountingStore(MemoryStore):
    """Counts reads, so a refusal can be shown to come before the store is touched."""

    def __init__(self, records: Sequence[Record] = ()) -> None:
        super().__init__(records)
        self.reads = 0

    def iter_active(self, batch_size: int = 500) -> Iterator[Record]:
        self.reads += 1
        return super().iter_active(batch_size)

    def subscriptions_for_user(self, user_id: str, *, active_only: bool = True) -> list[Record]:
        self.reads += 1
        return super().subscriptions_for_user(user_id, active_only=active_only)


@pytest.mark.parametrize("options", [{"ttl": 5}, {}, 60, "ttl=5"])
def test_options_that_are_not_push_options_are_refused_up_front(
    service: PushService, sender: Sender, recipient: Recipient, options: object
) -> None:
    target = sub(service, "a", recipient)
    store = ReadCountingStore([Record(target.endpoint, target.p256dh, target.auth, user_id="u")])
    calls = [
        lambda: sender.send(target, MESSAGE, options),  # type: ignore[arg-type]
        lambda: sender.send_many([target], MESSAGE, options),  # type: ignore[arg-type]
        lambda: sender.send_to_user(store, "u", MESSAGE, options),  # type: ignore[arg-type]
        lambda: sender.send_to_all(store, MESSAGE, options),  # type: ignore[arg-type]
        lambda: asyncio.run(sender.asend(target, MESSAGE, options)),  # type: ignore[arg-type]
        lambda: asyncio.run(sender.asend_many([target], MESSAGE, options)),  # type: ignore[arg-type]
        lambda: asyncio.run(sender.asend_to_user(store, "u", MESSAGE, options)),  # type: ignore[arg-type]
        lambda: asyncio.run(sender.asend_to_all(store, MESSAGE, options)),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(TypeError, match=r"pass PushOptions\(\.\.\.\)") as info:
            call()
        assert type(options).__name__ in str(info.value)
    assert store.reads == 0 and store.entries == []
    assert service.requests_for("a") == []


def test_a_dict_of_options_gets_a_hint() -> None:
    from webpush_kit.sender import _check_options

    with pytest.raises(TypeError, match=r"PushOptions\(\*\*options\)"):
        _check_options({"ttl": 5})
    _check_options(None)
    _check_options(PushOptions(ttl=5))


def test_a_str_message_with_a_lone_surrogate_is_a_validation_error(
    service: PushService, sender: Sender, recipient: Recipient
) -> None:
    with pytest.raises(ValidationError, match="lone surrogate") as info:
        sender.send(sub(service, "a", recipient), "hello \ud800")
    assert info.value.field == "payload"
