"""The Flask extension and blueprint (issue 2, items 4 and 5; WEB-PUSH-RULES 1, 2, 5)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from flask import Flask, Response, render_template_string, send_file, stream_with_context
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.test import Client

from webpush_kit.errors import ConfigError, ValidationError, WebPushKitError
from webpush_kit.flask import WebPushKit, exempt

PAGE = (
    "<!doctype html><html><head><meta charset=utf-8><title>t</title></head>"
    "<body><header><h1>Shop</h1></header><p>hello</p></body></html>"
)


def make_app(**options: Any) -> Flask:
    app = Flask(__name__)
    app.config["SECRET_KEY"] = "test"
    WebPushKit(app, **options)

    @app.get("/")
    def index() -> str:
        return PAGE

    return app


def manifest_links(html: bytes) -> list[Any]:
    soup = BeautifulSoup(html, "html5lib")
    assert soup.head is not None
    return [el for el in soup.head.find_all("link", recursive=False)
            if "manifest" in [r.lower() for r in el.get("rel", [])]]


# --- serving the files -------------------------------------------------------------------


def test_extension_registers_itself_both_ways() -> None:
    app = make_app()
    assert "webpush_kit" in app.extensions
    ext = WebPushKit(manifest_name="Factory")
    app2 = Flask(__name__)
    ext.init_app(app2)
    assert WebPushKit.settings(app2).manifest_name == "Factory"
    assert app2.test_client().get("/manifest.json").status_code == 200


def test_manifest_served_with_the_manifest_type() -> None:
    r = make_app(manifest_name="Shop").test_client().get("/manifest.json")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/manifest+json"
    assert json.loads(r.data)["name"] == "Shop"
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_worker_served_as_javascript_no_cache_with_scope_header() -> None:
    r = make_app().test_client().get("/serviceworker.js")
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert r.headers["Cache-Control"] == "no-cache"
    assert r.headers["Service-Worker-Allowed"] == "/"
    assert r.headers["Content-Length"] == str(len(r.data))


def test_worker_in_a_subfolder_may_control_the_root() -> None:
    r = make_app(sw_path="/static/push/serviceworker.js").test_client().get(
        "/static/push/serviceworker.js")
    assert r.status_code == 200 and r.headers["Service-Worker-Allowed"] == "/"


@pytest.mark.parametrize("path", ["/manifest.json", "/serviceworker.js", "/webpush-kit.js"])
def test_strong_etag_and_304(path: str) -> None:
    client = make_app().test_client()
    first = client.get(path)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        again = client.get(path, headers={"If-None-Match": header})
        assert again.status_code == 304, header
        assert again.data == b""
        assert again.headers["ETag"] == etag
        assert again.headers["Cache-Control"] == "no-cache"
    assert client.get(path, headers={"If-None-Match": '"stale"'}).status_code == 200


@pytest.mark.parametrize("path", ["/manifest.json", "/serviceworker.js"])
def test_head_gets_the_headers_get_would(path: str) -> None:
    client = make_app().test_client()
    get, head = client.get(path), client.head(path)
    assert head.status_code == 200 and head.data == b""
    for name in ("Content-Type", "Content-Length", "ETag", "Cache-Control"):
        assert head.headers[name] == get.headers[name]


@pytest.mark.parametrize("path", ["/serviceworker.js/", "//serviceworker.js",
                                  "/manifest.json/", "//manifest.json"])
def test_never_a_redirect(path: str) -> None:
    # PATH_INFO set directly: the test client would read "//x" as a host name.
    r = make_app().test_client().get("/", environ_overrides={"PATH_INFO": path})
    assert not 300 <= r.status_code < 400, (path, r.status_code, r.headers.get("Location"))


def test_routes_need_no_auth_even_when_the_app_redirects_404s() -> None:
    app = make_app()

    @app.errorhandler(404)
    def to_login(_: Exception) -> Response:
        return Response(status=302, headers={"Location": "/login"})

    client = app.test_client()
    assert client.get("/serviceworker.js").status_code == 200
    assert client.get("/manifest.json").status_code == 200


def test_mounted_under_a_prefix_everything_carries_it() -> None:
    inner = make_app(manifest_icons=({"src": "/static/i.png", "sizes": "192x192"},))
    root = Flask("root")
    client = Client(DispatcherMiddleware(root, {"/shop": inner}))
    sw = client.get("/shop/serviceworker.js")
    assert sw.status_code == 200 and sw.headers["Service-Worker-Allowed"] == "/shop/"
    manifest = json.loads(client.get("/shop/manifest.json").data)
    assert manifest["start_url"] == manifest["scope"] == manifest["id"] == "/shop/"
    assert manifest["icons"][0]["src"] == "/shop/static/i.png"
    page = client.get("/shop/").data
    [link] = manifest_links(page)
    assert link["href"] == "/shop/manifest.json"
    assert b'src="/shop/webpush-kit.js"' in page
    client_js = client.get("/shop/webpush-kit.js").data
    assert b'"swUrl":"/shop/serviceworker.js"' in client_js and b'"scope":"/shop/"' in client_js


def test_bad_config_stops_start_up_naming_the_key() -> None:
    app = Flask(__name__)
    app.config["WEBPUSH_MOENGAGE_DATA_CENTER"] = "eu"
    with pytest.raises(ConfigError, match=r"WEBPUSH_MOENGAGE_DATA_CENTER.*dc_<n>"):
        WebPushKit(app)
    with pytest.raises(ConfigError, match="manifest_display"):
        WebPushKit(Flask(__name__), manifest_display="tab")


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("mysql://u:s3cret@127.0.0.1/shop", "only SQLite"),
        ("5", "use sqlite:///"),
        ("postgresql+psycopg2://u:s3cret@127.0.0.1/shop", "through psycopg 3"),
        ("postgresql+asyncpg://u:s3cret@127.0.0.1/shop", "through psycopg 3"),
        ("not a url://u:s3cret@x", "use sqlite:///"),
    ],
)
def test_a_wrong_database_url_stops_start_up_without_showing_its_password(
    url: str, allowed: str
) -> None:
    app = Flask(__name__)
    app.config["WEBPUSH_DATABASE_URL"] = url
    with pytest.raises(ConfigError) as info:
        WebPushKit(app)
    assert info.value.key == "database_url" and allowed in info.value.allowed
    assert "s3cret" not in str(info.value)


def test_wrong_runtime_options_stop_start_up() -> None:
    with pytest.raises(ConfigError, match=r"user_id_loader.*a function"):
        WebPushKit(Flask(__name__), user_id_loader="current_user.id")
    with pytest.raises(ConfigError, match=r"nonce_loader.*a function"):
        WebPushKit(Flask(__name__), nonce_loader=42)
    with pytest.raises(ConfigError, match=r"engine.*an SQLAlchemy Engine"):
        WebPushKit(Flask(__name__), engine="sqlite:///x.db")


# --- head injection ------------------------------------------------------------------------


def test_link_injected_into_the_real_head_once() -> None:
    r = make_app().test_client().get("/")
    [link] = manifest_links(r.data)
    assert link["href"] == "/manifest.json"
    assert r.headers["Content-Length"] == str(len(r.data))
    # byte preservation: the page minus our snippet is the page we wrote
    snippet_start = r.data.index(b'<link rel="manifest"')
    snippet_end = r.data.index(b"</script>", snippet_start) + len(b"</script>")
    assert r.data[:snippet_start] + r.data[snippet_end:] == PAGE.encode()
    # placed after <meta charset> (which must stay in the first 1024 bytes)
    assert r.data.index(b"<meta charset=utf-8>") < snippet_start


def test_head_request_gets_gets_content_length() -> None:
    client = make_app().test_client()
    get, head = client.get("/"), client.head("/")
    assert head.headers["Content-Length"] == get.headers["Content-Length"] == str(len(get.data))


def test_strong_etag_of_a_changed_page_turns_weak() -> None:
    app = make_app()

    @app.get("/etagged")
    def etagged() -> Response:
        resp = Response(PAGE, mimetype="text/html")
        resp.set_etag("abc")
        return resp

    r = app.test_client().get("/etagged")
    assert r.headers["ETag"] == 'W/"abc"'


def test_page_with_its_own_manifest_link_is_left_alone() -> None:
    app = make_app()
    own = '<!doctype html><html><head><link rel="manifest" href="/own.json"></head><body></body>'

    @app.get("/own")
    def own_view() -> str:
        return own

    assert app.test_client().get("/own").data == own.encode()


def _skip_cases(app: Flask, tmp_path: Path) -> dict[str, Any]:
    page_path = tmp_path / "page.html"
    page_path.write_text(PAGE)

    def add(rule: str, view: Any) -> None:
        app.add_url_rule(rule, rule.strip("/"), view)

    add("/json", lambda: Response(json.dumps({"html": PAGE}), mimetype="application/json"))
    add("/notfound", lambda: Response(PAGE, status=404, mimetype="text/html"))
    add("/error", lambda: Response(PAGE, status=500, mimetype="text/html"))
    add("/partial", lambda: Response(PAGE, status=206, mimetype="text/html",
                                     headers={"Content-Range": f"bytes 0-{len(PAGE)-1}/999"}))
    add("/xhtml", lambda: Response(PAGE, mimetype="application/xhtml+xml"))
    add("/gzip", lambda: Response(gzip.compress(PAGE.encode()), mimetype="text/html",
                                  headers={"Content-Encoding": "gzip"}))
    add("/br", lambda: Response(b"\x0b\x02\x80", mimetype="text/html",
                                headers={"Content-Encoding": "br"}))

    def streamed() -> Response:
        def gen() -> Iterator[str]:
            yield PAGE[:20]
            yield PAGE[20:]
        return Response(stream_with_context(gen()), mimetype="text/html")

    add("/streamed", streamed)
    add("/file", lambda: send_file(page_path, mimetype="text/html"))
    add("/utf16", lambda: Response(PAGE.encode("utf-16"),
                                   content_type="text/html; charset=utf-16"))
    add("/text", lambda: Response(PAGE, mimetype="text/plain"))
    return {}


@pytest.mark.parametrize("path", ["/json", "/notfound", "/error", "/partial", "/xhtml",
                                  "/gzip", "/br", "/streamed", "/file", "/utf16", "/text"])
def test_hook_skips_what_it_must_not_touch(path: str, tmp_path: Path) -> None:
    app = make_app()
    _skip_cases(app, tmp_path)
    r = app.test_client().get(path)
    assert b'rel="manifest"' not in r.data
    if path == "/file":
        r.close()


def test_exempt_view_is_left_alone() -> None:
    app = make_app()

    @app.get("/widget")
    @exempt
    def widget() -> str:
        return PAGE

    assert app.test_client().get("/widget").data == PAGE.encode()


def test_webpush_head_global_places_tags_and_stops_injection() -> None:
    app = make_app()
    template = ("<!doctype html><html><head><title>t</title>{{ webpush_head() }}</head>"
                "<body>x</body></html>")

    @app.get("/manual")
    def manual() -> str:
        return render_template_string(template)

    body = app.test_client().get("/manual").data
    assert len(manifest_links(body)) == 1
    assert body.count(b"webpush-kit.js") == 1
    assert body.index(b"<title>") < body.index(b'rel="manifest"')  # where the owner put it


def test_webpush_head_with_a_user_id_carries_a_signed_token() -> None:
    app = make_app()

    @app.get("/me")
    def me() -> str:
        return render_template_string(
            "<html><head>{{ webpush_head(user_id='u-42') }}</head><body></body></html>")

    body = app.test_client().get("/me").data
    soup = BeautifulSoup(body, "html5lib")
    script = soup.find("script", src="/webpush-kit.js")
    assert script is not None
    token = script["data-user-token"]
    from webpush_kit.identity import UserTokens

    assert UserTokens("test", 3600).verify(token) == "u-42"
    assert "u-42" not in token or "." in token  # signed, not the bare id


@pytest.mark.parametrize(("given", "signed"), [(42, "42"), ("", None), (None, None)])
def test_webpush_head_takes_int_ids_and_no_user(given: object, signed: str | None) -> None:
    # Flask-Login's current_user.id is often an int (the README's own example).
    app = make_app()

    @app.get("/me")
    def me() -> str:
        return render_template_string(
            "<html><head>{{ webpush_head(user_id=uid) }}</head></html>", uid=given)

    r = app.test_client().get("/me")
    assert r.status_code == 200
    script = BeautifulSoup(r.data, "html5lib").find("script", src="/webpush-kit.js")
    assert script is not None
    from webpush_kit.identity import UserTokens

    token = script.get("data-user-token")
    assert (None if token is None else UserTokens("test", 3600).verify(token)) == signed


@pytest.mark.parametrize("bad", ["a\x00b", "\ud800", True])
def test_webpush_head_refuses_an_id_the_api_would_refuse(bad: object) -> None:
    app = make_app()
    with app.test_request_context("/"):
        from webpush_kit.flask import webpush_head

        with pytest.raises(ValidationError) as info:
            webpush_head(user_id=bad)  # type: ignore[arg-type]
    assert info.value.field == "user_id"


def test_setting_up_twice_on_one_app_is_a_clear_error() -> None:
    app = make_app()
    with pytest.raises(WebPushKitError, match="already set up on app"):
        WebPushKit(app)


@pytest.mark.parametrize("options", [5, {"bogus": 1}, {"timeout": 1, "max_retries": 2, "x": 3}])
def test_wrong_sender_options_stop_start_up(options: object) -> None:
    with pytest.raises(ConfigError) as info:
        WebPushKit(Flask(__name__), sender_options=options)
    assert info.value.key == "sender_options" and "timeout" in info.value.allowed


def test_csp_nonce_from_flask_talisman_is_put_on_the_script() -> None:
    from flask_talisman import Talisman

    app = Flask(__name__)
    app.config["SECRET_KEY"] = "test"
    Talisman(app, force_https=False,
             content_security_policy={"script-src": "'self'"},
             content_security_policy_nonce_in=["script-src"])
    WebPushKit(app)

    @app.get("/")
    def index() -> str:
        return PAGE

    r = app.test_client().get("/")
    soup = BeautifulSoup(r.data, "html5lib")
    script = soup.find("script", src="/webpush-kit.js")
    assert script is not None and script.get("nonce")
    assert f"'nonce-{script['nonce']}'" in r.headers["Content-Security-Policy"]


def test_injection_runs_before_compression_registered_later() -> None:
    from flask_compress import Compress

    app = make_app()
    app.config.update(COMPRESS_MIN_SIZE=0, COMPRESS_ALGORITHM="gzip")
    Compress(app)  # registered after us: Flask would run its hook first
    r = app.test_client().get("/", headers={"Accept-Encoding": "gzip"})
    assert r.headers.get("Content-Encoding") == "gzip"
    assert b'rel="manifest"' in gzip.decompress(r.data)


def test_never_injects_twice_with_two_hooks() -> None:
    app = make_app()
    from webpush_kit import flask as ext

    app.after_request(ext._after_request)  # a second pass, as with nested registration
    body = app.test_client().get("/").data
    assert body.count(b'rel="manifest"') == 1


def test_sample_site_pages() -> None:
    from sample_site import create_app

    client = create_app().test_client()
    for path in ("/", "/products/", "/products/grinder", "/cart", "/minimal"):
        r = client.get(path)
        assert r.status_code == 200, path
        [link] = manifest_links(r.data)
        assert link["href"] == "/manifest.json"
    [own] = manifest_links(client.get("/pwa").data)
    assert own["href"] == "/static/own-manifest.json"
    assert b'rel="manifest"' not in client.get("/embed").data
    manifest = json.loads(client.get("/manifest.json").data)
    assert manifest["gcm_sender_id"] == "540868316921"
    sw = client.get("/serviceworker.js").data
    assert b"https://cdn.moengage.com/release/dc_1/versions/2/serviceworker_cdn" in sw
