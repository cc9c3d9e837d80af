"""The app the serving benchmark runs under gunicorn: the extension's routes beside a bare
Flask route that returns constant bytes of the same size and type (the floor to compare to).
"""

from __future__ import annotations

from flask import Flask, Response

from webpush_kit.assets import JS_TYPE, render_assets
from webpush_kit.flask import WebPushKit

OPTIONS = {
    "moengage_app_id": "BENCHAPP",
    "manifest_name": "Bench",
    "manifest_icons": ({"src": "/i192.png", "sizes": "192x192"},
                       {"src": "/i512.png", "sizes": "512x512"}),
}


def create_app() -> Flask:
    app = Flask(__name__)
    WebPushKit(app, **OPTIONS)
    body = render_assets(WebPushKit.settings(app)).serviceworker.body

    @app.get("/bare.js")
    def bare() -> Response:
        return Response(body, content_type=JS_TYPE)

    @app.get("/page")
    def page() -> str:
        return ("<!doctype html><html><head><meta charset=utf-8><title>p</title></head>"
                "<body><p>hello</p></body></html>")

    return app
