"""``webpush-kit doctor``: check a live site, or an export folder, the way a browser would.

Each rule a browser applies before web push can work (WEB-PUSH-RULES sections 1, 2, 5 and
6, and the Content-Security-Policy sent with the worker, which governs its
``importScripts``) is one :class:`Check` with a status (``pass``, ``warn``, ``fail``,
``skip``), a message that says what was seen, and for a failure a fix. A URL target is
fetched over HTTP with redirects *not* followed for the worker (a browser refuses a worker
behind a redirect); a folder target is checked through the server configuration files the
export wrote.

The checks are small functions over plain data (a :class:`Fetched` response, bytes, a
parsed manifest), so tests and other front ends can call them one by one.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import unquote, urljoin, urlsplit

from webpush_kit import __version__
from webpush_kit._net import is_loopback_host
from webpush_kit.assets import AssetBundle, js_literal, render_assets
from webpush_kit.export import (
    HEAD_SNIPPET_FILE,
    SERVERS,
    read_export_state,
    server_config_name,
    url_to_relpath,
)
from webpush_kit.merge import _find_imports, _js_string_value, _tokens, find_moengage_imports
from webpush_kit.settings import MOENGAGE_LEGACY_SW_URL, Settings

__all__ = [
    "Check",
    "Fetched",
    "Report",
    "check_manifest_body",
    "check_page",
    "check_worker_body",
    "check_worker_csp",
    "check_worker_headers",
    "diagnose",
    "diagnose_folder",
    "diagnose_url",
    "fetch",
    "parse_csp_list",
    "served_headers",
]

Status = Literal["pass", "warn", "fail", "skip"]

DEFAULT_TIMEOUT: Final = 5.0
MAX_BODY: Final = 4 * 1024 * 1024
USER_AGENT: Final = f"webpush-kit-doctor/{__version__}"

# WHATWG MIME Sniffing, "JavaScript MIME type essence match".
JS_TYPES: Final = frozenset({
    "application/ecmascript", "application/javascript", "application/x-ecmascript",
    "application/x-javascript", "text/ecmascript", "text/javascript", "text/javascript1.0",
    "text/javascript1.1", "text/javascript1.2", "text/javascript1.3", "text/javascript1.4",
    "text/javascript1.5", "text/jscript", "text/livescript", "text/x-ecmascript",
    "text/x-javascript",
})
_INSTALL_DISPLAYS: Final = ("fullscreen", "standalone", "minimal-ui")
_IOS_DISPLAYS: Final = ("fullscreen", "standalone")
_MOENGAGE_VERSIONED: Final = re.compile(r"/release/(dc_[0-9]+)/versions/([^/]+)/")
_SEED_FIX: Final = "`webpush-kit export --config FILE --merge-sw PATH/TO/serviceworker.js`"


# --------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """One rule. ``context`` names the server configuration it was read from, if any."""

    id: str
    status: Status
    message: str
    fix: str | None = None
    context: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "status": self.status, "message": self.message}
        if self.fix:
            out["fix"] = self.fix
        if self.context:
            out["context"] = self.context
        return out


def _pass(id_: str, message: str) -> Check:
    return Check(id_, "pass", message)


def _fail(id_: str, message: str, fix: str) -> Check:
    return Check(id_, "fail", message, fix)


def _warn(id_: str, message: str, fix: str | None = None) -> Check:
    return Check(id_, "warn", message, fix)


def _skip(id_: str, message: str) -> Check:
    return Check(id_, "skip", message)


@dataclass
class Report:
    target: str
    kind: Literal["url", "folder"]
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(c.status == "fail" for c in self.checks)

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "warn": 0, "fail": 0, "skip": 0}
        for c in self.checks:
            out[c.status] += 1
        return out

    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    def by_id(self, id_: str) -> list[Check]:
        return [c for c in self.checks if c.id == id_]

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "kind": self.kind,
            "ok": self.ok,
            "counts": self.counts(),
            "checks": [c.to_dict() for c in self.checks],
        }

    def to_text(self) -> str:
        lines = [f"webpush-kit doctor: {self.target}"]
        width = max((len(_label(c)) for c in self.checks), default=10)
        for c in self.checks:
            lines.append(f"{c.status.upper():4}  {_label(c):{width}}  {c.message}")
            if c.fix and c.status in ("fail", "warn"):
                lines.append(f"{'':4}  {'':{width}}  fix: {c.fix}")
        n = self.counts()
        verdict = "OK" if self.ok else "FAILED"
        lines.append(f"{verdict}: {n['fail']} failed, {n['warn']} warnings, "
                     f"{n['pass']} passed, {n['skip']} skipped")
        return "\n".join(lines) + "\n"


def _label(c: Check) -> str:
    return f"{c.id} [{c.context}]" if c.context else c.id


# --------------------------------------------------------------------------------------
# fetching, redirects not followed
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    """A response (or the network error instead of one). Header names are lower case."""

    url: str
    status: int | None
    headers: Mapping[str, str]
    body: bytes = b""
    error: str | None = None

    @property
    def is_redirect(self) -> bool:
        return self.status is not None and 300 <= self.status < 400

    @property
    def mime_essence(self) -> str | None:
        value = self.headers.get("content-type")
        return _essence(value) if value is not None else None


def _essence(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def fetch(url: str, *, timeout: float = DEFAULT_TIMEOUT,
          headers: Mapping[str, str] | None = None) -> Fetched:
    """GET ``url`` without following redirects; a network error becomes ``error``."""
    handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
    try:
        if is_loopback_host(urlsplit(url).hostname):
            handlers.append(urllib.request.ProxyHandler({}))  # never send loopback to a proxy
        opener = urllib.request.build_opener(*handlers)
        request = urllib.request.Request(
            url, headers={"User-Agent": USER_AGENT, **(headers or {})})
        with opener.open(request, timeout=timeout) as resp:
            return Fetched(url, resp.status, _headers(resp.headers), resp.read(MAX_BODY))
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(MAX_BODY)
        except OSError:
            body = b""
        return Fetched(url, exc.code, _headers(exc.headers), body)
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        return Fetched(url, None, {}, b"", f"{type(exc).__name__}: {reason}")


def _headers(message: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in message.items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _follow(
    url: str, fetcher: Callable[[str], Fetched], hops: int = 5
) -> tuple[Fetched, list[str]]:
    """Follow redirects by hand (pages and manifests may redirect; workers may not)."""
    seen: list[str] = []
    resp = fetcher(url)
    while resp.is_redirect and "location" in resp.headers and len(seen) < hops:
        seen.append(resp.url)
        resp = fetcher(urljoin(resp.url, resp.headers["location"]))
    return resp, seen


# --------------------------------------------------------------------------------------
# checks: HTTPS
# --------------------------------------------------------------------------------------


def check_https(url: str) -> Check:
    parts = urlsplit(url)
    if parts.scheme == "https":
        return _pass("https", "served over HTTPS: a secure context")
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return _pass("https", f"{parts.hostname} is loopback, which browsers treat as a "
                              "secure context (development only)")
    return _fail("https", f"{parts.scheme}://{parts.netloc} is not a secure context: service "
                          "workers and push need HTTPS",
                 "serve the site over HTTPS (http:// is only allowed for localhost)")


# --------------------------------------------------------------------------------------
# checks: the service worker response
# --------------------------------------------------------------------------------------


def check_worker_status(resp: Fetched) -> Check:
    if resp.error is not None:
        return _fail("worker.status", f"could not fetch {resp.url}: {resp.error}",
                     "make the worker reachable at this URL")
    if resp.is_redirect:
        where = resp.headers.get("location", "(no Location)")
        return _fail("worker.status",
                     f"{resp.url} answers {resp.status} redirecting to {where}: the worker "
                     "script is behind a redirect, which browsers refuse",
                     "serve the worker directly at this URL: no http->https, www, "
                     "trailing-slash or login redirect on this path")
    if resp.status != 200:
        return _fail("worker.status", f"{resp.url} answers {resp.status}, not 200",
                     "serve the exported serviceworker.js at this URL, without "
                     "authentication (update checks run with no page open)")
    return _pass("worker.status", f"{resp.url} answers 200 with no redirect")


def check_worker_headers(sw_url: str, headers: Mapping[str, str], scope_url: str,
                         *, context: str | None = None) -> list[Check]:
    """Type, scope and caching of the worker, from its response headers."""
    return [
        _with_context(c, context)
        for c in (_worker_mime(headers), _worker_scope(sw_url, headers, scope_url),
                  _worker_cache(headers))
    ]


def _with_context(c: Check, context: str | None) -> Check:
    return c if context is None else Check(c.id, c.status, c.message, c.fix, context)


def _worker_mime(headers: Mapping[str, str]) -> Check:
    value = headers.get("content-type")
    if value is None:
        return _fail("worker.mime", "the worker is served with no Content-Type: browsers "
                                    "refuse to register it (SecurityError)",
                     "serve it as Content-Type: text/javascript; charset=utf-8")
    if _essence(value) in JS_TYPES:
        return _pass("worker.mime", f"served as {value}, a JavaScript type")
    return _fail("worker.mime", f"the worker is served as {value}, not a JavaScript type: "
                                "registration fails with SecurityError",
                 "serve it as Content-Type: text/javascript; charset=utf-8 (the export's "
                 "server configuration does this)")


def _worker_scope(sw_url: str, headers: Mapping[str, str], scope_url: str) -> Check:
    allowed = headers.get("service-worker-allowed")
    if allowed:
        max_scope = urljoin(sw_url, allowed.strip())
        if urlsplit(max_scope)[:2] != urlsplit(sw_url)[:2]:
            return _fail("worker.scope", f"Service-Worker-Allowed: {allowed} is another "
                                         "origin, which browsers reject",
                         "send a same-origin path, e.g. Service-Worker-Allowed: /")
        how = f"Service-Worker-Allowed: {allowed}"
    else:
        max_scope = sw_url[: sw_url.rfind("/") + 1]
        how = "the worker's folder (no Service-Worker-Allowed header)"
    want = urlsplit(scope_url).path or "/"
    limit = urlsplit(max_scope).path or "/"
    if want.startswith(limit):
        return _pass("worker.scope", f"scope {want} is within {how}")
    return _fail("worker.scope",
                 f"the worker may only control {limit} ({how}), not the intended scope {want}",
                 f"send Service-Worker-Allowed: {want} with the worker, or serve the worker "
                 f"from {want}")


def _cache_directives(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in value.split(","):
        name, _, arg = part.strip().partition("=")
        if name:
            out[name.strip().lower()] = arg.strip().strip('"')
    return out


def _worker_cache(headers: Mapping[str, str]) -> Check:
    fix = ("serve the worker with Cache-Control: no-cache, so caches revalidate and browsers "
           "see a new worker as soon as it changes")
    value = headers.get("cache-control")
    if value is None:
        expires = headers.get("expires")
        if expires:
            when = email.utils.parsedate_to_datetime(expires) if _parsable(expires) else None
            if when is not None and when.timestamp() > time.time() + 60:
                return _fail("worker.cache", f"Expires: {expires} lets caches keep an old "
                                             "worker", fix)
        return _warn("worker.cache", "no Cache-Control: CDNs and proxies may cache the "
                                     "worker heuristically", fix)
    d = _cache_directives(value)
    if "no-cache" in d or "no-store" in d:
        return _pass("worker.cache", f"Cache-Control: {value}")
    ages = []
    for name in ("max-age", "s-maxage"):
        if name in d:
            try:
                ages.append(int(d[name]))
            except ValueError:
                ages.append(0)
    if any(a > 0 for a in ages) or "immutable" in d:
        longest = max(ages, default=0)
        return _fail("worker.cache", f"Cache-Control: {value} lets caches keep an old worker "
                                     f"for up to {longest} s (browsers honoured up to 24 h "
                                     "before Chrome 68; CDNs and proxies still do)", fix)
    if ages:
        return _pass("worker.cache", f"Cache-Control: {value}")
    return _warn("worker.cache", f"Cache-Control: {value} has no no-cache or max-age=0", fix)


def _parsable(value: str) -> bool:
    try:
        email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return False
    return True


# --------------------------------------------------------------------------------------
# checks: the service worker body (the MoEngage import)
# --------------------------------------------------------------------------------------


def _describe_import(url: str) -> str:
    m = _MOENGAGE_VERSIONED.search(url)
    if m:
        return f"data centre {m.group(1)}, SDK version {m.group(2)}"
    if url == MOENGAGE_LEGACY_SW_URL or "/webpush/releases/" in url:
        return "the seed's legacy latest path"
    return "a custom URL"


def _imports_constant(text: str, url: str) -> bool:
    literals = {json.dumps(url), "'" + url + "'", str(js_literal(url))}
    return any(re.search(r"importScripts\s*\(\s*" + re.escape(lit) + r"\s*\)", text)
               for lit in literals)


def check_worker_body(body: bytes, settings: Settings, prefix: str = "") -> list[Check]:
    """The MoEngage import: present when configured, matching the settings, constant."""
    text = body.decode("utf-8", errors="replace")
    expected = settings.sw_import_url
    if expected is not None and expected.startswith("/") and not expected.startswith("//"):
        expected = prefix + expected
    found = find_moengage_imports(text)
    dynamic = [i for i in found if not i.is_constant]
    checks: list[Check] = []
    target = f"importScripts({json.dumps(expected)})" if expected else "a constant URL"
    if dynamic:
        imp = dynamic[0]
        checks.append(_fail(
            "worker.import-constant",
            f"line {imp.line}: importScripts({' '.join(imp.expression.split())}) builds its "
            "URL at run time (the seed's daily ?date= cache-buster): once the date changes, "
            "the installed worker fails to start (importScripts() of new scripts after "
            "installation is not allowed) and pushes are lost",
            f"replace it with {target}; {_SEED_FIX} does that",
        ))
    elif found:
        checks.append(_pass("worker.import-constant", "the MoEngage importScripts URL is a "
                                                      "constant string"))
    if expected is None:
        if found:
            checks.append(_warn("worker.moengage-import",
                                "the worker imports MoEngage, but the settings configure no "
                                "MoEngage (moengage_app_id is unset)",
                                "pass the site's settings with --config, or remove the import"))
        else:
            checks.append(_pass("worker.moengage-import", "no MoEngage import, as configured"))
        return checks
    constant = [i.url for i in found if i.is_constant and i.url]
    if expected in constant or _imports_constant(text, expected):
        checks.append(_pass("worker.moengage-import",
                            f"imports {expected} ({_describe_import(expected)})"))
    elif constant:
        checks.append(_fail(
            "worker.moengage-import",
            f"the worker imports {constant[0]} ({_describe_import(constant[0])}), but the "
            f"settings expect {expected} ({_describe_import(expected)})",
            f"export again with these settings, or merge your own worker with {_SEED_FIX}",
        ))
    elif not dynamic:
        checks.append(_fail(
            "worker.moengage-import",
            "the worker has no importScripts line for MoEngage: MoEngage pushes will not show",
            f"put {target} first in the worker; {_SEED_FIX} does that",
        ))
    return checks


# --------------------------------------------------------------------------------------
# checks: the worker's Content-Security-Policy against its importScripts URLs
# --------------------------------------------------------------------------------------
#
# A worker's policy comes from the headers of its own script response (WEB-PUSH-RULES
# section 1.8), so a site-wide CSP sent on every path also governs the worker's
# importScripts. Those requests have the destination "script", whose effective directive is
# script-src-elem, falling back to script-src, then default-src (CSP3 6.8.1 and 6.8.3);
# worker-src governs registering the worker, not what it imports. Only the first of these
# present in a policy runs. The script pre-request check (CSP3 6.7.1.1) allows a request
# whose nonce or integrity metadata matches: importScripts sends neither, so nonces and
# hashes never allow it; 'strict-dynamic' allows every request that is not parser-inserted,
# which importScripts never is (Chromium agrees: see tests/test_doctor_csp.py). Then the URL
# is matched against the source list (CSP3 6.7.2.5-6.7.2.11) in the worker's origin: '*',
# scheme sources (http: also matches https:), host sources with optional scheme, *. prefix,
# port and path, and 'self'. 'unsafe-inline', 'unsafe-eval' and the other keywords allow no
# URL; 'none' alone matches nothing; a directive with no value, or only invalid
# expressions, matches nothing. Every enforced policy must allow the import (each one can
# block it); Content-Security-Policy-Report-Only only reports, so it only warns here.

_SCRIPT_FALLBACK: Final = ("script-src-elem", "script-src", "default-src")
_CONNECT_FALLBACK: Final = ("connect-src", "default-src")
_DEFAULT_PORTS: Final = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}
_SCHEME_SOURCE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_HOST_SOURCE: Final = re.compile(
    r"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?"
    r"(?P<host>\*|(?:\*\.)?[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)"
    r"(?::(?P<port>[0-9]+|\*))?"
    r"(?P<path>/[^?#]*)?"
)
_IPV4: Final = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")
_ASCII_WS: Final = "\t\n\f\r "
_LEADING_LITERAL: Final = re.compile(r"""(?:^|,)\s*(["'`])((?:\\.|(?!\1)[^\\])*)\1""", re.S)


@dataclass(frozen=True)
class _Url:
    """A URL as CSP matching sees it: lower-case scheme and host, port None when default."""

    text: str
    scheme: str
    host: str | None
    port: int | None
    path: str

    @property
    def origin(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.scheme}://{self.host}{port}" if self.host else f"{self.scheme}:"


def _parse_url(url: str) -> _Url | None:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not scheme:
        return None
    if port is not None and _DEFAULT_PORTS.get(scheme) == port:
        port = None
    path = parts.path or ("/" if parts.netloc else "")
    return _Url(url, scheme, parts.hostname, port, path)


def parse_csp_list(value: str) -> list[dict[str, list[str]]]:
    """A serialized CSP list (one header, or several joined with commas) as policies, each a
    map of lower-case directive name to its source expressions (CSP3 2.2.1 and 2.2.2): the
    first of a repeated directive wins, tokens with non-ASCII characters are skipped, and a
    policy with no directives is dropped. Never raises."""
    policies: list[dict[str, list[str]]] = []
    for serialized in value.split(","):
        policy: dict[str, list[str]] = {}
        for token in serialized.split(";"):
            token = token.strip(_ASCII_WS)
            if not token or not token.isascii():
                continue
            words = token.split()
            name = words[0].lower()
            if name not in policy:
                policy[name] = words[1:]
        if policy:
            policies.append(policy)
    return policies


def _scheme_part_matches(a: str, b: str) -> bool:
    a, b = a.lower(), b.lower()
    return (a == b or (a == "http" and b == "https")
            or (a == "ws" and b in ("wss", "http", "https")) or (a == "wss" and b == "https"))


def _host_part_matches(pattern: str, host: str) -> bool:
    pattern, host = pattern.lower(), host.lower()
    if pattern.startswith("*"):
        return host.endswith(pattern[1:])
    if pattern != host:
        return False
    return not (_IPV4.fullmatch(pattern) and pattern != "127.0.0.1")


def _port_part_matches(port_part: str | None, url: _Url) -> bool:
    if port_part == "*":
        return True
    wanted = int(port_part) if port_part else None
    default = _DEFAULT_PORTS.get(url.scheme)
    actual = url.port
    if wanted is None:
        return actual is None or actual == default
    return wanted == actual or (actual is None and wanted == default)


def _path_part_matches(path_a: str, path_b: str) -> bool:
    if not path_a or (path_a == "/" and not path_b):
        return True
    exact = not path_a.endswith("/")
    list_a, list_b = path_a.split("/"), path_b.split("/")
    if len(list_a) > len(list_b) or (exact and len(list_a) != len(list_b)):
        return False
    if not exact:
        list_a = list_a[:-1]
    return all(unquote(a) == unquote(b) for a, b in zip(list_a, list_b, strict=False))


def _expression_matches(url: _Url, expression: str, origin: _Url) -> bool:
    """CSP3 6.7.2.6, "Does url match expression in origin with redirect count" (count 0)."""
    if expression == "*":
        return url.scheme in ("http", "https") or url.scheme == origin.scheme
    scheme_source = _SCHEME_SOURCE.fullmatch(expression)
    if scheme_source:
        return _scheme_part_matches(scheme_source.group(1), url.scheme)
    host_source = _HOST_SOURCE.fullmatch(expression)
    if host_source:
        scheme = host_source.group("scheme")
        if scheme is not None and not _scheme_part_matches(scheme, url.scheme):
            return False
        if url.host is None:
            return False
        if scheme is None and not _scheme_part_matches(origin.scheme, url.scheme):
            return False
        if not _host_part_matches(host_source.group("host"), url.host):
            return False
        if not _port_part_matches(host_source.group("port"), url):
            return False
        path = host_source.group("path")
        return not path or _path_part_matches(path, url.path)
    if expression.lower() == "'self'":
        if (url.scheme, url.host, url.port) == (origin.scheme, origin.host, origin.port):
            return True
        # Ports "the same or the default ports for their schemes": both None once parsed.
        return (url.host == origin.host and url.port == origin.port
                and (url.scheme in ("https", "wss")
                     or (origin.scheme == "http" and url.scheme in ("http", "ws"))))
    return False


def _source_list_matches(url: _Url, sources: list[str], origin: _Url) -> bool:
    if not sources or (len(sources) == 1 and sources[0].lower() == "'none'"):
        return False
    return any(_expression_matches(url, e, origin) for e in sources)


def _governing(policy: Mapping[str, list[str]],
               fallback: tuple[str, ...]) -> tuple[str, list[str]] | None:
    for name in fallback:
        if name in policy:
            return name, policy[name]
    return None


def _blocking_directive(policy: Mapping[str, list[str]], url: _Url, origin: _Url, *,
                        script: bool) -> tuple[str, list[str]] | None:
    """The directive of ``policy`` that blocks a request for ``url`` from the worker: an
    importScripts (``script``) or a fetch (connect-src). None when it is allowed."""
    governing = _governing(policy, _SCRIPT_FALLBACK if script else _CONNECT_FALLBACK)
    if governing is None:
        return None
    sources = governing[1]
    if script and any(s.lower() == "'strict-dynamic'" for s in sources):
        return None  # importScripts is never parser-inserted
    return None if _source_list_matches(url, sources, origin) else governing


def worker_import_urls(body: bytes, sw_url: str) -> tuple[list[str], list[str]]:
    """The absolute URLs the worker's ``importScripts`` calls load (a call that builds its
    URL at run time counts by its leading string literal, which fixes the origin), and the
    argument lists whose URL cannot be read at all."""
    text = body.decode("utf-8", errors="replace")
    urls: list[str] = []
    unreadable: list[str] = []
    for imp in _find_imports(text, _tokens(text)):
        literals = [imp.url] if imp.is_constant and imp.url else [
            _js_string_value(m.group(1) + m.group(2) + m.group(1))
            for m in _LEADING_LITERAL.finditer(imp.expression)]
        found = [lit for lit in literals if lit]
        if not found:
            unreadable.append(" ".join(imp.expression.split()) or "()")
        for literal in found:
            absolute = urljoin(sw_url, literal)
            if absolute not in urls:
                urls.append(absolute)
    return urls, unreadable


def _csp_header_values(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    return value if value is not None and value.strip(_ASCII_WS + ",") else None


def check_worker_csp(sw_url: str, headers: Mapping[str, str], body: bytes,
                     settings: Settings | None = None) -> list[Check]:
    """Whether the Content-Security-Policy sent with the worker lets it import its scripts
    (``worker.csp``; Report-Only: ``worker.csp-report-only``, a warning at most), and, for a
    worker that imports MoEngage, whether it lets the worker reach MoEngage's API
    (``worker.csp-connect``, a warning: which hosts MoEngage's worker code calls is
    MoEngage's business, its CSP guide names sdk-0N.moengage.com)."""
    origin = _parse_url(sw_url)
    enforced = _csp_header_values(headers, "content-security-policy")
    report_only = _csp_header_values(headers, "content-security-policy-report-only")
    if origin is None or (enforced is None and report_only is None):
        return [_pass("worker.csp", "no Content-Security-Policy on the worker: nothing "
                                    "restricts its importScripts")]
    urls, unreadable = worker_import_urls(body, sw_url)
    parsed = [u for u in (_parse_url(x) for x in urls) if u is not None]
    sw_path = urlsplit(sw_url).path or "/"
    checks: list[Check] = []
    for header, value, disposition in (
        ("Content-Security-Policy", enforced, "enforce"),
        ("Content-Security-Policy-Report-Only", report_only, "report"),
    ):
        if value is None:
            continue
        check_id = "worker.csp" if disposition == "enforce" else "worker.csp-report-only"
        checks.append(_script_policy_check(check_id, header, value, disposition, parsed,
                                           unreadable, origin, sw_path))
        connect = _connect_policy_check(header, value, disposition, parsed, origin,
                                        settings)
        if connect is not None:
            checks.append(connect)
    return checks


def _csp_fix(url: _Url, name: str, sources: list[str], sw_path: str) -> str:
    if name == "default-src":
        add = (f"add a script-src that lists {url.origin} (a script-src replaces default-src "
               f"for scripts, so repeat its sources: script-src {' '.join(sources)} "
               f"{url.origin}), or add {url.origin} to default-src")
    else:
        add = f"add {url.origin} to {name} ({name} {' '.join(sources)} {url.origin})"
    return (f"{add}; or send {sw_path} with its own policy, exempt from the site-wide one "
            "(Flask-Talisman: list the origin in content_security_policy's script-src, or "
            "give the worker's view its own policy with Talisman's per-view options; nginx: "
            f"an add_header in the `location = {sw_path}` block replaces the server's)")


def _pushes_stop(url: _Url) -> str:
    return ", so MoEngage pushes stop" if url.host == "cdn.moengage.com" else ""


def _describe_directive(name: str, sources: list[str]) -> str:
    shown = " ".join(sources) if sources else "(empty: matches nothing)"
    note = " (there is no script-src)" if name == "default-src" else ""
    return f"{name} {shown}{note}"


def _script_policy_check(check_id: str, header: str, value: str, disposition: str,
                         urls: list[_Url], unreadable: list[str], origin: _Url,
                         sw_path: str) -> Check:
    policies = parse_csp_list(value)
    skipped = (f"; not checked: importScripts({unreadable[0]}), whose URL is built at run "
               "time") if unreadable else ""
    if not policies:
        return Check(check_id, "pass" if disposition == "enforce" else "warn",
                     f"{header}: {value[:120]!r} has no directive a browser can read, so it "
                     "restricts nothing" + skipped,
                     None if disposition == "enforce" else "fix or remove the header")
    if not urls:
        return _pass(check_id, f"{header} is sent with the worker; the worker imports no "
                               f"script it could block{skipped}")
    for url in urls:
        for i, policy in enumerate(policies, 1):
            blocked = _blocking_directive(policy, url, origin, script=True)
            if blocked is None:
                continue
            name, sources = blocked
            which = f"policy {i} of {len(policies)}: " if len(policies) > 1 else ""
            fix = _csp_fix(url, name, sources, sw_path)
            if disposition == "enforce":
                return _fail(check_id,
                             f"the worker's {header} ({which}"
                             f"{_describe_directive(name, sources)}) blocks "
                             f"importScripts({url.text}): the import throws and the "
                             f"worker fails to install{_pushes_stop(url)}", fix)
            return _warn(check_id,
                         f"the worker's {header} ({which}{_describe_directive(name, sources)})"
                         f" would block importScripts({url.text}); it only reports now, but "
                         "enforced it would stop the worker from installing", fix)
    allowed = ", ".join(u.origin for u in urls)
    return _pass(check_id, f"{header} on the worker allows its importScripts from "
                           f"{allowed}{skipped}")


def _moengage_api_url(urls: list[_Url], settings: Settings | None) -> _Url | None:
    if not any(u.host == "cdn.moengage.com" for u in urls):
        return None
    dc = settings.moengage_data_center if settings is not None else "dc_1"
    for u in urls:
        m = _MOENGAGE_VERSIONED.search(u.path) or re.search(r"/release/(dc_[0-9]+)/", u.path)
        if m:
            dc = m.group(1)
    number = dc.removeprefix("dc_")
    return _parse_url(f"https://sdk-{int(number):02d}.moengage.com/") if number.isdigit() \
        else None


def _connect_policy_check(header: str, value: str, disposition: str, urls: list[_Url],
                          origin: _Url, settings: Settings | None) -> Check | None:
    api = _moengage_api_url(urls, settings)
    if api is None:
        return None
    for policy in parse_csp_list(value):
        blocked = _blocking_directive(policy, api, origin, script=False)
        if blocked is None:
            continue
        name, sources = blocked
        kind = "" if disposition == "enforce" else " (report-only)"
        return _warn("worker.csp-connect",
                     f"the worker's {header}{kind} ({_describe_directive(name, sources)}) "
                     f"blocks fetch() from the worker to {api.origin}, the MoEngage API host "
                     "its CSP guide lists for connect-src: MoEngage's worker may fail to "
                     "report deliveries and clicks",
                     f"add {api.origin} (or https://*.moengage.com) to {name}, or exempt the "
                     "worker from the site-wide policy")
    return None


# --------------------------------------------------------------------------------------
# checks: the manifest
# --------------------------------------------------------------------------------------


def check_manifest_status(resp: Fetched, redirects: list[str]) -> Check:
    if resp.error is not None:
        return _fail("manifest.status", f"could not fetch {resp.url}: {resp.error}",
                     "serve the manifest at this URL")
    if resp.status != 200:
        return _fail("manifest.status", f"{resp.url} answers {resp.status}, not 200",
                     "serve the manifest without authentication (it is fetched without "
                     "cookies unless the link says crossorigin=\"use-credentials\")")
    if redirects:
        return _warn("manifest.status", f"reached through a redirect from {redirects[0]}",
                     "link the manifest at its final URL")
    return _pass("manifest.status", f"{resp.url} answers 200")


def check_manifest_mime(headers: Mapping[str, str], *, context: str | None = None) -> Check:
    value = headers.get("content-type")
    essence = _essence(value) if value else ""
    if essence == "application/manifest+json":
        c = _pass("manifest.mime", f"served as {value}")
    elif essence in ("application/json", "text/json") or essence.endswith("+json"):
        c = _warn("manifest.mime", f"served as {value}; browsers accept it, but "
                                   "application/manifest+json is the registered type",
                  "serve it as Content-Type: application/manifest+json")
    else:
        c = _fail("manifest.mime", f"served as {value or 'no type'}, not a JSON type",
                  "serve it as Content-Type: application/manifest+json")
    return _with_context(c, context)


def _icon_sizes(manifest: Mapping[str, Any]) -> set[str]:
    sizes: set[str] = set()
    icons = manifest.get("icons")
    if isinstance(icons, list):
        for icon in icons:
            if isinstance(icon, dict) and isinstance(icon.get("sizes"), str):
                sizes.update(icon["sizes"].lower().split())
    return sizes


def check_manifest_body(body: bytes, settings: Settings, manifest_url: str) -> list[Check]:
    """JSON validity, installability members, iOS push readiness, ``id``, gcm_sender_id."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        return [_fail("manifest.json", f"not valid JSON: {exc.msg} at line {exc.lineno}, "
                                       f"column {exc.colno}",
                      "fix the JSON (or let webpush-kit export write the manifest)")]
    except UnicodeDecodeError:
        return [_fail("manifest.json", "not UTF-8 text", "save the manifest as UTF-8")]
    if not isinstance(data, dict):
        return [_fail("manifest.json", "the manifest is JSON but not an object {...}",
                      "make the manifest a JSON object")]
    checks = [_pass("manifest.json", "valid JSON object")]

    name = data.get("name") or data.get("short_name")
    if isinstance(name, str) and name.strip():
        checks.append(_pass("manifest.name", f"name {name!r}"))
    else:
        checks.append(_fail("manifest.name", "no name or short_name: browsers will not offer "
                                             "to install the site",
                            "add a name (setting manifest_name)"))

    icons = data.get("icons")
    sizes = _icon_sizes(data)
    if not isinstance(icons, list) or not icons:
        checks.append(_fail("manifest.icons", "the manifest has no icons: browsers will not "
                                              "offer to install the site",
                            "add 192x192 and 512x512 PNG icons (setting manifest_icons)"))
    else:
        missing = [s for s in ("192x192", "512x512") if s not in sizes]
        if not missing:
            checks.append(_pass("manifest.icons", "icons include 192x192 and 512x512"))
        elif "any" in sizes:
            checks.append(_warn("manifest.icons", "icons have sizes \"any\" but no "
                                                  f"{' or '.join(missing)} entry",
                                "add 192x192 and 512x512 PNG icons"))
        else:
            checks.append(_fail("manifest.icons", f"icons lack {' and '.join(missing)}: "
                                                  "Chrome needs both to offer installation",
                                "add 192x192 and 512x512 PNG icons (setting manifest_icons)"))

    start = data.get("start_url")
    if not isinstance(start, str) or not start:
        checks.append(_fail("manifest.start_url", "no start_url", "add \"start_url\": \"/\""))
    elif urlsplit(urljoin(manifest_url, start))[:2] != urlsplit(manifest_url)[:2]:
        checks.append(_fail("manifest.start_url", f"start_url {start} is another origin, so "
                                                  "browsers ignore it",
                            "use a root-relative path such as /"))
    else:
        checks.append(_pass("manifest.start_url", f"start_url {start}"))

    display = data.get("display")
    if display in _INSTALL_DISPLAYS:
        checks.append(_pass("manifest.display", f"display {display}"))
    else:
        checks.append(_fail("manifest.display",
                            f"display {json.dumps(display) if display else '(missing)'}: "
                            "browsers will not offer to install the site",
                            "set \"display\": \"standalone\" (setting manifest_display)"))
    if data.get("prefer_related_applications") is True:
        checks.append(_fail("manifest.prefer_related_applications",
                            "prefer_related_applications is true: Chrome offers the native "
                            "app instead of installing the site",
                            "remove prefer_related_applications"))

    ios_problems = []
    if display not in _IOS_DISPLAYS:
        ios_problems.append(f"display is {json.dumps(display) if display else 'missing'}, "
                            "not standalone or fullscreen")
    if not isinstance(icons, list) or not icons:
        ios_problems.append("there are no icons for the Home Screen")
    if ios_problems:
        checks.append(_fail("manifest.ios",
                            "iOS and iPadOS deliver web push only to Home Screen web apps: "
                            + "; ".join(ios_problems),
                            "set display standalone and add icons"))
    else:
        checks.append(_pass("manifest.ios", "ready for iOS 16.4+ Home Screen web push"))

    if isinstance(data.get("id"), str) and data["id"]:
        checks.append(_pass("manifest.id", f"id {data['id']}"))
    else:
        checks.append(_fail("manifest.id", "no id: browsers take start_url as the app's "
                                           "identity, so changing start_url later makes a "
                                           "new app for every installed user",
                            "add \"id\": \"/\" (setting manifest_id)"))

    want = settings.gcm_sender_id
    have = data.get("gcm_sender_id")
    have_s = str(have) if have is not None else None
    if want is not None:
        if have_s == want:
            checks.append(_pass("manifest.gcm_sender_id", f"gcm_sender_id {want}, as "
                                                          "configured"))
        else:
            seen = f"is {have_s}" if have_s is not None else "is missing"
            checks.append(_fail("manifest.gcm_sender_id",
                                f"gcm_sender_id {seen}; the settings say {want}",
                                "export again, or merge it into your own manifest with "
                                "`webpush-kit export --merge-manifest PATH`"))
    elif have_s is not None:
        checks.append(_warn("manifest.gcm_sender_id",
                            f"the manifest has gcm_sender_id {have_s} but the settings set "
                            "none (it is obsolete with VAPID)",
                            "set gcm_sender_id in the settings if MoEngage needs it, or "
                            "remove it from the manifest"))
    else:
        checks.append(_pass("manifest.gcm_sender_id", "no gcm_sender_id, as configured"))
    return checks


# --------------------------------------------------------------------------------------
# checks: the page's <link rel="manifest">
# --------------------------------------------------------------------------------------


def _rel_tokens(el: Any) -> list[str]:
    rel = el.get("rel") or []
    if isinstance(rel, str):
        rel = rel.split()
    return [r.lower() for r in rel]


def check_page(html: bytes, page_url: str, manifest_url: str) -> tuple[list[Check], str | None]:
    """The first manifest link that is a direct child of ``<head>`` (the one Chromium uses),
    parsed by html5lib as a browser would. Returns the checks and that link's URL."""
    try:
        from bs4 import BeautifulSoup
    except ImportError:
        return [_warn("page.manifest-link", "cannot parse the page: beautifulsoup4 and "
                                            "html5lib are not installed",
                      "pip install beautifulsoup4 html5lib")], None
    try:
        soup = BeautifulSoup(html, "html5lib")
    except Exception as exc:  # bs4 raises FeatureNotFound (a ValueError) without html5lib
        return [_warn("page.manifest-link", f"cannot parse the page: {exc}",
                      "pip install beautifulsoup4 html5lib")], None
    head = soup.head
    in_head = [el for el in (head.find_all("link", recursive=False) if head else [])
               if "manifest" in _rel_tokens(el)]
    anywhere = [el for el in soup.find_all("link") if "manifest" in _rel_tokens(el)]
    if not in_head:
        if anywhere:
            parent = anywhere[0].parent.name if anywhere[0].parent else "?"
            return [_fail("page.manifest-link",
                          f"the page's <link rel=\"manifest\"> sits in <{parent}>, not directly "
                          "in <head>: Chromium ignores it",
                          "move the link into <head>, before any text or body element (those "
                          "close the head early); --patch-html places it correctly")], None
        return [_fail("page.manifest-link", "the page has no <link rel=\"manifest\"> in <head>",
                      "add the head snippet to every page: `webpush-kit export --patch-html "
                      "'site/**/*.html'`, or paste head-snippet.html into <head>")], None
    first = in_head[0]
    href = first.get("href")
    if not isinstance(href, str) or not href.strip():
        return [_fail("page.manifest-link", "the first manifest link in <head> has no href",
                      "give it href=\"/manifest.json\"")], None
    linked = urljoin(page_url, href.strip())
    checks = [_pass("page.manifest-link", "a <link rel=\"manifest\"> is a direct child of "
                                          "<head>")]
    if linked.split("#", 1)[0] != manifest_url:
        checks.append(_fail("page.manifest-first",
                            f"the first manifest link in <head> points to {linked}; Chromium "
                            f"uses it, not {manifest_url}",
                            "remove the earlier link, or set manifest_path to its path if "
                            "that is the manifest you merged into"))
    else:
        extra = len(in_head) - 1
        note = f" ({extra} later manifest link(s) are ignored)" if extra else ""
        checks.append(_pass("page.manifest-first", f"ours is the first manifest link{note}"))
    return checks, linked.split("#", 1)[0]


# --------------------------------------------------------------------------------------
# server configuration files from the export (folder targets)
# --------------------------------------------------------------------------------------

# What each server sends for these extensions when nothing overrides it.
_DEFAULT_TYPES: Final = {".js": "application/javascript", ".json": "application/json",
                         ".webmanifest": "application/manifest+json"}
_QUOTED: Final = r"(\"[^\"]*\"|'[^']*'|[^\s;\"']+)"


def _unquote_token(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def served_headers(server: str, config: str, path: str) -> dict[str, str] | None:
    """Headers the server would send for URL ``path`` according to our configuration file
    (``None`` when the file has no section for it). Reads the format the export writes."""
    if server == "nginx":
        for m in re.finditer(r"location\s*=\s*" + _QUOTED + r"\s*\{(.*?)\n\}", config, re.S):
            if _unquote_token(m.group(1)) != path:
                continue
            block = m.group(2)
            headers: dict[str, str] = {}
            dt = re.search(r"^\s*default_type\s+" + _QUOTED + r"\s*;", block, re.M)
            if re.search(r"^\s*types\s*\{\s*\}", block, re.M) and dt:
                headers["content-type"] = _unquote_token(dt.group(1))
            else:
                headers["content-type"] = _DEFAULT_TYPES.get(Path(path).suffix,
                                                             "application/octet-stream")
            for h in re.finditer(r"^\s*add_header\s+(\S+)\s+" + _QUOTED, block, re.M):
                headers[h.group(1).lower()] = _unquote_token(h.group(2))
            ex = re.search(r"^\s*expires\s+(\S+?)\s*;", block, re.M)
            if ex and ex.group(1) not in ("off", "epoch") and "cache-control" not in headers:
                headers["cache-control"] = f"max-age={_nginx_seconds(ex.group(1))}"
            return headers
        return None
    if server == "apache":
        for m in re.finditer(r"<If\s+\"%\{REQUEST_URI\}\s*==\s*'([^']*)'\">(.*?)</If>",
                             config, re.S):
            if m.group(1) != path:
                continue
            block = m.group(2)
            headers = {}
            ft = re.search(r"^\s*ForceType\s+" + _QUOTED, block, re.M)
            headers["content-type"] = (_unquote_token(ft.group(1)) if ft else
                                       _DEFAULT_TYPES.get(Path(path).suffix,
                                                          "application/octet-stream"))
            for h in re.finditer(r"^\s*Header\s+(?:always\s+)?set\s+(\S+)\s+" + _QUOTED,
                                 block, re.M):
                headers[h.group(1).lower()] = _unquote_token(h.group(2))
            return headers
        return None
    if server == "caddy":
        for m in re.finditer(r"^@(\S+)\s+path\s+" + _QUOTED + r"\s*$", config, re.M):
            if _unquote_token(m.group(2)) != path:
                continue
            block = re.search(r"^header\s+@" + re.escape(m.group(1)) + r"\s*\{(.*?)\n\}",
                              config, re.S | re.M)
            headers = {"content-type": _DEFAULT_TYPES.get(Path(path).suffix,
                                                          "application/octet-stream")}
            if block:
                for h in re.finditer(r"^\s*([A-Za-z][\w-]*)\s+" + _QUOTED + r"\s*$",
                                     block.group(1), re.M):
                    headers[h.group(1).lower()] = _unquote_token(h.group(2))
            return headers
        return None
    raise ValueError(f"unknown server {server!r}")


def _nginx_seconds(value: str) -> int:
    m = re.fullmatch(r"([0-9]+)(ms|s|m|h|d|w|M|y)?", value)
    if not m:
        return 0
    n = int(m.group(1))
    unit = {"ms": 0, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000,
            "y": 31536000}.get(m.group(2) or "s", 1)
    return n * unit


# --------------------------------------------------------------------------------------
# putting it together
# --------------------------------------------------------------------------------------


def diagnose(target: str, settings: Settings | None = None, *, prefix: str | None = None,
             timeout: float = DEFAULT_TIMEOUT) -> Report:
    """Check ``target``: an ``http(s)://`` URL (a page of the site) or an export folder."""
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", target):
        return diagnose_url(target, settings, prefix=prefix or "", timeout=timeout)
    return diagnose_folder(Path(target), settings, prefix=prefix)


def diagnose_url(url: str, settings: Settings | None = None, *, prefix: str = "",
                 timeout: float = DEFAULT_TIMEOUT) -> Report:
    settings = settings if settings is not None else Settings()
    report = Report(url, "url")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        report.checks.append(_fail("target", f"{url} is not an http(s) URL",
                                   "give a page URL such as https://example.com/"))
        return report
    origin = f"{parts.scheme}://{parts.netloc}"
    bundle = render_assets(settings, prefix)
    expected_manifest = origin + bundle.manifest_url

    def get(u: str, **headers: str) -> Fetched:
        return fetch(u, timeout=timeout, headers=headers)

    report.checks.append(check_https(url))

    # The page and its manifest link.
    page, hops = _follow(url, lambda u: get(u, Accept="text/html"))
    linked: str | None = None
    if page.error is not None or page.status != 200:
        why = page.error or f"status {page.status}"
        report.checks.append(_fail("page.fetch", f"could not load the page {page.url}: {why}",
                                   "give the URL of a page of the site that answers 200"))
    else:
        note = f" (after redirects from {hops[0]})" if hops else ""
        ctype = page.mime_essence or ""
        if ctype not in ("text/html", "application/xhtml+xml"):
            report.checks.append(_fail("page.fetch", f"{page.url} is {ctype or 'untyped'}, not "
                                                     "an HTML page",
                                       "give the URL of an HTML page of the site"))
        else:
            report.checks.append(_pass("page.fetch", f"loaded {page.url}{note}"))
            page_checks, linked = check_page(page.body, page.url, expected_manifest)
            report.checks.extend(page_checks)

    # The worker: fetched as a browser does, redirects not followed.
    sw_url = origin + bundle.sw_url
    sw = get(sw_url, **{"Service-Worker": "script", "Accept": "*/*"})
    status = check_worker_status(sw)
    report.checks.append(status)
    if status.status == "pass":
        report.checks.extend(check_worker_headers(sw_url, sw.headers, origin + bundle.scope))
        report.checks.extend(check_worker_body(sw.body, settings, bundle.prefix))
        report.checks.extend(check_worker_csp(sw_url, sw.headers, sw.body, settings))
    else:
        report.checks.append(_skip("worker.mime", "the worker was not fetched"))

    # The manifest Chromium would use: the page's first link, else ours.
    manifest_url = linked or expected_manifest
    manifest, hops = _follow(manifest_url, lambda u: get(u, Accept="application/manifest+json"))
    mstatus = check_manifest_status(manifest, hops)
    report.checks.append(mstatus)
    if mstatus.status != "fail":
        report.checks.append(check_manifest_mime(manifest.headers))
        report.checks.extend(check_manifest_body(manifest.body, settings, manifest.url))
    return report


def diagnose_folder(root: Path, settings: Settings | None = None, *,
                    prefix: str | None = None) -> Report:
    """Check an export folder: its files, and the headers its server configurations give."""
    settings = settings if settings is not None else Settings()
    root = Path(root)
    report = Report(str(root), "folder")
    if not root.is_dir():
        report.checks.append(_fail("target", f"{root} is neither an http(s) URL nor a folder",
                                   "give a page URL or the folder `webpush-kit export` wrote"))
        return report
    if prefix is None:
        recorded = read_export_state(root).get("prefix", "")
        prefix = recorded if isinstance(recorded, str) else ""
    bundle = render_assets(settings, prefix)
    base = "https://site.example"  # stands in for the origin when resolving URLs
    report.checks.append(_skip("https", "a folder has no URL; run doctor against the live "
                                        "site as well"))

    sw_file = root / url_to_relpath(bundle.sw_url)
    manifest_file = root / url_to_relpath(bundle.manifest_url)
    sw_body = _read_file(sw_file)
    manifest_body = _read_file(manifest_file)
    if sw_body is None:
        report.checks.append(_fail("worker.status", f"{sw_file} is missing",
                                   "run `webpush-kit export --config FILE --out "
                                   f"{root}`"))
    else:
        report.checks.append(_pass("worker.status", f"{sw_file} exists"))
    if manifest_body is None:
        report.checks.append(_fail("manifest.status", f"{manifest_file} is missing",
                                   f"run `webpush-kit export --config FILE --out {root}` "
                                   "(or link your own merged manifest)"))
    else:
        report.checks.append(_pass("manifest.status", f"{manifest_file} exists"))

    report.checks.extend(_server_checks(root, bundle, base))

    if sw_body is not None:
        report.checks.extend(check_worker_body(sw_body, settings, bundle.prefix))
    if manifest_body is not None:
        report.checks.extend(check_manifest_body(manifest_body, settings,
                                                 base + bundle.manifest_url))
    report.checks.extend(_folder_pages(root, bundle, base))
    return report


def _read_file(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _prefix_folder(root: Path, bundle: AssetBundle) -> Path:
    rel = bundle.prefix.strip("/")
    return root / url_to_relpath("/" + rel) if rel else root


def _server_checks(root: Path, bundle: AssetBundle, base: str) -> list[Check]:
    checks: list[Check] = []
    folder = _prefix_folder(root, bundle)
    found = False
    for server in SERVERS:
        path = folder / server_config_name(server)
        try:
            config = path.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            continue
        found = True
        sw = served_headers(server, config, _decoded(bundle.sw_url))
        manifest = served_headers(server, config, _decoded(bundle.manifest_url))
        if sw is None:
            checks.append(Check("worker.mime", "fail", f"{path.name} has no section for "
                                f"{bundle.sw_url}", "run the export again", server))
        else:
            checks.extend(check_worker_headers(base + bundle.sw_url, sw, base + bundle.scope,
                                               context=server))
        if manifest is None:
            checks.append(Check("manifest.mime", "fail", f"{path.name} has no section for "
                                f"{bundle.manifest_url}", "run the export again", server))
        else:
            checks.append(check_manifest_mime(manifest, context=server))
    if not found:
        checks.append(_fail("server.config", f"no server configuration in {folder} "
                                             "(webpush-kit.nginx.conf, .htaccess, "
                                             "webpush-kit.Caddyfile)",
                            "run `webpush-kit export`, which writes them"))
    return checks


def _decoded(url_path: str) -> str:
    return "/" + url_to_relpath(url_path)


def _folder_pages(root: Path, bundle: AssetBundle, base: str) -> list[Check]:
    checks: list[Check] = []
    folder = _prefix_folder(root, bundle)
    snippet = _read_file(folder / HEAD_SNIPPET_FILE)
    expected = base + bundle.manifest_url
    if snippet is not None:
        page = b"<!doctype html><html><head>" + snippet + b"</head><body></body></html>"
        page_checks, _ = check_page(page, base + bundle.prefix + "/", expected)
        checks.extend(_with_context(c, HEAD_SNIPPET_FILE) for c in page_checks)
    index = _read_file(folder / "index.html")
    if index is not None:
        page_checks, _ = check_page(index, base + bundle.prefix + "/", expected)
        checks.extend(_with_context(c, "index.html") for c in page_checks)
    if snippet is None and index is None:
        checks.append(_skip("page.manifest-link", "no head-snippet.html or index.html to "
                                                  "check"))
    return checks
