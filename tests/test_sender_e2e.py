"""End to end against ``web-push-testing``, a push service emulator written by others.

The emulator (npm package, installed into tests/node by the fixture when missing) checks
the VAPID JWT against the applicationServerKey given at subscribe time, decrypts
aes128gcm and aesgcm bodies, keeps the messages, and answers 410 once a subscription is
expired. Its endpoints are ``http://localhost:PORT/notify/...``: the sender does not
restrict endpoints (that is done when subscriptions are accepted), so it can reach them.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require
from webpush_kit.messages import Notification, PushOptions
from webpush_kit.sender import OutcomeKind, Sender
from webpush_kit.store import Store
from webpush_kit.subscriptions import Subscription
from webpush_kit.vapid import VapidClaims, VapidKey, VapidSigner

pytestmark = pytest.mark.slow

NODE_DIR = Path(__file__).resolve().parent / "node"
BIN = NODE_DIR / "node_modules" / ".bin" / "web-push-testing"
SUB = "mailto:push-admin@shop-example.com"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


class Emulator:
    def __init__(self, port: int) -> None:
        self.url = f"http://localhost:{port}"

    def post(self, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        data = json.dumps(body or {}).encode()
        request = urllib.request.Request(
            self.url + path, data=data, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, _decode(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _decode(exc.read())

    def subscribe(self, application_server_key: str) -> dict[str, Any]:
        status, body = self.post(
            "/subscribe",
            {"userVisibleOnly": "true", "applicationServerKey": application_server_key},
        )
        assert status == 200, body
        data: dict[str, Any] = body["data"]
        return data

    def messages(self, client_hash: str) -> list[str]:
        status, body = self.post("/get-notifications", {"clientHash": client_hash})
        assert status == 200, body
        messages: list[str] = body["data"]["messages"]
        return messages

    def expire(self, client_hash: str) -> None:
        status, body = self.post(f"/expire-subscription/{client_hash}")
        assert status == 200, body


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    require(
        shutil.which("node") is not None and shutil.which("npm") is not None,
        "node and npm are needed for the web-push-testing emulator",
    )
    if not BIN.exists():
        # A fresh clone: install the pinned emulator from tests/node/package-lock.json.
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            check=True,
            capture_output=True,
            timeout=600,
        )
    port = _free_port()
    # The CLI keeps its pid file (node-persist) in the working directory: use a temp one.
    workdir = tmp_path_factory.mktemp("web-push-testing")
    command = [str(BIN), "--port", str(port)]
    subprocess.run([*command, "start"], cwd=workdir, check=True, capture_output=True, timeout=60)
    emulator = Emulator(port)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if emulator.post("/status")[0] == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("web-push-testing did not answer on /status within 30 s")
            time.sleep(0.1)
        yield emulator
    finally:
        subprocess.run([*command, "stop"], cwd=workdir, capture_output=True, timeout=60)


@pytest.fixture
def signer() -> VapidSigner:
    return VapidSigner(VapidKey.generate(), VapidClaims(SUB))


def subscription(data: dict[str, Any], content_encoding: str = "aes128gcm") -> Subscription:
    keys = data["keys"]
    return Subscription(
        data["endpoint"], keys["p256dh"], keys["auth"], content_encoding=content_encoding
    )


NOTE = Notification(
    title="Grüße aus Köln 🎉",
    body="日本語のテキスト ✓ — emoji 👍🏽👨‍👩‍👧 and ünïcödé",
    url="/orders/42",
    data={"order": 42, "note": "Ça va? ✈️"},
)


@pytest.mark.parametrize("encoding", ["aes128gcm", "aesgcm"])
def test_emulator_decrypts_exactly_what_we_sent(
    emulator: Emulator, signer: VapidSigner, encoding: str
) -> None:
    data = emulator.subscribe(signer.public_key_b64)
    with Sender(signer) as sender:
        outcome = sender.send(subscription(data, encoding), NOTE, PushOptions(ttl=600))
        raw = sender.send(subscription(data, encoding), "plain ✓ 🚀".encode())
    assert outcome.kind is OutcomeKind.DELIVERED and outcome.status == 201, outcome
    assert raw.kind is OutcomeKind.DELIVERED, raw
    messages = emulator.messages(data["clientHash"])
    assert messages == [NOTE.to_payload().decode("utf-8"), "plain ✓ 🚀"]
    received = json.loads(messages[0])
    assert received["title"] == "Grüße aus Köln 🎉"
    assert received["body"] == NOTE.body
    assert received["webpush_kit"] == 1


def test_emulator_refuses_a_token_signed_with_another_key(
    emulator: Emulator, signer: VapidSigner
) -> None:
    data = emulator.subscribe(signer.public_key_b64)
    intruder = VapidSigner(VapidKey.generate(), VapidClaims(SUB))
    with Sender(intruder) as sender:
        outcome = sender.send(subscription(data), NOTE)
    assert outcome.kind is OutcomeKind.REJECTED and outcome.status == 400
    assert emulator.messages(data["clientHash"]) == []


def test_expired_subscription_is_marked_expired_in_the_store(
    emulator: Emulator, signer: VapidSigner, tmp_path: Path
) -> None:
    store = Store.for_sqlite_path(tmp_path / "push.db")
    live = emulator.subscribe(signer.public_key_b64)
    dead = emulator.subscribe(signer.public_key_b64)
    for data, user in ((live, "alice"), (dead, "bob")):
        store.save_subscription(
            subscription(data), user_id=user, anonymous_id=None, vapid_key=signer.public_key_b64
        )
    emulator.expire(dead["clientHash"])
    with Sender(signer) as sender:
        summary = sender.send_to_all(store, NOTE)
    assert summary.delivered == 1 and summary.expired == 1, summary.as_dict()
    dead_record = store.get(dead["endpoint"])
    live_record = store.get(live["endpoint"])
    assert dead_record is not None and dead_record.status == "expired"
    assert dead_record.last_error is not None and "410" in dead_record.last_error
    assert live_record is not None and live_record.status == "active"
    assert emulator.messages(live["clientHash"]) == [NOTE.to_payload().decode("utf-8")]
    assert [r.endpoint for r in store.iter_active()] == [live["endpoint"]]
    store.dispose()
