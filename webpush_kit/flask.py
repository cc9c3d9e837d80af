"""Flask adapter: serve the generated files at the site root and put the manifest link in
every HTML page's ``<head>``.

    app = Flask(__name__)
    WebPushKit(app, moengage_app_id="XXXXXXXXXXXX", moengage_debug=True)

or, with an application factory, ``webpush = WebPushKit()`` then ``webpush.init_app(app)``.
Settings come from ``app.config["WEBPUSH_*"]`` and keyword arguments (which win).

No rule about push, HTML or storage lives here: this module translates requests into calls
to the core (``settings``, ``assets``, ``html``) and back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, g, request
from markupsafe import Markup

from webpush_kit.assets import Asset, AssetBundle, render_assets
from webpush_kit.html import inject_head
from webpush_kit.identity import UserTokens
from webpush_kit.settings import Settings, log_warnings

log = logging.getLogger("webpush_kit")

EXTENSION_KEY = "webpush_kit"
_EXEMPT_ATTR = "_webpush_kit_exempt"
_DONE_FLAG = "_webpush_kit_head_done"

F = TypeVar("F", bound=Callable[..., Any])

#: Options the extension takes that are not settings (they are Python objects).
_RUNTIME_OPTIONS = ("user_id_loader", "nonce_loader", "engine")


def exempt(view: F) -> F:
    """Decorator: never inject the head snippet into this view's responses."""
    setattr(view, _EXEMPT_ATTR, True)
    return view


@dataclass
class _State:
    """Per-app state, kept in ``app.extensions["webpush_kit"]`` (one extension object
    may serve several apps)."""

    extension: WebPushKit
    settings: Settings
    user_id_loader: Callable[[], str | None] | None = None
    nonce_loader: Callable[[], str | None] | None = None
    engine: Any = None
    bundles: dict[str, AssetBundle] = field(default_factory=dict)
    order_checked: bool = False
    _tokens: UserTokens | None = None

    def bundle(self, script_root: str) -> AssetBundle:
        """Assets for this mount point, rendered once (the prefix is part of every URL)."""
        b = self.bundles.get(script_root)
        if b is None:
            b = self.bundles[script_root] = render_assets(self.settings, script_root)
        return b

    def tokens(self) -> UserTokens:
        if self._tokens is None:
            self._tokens = UserTokens(
                current_app.secret_key or "", self.settings.user_token_max_age
            )
        return self._tokens

    def nonce(self) -> str | None:
        if self.nonce_loader is not None:
            return self.nonce_loader()
        # Flask-Talisman keeps the per-request nonce on the request object.
        value = getattr(request, "csp_nonce", None)
        return value if isinstance(value, str) and value else None


def _state() -> _State:
    state: _State = current_app.extensions[EXTENSION_KEY]
    return state


def _bundle(state: _State) -> AssetBundle:
    """The assets for the mount point (``SCRIPT_NAME``) of the current request."""
    return state.bundle(request.environ.get("SCRIPT_NAME", ""))


class WebPushKit:
    """The Flask extension: ``WebPushKit(app, **options)`` or ``init_app(app, **options)``.

    ``options`` are settings (see :class:`~webpush_kit.settings.Settings`) plus
    ``user_id_loader`` (returns the logged-in user's id or None), ``nonce_loader``
    (returns the CSP nonce of the request; Flask-Talisman's is found without it) and
    ``engine`` (an SQLAlchemy engine for the store).
    """

    def __init__(self, app: Flask | None = None, **options: Any) -> None:
        self.options = options
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, **options: Any) -> None:
        merged = {**self.options, **options}
        runtime = {k: merged.pop(k) for k in _RUNTIME_OPTIONS if k in merged}
        settings = Settings.from_flask_config(app.config, merged)
        log_warnings(settings)
        state = _State(self, settings, **runtime)
        app.extensions[EXTENSION_KEY] = state

        app.register_blueprint(_blueprint(settings))
        app.after_request(_after_request)
        app.before_request(_keep_injection_first)
        app.jinja_env.globals["webpush_head"] = webpush_head
        from webpush_kit.cli import flask_group  # imported here: the CLI imports this module

        app.cli.add_command(flask_group())  # flask webpush init | export | doctor

    @staticmethod
    def settings(app: Flask | None = None) -> Settings:
        """The validated settings of ``app`` (or the current app)."""
        target = app if app is not None else current_app
        state: _State = target.extensions[EXTENSION_KEY]
        return state.settings


def _blueprint(settings: Settings) -> Blueprint:
    bp = Blueprint("webpush_kit", __name__)
    for name, path in (
        ("manifest", settings.manifest_path),
        ("serviceworker", settings.sw_path),
        ("client", settings.client_path),
    ):
        # merge_slashes=False: Werkzeug would otherwise answer //serviceworker.js with a
        # redirect, and a service worker script behind a redirect fails to register.
        bp.add_url_rule(
            path,
            name,
            _serve,
            methods=["GET"],
            defaults={"asset": name},
            merge_slashes=False,
            strict_slashes=True,
        )
    return bp


@exempt
def _serve(asset: str) -> Response:
    item: Asset = getattr(_bundle(_state()), asset)
    if "HTTP_IF_NONE_MATCH" in request.environ and request.if_none_match.contains_weak(item.etag):
        # RFC 9110: If-None-Match uses weak comparison; a 304 repeats the validators.
        resp = Response(status=304)
        for key, value in item.all_headers():
            if key != "Content-Type":
                resp.headers[key] = value
        return resp
    return Response(item.body, headers=item.all_headers())


def webpush_head(user_id: str | None = None) -> Markup:
    """Jinja global: the tags for ``<head>``, for templates that place them themselves.

    Calling it marks the page, so the after-request hook injects nothing more. With
    ``user_id``, the client script carries a token signed for that id, which the JSON
    endpoints accept as proof of who the browser speaks for.
    """
    state = _state()
    bundle = _bundle(state)
    token = state.tokens().sign(user_id) if user_id is not None else None
    setattr(g, _DONE_FLAG, True)
    return Markup(bundle.head(nonce=state.nonce(), user_token=token).decode("ascii"))


def _view_is_exempt() -> bool:
    endpoint = request.endpoint
    if endpoint is None:
        return False
    view = current_app.view_functions.get(endpoint)
    return bool(view is not None and getattr(view, _EXEMPT_ATTR, False))


def _after_request(response: Response) -> Response:
    """Insert the head snippet into eligible HTML responses (WEB-PUSH-RULES section 5).

    Runs on every response, so the cheapest refusals come first, and the headers are read
    in one pass: Werkzeug's ``name in headers`` raises and catches a KeyError on a miss.
    """
    if response.status_code != 200:
        return response  # 206/304/204/errors
    content_type = etag = ""
    for name, value in response.headers.items():
        lname = name.lower()
        if lname == "content-type":
            content_type = value
        elif lname == "etag":
            etag = value
        elif lname in ("content-encoding", "content-range"):
            return response  # compressed bytes, or byte ranges of the original
    mime, _, params = content_type.partition(";")
    if mime.strip().lower() != "text/html":
        return response  # XHTML and everything that is not HTML
    if "utf-16" in params.lower() or "utf-32" in params.lower():
        return response
    if response.direct_passthrough or not response.is_sequence:
        return response  # send_file and streamed bodies: never buffer or break them
    state = _state()
    if not state.settings.inject_head or g.get(_DONE_FLAG) or _view_is_exempt():
        return response
    body = response.get_data()
    new_body = inject_head(body, _bundle(state).head(nonce=state.nonce()))
    if len(new_body) == len(body):
        return response
    response.set_data(new_body)  # also recomputes Content-Length (HEAD gets GET's length)
    if etag and not etag.startswith(("W/", "w/")):
        response.headers["ETag"] = "W/" + etag  # the bytes changed: no longer identical
    setattr(g, _DONE_FLAG, True)
    return response


def _keep_injection_first() -> None:
    """Run our after-request hook before any registered later (Flask calls them in
    reverse order), so compression extensions such as Flask-Compress see our bytes
    instead of us seeing theirs. Checked once per app, on its first request."""
    state = _state()
    if state.order_checked:
        return
    state.order_checked = True
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    funcs = app.after_request_funcs.setdefault(None, [])
    if _after_request in funcs and funcs[-1] is not _after_request:
        funcs.remove(_after_request)
        funcs.append(_after_request)


__all__ = ["WebPushKit", "exempt", "webpush_head"]
