"""Flask adapter: serve the generated files at the site root and put the manifest link in
every HTML page's ``<head>``.

    app = Flask(__name__)
    WebPushKit(app, moengage_app_id="XXXXXXXXXXXX", moengage_debug=True)

or, with an application factory, ``webpush = WebPushKit()`` then ``webpush.init_app(app)``.
Settings come from ``app.config["WEBPUSH_*"]`` and keyword arguments (which win).

No rule about push, HTML or storage lives here: this module translates requests into calls
to the core (``settings``, ``assets``, ``html``, ``api``) and back.

The JSON endpoints the browser client posts to live under ``api_path`` in their own
blueprint (``webpush_kit_api``), whose error handlers answer JSON: an unexpected error is a
500 ``{"error": {"code": "internal_error"}}`` with no traceback, an unknown path a 404 and a
wrong method a 405, all JSON. See :mod:`webpush_kit.api` for the rules.

The store is opened lazily, once per process (gunicorn forks after loading the app): the
``engine`` option if given, else the ``database_url`` setting, else the SQLite file
``webpush_kit.sqlite3`` in ``app.instance_path``.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, g, request
from markupsafe import Markup
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from webpush_kit.api import ApiRequest, ApiResponse, CallbackApi, error_response, load_vapid_key
from webpush_kit.assets import Asset, AssetBundle, render_assets
from webpush_kit.errors import ConfigError, WebPushKitError
from webpush_kit.html import inject_head
from webpush_kit.identity import UserTokens, check_user_id
from webpush_kit.messages import Notification, PushOptions
from webpush_kit.sender import Message, Outcome, Sender, Summary
from webpush_kit.settings import Settings, log_warnings
from webpush_kit.store import Store, check_database_url, check_engine
from webpush_kit.vapid import VapidClaims, VapidKey, VapidSigner

log = logging.getLogger("webpush_kit")

EXTENSION_KEY = "webpush_kit"
_EXEMPT_ATTR = "_webpush_kit_exempt"
_DONE_FLAG = "_webpush_kit_head_done"

F = TypeVar("F", bound=Callable[..., Any])

#: Options the extension takes that are not settings (they are Python objects).
_RUNTIME_OPTIONS = ("user_id_loader", "nonce_loader", "engine", "sender_options")


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
    instance_path: str = ""
    bundles: dict[str, AssetBundle] = field(default_factory=dict)
    order_checked: bool = False
    api: CallbackApi | None = None
    _tokens: UserTokens | None = None
    _store: Store | None = None
    _store_pid: int = 0
    _store_lock: threading.Lock = field(default_factory=threading.Lock)
    #: Loaded at start-up when ``vapid_private_key`` is set (never logged or rendered).
    vapid_key: VapidKey | None = None
    #: Keyword arguments for :class:`~webpush_kit.sender.Sender` (transport, timeout...).
    sender_options: dict[str, Any] = field(default_factory=dict)
    _sender: Sender | None = None

    def sender(self) -> Sender:
        """The app's sender, built on first use and reused (its connection pools too)."""
        if self._sender is None:
            with self._store_lock:
                if self._sender is None:
                    if self.vapid_key is None or self.settings.vapid_subject is None:
                        raise ConfigError(
                            "vapid_private_key", None, "set it (and vapid_subject) to send "
                            "pushes from this site; create a key with `flask webpush vapid "
                            "generate --out FILE`")
                    signer = VapidSigner(self.vapid_key, VapidClaims(self.settings.vapid_subject))
                    self._sender = Sender(signer, **self.sender_options)
        return self._sender

    def store(self) -> Store:
        """This process's store, opened on first use (and again in a forked child)."""
        pid = os.getpid()
        current = self._store
        if current is not None and self._store_pid == pid:
            return current
        with self._store_lock:
            if self._store is None or self._store_pid != pid:
                if self._store is not None:
                    # Forked: the parent's pooled connections are not ours to use or close.
                    self._store.engine.dispose(close=False)
                self._store = self._open_store()
                self._store_pid = pid
            return self._store

    def _open_store(self) -> Store:
        if self.engine is not None:
            return Store(self.engine)
        if self.settings.database_url:
            return Store(self.settings.database_url)
        return Store.for_sqlite_path(Path(self.instance_path) / "webpush_kit.sqlite3")

    def tokens_or_none(self) -> UserTokens | None:
        """The token signer, or None when the app has no secret key (no token is valid)."""
        if not current_app.secret_key:
            return None
        return self.tokens()

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
        if EXTENSION_KEY in app.extensions:
            raise WebPushKitError(
                f"webpush_kit is already set up on app {app.name!r}: call WebPushKit(app) "
                "or init_app(app) once per app, with all the options in that one call",
                code="already_initialized")
        merged = {**self.options, **options}
        runtime = {k: merged.pop(k) for k in _RUNTIME_OPTIONS if k in merged}
        settings = Settings.from_flask_config(app.config, merged)
        log_warnings(settings)
        for name in ("user_id_loader", "nonce_loader"):
            loader = runtime.get(name)
            if loader is not None and not callable(loader):
                raise ConfigError(name, loader, "a function taking no arguments (called in "
                                  "the request), or None")
        if "sender_options" in runtime:
            _check_sender_options(runtime["sender_options"])
        # A wrong database stops start-up here, not every request (nothing connects yet).
        if runtime.get("engine") is not None:
            check_engine(runtime["engine"])
        elif settings.database_url:
            check_database_url(settings.database_url)
        state = _State(self, settings, instance_path=app.instance_path, **runtime)
        vapid_public_key = None
        if settings.vapid_private_key:
            # A bad key stops start-up here (ConfigError naming vapid_private_key); the
            # subject was checked by Settings with the rule VapidClaims applies.
            state.vapid_key = load_vapid_key(settings.vapid_private_key, app.instance_path)
            vapid_public_key = state.vapid_key.public_key_b64
        state.api = CallbackApi(
            settings,
            store=state.store,
            tokens=state.tokens_or_none,
            user_id_loader=state.user_id_loader,
            vapid_public_key=vapid_public_key,
        )
        app.extensions[EXTENSION_KEY] = state

        app.register_blueprint(_blueprint(settings))
        app.register_blueprint(_api_blueprint(settings))
        app.after_request(_after_request)
        app.before_request(_keep_injection_first)
        app.before_request(_api_routing_failure)
        app.jinja_env.globals["webpush_head"] = webpush_head
        from webpush_kit.cli import flask_group  # imported here: the CLI imports this module

        app.cli.add_command(flask_group())  # flask webpush init | export | doctor

    @staticmethod
    def settings(app: Flask | None = None) -> Settings:
        """The validated settings of ``app`` (or the current app)."""
        target = app if app is not None else current_app
        state: _State = target.extensions[EXTENSION_KEY]
        return state.settings

    @staticmethod
    def store(app: Flask | None = None) -> Store:
        """The store of ``app`` (or the current app), opened on first use."""
        target = app if app is not None else current_app
        state: _State = target.extensions[EXTENSION_KEY]
        return state.store()

    @staticmethod
    def sender(app: Flask | None = None) -> Sender:
        """The :class:`~webpush_kit.sender.Sender` of ``app`` (or the current app), signing
        with its VAPID key; built once and reused. ``ConfigError`` without a key."""
        target = app if app is not None else current_app
        state: _State = target.extensions[EXTENSION_KEY]
        return state.sender()

    @staticmethod
    def send_to_user(
        user_id: str,
        message: Message | dict[str, Any],
        options: PushOptions | None = None,
        *,
        app: Flask | None = None,
        on_progress: Callable[[Outcome], None] | None = None,
    ) -> Summary:
        """Push to the user's active subscriptions; outcomes are recorded in the store.

        ``message`` is a :class:`~webpush_kit.messages.Notification`, its dict form
        (``{"title": ..., "body": ...}``), or raw bytes/str for a worker of your own.
        """
        target = app if app is not None else current_app
        return WebPushKit.sender(target).send_to_user(
            WebPushKit.store(target), user_id, _message(message), options,
            on_progress=on_progress)

    @staticmethod
    def send_to_all(
        message: Message | dict[str, Any],
        options: PushOptions | None = None,
        *,
        app: Flask | None = None,
        on_progress: Callable[[Outcome], None] | None = None,
    ) -> Summary:
        """Push to every active subscription (streamed from the store in batches)."""
        target = app if app is not None else current_app
        return WebPushKit.sender(target).send_to_all(
            WebPushKit.store(target), _message(message), options, on_progress=on_progress)


def _message(message: Message | dict[str, Any]) -> Message:
    return Notification.from_dict(message) if isinstance(message, dict) else message


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


_API_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"]
_HTTP_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def _api_blueprint(settings: Settings) -> Blueprint:
    """The JSON endpoints. Every method is routed to the view, which answers 405 itself:
    Flask's own 405 comes from routing, where blueprint error handlers never run, and an
    automatic OPTIONS answer would look like a CORS preflight approval."""
    bp = Blueprint("webpush_kit_api", __name__, url_prefix=settings.api_path)
    # The prefix itself and any path below it reach the view, which answers 404 in JSON.
    root: dict[str, Any] = {"action": ""}
    for rule, name, defaults in (("/<path:action>", "api", {}), ("", "api_root", root)):
        bp.add_url_rule(
            rule,
            name,
            _api_view,
            defaults=defaults,
            methods=_API_METHODS,
            provide_automatic_options=False,
            merge_slashes=False,
            strict_slashes=False,
        )
    bp.register_error_handler(Exception, _api_error)
    return bp


def _read_body(limit: int) -> bytes:
    """At most ``limit`` bytes of the request body (socket reads may come up short)."""
    stream = request.stream
    length = request.content_length
    if length is not None and length < limit:
        limit = length  # the stream ends there: no extra read to find out
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = stream.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


@exempt
def _api_view(action: str) -> Response:
    state = _state()
    assert state.api is not None
    environ = request.environ
    req = ApiRequest(
        method=request.method,
        content_type=environ.get("CONTENT_TYPE"),
        content_length=request.content_length,
        read_body=_read_body,
        # Only compared with Origin: the Host header as sent (ProxyFix rewrites it).
        scheme=environ.get("wsgi.url_scheme", "http"),
        host=environ.get("HTTP_HOST") or environ.get("SERVER_NAME", ""),
        origin=environ.get("HTTP_ORIGIN"),
        sec_fetch_site=environ.get("HTTP_SEC_FETCH_SITE"),
        user_agent=environ.get("HTTP_USER_AGENT") or None,
    )
    return _json_response(state.api.handle(action, req))


_JSON_HEADERS = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"))


def _json_response(answer: ApiResponse) -> Response:
    body = json.dumps(answer.body, ensure_ascii=True, separators=(",", ":"))
    headers = dict(_JSON_HEADERS)
    headers.update(answer.headers)
    return Response(body, status=answer.status, headers=headers, mimetype="application/json")


def _api_error(exc: Exception) -> Response:
    """JSON for every error in the API routes; never a traceback in the response."""
    if isinstance(exc, HTTPException):
        status = exc.code or 500
        code = _HTTP_CODES.get(status, "http_error")
        return _json_response(error_response(status, code, exc.description or exc.name))
    log.exception("webpush_kit: unexpected error answering %s %s", request.method, request.path)
    return _json_response(error_response(
        500, "internal_error", "the server could not handle this request; the error is in "
        "the server log"))


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


def webpush_head(user_id: str | int | None = None) -> Markup:
    """Jinja global: the tags for ``<head>``, for templates that place them themselves.

    Calling it marks the page, so the after-request hook injects nothing more. With
    ``user_id``, the client script carries a token signed for that id, which the JSON
    endpoints accept as proof of who the browser speaks for. An int id (Flask-Login's
    ``current_user.id`` often is one) is signed as its decimal text, as a
    ``user_id_loader``'s would be; None or "" means nobody is logged in.
    """
    state = _state()
    bundle = _bundle(state)
    ident: object = user_id
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        ident = str(user_id)
    token = None
    if ident is not None and ident != "":
        # A bad id (a bool, control characters...): ValidationError naming user_id.
        token = state.tokens().sign(check_user_id(ident, field="user_id"))
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


def _check_sender_options(options: object) -> None:
    """``sender_options`` are keyword arguments of :class:`Sender` (all but the signer):
    a wrong name stops start-up instead of the first send. Their values are checked by
    Sender itself, when the first send builds it."""
    allowed = [n for n in inspect.signature(Sender).parameters if n != "signer"]
    if not isinstance(options, Mapping):
        raise ConfigError("sender_options", options, "a dict of Sender keyword arguments: "
                          + ", ".join(allowed))
    unknown = [k for k in options if k not in allowed]
    if unknown:
        raise ConfigError("sender_options", unknown[0], "one of " + ", ".join(allowed))


def _api_routing_failure() -> Response | None:
    """A request under ``api_path`` that routing refused (``//subscription``, a method
    the rules do not list such as ``FOO``) is answered by the API itself, in JSON; the
    app's own 404/405 pages would be HTML. Routing failures surface only here, before
    the view: blueprint error handlers never see them."""
    exc = request.routing_exception
    if exc is None or isinstance(exc, RequestRedirect):
        return None
    prefix = _state().settings.api_path
    path = request.path
    if path != prefix and not path.startswith(prefix + "/"):
        return None
    return _api_view(path[len(prefix) + 1:])


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
