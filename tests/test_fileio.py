"""Atomic writes with backups, and ``--dry-run`` diffs."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from webpush_kit.fileio import unified_diff, write_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_new_file_gets_umask_default(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    old_umask = os.umask(0o022)
    try:
        assert write_atomic(target, b"{}\n") is None
    finally:
        os.umask(old_umask)
    assert target.read_bytes() == b"{}\n"
    assert _mode(target) == 0o644
    assert _leftovers(tmp_path) == []


def test_keeps_existing_mode(tmp_path: Path) -> None:
    target = tmp_path / "serviceworker.js"
    target.write_bytes(b"old")
    target.chmod(0o640)
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o640


def test_explicit_mode_wins(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_bytes(b"old")
    target.chmod(0o600)
    write_atomic(target, b"new", mode=0o664)
    assert _mode(target) == 0o664
    write_atomic(tmp_path / "b.txt", b"x", mode=0o600)
    assert _mode(tmp_path / "b.txt") == 0o600


def test_replaces_inode_not_contents_in_place(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_bytes(b"old")
    reader = target.open("rb")  # a reader of the old file keeps seeing the old bytes
    write_atomic(target, b"new contents")
    assert reader.read() == b"old"
    reader.close()


def test_backup_numbering_never_overwrites(tmp_path: Path) -> None:
    target = tmp_path / "manifest.json"
    target.write_bytes(b"v1")
    target.chmod(0o640)
    first = write_atomic(target, b"v2", backup=True)
    second = write_atomic(target, b"v3", backup=True)
    third = write_atomic(target, b"v4", backup=True)
    assert first == tmp_path / "manifest.json.bak"
    assert second == tmp_path / "manifest.json.bak.1"
    assert third == tmp_path / "manifest.json.bak.2"
    assert [p.read_bytes() for p in (first, second, third)] == [b"v1", b"v2", b"v3"]
    assert _mode(first) == 0o640
    assert target.read_bytes() == b"v4"


def test_backup_fills_gaps_but_skips_existing(tmp_path: Path) -> None:
    target = tmp_path / "sw.js"
    target.write_bytes(b"current")
    (tmp_path / "sw.js.bak").write_bytes(b"someone else's backup")
    (tmp_path / "sw.js.bak.2").write_bytes(b"another")
    made = write_atomic(target, b"next", backup=True)
    assert made == tmp_path / "sw.js.bak.1"
    assert made.read_bytes() == b"current"
    assert (tmp_path / "sw.js.bak").read_bytes() == b"someone else's backup"
    assert (tmp_path / "sw.js.bak.2").read_bytes() == b"another"


def test_no_backup_for_a_new_file(tmp_path: Path) -> None:
    assert write_atomic(tmp_path / "new.json", b"{}", backup=True) is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.json"]


def test_interrupted_replace_leaves_original_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "manifest.json"
    target.write_bytes(b"original")
    target.chmod(0o644)

    def boom(src: object, dst: object) -> None:
        raise KeyboardInterrupt  # e.g. Ctrl-C at the worst moment

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, b"new", backup=True)
    assert target.read_bytes() == b"original"
    assert _mode(target) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]  # no .tmp, no .bak


def test_failed_write_leaves_original(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a.txt"
    target.write_bytes(b"original")
    real_write = os.write
    calls = []

    def half_write(fd: int, data: bytes | memoryview) -> int:
        calls.append(fd)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        return real_write(fd, bytes(data)[:3])

    monkeypatch.setattr(os, "write", half_write)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, b"0123456789")
    assert target.read_bytes() == b"original"
    assert _leftovers(tmp_path) == []


def test_short_writes_are_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = os.write

    def short(fd: int, data: bytes | memoryview) -> int:
        return real_write(fd, bytes(data)[:2])

    monkeypatch.setattr(os, "write", short)
    write_atomic(tmp_path / "a.txt", b"0123456789")
    assert (tmp_path / "a.txt").read_bytes() == b"0123456789"


def test_writes_through_symlink(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    real.write_bytes(b"old")
    link = tmp_path / "manifest.json"
    link.symlink_to(real)
    backup = write_atomic(link, b"new", backup=True)
    assert link.is_symlink()
    assert real.read_bytes() == b"new"
    assert backup == tmp_path / "real.json.bak"


def test_refuses_a_directory(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(IsADirectoryError):
        write_atomic(tmp_path / "d", b"x")
    assert _leftovers(tmp_path) == []


def test_diff_shows_changes_with_paths() -> None:
    old = b'{\n  "name": "Shop"\n}\n'
    new = b'{\n  "name": "Shop",\n  "gcm_sender_id": "540868316921"\n}\n'
    diff = unified_diff(old, new, "static/manifest.json")
    assert diff.splitlines() == [
        "--- a/static/manifest.json",
        "+++ b/static/manifest.json",
        "@@ -1,3 +1,4 @@",
        " {",
        '-  "name": "Shop"',
        '+  "name": "Shop",',
        '+  "gcm_sender_id": "540868316921"',
        " }",
    ]


def test_diff_of_equal_bytes_is_empty() -> None:
    assert unified_diff(b"same", b"same", "x") == ""


def test_diff_marks_missing_final_newline_and_new_files() -> None:
    diff = unified_diff(b"a\nb", b"a\nc", "sw.js")
    assert diff.endswith("-b\n\\ No newline at end of file\n+c\n\\ No newline at end of file\n")
    created = unified_diff(None, b"x\n", "sw.js")
    assert created.startswith("--- /dev/null\n+++ b/sw.js\n@@ -0,0 +1 @@\n+x\n")


def test_diff_tolerates_undecodable_bytes_and_keeps_crlf() -> None:
    diff = unified_diff(b"caf\xe9\r\n", b"caf\xc3\xa9\r\n", "index.html")
    assert "-caf\ufffd\r\n" in diff
    assert "+café\r\n" in diff
    # U+2028 inside a line is not a line break
    assert unified_diff("a\u2028b\n".encode(), b"a\n", "x").count("\n") == 5


# --- errors name the real file -----------------------------------------------------------


def test_overwrite_false_creates_only_a_new_file(tmp_path: Path) -> None:
    target = tmp_path / "key.pem"
    write_atomic(target, b"first", mode=0o600, overwrite=False)
    assert target.read_bytes() == b"first" and _mode(target) == 0o600
    with pytest.raises(FileExistsError) as info:
        write_atomic(target, b"second", overwrite=False)
    assert info.value.filename == str(target)
    assert "remove it first, or pass overwrite=True" in str(info.value)
    assert target.read_bytes() == b"first"
    assert _leftovers(tmp_path) == []
    # A dangling symlink is something at that path too: nothing is written through it.
    link = tmp_path / "link.pem"
    link.symlink_to(tmp_path / "nowhere.pem")
    with pytest.raises(FileExistsError):
        write_atomic(link, b"x", overwrite=False)
    assert not (tmp_path / "nowhere.pem").exists()


def test_overwrite_false_loses_a_race_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process creates the file between the check and the link."""
    target = tmp_path / "key.pem"
    real_link = os.link

    def racing_link(src: str, dst: str) -> None:
        Path(dst).write_bytes(b"theirs")
        real_link(src, dst)

    monkeypatch.setattr(os, "link", racing_link)
    with pytest.raises(FileExistsError) as info:
        write_atomic(target, b"ours", overwrite=False)
    assert info.value.filename == str(target) and ".tmp" not in str(info.value)
    assert target.read_bytes() == b"theirs"
    assert _leftovers(tmp_path) == []


def test_errors_name_the_target_not_the_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "missing-folder" / "manifest.json"
    with pytest.raises(FileNotFoundError) as info:
        write_atomic(target, b"{}")
    assert info.value.filename == str(target)
    assert ".tmp" not in str(info.value)


def test_a_secret_is_never_readable_by_others_while_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    modes: list[int] = []
    real_write = os.write

    def spy(fd: int, data: bytes | memoryview) -> int:
        modes.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_write(fd, data)

    old_umask = os.umask(0)
    try:
        monkeypatch.setattr(os, "write", spy)
        write_atomic(tmp_path / "secret.pem", b"key", mode=0o600)
    finally:
        os.umask(old_umask)
    assert modes and set(modes) == {0o600}
