"""The one loopback rule (webpush_kit._net), and that settings and doctor both follow it."""

from __future__ import annotations

import pytest

from webpush_kit._net import is_loopback_host, url_is_loopback
from webpush_kit.doctor import check_https
from webpush_kit.errors import ConfigError
from webpush_kit.settings import Settings

ACCEPTED_HOSTS = [
    "localhost",
    "LocalHost",              # host names are case-insensitive
    "localhost.",             # the same DNS name, written absolute
    "shop.localhost",         # RFC 6761 6.3: names under .localhost are loopback
    "a.b.localhost",
    "Shop.LOCALHOST.",
    "127.0.0.1",
    "127.0.0.53",
    "127.255.255.254",        # all of 127.0.0.0/8
    "::1",
    "0:0:0:0:0:0:0:1",        # ::1 written out
]

REFUSED_HOSTS = [
    None,
    "",
    " localhost",             # not a host name
    "[::1]",                  # brackets are URL syntax; url_is_loopback removes them
    "::ffff:127.0.0.1",       # IPv4-mapped: not ::1/128
    "::1%lo",                 # a zone id, which a URL cannot carry
    "::",                     # unspecified
    "0.0.0.0",
    "127.1",                  # shorthand IPv4: refused rather than guessed
    "2130706433",             # 127.0.0.1 as one number
    "127.000.000.001",        # leading zeros
    "127.0.0.1.",
    "128.0.0.1",
    "10.0.0.1",
    ".localhost",             # empty labels
    "a..localhost",
    "localhost..",
    "localhost.example.com",  # look-alikes
    "mylocalhost",
    "localhost6",
    "localhost.localdomain",
    "example.com",
]


@pytest.mark.parametrize("host", ACCEPTED_HOSTS)
def test_accepted_hosts(host: str) -> None:
    assert is_loopback_host(host) is True


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_refused_hosts(host: str | None) -> None:
    assert is_loopback_host(host) is False


@pytest.mark.parametrize("url,expected", [
    ("http://[::1]:5000/", True),          # brackets removed by the URL parser
    ("http://[0:0:0:0:0:0:0:1]/", True),
    ("http://LOCALHOST:8000/x", True),
    ("http://shop.localhost/", True),
    ("http://127.0.0.1:5000/", True),
    ("http://user:pw@127.0.0.1/", True),
    ("http://[::ffff:127.0.0.1]/", False),
    ("http://[::1/", False),               # unclosed bracket: not parsable, no exception
    ("http://example.com/", False),
    ("not a url", False),
])
def test_urls(url: str, expected: bool) -> None:
    assert url_is_loopback(url) is expected


@pytest.mark.parametrize("host", ACCEPTED_HOSTS)
def test_settings_accept_http_on_every_loopback_form(host: str) -> None:
    netloc = f"[{host}]" if ":" in host else host
    url = f"http://{netloc}:5000/sw-lib.js"
    assert Settings(sw_import_scripts=(url,)).sw_import_scripts == (url,)


@pytest.mark.parametrize("url", [
    "http://[::ffff:127.0.0.1]:5000/x.js", "http://127.1:5000/x.js",
    "http://localhost.example.com/x.js", "http://0.0.0.0/x.js", "http://example.com/x.js",
    "http://[::1/x.js", "http://127.0.0.1:99999/x.js",
])
def test_settings_refuse_other_http_urls_with_a_clear_error(url: str) -> None:
    with pytest.raises(ConfigError) as exc:
        Settings(sw_import_scripts=(url,))
    assert "sw_import_scripts[0]" in str(exc.value)


@pytest.mark.parametrize("host", ACCEPTED_HOSTS)
def test_doctor_treats_every_loopback_form_as_a_secure_context(host: str) -> None:
    netloc = f"[{host}]" if ":" in host else host
    assert check_https(f"http://{netloc}:5000/").status == "pass"


@pytest.mark.parametrize("url", [
    "http://[::ffff:127.0.0.1]/", "http://127.1/", "http://localhost.example.com/",
    "http://0.0.0.0:5000/",
])
def test_doctor_fails_http_on_other_hosts(url: str) -> None:
    assert check_https(url).status == "fail"
