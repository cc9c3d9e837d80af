"""Pieces shared by the concurrency test and the callback benchmark.

* :class:`Gunicorn`: ``tests.apps:server_app()`` under gunicorn on 127.0.0.1 (free port),
  2 worker processes with threads, started as a subprocess and stopped by its pid.
* :func:`key_pool`: a few hundred real P-256 public keys (``keys.p256dh`` must be on the
  curve) and auth secrets, reused across distinct endpoints to keep generation cheap.
* :func:`subscription_json`: a ``PushSubscription.toJSON()`` for an endpoint id.
* :class:`KeepAliveClient`: one http.client connection per thread, reconnecting when the
  server closed an idle keep-alive connection.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from webpush_kit.subscriptions import b64url_encode

ROOT = Path(__file__).resolve().parent.parent
API = "/webpush-kit/api"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def key_pool(size: int = 300) -> list[tuple[str, str]]:
    """``size`` (p256dh, auth) pairs made from real P-256 keys."""
    pool = []
    for _ in range(size):
        point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        pool.append((b64url_encode(point), b64url_encode(os.urandom(16))))
    return pool


def endpoint_for(i: int, salt: str) -> str:
    """A realistic FCM endpoint (about 180 characters), distinct per ``i``."""
    return f"https://fcm.googleapis.com/fcm/send/{salt}-{i:07d}:APA91b" + "x" * 140


def subscription_json(i: int, salt: str, pool: list[tuple[str, str]]) -> dict[str, Any]:
    p256dh, auth = pool[i % len(pool)]
    return {"endpoint": endpoint_for(i, salt), "expirationTime": None,
            "keys": {"p256dh": p256dh, "auth": auth}}


class Gunicorn:
    """``tests.apps:server_app()`` under gunicorn: 2 workers, gthread, keep-alive."""

    def __init__(self, env: Mapping[str, str], *, workers: int = 2, threads: int = 4) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(os.devnull, "wb")  # noqa: SIM115 - closed in stop()
        cmd = [
            sys.executable, "-m", "gunicorn",
            "--workers", str(workers), "--worker-class", "gthread", "--threads", str(threads),
            "--bind", f"127.0.0.1:{self.port}", "--keep-alive", "30", "--backlog", "2048",
            "--log-level", "warning", "--graceful-timeout", "5",
            "tests.apps:server_app()",
        ]
        self.stderr_path = Path(env.get("WEBPUSH_KIT_TEST_INSTANCE", "/tmp")) / (
            f"gunicorn-{self.port}.log")
        self.stderr_path.parent.mkdir(parents=True, exist_ok=True)
        self.stderr = open(self.stderr_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env={**os.environ, **env}, stdout=self.log, stderr=self.stderr,
        )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited: {self.stderr_path.read_text()[-2000:]}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", API + "/vapid-public-key")
                conn.getresponse().read()
                conn.close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("gunicorn did not start in time")

    def errors(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        self.stderr.close()

    def __enter__(self) -> Gunicorn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class KeepAliveClient:
    """POSTs JSON over one keep-alive connection, as a browser tab would."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None
        self.reconnects = 0

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        headers = {"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{self.port}"}
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            try:
                self.conn.request("POST", path, body=body, headers=headers)
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.will_close:
                    self.close()
                return resp.status, data
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closed an idle keep-alive connection before reading this
                # request: it was not processed, so sending it again is safe.
                self.close()
                self.reconnects += 1
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def post_json(self, path: str, value: Any) -> tuple[int, Any]:
        status, data = self.post(path, json.dumps(value).encode())
        return status, json.loads(data) if data else None

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None


def random_salt() -> str:
    return secrets.token_hex(4)
