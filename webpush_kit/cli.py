"""Command line: ``webpush-kit init | export | doctor`` and the same under ``flask webpush``.

The commands are click commands defined once. :func:`register_commands` adds them to any
click group: :data:`main` (the ``webpush-kit`` console script), where settings come from
``--config FILE``, and the ``flask webpush`` group made by :func:`flask_group`, where they
come from the running app's extension unless ``--config`` is given. Other command groups
(``vapid``, ``send``) are added to :data:`main` with ``main.add_command(...)`` and read
settings with :func:`load_settings` and :func:`config_option`.

Exit status: 0 success, 1 the command ran and found a problem (a doctor failure, a file
it will not overwrite, a file it cannot merge), 2 bad usage or bad settings.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

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




# --------------------------------------------------------------------------------------
# init
# --------------------------------------------------------------------------------------


@click.command("init")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
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

    write_atomic(out, data, backup=out.exists())
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
@click.option("--out", "out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder to write into; file paths mirror URL paths, so it can be the web "
                   "root.")
@click.option("--prefix", default="", help="URL path the site is mounted under, e.g. /shop.")
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
            sys.exit(1)
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
@click.option("--prefix", default=None,
              help="URL path the site is mounted under (folders: read from the export).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.option("--timeout", type=float, default=DEFAULT_TIMEOUT, show_default=True,
              help="Seconds to wait for each HTTP response.")
def doctor_command(target: str, config: Path | None, prefix: str | None, as_json: bool,
                   timeout: float) -> None:
    """Check a live site (an http(s) URL of one of its pages) or an export folder the
    way browsers do; exit status 1 when a check fails.

    Without --config (and outside `flask webpush`) the default settings are assumed.
    """
    settings = load_settings(config, required=False)
    report = diagnose(target, settings, prefix=prefix, timeout=timeout)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(report.to_text(), nl=False)
    if not report.ok:
        sys.exit(1)


# --------------------------------------------------------------------------------------
# groups
# --------------------------------------------------------------------------------------

COMMANDS: tuple[click.Command, ...] = (init_command, export_command, doctor_command)


def register_commands(group: click.Group) -> click.Group:
    """Add ``init``, ``export`` and ``doctor`` to ``group``; returns the group."""
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
                     help="Web push: write the settings file, export the files, check a "
                          "site (settings from this app).")
    return register_commands(group)


if __name__ == "__main__":  # python -m webpush_kit.cli
    main()
