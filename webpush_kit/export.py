"""Static export for any web server, and patching a site's own files (the seed's 2.a-2.c).

Everything here is planned first and written second: :func:`plan_export` and the
``plan_*`` patch functions read the disk and return what they would write, so the CLI can
show a ``--dry-run`` diff, refuse before touching anything, or apply the plan with
:func:`apply_export` / :func:`apply_patch`. Every write is atomic
(:func:`~webpush_kit.fileio.write_atomic`) and skipped when the bytes are already right,
so re-running changes nothing, not even a modification time.

The exported assets come from the same :func:`~webpush_kit.assets.render_assets` as the
Flask blueprint, so a static site serves the very bytes a Flask site would. File paths
inside the export folder mirror URL paths, so the folder can be the web root. A small state
file (``.webpush-kit-export.json``) records the SHA-256 of every file we wrote: a file we
did not write, or that someone changed since, is "not ours" and is only overwritten with
``force``.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import unquote

from webpush_kit.assets import Asset, AssetBundle, manifest_members, render_template
from webpush_kit.errors import ValidationError
from webpush_kit.fileio import unified_diff, write_atomic
from webpush_kit.html import inject_head
from webpush_kit.merge import merge_manifest, merge_service_worker
from webpush_kit.settings import DEDICATED_MEMBERS, Settings, iter_options, toml_key

__all__ = [
    "SERVERS",
    "STATE_FILE",
    "ExportConflictError",
    "ExportPlan",
    "FilePatch",
    "PlannedFile",
    "apply_export",
    "apply_patch",
    "configured_manifest_members",
    "export_files",
    "plan_export",
    "plan_merge_manifest",
    "plan_merge_sw",
    "plan_patch_html",
    "read_export_state",
    "server_config_name",
    "settings_file",
    "url_to_relpath",
]

STATE_FILE: Final = ".webpush-kit-export.json"
HEAD_SNIPPET_FILE: Final = "head-snippet.html"
SERVERS: Final = ("nginx", "apache", "caddy")
_SERVER_FILES: Final = {
    "nginx": "webpush-kit.nginx.conf",
    "apache": ".htaccess",
    "caddy": "webpush-kit.Caddyfile",
}
_SERVER_TEMPLATES: Final = {
    "nginx": "server/nginx.conf.j2",
    "apache": "server/htaccess.j2",
    "caddy": "server/Caddyfile.j2",
}
# After percent-decoding, a URL path goes into server configs as a quoted string; these
# characters would need escaping rules that differ per server (or do not exist: nginx
# expands "$" in add_header values), so a path holding one is refused.
_UNSAFE_IN_CONFIG: Final = re.compile(r"[\"'\\$`{}\s\x00-\x1f\x7f]")


def server_config_name(server: str) -> str:
    """The file name of a server's configuration inside the export folder."""
    return _SERVER_FILES[server]


def url_to_relpath(url_path: str) -> str:
    """``/x/manifest.json`` -> ``x/manifest.json``: where a URL path lives in the export
    folder (percent-escapes decoded, as web servers map URLs to files)."""
    rel = unquote(url_path).lstrip("/")
    parts = rel.split("/")
    if not rel or any(p in ("", ".", "..") for p in parts):
        raise ValidationError(f"{url_path!r} does not name a file", code="invalid_export_path")
    return rel


def _prefix_dir(bundle: AssetBundle) -> str:
    """Folder (relative, with a trailing ``/`` unless empty) of the URL prefix."""
    rel = unquote(bundle.prefix).strip("/")
    return rel + "/" if rel else ""


# --------------------------------------------------------------------------------------
# server configuration
# --------------------------------------------------------------------------------------


def _config_safe(value: str, what: str) -> str:
    bad = _UNSAFE_IN_CONFIG.search(value)
    if bad:
        raise ValidationError(
            f"{value!r} contains {bad.group()!r}, which cannot be written safely into "
            "nginx, Apache and Caddy configuration; choose a path of letters, digits, "
            "'/', '.', '_' and '-'",
            field=what,
            code="invalid_export_path",
        )
    return value


def _locations(bundle: AssetBundle, quote: Callable[[str], str]) -> list[dict[str, Any]]:
    """Per asset: its decoded URL path, content type and headers, quoted by ``quote``."""
    out = []
    for asset in bundle.assets:
        path = _config_safe(unquote(asset.path), f"{asset.name} path")
        if "%" in path:
            raise ValidationError(f"{asset.path!r} decodes to a path holding '%'",
                                  field=f"{asset.name} path", code="invalid_export_path")
        headers = [
            (name, quote(_config_safe(value, f"{name} header")))
            for name, value in asset.all_headers()
            # the type is set per server below; servers make their own ETag
            if name not in ("Content-Type", "ETag")
        ]
        out.append({
            "name": f"{asset.name}: {_purpose(asset, bundle)}",
            "matcher": "webpush_kit_" + re.sub(r"[^A-Za-z0-9_]", "_", asset.name.split(".")[0]),
            "path": quote(path),
            "content_type": quote(asset.content_type),
            "headers": headers,
        })
    return out


def _purpose(asset: Asset, bundle: AssetBundle) -> str:
    if asset is bundle.serviceworker:
        return f"JavaScript type, no redirect, always revalidated, may control {bundle.scope}"
    if asset is bundle.manifest:
        return "the manifest type, revalidated so name and icon changes reach installs"
    return "the browser client, revalidated so it always matches the worker"


def _double_quoted(value: str) -> str:
    """A quoted string for nginx, Apache and Caddy alike (values hold no quote, backslash,
    ``$``, brace or whitespace: :func:`_config_safe` refused those)."""
    return '"' + value + '"'


def _server_configs(bundle: AssetBundle, servers: Iterable[str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    config_dir = "/" + _prefix_dir(bundle)
    for server in servers:
        if server not in _SERVER_FILES:
            raise ValidationError(f"unknown server {server!r}; choose from {', '.join(SERVERS)}",
                                  field="server", code="invalid_export_server")
        locations = _locations(bundle, _double_quoted)
        if server == "apache":
            for loc in locations:  # an ap_expr string inside the directive's double quotes
                loc["path"] = "'" + loc["path"][1:-1] + "'"
        text = render_template(_SERVER_TEMPLATES[server], locations=locations,
                               config_dir=config_dir)
        out[_prefix_dir(bundle) + _SERVER_FILES[server]] = text.encode("utf-8")
    return out


# --------------------------------------------------------------------------------------
# the export plan
# --------------------------------------------------------------------------------------


def export_files(
    bundle: AssetBundle,
    *,
    servers: Sequence[str] = SERVERS,
    skip: Iterable[str] = (),
) -> dict[str, bytes]:
    """Relative path -> bytes of every file the export writes.

    ``skip`` names assets not to write (``"manifest"``, ``"serviceworker"``): the site
    uses its own file instead, patched with ``--merge-manifest`` / ``--merge-sw``.
    """
    skipped = set(skip)
    files: dict[str, bytes] = {}

    def add(rel: str, data: bytes) -> None:
        if rel in files or rel == STATE_FILE:
            raise ValidationError(
                f"two exported files would both be {rel!r}; give the manifest, worker and "
                "client paths names that differ from each other and from "
                f"{HEAD_SNIPPET_FILE} and the server configuration files",
                code="invalid_export_path",
            )
        files[rel] = data

    for key in ("manifest", "serviceworker", "client"):
        if key not in skipped:
            asset: Asset = getattr(bundle, key)
            add(url_to_relpath(asset.path), asset.body)
    add(_prefix_dir(bundle) + HEAD_SNIPPET_FILE, bundle.head_snippet + b"\n")
    for rel, data in _server_configs(bundle, servers).items():
        add(rel, data)
    return files


FileStatus = Literal["create", "update", "unchanged", "foreign"]


@dataclass(frozen=True)
class PlannedFile:
    """One file of the export: what is on disk now (``old``) and what we would write."""

    path: str  # relative to the export folder, "/"-separated
    data: bytes
    old: bytes | None
    status: FileStatus

    @property
    def changes(self) -> bool:
        return self.status != "unchanged"


@dataclass(frozen=True)
class ExportPlan:
    out_dir: Path
    files: tuple[PlannedFile, ...]
    state_old: bytes | None
    state_new: bytes
    notes: tuple[str, ...] = ()

    @property
    def conflicts(self) -> list[PlannedFile]:
        """Files we would overwrite although we did not write them (or they changed)."""
        return [f for f in self.files if f.status == "foreign"]

    @property
    def changed(self) -> list[PlannedFile]:
        return [f for f in self.files if f.changes]

    def diff(self) -> str:
        return "".join(unified_diff(f.old, f.data, f.path) for f in self.changed)


class ExportConflictError(Exception):
    """The export would overwrite files it did not write; nothing was written."""

    def __init__(self, out_dir: Path, conflicts: Sequence[PlannedFile]) -> None:
        self.conflicts = list(conflicts)
        names = ", ".join(str(out_dir / f.path) for f in conflicts)
        apache = any(f.path.endswith(".htaccess") for f in conflicts)
        hint = (" (an existing .htaccess usually holds the site's own rules: leave Apache "
                "out with --server nginx --server caddy and copy our lines into it by hand)"
                if apache else "")
        super().__init__(
            f"not overwriting {names}: webpush-kit did not write "
            f"{'it' if len(conflicts) == 1 else 'them'}, or "
            f"{'it was' if len(conflicts) == 1 else 'they were'} changed since{hint}; "
            f"move {'it' if len(conflicts) == 1 else 'them'} away, or run again with --force "
            "to replace (a .bak copy is kept)"
        )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_state(out_dir: Path) -> tuple[bytes | None, dict[str, str], str | None]:
    """(raw bytes, recorded hashes, problem) of the state file."""
    path = out_dir / STATE_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None, {}, None
    try:
        data = json.loads(raw)
        files = data["files"]
        if not isinstance(files, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items()
        ):
            raise TypeError
    except (ValueError, TypeError, KeyError):
        return raw, {}, f"{path} is not a webpush-kit state file; every existing file " \
                        "counts as not ours"
    return raw, dict(files), None


def read_export_state(out_dir: Path) -> dict[str, Any]:
    """The state file's content (``{}`` when absent or unreadable): used by ``doctor``."""
    try:
        data = json.loads((out_dir / STATE_FILE).read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def plan_export(
    bundle: AssetBundle,
    out_dir: Path,
    *,
    servers: Sequence[str] = SERVERS,
    skip: Iterable[str] = (),
) -> ExportPlan:
    """Compare what the export would write with what ``out_dir`` holds; write nothing."""
    out_dir = Path(out_dir)
    wanted = export_files(bundle, servers=servers, skip=skip)
    state_raw, recorded, problem = _read_state(out_dir)
    notes = [problem] if problem else []
    planned: list[PlannedFile] = []
    new_state = dict(recorded)
    for rel, data in sorted(wanted.items()):
        target = out_dir / rel
        try:
            old: bytes | None = target.read_bytes()
        except FileNotFoundError:
            old = None
        except (IsADirectoryError, NotADirectoryError):
            raise ValidationError(f"{target} is in the way (a folder, or under a file)",
                                  code="invalid_export_path") from None
        status: FileStatus
        if old == data:
            status = "unchanged"
        elif old is None:
            status = "create"
        elif recorded.get(rel) == _sha256(old):
            status = "update"
        else:
            status = "foreign"
        planned.append(PlannedFile(rel, data, old, status))
        new_state[rel] = _sha256(data)
    for rel in sorted(set(recorded) - set(wanted)):
        notes.append(f"{rel} is no longer generated by these settings; it was left in place")
    state = {
        "about": "Files written by `webpush-kit export` and their SHA-256; a file whose "
                 "hash differs is not overwritten without --force.",
        "prefix": bundle.prefix,
        "files": dict(sorted(new_state.items())),
    }
    state_new = (json.dumps(state, indent=2, sort_keys=False) + "\n").encode("utf-8")
    return ExportPlan(out_dir, tuple(planned), state_raw, state_new, tuple(notes))


def apply_export(plan: ExportPlan, *, force: bool = False, backup: bool = True) -> list[str]:
    """Write what changed (refusing foreign files unless ``force``); return the paths written.

    Unchanged files are not touched, so their modification times stay as they were. A
    foreign file replaced with ``force`` is kept as ``NAME.bak`` unless ``backup`` is off.
    """
    if plan.conflicts and not force:
        raise ExportConflictError(plan.out_dir, plan.conflicts)
    written: list[str] = []
    for f in plan.changed:
        target = plan.out_dir / f.path
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(target, f.data, backup=backup and f.status == "foreign")
        written.append(f.path)
    if plan.state_new != plan.state_old:
        plan.out_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(plan.out_dir / STATE_FILE, plan.state_new)
    return written


# --------------------------------------------------------------------------------------
# patching the site's own files
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilePatch:
    """A planned change to one of the site's files. ``skipped`` explains a file left alone."""

    path: Path
    old: bytes
    new: bytes
    notes: tuple[str, ...] = ()
    skipped: str | None = None

    @property
    def changed(self) -> bool:
        return self.new != self.old

    def diff(self) -> str:
        return unified_diff(self.old, self.new, str(self.path))


def apply_patch(patch: FilePatch, *, backup: bool = True) -> Path | None:
    """Write the patch atomically if it changes anything; return the backup's path."""
    if not patch.changed:
        return None
    return write_atomic(patch.path, patch.new, backup=backup)


def _read(path: Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise ValidationError(f"{path}: no such file", field=what, code="file_not_found") \
            from None
    except IsADirectoryError:
        raise ValidationError(f"{path} is a folder, not a file", field=what,
                              code="file_not_found") from None


def _decode_utf8(data: bytes, path: Path, what: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"{path} is not UTF-8 (byte {exc.start}); save it as UTF-8 and run again",
            field=what, code="not_utf8",
        ) from None




def configured_manifest_members(settings: Settings, prefix: str = "") -> dict[str, Any]:
    """The manifest members the owner set (not left at their defaults): ``gcm_sender_id``,
    the dedicated manifest settings that differ from their default, and ``manifest_extra``.
    These are what ``--merge-manifest`` adds to, or updates in, the site's own manifest."""
    defaults = Settings()
    members = manifest_members(settings, prefix)
    out: dict[str, Any] = {}
    for name, value in members.items():
        setting = DEDICATED_MEMBERS.get(name)
        if setting is None or getattr(settings, setting) != getattr(defaults, setting):
            out[name] = value
    return out


def plan_merge_manifest(path: Path, settings: Settings, prefix: str = "") -> FilePatch:
    """Add or update the configured members in the site's own manifest (kept byte for byte
    otherwise). Raises :class:`ValidationError` for invalid JSON, naming line and column."""
    path = Path(path)
    old = _read(path, "--merge-manifest")
    text = _decode_utf8(old, path, "--merge-manifest")
    members = configured_manifest_members(settings, prefix)
    if not members:
        return FilePatch(path, old, old, (), "no manifest member is configured (set "
                         "gcm_sender_id or a manifest setting); nothing to merge")
    try:
        result = merge_manifest(text, members)
    except ValidationError as exc:
        raise ValidationError(f"{path}: {exc.message}", code=exc.code) from None
    return FilePatch(path, old, result.text.encode("utf-8"), result.notes)


def plan_merge_sw(path: Path, settings: Settings, prefix: str = "") -> FilePatch:
    """Put the MoEngage ``importScripts`` line (and ``sw_import_scripts``) first in the
    site's own worker, replacing an older MoEngage line such as the seed's dated one."""
    path = Path(path)
    old = _read(path, "--merge-sw")
    text = _decode_utf8(old, path, "--merge-sw")
    url = settings.sw_import_url
    if url is None:
        raise ValidationError(
            "the settings give the worker no MoEngage import; set moengage_app_id (or "
            "moengage_sw_import) before merging into your own worker",
            field="--merge-sw", code="nothing_to_import",
        )

    def prefixed(u: str) -> str:
        return prefix + u if u.startswith("/") and not u.startswith("//") else u

    try:
        result = merge_service_worker(
            text, prefixed(url), extra_imports=[prefixed(u) for u in settings.sw_import_scripts]
        )
    except ValidationError as exc:
        raise ValidationError(f"{path}: {exc.message}", code=exc.code) from None
    return FilePatch(path, old, result.text.encode("utf-8"), result.notes)


_XHTML_SUFFIXES: Final = (".xhtml", ".xht")
_BACKUP_NAME: Final = re.compile(r"\.bak(\.[0-9]+)?$")
_MANIFEST_LINK_RE: Final = re.compile(
    rb"<link\b[^>]*\brel\s*=\s*[\"']?[^\"'>]*\bmanifest\b", re.IGNORECASE
)


def _html_ineligible(data: bytes, path: Path) -> str | None:
    """Why a file must not be patched as bytes, or None. Only the encoding family matters:
    the snippet is ASCII, so any ASCII-compatible charset takes it unchanged."""
    if path.suffix.lower() in _XHTML_SUFFIXES:
        return ("XHTML is parsed as XML and needs <link ... /> in the XHTML namespace; "
                "add the link by hand")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:1024]:
        return "UTF-16 or UTF-32 text (not ASCII-compatible); add the link by hand"
    return None


def plan_patch_html(patterns: Sequence[str], snippet: bytes) -> list[FilePatch]:
    """Insert ``snippet`` into the ``<head>`` of every file matching ``patterns``
    (``glob`` syntax, ``**`` recursive), with the same :func:`inject_head` as the Flask hook.
    Bytes are kept as they are: BOM, charset, line endings."""
    paths: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        # Our own backups (NAME.bak, NAME.bak.1) match "*.htm*" too: never patch those.
        files = [Path(m) for m in matches
                 if Path(m).is_file() and not _BACKUP_NAME.search(Path(m).name)]
        if not files:
            raise ValidationError(f"no file matches {pattern!r}", field="--patch-html",
                                  code="file_not_found")
        paths.extend(p for p in files if p not in paths)
    patches = []
    for path in paths:
        old = path.read_bytes()
        why = _html_ineligible(old, path)
        if why is not None:
            patches.append(FilePatch(path, old, old, (), why))
            continue
        new = inject_head(old, snippet)
        if new != old:
            patches.append(FilePatch(path, old, new, ("added the manifest link and client "
                                                      "script to <head>",)))
        elif snippet in old:
            patches.append(FilePatch(path, old, old, (), "already has our snippet in <head>"))
        elif _MANIFEST_LINK_RE.search(old[:65536]):
            patches.append(FilePatch(path, old, old, (), "already has a manifest link "
                                     "(Chromium uses the first one; left alone)"))
        else:
            patches.append(FilePatch(path, old, old, (), "no place where a link is sure to "
                                     "land in <head> (a fragment, or body content first); "
                                     "add the snippet by hand"))
    return patches


# --------------------------------------------------------------------------------------
# the settings file (`init`)
# --------------------------------------------------------------------------------------

_BARE_KEY: Final = re.compile(r"[A-Za-z0-9_-]+")
_SECRET_FIELDS: Final = ("vapid_private_key", "database_url")


def _toml_string(value: str) -> str:
    # JSON escapes are TOML escapes, except that TOML also forbids a raw DEL and has no
    # surrogate escapes (ensure_ascii=False keeps non-ASCII as UTF-8 text instead).
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def toml_value(value: Any, *, multiline: bool = False) -> str:
    """A TOML literal for a settings value (strings, booleans, numbers, lists, tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("TOML settings cannot hold NaN or infinity")
        return repr(value)
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        inner = ", ".join(f"{_toml_key(str(k))} = {toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }"
    if isinstance(value, (list, tuple)):
        items = [toml_value(v) for v in value]
        if multiline and items:
            return "[\n" + "".join(f"  {item},\n" for item in items) + "]"
        return "[" + ", ".join(items) + "]"
    if value is None:
        raise ValueError("TOML has no null; leave the key out instead")
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


@dataclass(frozen=True)
class _OptionLine:
    doc: list[str]
    line: str
    commented: bool


@dataclass(frozen=True)
class _Section:
    name: str
    options: list[_OptionLine] = field(default_factory=list)


def _looks_secret(name: str, value: Any) -> bool:
    if name == "vapid_private_key":
        return isinstance(value, str) and not Path(value).expanduser().exists()
    if name == "database_url":
        return isinstance(value, str) and bool(re.search(r"://[^/@]*:[^/@]*@", value))
    return False


def settings_file(settings: Settings | None = None, *, command: str = "webpush-kit init") -> bytes:
    """The commented TOML settings file: every option of the catalogue, by section, with
    its documentation; options at their default are commented out, so reading the file
    back gives ``settings`` (the defaults when None). Secrets are never written."""
    current = settings if settings is not None else Settings()
    defaults = Settings()
    sections: dict[str, _Section] = {}
    for f in iter_options():
        section = f.metadata["section"]
        key = toml_key(f)
        value = getattr(current, f.name)
        default = getattr(defaults, f.name)
        doc = textwrap.wrap(f.metadata["doc"], width=86, break_on_hyphens=False)
        is_default = value == default
        if value is None or (is_default and default is None):
            line, commented = f'{key} = ""', True
        elif not is_default and _looks_secret(f.name, value):
            line, commented = f'{key} = ""', True
            doc.append("(set in the app, not written here: keep secrets out of files; "
                       "use an environment variable or a key file path)")
        else:
            if f.name == "manifest_extra":
                value = dict(value)
            try:
                line = f"{key} = {toml_value(value, multiline=f.name == 'manifest_icons')}"
                commented = is_default
            except ValueError as exc:
                line, commented = f"{key} = {{}}", True
                doc.append(f"(set in the app, but it cannot be written in TOML: {exc})")
        if commented and "\n" in line:
            line = line.replace("\n", "\n# ")
        sections.setdefault(section, _Section(section)).options.append(
            _OptionLine(doc, line, commented)
        )
    text = render_template("webpush.toml.j2", sections=list(sections.values()),
                           command=command)
    return text.encode("utf-8")


