"""VAPID (RFC 8292): the application server's key, its claims, and the signed header.

Three things every sender in the wild gets wrong, and this module exists to get right:

* the private key is never shown: ``repr``/``str`` of a key print only the public half,
  and a refused key's error names the file, never its bytes;
* the claims are validated once, at configuration time (Apple answers 403 ``BadJwtToken``
  to a ``sub`` that is a bare address, ``@localhost``, ``.invalid`` or ``mailto:mailto:``);
* one JWT is signed per push-service origin and reused until shortly before it expires,
  instead of signing per message, and nothing the caller passed in is ever mutated
  (pywebpush writes ``aud``/``exp`` into the caller's claims dict, so the first endpoint's
  origin leaks into requests to every other push service).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from webpush_kit.errors import ConfigError, ValidationError
from webpush_kit.fileio import write_atomic

__all__ = [
    "DEFAULT_CLAIMS_TTL",
    "MAX_CLAIMS_TTL",
    "MIN_CLAIMS_TTL",
    "REFRESH_MARGIN",
    "VapidClaims",
    "VapidKey",
    "VapidSigner",
    "check_subject",
    "claims_from_mapping",
    "endpoint_origin",
]

#: ``exp`` is set this far ahead: 12 h, half of RFC 8292's 24 h limit, so a push service
#: whose clock runs ahead of ours still accepts the token.
DEFAULT_CLAIMS_TTL = 12 * 3600
#: Longest ``exp`` we sign (the issue's rule: at most 12 h ahead).
MAX_CLAIMS_TTL = 12 * 3600
#: A cached token is re-signed when less than this is left before its ``exp``.
REFRESH_MARGIN = 3600
#: Shortest ``exp`` allowed: each token must stay usable for at least an hour.
MIN_CLAIMS_TTL = 2 * REFRESH_MARGIN

_KEY_SETTING = "vapid_private_key"
_SUB_SETTING = "vapid_subject"
_TTL_SETTING = "vapid_claims_ttl"
_RAW_ALLOWED = "the 32-byte P-256 private scalar as base64url (43 characters, padding optional)"
#: Largest key file read: an encrypted PEM with comments is well under 4 KiB. A larger
#: file (a misconfigured path such as ``/dev/zero`` or a log) is refused unread.
MAX_KEY_FILE_BYTES = 64 * 1024


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    """Decode base64url (or standard base64), with or without padding; strict otherwise."""
    cleaned = text.strip().replace("+", "-").replace("/", "_").rstrip("=")
    if not re.fullmatch(r"[A-Za-z0-9_-]*", cleaned) or len(cleaned) % 4 == 1:
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(cleaned + "=" * (-len(cleaned) % 4))


# --------------------------------------------------------------------------------------
# Keys
# --------------------------------------------------------------------------------------


class VapidKey:
    """An EC P-256 private key used to sign VAPID tokens.

    ``public_key_b64`` is what browsers get as ``applicationServerKey``. The private half
    leaves this object only through the explicit ``private_*`` methods and ``save_pem``.
    """

    __slots__ = ("_private_key", "_public_b64", "_public_bytes")

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key, ec.EllipticCurvePrivateKey):
            raise ConfigError(
                _KEY_SETTING,
                f"<{type(private_key).__name__}>",
                "a VAPID key must be an EC private key on curve P-256 (secp256r1)",
            )
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ConfigError(
                _KEY_SETTING,
                f"<EC private key on {private_key.curve.name}>",
                "VAPID requires curve P-256 (secp256r1, prime256v1); generate one with "
                "`webpush-kit vapid generate`",
            )
        self._private_key = private_key
        self._public_bytes = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        self._public_b64 = _b64url(self._public_bytes)

    # --- construction ------------------------------------------------------------------

    @classmethod
    def generate(cls) -> VapidKey:
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, data: bytes | str, password: bytes | None = None) -> VapidKey:
        """A PEM private key: PKCS#8 (``PRIVATE KEY``) or SEC1 (``EC PRIVATE KEY``)."""
        _check_password(password)
        if isinstance(data, str):
            if not data.isascii():
                raise ConfigError(
                    _KEY_SETTING, "<PEM text>", "PEM text is ASCII; this holds other "
                    "characters, so it is not a PEM key (read the file as bytes, or pass "
                    "its path to VapidKey.load)"
                )
            raw = data.encode("ascii")
        elif isinstance(data, bytes | bytearray | memoryview):
            raw = bytes(data)
        else:
            raise _wrong_type(data, "PEM data as bytes or str")
        try:
            key = serialization.load_pem_private_key(raw, password=password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ConfigError(
                _KEY_SETTING, "<PEM data>", f"not a readable PEM private key ({_why(exc)})"
            ) from None
        return cls._checked(key)

    @classmethod
    def from_der(cls, data: bytes, password: bytes | None = None) -> VapidKey:
        """A DER private key: PKCS#8 or SEC1."""
        _check_password(password)
        if not isinstance(data, bytes | bytearray | memoryview):
            raise _wrong_type(data, "DER data as bytes (a str is not DER: for PEM text use "
                              "VapidKey.from_pem, for base64url VapidKey.from_raw)")
        data = bytes(data)
        try:
            key = serialization.load_der_private_key(data, password=password)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise ConfigError(
                _KEY_SETTING, f"<{len(data)} bytes of DER>", f"not a DER private key ({_why(exc)})"
            ) from None
        return cls._checked(key)

    @classmethod
    def from_raw(cls, value: str | bytes) -> VapidKey:
        """The raw 32-byte private scalar, base64url with or without ``=`` padding.

        This is the format of ``web-push generate-vapid-keys`` and most VAPID key sites.
        """
        if isinstance(value, bytes | bytearray | memoryview):
            text = bytes(value).decode("ascii", "replace")
        elif isinstance(value, str):
            text = value
        else:
            raise _wrong_type(value, f"{_RAW_ALLOWED}, as str or bytes")
        try:
            scalar = _b64url_decode(text)
        except (ValueError, binascii.Error):
            raise ConfigError(_KEY_SETTING, "<not base64url>", _RAW_ALLOWED) from None
        if len(scalar) != 32:
            raise ConfigError(
                _KEY_SETTING,
                f"<{len(scalar)} bytes>",
                f"{_RAW_ALLOWED}; got {len(scalar)} bytes"
                + (" (is this the public key?)" if len(scalar) == 65 else ""),
            )
        try:
            key = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
        except ValueError:
            raise ConfigError(
                _KEY_SETTING, "<32 bytes>", "the scalar is out of range for P-256"
            ) from None
        return cls(key)

    @classmethod
    def load(cls, path: str | os.PathLike[str], password: bytes | None = None) -> VapidKey:
        """Read a key file, whichever format it holds: PEM, DER, or raw base64url text.

        Text holding base64 of a DER key (what py_vapid prints) is accepted too.
        """
        if not isinstance(path, str | os.PathLike):
            raise _wrong_type(path, "the path of a key file, as str or pathlib.Path "
                              "(for key bytes use from_pem, from_der or from_raw)")
        _check_password(password)
        try:
            p = Path(path)
        except TypeError:  # os.PathLike[bytes]
            raise _wrong_type(path, "the path of a key file, as str or pathlib.Path") from None
        try:
            with p.open("rb") as file:
                data = file.read(MAX_KEY_FILE_BYTES + 1)
        except OSError as exc:
            raise ConfigError(
                _KEY_SETTING, str(p), f"cannot read the key file ({exc.strerror or exc})"
            ) from None
        except ValueError:  # a NUL byte or a lone surrogate the file system cannot take
            raise ConfigError(
                _KEY_SETTING, str(p), "a file path the system can open (this one "
                "holds a NUL byte or a character the file system cannot encode)"
            ) from None
        if len(data) > MAX_KEY_FILE_BYTES:
            raise ConfigError(
                _KEY_SETTING,
                str(p),
                f"the file is larger than {MAX_KEY_FILE_BYTES // 1024} KiB, so it is not a "
                "key file; point the setting at the PEM file `webpush-kit vapid generate` "
                "wrote",
            )
        try:
            if b"-----BEGIN" in data:
                return cls.from_pem(data, password)
            try:
                text = data.decode("ascii").strip()
                decoded = _b64url_decode(text)
            except (UnicodeDecodeError, ValueError, binascii.Error):
                if data[:1] == b"\x30":  # binary, starts like an ASN.1 SEQUENCE
                    return cls.from_der(data, password)
                raise ConfigError(
                    _KEY_SETTING,
                    str(p),
                    f"expected a PEM, DER or base64url key file ({_RAW_ALLOWED})",
                ) from None
            if len(decoded) != 32 and decoded[:1] == b"\x30":
                return cls.from_der(decoded, password)  # base64 of DER, as py_vapid prints
            return cls.from_raw(text)
        except ConfigError as exc:
            raise ConfigError(_KEY_SETTING, str(p), exc.allowed) from None

    @classmethod
    def _checked(cls, key: object) -> VapidKey:
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ConfigError(
                _KEY_SETTING,
                f"<{type(key).__name__.lstrip('_')}>",
                "a VAPID key must be an EC private key on curve P-256, not another key type",
            )
        return cls(key)

    # --- export ------------------------------------------------------------------------

    @property
    def public_key_b64(self) -> str:
        """The 65-byte uncompressed public point, base64url without padding."""
        return self._public_b64

    @property
    def public_key_bytes(self) -> bytes:
        return self._public_bytes

    def private_pem(self) -> bytes:
        return self._private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def private_der(self) -> bytes:
        return self._private_key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def private_raw_b64(self) -> str:
        """The 32-byte private scalar, base64url without padding."""
        return _b64url(self._private_key.private_numbers().private_value.to_bytes(32, "big"))

    def save_pem(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the key as PKCS#8 PEM with mode 0600, atomically.

        The file never exists with wider permissions or partial contents. An existing file
        is kept unless ``overwrite``: replacing a VAPID key orphans every subscription made
        with it, so that must be a deliberate act.
        """
        target = Path(path)
        # write_atomic makes the temporary file 0600 from the start, and without
        # ``overwrite`` links it into place only if nothing is there (FileExistsError
        # naming ``target``, never the temporary file).
        write_atomic(target, self.private_pem(), mode=0o600, overwrite=overwrite)
        return target

    # --- signing -----------------------------------------------------------------------

    def sign(self, data: bytes) -> bytes:
        """ES256: ECDSA over SHA-256, as the 64-byte raw ``r || s`` JWS wants."""
        der = self._private_key.sign(data, ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._private_key.public_key()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VapidKey):
            return NotImplemented
        return self._public_bytes == other._public_bytes

    def __hash__(self) -> int:
        return hash(self._public_bytes)

    def __repr__(self) -> str:
        return f"VapidKey(public_key_b64={self._public_b64!r})"

    __str__ = __repr__

    def __copy__(self) -> VapidKey:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, object]) -> VapidKey:
        return self

    def __reduce__(self) -> tuple[object, ...]:
        # Pickling would copy the private key into caches, queues, logs of task args.
        raise TypeError("VapidKey is not picklable; pass the key file path instead")


def _wrong_type(value: object, allowed: str) -> ConfigError:
    """A key constructor given the wrong kind of object: name the type, never the value
    (it may be key material)."""
    return ConfigError(_KEY_SETTING, f"<{type(value).__name__}>", allowed)


def _check_password(password: object) -> None:
    if password is not None and not isinstance(password, bytes):
        raise ConfigError(
            "password", f"<{type(password).__name__}>",
            "the key file's password as bytes (e.g. b'secret' or text.encode()), or None",
        )


def _why(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:120]


# --------------------------------------------------------------------------------------
# Claims
# --------------------------------------------------------------------------------------

# Names that never reach a real mailbox or public site (RFC 2606, RFC 6761, RFC 6762,
# and common private-network suffixes). Apple answers such a ``sub`` with BadJwtToken.
_RESERVED_TLDS = frozenset(
    {
        "localhost",
        "local",
        "invalid",
        "test",
        "example",
        "internal",
        "lan",
        "home",
        "localdomain",
        "intranet",
        "corp",
        "private",
    }
)
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_LOCAL_PART = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}")

_SUB_ALLOWED = (
    "a real contact: 'mailto:' plus an e-mail address on a public domain "
    "(e.g. mailto:push-admin@your-site.com) or an https: URL of your site; "
    "Apple rejects localhost, .invalid/.local/.test, bare addresses and 'mailto:mailto:'"
)


def _check_domain(domain: str) -> str | None:
    """Why ``domain`` is not a plausible public host name, or None when it is."""
    host = domain.lower().rstrip(".")
    if not host:
        return "the host is empty"
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        return "an IP address is not a contact; use a domain name"
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return f"{domain!r} is not a valid domain name"
    labels = ascii_host.split(".")
    if len(labels) < 2:
        return f"{domain!r} has no top-level domain"
    if not all(_LABEL.fullmatch(label) for label in labels):
        return f"{domain!r} is not a valid domain name"
    tld = labels[-1]
    if tld in _RESERVED_TLDS:
        return f".{tld} is a reserved or private name, not a public domain"
    if not (tld.isalpha() and len(tld) >= 2) and not tld.startswith("xn--"):
        return f"{domain!r} does not end in a real top-level domain"
    return None


def _check_subject(sub: object) -> str:
    if not isinstance(sub, str):
        raise ConfigError(_SUB_SETTING, sub, _SUB_ALLOWED)
    if not sub or sub != sub.strip() or any(ch.isspace() for ch in sub):
        raise ConfigError(
            _SUB_SETTING, sub, "must not be empty or contain whitespace; " + _SUB_ALLOWED
        )
    lower = sub.lower()
    if lower.startswith("mailto:"):
        address = sub[len("mailto:") :]
        if address.lower().startswith("mailto:"):
            raise ConfigError(_SUB_SETTING, sub, "'mailto:' appears twice; " + _SUB_ALLOWED)
        if any(c in address for c in "?#,"):
            raise ConfigError(
                _SUB_SETTING, sub, "give one plain address, no ?query; " + _SUB_ALLOWED
            )
        local, at, domain = address.rpartition("@")
        if not at or not _LOCAL_PART.fullmatch(local) or ".." in local or local.startswith("."):
            raise ConfigError(_SUB_SETTING, sub, "not an e-mail address; " + _SUB_ALLOWED)
        problem = _check_domain(domain)
        if problem:
            raise ConfigError(_SUB_SETTING, sub, f"{problem}; {_SUB_ALLOWED}")
        return sub
    if lower.startswith("https:"):
        try:
            parts = urlsplit(sub)
            host = parts.hostname
            _ = parts.port  # raises ValueError on a bad port
        except ValueError:
            raise ConfigError(_SUB_SETTING, sub, "not a valid URL; " + _SUB_ALLOWED) from None
        if not sub.startswith("https://") or not host or parts.username or parts.password:
            raise ConfigError(_SUB_SETTING, sub, "write https://your-site.com/...; " + _SUB_ALLOWED)
        problem = _check_domain(host)
        if problem:
            raise ConfigError(_SUB_SETTING, sub, f"{problem}; {_SUB_ALLOWED}")
        return sub
    if "@" in sub and ":" not in sub:
        raise ConfigError(
            _SUB_SETTING, sub, f"a bare address is rejected by Apple; write 'mailto:{sub}'"
        )
    if lower.startswith("http:"):
        raise ConfigError(_SUB_SETTING, sub, "use https:, not http:; " + _SUB_ALLOWED)
    raise ConfigError(_SUB_SETTING, sub, _SUB_ALLOWED)


def check_subject(sub: object) -> str:
    """The one ``sub`` rule, shared by ``VapidClaims`` and the ``vapid_subject`` setting:
    returns ``sub`` or raises ``ConfigError`` naming ``vapid_subject``."""
    return _check_subject(sub)


@dataclass(frozen=True, slots=True)
class VapidClaims:
    """The claims we sign: ``sub`` is fixed, ``aud`` and ``exp`` are set per origin."""

    sub: str
    ttl_seconds: int = DEFAULT_CLAIMS_TTL

    def __post_init__(self) -> None:
        _check_subject(self.sub)
        ttl = self.ttl_seconds
        if isinstance(ttl, bool) or not isinstance(ttl, int):
            raise ConfigError(_TTL_SETTING, ttl, "a whole number of seconds")
        if not MIN_CLAIMS_TTL <= ttl <= MAX_CLAIMS_TTL:
            raise ConfigError(
                _TTL_SETTING,
                ttl,
                f"between {MIN_CLAIMS_TTL} and {MAX_CLAIMS_TTL} seconds: exp at most 12 h ahead "
                "(RFC 8292 allows 24 h; the margin absorbs clock skew), and long enough that "
                f"a token is reused for at least {REFRESH_MARGIN} s",
            )

    def for_audience(self, aud: str, now: float) -> dict[str, str | int]:
        """A fresh claims dict for one token (never a shared, mutable one)."""
        return {"aud": aud, "exp": int(now) + self.ttl_seconds, "sub": self.sub}


# --------------------------------------------------------------------------------------
# Signer
# --------------------------------------------------------------------------------------


def endpoint_origin(endpoint: str) -> str:
    """``scheme://host[:port]`` of a push endpoint: the JWT ``aud`` (RFC 8292 section 2)."""
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        raise ValidationError(
            "not a valid URL", field="endpoint", code="invalid_endpoint"
        ) from None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in ("https", "http") or not host:
        raise ValidationError(
            "must be an absolute http(s) URL", field="endpoint", code="invalid_endpoint"
        )
    if ":" in host:
        host = f"[{host}]"
    default_port = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" if port in (None, default_port) else f"{scheme}://{host}:{port}"


_JWT_HEADER = _b64url(b'{"typ":"JWT","alg":"ES256"}')


class VapidSigner:
    """Makes the ``Authorization`` value for a push endpoint, one signature per origin.

    A token is signed the first time an origin is seen and reused until less than
    ``REFRESH_MARGIN`` is left before its ``exp`` (so at most one signature per origin per
    ``ttl - margin`` seconds, 11 h by default). Safe to share between threads.
    """

    #: Origins remembered at once; push services are a handful, so this is a safety cap.
    MAX_ORIGINS = 1024

    def __init__(
        self, key: VapidKey, claims: VapidClaims, clock: Callable[[], float] = time.time
    ) -> None:
        if not isinstance(key, VapidKey):
            raise TypeError("key must be a VapidKey")
        if not isinstance(claims, VapidClaims):
            raise TypeError("claims must be a VapidClaims")
        self._key = key
        self._claims = claims
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, int]] = {}
        self.signatures = 0  # how many JWTs were signed: observable for tests and logs

    @property
    def key(self) -> VapidKey:
        return self._key

    @property
    def claims(self) -> VapidClaims:
        return self._claims

    @property
    def public_key_b64(self) -> str:
        return self._key.public_key_b64

    def token_for(self, endpoint: str) -> str:
        """The signed JWT for ``endpoint``'s origin (cached)."""
        return self.token_for_origin(endpoint_origin(endpoint))

    def header_for(self, endpoint: str) -> str:
        """``vapid t=<JWT>, k=<public key>``: the RFC 8292 ``Authorization`` value."""
        return f"vapid t={self.token_for(endpoint)}, k={self._key.public_key_b64}"

    def claims_for(self, endpoint: str) -> dict[str, str | int]:
        """The claims of the token ``header_for`` would use now (a copy, for inspection)."""
        token = self.token_for(endpoint)
        payload = token.split(".")[1]
        decoded: dict[str, str | int] = json.loads(_b64url_decode(payload))
        return decoded

    def token_for_origin(self, origin: str) -> str:
        """The signed JWT for an origin as ``endpoint_origin`` spells it (cached)."""
        now = self._clock()
        with self._lock:
            cached = self._tokens.get(origin)
            if cached is not None:
                token, exp = cached
                left = exp - now
                # Reuse while comfortably valid; a clock that jumped back makes exp look
                # further away than the ttl, which a push service could refuse: re-sign.
                if REFRESH_MARGIN < left <= self._claims.ttl_seconds + 60:
                    return token
            token, exp = self._sign(origin, now)
            if len(self._tokens) >= self.MAX_ORIGINS and origin not in self._tokens:
                self._evict(now)
            self._tokens[origin] = (token, exp)
            return token

    def _sign(self, origin: str, now: float) -> tuple[str, int]:
        claims = self._claims.for_audience(origin, now)
        body = _b64url(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
        signing_input = f"{_JWT_HEADER}.{body}"
        signature = self._key.sign(signing_input.encode("ascii"))
        self.signatures += 1
        exp = claims["exp"]
        assert isinstance(exp, int)
        return f"{signing_input}.{_b64url(signature)}", exp

    def _evict(self, now: float) -> None:
        for origin, (_, exp) in list(self._tokens.items()):
            if exp - now <= REFRESH_MARGIN:
                del self._tokens[origin]
        while len(self._tokens) >= self.MAX_ORIGINS:
            del self._tokens[next(iter(self._tokens))]

    def __repr__(self) -> str:
        return (
            f"VapidSigner(public_key_b64={self._key.public_key_b64!r}, sub={self._claims.sub!r}, "
            f"origins={len(self._tokens)})"
        )


def claims_from_mapping(claims: Mapping[str, object]) -> VapidClaims:
    """Build ``VapidClaims`` from a pywebpush-style dict, reading it without changing it.

    ``aud`` and ``exp`` in the dict are ignored: they are set per origin when signing.
    """
    sub = claims.get("sub")
    ttl = claims.get("ttl_seconds", DEFAULT_CLAIMS_TTL)
    if not isinstance(sub, str):
        raise ConfigError(_SUB_SETTING, sub, _SUB_ALLOWED)
    if isinstance(ttl, bool) or not isinstance(ttl, int):
        raise ConfigError(_TTL_SETTING, ttl, "a whole number of seconds")
    return VapidClaims(sub=sub, ttl_seconds=ttl)
