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


def test_send_shows_no_password_of_an_unsupported_database(tmp_path: Path) -> None:
    config = _config(tmp_path, "mysql://u:s3cretpw@127.0.0.1/shop")
    result = CliRunner().invoke(main, ["send", "--config", str(config), "--all",
                                       "--title", "hi"])
    assert result.exit_code == 2, result.output
    assert "only SQLite" in result.output and "u:***@127.0.0.1" in result.output
    assert "s3cretpw" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("extra", [[], ["--dry-run"], ["--dry-run", "--json"]])
def test_send_never_creates_tables_in_a_database_that_has_none(
    tmp_path: Path, extra: list[str]
) -> None:
    import sqlite3

    db = tmp_path / "shop.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY)")
    config = _config(tmp_path, f"sqlite:///{db}")
    result = CliRunner().invoke(main, ["send", "--config", str(config), "--all",
                                       "--title", "hi", *extra])
    assert result.exit_code == 2, result.output
    assert "holds no webpush_kit tables" in result.output and "nothing sent" in result.output
    with sqlite3.connect(db) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert tables == {"customers"}


@pytest.mark.parametrize("problem", ["missing folder", "read-only folder"])
def test_init_into_a_folder_it_cannot_write_is_one_line(tmp_path: Path, problem: str) -> None:
    import os

    if problem == "missing folder":
        out = tmp_path / "nope" / "webpush.toml"
    else:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o500)
        out = folder / "webpush.toml"
        if os.access(folder, os.W_OK):  # root ignores the mode bits
            folder.chmod(0o700)
            out = folder / "sub" / "webpush.toml"
    result = CliRunner().invoke(main, ["init", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert result.output.startswith(f"Error: cannot write {out}")
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
