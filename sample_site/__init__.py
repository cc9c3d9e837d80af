"""A small shop that uses webpush_kit: ``python -m sample_site`` serves it on
http://127.0.0.1:5000 with no configuration (SQLite in ``sample_site/instance``).

It runs in MoEngage mode with the seed's values (a placeholder App ID, debug mode, so
data would go to MoEngage's TEST environment) unless started with ``--self-hosted`` or
``SAMPLE_MODE=self-hosted``, where the site pushes on its own with a VAPID key it keeps
in its instance folder (created on first start) and shows a subscribe button.

Demo users log in and out at ``/login`` (a session cookie; the extension's
``user_id_loader`` reads it, so the server links subscriptions to whoever is logged in);
the page after a login calls ``webpushKit.identify`` and the page after a logout
``webpushKit.reset``. ``/admin`` (as the demo user ``ops``) lists the stored
subscriptions and the opt-in funnel.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask, Response, abort, redirect, render_template, request, session, url_for

from webpush_kit.errors import ValidationError
from webpush_kit.flask import WebPushKit, exempt
from webpush_kit.messages import Notification
from webpush_kit.settings import MOENGAGE_SHARED_SENDER_ID
from webpush_kit.store import subscriptions
from webpush_kit.vapid import VapidKey

#: The seed's placeholder App ID ("XXXXXXXXXXX" in Segment's guide); replace with yours.
PLACEHOLDER_APP_ID = "XXXXXXXXXXX"

#: Demo accounts: no passwords, this is a local sample. Traits are what the page passes
#: to webpushKit.identify (mapped onto MoEngage the way Segment's integration does).
DEMO_USERS: dict[str, dict[str, Any]] = {
    "alice": {"firstName": "Alice", "lastName": "Liddell", "email": "alice@example.com",
              "plan": "espresso-club"},
    "bob": {"firstName": "Bob", "lastName": "Brewer", "email": "bob@example.com"},
    "ops": {"firstName": "Olive", "lastName": "Ops", "email": "ops@example.com",
            "admin": True},
}

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


def self_hosted_settings(instance: Path) -> dict[str, Any]:
    """The site's own VAPID key, kept in the instance folder (made on first start)."""
    key_file = instance / "vapid_private_key.pem"
    if not key_file.exists():
        instance.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process made it first
            VapidKey.generate().save_pem(key_file)
    return {"vapid_private_key": str(key_file), "vapid_subject": "mailto:push@example.com"}


def current_user_id() -> str | None:
    """The extension's user_id_loader: the demo user in the session cookie."""
    user = session.get("user_id")
    return user if isinstance(user, str) and user in DEMO_USERS else None


def create_app(config: dict[str, Any] | None = None, *, mode: str | None = None) -> Flask:
    """Build the shop. ``config`` overrides Flask config keys (``WEBPUSH_*`` included);
    ``SAMPLE_INSTANCE_PATH`` moves the instance folder (database, VAPID key)."""
    config = dict(config or {})
    instance = config.pop("SAMPLE_INSTANCE_PATH", None) or os.environ.get(
        "SAMPLE_INSTANCE_PATH") or Path(__file__).resolve().parent / "instance"
    app = Flask(__name__, instance_path=str(instance), instance_relative_config=True)
    mode = mode or os.environ.get("SAMPLE_MODE", "moengage")
    if mode not in ("moengage", "self-hosted"):
        raise ValueError(f"SAMPLE_MODE must be moengage or self-hosted, not {mode!r}")
    app.config.update(
        SECRET_KEY=os.environ.get("SAMPLE_SECRET_KEY", "sample-site-not-secret"),
        SAMPLE_MODE=mode,
    )
    options: dict[str, Any] = dict(MANIFEST)
    app.config.update(config)
    if mode == "moengage":
        options.update(moengage_settings())
    elif "WEBPUSH_VAPID_PRIVATE_KEY" not in app.config:
        options.update(self_hosted_settings(Path(app.instance_path)))
    WebPushKit(app, user_id_loader=current_user_id,
               **{k: v for k, v in options.items() if "WEBPUSH_" + k.upper() not in app.config})

    @app.context_processor
    def shop() -> dict[str, Any]:
        user = current_user_id()
        return {
            "products": PRODUCTS,
            "mode": app.config["SAMPLE_MODE"],
            "user": user,
            "user_traits": DEMO_USERS.get(user or "", {}),
            # Set by /login and /logout, shown once: the page tells the client.
            "auth_event": session.pop("auth_event", None),
        }

    @app.get("/login")
    def login_form() -> str:
        return render_template("login.html", users=DEMO_USERS)

    @app.post("/login")
    def login() -> Response:
        user = request.form.get("user", "")
        if user not in DEMO_USERS:
            abort(400)
        session.clear()
        session["user_id"] = user
        session["auth_event"] = "login"
        return redirect(url_for("index"), code=303)

    @app.post("/logout")
    def logout() -> Response:
        session.clear()
        session["auth_event"] = "logout"
        return redirect(url_for("index"), code=303)

    @app.get("/admin")
    def admin() -> str:
        return admin_page()

    @app.post("/admin/push")
    def admin_push() -> str:
        """Send a test push to the logged-in admin or to everyone, and show the outcomes."""
        user = current_user_id()
        if not user or not DEMO_USERS[user].get("admin"):
            abort(403)
        if request.headers.get("Sec-Fetch-Site", "same-origin") != "same-origin":
            abort(403)  # a form posted from another site (the session cookie came along)
        if app.config["SAMPLE_MODE"] != "self-hosted":
            return admin_page(push_error="sending is self-hosted only: start the site with "
                              "--self-hosted (MoEngage sends its own pushes)")
        try:
            note = Notification(
                title=request.form.get("title") or "Test push from the Sample Coffee Shop",
                body=request.form.get("body") or "It works: this came from /admin.",
                url=request.form.get("url") or "/",
                icon="/static/icons/icon-192.png",
            )
        except ValidationError as exc:
            return admin_page(push_error=exc.message)
        if request.form.get("to") == "all":
            summary = WebPushKit.send_to_all(note)
        else:
            summary = WebPushKit.send_to_user(user, note)
        return admin_page(summary=summary, sent_to=request.form.get("to") or "me")

    def admin_page(**extra: Any) -> str:
        user = current_user_id()
        if not user or not DEMO_USERS[user].get("admin"):
            abort(403)
        store = WebPushKit.store(app)
        counts, funnel = store.counts(), store.funnel()  # (creates the tables if new)
        t = subscriptions
        with store.engine.connect() as conn:
            recent = [dict(r._mapping) for r in conn.execute(
                sa.select(t.c.endpoint, t.c.user_id, t.c.anonymous_id, t.c.status,
                          t.c.failure_count, t.c.updated_at)
                .order_by(t.c.updated_at.desc(), t.c.id.desc()).limit(100))]
        for row in recent:
            # An endpoint is a credential: show the push service and a short tail only.
            host = row["endpoint"].split("/")[2]
            row["endpoint"] = f"{host}/...{row['endpoint'][-8:]}"
        return render_template("admin.html", recent=recent, counts=counts, funnel=funnel,
                               **extra)

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
