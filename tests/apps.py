"""Small Flask apps the tests and benchmarks serve.

``server_app()`` is the app factory gunicorn loads (``tests.apps:server_app()``) for the
concurrency test and the callback benchmark; it reads its configuration from the
environment, because gunicorn imports it in fresh worker processes:

* ``WEBPUSH_KIT_TEST_DB``: the database URL (default: SQLite in the instance folder)
* ``WEBPUSH_KIT_TEST_SECRET``: ``SECRET_KEY`` (tokens are signed with it by the test)
* ``WEBPUSH_KIT_TEST_INSTANCE``: the instance folder

It also has ``POST /bench/echo``, the bare JSON route the benchmark compares against.

``page_app(...)`` is the app the browser tests drive: pages that render the head snippet
with a signed user token, the MoEngage SDK stand-in under ``/_standin/``.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, Response, jsonify, render_template_string, request

from webpush_kit.flask import WebPushKit

SECRET_ENV = "WEBPUSH_KIT_TEST_SECRET"
DB_ENV = "WEBPUSH_KIT_TEST_DB"
INSTANCE_ENV = "WEBPUSH_KIT_TEST_INSTANCE"

#: What a page looks like to the browser tests: the head snippet placed by the template,
#: with a token for ``user`` when one is given.
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
{{ head|safe }}
</head><body><h1>{{ title }}</h1>
<button id="subscribe" onclick="window.__subscribeResult = webpushKit.subscribe().then(
  function (r) { return {ok: true, result: r}; },
  function (e) { return {ok: false, error: String(e && e.message || e)}; })">Subscribe</button>
</body></html>
"""


def server_app() -> Flask:
    """The app gunicorn serves in the concurrency test and the benchmark."""
    kwargs: dict[str, Any] = {}
    if os.environ.get(INSTANCE_ENV):
        kwargs["instance_path"] = os.environ[INSTANCE_ENV]
    app = Flask("webpush_kit_test_server", **kwargs)
    app.config["SECRET_KEY"] = os.environ.get(SECRET_ENV, "test-secret")
    options: dict[str, Any] = {"inject_head": False}
    if os.environ.get(DB_ENV):
        options["database_url"] = os.environ[DB_ENV]
    WebPushKit(app, **options)

    @app.post("/bench/echo")
    def echo() -> Response:
        # The bare JSON route: parse the body and send it back, nothing else.
        return jsonify(request.get_json())

    return app


def page_app(*, user_id_loader: Any = None, **settings: Any) -> Flask:
    """A site for the browser tests: ``/page?user=alice`` renders the head snippet with a
    token signed for alice; ``/page?user=alice&forge=1`` with that token tampered with."""
    app = Flask("webpush_kit_test_pages")
    app.config["SECRET_KEY"] = "browser-test-secret"
    options: dict[str, Any] = dict(settings)
    if user_id_loader is not None:
        options["user_id_loader"] = user_id_loader
    WebPushKit(app, **options)
    from tests.conftest import standin_blueprint

    app.register_blueprint(standin_blueprint())

    @app.get("/page")
    def page() -> str:
        from webpush_kit.flask import webpush_head

        user = request.args.get("user") or None
        head = str(webpush_head(user_id=user))
        if request.args.get("forge"):
            # Same shape, another signature: what a page editing its token would send.
            start = head.index('data-user-token="') + len('data-user-token="')
            end = head.index('"', start)
            token = head[start:end]
            forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
            head = head[:start] + forged + head[end:]
        return render_template_string(PAGE, head=head, title=f"page for {user or 'nobody'}")

    return app
