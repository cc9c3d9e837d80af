"""Bad input on the command line: one clear line, exit status 2, never a traceback.

Cases found by trying the CLI from a fresh clone as a newcomer would.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from webpush_kit.cli import main
from webpush_kit.vapid import VapidKey


@pytest.mark.parametrize("target", ["http://[::1", "http://exa mple.com/", "ftp://x.example/",
                                    "https:///nohost"])
def test_doctor_refuses_a_malformed_url(target: str) -> None:
    result = CliRunner().invoke(main, ["doctor", target])
    assert result.exit_code == 2, result.output
    assert "Invalid value for TARGET" in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def _config(tmp_path: Path, database_url: str) -> Path:
    key = tmp_path / "vapid.pem"
    VapidKey.generate().save_pem(key)
    path = tmp_path / "webpush.toml"
    path.write_text(f'[push]\nvapid_private_key = "{key}"\n'
                    'vapid_subject = "mailto:push@example.com"\n'
                    f'[store]\ndatabase_url = "{database_url}"\n', encoding="utf-8")
    return path


def test_send_never_creates_a_database_at_a_mistyped_path(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "webpush_kit.sqlite3"
    config = _config(tmp_path, f"sqlite:///{missing}")
    result = CliRunner().invoke(main, ["send", "--config", str(config), "--all",
                                       "--title", "hi"])
    assert result.exit_code == 2, result.output
    assert "no SQLite database at" in result.output
    assert not missing.exists() and not missing.parent.exists()


def test_send_with_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    config = _config(tmp_path, "postgresql://user:secret@127.0.0.1:1/webpush")
    result = CliRunner().invoke(main, ["send", "--config", str(config), "--all",
                                       "--title", "hi"])
    assert result.exit_code == 2, result.output
    assert "cannot read" in result.output and "Connection refused" in result.output
    assert "secret" not in result.output  # the password is never printed
    assert len(result.output.strip().splitlines()) == 1
