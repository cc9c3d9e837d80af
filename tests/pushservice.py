"""A loopback push service for tests and benchmarks, with scripted faults.

In a test (background thread, random port on 127.0.0.1)::

    with PushService() as service:
        service.script("a", Reply(500), Reply(201))       # first 500, then 201
        service.script("b", Reply(429, headers={"Retry-After": "1"}), Reply(201))
        service.script("c", Reply(hang=True))              # never answers
        endpoint = service.endpoint("a")                   # http://127.0.0.1:PORT/push/a
        ...
        service.requests_for("a")                          # what arrived, headers and body
        recipient.decrypt(service.requests_for("a")[0])    # the plaintext

Each request to a path takes the next scripted ``Reply``; the last one repeats. Paths
without a script answer 201 after the service's default ``delay``.

As a separate process (for benchmarks, so it does not share the sender's GIL)::

    python tests/pushservice.py --delay 0.05      # prints "PORT <n>", serves until killed
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import http_ece  # type: ignore[import-untyped]
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    text = text.rstrip("=")
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Reply:
    """One scripted answer."""

    status: int = 201
    delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: Never answer (until the service stops): the client must time out.
    hang: bool = False
    #: Close the connection without answering: the client sees a connection error.
    drop: bool = False


@dataclass(frozen=True)
class RecordedRequest:
    path: str
    name: str
    method: str
    #: Header names in lower case.
    headers: dict[str, str]
    body: bytes
    received_at: float


@dataclass(frozen=True)
class Recipient:
    """A browser's side of a subscription: the keys it would generate, and decryption."""

    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes

    @classmethod
    def generate(cls) -> Recipient:
        return cls(ec.generate_private_key(ec.SECP256R1()), os.urandom(16))

    @property
    def p256dh(self) -> str:
        return b64url(
            self.private_key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    @property
    def auth(self) -> str:
        return b64url(self.auth_secret)

    def decrypt(self, request: RecordedRequest) -> bytes:
        """Decrypt a recorded push body (aes128gcm, or aesgcm from its headers)."""
        encoding = request.headers.get("content-encoding")
        if encoding == "aes128gcm":
            return bytes(
                http_ece.decrypt(
                    request.body,
                    private_key=self.private_key,
                    auth_secret=self.auth_secret,
                    version="aes128gcm",
                )
            )
        if encoding == "aesgcm":
            params = _params(request.headers.get("crypto-key", ""), ";")
            salt = _params(request.headers.get("encryption", ""), ";")["salt"]
            return bytes(
                http_ece.decrypt(
                    request.body,
                    salt=b64url_decode(salt),
                    private_key=self.private_key,
                    dh=b64url_decode(params["dh"]),
                    auth_secret=self.auth_secret,
                    version="aesgcm",
                )
            )
        raise ValueError(f"unknown Content-Encoding {encoding!r}")


def _params(value: str, sep: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in value.split(sep):
        name, _, val = part.strip().partition("=")
        if name:
            out[name] = val
    return out


class PushService:
    """The loopback push service, served from a background thread."""

    def __init__(self, *, delay: float = 0.0, record: bool = True, host: str = "127.0.0.1") -> None:
        self.delay = delay
        self.record = record
        self.host = host
        self.port = 0
        self._lock = threading.Lock()
        self._scripts: dict[str, list[Reply]] = {}
        self._requests: list[RecordedRequest] = []
        self._counts: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None

    # --- control ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def endpoint(self, name: str) -> str:
        return f"{self.url}/push/{name}"

    def script(self, name: str, *replies: Reply) -> str:
        """Script the answers for ``/push/<name>``; returns its endpoint."""
        if not replies:
            raise ValueError("give at least one Reply")
        with self._lock:
            self._scripts[name] = list(replies)
        return self.endpoint(name)

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_for(self, name: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.name == name]

    def count(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()
            self._counts.clear()

    # --- serving ---------------------------------------------------------------------

    def _next_reply(self, name: str) -> Reply:
        with self._lock:
            self._counts[name] = self._counts.get(name, 0) + 1
            script = self._scripts.get(name)
            if not script:
                return Reply(delay=self.delay)
            return script.pop(0) if len(script) > 1 else script[0]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        name = request.match_info.get("name", "")
        if self.record:
            recorded = RecordedRequest(
                path=request.path,
                name=name,
                method=request.method,
                headers={k.lower(): v for k, v in request.headers.items()},
                body=body,
                received_at=time.time(),
            )
            with self._lock:
                self._requests.append(recorded)
        reply = self._next_reply(name)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.hang:
            assert self._closing is not None
            await self._closing.wait()
        if reply.drop:
            if request.transport is not None:
                request.transport.abort()
            raise asyncio.CancelledError  # aiohttp treats it as a dropped connection
        return web.Response(status=reply.status, headers=dict(reply.headers), body=reply.body)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/push/{name}", self._handle)
        return app

    def start(self) -> PushService:
        ready = threading.Event()
        errors: list[BaseException] = []
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(1024)
        self.port = sock.getsockname()[1]

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._closing = asyncio.Event()
                runner = web.AppRunner(self._app(), access_log=None, handle_signals=False)
                loop.run_until_complete(runner.setup())
                loop.run_until_complete(web.SockSite(runner, sock).start())
                self._runner = runner
            except BaseException as exc:
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="pushservice", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return

        def closing() -> None:
            if self._closing is not None:
                self._closing.set()
            loop.stop()

        loop.call_soon_threadsafe(closing)
        thread.join(10)
        self._loop = self._thread = None

    def __enter__(self) -> PushService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------------------
# Separate-process mode (benchmarks)
# --------------------------------------------------------------------------------------


class ServiceProcess:
    """``python tests/pushservice.py`` in a child process; ``url`` once it listens."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> ServiceProcess:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--delay", str(self.delay)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.stop()
            raise RuntimeError(f"push service did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def endpoint(self, name: str) -> str:
        return f"{self.url}/push/{name}"

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    service = PushService(delay=args.delay, record=False)
    service.port = args.port
    service.start()
    print(f"PORT {service.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    service.stop()


if __name__ == "__main__":
    main()
