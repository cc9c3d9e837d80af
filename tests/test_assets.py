"""Rendering: deterministic, and every value serialised for its context (issue 2, item 3)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webpush_kit.assets import js_literal, manifest_members, render_assets
from webpush_kit.settings import Settings

HOSTILE = [
    '"; alert(1); "',
    "</script><script>alert(1)</script>",
    "line\u2028separator\u2029paragraph",
    "new\nline\r\nand\ttab",
    "Café Ünïcödé 日本語 🛒",
    "back\\slash ' quote",
    "<!-- comment --> ]]> & &amp;",
]

NODE = shutil.which("node")


def node_check(tmp_path: Path, source: bytes, name: str = "sw.js") -> None:
    """``node --check``: the file parses as JavaScript."""
    assert NODE, "node is required (the machine has Node 20)"
    path = tmp_path / name
    path.write_bytes(source)
    proc = subprocess.run([NODE, "--check", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def node_eval_config(tmp_path: Path, source: bytes) -> dict[str, object]:
    """Run the worker's top level far enough to read back its CONFIG object."""
    path = tmp_path / "probe.js"
    prelude = (
        "var seen={};var self={addEventListener:function(){},registration:{},"
        "location:{origin:'http://x',host:'x'},clients:{}};"
        "function importScripts(u){(seen.imports=seen.imports||[]).push(u);}\n"
    )
    body = source.decode().replace("var CONFIG = ", "var CONFIG = seen.config = ")
    path.write_text(prelude + body + "\nconsole.log(JSON.stringify(seen));")
    out = subprocess.run([NODE, str(path)], capture_output=True, text=True, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_rendering_is_deterministic() -> None:
    s = Settings(moengage_app_id="APP1", manifest_name="Shop")
    a, b = render_assets(s), render_assets(Settings(moengage_app_id="APP1", manifest_name="Shop"))
    for x, y in zip(a.assets, b.assets, strict=True):
        assert x.body == y.body and x.etag == y.etag
    assert a.head_snippet == b.head_snippet
    # and the bytes change when the settings change (so browsers update the worker)
    c = render_assets(s.replace(moengage_data_center="dc_2"))
    assert c.serviceworker.body != a.serviceworker.body


def test_worker_has_exactly_the_constant_import_lines(tmp_path: Path) -> None:
    s = Settings(moengage_app_id="APP1", sw_import_scripts=("/own/push.js",))
    body = render_assets(s).serviceworker.body
    node_check(tmp_path, body)
    seen = node_eval_config(tmp_path, body)
    assert seen["imports"] == [
        "https://cdn.moengage.com/release/dc_1/versions/2/serviceworker_cdn.min.latest.js",
        "/own/push.js",
    ]
    assert b"new Date" not in body and b"?date=" not in body
    # the MoEngage import comes first: MoEngage's handlers must be registered first
    assert body.index(b"importScripts(") < body.index(b"(function")


def test_no_import_without_moengage(tmp_path: Path) -> None:
    body = render_assets(Settings()).serviceworker.body
    node_check(tmp_path, body)
    assert b"importScripts(" not in body.replace(b"importScripts() of new", b"")


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_do_not_break_out(tmp_path: Path, value: str) -> None:
    s = Settings(
        manifest_name=value,
        manifest_short_name=value[:12] or "x",
        manifest_extra={"description": value, value: [value, {"k": value}]},
        moengage_app_id="APP1",
    )
    bundle = render_assets(s)
    # manifest: valid JSON with the exact values back
    parsed = json.loads(bundle.manifest.body.decode("utf-8"))
    assert parsed["name"] == value and parsed["description"] == value
    assert parsed[value] == [value, {"k": value}]
    # worker and client: valid JavaScript; the value reaches CONFIG intact
    node_check(tmp_path, bundle.serviceworker.body)
    node_check(tmp_path, bundle.client.body, "client.js")
    seen = node_eval_config(tmp_path, bundle.serviceworker.body)
    assert seen["config"]["defaultTitle"] == value  # type: ignore[index]
    # nothing in JS or JSON output can close a <script> or start a comment
    for asset in bundle.assets:
        assert b"</script" not in asset.body.lower()
        assert "\u2028".encode() not in asset.body


def test_head_snippet_attributes_are_escaped() -> None:
    bundle = render_assets(Settings(manifest_use_credentials=True), "/sh\"op<x>")
    html = bundle.head(nonce='n"once<', user_token="tok'en&")
    assert html.isascii()
    soup = BeautifulSoup(html, "html5lib")
    link = soup.find("link")
    script = soup.find("script")
    assert link is not None and script is not None
    assert link["href"] == "/sh%22op%3Cx%3E/manifest.json"
    assert link["crossorigin"] == "use-credentials"
    assert script["nonce"] == 'n"once<' and script["data-user-token"] == "tok'en&"
    assert script["src"] == "/sh%22op%3Cx%3E/webpush-kit.js"


def test_prefix_reaches_every_url() -> None:
    s = Settings(manifest_icons=({"src": "/static/i.png", "sizes": "192x192"},),
                 sw_import_scripts=("/static/own.js",))
    b = render_assets(s, "/shop/")
    assert (b.sw_url, b.scope, b.manifest_url) == ("/shop/serviceworker.js", "/shop/",
                                                   "/shop/manifest.json")
    m = json.loads(b.manifest.body)
    assert (m["id"], m["start_url"], m["scope"]) == ("/shop/", "/shop/", "/shop/")
    assert m["icons"][0]["src"] == "/shop/static/i.png"
    assert dict(b.serviceworker.headers)["Service-Worker-Allowed"] == "/shop/"
    assert b'importScripts("/shop/static/own.js")' in b.serviceworker.body
    assert b'"scope":"/shop/"' in b.client.body


def test_manifest_members_and_types() -> None:
    s = Settings(manifest_name="Shop", gcm_sender_id="540868316921",
                 manifest_theme_color="#123456")
    b = render_assets(s)
    assert b.manifest.content_type == "application/manifest+json"
    assert b.serviceworker.content_type == "text/javascript; charset=utf-8"
    assert manifest_members(s)["gcm_sender_id"] == "540868316921"
    assert list(json.loads(b.manifest.body))[:2] == ["name", "id"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(min_size=1, max_size=40))
def test_js_literal_round_trips_any_text(value: str) -> None:
    text = str(js_literal(value))
    assert text.isascii() and "<" not in text and "\u2028" not in text
    assert json.loads(text) == value


def test_templates_dir_is_found_in_the_checkout() -> None:
    from webpush_kit.assets import templates_dir

    assert (templates_dir() / "serviceworker.js.j2").is_file()
