"""Render the files a site serves for web push, once per settings and URL prefix.

``render_assets(settings, prefix)`` turns validated settings into immutable ``Asset``s
(body bytes, content type, strong ETag, headers). The Flask blueprint serves them and
``webpush-kit export`` writes them to disk, so both give the same bytes. Rendering is
deterministic (no timestamps): browsers install a new service worker only when its bytes
change, so identical settings must give identical bytes.

Every value reaches a template already serialised for its context: JSON (with ``<``,
``>``, ``&``, U+2028 and U+2029 escaped) for JavaScript and JSON, HTML-escaped for
attributes. Nothing is concatenated into code.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup

from webpush_kit import __version__
from webpush_kit.settings import Settings

JS_TYPE = "text/javascript; charset=utf-8"
MANIFEST_TYPE = "application/manifest+json"
NO_CACHE = "no-cache"


def templates_dir() -> Path:
    """The Jinja2 sources: inside the installed package, or the checkout's ``templates/``."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "serviceworker.js.j2").is_file():
            return candidate
    raise RuntimeError(
        f"webpush_kit templates not found next to {here}: reinstall the package "
        "(the wheel ships them as webpush_kit/templates)"
    )


_SCRIPT_SAFE = str.maketrans({
    "<": "\\u003c", ">": "\\u003e", "&": "\\u0026",
    "\u2028": "\\u2028", "\u2029": "\\u2029",
})


def _script_safe(text: str) -> str:
    """JSON text that cannot close a ``<script>`` or break a line in older JavaScript."""
    return text.translate(_SCRIPT_SAFE)


def js_literal(value: Any) -> Markup:
    """Serialise a value for a JavaScript (or JSON) context, safe inside <script> too."""
    text = json.dumps(value, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return Markup(_script_safe(text))


def json_document(value: Any) -> Markup:
    """A readable JSON document (the manifest): UTF-8, two-space indent, no escaping of
    non-ASCII names; ``<`` and friends escaped as in :func:`js_literal` for inline use."""
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, indent=2)
    return Markup(_script_safe(text) + "\n")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.fspath(templates_dir())),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html", "html.j2")),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["js"] = js_literal
    env.filters["json_document"] = json_document
    return env


def render_template(name: str, **context: Any) -> str:
    return environment().get_template(name).render(version=__version__, **context)


@dataclass(frozen=True)
class Asset:
    """One served file. ``path`` includes the URL prefix the app is mounted under."""

    name: str
    path: str
    body: bytes
    content_type: str
    headers: tuple[tuple[str, str], ...] = ()
    etag: str = field(init=False)
    _all_headers: tuple[tuple[str, str], ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        digest = hashlib.sha256(self.body).hexdigest()[:32]
        object.__setattr__(self, "etag", digest)
        # Built once: the blueprint sends them with every request.
        object.__setattr__(self, "_all_headers", (
            ("Content-Type", self.content_type),
            ("ETag", f'"{digest}"'),
            ("Cache-Control", NO_CACHE),
            ("X-Content-Type-Options", "nosniff"),
            *self.headers,
        ))

    def all_headers(self) -> tuple[tuple[str, str], ...]:
        """Headers to send with a 200 (and, minus Content-Type, with a 304)."""
        return self._all_headers


@dataclass(frozen=True)
class AssetBundle:
    """Everything rendered for one (settings, prefix) pair."""

    settings: Settings
    prefix: str
    manifest: Asset
    serviceworker: Asset
    client: Asset
    manifest_url: str
    client_url: str
    sw_url: str
    scope: str
    api_url: str
    head_snippet: bytes

    @property
    def assets(self) -> tuple[Asset, Asset, Asset]:
        return (self.manifest, self.serviceworker, self.client)

    def head(self, *, nonce: str | None = None, user_token: str | None = None) -> bytes:
        """The ``<head>`` snippet; per-request values (CSP nonce, signed user token) make a
        fresh render, the common case reuses the one rendered with the bundle."""
        if nonce is None and user_token is None:
            return self.head_snippet
        return _render_head(self, nonce=nonce, user_token=user_token)


def _prefixed(prefix: str, path: str) -> str:
    return prefix + path if path.startswith("/") else path


def normalise_prefix(script_root: str) -> str:
    """``SCRIPT_NAME`` as a URL path prefix: no trailing slash, percent-encoded ASCII."""
    root = script_root.rstrip("/")
    if root and not root.startswith("/"):
        root = "/" + root
    return quote(root, safe="/-._~!$&'()*+,;=:@%")


def manifest_members(settings: Settings, prefix: str = "") -> dict[str, Any]:
    """The manifest as a dict, members in a stable, conventional order."""
    s = settings
    m: dict[str, Any] = {}
    if s.manifest_name:
        m["name"] = s.manifest_name
    if s.manifest_short_name:
        m["short_name"] = s.manifest_short_name
    m["id"] = _prefixed(prefix, s.manifest_id)
    m["start_url"] = _prefixed(prefix, s.manifest_start_url)
    m["scope"] = _prefixed(prefix, s.manifest_scope)
    m["display"] = s.manifest_display
    if s.manifest_icons:
        m["icons"] = [
            {**dict(icon), "src": _prefixed(prefix, icon["src"])} for icon in s.manifest_icons
        ]
    if s.manifest_theme_color:
        m["theme_color"] = s.manifest_theme_color
    if s.manifest_background_color:
        m["background_color"] = s.manifest_background_color
    if s.gcm_sender_id:
        m["gcm_sender_id"] = s.gcm_sender_id
    for key, value in s.manifest_extra.items():
        m[key] = value
    return m


def _render_head(
    bundle: AssetBundle, *, nonce: str | None = None, user_token: str | None = None
) -> bytes:
    text = render_template(
        "head.html.j2",
        manifest_url=bundle.manifest_url,
        credentials=bundle.settings.manifest_use_credentials,
        client_url=bundle.client_url,
        nonce=nonce,
        user_token=user_token,
    ).strip()
    # inject_head inserts ASCII only: every URL here is percent-encoded and escaped.
    return text.encode("ascii", "xmlcharrefreplace")


def _client_config(
    s: Settings, prefix: str, sw_url: str, scope: str, api_url: str
) -> Mapping[str, Any]:
    cfg: dict[str, Any] = {
        "swUrl": sw_url,
        "scope": scope,
        "apiUrl": api_url,
        "consentRequired": s.consent_required,
        "selfHosted": s.vapid_private_key is not None,
        "maxEvents": 50,  # webpush_kit.api.MAX_EVENTS_PER_REQUEST
        "moengage": None,
    }
    if s.moengage_app_id:
        cfg["moengage"] = {
            "appId": s.moengage_app_id,
            "dataCenter": s.moengage_data_center,
            # The NPM loader's form of the data centre in the moe() config: DC_1.
            "cluster": s.moengage_data_center.upper(),
            "env": "TEST" if s.moengage_debug else "LIVE",
            "debug": s.moengage_debug,
            "logLevel": 2 if s.moengage_debug else 0,
            "sdkUrl": _prefixed(prefix, s.sdk_url) if s.sdk_url else None,
            "legacy": s.sw_import_url is not None and "/webpush/" in s.sw_import_url,
            # The SDK registers /serviceworker.js with scope / unless told otherwise.
            "swPath": sw_url if sw_url != "/serviceworker.js" else None,
            "swScope": scope if scope != "/" else None,
        }
    return cfg


def render_assets(settings: Settings, prefix: str = "") -> AssetBundle:
    """Render every asset for ``settings`` served under URL ``prefix`` (``""`` at the root)."""
    prefix = normalise_prefix(prefix)
    s = settings
    sw_url = _prefixed(prefix, s.sw_path)
    scope = _prefixed(prefix, s.sw_scope)
    manifest_url = _prefixed(prefix, s.manifest_path)
    client_url = _prefixed(prefix, s.client_path)
    api_url = _prefixed(prefix, s.api_path)

    manifest = Asset(
        "manifest.json",
        manifest_url,
        render_template("manifest.json.j2", manifest=manifest_members(s, prefix)).encode(),
        MANIFEST_TYPE,
    )
    sw_config = {
        "pushHandler": s.push_handler,
        "moengage": s.sw_import_url is not None,
        "selfHosted": s.vapid_private_key is not None,
        "scope": scope,
        "startUrl": _prefixed(prefix, s.manifest_start_url),
        "defaultTitle": s.manifest_name or s.manifest_short_name or "",
        "defaultIcon": _prefixed(prefix, s.manifest_icons[0]["src"]) if s.manifest_icons
        else None,
        "subscriptionUrl": api_url + "/subscription",
        "vapidKeyUrl": api_url + "/vapid-public-key",
    }
    serviceworker = Asset(
        "serviceworker.js",
        sw_url,
        render_template(
            "serviceworker.js.j2",
            moengage_import=_prefixed(prefix, s.sw_import_url) if s.sw_import_url else None,
            import_scripts=[_prefixed(prefix, u) for u in s.sw_import_scripts],
            push_handler=s.push_handler,
            self_hosted=s.vapid_private_key is not None,
            config=sw_config,
        ).encode(),
        JS_TYPE,
        headers=(("Service-Worker-Allowed", scope),),
    )
    client = Asset(
        "webpush-kit.js",
        client_url,
        render_template(
            "client.js.j2", config=_client_config(s, prefix, sw_url, scope, api_url)
        ).encode(),
        JS_TYPE,
    )
    bundle = AssetBundle(
        settings=s,
        prefix=prefix,
        manifest=manifest,
        serviceworker=serviceworker,
        client=client,
        manifest_url=manifest_url,
        client_url=client_url,
        sw_url=sw_url,
        scope=scope,
        api_url=api_url,
        head_snippet=b"",
    )
    object.__setattr__(bundle, "head_snippet", _render_head(bundle))
    return bundle


__all__ = ["Asset", "AssetBundle", "js_literal", "manifest_members", "render_assets"]
