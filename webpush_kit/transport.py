"""How the sender reaches push services: the ``Transport`` interface and two implementations.

* ``Http1Transport`` (the default): HTTP/1.1 straight on asyncio protocols, a keep-alive
  pool per push-service origin, responses parsed by httptools (llhttp, Node.js's HTTP
  parser, in C). A push is one small POST and one small answer, and this does only that;
  it costs about a third of the CPU time per request that aiohttp's general-purpose
  client does (``benchmarks/bench_send.py`` prints both), which is what lets a send run
  approach the rate at which payloads can be encrypted at all.
* ``AiohttpTransport``: aiohttp's client, for anyone who needs what it adds (tracing,
  its connector options).

Rules both follow: redirects are never followed (the VAPID token is for one origin), no
cookies are kept, at most ``max_body`` bytes of an answer are read (a longer one is cut
and its connection dropped, not drained), every request has a total timeout (waiting for
a pooled connection, connecting, TLS, sending and the answer included), and a failure to
get an HTTP answer is a ``TransportError`` (``TransportTimeout`` for the timeout), which
the sender retries.

``Http1Transport`` specifics: at most ``limit_per_origin`` connections per origin (more
requests wait for one); idle connections are reused most-recently-used first and closed
after ``keepalive_timeout`` seconds; a request written to a reused connection that the
server had already closed (no byte of an answer came back) is sent once more on a new
connection, as HTTP clients do for idle connections closed by the server; 1xx interim
answers are skipped; an answer with complete headers whose body ends early (the server
closed the connection) is returned with the body received so far: the status is the push
service's verdict, and resending a delivered push would show it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
import time
import weakref
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Final, cast
from urllib.parse import quote, urlsplit

import aiohttp
import httptools
import yarl

__all__ = [
    "AiohttpTransport",
    "Http1Transport",
    "Transport",
    "TransportError",
    "TransportResponse",
    "TransportTimeout",
]


@dataclass(frozen=True, slots=True)
class TransportResponse:
    status: int
    #: Response headers; look-ups should be case-insensitive (both transports' are).
    headers: Mapping[str, str]
    #: The start of the body (transports may truncate it).
    body: bytes = b""


class TransportError(Exception):
    """The request did not get an HTTP answer (refused, reset, DNS...): retryable."""


class TransportTimeout(TransportError):
    """No complete answer within the timeout: retryable."""


class Transport(ABC):
    """Posts one request. Implementations must be safe to call concurrently from one loop."""

    @abstractmethod
    async def post(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> TransportResponse:
        """POST ``body``; raise ``TransportTimeout``/``TransportError`` when there is no answer.

        Redirects must not be followed (the VAPID token is for one origin).
        """

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release what this transport holds for the running event loop."""


# --------------------------------------------------------------------------------------
# Http1Transport
# --------------------------------------------------------------------------------------

#: RFC 9110 token characters: what a header name may be made of.
_TOKEN_RE: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Characters a header value must not contain (CR/LF would inject headers; NUL is refused
#: by every server).
_BAD_VALUE_RE: Final = re.compile(r"[\x00\r\n]")
#: Characters a request target must not contain (they would break the request line).
_BAD_TARGET_RE: Final = re.compile(r"[\x00-\x20\x7f]")
#: Header names the transport writes itself.
_OWN_HEADERS: Final = frozenset({"host", "content-length", "transfer-encoding", "connection"})
_CACHE_LIMIT: Final = 1024


class _Headers(Mapping[str, str]):
    """Response headers, looked up case-insensitively; repeated ones joined by ", "."""

    __slots__ = ("_items",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        items: dict[str, str] = {}
        for name, value in raw:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            items[key] = f"{items[key]}, {text}" if key in items else text
        self._items = items

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"_Headers({self._items!r})"


@dataclass(frozen=True, slots=True)
class _Origin:
    key: str  # "scheme://authority" as written in the URL
    tls: bool
    host: str  # what to connect to (IPv6 without brackets)
    port: int
    host_header: str  # the Host header (authority without userinfo)


class _ConnectionLost(TransportError):
    def __init__(self, message: str, *, stale: bool) -> None:
        super().__init__(message)
        #: True when the connection was reused and not one byte of an answer came back:
        #: the server had closed it while idle, so the request can be sent again.
        self.stale = stale


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: one request at a time, answers parsed by httptools."""

    def __init__(self, pool: _Pool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[TransportResponse] | None = None
        self.raw_headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self.status = 0
        self.headers_done = False
        self.interim = False
        self.got_bytes = False
        self.finished = False  # the answer to the current request is complete
        self.keep = False  # ...and the server allows another request on the connection
        self.extra = False  # ...and more bytes came after it
        self.closed = False
        self.requests = 0
        self.idle_since = 0.0

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's is not an asyncio.Transport subclass).
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.waiter is None or self.waiter.done():
            # An answer nobody asked for (or past a truncated one): the stream is out of
            # step, so the connection cannot be trusted with another request.
            self.abort()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(TransportError("the push service switched protocols (101)"))
        except httptools.HttpParserError as exc:
            self._fail(TransportError(f"malformed HTTP answer: {exc}"))
        if self.finished and not self.closed and self.waiter is not None:
            # Reuse only a connection whose answer ended cleanly, with nothing after it.
            if self.keep and not self.extra:
                self.pool.release(self)
            else:
                self.abort()

    def eof_received(self) -> bool | None:
        return None  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.forget(self)
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        if self.headers_done and not self.interim:
            # Headers complete, body cut short or delimited by the close: the status is
            # the answer (see the module docstring).
            self._answer()
            return
        why = "connection closed" if exc is None else f"connection lost: {exc}"
        stale = self.requests > 1 and not self.got_bytes
        waiter.set_exception(_ConnectionLost(f"{why} before an answer", stale=stale))

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        if self.finished:
            self.extra = True  # a second answer to one request

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.finished:
            self.raw_headers.append((name, value))

    def on_headers_complete(self) -> None:
        if self.finished:
            return
        self.status = self.parser.get_status_code()
        self.interim = 100 <= self.status < 200
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        if self.finished:
            return
        room = self.pool.max_body - len(self.body)
        if len(body) <= room:
            self.body += body
            return
        self.body += body[:room]
        # Too long to be a push service's reason: answer with the start and drop the
        # connection instead of reading the rest.
        self.finished, self.keep = True, False
        self._answer()

    def on_message_complete(self) -> None:
        if self.finished:
            return
        if self.interim:  # 100 Continue, 103 Early Hints: the real answer follows
            self.raw_headers = []
            self.headers_done = self.interim = False
            return
        self.finished = True
        self.keep = self.parser.should_keep_alive()
        self._answer()

    # -- requests

    def usable(self) -> bool:
        return (
            not self.closed
            and self.transport is not None
            and not self.transport.is_closing()
        )

    async def request(self, data: bytes, deadline: float, timeout: float) -> TransportResponse:
        """Send ``data`` and wait for the answer until the loop time ``deadline``."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[TransportResponse] = loop.create_future()
        self.waiter = waiter
        self.raw_headers = []
        self.body = bytearray()
        self.status = 0
        self.headers_done = self.interim = self.got_bytes = False
        self.finished = self.keep = self.extra = False
        self.requests += 1
        # A timer on the answer rather than asyncio.timeout(): a push is sent many
        # thousand times a second and this is the cheaper of the two.
        timer = loop.call_at(deadline, self._expire, waiter, timeout)
        self.transport.write(data)
        try:
            return await waiter
        except asyncio.CancelledError:
            # Cancelled mid-request: the stream's state is unknown.
            self.abort()
            raise
        finally:
            timer.cancel()

    def _expire(self, waiter: asyncio.Future[TransportResponse], timeout: float) -> None:
        if not waiter.done():
            waiter.set_exception(TransportTimeout(f"no answer within {timeout:g}s"))
        self.abort()  # whatever comes late must not be read as the next answer

    def _answer(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(
                TransportResponse(self.status, _Headers(self.raw_headers), bytes(self.body))
            )

    def _fail(self, exc: TransportError) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.abort()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()


class _Pool:
    """The connections of one origin on one event loop."""

    def __init__(self, owner: _LoopPools, origin: _Origin) -> None:
        self.owner = owner
        self.origin = origin
        self.max_body = owner.transport.max_body
        self.limit = owner.transport.limit_per_origin
        self.idle: deque[_Connection] = deque()
        self.open = 0  # connections open or being opened
        self.waiters: deque[asyncio.Future[_Connection | None]] = deque()

    def take_idle(self) -> _Connection | None:
        while self.idle:
            conn = self.idle.pop()  # most recently used: the likeliest to be alive
            if conn.usable():
                return conn
            conn.abort()
        return None

    async def acquire(self) -> _Connection:
        while True:
            conn = self.take_idle()
            if conn is not None:
                return conn
            if self.open < self.limit:
                return await self._connect()
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[_Connection | None] = loop.create_future()
            self.waiters.append(waiter)
            try:
                handed = await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    given = waiter.result()
                    if given is not None:
                        self.release(given)  # handed over as we were cancelled: pass it on
                    else:
                        self._wake_one()
                else:
                    with contextlib.suppress(ValueError):
                        self.waiters.remove(waiter)
                raise
            if handed is not None and handed.usable():
                return handed
            if handed is not None:
                handed.abort()
            # None (or a dead hand-over): a slot is free, go round and take it.

    async def _connect(self) -> _Connection:
        transport = self.owner.transport
        origin = self.origin
        loop = asyncio.get_running_loop()
        self.open += 1
        try:
            if origin.tls:
                sock, conn = await loop.create_connection(
                    lambda: _Connection(self),
                    origin.host,
                    origin.port,
                    ssl=transport.ssl_context(),
                    server_hostname=origin.host,
                )
            else:
                sock, conn = await loop.create_connection(
                    lambda: _Connection(self), origin.host, origin.port
                )
        except BaseException as exc:
            self.open -= 1
            self._wake_one()
            if isinstance(exc, OSError):  # refused, DNS, TLS (ssl.SSLError is an OSError)
                raise TransportError(f"cannot connect to {origin.key}: {exc}") from exc
            raise
        if conn.transport is None:  # should a loop call connection_made later
            conn.transport = sock
        self.owner.conns.add(conn)
        return conn

    def release(self, conn: _Connection) -> None:
        """A connection whose answer was read in full: hand it to a waiter or keep it."""
        conn.waiter = None
        if not conn.usable():
            return
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = time.monotonic()
        self.idle.append(conn)
        self.owner.schedule_sweep()

    def forget(self, conn: _Connection) -> None:
        """A connection closed: free its slot."""
        self.open -= 1
        with contextlib.suppress(ValueError):
            self.idle.remove(conn)
        self._wake_one()

    def _wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def sweep(self, now: float, keepalive: float) -> None:
        while self.idle and now - self.idle[0].idle_since >= keepalive:
            self.idle.popleft().abort()

    def close(self) -> None:
        for conn in list(self.idle):
            conn.abort()
        self.idle.clear()


class _LoopPools:
    """The pools of one ``Http1Transport`` on one event loop."""

    def __init__(self, transport: Http1Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self.loop = loop
        self.pools: dict[str, _Pool] = {}
        self.conns: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._sweep: asyncio.TimerHandle | None = None

    def pool(self, origin: _Origin) -> _Pool:
        pool = self.pools.get(origin.key)
        if pool is None:
            pool = self.pools[origin.key] = _Pool(self, origin)
        return pool

    def schedule_sweep(self) -> None:
        if self._sweep is None:
            self._sweep = self.loop.call_later(self.transport.keepalive_timeout, self.sweep)

    def sweep(self) -> None:
        self._sweep = None
        now = time.monotonic()
        for pool in self.pools.values():
            pool.sweep(now, self.transport.keepalive_timeout)
        if any(pool.idle for pool in self.pools.values()):
            self.schedule_sweep()

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for pool in self.pools.values():
            pool.close()
        for conn in list(self.conns):
            conn.abort()  # in use: its request fails with TransportError
        self.pools.clear()


class Http1Transport(Transport):
    """HTTP/1.1 keep-alive pools per origin on asyncio; see the module docstring.

    ``ssl_context`` replaces the default (system CA store, hostname checked, ALPN
    ``http/1.1``), for example to trust a private CA in tests.
    """

    def __init__(
        self,
        *,
        limit_per_origin: int = 100,
        keepalive_timeout: float = 30.0,
        max_body: int = 16384,
        user_agent: str = "webpush_kit",
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if isinstance(limit_per_origin, bool) or not isinstance(limit_per_origin, int):
            raise ValueError(f"limit_per_origin must be a whole number, got {limit_per_origin!r}")
        if limit_per_origin < 1:
            raise ValueError(f"limit_per_origin must be >= 1, got {limit_per_origin!r}")
        if not keepalive_timeout > 0:
            raise ValueError(f"keepalive_timeout must be > 0, got {keepalive_timeout!r}")
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 0:
            raise ValueError(f"max_body must be a whole number >= 0, got {max_body!r}")
        _check_header("User-Agent", user_agent)
        self.limit_per_origin = limit_per_origin
        self.keepalive_timeout = float(keepalive_timeout)
        self.max_body = max_body
        self.user_agent = user_agent
        self._ssl = ssl_context
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopPools]
        self._loops = weakref.WeakKeyDictionary()
        self._origins: dict[str, _Origin] = {}
        self._lines: dict[tuple[str, str], str] = {}

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            context = ssl.create_default_context()
            context.set_alpn_protocols(["http/1.1"])
            self._ssl = context
        return self._ssl

    def _origin(self, url: str) -> tuple[_Origin, str]:
        """The origin and request target of ``url``, the origin parsed once per prefix."""
        start = url.find("//")
        cut = url.find("/", start + 2) if start >= 0 else -1
        key = url if cut < 0 else url[:cut]
        target = "/" if cut < 0 else url[cut:]
        origin = self._origins.get(key)
        if origin is None:
            origin = _parse_origin(key)
            if len(self._origins) >= _CACHE_LIMIT:
                self._origins.clear()
            self._origins[key] = origin
        hash_at = target.find("#")
        if hash_at >= 0:
            target = target[:hash_at]
        if not target.isascii():
            target = quote(target, safe="/:@!$&'()*+,;=%?~-._")
        if _BAD_TARGET_RE.search(target):
            raise ValueError(f"the endpoint path has spaces or control characters: {url!r}")
        return origin, target

    def _head(
        self, origin: _Origin, target: str, headers: Mapping[str, str], length: int
    ) -> bytes:
        lines = self._lines
        parts = [f"POST {target} HTTP/1.1\r\nHost: {origin.host_header}\r\n"]
        for item in (("User-Agent", self.user_agent), *headers.items()):
            line = lines.get(item)
            if line is None:
                name, value = item
                _check_header(name, value)
                if name.lower() in _OWN_HEADERS:
                    raise ValueError(f"the transport sets {name} itself; do not pass it")
                line = f"{name}: {value}\r\n"
                if len(lines) >= _CACHE_LIMIT:
                    lines.clear()
                lines[item] = line
            parts.append(line)
        parts.append(f"Content-Length: {length}\r\n\r\n")
        return "".join(parts).encode("latin-1")

    def _pools(self) -> _LoopPools:
        loop = asyncio.get_running_loop()
        pools = self._loops.get(loop)
        if pools is None:
            pools = self._loops[loop] = _LoopPools(self, loop)
        return pools

    async def post(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> TransportResponse:
        origin, target = self._origin(url)
        data = self._head(origin, target, headers, len(body)) + body
        pool = self._pools().pool(origin)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            conn = pool.take_idle()
            if conn is None:
                try:
                    async with asyncio.timeout_at(deadline):
                        conn = await pool.acquire()
                except TimeoutError as exc:
                    raise TransportTimeout(f"no answer within {timeout:g}s") from exc
            try:
                return await conn.request(data, deadline, timeout)
            except _ConnectionLost as exc:
                if not exc.stale:
                    raise
                # The server had closed this idle connection: send on a new one.

    async def aclose(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        pools = self._loops.pop(loop, None)
        if pools is not None:
            pools.close()


def _check_header(name: object, value: object) -> None:
    if not isinstance(name, str) or not _TOKEN_RE.fullmatch(name):
        raise ValueError(f"not a valid HTTP header name: {name!r}")
    if not isinstance(value, str) or _BAD_VALUE_RE.search(value):
        raise ValueError(
            f"the value of header {name} must be a string without CR, LF or NUL: {value!r}"
        )
    if not value.isascii():
        raise ValueError(f"the value of header {name} must be ASCII: {value!r}")


def _parse_origin(key: str) -> _Origin:
    try:
        parts = urlsplit(key)
        port = parts.port
    except ValueError:
        raise ValueError(f"not a valid URL: {key!r}") from None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("https", "http") or not host:
        raise ValueError(f"not an absolute http(s) URL: {key!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"credentials in a push endpoint are refused: {key!r}")
    tls = scheme == "https"
    default = 443 if tls else 80
    port = default if port is None else port
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port == default else f"{shown}:{port}"
    return _Origin(key, tls, host, port, host_header)


# --------------------------------------------------------------------------------------
# AiohttpTransport
# --------------------------------------------------------------------------------------


class AiohttpTransport(Transport):
    """aiohttp with a keep-alive pool per event loop, ``limit_per_host`` connections per origin.

    No cookies are kept (a push service's cookie must not follow one subscriber's request
    to the next), redirects are not followed, and at most ``max_body`` bytes of an answer
    are read.
    """

    def __init__(
        self,
        *,
        limit: int = 100,
        limit_per_host: int | None = None,
        keepalive_timeout: float = 30.0,
        max_body: int = 16384,
        user_agent: str = "webpush_kit",
    ) -> None:
        self._limit = limit
        self._limit_per_host = limit if limit_per_host is None else limit_per_host
        self._keepalive = keepalive_timeout
        self._max_body = max_body
        self._user_agent = user_agent
        self._sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aiohttp.ClientSession]
        self._sessions = weakref.WeakKeyDictionary()
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._limit,
                limit_per_host=self._limit_per_host,
                keepalive_timeout=self._keepalive,
                ttl_dns_cache=300,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                headers={"User-Agent": self._user_agent},
                skip_auto_headers=("Accept-Encoding",),
            )
            self._sessions[loop] = session
        return session

    async def post(
        self, url: str, headers: Mapping[str, str], body: bytes, timeout: float
    ) -> TransportResponse:
        client_timeout = self._timeouts.get(timeout)
        if client_timeout is None:
            client_timeout = self._timeouts[timeout] = aiohttp.ClientTimeout(total=timeout)
        # Endpoints are ASCII URLs already checked at intake: skip yarl's re-quoting.
        target: str | yarl.URL = yarl.URL(url, encoded=True) if url.isascii() else url
        try:
            async with self._session().post(
                target,
                data=body,
                headers=headers,
                timeout=client_timeout,
                allow_redirects=False,
            ) as resp:
                data = await resp.content.read(self._max_body)
                if not resp.content.at_eof():
                    resp.close()  # do not drain a huge body; drop the connection instead
                return TransportResponse(resp.status, resp.headers, data)
        except TimeoutError as exc:
            raise TransportTimeout(f"no answer within {timeout:g}s") from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        session = self._sessions.pop(loop, None)
        if session is not None and not session.closed:
            await session.close()
