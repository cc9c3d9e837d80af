"""The transports against real loopback HTTP servers that answer byte for byte.

Each test runs a tiny asyncio TCP server on 127.0.0.1 whose handler writes the exact bytes
of the answer (chunked, close-delimited, interim, cut short, garbage...), so each rule of
``webpush_kit.transport`` is checked on the wire rather than against a mock. Rules both
transports must keep (no redirects followed, bounded bodies, timeouts, connection errors)
run against both; the rest are ``Http1Transport``'s own.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from webpush_kit.sender import Sender
from webpush_kit.transport import (
    AiohttpTransport,
    Http1Transport,
    Transport,
    TransportError,
    TransportResponse,
    TransportTimeout,
)
from webpush_kit.vapid import VapidClaims, VapidKey, VapidSigner

Handler = Callable[["Server", asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]
TRANSPORTS = [Http1Transport, AiohttpTransport]
CREATED = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"


class Request:
    def __init__(self, head: bytes, body: bytes, connection: int) -> None:
        lines = head.decode("latin-1").split("\r\n")
        self.line = lines[0]
        self.headers = [tuple(x.split(": ", 1)) for x in lines[1:] if x]
        self.body = body
        self.connection = connection

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k.lower() == name.lower()]
        assert len(found) <= 1, f"{name} sent {len(found)} times"
        return found[0] if found else None


async def read_request(reader: asyncio.StreamReader, connection: int) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return Request(head, await reader.readexactly(length), connection)


class Server:
    """A loopback server; ``handler`` owns each connection (its index starts at 1)."""

    def __init__(self, handler: Handler, *, tls: ssl.SSLContext | None = None,
                 host: str = "127.0.0.1") -> None:
        self.handler, self.tls, self.host = handler, tls, host
        self.connections = 0
        self.open = 0
        self.max_open = 0
        self.closed_by_client = 0
        self.requests: list[Request] = []

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._conn, self.host, 0, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    def url(self, path: str = "/push/a") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    async def _conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            await self.handler(self, reader, writer, self.connections)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass  # the client went away, or the test ended with the handler still waiting
        finally:
            self.open -= 1
            writer.close()

    async def serve(self, reader: asyncio.StreamReader, index: int,
                    writer: asyncio.StreamWriter, answer: bytes) -> None:
        """Answer every request on this connection with ``answer`` (keep-alive)."""
        while (req := await read_request(reader, index)) is not None:
            self.requests.append(req)
            writer.write(answer)
            await writer.drain()
        self.closed_by_client += 1


def keep_alive(answer: bytes = CREATED) -> Handler:
    async def handler(server: Server, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter, index: int) -> None:
        await server.serve(reader, index, writer, answer)
    return handler


def run(coro: Awaitable[Any]) -> Any:
    async def main() -> Any:
        return await coro
    return asyncio.run(main())


async def post(transport: Transport, url: str, *, headers: dict[str, str] | None = None,
               body: bytes = b"payload", timeout: float = 5.0) -> TransportResponse:
    return await transport.post(url, headers or {}, body, timeout)


# ----------------------------------------------------------------------------- the request


def test_the_request_on_the_wire() -> None:
    async def go() -> None:
        answer = (b"HTTP/1.1 201 Created\r\nLocation: https://push.example/m/1\r\n"
                  b"X-Twice: a\r\nx-twice: b\r\nContent-Length: 2\r\n\r\nok")
        async with Server(keep_alive(answer)) as server:
            transport = Http1Transport(user_agent="shop/1.0")
            headers = {"TTL": "86400", "Content-Encoding": "aes128gcm",
                       "Authorization": "vapid t=abc.def.ghi, k=BPub"}
            resp = await post(transport, server.url("/push/a?x=1#frag"), headers=headers,
                              body=b"\x00\x01binary\xff")
            await transport.aclose()
        req = server.requests[0]
        assert req.line == "POST /push/a?x=1 HTTP/1.1"  # the fragment never leaves
        assert req.header("Host") == f"127.0.0.1:{server.port}"
        assert req.header("Content-Length") == "9"
        assert req.header("User-Agent") == "shop/1.0"
        assert req.header("TTL") == "86400"
        assert req.header("Authorization") == "vapid t=abc.def.ghi, k=BPub"
        assert req.header("Cookie") is None and req.header("Transfer-Encoding") is None
        assert req.body == b"\x00\x01binary\xff"
        assert resp.status == 201 and resp.body == b"ok"
        # Case-insensitive, repeated headers joined.
        assert resp.headers["location"] == resp.headers["LOCATION"] == "https://push.example/m/1"
        assert "Location" in resp.headers and "Nope" not in resp.headers
        assert resp.headers["X-Twice"] == "a, b"
    run(go())


def test_default_ports_are_left_out_of_the_host_header_and_non_ascii_paths_are_encoded() -> None:
    transport = Http1Transport()
    origin, target = transport._origin("https://FCM.googleapis.com:443/fcm/send/é x?q")
    assert (origin.host, origin.port, origin.tls, origin.host_header) == (
        "fcm.googleapis.com", 443, True, "fcm.googleapis.com")
    assert target == "/fcm/send/%C3%A9%20x?q"
    origin, target = transport._origin("http://[::1]:8080")
    assert (origin.host, origin.port, origin.host_header, target) == (
        "::1", 8080, "[::1]:8080", "/")


@pytest.mark.parametrize("name, value, why", [
    ("X-Evil", "a\r\nInjected: 1", "CR, LF or NUL"),
    ("X-Evil", "a\nb", "CR, LF or NUL"),
    ("X-Evil", "a\x00b", "CR, LF or NUL"),
    ("Bad Name", "v", "not a valid HTTP header name"),
    ("", "v", "not a valid HTTP header name"),
    ("X-Uni", "café", "ASCII"),
    ("Host", "evil.example", "sets Host itself"),
    ("content-length", "1", "sets content-length itself"),
])
def test_headers_that_would_break_the_request_are_refused(name: str, value: str, why: str) -> None:
    async def go() -> None:
        async with Server(keep_alive()) as server:
            transport = Http1Transport()
            with pytest.raises(ValueError, match=why):
                await post(transport, server.url(), headers={name: value})
            await transport.aclose()
        assert server.requests == []  # nothing was sent
    run(go())


@pytest.mark.parametrize("url, why", [
    ("http://127.0.0.1:1/push/a b", "spaces or control characters"),
    ("http://127.0.0.1:1/push/a\r\nX: y", "spaces or control characters"),
    ("ftp://127.0.0.1/push", "not an absolute http"),
    ("http://user:pw@127.0.0.1/push", "credentials"),
    ("http://127.0.0.1:99999/push", "not a valid URL"),
])
def test_urls_that_would_break_the_request_are_refused(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        run(post(Http1Transport(), url))


# ----------------------------------------------------------------------------- connections


def test_one_connection_is_reused_for_sequential_requests() -> None:
    async def go() -> None:
        async with Server(keep_alive()) as server:
            transport = Http1Transport()
            for _ in range(20):
                assert (await post(transport, server.url())).status == 201
            await transport.aclose()
            await asyncio.sleep(0.05)
        assert server.connections == 1 and len(server.requests) == 20
        assert server.closed_by_client == 1  # aclose closed it
    run(go())


def test_concurrent_requests_use_at_most_limit_per_origin_connections() -> None:
    async def slow(server: Server, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter, index: int) -> None:
        while (req := await read_request(reader, index)) is not None:
            server.requests.append(req)
            await asyncio.sleep(0.02)
            writer.write(CREATED)

    async def go() -> None:
        async with Server(slow) as server:
            transport = Http1Transport(limit_per_origin=3)
            results = await asyncio.gather(*(post(transport, server.url()) for _ in range(30)))
            await transport.aclose()
        assert [r.status for r in results] == [201] * 30
        assert server.max_open == 3 and server.connections == 3
    run(go())


def test_the_sender_default_transport_pools_per_origin() -> None:
    signer = VapidSigner(VapidKey.generate(), VapidClaims("mailto:ops@shop-example.com"))
    sender = Sender(signer, concurrency=7)
    assert isinstance(sender.transport, Http1Transport)
    assert sender.transport.limit_per_origin == 7
    sender.close()


def test_a_chunked_answer_is_decoded_and_the_connection_kept() -> None:
    answer = (b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n")

    async def go() -> None:
        async with Server(keep_alive(answer)) as server:
            transport = Http1Transport()
            first = await post(transport, server.url())
            second = await post(transport, server.url())
            await transport.aclose()
        assert (first.status, first.body, second.body) == (400, b"hello, world", b"hello, world")
        assert server.connections == 1
    run(go())


def test_a_close_delimited_answer_is_read_to_the_end_and_not_reused() -> None:
    async def handler(server: Server, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter, index: int) -> None:
        req = await read_request(reader, index)
        assert req is not None
        server.requests.append(req)
        writer.write(b"HTTP/1.1 410 Gone\r\nConnection: close\r\n\r\nsubscription ")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"has expired")

    async def go() -> None:
        async with Server(handler) as server:
            transport = Http1Transport()
            first = await post(transport, server.url())
            second = await post(transport, server.url())
            await transport.aclose()
        assert (first.status, first.body) == (410, b"subscription has expired")
        assert second.status == 410
        assert server.connections == 2
    run(go())


def test_interim_answers_are_skipped() -> None:
    answer = (b"HTTP/1.1 100 Continue\r\n\r\n"
              b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + CREATED)

    async def go() -> None:
        async with Server(keep_alive(answer)) as server:
            transport = Http1Transport()
            statuses = [(await post(transport, server.url())).status for _ in range(3)]
            await transport.aclose()
        assert statuses == [201, 201, 201] and server.connections == 1
    run(go())


def test_http_1_0_answers_close_the_connection() -> None:
    answer = b"HTTP/1.0 201 Created\r\nContent-Length: 0\r\n\r\n"

    async def go() -> None:
        async with Server(keep_alive(answer)) as server:
            transport = Http1Transport()
            for _ in range(3):
                assert (await post(transport, server.url())).status == 201
            await transport.aclose()
        assert server.connections == 3
    run(go())


@pytest.mark.parametrize("transport_class", TRANSPORTS)
def test_a_long_answer_is_cut_at_max_body(transport_class: type[Transport]) -> None:
    big = b"x" * 1_000_000
    answer = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: %d\r\n\r\n%s" % (len(big), big)

    async def go() -> None:
        async with Server(keep_alive(answer)) as server:
            transport = transport_class(max_body=100)  # type: ignore[call-arg]
            first = await post(transport, server.url())
            second = await post(transport, server.url())
            await transport.aclose()
        assert (first.status, first.body, second.body) == (413, b"x" * 100, b"x" * 100)
        assert server.connections == 2  # the first was dropped, not drained
    run(go())


@pytest.mark.parametrize("transport_class", TRANSPORTS)
def test_redirects_are_answers_never_followed(transport_class: type[Transport]) -> None:
    answer = (b"HTTP/1.1 307 Temporary Redirect\r\nLocation: /elsewhere\r\n"
              b"Content-Length: 0\r\n\r\n")

    async def go() -> None:
        async with Server(keep_alive(answer)) as server:
            transport = transport_class()
            resp = await post(transport, server.url())
            await transport.aclose()
        assert resp.status == 307 and resp.headers["location"] == "/elsewhere"
        assert [r.line for r in server.requests] == ["POST /push/a HTTP/1.1"]
    run(go())


# ----------------------------------------------------------------------------- failures


def hang(served: list[int]) -> Handler:
    """Answer requests on connections in ``served`` at once, never on the others."""
    async def handler(server: Server, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter, index: int) -> None:
        if index in served:
            await server.serve(reader, index, writer, CREATED)
            return
        req = await read_request(reader, index)
        if req is not None:
            server.requests.append(req)
        await reader.read()  # until the client gives up and closes
        server.closed_by_client += 1
    return handler


@pytest.mark.parametrize("transport_class", TRANSPORTS)
def test_a_hanging_service_times_out(transport_class: type[Transport]) -> None:
    async def go() -> None:
        async with Server(hang(served=[2])) as server:
            transport = transport_class()
            with pytest.raises(TransportTimeout, match=r"no answer within 0\.2s"):
                await post(transport, server.url(), timeout=0.2)
            # The timed-out connection is dropped; the next request gets a new one.
            assert (await post(transport, server.url())).status == 201
            await transport.aclose()
        assert server.connections == 2
    run(go())


def test_a_request_waiting_for_a_pooled_connection_times_out_and_leaves_the_pool_sound() -> None:
    async def go() -> None:
        async with Server(hang(served=[2, 3])) as server:
            transport = Http1Transport(limit_per_origin=1)
            hanging = asyncio.ensure_future(post(transport, server.url(), timeout=0.5))
            await asyncio.sleep(0.05)
            with pytest.raises(TransportTimeout):  # never got the only connection
                await post(transport, server.url(), timeout=0.1)
            with pytest.raises(TransportTimeout):
                await hanging
            # The slot of the dropped connection is free again.
            results = await asyncio.gather(*(post(transport, server.url()) for _ in range(5)))
            await transport.aclose()
        assert [r.status for r in results] == [201] * 5
        assert server.connections == 2
    run(go())


@pytest.mark.parametrize("transport_class", TRANSPORTS)
def test_nothing_listening_is_a_transport_error(transport_class: type[Transport]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(TransportError) as caught:
            run(post(transport_class(), f"http://127.0.0.1:{port}/push/a"))
    assert not isinstance(caught.value, TransportTimeout)


def test_a_fresh_connection_closed_before_an_answer_is_an_error_not_resent() -> None:
    async def handler(server: Server, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter, index: int) -> None:
        req = await read_request(reader, index)
        assert req is not None
        server.requests.append(req)  # read it, then close without a word

    async def go() -> None:
        async with Server(handler) as server:
            with pytest.raises(TransportError, match="connection closed before an answer"):
                await post(Http1Transport(), server.url())
        assert len(server.requests) == 1  # the push might have been taken: not sent again
    run(go())


def test_a_reused_connection_the_server_closed_while_idle_is_resent_on_a_new_one() -> None:
    async def handler(server: Server, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter, index: int) -> None:
        if index == 1:
            req = await read_request(reader, index)
            assert req is not None
            server.requests.append(req)
            writer.write(CREATED)  # keep-alive answer...
            await writer.drain()
            await read_request(reader, index)  # ...then the idle close races the next request
            return
        await server.serve(reader, index, writer, CREATED)

    async def go() -> None:
        async with Server(handler) as server:
            transport = Http1Transport()
            assert (await post(transport, server.url())).status == 201
            assert (await post(transport, server.url())).status == 201
            await transport.aclose()
        assert server.connections == 2 and len(server.requests) == 2
    run(go())


@pytest.mark.parametrize("answer, match", [
    (b"HTTP/1.1 201 Cre", "connection closed before an answer"),
    (b"garbage that is not HTTP\r\n\r\n", "malformed HTTP answer"),
    (b"HTTP/1.1 2x1 Created\r\n\r\n", "malformed HTTP answer"),
    (b"HTTP/1.1 201 Created\r\nContent-Length: nope\r\n\r\n", "malformed HTTP answer"),
])
def test_broken_answers_are_transport_errors(answer: bytes, match: str) -> None:
    async def handler(server: Server, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter, index: int) -> None:
        await read_request(reader, index)
        writer.write(answer)
        await writer.drain()

    async def go() -> None:
        async with Server(handler) as server:
            with pytest.raises(TransportError, match=match):
                await post(Http1Transport(), server.url())
    run(go())


def test_an_answer_whose_body_is_cut_short_keeps_its_status() -> None:
    async def handler(server: Server, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter, index: int) -> None:
        await read_request(reader, index)
        writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\nonly ten b")
        await writer.drain()

    async def go() -> None:
        async with Server(handler) as server:
            resp = await post(Http1Transport(), server.url())
        # Delivered is delivered: resending would show the notification twice.
        assert (resp.status, resp.body) == (201, b"only ten b")
    run(go())


def test_an_extra_answer_nobody_asked_for_drops_the_connection() -> None:
    async def go() -> None:
        async with Server(keep_alive(CREATED + b"HTTP/1.1 500 Oops\r\n\r\n")) as server:
            transport = Http1Transport()
            assert (await post(transport, server.url())).status == 201
            await asyncio.sleep(0.05)
            assert (await post(transport, server.url())).status == 201
            await transport.aclose()
        assert server.connections == 2
    run(go())


def test_idle_connections_are_closed_after_keepalive_timeout() -> None:
    async def go() -> None:
        async with Server(keep_alive()) as server:
            transport = Http1Transport(keepalive_timeout=0.1)
            assert (await post(transport, server.url())).status == 201
            for _ in range(100):
                if server.closed_by_client:
                    break
                await asyncio.sleep(0.05)
            assert server.closed_by_client == 1
            assert (await post(transport, server.url())).status == 201
            await transport.aclose()
        assert server.connections == 2
    run(go())


@pytest.mark.parametrize("kwargs, match", [
    ({"limit_per_origin": 0}, "limit_per_origin must be >= 1"),
    ({"limit_per_origin": 1.5}, "limit_per_origin must be a whole number"),
    ({"keepalive_timeout": 0}, "keepalive_timeout must be > 0"),
    ({"max_body": -1}, "max_body must be a whole number >= 0"),
    ({"user_agent": "a\r\nb"}, "User-Agent"),
])
def test_bad_settings_are_refused(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Http1Transport(**kwargs)


# ----------------------------------------------------------------------------- TLS and IPv6


def self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1/localhost, and a client context
    that trusts only that certificate (hostname checks on)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "webpush-kit test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cafile=str(cert_file))
    return server, client


def test_https_with_a_trusted_certificate(tmp_path: Path) -> None:
    server_ctx, client_ctx = self_signed(tmp_path)

    async def go() -> None:
        async with Server(keep_alive(), tls=server_ctx) as server:
            transport = Http1Transport(ssl_context=client_ctx)
            statuses = [(await post(transport, server.url())).status for _ in range(3)]
            await transport.aclose()
        assert statuses == [201] * 3 and server.connections == 1
        assert server.requests[0].header("Host") == f"127.0.0.1:{server.port}"
    run(go())


def test_https_refuses_an_untrusted_certificate(tmp_path: Path) -> None:
    server_ctx, _ = self_signed(tmp_path)

    async def go() -> None:
        async with Server(keep_alive(), tls=server_ctx) as server:
            with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
                await post(Http1Transport(), server.url())  # the system CA store
        assert server.requests == []
    run(go())


def test_ipv6_loopback() -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")

    async def go() -> None:
        async with Server(keep_alive(), host="::1") as server:
            transport = Http1Transport()
            resp = await post(transport, server.url())
            await transport.aclose()
        assert resp.status == 201
        assert server.requests[0].header("Host") == f"[::1]:{server.port}"
    run(go())
