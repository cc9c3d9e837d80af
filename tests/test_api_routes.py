"""Every URL under the API prefix answers in JSON, never with the app's HTML error pages
(found by fuzzing the demo from a fresh clone)."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from webpush_kit.flask import WebPushKit


@pytest.fixture
def client(tmp_path: Path) -> object:
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config["SECRET_KEY"] = "test"
    WebPushKit(app, manifest_name="Shop")
    return app.test_client()


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/webpush-kit/api", 404, "not_found"),
        ("GET", "/webpush-kit/api/", 404, "not_found"),
        ("GET", "/webpush-kit/api/no-such-endpoint", 404, "not_found"),
        ("TRACE", "/webpush-kit/api/subscription", 405, "method_not_allowed"),
        ("PUT", "/webpush-kit/api/events", 405, "method_not_allowed"),
        ("OPTIONS", "/webpush-kit/api/subscription", 405, "method_not_allowed"),
        # Refused by routing itself (no rule matches), before any blueprint handler runs.
        ("POST", "/webpush-kit/api//subscription", 404, "not_found"),
        ("FOO", "/webpush-kit/api/subscription", 405, "method_not_allowed"),
        ("PROPFIND", "/webpush-kit/api", 404, "not_found"),
    ],
)
def test_unknown_paths_and_methods_get_json_errors(
    client: object, method: str, path: str, status: int, code: str
) -> None:
    r = client.open(path, method=method)  # type: ignore[attr-defined]
    assert r.status_code == status
    assert r.mimetype == "application/json"
    assert r.get_json()["error"]["code"] == code
    assert "Access-Control-Allow-Origin" not in r.headers  # never a CORS approval


def test_the_apps_own_404_page_is_left_alone(client: object) -> None:
    r = client.get("/somewhere-else")  # type: ignore[attr-defined]
    assert r.status_code == 404 and r.mimetype == "text/html"
    r = client.get("/webpush-kit/apis")  # type: ignore[attr-defined]
    assert r.status_code == 404 and r.mimetype == "text/html"  # not under the prefix
    r = client.open("/somewhere-else", method="FOO")  # type: ignore[attr-defined]
    assert r.status_code in (404, 405) and r.mimetype == "text/html"
