"""Self-hosted push in the Flask extension (issue 4, item 6): the VAPID key is loaded at
start-up (a bad key or subject stops it, naming the setting), never served, rendered or
logged; ``WebPushKit.sender/send_to_user/send_to_all``; the sample site's admin page.

Pushes go to the loopback push service (tests/pushservice.py) and are decrypted there.
"""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from sample_site import create_app
from tests.pushservice import PushService, Recipient, Reply
from webpush_kit.errors import ConfigError
from webpush_kit.flask import WebPushKit
from webpush_kit.messages import Notification
from webpush_kit.sender import OutcomeKind
from webpush_kit.settings import Settings
from webpush_kit.subscriptions import Subscription
from webpush_kit.vapid import VapidClaims, VapidKey

SUBJECT = "mailto:webpush-demo@example.com"


def make_app(tmp_path: Path, **options: Any) -> Flask:
    app = Flask("push_app", instance_path=str(tmp_path))
    app.config["SECRET_KEY"] = "test"
    WebPushKit(app, **options)

    @app.get("/")
    def index() -> str:
        return "<!doctype html><html><head><title>t</title></head><body>hi</body></html>"

    return app


@pytest.fixture
def service() -> Iterator[PushService]:
    with PushService() as svc:
        yield svc


# --- loading the key --------------------------------------------------------------------


def test_key_from_a_pem_file_raw_text_or_the_instance_folder(tmp_path: Path) -> None:
    key = VapidKey.generate()
    key.save_pem(tmp_path / "vapid.pem")
    for value in (str(tmp_path / "vapid.pem"), "vapid.pem", key.private_raw_b64(),
                  key.private_raw_b64() + "="):
        app = make_app(tmp_path, vapid_private_key=value, vapid_subject=SUBJECT)
        assert WebPushKit.sender(app).signer.public_key_b64 == key.public_key_b64, value
        answer = app.test_client().get("/webpush-kit/api/vapid-public-key")
        assert answer.json == {"publicKey": key.public_key_b64}


@pytest.mark.parametrize(
    ("options", "key", "fragment"),
    [
        ({"vapid_private_key": "/no/such/vapid.pem"}, "vapid_private_key", "existing key file"),
        ({"vapid_private_key": "QUJD"}, "vapid_private_key", "raw private key"),
        ({"vapid_private_key": "VAPID"}, "vapid_private_key", "vapid generate"),
        ({"vapid_subject": None}, "vapid_subject", "required with vapid_private_key"),
        ({"vapid_subject": "mailto:admin@localhost"}, "vapid_subject", "mailto:"),
        ({"vapid_subject": "admin@your-site.com"}, "vapid_subject", "mailto:admin@"),
        ({"vapid_subject": "https://localhost/"}, "vapid_subject", "https:"),
    ],
)
def test_a_bad_key_or_subject_stops_start_up_naming_the_setting(
    tmp_path: Path, options: dict[str, Any], key: str, fragment: str
) -> None:
    good = VapidKey.generate()
    settings = {"vapid_private_key": good.private_raw_b64(), "vapid_subject": SUBJECT,
                **options}
    settings = {k: v for k, v in settings.items() if v is not None}
    with pytest.raises(ConfigError) as info:
        make_app(tmp_path, **settings)
    assert info.value.key.lower().endswith(key)
    assert fragment in str(info.value)
    assert good.private_raw_b64() not in str(info.value)


def test_a_wrong_curve_key_file_is_refused(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP384R1())
    path = tmp_path / "p384.pem"
    path.write_bytes(other.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()))
    with pytest.raises(ConfigError, match="P-256") as info:
        make_app(tmp_path, vapid_private_key=str(path), vapid_subject=SUBJECT)
    assert info.value.key == "vapid_private_key"


@pytest.mark.parametrize("subject", [
    SUBJECT, "https://shop.example.com/contact", "mailto:push@sub.example.co.uk",
    "mailto:admin@localhost", "mailto:a@b.invalid", "mailto:mailto:a@example.com",
    "a@example.com", "http://example.com/", "mailto:push@10.0.0.1", "mailto:x@shop.local",
    "https://example/", "mailto: push@example.com",
])
def test_settings_and_claims_apply_one_subject_rule(subject: str) -> None:
    def accepted(build: Any) -> bool:
        try:
            build()
        except ConfigError as exc:
            assert exc.key == "vapid_subject"
            return False
        return True

    assert accepted(lambda: Settings(vapid_subject=subject)) == accepted(
        lambda: VapidClaims(subject))


def test_the_private_key_is_never_served_rendered_or_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = VapidKey.generate()
    key.save_pem(tmp_path / "vapid.pem")
    app = make_app(tmp_path, vapid_private_key=str(tmp_path / "vapid.pem"),
                   vapid_subject=SUBJECT)
    client = app.test_client()
    secrets = [key.private_raw_b64(), key.private_pem().decode().splitlines()[1][:40]]
    bodies = [client.get(p).get_data(as_text=True) for p in (
        "/", "/serviceworker.js", "/manifest.json", "/webpush-kit.js",
        "/webpush-kit/api/vapid-public-key")]
    assert key.public_key_b64 in "".join(bodies)  # the public half is served, as it must be
    state = app.extensions["webpush_kit"]
    everything = "".join(bodies) + caplog.text + repr(state) + repr(WebPushKit.sender(app))
    for secret in secrets:
        assert secret not in everything


# --- sending ----------------------------------------------------------------------------


def subscribe(app: Flask, service: PushService, name: str, user: str | None,
              vapid_key: str | None = None) -> Recipient:
    recipient = Recipient.generate()
    WebPushKit.store(app).save_subscription(
        Subscription(service.endpoint(name), recipient.p256dh, recipient.auth),
        user_id=user, anonymous_id=None, vapid_key=vapid_key)
    return recipient


def test_sender_is_built_once_and_sends_to_a_user_and_to_all(
    tmp_path: Path, service: PushService
) -> None:
    key = VapidKey.generate()
    app = make_app(tmp_path, vapid_private_key=key.private_raw_b64(), vapid_subject=SUBJECT,
                   sender_options={"timeout": 5.0, "max_retries": 0})
    sender = WebPushKit.sender(app)
    assert WebPushKit.sender(app) is sender
    with app.app_context():
        assert WebPushKit.sender() is sender
    alice = subscribe(app, service, "alice", "alice", key.public_key_b64)
    bob = subscribe(app, service, "bob", "bob")
    service.script("gone", Reply(410))
    subscribe(app, service, "gone", "carol")
    # A subscription made with another (older) key: reported, not sent.
    subscribe(app, service, "rotated", "dave", VapidKey.generate().public_key_b64)

    with app.app_context():
        summary = WebPushKit.send_to_user("alice", {"title": "Hi Alice ✓", "url": "/a"})
    assert summary.delivered == 1 and summary.total == 1
    assert json.loads(alice.decrypt(service.requests_for("alice")[0]))["title"] == "Hi Alice ✓"

    seen: list[str] = []
    summary = WebPushKit.send_to_all(Notification(title="Everyone 🎉"), app=app,
                                     on_progress=lambda o: seen.append(o.kind.value))
    assert summary.counts == {OutcomeKind.DELIVERED: 2, OutcomeKind.EXPIRED: 1,
                              OutcomeKind.KEY_MISMATCH: 1}
    assert sorted(seen) == ["delivered", "delivered", "expired", "key_mismatch"]
    assert json.loads(bob.decrypt(service.requests_for("bob")[0]))["title"] == "Everyone 🎉"
    assert service.requests_for("rotated") == []
    gone = WebPushKit.store(app).get(service.endpoint("gone"))
    assert gone is not None and gone.status == "expired"


def test_sender_without_a_key_is_a_config_error(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    with pytest.raises(ConfigError, match="vapid_private_key"):
        WebPushKit.sender(app)


# --- the sample site --------------------------------------------------------------------


def test_sample_site_makes_its_key_on_first_start_and_keeps_it(tmp_path: Path) -> None:
    instance = tmp_path / "instance"
    app = create_app({"SAMPLE_INSTANCE_PATH": str(instance)}, mode="self-hosted")
    (key_file,) = instance.glob("*.pem")
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    first = WebPushKit.sender(app).signer.public_key_b64
    again = create_app({"SAMPLE_INSTANCE_PATH": str(instance)}, mode="self-hosted")
    assert WebPushKit.sender(again).signer.public_key_b64 == first


def test_sample_admin_sends_a_test_push_and_shows_the_outcomes(
    tmp_path: Path, service: PushService
) -> None:
    app = create_app({"SAMPLE_INSTANCE_PATH": str(tmp_path)}, mode="self-hosted")
    ops = subscribe(app, service, "ops", "ops")
    service.script("bob", Reply(403, body=b"BadJwtToken"))
    subscribe(app, service, "bob", "bob")
    client = app.test_client()
    assert client.post("/admin/push", data={"to": "me"}).status_code == 403  # not logged in
    client.post("/login", data={"user": "ops"})
    page = client.get("/admin").get_data(as_text=True)
    assert 'id="send-push"' in page

    page = client.post("/admin/push", data={"to": "me", "title": "Ops test ✓"}).get_data(
        as_text=True)
    assert "Sent to you: 1 subscriptions" in page and "<td>delivered</td><td>1</td>" in page
    assert json.loads(ops.decrypt(service.requests_for("ops")[0]))["title"] == "Ops test ✓"

    page = client.post("/admin/push", data={"to": "all"}).get_data(as_text=True)
    assert "Sent to everyone" in page and "<td>rejected</td><td>1</td>" in page
    assert "rejected 403 127.0.0.1:" in page and "BadJwtToken" in page
    cross_site = client.post("/admin/push", data={"to": "all"},
                             headers={"Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403

    bad = client.post("/admin/push", data={"to": "me", "url": "javascript:alert(1)"})
    assert 'id="push-error"' in bad.get_data(as_text=True)


def test_sample_admin_in_moengage_mode_explains_instead_of_sending(tmp_path: Path) -> None:
    app = create_app({"SAMPLE_INSTANCE_PATH": str(tmp_path)})
    client = app.test_client()
    client.post("/login", data={"user": "ops"})
    page = client.post("/admin/push", data={"to": "all"}).get_data(as_text=True)
    assert "self-hosted only" in page
