"""One rule for "is this host loopback", shared by the settings and ``doctor``.

A host is loopback when browsers treat an ``http://`` origin on it as a secure context
(W3C Secure Contexts, "Is origin potentially trustworthy?"; RFC 6761 section 6.3 and
draft-ietf-dnsop-let-localhost-be-localhost):

* the name ``localhost`` or any name under it (``shop.localhost``), in any letter case,
  with or without one trailing dot (``localhost.`` is the same DNS name);
* an IPv4 address in 127.0.0.0/8, written as four decimal parts (``127.0.0.1``);
* the IPv6 address ``::1`` in any spelling (``0:0:0:0:0:0:0:1``).

The argument is a *host*, as :func:`urllib.parse.urlsplit` returns it in ``.hostname``:
square brackets are URL syntax around an IPv6 address, not part of the host, so they are
removed where URLs are parsed (:func:`url_is_loopback` does that) and ``"[::1]"`` given
here is refused. Refused as well: IPv4-mapped IPv6 (``::ffff:127.0.0.1``, not ``::1/128``),
IPv6 with a zone id (``::1%lo``, which URLs cannot carry), shorthand or numeric IPv4
(``127.1``, ``2130706433``; browsers would normalise them, Python's parsers do not, so they
are refused rather than guessed), names with empty labels (``.localhost``,
``a..localhost``), look-alikes (``localhost.example.com``, ``mylocalhost``,
``localhost6``) and the unspecified addresses ``0.0.0.0`` and ``::``.
"""

from __future__ import annotations

import ipaddress
from typing import Final
from urllib.parse import urlsplit

__all__ = ["is_loopback_host", "url_is_loopback"]

_LOCALHOST: Final = "localhost"


def is_loopback_host(host: str | None) -> bool:
    """Whether ``host`` (a bare host name or IP address, no brackets, no port) is loopback."""
    if not host or not isinstance(host, str) or host != host.strip():
        return False
    name = host.lower()
    if name.endswith("."):
        name = name[:-1]
    if name == _LOCALHOST:
        return True
    if name.endswith("." + _LOCALHOST):
        labels = name[: -len(_LOCALHOST) - 1].split(".")
        return all(labels)  # no empty label: ".localhost" and "a..localhost" are not names
    if "%" in host or host.endswith("."):
        return False  # a zone id, or a trailing dot after an IP address
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        return address == ipaddress.IPv6Address("::1")
    return address.is_loopback


def url_is_loopback(url: str) -> bool:
    """Whether ``url``'s host is loopback; ``http://[::1]:5000/`` is. A URL that cannot be
    parsed is not (never an exception)."""
    try:
        return is_loopback_host(urlsplit(url).hostname)
    except ValueError:
        return False
