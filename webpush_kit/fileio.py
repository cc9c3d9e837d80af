"""Safe file writes for the commands that patch a site's files, and ``--dry-run`` diffs.

:func:`write_atomic` never leaves a half-written file: the data goes to a temporary file
in the same directory (same file system), is fsynced, gets the original's permission
bits, and is moved over the target with :func:`os.replace`, which is atomic on POSIX and
Windows. If anything fails -- including ``KeyboardInterrupt`` -- the temporary file and
any backup made by this call are removed and the original is untouched.

A symlinked target is written through: the file it points to is replaced, so the link
stays a link.

Errors name the file the caller asked for, never the temporary file: an ``OSError`` from
writing ``.NAME.xxxx.tmp`` is raised again with ``filename`` set to the target.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import os
import secrets
import stat
from pathlib import Path

__all__ = ["unified_diff", "write_atomic"]

_MAX_BACKUPS = 10_000


def _fsync_dir(directory: Path) -> None:
    """Persist the rename itself (POSIX); not possible or needed everywhere."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_exclusive(path: Path, perm: int) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    return os.open(path, flags, perm)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _make_backup(target: Path, perm: int) -> Path:
    """Copy ``target`` to ``target.bak`` (or ``.bak.1``, ``.bak.2``...), never overwriting."""
    original = target.read_bytes()
    for n in range(_MAX_BACKUPS):
        candidate = target.with_name(target.name + (".bak" if n == 0 else f".bak.{n}"))
        try:
            fd = _create_exclusive(candidate, 0o600)
        except FileExistsError:
            continue
        try:
            _write_all(fd, original)
            os.chmod(candidate, perm)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            candidate.unlink(missing_ok=True)
            raise
        os.close(fd)
        with contextlib.suppress(OSError):
            st = target.stat()
            os.utime(candidate, ns=(st.st_atime_ns, st.st_mtime_ns))
        return candidate
    raise FileExistsError(f"{target}.bak ... {target}.bak.{_MAX_BACKUPS - 1} all exist")


def write_atomic(
    path: Path,
    data: bytes,
    *,
    mode: int | None = None,
    backup: bool = False,
    overwrite: bool = True,
) -> Path | None:
    """Replace ``path`` with ``data`` atomically; return the backup's path, if one was made.

    ``mode``: permission bits for the file; by default the existing file's, or for a new
    file ``0o666`` minus the umask (as ``open()`` would). When the bits are known the
    temporary file is created ``0o600`` and widened only once written, so a secret is never
    readable by others, not even for a moment. With ``backup`` and an existing
    file, its old content is kept first as ``PATH.bak`` -- or ``PATH.bak.1``, ``.bak.2``
    ... when that exists; an existing backup is never overwritten.

    ``overwrite=False`` creates the file only if nothing is at ``path`` (atomically: the
    finished temporary file is hard-linked into place), else raises ``FileExistsError``
    naming ``path``. ``backup`` does not apply then.
    """
    path = Path(path)
    target = path.resolve() if overwrite and path.is_symlink() else path
    directory = target.parent
    try:
        st: os.stat_result | None = target.stat() if overwrite else target.lstat()
    except FileNotFoundError:
        st = None
    if st is not None and not overwrite:
        raise _exists(target)
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, "exists and is not a regular file", str(target))
    keep_perm = stat.S_IMODE(st.st_mode) if st is not None else None
    perm = mode if mode is not None else keep_perm

    backup_path: Path | None = None
    tmp: Path | None = None
    try:
        if backup and st is not None:
            backup_path = _make_backup(target, keep_perm if keep_perm is not None else 0o600)
        for _ in range(100):
            candidate = directory / f".{target.name}.{secrets.token_hex(6)}.tmp"
            try:
                # Known bits: 0o600 until written. Otherwise 0o666 & ~umask for a new
                # file, as open() would make it (the kernel applies the umask).
                fd = _create_exclusive(candidate, 0o600 if perm is not None else 0o666)
            except FileExistsError:
                continue
            tmp = candidate
            break
        else:  # pragma: no cover - 100 random collisions
            raise FileExistsError(errno.EEXIST, "could not create a temporary file beside it",
                                  str(target))
        try:
            _write_all(fd, data)
            if perm is not None:
                os.chmod(tmp, perm)
            if st is not None and hasattr(os, "chown"):
                with contextlib.suppress(OSError):  # only root may give files away
                    os.chown(tmp, st.st_uid, st.st_gid)
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)  # atomic "create if absent"
            except FileExistsError:
                raise _exists(target) from None
            tmp.unlink()
        tmp = None
    except OSError as exc:
        _discard(tmp, backup_path)
        if exc.errno is not None and (exc.filename is None or Path(exc.filename) != target):
            # Name the file the caller asked for, not ".NAME.xxxx.tmp" (or nothing).
            raise OSError(exc.errno, exc.strerror or str(exc), str(target)) from exc
        raise
    except BaseException:
        _discard(tmp, backup_path)
        raise
    _fsync_dir(directory)
    return backup_path


def _exists(target: Path) -> FileExistsError:
    return FileExistsError(
        errno.EEXIST, "File exists; remove it first, or pass overwrite=True to replace it",
        str(target),
    )


def _discard(tmp: Path | None, backup_path: Path | None) -> None:
    """Remove what a failed write made: the temporary file and this call's backup."""
    if tmp is not None:
        with contextlib.suppress(OSError):
            tmp.unlink()
    if backup_path is not None:
        with contextlib.suppress(OSError):
            backup_path.unlink()


def _lines(text: str) -> list[str]:
    """Split on ``\\n`` only (keeping it): U+2028 or a lone ``\\r`` is not a line break here."""
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def unified_diff(old: bytes | None, new: bytes, path: str) -> str:
    """A ``git diff``-style unified diff of a file's bytes, for ``--dry-run``.

    ``old`` is ``None`` for a file that does not exist yet. Bytes are decoded as UTF-8
    with replacement characters for display only. Returns ``""`` when nothing changes.
    """
    if old == new:
        return ""
    a = _lines(old.decode("utf-8", errors="replace")) if old is not None else []
    b = _lines(new.decode("utf-8", errors="replace"))
    out: list[str] = []
    for line in difflib.unified_diff(
        a, b, fromfile="/dev/null" if old is None else f"a/{path}", tofile=f"b/{path}"
    ):
        if line.endswith("\n"):
            out.append(line)
        else:
            out.append(line + "\n\\ No newline at end of file\n")
    return "".join(out)
