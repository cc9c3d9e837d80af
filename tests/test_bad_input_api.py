"""Bad input reported by a newcomer who tried to break the package, through Flask.

Each answer must be a clear error (what is wrong, which field or setting, how to fix it):
a ConfigError at start-up for settings, a 4xx JSON error for requests, never a 500 or a
misleading message, and nothing written to the store.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.test import TestResponse

from tests.loadgen import key_pool, subscription_json
from webpush_kit.errors import ConfigError
from webpush_kit.flask import WebPushKit
from webpush_kit.identity import UserTokens
from webpush_kit.store import metadata

API = "/webpush-kit/api"
SECRET = "bad-input-secret"
POOL = key_pool(2)


def make_app(tmp_path: Path, **options: Any) -> Flask:
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config["SECRET_KEY"] = SECRET
    WebPushKit(app, inject_head=False, **options)
    return app


def post(app: Flask, path: str, body: Any) -> TestResponse:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return app.test_client().post(f"{API}/{path}", data=data,
                                  headers={"Content-Type": "application/json"})


def stored(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (a table not created yet holds none)."""
    engine = WebPushKit.store(app).engine
    with engine.connect() as conn:
        return {t.name: [tuple(r) for r in conn.execute(sa.select(t))]
                if sa.inspect(conn).has_table(t.name) else [] for t in metadata.sorted_tables}


def error(response: TestResponse, status: int, code: str) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()["error"]
    assert body["code"] == code, body
    message: str = body["message"]
    return message


# --- 1. lone surrogates in settings stop start-up, not every asset request ---------------


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"manifest_name": "\ud800"}, "manifest_name"),
        ({"manifest_short_name": "Shop\udcff"}, "manifest_short_name"),
        ({"manifest_extra": {"x": "\udcff"}}, "manifest_extra.x"),
        ({"manifest_extra": {"shortcuts": [{"name": "\ud800"}]}},
         "manifest_extra.shortcuts[0].name"),
        ({"manifest_icons": [{"src": "/i.png", "purpose": "any\ud800"}]},
         "manifest_icons[0].purpose"),
    ],
)
def test_a_lone_surrogate_in_a_setting_is_refused_at_start_up(
    tmp_path: Path, options: dict[str, Any], key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        make_app(tmp_path, **options)
    assert info.value.key == key
    assert "lone surrogate" in info.value.allowed and "UTF-8" in info.value.allowed
    str(info.value).encode("utf-8")  # the message itself can be printed


def test_a_lone_surrogate_from_flask_config_names_the_config_key(tmp_path: Path) -> None:
    app = Flask(__name__, instance_path=str(tmp_path))
    app.config["WEBPUSH_MANIFEST_NAME"] = "Shop \ud800"
    with pytest.raises(ConfigError) as info:
        WebPushKit(app)
    assert info.value.key == "WEBPUSH_MANIFEST_NAME"


# --- 6. the JSON endpoints --------------------------------------------------------------


def test_an_unknown_action_is_echoed_truncated(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    r = app.test_client().post(f"{API}/{'a' * 60_000}", data=b"{}",
                               headers={"Content-Type": "application/json"})
    message = error(r, 404, "not_found")
    assert len(r.get_data()) < 400
    assert f"'{'a' * 80}\u2026'" in message and "a" * 81 not in message


def test_a_number_too_large_for_python_is_a_400_saying_so(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    message = error(post(app, "events", b'{"events": [], "n": ' + b"7" * 5000 + b"}"),
                    400, "invalid_json")
    assert "number too large" in message and "UTF-8" not in message


@pytest.mark.parametrize("opener", [b"[", b'{"a":'])
def test_deeply_nested_json_is_a_400_saying_so(tmp_path: Path, opener: bytes) -> None:
    app = make_app(tmp_path)
    closer = b"]" if opener == b"[" else b"}"
    message = error(post(app, "events", opener * 2500 + b"1" + closer * 2500),
                    400, "invalid_json")
    assert "nested too deeply" in message and "UTF-8" not in message


def test_malformed_json_and_bad_utf8_say_which(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    assert "not valid JSON" in error(post(app, "events", b'{"events":'), 400, "invalid_json")
    assert "not valid UTF-8" in error(post(app, "events", b'{"a": "\xff"}'), 400,
                                      "invalid_json")
    assert "NaN" in error(post(app, "events", b'{"a": NaN}'), 400, "invalid_json")


def _good() -> dict[str, Any]:
    return subscription_json(0, "bad-input", POOL)


def test_lone_surrogates_in_ids_and_text_get_accurate_messages(tmp_path: Path) -> None:
    """A JSON body can carry "\\ud800": each field says what is wrong with it, and nothing
    is written (the store's "control characters" message is never what the browser sees)."""
    app = make_app(tmp_path)
    token = UserTokens(SECRET, 3600).sign("alice")
    assert post(app, "subscription", {"subscription": _good()}).status_code == 201
    before = stored(app)
    cases: list[tuple[str, dict[str, Any], int, str, str]] = [
        ("subscription", {"subscription": _good(), "user_token": token, "user_id": "\ud800"},
         400, "invalid_user_id", "user_id"),
        # The signature check used to fail with UnicodeEncodeError: a 500.
        ("subscription", {"subscription": _good(), "user_token": "\ud800"},
         403, "invalid_user_token", "user_token"),
        ("events", {"events": [{"type": "prompt_shown", "detail": {"k": "\udcff"}}]},
         400, "invalid_detail", "events[0].detail"),
        ("subscription", {"subscription": {**_good(), "endpoint":
                                           "https://fcm.googleapis.com/fcm/send/\ud800"}},
         400, "invalid_endpoint", "endpoint"),
        ("reset", {"endpoint": "https://fcm.googleapis.com/fcm/send/x\udfff"},
         400, "invalid_endpoint", "endpoint"),
    ]
    for path, body, status, code, field in cases:
        r = post(app, path, body)
        message = error(r, status, code)
        assert r.get_json()["error"]["field"] == field
        assert "control characters" not in message, message
        assert "surrogate" in message or "non-ASCII" in message, message
    assert stored(app) == before


def test_a_loaders_id_with_a_lone_surrogate_is_named_as_such(tmp_path: Path) -> None:
    app = make_app(tmp_path, user_id_loader=lambda: "carol\ud800")
    r = post(app, "subscription", {"subscription": _good()})
    message = error(r, 400, "invalid_user_id")
    assert r.get_json()["error"]["field"] == "user_id_loader()"
    assert "lone surrogate" in message and "control characters" not in message
    assert stored(app)["webpush_subscriptions"] == []


@pytest.mark.parametrize(
    ("endpoint", "code"),
    [
        ("https://fcm.googleapis.com:8443/fcm/send/abc", "endpoint_port_not_allowed"),
        ("https://fcm.googleapis.com", "invalid_endpoint"),
        ("https://fcm.googleapis.com/", "invalid_endpoint"),
    ],
)
def test_an_endpoint_with_a_port_or_without_a_path_is_refused(
    tmp_path: Path, endpoint: str, code: str
) -> None:
    app = make_app(tmp_path)
    message = error(post(app, "subscription", {"subscription": {**_good(),
                                                                "endpoint": endpoint}}),
                    400, code)
    assert "port" in message or "path" in message
    assert stored(app)["webpush_subscriptions"] == []


def test_an_unknown_push_host_names_the_owners_setting(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    message = error(post(app, "subscription", {"subscription": {
        **_good(), "endpoint": "https://push.example.net/abc"}}), 400,
        "endpoint_host_not_allowed")
    assert "push_hosts" in message and "WEBPUSH_PUSH_HOSTS" in message
    assert "EndpointPolicy" not in message
