"""A small shop that uses webpush_kit: ``python -m sample_site`` serves it on
http://127.0.0.1:5000 with no configuration (SQLite in ``sample_site/instance``).

It runs in MoEngage mode with the seed's values (a placeholder App ID, debug mode, so
data would go to MoEngage's TEST environment) unless started with ``--self-hosted`` or
``SAMPLE_MODE=self-hosted``, where the site pushes on its own with a VAPID key it keeps
in its instance folder.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, Response, abort, render_template

from webpush_kit.flask import WebPushKit, exempt
from webpush_kit.settings import MOENGAGE_SHARED_SENDER_ID

#: The seed's placeholder App ID ("XXXXXXXXXXX" in Segment's guide); replace with yours.
PLACEHOLDER_APP_ID = "XXXXXXXXXXX"

PRODUCTS = [
    {"slug": "espresso-cup", "name": "Espresso cup", "price": "9.00",
     "text": "A thick-walled cup that keeps a double shot hot."},
    {"slug": "pour-over-kettle", "name": "Pour-over kettle", "price": "39.00",
     "text": "A gooseneck kettle for a slow, even pour."},
    {"slug": "grinder", "name": "Burr grinder", "price": "89.00",
     "text": "Conical burrs, forty settings, no static."},
]

MANIFEST = {
    "manifest_name": "Sample Coffee Shop",
    "manifest_short_name": "Coffee",
    "manifest_theme_color": "#1a73e8",
    "manifest_background_color": "#ffffff",
    "manifest_icons": (
        {"src": "/static/icons/icon-192.png", "sizes": "192x192", "type": "image/png"},
        {"src": "/static/icons/icon-512.png", "sizes": "512x512", "type": "image/png",
         "purpose": "any maskable"},
    ),
}


def moengage_settings() -> dict[str, Any]:
    """The seed's Web setup: App ID, debug (TEST) mode, data centre 1, and the MoEngage
    Shared Project's sender id in the manifest (set explicitly: it is never a default)."""
    return {
        "moengage_app_id": PLACEHOLDER_APP_ID,
        "moengage_debug": True,
        "moengage_data_center": "dc_1",
        "gcm_sender_id": MOENGAGE_SHARED_SENDER_ID,
    }


def create_app(config: dict[str, Any] | None = None, *, mode: str | None = None) -> Flask:
    """Build the shop. ``config`` overrides Flask config keys (``WEBPUSH_*`` included)."""
    app = Flask(__name__, instance_relative_config=True)
    mode = mode or os.environ.get("SAMPLE_MODE", "moengage")
    if mode not in ("moengage", "self-hosted"):
        raise ValueError(f"SAMPLE_MODE must be moengage or self-hosted, not {mode!r}")
    app.config.update(
        SECRET_KEY=os.environ.get("SAMPLE_SECRET_KEY", "sample-site-not-secret"),
        SAMPLE_MODE=mode,
    )
    options: dict[str, Any] = dict(MANIFEST)
    if mode == "moengage":
        options.update(moengage_settings())
    app.config.update(config or {})
    WebPushKit(app, **{k: v for k, v in options.items()
                       if "WEBPUSH_" + k.upper() not in app.config})

    @app.context_processor
    def shop() -> dict[str, Any]:
        return {"products": PRODUCTS, "mode": app.config["SAMPLE_MODE"]}

    @app.get("/")
    def index() -> str:
        return render_template("index.html")

    @app.get("/products/")
    def products() -> str:
        return render_template("products.html")

    @app.get("/products/<slug>")
    def product(slug: str) -> str:
        for item in PRODUCTS:
            if item["slug"] == slug:
                return render_template("product.html", product=item)
        abort(404)

    @app.get("/cart")
    def cart() -> str:
        return render_template("cart.html")

    @app.get("/pwa")
    def own_manifest() -> str:
        # This page links its own manifest first: the extension leaves it alone, and
        # Chromium keeps the page's own link (the first one in <head> wins).
        return render_template("own_manifest.html")

    @app.get("/minimal")
    def minimal() -> str:
        # Rendered without a <head> tag: the link goes into the head the parser implies.
        return render_template("minimal.html")

    @app.get("/robots.txt")
    def robots() -> Response:
        return Response("User-agent: *\nAllow: /\n", mimetype="text/plain")

    @app.get("/embed")
    @exempt
    def embed() -> str:
        # An HTML page the extension must not touch (opted out per view).
        return render_template("embed.html")

    return app
