"""``webpush-kit vapid`` and ``webpush-kit send`` (issue 4, item 6), and the same under
``flask webpush``.

Pushes go to the loopback fault-injecting push service (tests/pushservice.py), which
answers as scripted and keeps what it received, so a test decrypts exactly what arrived
with the recipient's keys. Bad input must give one clear line and exit status 2, never
a traceback; a run where a push failed exits 1.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sample_site import create_app
from tests.pushservice import PushService, Recipient, Reply
from webpush_kit.cli import main
from webpush_kit.flask import WebPushKit
from webpush_kit.settings import Settings
from webpush_kit.store import Store
from webpush_kit.subscriptions import Subscription
from webpush_kit.vapid import VapidKey

SCRIPT = Path(sys.executable).with_name("webpush-kit")
ROOT = Path(__file__).resolve().parent.parent


def run(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def service() -> Iterator[PushService]:
    with PushService() as svc:
        yield svc


@dataclass
class Site:
    config: Path
    key: VapidKey
    store: Store
    service: PushService
    people: dict[str, Recipient]

    def add(self, name: str, user: str | None, *replies: Reply) -> None:
        recipient = Recipient.generate()
        self.people[name] = recipient
        if replies:
            self.service.script(name, *replies)
        sub = Subscription(self.service.endpoint(name), recipient.p256dh, recipient.auth)
        self.store.save_subscription(sub, user_id=user, anonymous_id=None,
                                     vapid_key=self.key.public_key_b64)

    def received(self, name: str) -> list[dict[str, object]]:
        return [json.loads(self.people[name].decrypt(r))
                for r in self.service.requests_for(name)]


def write_config(path: Path, key_file: Path | None, database: str | None) -> Path:
    lines = ["[push]"]
    if key_file is not None:
        lines += [f"vapid_private_key = {json.dumps(str(key_file))}",
                  'vapid_subject = "mailto:webpush-demo@example.com"']
    lines.append("[store]")
    if database is not None:
        lines.append(f"database_url = {json.dumps(database)}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def site(tmp_path: Path, service: PushService) -> Iterator[Site]:
    key_file = tmp_path / "vapid.pem"
    assert run("vapid", "generate", "--out", str(key_file)).exit_code == 0
    db = f"sqlite:///{tmp_path / 'push.db'}"
    config = write_config(tmp_path / "webpush.toml", key_file, db)
    store = Store(db)
    s = Site(config, VapidKey.load(key_file), store, service, {})
    s.add("alice-phone", "alice")
    s.add("alice-laptop", "alice")
    s.add("bob", "bob", Reply(410, body=b"push subscription has unsubscribed or expired"))
    s.add("carol", "carol", Reply(403, body=b"BadJwtToken"))
    yield s
    store.dispose()


# --- vapid ------------------------------------------------------------------------------


def public_key_line(output: str) -> str:
    return next(line.split(": ", 1)[1] for line in output.splitlines()
                if line.startswith("public key: "))


def test_vapid_generate_writes_a_0600_key_and_prints_its_public_key(tmp_path: Path) -> None:
    out = tmp_path / "keys" / "vapid.pem"
    out.parent.mkdir()
    result = run("vapid", "generate", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = VapidKey.load(out)
    printed = public_key_line(result.output)
    assert printed == key.public_key_b64
    raw = base64.urlsafe_b64decode(printed + "=" * (-len(printed) % 4))
    assert len(raw) == 65 and raw[0] == 4  # an uncompressed P-256 point
    # The key lines it prints are valid TOML as they are (they go into [push]).
    toml = result.output[result.output.index("vapid_private_key = "):]
    assert tomllib.loads(toml)["vapid_private_key"] == str(out.resolve())
    # The private key is in the file only, never on the terminal.
    assert key.private_raw_b64() not in result.output
    assert "PRIVATE KEY" not in result.output


def test_vapid_generate_advice_fits_the_file_init_writes(tmp_path: Path) -> None:
    """The file `webpush-kit init` writes already has a [push] section: pasting a second
    [push] block under it is not valid TOML. The advice is the key lines to set there."""
    config = tmp_path / "webpush.toml"
    assert run("init", "--out", str(config)).exit_code == 0
    out = tmp_path / "vapid.pem"
    result = run("vapid", "generate", "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "[push]" not in lines  # no section header to paste a second time
    advice = next(line for line in lines if "[push] section" in line)
    assert "webpush.toml" in advice
    keys = [line for line in lines if line.startswith("vapid_")]
    assert [k.split(" = ")[0] for k in keys] == ["vapid_private_key", "vapid_subject"]
    # Follow the advice: the key lines replace the commented-out ones in [push].
    text = config.read_text()
    for key in keys:
        name = key.split(" = ")[0]
        assert f'# {name} = ""' in text
        text = text.replace(f'# {name} = ""', key, 1)
    config.write_text(text)
    settings = Settings.from_toml(config)
    assert settings.vapid_private_key == str(out.resolve())
    assert settings.vapid_subject == "mailto:push-admin@your-site.com"


def test_readme_says_send_needs_a_database_url() -> None:
    """The init file's database_url comment (unset: a SQLite file in the instance folder)
    is about Flask apps; the command line has no instance folder, and the README says so
    where it shows `send --config`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Pushing on your own", 1)[1].split("\n## ", 1)[0]
    assert "webpush-kit send --config webpush.toml" in section
    prose = " ".join(section.split("```")[2].split())
    assert "`send --config` also needs `[store] database_url`" in prose
    assert "command line has no instance folder" in prose


def test_vapid_generate_never_overwrites_without_force(tmp_path: Path) -> None:
    out = tmp_path / "vapid.pem"
    run("vapid", "generate", "--out", str(out))
    before = out.read_bytes()
    again = run("vapid", "generate", "--out", str(out))
    assert again.exit_code == 1
    assert "exists" in again.output and "--force" in again.output
    assert out.read_bytes() == before
    forced = run("vapid", "generate", "--out", str(out), "--force")
    assert forced.exit_code == 0 and out.read_bytes() != before
    assert stat.S_IMODE(out.stat().st_mode) == 0o600


def test_vapid_public_key_of_a_file_and_of_the_settings(site: Site, tmp_path: Path) -> None:
    key_file = tmp_path / "vapid.pem"
    by_file = run("vapid", "public-key", "--key", str(key_file))
    assert by_file.exit_code == 0 and by_file.output.strip() == site.key.public_key_b64
    by_config = run("vapid", "public-key", "--config", str(site.config))
    assert by_config.output.strip() == site.key.public_key_b64
    bad = tmp_path / "bad.pem"
    bad.write_text("not a key")
    refused = run("vapid", "public-key", "--key", str(bad))
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "PEM, DER or base64url" in refused.output


# --- send -------------------------------------------------------------------------------


def test_send_to_a_user_reaches_each_of_their_subscriptions(site: Site) -> None:
    result = run("send", "--config", str(site.config), "--user", "alice",
                 "--title", "Grüße 🎉", "--body", "Ihre Bestellung ✓", "--url", "/orders/7",
                 "--tag", "order-7", "--ttl", "600", "--urgency", "high", "--topic", "orders")
    assert result.exit_code == 0, result.output
    assert "2 delivered" in result.stdout
    for name in ("alice-phone", "alice-laptop"):
        (message,) = site.received(name)
        assert message == {"webpush_kit": 1, "title": "Grüße 🎉", "body": "Ihre Bestellung ✓",
                           "url": "/orders/7", "tag": "order-7"}
        (request,) = site.service.requests_for(name)
        assert (request.headers["ttl"], request.headers["urgency"],
                request.headers["topic"]) == ("600", "high", "orders")
        assert request.headers["authorization"].endswith("k=" + site.key.public_key_b64)
    assert site.service.requests_for("bob") == []
    assert "sending" in result.stderr  # the progress line


def test_send_to_all_prints_counts_and_failure_samples_and_exits_1(site: Site) -> None:
    result = run("send", "--config", str(site.config), "--all", "--title", "Sale")
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("summary: 4 subscriptions")
    assert "  delivered    2" in lines and "  expired      1" in lines
    assert "  rejected     1" in lines
    sample = next(line for line in lines if line.startswith("  rejected 403 "))
    assert site.service.endpoint("carol") in sample and "BadJwtToken" in sample
    bob = site.store.get(site.service.endpoint("bob"))
    assert bob is not None and bob.status == "expired"
    assert "[" in result.stderr and "4/4" in result.stderr  # the progress bar, on stderr


def test_send_summary_as_json(site: Site) -> None:
    result = run("send", "--config", str(site.config), "--user", "carol", "--title", "x",
                 "--json")
    assert result.exit_code == 1
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"rejected": 1}
    assert summary["failures"][0]["status"] == 403


def test_send_a_payload_file(site: Site, tmp_path: Path) -> None:
    payload = tmp_path / "note.json"
    note = {"title": "日本語 👍🏽", "body": "ünïcödé", "data": {"order": 42},
            "actions": [{"action": "open", "title": "Open"}]}
    payload.write_text(json.dumps(note, ensure_ascii=False), encoding="utf-8")
    result = run("send", "--config", str(site.config), "--user", "alice", "--payload",
                 str(payload))
    assert result.exit_code == 0, result.output
    (message,) = site.received("alice-phone")
    assert message == {"webpush_kit": 1, **note}


def test_dry_run_sends_nothing(site: Site) -> None:
    result = run("send", "--config", str(site.config), "--all", "--title", "x", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "4 active subscription(s)" in result.output and "nothing sent" in result.output
    assert all(site.service.requests_for(n) == [] for n in site.people)
    as_json = run("send", "--config", str(site.config), "--user", "alice", "--title", "x",
                  "--dry-run", "--json")
    assert as_json.exit_code == 0, as_json.output
    answer = json.loads(as_json.output)
    assert answer["dry_run"] is True and answer["sent"] == 0 and answer["recipients"] >= 1
    assert all(site.service.requests_for(n) == [] for n in site.people)


def test_a_user_without_subscriptions_is_not_an_error(site: Site) -> None:
    result = run("send", "--config", str(site.config), "--user", "nobody", "--title", "x")
    assert result.exit_code == 0 and "nothing sent" in result.output


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--user", "alice"], "--title"),
        (["--user", "alice", "--body", "no title"], "--title"),
        (["--user", "alice", "--title", "  "], "title"),
        (["--all", "--user", "alice", "--title", "x"], "exactly one of --user ID and --all"),
        (["--title", "x"], "exactly one of --user ID and --all"),
        (["--all", "--title", "x", "--topic", "not a topic!"], "--topic"),
        (["--all", "--title", "x", "--ttl", "0"], "--ttl"),
        (["--all", "--title", "x", "--url", "javascript:alert(1)"], "url"),
        (["--all", "--title", "x", "--urgency", "asap"], "urgency"),
        (["--all", "--payload", "{bad}", "--title", "x"], "not both"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(site: Site, args: list[str], fragment: str) -> None:
    result = run("send", "--config", str(site.config), *args)
    assert result.exit_code == 2, result.output
    assert fragment in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert all(site.service.requests_for(n) == [] for n in site.people)


def test_url_help_says_what_is_accepted(site: Site) -> None:
    """--help names exactly what the Notification model accepts for --url and --icon:
    a root-relative path or an http(s) URL (http is accepted on purpose: a site in
    development runs on http://localhost)."""
    help_text = " ".join(run("send", "--help").output.split())
    for option in ("--url", "--icon"):
        described = help_text.split(f"{option} TEXT", 1)[1].split(" --", 1)[0]
        assert "root-relative path" in described and "http(s) URL" in described, described
    for url in ("/orders/42", "https://shop.example/a", "http://shop.example/a"):
        ok = run("send", "--config", str(site.config), "--all", "--title", "x", "--url", url,
                 "--icon", url, "--dry-run")
        assert ok.exit_code == 0, ok.output
    for url in ("//evil.example/", "javascript:alert(1)", "ftp://shop.example/"):
        bad = run("send", "--config", str(site.config), "--all", "--title", "x", "--url", url)
        assert bad.exit_code == 2 and "root-relative path" in bad.output, bad.output
    assert all(site.service.requests_for(n) == [] for n in site.people)


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ("{not json", "not valid JSON (Expecting property name enclosed in double quotes at "
                      "line 1 column 2)"),
        ('{"body": "no title"}', "title: is required"),
        ('["a list"]', "must be a JSON object"),
        ('{"title": "x", "colour": "red"}', "unknown member 'colour'"),
        ('{"title": "' + "x" * 5000 + '"}', "at most 3993"),
    ],
)
def test_bad_payload_file_is_one_line_and_exit_2(
    site: Site, tmp_path: Path, content: str, fragment: str
) -> None:
    payload = tmp_path / "p.json"
    payload.write_text(content)
    result = run("send", "--config", str(site.config), "--all", "--payload", str(payload))
    assert result.exit_code == 2, result.output
    assert fragment in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_missing_payload_file(site: Site, tmp_path: Path) -> None:
    result = run("send", "--config", str(site.config), "--all", "--payload",
                 str(tmp_path / "missing.json"))
    assert result.exit_code == 2 and "cannot read" in result.output


def test_no_database_is_a_clear_error(tmp_path: Path) -> None:
    key_file = tmp_path / "vapid.pem"
    VapidKey.generate().save_pem(key_file)
    config = write_config(tmp_path / "webpush.toml", key_file, None)
    result = run("send", "--config", str(config), "--all", "--title", "x")
    assert result.exit_code == 2
    assert "database_url is not set" in result.output and "Traceback" not in result.output


def test_no_vapid_key_is_a_clear_error(tmp_path: Path) -> None:
    config = write_config(tmp_path / "webpush.toml", None, f"sqlite:///{tmp_path / 'db'}")
    result = run("send", "--config", str(config), "--all", "--title", "x")
    assert result.exit_code == 2 and "vapid_private_key is not set" in result.output


def test_key_file_that_is_not_a_key_is_a_clear_error(tmp_path: Path) -> None:
    key_file = tmp_path / "vapid.pem"
    key_file.write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    config = write_config(tmp_path / "webpush.toml", key_file, f"sqlite:///{tmp_path / 'db'}")
    result = run("send", "--config", str(config), "--all", "--title", "x")
    assert result.exit_code == 2
    assert "vapid_private_key" in result.output and "Traceback" not in result.output
    assert "nope" not in result.output  # the file's content is never echoed


def test_no_config_file(tmp_path: Path) -> None:
    result = run("send", "--all", "--title", "x")
    assert result.exit_code == 2 and "--config" in result.output


def test_real_process_sends_and_reports(site: Site) -> None:
    """The installed console script, in its own process, against the loopback service."""
    proc = subprocess.run([str(SCRIPT), "send", "--config", str(site.config), "--all",
                           "--title", "Hello ✓"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "2 delivered" in proc.stdout and "1 rejected" in proc.stdout
    assert "Traceback" not in proc.stderr
    bad = subprocess.run([str(SCRIPT), "send", "--config", str(site.config), "--all"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1].startswith("Error: ")


# --- flask webpush ----------------------------------------------------------------------


def test_flask_webpush_send_with_the_sample_site_in_self_hosted_mode(
    tmp_path: Path, service: PushService
) -> None:
    app = create_app({"SAMPLE_INSTANCE_PATH": str(tmp_path / "instance")}, mode="self-hosted")
    key = VapidKey.load(next((tmp_path / "instance").glob("*.pem")))
    store = WebPushKit.store(app)
    recipient = Recipient.generate()
    store.save_subscription(Subscription(service.endpoint("a"), recipient.p256dh,
                                         recipient.auth), user_id="alice", anonymous_id=None)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["webpush", "send", "--user", "alice", "--title", "Hej ✓"])
    assert result.exit_code == 0, result.output
    assert "1 delivered" in result.output
    (request,) = service.requests_for("a")
    assert json.loads(recipient.decrypt(request))["title"] == "Hej ✓"
    assert request.headers["authorization"].endswith("k=" + key.public_key_b64)
    # The same key through `flask webpush vapid public-key` (the app's settings).
    shown = runner.invoke(args=["webpush", "vapid", "public-key"])
    assert shown.output.strip() == key.public_key_b64
    # Bad input is exit 2 there too.
    bad = runner.invoke(args=["webpush", "send", "--all"])
    assert bad.exit_code == 2 and "--title" in bad.output


def test_flask_webpush_send_without_a_key_is_exit_2(tmp_path: Path) -> None:
    app = create_app({"SAMPLE_INSTANCE_PATH": str(tmp_path)})  # MoEngage mode: no key
    result = app.test_cli_runner().invoke(args=["webpush", "send", "--all", "--title", "x"])
    assert result.exit_code == 2 and "vapid_private_key" in result.output


def test_flask_command_in_a_real_process(tmp_path: Path, service: PushService) -> None:
    instance = tmp_path / "instance"
    app = create_app({"SAMPLE_INSTANCE_PATH": str(instance)}, mode="self-hosted")
    recipient = Recipient.generate()
    WebPushKit.store(app).save_subscription(
        Subscription(service.endpoint("p"), recipient.p256dh, recipient.auth),
        user_id="bea", anonymous_id=None)
    WebPushKit.store(app).dispose()
    flask = Path(sys.executable).with_name("flask")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SAMPLE_MODE": "self-hosted",
           "SAMPLE_INSTANCE_PATH": str(instance)}
    proc = subprocess.run([str(flask), "--app", "sample_site:create_app", "webpush", "send",
                           "--user", "bea", "--title", "from flask"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "1 delivered" in proc.stdout
    assert json.loads(recipient.decrypt(service.requests_for("p")[0]))["title"] == "from flask"
