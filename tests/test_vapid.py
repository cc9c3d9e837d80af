"""VAPID keys, claims and the signed header (webpush_kit/vapid.py)."""

from __future__ import annotations

import base64
import contextlib
import copy
import itertools
import json
import os
import pickle
import re
import stat
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from hypothesis import given
from hypothesis import strategies as st

from webpush_kit.errors import ConfigError, ValidationError
from webpush_kit.vapid import (
    DEFAULT_CLAIMS_TTL,
    MAX_KEY_FILE_BYTES,
    REFRESH_MARGIN,
    VapidClaims,
    VapidKey,
    VapidSigner,
    claims_from_mapping,
    endpoint_origin,
)

SUB = "mailto:push-admin@shop-example.com"


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class CountingKey(VapidKey):
    """Counts real signing calls, independently of the signer's own counter."""

    __slots__ = ("calls",)

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        super().__init__(private_key)
        self.calls = 0

    def sign(self, data: bytes) -> bytes:
        self.calls += 1
        return super().sign(data)


def counting_key() -> CountingKey:
    return CountingKey(ec.generate_private_key(ec.SECP256R1()))


def parse_header(header: str) -> tuple[str, str]:
    scheme, _, rest = header.partition(" ")
    assert scheme == "vapid"
    params = dict(part.strip().split("=", 1) for part in rest.split(","))
    return params["t"], params["k"]


def verify_jwt(token: str, public_key_b64: str) -> dict[str, object]:
    """Verify an ES256 JWT with a raw public key, as a push service does."""
    header_b64, claims_b64, sig_b64 = token.split(".")
    assert json.loads(b64url_decode(header_b64)) == {"typ": "JWT", "alg": "ES256"}
    signature = b64url_decode(sig_b64)
    assert len(signature) == 64  # raw r || s, not DER
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    public = ec.EllipticCurvePublicKey.from_encoded_point(
        ec.SECP256R1(), b64url_decode(public_key_b64)
    )
    public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    claims: dict[str, object] = json.loads(b64url_decode(claims_b64))
    return claims


# --------------------------------------------------------------------------- keys


def test_generated_key_has_an_uncompressed_p256_public_key() -> None:
    key = VapidKey.generate()
    raw = b64url_decode(key.public_key_b64)
    assert len(raw) == 65 and raw[0] == 4
    assert len(key.public_key_b64) == 87 and "=" not in key.public_key_b64
    assert key.public_key_bytes == raw


def test_pem_round_trip_pkcs8_and_sec1() -> None:
    key = VapidKey.generate()
    assert VapidKey.from_pem(key.private_pem()) == key
    sec1 = key._private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert b"EC PRIVATE KEY" in sec1
    assert VapidKey.from_pem(sec1).public_key_b64 == key.public_key_b64
    assert VapidKey.from_pem(sec1.decode()).public_key_b64 == key.public_key_b64


def test_der_round_trip() -> None:
    key = VapidKey.generate()
    assert VapidKey.from_der(key.private_der()) == key


@pytest.mark.parametrize("padded", [False, True])
def test_raw_round_trip_with_and_without_padding(padded: bool) -> None:
    key = VapidKey.generate()
    raw = key.private_raw_b64()
    assert len(raw) == 43 and "=" not in raw
    text = raw + "=" if padded else raw
    assert VapidKey.from_raw(text) == key
    assert VapidKey.from_raw(text.encode()) == key


def test_raw_in_standard_base64_alphabet_is_accepted() -> None:
    key = VapidKey.generate()
    scalar = b64url_decode(key.private_raw_b64())
    assert VapidKey.from_raw(base64.b64encode(scalar).decode()) == key


def test_load_detects_each_format(tmp_path: Path) -> None:
    key = VapidKey.generate()
    files = {
        "key.pem": key.private_pem(),
        "key.der": key.private_der(),
        "key.txt": (key.private_raw_b64() + "\n").encode(),
        "key-padded.txt": (key.private_raw_b64() + "=\r\n").encode(),
        # py_vapid prints base64url of the DER key
        "key-der-b64.txt": b64url(key.private_der()).encode(),
    }
    for name, data in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert VapidKey.load(path) == key, name
        assert VapidKey.load(str(path)) == key, name


def test_load_of_a_raw_key_starting_with_zero_character(tmp_path: Path) -> None:
    # "0" is 0x30, the first byte of DER: the text must still be read as raw base64url.
    while True:
        key = VapidKey.generate()
        if key.private_raw_b64().startswith("0"):
            break
    path = tmp_path / "k.txt"
    path.write_text(key.private_raw_b64())
    assert VapidKey.load(path) == key


def test_wrong_curve_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    pem = p384.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    der = p384.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    attempts: list[Callable[[], object]] = [
        lambda: VapidKey.from_pem(pem),
        lambda: VapidKey.from_der(der),
        lambda: VapidKey(p384),
    ]
    for attempt in attempts:
        with pytest.raises(ConfigError) as info:
            attempt()
        assert "P-256" in str(info.value) and "secp384r1" in str(info.value)
        assert info.value.key == "vapid_private_key"
    path = tmp_path / "p384.pem"
    path.write_bytes(pem)
    with pytest.raises(ConfigError) as info:
        VapidKey.load(path)
    assert str(path) in str(info.value) and "P-256" in str(info.value)


def test_non_ec_key_is_refused() -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ConfigError, match="EC private key on curve P-256"):
        VapidKey.from_pem(pem)


@pytest.mark.parametrize("size", [16, 31, 33, 48])
def test_raw_of_wrong_length_is_refused(size: int) -> None:
    with pytest.raises(ConfigError) as info:
        VapidKey.from_raw(b64url(os.urandom(size)))
    assert f"got {size} bytes" in str(info.value) and "32-byte" in str(info.value)


def test_public_key_given_as_private_is_refused_with_a_hint() -> None:
    public = VapidKey.generate().public_key_b64
    with pytest.raises(ConfigError, match="is this the public key"):
        VapidKey.from_raw(public)


@pytest.mark.parametrize("scalar", [bytes(32), b"\xff" * 32])
def test_raw_scalar_out_of_range_is_refused(scalar: bytes) -> None:
    with pytest.raises(ConfigError, match="out of range"):
        VapidKey.from_raw(b64url(scalar))


@pytest.mark.parametrize("text", ["not a key!", "", "abc$", "a"])
def test_raw_garbage_is_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        VapidKey.from_raw(text)


def test_unreadable_or_garbage_files_name_the_file_not_the_content(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        VapidKey.load(tmp_path / "missing.pem")
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"\x00\xff\x10secret-looking-bytes")
    with pytest.raises(ConfigError) as info:
        VapidKey.load(garbage)
    assert str(garbage) in str(info.value) and "secret-looking" not in str(info.value)


def test_a_file_too_large_to_be_a_key_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    big = tmp_path / "app.log"
    big.write_bytes(b"-----BEGIN PRIVATE KEY-----\n" + b"A" * (MAX_KEY_FILE_BYTES + 10))
    with pytest.raises(ConfigError, match="larger than 64 KiB") as info:
        VapidKey.load(big)
    assert str(big) in str(info.value)
    # An endless file (a mistyped path such as /dev/zero) ends the same way, not in a hang.
    with pytest.raises(ConfigError, match="larger than 64 KiB"):
        VapidKey.load("/dev/zero")


def test_save_pem_writes_mode_0600_atomically(tmp_path: Path) -> None:
    key = VapidKey.generate()
    old_umask = os.umask(0)  # the widest umask must still give 0600
    try:
        path = key.save_pem(tmp_path / "vapid.pem")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert VapidKey.load(path) == key
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vapid.pem"]  # no temp file left


def test_save_pem_keeps_an_existing_key_unless_told(tmp_path: Path) -> None:
    first, second = VapidKey.generate(), VapidKey.generate()
    path = first.save_pem(tmp_path / "vapid.pem")
    with pytest.raises(FileExistsError):
        second.save_pem(path)
    assert VapidKey.load(path) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vapid.pem"]
    second.save_pem(path, overwrite=True)
    assert VapidKey.load(path) == second
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_repr_and_errors_never_show_the_private_key() -> None:
    key = VapidKey.generate()
    secret_forms = [
        key.private_raw_b64(),
        key.private_pem().decode().splitlines()[1],
        b64url(key.private_der()),
    ]
    shown = [repr(key), str(key), f"{key}", repr(VapidSigner(key, VapidClaims(SUB)))]
    for text in shown:
        assert key.public_key_b64 in text
        for secret in secret_forms:
            assert secret not in text
    with pytest.raises(TypeError):
        pickle.dumps(key)
    assert copy.deepcopy(key) is key
    # A refused key's bytes do not end up in the error message either.
    p384 = ec.generate_private_key(ec.SECP384R1())
    pem = p384.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ConfigError) as info:
        VapidKey.from_pem(pem)
    assert pem.decode().splitlines()[1] not in str(info.value)


# --------------------------------------------------------------------------- claims


VALID_SUBS = [
    "mailto:push-admin@shop-example.com",
    "mailto:first.last+push@mail.shop.co.uk",
    "mailto:ops@xn--bcher-kva.de",
    "mailto:ops@bücher.de",
    "https://shop-example.com/",
    "https://shop-example.com/contact?via=push",
    "https://push.shop-example.com:8443/contact",
]

INVALID_SUBS = [
    "admin@shop-example.com",  # bare address
    "mailto:mailto:admin@shop-example.com",
    "MAILTO:mailto:admin@shop-example.com",
    "mailto:admin@localhost",
    "mailto:admin@localhost.localdomain",
    "mailto:admin@shop.invalid",
    "mailto:admin@shop.local",
    "mailto:admin@shop.test",
    "mailto:admin@shop.example",
    "mailto:admin@127.0.0.1",
    "mailto:admin@[127.0.0.1]",
    "mailto:admin",
    "mailto:@shop-example.com",
    "mailto:",
    "mailto:admin@shop",
    "mailto:admin@shop-example.com?subject=hi",
    "mailto:a@b@shop-example.com",
    "mailto:admin@-shop.com",
    "mailto:admin@shop.c0m",
    " mailto:admin@shop-example.com",
    "mailto:admin@shop-example.com\n",
    "mailto:ad min@shop-example.com",
    "http://shop-example.com/",
    "https://localhost/",
    "https://localhost:8443/contact",
    "https://127.0.0.1/",
    "https://[::1]/",
    "https://shop/",
    "https://shop.local/",
    "https://user:pw@shop-example.com/",
    "https:shop-example.com",
    "https://shop-example.com:99999/",
    "ftp://shop-example.com/",
    "shop-example.com",
    "",
]


@pytest.mark.parametrize("sub", VALID_SUBS)
def test_valid_subjects_are_accepted(sub: str) -> None:
    assert VapidClaims(sub).sub == sub


@pytest.mark.parametrize("sub", INVALID_SUBS)
def test_invalid_subjects_are_refused_at_configuration_time(sub: str) -> None:
    with pytest.raises(ConfigError) as info:
        VapidClaims(sub)
    assert info.value.key == "vapid_subject"
    assert "mailto:" in str(info.value)  # every message says what a good value looks like


def test_bare_address_error_suggests_the_fix() -> None:
    with pytest.raises(ConfigError, match=re.escape("write 'mailto:admin@shop-example.com'")):
        VapidClaims("admin@shop-example.com")


@pytest.mark.parametrize("sub", [None, 42, b"mailto:a@shop-example.com"])
def test_non_string_subject_is_refused(sub: object) -> None:
    with pytest.raises(ConfigError):
        VapidClaims(sub)  # type: ignore[arg-type]


@given(st.text(max_size=80))
def test_subject_validation_only_ever_raises_config_error(text: str) -> None:
    with contextlib.suppress(ConfigError):
        VapidClaims(text)


@given(st.text(alphabet=st.characters(blacklist_characters="@:"), max_size=40))
def test_text_without_scheme_or_at_sign_is_never_accepted(text: str) -> None:
    with pytest.raises(ConfigError):
        VapidClaims(text)


@pytest.mark.parametrize("ttl", [0, 3600, 7199, 12 * 3600 + 1, 24 * 3600, 48 * 3600, True, 1.5])
def test_claims_ttl_outside_range_is_refused(ttl: object) -> None:
    with pytest.raises(ConfigError) as info:
        VapidClaims(SUB, ttl_seconds=ttl)  # type: ignore[arg-type]
    assert info.value.key == "vapid_claims_ttl"


def test_claims_ttl_default_is_twelve_hours() -> None:
    assert VapidClaims(SUB).ttl_seconds == DEFAULT_CLAIMS_TTL == 12 * 3600


@pytest.mark.parametrize(
    ("endpoint", "origin"),
    [
        ("https://fcm.googleapis.com/fcm/send/abc:def", "https://fcm.googleapis.com"),
        (
            "https://updates.push.services.mozilla.com/wpush/v2/gAAA",
            "https://updates.push.services.mozilla.com",
        ),
        ("https://web.push.apple.com/QGuQyavXutnMH", "https://web.push.apple.com"),
        (
            "https://wns2-by3p.notify.windows.com/w/?token=BQYAAA%3d%3d",
            "https://wns2-by3p.notify.windows.com",
        ),
        ("https://FCM.GoogleAPIs.com:443/wp/x", "https://fcm.googleapis.com"),
        ("https://push.example.net:8443/x", "https://push.example.net:8443"),
        ("http://localhost:8090/notify/abc", "http://localhost:8090"),
        ("http://127.0.0.1:80/x", "http://127.0.0.1"),
        ("https://[2001:db8::1]:8443/x", "https://[2001:db8::1]:8443"),
    ],
)
def test_endpoint_origin(endpoint: str, origin: str) -> None:
    assert endpoint_origin(endpoint) == origin


@pytest.mark.parametrize(
    "endpoint", ["", "fcm.googleapis.com/x", "ftp://x.com/a", "https:///x", "https://x.com:bad/"]
)
def test_endpoint_origin_refuses_non_urls(endpoint: str) -> None:
    with pytest.raises(ValidationError):
        endpoint_origin(endpoint)


# --------------------------------------------------------------------------- signer


def test_header_is_a_verifiable_es256_jwt_with_aud_per_origin() -> None:
    clock = Clock()
    key = VapidKey.generate()
    signer = VapidSigner(key, VapidClaims(SUB), clock=clock)
    fcm = signer.header_for("https://fcm.googleapis.com/fcm/send/abc")
    moz = signer.header_for("https://updates.push.services.mozilla.com/wpush/v2/xyz")
    for header, aud in (
        (fcm, "https://fcm.googleapis.com"),
        (moz, "https://updates.push.services.mozilla.com"),
    ):
        token, k = parse_header(header)
        assert k == key.public_key_b64
        claims = verify_jwt(token, k)
        assert claims == {"aud": aud, "exp": int(clock.now) + 12 * 3600, "sub": SUB}
    assert header.startswith("vapid t=") and ", k=" in header
    assert signer.claims_for("https://fcm.googleapis.com/other")["aud"] == (
        "https://fcm.googleapis.com"
    )


def test_exp_is_never_more_than_twelve_hours_ahead() -> None:
    clock = Clock()
    signer = VapidSigner(VapidKey.generate(), VapidClaims(SUB), clock=clock)
    for step in range(0, 48 * 3600, 600):
        clock.now = 1_700_000_000.0 + step + 0.7
        exp = signer.claims_for("https://fcm.googleapis.com/x")["exp"]
        assert isinstance(exp, int)
        assert REFRESH_MARGIN < exp - clock.now <= 12 * 3600


def test_one_signature_per_origin_reused_across_messages() -> None:
    clock = Clock()
    key = counting_key()
    signer = VapidSigner(key, VapidClaims(SUB), clock=clock)
    headers = {signer.header_for(f"https://fcm.googleapis.com/fcm/send/{i}") for i in range(500)}
    assert len(headers) == 1 and key.calls == 1 == signer.signatures
    signer.header_for("https://web.push.apple.com/abc")
    signer.header_for("https://web.push.apple.com/def")
    assert key.calls == 2
    clock.now += 10 * 3600  # still more than an hour left: reused
    signer.header_for("https://fcm.googleapis.com/fcm/send/x")
    assert key.calls == 2


def test_re_signed_shortly_before_expiry() -> None:
    clock = Clock()
    key = counting_key()
    signer = VapidSigner(key, VapidClaims(SUB), clock=clock)
    first = signer.header_for("https://fcm.googleapis.com/a")
    exp = int(clock.now) + 12 * 3600
    clock.now = exp - REFRESH_MARGIN - 1  # just over an hour left
    assert signer.header_for("https://fcm.googleapis.com/a") == first
    clock.now = exp - REFRESH_MARGIN + 1  # less than an hour left
    second = signer.header_for("https://fcm.googleapis.com/a")
    assert second != first and key.calls == 2
    exp2 = signer.claims_for("https://fcm.googleapis.com/a")["exp"]
    assert exp2 == int(clock.now) + 12 * 3600


def test_never_signs_more_than_hourly_per_origin() -> None:
    clock = Clock()
    key = counting_key()
    signer = VapidSigner(key, VapidClaims(SUB), clock=clock)
    origins = [
        "https://fcm.googleapis.com",
        "https://web.push.apple.com",
        "https://updates.push.services.mozilla.com",
    ]
    signed_at: dict[str, list[float]] = {o: [] for o in origins}
    last_token: dict[str, str] = {}
    for minute in range(3 * 24 * 60):
        clock.now = 1_700_000_000.0 + minute * 60
        for origin in origins:
            token = signer.token_for(f"{origin}/endpoint/{minute}")
            if token != last_token.get(origin):
                signed_at[origin].append(clock.now)
                last_token[origin] = token
    for times in signed_at.values():
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps and min(gaps) >= 3600
        assert len(times) <= 3 * 24 // 11 + 1
    assert key.calls == sum(len(t) for t in signed_at.values())


def test_clock_jumping_back_forces_a_fresh_token() -> None:
    clock = Clock()
    signer = VapidSigner(VapidKey.generate(), VapidClaims(SUB), clock=clock)
    signer.token_for("https://fcm.googleapis.com/a")
    clock.now -= 6 * 3600  # exp would now be 18 h ahead: more than we may claim
    signer.token_for("https://fcm.googleapis.com/a")
    assert signer.signatures == 2
    exp = signer.claims_for("https://fcm.googleapis.com/a")["exp"]
    assert exp == int(clock.now) + 12 * 3600


def test_signer_is_thread_safe() -> None:
    key = counting_key()
    signer = VapidSigner(key, VapidClaims(SUB))
    origins = [
        "https://a.push-example.com",
        "https://b.push-example.com",
        "https://c.push-example.com",
    ]
    seen: dict[str, set[str]] = {o: set() for o in origins}
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def hammer(n: int) -> None:
        barrier.wait()
        for i in range(300):
            origin = origins[(i + n) % 3]
            header = signer.header_for(f"{origin}/sub/{n}/{i}")
            with lock:
                seen[origin].add(header)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert key.calls == 3
    assert all(len(headers) == 1 for headers in seen.values())


def test_caller_dicts_are_never_mutated() -> None:
    given_claims = {"sub": SUB, "aud": "https://stale.example.com", "exp": 1}
    snapshot = copy.deepcopy(given_claims)
    claims = claims_from_mapping(given_claims)
    signer = VapidSigner(VapidKey.generate(), claims)
    signer.header_for("https://fcm.googleapis.com/a")
    signer.header_for("https://web.push.apple.com/b")
    assert given_claims == snapshot
    # The per-origin claims are fresh dicts: changing one does not leak into the next.
    first = claims.for_audience("https://fcm.googleapis.com", 1_700_000_000)
    first["aud"] = "https://evil.example.com"
    assert claims.for_audience("https://web.push.apple.com", 1_700_000_000)["aud"] == (
        "https://web.push.apple.com"
    )
    # and the pywebpush bug does not happen: each origin's token has its own aud.
    assert signer.claims_for("https://web.push.apple.com/x")["aud"] == "https://web.push.apple.com"
    assert signer.claims_for("https://fcm.googleapis.com/x")["aud"] == "https://fcm.googleapis.com"


def test_claims_from_mapping_validates() -> None:
    with pytest.raises(ConfigError):
        claims_from_mapping({"sub": "admin@shop-example.com"})
    with pytest.raises(ConfigError):
        claims_from_mapping({})
    assert claims_from_mapping({"sub": SUB, "ttl_seconds": 7200}).ttl_seconds == 7200


def test_signer_refuses_wrong_argument_types() -> None:
    with pytest.raises(TypeError):
        VapidSigner("key", VapidClaims(SUB))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        VapidSigner(VapidKey.generate(), {"sub": SUB})  # type: ignore[arg-type]


# --- bad input found by a newcomer -------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "shown"),
    [
        (lambda: VapidKey.from_raw(5), "<int>"),  # type: ignore[arg-type]
        (lambda: VapidKey.from_raw(None), "<NoneType>"),  # type: ignore[arg-type]
        (lambda: VapidKey.from_raw(["key"]), "<list>"),  # type: ignore[arg-type]
        (lambda: VapidKey.from_pem(5), "<int>"),  # type: ignore[arg-type]
        (lambda: VapidKey.from_der(5), "<int>"),  # type: ignore[arg-type]
        (lambda: VapidKey.from_der("MIGHAgEAMBMG"), "<str>"),  # type: ignore[arg-type]
        (lambda: VapidKey.load(5), "<int>"),  # type: ignore[arg-type]
        (lambda: VapidKey.load(None), "<NoneType>"),  # type: ignore[arg-type]
        (lambda: VapidKey(5), "<int>"),  # type: ignore[arg-type]
    ],
)
def test_every_constructor_refuses_the_wrong_type_with_a_config_error(
    make: Callable[[], VapidKey], shown: str
) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert info.value.key == "vapid_private_key"
    assert info.value.value == shown


def test_text_that_cannot_be_pem_or_a_path_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="PEM text is ASCII"):
        VapidKey.from_pem("-----BEGIN PRIVATE KEY-----\ud800")
    with pytest.raises(ConfigError, match="cannot encode"):
        VapidKey.load(tmp_path / "key\ud800.pem")
    with pytest.raises(ConfigError) as info:
        VapidKey.from_pem(VapidKey.generate().private_pem(), password="x")  # type: ignore[arg-type]
    assert info.value.key == "password" and "bytes" in info.value.allowed
    key = VapidKey.generate()
    assert VapidKey.from_der(bytearray(key.private_der())) == key
    assert VapidKey.from_raw(bytearray(key.private_raw_b64().encode())) == key


def test_save_pem_over_an_existing_file_names_that_file(tmp_path: Path) -> None:
    path = tmp_path / "a.pem"
    VapidKey.generate().save_pem(path)
    with pytest.raises(FileExistsError) as info:
        VapidKey.generate().save_pem(path)
    assert info.value.filename == str(path)
    assert ".tmp" not in str(info.value)
    assert "overwrite=True" in str(info.value) and "remove it" in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pem"]
