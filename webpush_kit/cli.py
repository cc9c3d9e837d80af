"""Command line: ``webpush-kit init | export | doctor | vapid | send`` and the same under
``flask webpush``.

The commands are click commands defined once. :func:`register_commands` adds them to any
click group: :data:`main` (the ``webpush-kit`` console script), where settings come from
``--config FILE``, and the ``flask webpush`` group made by :func:`flask_group`, where they
come from the running app's extension unless ``--config`` is given (``send`` under
``flask webpush`` always uses the app's settings, store and sender).

Exit status: 0 success, 1 the command ran and found a problem (a doctor failure, a file
it will not overwrite, a file it cannot merge), 2 bad usage or bad settings.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from time import monotonic
from typing import Any, NoReturn, TypeVar, cast

import click
from sqlalchemy.exc import SQLAlchemyError

from webpush_kit import __version__
from webpush_kit.assets import render_assets
from webpush_kit.doctor import DEFAULT_TIMEOUT, diagnose
from webpush_kit.errors import ConfigError, ValidationError
from webpush_kit.export import (
    SERVERS,
    ExportConflictError,
    FilePatch,
    apply_export,
    apply_patch,
    plan_export,
    plan_merge_manifest,
    plan_merge_sw,
    plan_patch_html,
    settings_file,
)
from webpush_kit.settings import Settings, settings_warnings
from webpush_kit.settings import _check_path as _check_settings_path

__all__ = ["config_option", "flask_group", "load_settings", "main", "register_commands"]

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_CONFIG = "webpush.toml"


class SettingsError(click.ClickException):
    """A settings problem: printed as one line, exit status 2, no traceback."""

    exit_code = 2


def _fail(message: str) -> NoReturn:
    """The command ran and found a problem: one line on stderr, exit status 1."""
    raise click.ClickException(message)


def config_option() -> Callable[[F], F]:
    """``--config FILE``: the TOML settings file written by ``webpush-kit init``."""
    return click.option(
        "--config", "config", type=click.Path(dir_okay=False, path_type=Path), default=None,
        help="Settings file written by `webpush-kit init` (under `flask webpush`: the "
             "app's settings when omitted).",
    )


def _flask_settings() -> Settings | None:
    """The running Flask app's settings, when called under ``flask webpush``."""
    try:
        from flask import current_app, has_app_context
    except ImportError:  # pragma: no cover - flask is a dependency
        return None
    if not has_app_context():
        return None
    from webpush_kit.flask import EXTENSION_KEY, WebPushKit

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if EXTENSION_KEY not in app.extensions:
        raise SettingsError("this Flask app does not use WebPushKit: call WebPushKit(app) "
                            "or give --config FILE")
    return WebPushKit.settings(app)


def load_settings(config: Path | None, *, required: bool = True) -> Settings:
    """Settings from ``config``, else from the Flask app (``flask webpush``), else the
    defaults when not ``required``. A bad file raises :class:`SettingsError` (exit 2)."""
    if config is not None:
        try:
            return Settings.from_toml(config)
        except ConfigError as exc:
            raise SettingsError(exc.message) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"cannot read {config}: {exc}") from None
    from_app = _flask_settings()
    if from_app is not None:
        return from_app
    if required:
        raise SettingsError(f"give --config FILE (create one with `webpush-kit init`, which "
                            f"writes {DEFAULT_CONFIG})")
    return Settings()


class _OutPath(click.Path):
    """``click.Path`` that refuses a blank value (``Path("")`` is ``.``, so ``--out ""``
    would silently mean the current folder) and, for a file, a value ending in ``/``."""

    def __init__(self, example: str, **kwargs: Any) -> None:
        super().__init__(path_type=Path, **kwargs)
        self.example = example

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if isinstance(value, str) and not value.strip():
            self.fail(f"{value!r} is blank: give {self.example}", param, ctx)
        if isinstance(value, str) and not self.dir_okay and value.endswith("/"):
            self.fail(f"{value!r} is a folder: give a file in it, such as "
                      f"{value}{self.example.rsplit(' ', 1)[-1]}", param, ctx)
        return super().convert(value, param, ctx)


def _is_url_path(value: str) -> bool:
    """The settings' rule for URL paths (one leading ``/``, no ``//``, ``..``, query,
    fragment, spaces, quotes or control characters)."""
    try:
        _check_settings_path("--prefix", value)
    except ConfigError:
        return False
    return True


def _check_prefix(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``--prefix``: a URL path, checked by the same rule as the settings' paths."""
    if value is None or value == "" or _is_url_path(value):
        return value
    if not value.startswith("/") and _is_url_path("/" + value):
        raise click.BadParameter(f"{value!r} is not a URL path: write '/{value}' (a prefix "
                                 "starts with /)", ctx, param)
    hint = " (//host names another site, not a path)" if value.startswith("//") else ""
    raise click.BadParameter(
        f"{value!r} is not a URL path such as /shop: it must start with a single /, with no "
        f"//, .., ?, #, spaces, quotes or control characters (percent-encode other "
        f"characters){hint}", ctx, param)


class _Seconds(click.FloatRange):
    """Seconds: more than 0, at most an hour, never NaN or infinity."""

    name = "number of seconds"

    def __init__(self) -> None:
        super().__init__(min=0, min_open=True, max=3600)

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        rv = super().convert(value, param, ctx)
        if not math.isfinite(rv):
            self.fail(f"{value!r} is not a number of seconds: give one such as 10 "
                      "(more than 0, at most 3600)", param, ctx)
        return rv


# --------------------------------------------------------------------------------------
# init
# --------------------------------------------------------------------------------------


@click.command("init")
@click.option("--out", "out",
              type=_OutPath(f"a file name such as {DEFAULT_CONFIG}", dir_okay=False),
              default=Path(DEFAULT_CONFIG), show_default=True,
              help="Where to write the settings file; - for standard output.")
@click.option("--force", is_flag=True, help="Replace an existing file.")
def init_command(out: Path, force: bool) -> None:
    """Write a commented settings file with every option and its default.

    Under `flask webpush`, the app's current settings are written (options that differ
    from the default are uncommented).
    """
    settings = _flask_settings()
    command = "flask webpush init" if settings is not None else "webpush-kit init"
    data = settings_file(settings, command=command)
    if str(out) == "-":
        click.echo(data.decode("utf-8"), nl=False)
        return
    if out.exists() and not force:
        _fail(f"{out} exists; use --force to replace it")
    from webpush_kit.fileio import write_atomic

    try:
        write_atomic(out, data, backup=out.exists())
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror or exc}")
    click.echo(f"wrote {out}: edit it, then run `webpush-kit export --config {out} --out DIR`")


# --------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------


def _print_patch(patch: FilePatch, *, dry_run: bool) -> None:
    if patch.skipped:
        click.echo(f"unchanged {patch.path}: {patch.skipped}")
        return
    if not patch.changed:
        click.echo(f"unchanged {patch.path}")
        return
    if dry_run:
        click.echo(patch.diff(), nl=False)
    for note in patch.notes:
        click.echo(f"  note: {patch.path}: {note}")


@click.command("export")
@config_option()
@click.option("--out", "out", default=None,
              type=_OutPath("a folder such as ./www (. for the current folder)",
                            file_okay=False),
              help="Folder to write into; file paths mirror URL paths, so it can be the web "
                   "root.")
@click.option("--prefix", default="", callback=_check_prefix,
              help="URL path the site is mounted under, e.g. /shop.")
@click.option("--server", "servers", type=click.Choice(SERVERS), multiple=True,
              help="Server configuration to write (repeatable; default: all three).")
@click.option("--merge-manifest", "merge_manifest_path",
              type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Add gcm_sender_id and configured members to the site's own manifest "
                   "(then no manifest.json is exported).")
@click.option("--merge-sw", "merge_sw_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None,
              help="Put the MoEngage importScripts line first in the site's own worker "
                   "(then no serviceworker.js is exported).")
@click.option("--patch-html", "html_globs", multiple=True, metavar="GLOB",
              help="Add the head snippet to these HTML files (repeatable; ** recursive).")
@click.option("--force", is_flag=True,
              help="Overwrite exported files webpush-kit did not write (keeps a .bak).")
@click.option("--no-backup", is_flag=True, help="Keep no .bak copy of patched files.")
@click.option("--dry-run", is_flag=True, help="Print a diff of every change; write nothing.")
def export_command(
    config: Path | None,
    out: Path | None,
    prefix: str,
    servers: tuple[str, ...],
    merge_manifest_path: Path | None,
    merge_sw_path: Path | None,
    html_globs: tuple[str, ...],
    force: bool,
    no_backup: bool,
    dry_run: bool,
) -> None:
    """Write manifest.json, serviceworker.js, the browser client, the head snippet and
    nginx/Apache/Caddy configuration, and patch the site's own files.

    Re-running changes nothing unless the settings changed. Files are written atomically;
    patched files keep a .bak copy unless --no-backup.
    """
    settings = load_settings(config)
    if out is None and not (merge_manifest_path or merge_sw_path or html_globs):
        raise click.UsageError("give --out DIR, or one of --merge-manifest, --merge-sw, "
                               "--patch-html")
    for warning in settings_warnings(settings):
        click.echo(f"warning: {warning}", err=True)
    try:
        bundle = render_assets(settings, prefix)
        patches: list[FilePatch] = []
        if merge_manifest_path is not None:
            patches.append(plan_merge_manifest(merge_manifest_path, settings, bundle.prefix))
        if merge_sw_path is not None:
            patches.append(plan_merge_sw(merge_sw_path, settings, bundle.prefix))
        if html_globs:
            patches.extend(plan_patch_html(html_globs, bundle.head_snippet))
        skip = [name for name, path in (("manifest", merge_manifest_path),
                                        ("serviceworker", merge_sw_path)) if path is not None]
        plan = None
        if out is not None:
            plan = plan_export(bundle, out, servers=servers or SERVERS, skip=skip)
    except ValidationError as exc:
        _fail(exc.message)
    except OSError as exc:
        _fail(f"cannot read {exc.filename or 'a file'}: {exc.strerror or exc}")

    if plan is not None:
        for note in plan.notes:
            click.echo(f"note: {note}")
        if dry_run:
            click.echo(plan.diff(), nl=False)
            for f in plan.conflicts:
                where = plan.out_dir / f.path
                click.echo(f"would replace {where} (not written by webpush-kit)" if force
                           else f"would refuse {where}: not written by webpush-kit (use --force)")
    for patch in patches:
        _print_patch(patch, dry_run=dry_run)
    if dry_run:
        changes = (len(plan.changed) if plan else 0) + sum(p.changed for p in patches)
        click.echo(f"dry run: {changes} file(s) would change; nothing written")
        if plan is not None and plan.conflicts and not force:
            # The same refusal (and exit status 1) as the real run would give.
            _fail("dry run: " + str(ExportConflictError(plan.out_dir, plan.conflicts)))
        return

    if plan is not None and plan.conflicts and not force:
        _fail(str(ExportConflictError(plan.out_dir, plan.conflicts)))
    written: list[str] = []
    try:
        for patch in patches:
            backup = apply_patch(patch, backup=not no_backup)
            if patch.changed:
                extra = f" (backup {backup})" if backup else ""
                click.echo(f"patched {patch.path}{extra}")
        if plan is not None:
            written = apply_export(plan, force=force, backup=not no_backup)
    except OSError as exc:
        _fail(f"could not write: {exc}")
    if plan is not None:
        for rel in written:
            click.echo(f"wrote {plan.out_dir / rel}")
        unchanged = len(plan.files) - len(written)
        click.echo(f"export: {len(written)} written, {unchanged} unchanged in {plan.out_dir}")


# --------------------------------------------------------------------------------------
# doctor
# --------------------------------------------------------------------------------------


@click.command("doctor")
@click.argument("target")
@config_option()
@click.option("--prefix", default=None, callback=_check_prefix,
              help="URL path the site is mounted under (folders: read from the export).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--timeout", type=_Seconds(), metavar="SECONDS", default=DEFAULT_TIMEOUT,
              show_default=True,
              help="Seconds to wait for each HTTP response.")
def doctor_command(target: str, config: Path | None, prefix: str | None, as_json: bool,
                   timeout: float) -> None:
    """Check a live site (an http(s) URL of one of its pages) or an export folder the
    way browsers do; exit status 1 when a check fails.

    Give the --config you export with: the checks compare the site with it. Without
    --config (and outside `flask webpush`) the default settings are assumed, which
    configure no MoEngage.
    """
    settings = load_settings(config, required=False)
    if "://" in target:
        _check_target_url(target)
    report = diagnose(target, settings, prefix=prefix, timeout=timeout)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.to_text(), nl=False)
    if not report.ok:
        sys.exit(1)


def _existing_sqlite(url: str, base: Path | None) -> str:
    """``url``, checked: sending reads the site's existing database, so a SQLite path that
    does not exist is a mistyped path, not a new, empty database to create. A relative
    path is tried as given, then under ``base`` (the settings file's folder), as the key
    file's path is; the URL of the file found is returned."""
    from sqlalchemy.engine import make_url

    try:
        parsed = make_url(url)
    except Exception:
        return url  # Store() reports a malformed URL
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or name in (None, "", ":memory:"):
        return url
    path = Path(str(name)).expanduser()
    tried = [path]
    if not path.is_absolute() and base is not None:
        tried.append(base / path)
    for candidate in tried:
        if candidate.is_file():
            return str(parsed.set(database=str(candidate.resolve())))
    where = " or ".join(str(p) for p in tried)
    raise SettingsError(f"database_url: no SQLite database at {where} (check the path; "
                        "sending never creates a database)")


def _safe_url(store: Any) -> str:
    """The store's URL with any password hidden."""
    try:
        return str(store.engine.url.render_as_string(hide_password=True))
    except Exception:
        return "the database"


def _check_target_url(target: str) -> None:
    """A URL doctor can fetch: http(s), a host, no spaces or control characters."""
    from urllib.parse import urlsplit

    problem = None
    try:
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problem = "an http:// or https:// URL of one of the site's pages"
        elif any(c.isspace() or ord(c) < 32 for c in target):
            problem = "a URL without spaces or control characters"
    except ValueError as exc:
        problem = f"a valid URL ({exc})"
    if problem:
        raise click.BadParameter(f"{target!r} is not {problem}", param_hint="TARGET")


# --------------------------------------------------------------------------------------
# vapid
# --------------------------------------------------------------------------------------


@click.group("vapid")
def vapid_group() -> None:
    """VAPID keys for self-hosted push: generate one, show its public key."""


@vapid_group.command("generate")
@click.option("--out", "out", type=_OutPath("a file name such as vapid.pem", dir_okay=False),
              required=True,
              help="Where to write the private key (PEM, mode 0600).")
@click.option("--force", is_flag=True,
              help="Replace an existing key: every subscription made with it stops working.")
def vapid_generate_command(out: Path, force: bool) -> None:
    """Write a new P-256 private key and print its public application server key and the
    settings lines that use it."""
    from webpush_kit.vapid import VapidKey

    key = VapidKey.generate()
    try:
        key.save_pem(out, overwrite=force)
    except FileExistsError:
        _fail(f"{out} exists; replacing a VAPID key orphans every subscription made with "
              "it, so give --force if that is what you want")
    except OSError as exc:
        _fail(f"cannot write {out}: {exc.strerror or exc}")
    click.echo(f"wrote {out} (mode 0600): keep it secret, out of version control and backups "
               "you share")
    click.echo(f"public key: {key.public_key_b64}")
    # The file `webpush-kit init` writes already has a [push] section (a second one is not
    # valid TOML): the advice is the two key lines to set in it.
    click.echo("in the [push] section of your settings file (webpush.toml from `webpush-kit "
               "init`), set these two keys (replace the commented-out lines), with your own "
               "contact address:")
    click.echo(f"vapid_private_key = {json.dumps(str(out.resolve()))}")
    click.echo('vapid_subject = "mailto:push-admin@your-site.com"')


@vapid_group.command("public-key")
@click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="A private key file (PEM, DER or raw base64url).")
@config_option()
def vapid_public_key_command(key_path: Path | None, config: Path | None) -> None:
    """Print the public application server key (base64url) of a private key: of --key
    FILE, else of the settings' vapid_private_key."""
    if key_path is not None:
        from webpush_kit.vapid import VapidKey

        try:
            key = VapidKey.load(key_path)
        except ConfigError as exc:
            raise SettingsError(f"--key {key_path}: {exc.allowed}") from None
    else:
        key = _settings_key(load_settings(config), config)
    click.echo(key.public_key_b64)


def _settings_key(settings: Settings, config: Path | None) -> Any:
    """The settings' VAPID key (relative paths: from the working directory, then the
    settings file's folder or the app's instance folder)."""
    from webpush_kit.api import load_vapid_key

    if not settings.vapid_private_key:
        raise SettingsError("vapid_private_key is not set: create a key with `webpush-kit "
                            "vapid generate --out FILE` and add it to the settings")
    app = _flask_app()
    base = config.parent if config is not None else (app.instance_path if app else None)
    try:
        return load_vapid_key(settings.vapid_private_key, base)
    except ConfigError as exc:
        raise SettingsError(exc.message) from None


# --------------------------------------------------------------------------------------
# send
# --------------------------------------------------------------------------------------

_MESSAGE_FLAGS = ("title", "body", "url", "icon", "tag")


def _flask_app() -> Any:
    """The running Flask app when under ``flask webpush`` and it uses WebPushKit."""
    if _flask_settings() is None:
        return None
    from flask import current_app

    return current_app._get_current_object()  # type: ignore[attr-defined]


def _bad(option: str, message: str) -> NoReturn:
    """Bad input: one line on stderr, exit status 2."""
    raise SettingsError(f"{option}: {message}")


def _message(payload: Path | None, flags: dict[str, str | None]) -> Any:
    from webpush_kit.messages import Notification

    given = [f"--{k}" for k, v in flags.items() if v is not None]
    try:
        if payload is not None:
            if given:
                raise click.UsageError(f"give --payload FILE or {', '.join(given)}, not both")
            try:
                data = json.loads(payload.read_text(encoding="utf-8"))
            except OSError as exc:
                _bad("--payload", f"cannot read {payload}: {exc.strerror or exc}")
            except UnicodeDecodeError:
                _bad("--payload", f"{payload} is not UTF-8 text")
            except json.JSONDecodeError as exc:
                _bad("--payload", f"{payload} is not valid JSON ({exc.msg} at line "
                     f"{exc.lineno} column {exc.colno})")
            return Notification.from_dict(data)
        if flags["title"] is None:
            raise click.UsageError("give --title TEXT (and optionally --body, --url, --icon, "
                                   "--tag), or --payload FILE")
        return Notification(title=flags["title"], body=flags["body"], url=flags["url"],
                            icon=flags["icon"], tag=flags["tag"])
    except ValidationError as exc:
        _bad("--payload" if payload is not None else "message", exc.message)


class _Progress:
    """One stderr line, rewritten at most ten times a second (and at the end)."""

    def __init__(self, total: int | None) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.shown = 0.0
        self.drawn = -1

    def __call__(self, outcome: Any) -> None:
        self.done += 1
        if not outcome.ok and outcome.kind.value not in ("expired", "duplicate"):
            self.failed += 1
        now = monotonic()
        if now - self.shown >= 0.1 or self.done == self.total:
            self.shown = now
            self.draw()

    def draw(self) -> None:
        of = f"/{self.total}" if self.total is not None else ""
        width = 30
        bar = ""
        if self.total:
            filled = min(width, self.done * width // self.total)
            bar = "[" + "#" * filled + "-" * (width - filled) + "] "
        self.drawn = self.done
        click.echo(f"\rsending {bar}{self.done}{of}  failed {self.failed}", nl=False, err=True)

    def end(self) -> None:
        if self.done:
            if self.drawn != self.done:
                self.draw()
            click.echo("", err=True)


def _print_summary(summary: Any, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary.as_dict(), indent=2))
        return
    click.echo(f"summary: {summary}")
    for kind, n in sorted(summary.counts.items()):
        click.echo(f"  {kind.value:<13}{n}")
    if summary.failures:
        click.echo("failure samples:")
    for o in summary.failures:
        where = o.endpoint if len(o.endpoint) <= 70 else o.endpoint[:67] + "..."
        status = f" {o.status}" if o.status is not None else ""
        click.echo(f"  {o.kind.value}{status} {where}: {o.reason or ''}".rstrip(": "))


@click.command("send")
@config_option()
@click.option("--user", "user_id", default=None, help="Send to this user id's subscriptions.")
@click.option("--all", "to_all", is_flag=True, help="Send to every active subscription.")
@click.option("--payload", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A JSON file with the notification: {title, body, url, icon, tag, ...}.")
@click.option("--title", default=None, help="Notification title.")
@click.option("--body", default=None, help="Notification text.")
@click.option("--url", default=None,
              help="Page opened on click: a root-relative path such as /news/1, or an http(s) "
                   "URL.")
@click.option("--icon", default=None,
              help="Icon: a root-relative path such as /icon.png, or an http(s) URL.")
@click.option("--tag", default=None, help="A later push with the same tag replaces this one.")
@click.option("--ttl", type=int, default=None,
              help="Seconds the push service keeps an undelivered push (default one week).")
@click.option("--urgency", type=click.Choice(["very-low", "low", "normal", "high"]),
              default="normal", show_default=True)
@click.option("--topic", default=None,
              help="Replaces an undelivered push with the same topic (<= 32 base64url chars).")
@click.option("--dry-run", is_flag=True, help="Check everything and count the recipients; "
              "send nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def send_command(
    config: Path | None,
    user_id: str | None,
    to_all: bool,
    payload: Path | None,
    title: str | None,
    body: str | None,
    url: str | None,
    icon: str | None,
    tag: str | None,
    ttl: int | None,
    urgency: str,
    topic: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Send a push to one user's subscriptions (--user ID) or to all (--all) with the
    site's VAPID key, and print a summary.

    Exit status: 0 when nothing failed, 1 when a push failed or was rejected (expired
    subscriptions are not failures: they are marked expired), 2 for bad input.
    """
    from webpush_kit.messages import DEFAULT_TTL, PushOptions, Urgency
    from webpush_kit.sender import SendAborted, Sender
    from webpush_kit.store import Store
    from webpush_kit.vapid import VapidClaims, VapidSigner

    if (user_id is None) == (not to_all):
        raise click.UsageError("give exactly one of --user ID and --all")
    message = _message(payload, {"title": title, "body": body, "url": url, "icon": icon,
                                 "tag": tag})
    try:
        options = PushOptions(ttl=DEFAULT_TTL if ttl is None else ttl,
                              urgency=cast(Urgency, urgency), topic=topic)
    except ValidationError as exc:
        _bad(f"--{exc.field or 'options'}", exc.message.split(": ", 1)[-1])

    app = _flask_app()
    owned: Any = None
    if app is not None:
        from webpush_kit.flask import WebPushKit

        settings = WebPushKit.settings(app)
        if not settings.vapid_private_key:
            raise SettingsError("this app has no vapid_private_key: self-hosted sending is "
                                "off (create a key with `flask webpush vapid generate`)")
        store = WebPushKit.store(app)
        sender = WebPushKit.sender(app)
    else:
        settings = load_settings(config)
        if not settings.database_url:
            raise SettingsError(f"database_url is not set in {config}: the command line "
                                "needs the site's database ([store] database_url = "
                                "\"sqlite:////path/to/webpush_kit.sqlite3\" or a PostgreSQL "
                                "URL)")
        key = _settings_key(settings, config)
        assert settings.vapid_subject is not None  # Settings requires it with a key
        database_url = _existing_sqlite(settings.database_url, config.parent if config else None)
        try:
            store = Store(database_url)
        except ConfigError as exc:  # a bad URL or a missing driver: one line, no traceback
            raise SettingsError(exc.message) from None
        sender = owned = Sender(VapidSigner(key, VapidClaims(settings.vapid_subject)))

    try:
        try:
            # Sending reads the site's data and never creates it (a dry run least of all).
            if not store.has_schema():
                if app is None:
                    raise SettingsError(
                        f"database_url: {_safe_url(store)} holds no webpush_kit tables: no "
                        "browser has subscribed through the site yet, or this is not the "
                        "site's database; nothing sent")
                targets, total = [], 0
            elif user_id is not None:
                targets = store.subscriptions_for_user(user_id)
                total = len(targets)
            else:
                total = store.counts()["active"]
        except ValidationError as exc:
            _bad("--user", exc.message)
        except SQLAlchemyError as exc:  # unreachable server, unreadable file: one line
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise SettingsError(f"database_url: cannot read {_safe_url(store)} "
                                f"({reason})") from None
        size = len(message.to_payload())
        if dry_run or total == 0:
            of = f" of user {user_id!r}" if user_id is not None else ""
            if as_json:
                click.echo(json.dumps({"dry_run": dry_run, "recipients": total,
                                       "payload_bytes": size, "sent": 0}, indent=2))
            elif dry_run:
                click.echo(f"dry run: would send {size} bytes to {total} active "
                           f"subscription(s){of}; nothing sent")
            else:
                click.echo(f"no active subscriptions{of}: nothing sent")
            return
        progress = _Progress(total)
        try:
            if user_id is not None:
                summary = sender.send_many(targets, message, options, store=store,
                                           on_progress=progress)
            else:
                summary = sender.send_to_all(store, message, options, on_progress=progress)
        except SendAborted as exc:
            progress.end()
            _print_summary(exc.summary, as_json)
            _fail(exc.message)
        progress.end()
        _print_summary(summary, as_json)
        if summary.failed:
            sys.exit(1)
    finally:
        if owned is not None:
            owned.close()
            store.dispose()


# --------------------------------------------------------------------------------------
# groups
# --------------------------------------------------------------------------------------

COMMANDS: tuple[click.Command, ...] = (
    init_command, export_command, doctor_command, vapid_group, send_command
)


def register_commands(group: click.Group) -> click.Group:
    """Add ``init``, ``export``, ``doctor``, ``vapid`` and ``send`` to ``group``."""
    for command in COMMANDS:
        group.add_command(command)
    return group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="webpush-kit")
def main() -> None:
    """webpush-kit: web push files, server configuration and checks for any website."""


register_commands(main)


def flask_group() -> click.Group:
    """The ``flask webpush`` group: the same commands, with the app's settings."""
    from flask import has_app_context
    from flask.cli import AppGroup, ScriptInfo

    @click.pass_context
    def with_app(ctx: click.Context) -> None:
        # `flask` pushes an app context before running a command; a group added with
        # app.cli.add_command and run by app.test_cli_runner() gets none, so push one.
        if not has_app_context():
            info = ctx.find_object(ScriptInfo)
            if info is not None:
                ctx.with_resource(info.load_app().app_context())

    group = AppGroup("webpush", callback=with_app,
                     help="Web push: settings file, export, checks, VAPID keys and sending "
                          "(settings from this app).")
    return register_commands(group)


if __name__ == "__main__":  # python -m webpush_kit.cli
    main()
