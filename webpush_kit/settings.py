"""One validated settings object, built from keyword arguments, Flask config or TOML.

Every option is declared once, in ``Settings`` below, with its section, default and a line
of documentation; the Flask adapter (``WEBPUSH_<NAME>``), the TOML reader (``[section]
key``), the README table and ``webpush-kit init`` are all derived from that one catalogue,
in the way workbox-build keeps its option schema in one place.

A wrong value raises :class:`~webpush_kit.errors.ConfigError` naming the key, the value
and what is allowed. Problems that do not stop a site from working (a manifest that cannot
make the site installable, or iOS-push ready) are logged as warnings by
:func:`settings_warnings`.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from webpush_kit._net import is_loopback_host
from webpush_kit.errors import ConfigError
from webpush_kit.messages import lone_surrogate
from webpush_kit.subscriptions import host_pattern_problem
from webpush_kit.vapid import check_subject

log = logging.getLogger("webpush_kit")

CONFIG_PREFIX = "WEBPUSH_"

#: The seed's "MoEngage Shared Project" sender id: a documented value, never a default.
MOENGAGE_SHARED_SENDER_ID = "540868316921"

MOENGAGE_CDN = "https://cdn.moengage.com"
#: The seed's worker import, without its daily ``?date=`` cache-buster (see README).
MOENGAGE_LEGACY_SW_URL = f"{MOENGAGE_CDN}/webpush/releases/serviceworker_cdn.min.latest.js"
MOENGAGE_LEGACY_SDK_URL = f"{MOENGAGE_CDN}/webpush/moe_webSdk.min.latest.js"
SW_FILE_NAME = "serviceworker_cdn.min.latest.js"
SDK_FILE_NAME = "moe_webSdk.min.latest.js"

DISPLAY_MODES = ("fullscreen", "standalone", "minimal-ui", "browser")
IMPORT_MODES = ("auto", "versioned", "legacy", "none")

_DC_RE = re.compile(r"dc_[0-9]{1,3}")
_APP_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SDK_VERSION_RE = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}")
_SENDER_ID_RE = re.compile(r"[0-9]{1,20}")
_SIZES_RE = re.compile(r"(any|[0-9]{1,5}x[0-9]{1,5})( (any|[0-9]{1,5}x[0-9]{1,5}))*")
_COLOR_RE = re.compile(
    r"#(?:[0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})"
    r"|[a-zA-Z]{3,30}"
    r"|(?:rgb|rgba|hsl|hsla|hwb|lab|lch|oklab|oklch|color)\([0-9a-zA-Z.,%/ +-]{1,80}\)"
)
# What a URL path setting may hold: a root-relative path, no query, fragment or specials
# that would need escaping in HTML or JavaScript (they are escaped anyway; this is hygiene).
_PATH_RE = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*")
_TOKEN_MAX_AGE_MAX = 30 * 24 * 3600

#: Manifest members that have a dedicated setting (``manifest_extra`` may not set them).
DEDICATED_MEMBERS: dict[str, str] = {
    "name": "manifest_name",
    "short_name": "manifest_short_name",
    "id": "manifest_id",
    "start_url": "manifest_start_url",
    "scope": "manifest_scope",
    "display": "manifest_display",
    "icons": "manifest_icons",
    "theme_color": "manifest_theme_color",
    "background_color": "manifest_background_color",
    "gcm_sender_id": "gcm_sender_id",
}


def _opt(section: str, doc: str, default: Any = None, **kw: Any) -> Any:
    """Declare an option: its TOML section, one line of documentation and its default."""
    meta = {"section": section, "doc": doc}
    if isinstance(default, (list, dict)):
        raise TypeError("use a tuple or a default_factory for mutable defaults")
    return field(default=default, metadata=meta, **kw)


def _opt_factory(section: str, doc: str, factory: Any) -> Any:
    return field(default_factory=factory, metadata={"section": section, "doc": doc})


@dataclass(frozen=True, eq=True, unsafe_hash=False)
class Settings:
    """Everything webpush_kit needs to know about a site. Immutable once validated.

    Not hashable: ``manifest_icons`` and ``manifest_extra`` hold dicts, so ``hash()``
    says ``unhashable type: 'Settings'`` instead of failing on a member.
    """

    __hash__: ClassVar[None] = None  # type: ignore[assignment]

    # --- MoEngage -----------------------------------------------------------------------
    moengage_app_id: str | None = _opt(
        "moengage", "MoEngage App ID (Dashboard > Settings > App > General). Unset: no MoEngage."
    )
    moengage_data_center: str = _opt(
        "moengage", "MoEngage data centre, dc_<n> (dashboard-0N.moengage.com is dc_N).", "dc_1"
    )
    moengage_debug: bool = _opt(
        "moengage", "Debug mode: the SDK logs to the console and data goes to the TEST "
        "environment.", False
    )
    moengage_sdk_version: str = _opt(
        "moengage", "MoEngage Web SDK version in CDN paths; the worker and SDK always share it.",
        "2"
    )
    moengage_sw_import: str = _opt(
        "moengage",
        "Worker importScripts: auto (versioned when an app id is set, else none), versioned, "
        "legacy (the seed's CDN path), none, or an explicit http(s) URL or root path.",
        "auto",
    )
    moengage_sdk_url: str | None = _opt(
        "moengage", "Web SDK URL; derived from moengage_sw_import when unset (same folder)."
    )
    # --- service worker -----------------------------------------------------------------
    sw_path: str = _opt("worker", "URL path of the service worker.", "/serviceworker.js")
    sw_scope: str = _opt(
        "worker", "Scope the worker controls; sent as Service-Worker-Allowed.", "/"
    )
    sw_import_scripts: tuple[str, ...] = _opt(
        "worker", "Extra constant importScripts URLs for the site's own worker code.", ()
    )
    sw_push_handler: str = _opt(
        "worker", "Show our own pushes: auto (when VAPID is set or no MoEngage), on, off.",
        "auto"
    )
    # --- manifest -----------------------------------------------------------------------
    manifest_path: str = _opt("manifest", "URL path of the web app manifest.", "/manifest.json")
    manifest_name: str | None = _opt("manifest", "Manifest name (installability needs one).")
    manifest_short_name: str | None = _opt("manifest", "Manifest short_name.")
    manifest_id: str = _opt("manifest", "Manifest id: the app's stable identity.", "/")
    manifest_start_url: str = _opt("manifest", "Manifest start_url (root-relative).", "/")
    manifest_scope: str = _opt("manifest", "Manifest scope (must contain start_url).", "/")
    manifest_display: str = _opt(
        "manifest", "fullscreen, standalone, minimal-ui or browser (iOS push needs "
        "standalone or fullscreen).", "standalone"
    )
    manifest_icons: tuple[Mapping[str, str], ...] = _opt(
        "manifest", "Icons: a list of {src, sizes, type, purpose}; 192x192 and 512x512 "
        "make the site installable.", ()
    )
    manifest_theme_color: str | None = _opt("manifest", "Manifest theme_color (a CSS color).")
    manifest_background_color: str | None = _opt(
        "manifest", "Manifest background_color (a CSS color)."
    )
    manifest_extra: Mapping[str, Any] = _opt_factory(
        "manifest", "Any other manifest members, added as they are (JSON values).", dict
    )
    gcm_sender_id: str | None = _opt(
        "manifest", "Legacy gcm_sender_id; off unless set. MoEngage's shared project is "
        "540868316921.",
    )
    manifest_use_credentials: bool = _opt(
        "manifest", "Add crossorigin=\"use-credentials\" to the manifest link (a manifest "
        "behind cookies or HTTP auth).", False
    )
    # --- head injection and browser client ---------------------------------------------
    inject_head: bool = _opt(
        "head", "Insert the manifest link and client script into HTML responses.", True
    )
    client_path: str = _opt("head", "URL path of the browser client script.", "/webpush-kit.js")
    api_path: str = _opt("head", "URL prefix of the JSON endpoints.", "/webpush-kit/api")
    consent_required: bool = _opt(
        "head", "Load nothing and post nothing until the page calls webpushKit.consent(true).",
        False
    )
    # --- self-hosted push (VAPID) -------------------------------------------------------
    vapid_private_key: str | None = _opt(
        "push", "VAPID private key: a file path (PEM, DER or raw) or raw base64url. Unset: "
        "no self-hosted push."
    )
    vapid_subject: str | None = _opt(
        "push", "VAPID sub claim: a real mailto: address or https: URL."
    )
    # --- store and identity -------------------------------------------------------------
    database_url: str | None = _opt(
        "store", "SQLAlchemy URL; unset: SQLite file webpush_kit.sqlite3 in the Flask "
        "instance folder (the command line has none: set it for webpush-kit send)."
    )
    push_hosts: tuple[str, ...] = _opt(
        "store", "Extra push-service hosts to accept in subscriptions (host or *.suffix).", ()
    )
    allow_localhost_endpoints: bool = _opt(
        "store",
        "Accept push endpoints on loopback hosts (localhost, *.localhost, 127.0.0.0/8, ::1), "
        "http or https, port required: development and tests only.",
        False,
    )
    user_token_max_age: int = _opt(
        "store", "Seconds a signed user-id token stays valid.", 7 * 24 * 3600
    )
    max_body_bytes: int = _opt("store", "Largest JSON body the endpoints accept.", 16384)

    def __post_init__(self) -> None:
        # Lists are accepted for the tuple settings (Settings(push_hosts=[...])) and kept as
        # tuples: a list could still be changed after validation.
        for f in dataclasses.fields(self):
            if isinstance(f.default, tuple) and isinstance(getattr(self, f.name), list):
                object.__setattr__(self, f.name, tuple(getattr(self, f.name)))
        _validate(self)

    # --- construction -------------------------------------------------------------------

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any], *, source: str = "", strict: bool = False
    ) -> Settings:
        """Build from ``{field_name: value}``, refusing unknown names with a suggestion.

        Without ``strict``, strings are converted to the declared types (``"true"``,
        ``"3600"``, ``"/a.js, /b.js"``, JSON for icons): the values of Flask config often
        come from environment variables. With ``strict`` (a TOML file, whose values have
        real types) a value must already have its type: ``debug = "yes"`` or
        ``app_id = 123`` is refused instead of being read as a boolean or a string.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if not isinstance(key, str) or key not in names:
                shown = _shown(key)
                hint = difflib.get_close_matches(shown, sorted(names), n=1)
                allowed = f"did you mean {hint[0]!r}?" if hint else "unknown setting"
                raise ConfigError(f"{source}{shown}", value, allowed)
            kwargs[key] = value
        return cls(**_coerce_all(kwargs, source, strict=strict))

    @classmethod
    def from_flask_config(
        cls, config: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
    ) -> Settings:
        """Read every ``WEBPUSH_<NAME>`` key; keyword ``overrides`` win over the config."""
        values: dict[str, Any] = {}
        for key, value in config.items():
            if isinstance(key, str) and key.startswith(CONFIG_PREFIX):
                values[key[len(CONFIG_PREFIX):].lower()] = value
        values.update(overrides or {})
        try:
            return cls.from_mapping(values)
        except ConfigError as exc:
            # Name the key the way the owner wrote it (a member path such as
            # manifest_extra.x or manifest_icons[0].src keeps its member names).
            base = re.split(r"[\[.]", exc.key, maxsplit=1)[0]
            if base in (overrides or {}):
                raise
            allowed = re.sub(r"did you mean '(\w+)'",
                             lambda m: f"did you mean {CONFIG_PREFIX}{m.group(1).upper()}",
                             exc.allowed)
            raise ConfigError(CONFIG_PREFIX + base.upper() + exc.key[len(base):], exc.value,
                              allowed) from None

    @classmethod
    def from_toml(cls, path: str | Path) -> Settings:
        """Read a settings file written by ``webpush-kit init``: ``[section] key = value``."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError("--config", str(p), "no such file; create one with "
                              "`webpush-kit init`") from None
        except IsADirectoryError:
            raise ConfigError("--config", str(p), "a directory, not a settings file; give "
                              "the path of the TOML file (e.g. webpush.toml) that "
                              "`webpush-kit init` wrote") from None
        except UnicodeDecodeError as exc:
            raise ConfigError("--config", str(p), f"not a UTF-8 text file (byte "
                              f"{exc.start}); a settings file is UTF-8 TOML") from None
        except OSError as exc:  # permission denied, a directory on Windows, ...
            if p.is_dir():
                raise ConfigError("--config", str(p), "a directory, not a settings file; "
                                  "give the path of the TOML file") from None
            raise ConfigError("--config", str(p), f"cannot read the file "
                              f"({exc.strerror or exc})") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", str(p), f"not valid TOML: {exc}") from None
        return cls.from_toml_data(data, source=f"{p}: ")

    @classmethod
    def from_toml_data(cls, data: Mapping[str, Any], *, source: str = "") -> Settings:
        by_section: dict[tuple[str, str], str] = {}
        for f in dataclasses.fields(cls):
            by_section[(f.metadata["section"], toml_key(f))] = f.name
        values: dict[str, Any] = {}
        for section, table in data.items():
            if not isinstance(table, dict):
                raise ConfigError(f"{source}{section}", table,
                                  "settings belong in sections such as [moengage], [manifest]")
            for key, value in table.items():
                name = by_section.get((section, key))
                if name is None:
                    known = [f"[{s}] {k}" for (s, k) in by_section]
                    hint = difflib.get_close_matches(f"[{section}] {key}", known, n=1)
                    raise ConfigError(f"{source}[{section}] {key}", value,
                                      f"did you mean {hint[0]}?" if hint else "unknown setting")
                values[name] = value
        try:
            return cls.from_mapping(values, strict=True)
        except ConfigError as exc:
            base = re.split(r"[\[.]", exc.key, maxsplit=1)[0]
            fld = _field(base)
            where = exc.key
            if fld is not None:
                where = f"[{fld.metadata['section']}] {toml_key(fld)}{exc.key[len(base):]}"
            raise ConfigError(f"{source}{where}", exc.value, exc.allowed) from None

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **_coerce_all(changes, ""))

    # --- derived values -----------------------------------------------------------------

    @property
    def sw_import_url(self) -> str | None:
        """The constant MoEngage ``importScripts`` URL, or None when the worker has none."""
        mode = self.moengage_sw_import
        if mode == "auto":
            mode = "versioned" if self.moengage_app_id else "none"
        if mode == "none":
            return None
        if mode == "legacy":
            return MOENGAGE_LEGACY_SW_URL
        if mode == "versioned":
            return (f"{MOENGAGE_CDN}/release/{self.moengage_data_center}/versions/"
                    f"{self.moengage_sdk_version}/{SW_FILE_NAME}")
        return mode

    @property
    def sdk_url(self) -> str | None:
        """The Web SDK URL, taken from the same place as the worker import."""
        if not self.moengage_app_id:
            return None
        if self.moengage_sdk_url:
            return self.moengage_sdk_url
        sw = self.sw_import_url
        if sw is None:
            return (f"{MOENGAGE_CDN}/release/{self.moengage_data_center}/versions/"
                    f"{self.moengage_sdk_version}/{SDK_FILE_NAME}")
        if sw == MOENGAGE_LEGACY_SW_URL:
            return MOENGAGE_LEGACY_SDK_URL
        return sw.rsplit("/", 1)[0] + "/" + SDK_FILE_NAME

    @property
    def push_handler(self) -> bool:
        """Whether the worker shows pushes sent by this site (not by MoEngage)."""
        if self.sw_push_handler == "auto":
            return bool(self.vapid_private_key) or self.sw_import_url is None
        return self.sw_push_handler == "on"

    @property
    def mode(self) -> Literal["moengage", "self-hosted", "plain"]:
        if self.moengage_app_id:
            return "moengage"
        return "self-hosted" if self.vapid_private_key else "plain"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = [dict(v) if isinstance(v, Mapping) else v for v in value]
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out


def toml_key(f: dataclasses.Field[Any]) -> str:
    """``manifest_name`` lives in ``[manifest]`` as ``name``; others keep their name."""
    section = f.metadata["section"]
    prefix = {"moengage": "moengage_", "worker": "sw_", "manifest": "manifest_"}.get(section)
    if prefix and f.name.startswith(prefix):
        return f.name[len(prefix):]
    return f.name


def iter_options() -> Iterator[dataclasses.Field[Any]]:
    """The option catalogue, in declaration order (README table, ``init``)."""
    yield from dataclasses.fields(Settings)


def _field(name: str) -> dataclasses.Field[Any] | None:
    for f in dataclasses.fields(Settings):
        if f.name == name:
            return f
    return None


# --- coercion: strings from env-like config become the declared types ------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _coerce_all(
    values: Mapping[str, Any], source: str, *, strict: bool = False
) -> dict[str, Any]:
    return {k: _coerce(k, v, source, strict=strict) for k, v in values.items()}


def _coerce(name: str, value: Any, source: str, *, strict: bool = False) -> Any:
    """Give ``value`` the declared type of setting ``name``.

    Not ``strict`` (Flask config, often from environment variables): strings are read
    as booleans, numbers, comma-separated lists or JSON. ``strict`` (TOML, whose values
    are typed): only the value's own type is accepted, with a hint on how to write it.
    """
    f = _field(name)
    if f is None:
        return value
    default = f.default if f.default is not dataclasses.MISSING else None
    key = f"{source}{name}"
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if strict:
            hint = (f"true or false without quotes (TOML booleans; {value!r} is a string)"
                    if isinstance(value, str) else "true or false")
            raise ConfigError(key, value, hint)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise ConfigError(key, value, "true or false")
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(key, value, "a whole number")
        if strict and isinstance(value, str):
            raise ConfigError(key, value, "a whole number without quotes (TOML integers; "
                              f"{value!r} is a string)")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(key, value, "a whole number") from None
    if isinstance(default, tuple):
        if isinstance(value, str):
            if strict:
                example = ('[{src = "/icon-192.png", sizes = "192x192"}]'
                           if name == "manifest_icons" else '["first", "second"]')
                raise ConfigError(key, value, f"a TOML array such as {example}, not a string")
            value = [v.strip() for v in value.split(",") if v.strip()] if name != \
                "manifest_icons" else _json_value(key, value)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, value, "a list")
        if name == "manifest_icons":
            return tuple(_icon(f"{key}[{i}]", v) for i, v in enumerate(value))
        return tuple(value)
    if name == "manifest_extra":
        if isinstance(value, str):
            if strict:
                raise ConfigError(key, value, "a TOML table of manifest members such as "
                                  '[manifest.extra] lang = "en", not a string')
            value = _json_value(key, value)
        if not isinstance(value, Mapping):
            raise ConfigError(key, value, "a table / dict of manifest members")
        return dict(value)
    if value is not None and not isinstance(value, str):
        if isinstance(value, int) and not isinstance(value, bool):
            if strict:
                # TOML has strings: an unquoted number is a number, not an id.
                raise ConfigError(key, value, f'a string: write it in quotes, "{value}"')
            # Flask config may hold an id as a number (WEBPUSH_GCM_SENDER_ID = 540868316921).
            return str(value)
        raise ConfigError(key, value, "a string")
    if isinstance(value, str) and value == "" and default is None:
        return None
    return value


def _shown(key: object) -> str:
    """A name safe to print in a message: lone surrogates escaped, not raised."""
    return str(key).encode("utf-8", "backslashreplace").decode("utf-8")


def _json_value(key: str, text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(key, text, f"JSON ({exc.msg} at column {exc.colno})") from None


def _icon(key: str, value: Any) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise ConfigError(key, value, "an icon table {src, sizes, type, purpose}")
    allowed = {"src", "sizes", "type", "purpose"}
    extra = set(value) - allowed
    if extra:
        raise ConfigError(key, value, f"icon members are {sorted(allowed)}, not {sorted(extra)}")
    if not isinstance(value.get("src"), str) or not value["src"]:
        raise ConfigError(f"{key}.src", value.get("src"), "a root-relative path or https URL")
    for k, v in value.items():
        if not isinstance(v, str):
            raise ConfigError(f"{key}.{k}", v, "a string")
    return dict(value)


# --- validation ------------------------------------------------------------------------


def _check_types(s: Settings) -> None:
    """Each setting has its declared type, however the object was built (Settings(...)
    directly skips the coercion of strings that from_mapping and Flask config get)."""
    for f in dataclasses.fields(s):
        if f.default is dataclasses.MISSING:
            continue  # manifest_extra (a factory default) is checked with its members
        v = getattr(s, f.name)
        default = f.default
        if isinstance(default, bool):
            if not isinstance(v, bool):
                raise ConfigError(f.name, v, "true or false")
        elif isinstance(default, int):
            if isinstance(v, bool) or not isinstance(v, int):
                raise ConfigError(f.name, v, "a whole number")
        elif isinstance(default, str):
            if not isinstance(v, str):
                raise ConfigError(f.name, v, "a string")
        elif isinstance(default, tuple):
            if not isinstance(v, tuple):
                what = "icon tables" if f.name == "manifest_icons" else "strings"
                raise ConfigError(f.name, v, f"a list of {what}, not a single value")
        elif default is None and v is not None and not isinstance(v, str):
            raise ConfigError(f.name, v, "a string, or unset")
        # Text ends up in UTF-8 files and headers: a lone surrogate cannot be written, so
        # it is refused here, naming the setting, instead of failing every request.
        _find_surrogate(f.name, v)


def _utf8_allowed(problem: str) -> str:
    return (f"text that can be written as UTF-8; it holds {problem} (a lone surrogate, "
            "often left by decoding bytes with errors='surrogateescape'): fix the value")


def _find_surrogate(name: str, value: Any) -> None:
    """The first string (member name or value) in a setting's value that is not valid
    Unicode (a lone surrogate such as ``"\\ud800"``, what ``errors="surrogateescape"``
    decoding leaves), raised as a ConfigError naming its path (``manifest_icons[0].src``).
    Values are strings, tuples of them or of icon tables, or JSON that has passed
    ``json.dumps`` (finite, free of cycles); walked without recursion."""
    stack: list[tuple[str, Any]] = [(name, value)]
    while stack:
        where, v = stack.pop()
        if isinstance(v, str):
            problem = lone_surrogate(v)
            if problem:
                raise ConfigError(where, v, _utf8_allowed(problem))
        elif isinstance(v, Mapping):
            for k, item in v.items():
                if isinstance(k, str) and lone_surrogate(k):
                    raise ConfigError(f"{where}.{_shown(k)}", k,
                                      _utf8_allowed(lone_surrogate(k) or ""))
                stack.append((f"{where}.{_shown(k)}", item))
        elif isinstance(v, (list, tuple)):
            stack.extend((f"{where}[{i}]", item) for i, item in enumerate(v))


def _validate(s: Settings) -> None:
    _check_types(s)

    if s.moengage_app_id is not None and not _APP_ID_RE.fullmatch(s.moengage_app_id):
        raise ConfigError("moengage_app_id", s.moengage_app_id,
                          "the App ID from Dashboard > Settings > App > General "
                          "(letters, digits, _ and -)")
    dc = s.moengage_data_center
    if not _DC_RE.fullmatch(dc):
        raise ConfigError("moengage_data_center", dc,
                          "dc_<n> as shown by your dashboard host (dashboard-0N -> dc_N), "
                          "e.g. dc_1, dc_2, dc_3, dc_4, dc_6")
    if not _SDK_VERSION_RE.fullmatch(s.moengage_sdk_version):
        raise ConfigError("moengage_sdk_version", s.moengage_sdk_version,
                          "a version such as 2 (major, recommended) or 2.73.00")
    imp = s.moengage_sw_import
    if imp not in IMPORT_MODES:
        _check_url("moengage_sw_import", imp,
                   "auto, versioned, legacy, none, or a constant https URL or root path "
                   "(no ?date= cache-buster: a changing import URL stops installed workers)")
    if s.moengage_sdk_url is not None:
        _check_url("moengage_sdk_url", s.moengage_sdk_url, "an https URL or a root path")
    for i, url in enumerate(s.sw_import_scripts):
        if not isinstance(url, str):
            raise ConfigError(f"sw_import_scripts[{i}]", url, "a URL string")
        _check_url(f"sw_import_scripts[{i}]", url, "a constant https URL or root path")
    if s.sw_push_handler not in ("auto", "on", "off"):
        raise ConfigError("sw_push_handler", s.sw_push_handler, "auto, on or off")

    for name in ("sw_path", "manifest_path", "client_path", "api_path"):
        _check_path(name, getattr(s, name))
    if s.sw_path.endswith("/") or s.manifest_path.endswith("/") or s.client_path.endswith("/"):
        bad = next(n for n in ("sw_path", "manifest_path", "client_path")
                   if getattr(s, n).endswith("/"))
        raise ConfigError(bad, getattr(s, bad), "a file path, not ending in /")
    paths = [s.sw_path, s.manifest_path, s.client_path]
    if len(set(paths)) != len(paths):
        raise ConfigError("sw_path", s.sw_path,
                          "sw_path, manifest_path and client_path must all differ")
    # The JSON endpoints answer every path below api_path: it must be a prefix of its own.
    if s.api_path == "/" or s.api_path.endswith("/"):
        raise ConfigError("api_path", s.api_path, "a prefix of its own such as "
                          "/webpush-kit/api (not / and not ending in /: every path below it "
                          "is answered by the JSON endpoints)")
    for name, path in zip(("sw_path", "manifest_path", "client_path"), paths, strict=True):
        if path == s.api_path or path.startswith(s.api_path + "/"):
            raise ConfigError("api_path", s.api_path,
                              f"a prefix that does not contain {name} {path!r}")
    _check_path("sw_scope", s.sw_scope)
    for name in ("manifest_id", "manifest_start_url", "manifest_scope"):
        _check_path(name, getattr(s, name), query_ok=name != "manifest_scope")
    start_path = s.manifest_start_url.split("?", 1)[0].split("#", 1)[0]
    if not start_path.startswith(s.manifest_scope):
        raise ConfigError("manifest_start_url", s.manifest_start_url,
                          f"a path inside manifest_scope {s.manifest_scope!r} (browsers "
                          "ignore a scope that does not contain start_url)")
    if s.manifest_display not in DISPLAY_MODES:
        raise ConfigError("manifest_display", s.manifest_display,
                          "one of " + ", ".join(DISPLAY_MODES))
    for name in ("manifest_name", "manifest_short_name"):
        v = getattr(s, name)
        if v is not None and (not isinstance(v, str) or not v.strip() or len(v) > 200):
            raise ConfigError(name, v, "a non-empty string of at most 200 characters")
    for name in ("manifest_theme_color", "manifest_background_color"):
        v = getattr(s, name)
        if v is not None and not _COLOR_RE.fullmatch(v):
            raise ConfigError(name, v, "a CSS color such as #1a73e8, white or rgb(0 0 0)")
    for i, icon in enumerate(s.manifest_icons):
        key = f"manifest_icons[{i}]"
        _icon(key, icon)
        _check_url(f"{key}.src", icon["src"], "a root-relative path or https URL",
                   relative_ok=True)
        if "sizes" in icon and not _SIZES_RE.fullmatch(icon["sizes"]):
            raise ConfigError(f"{key}.sizes", icon["sizes"], "sizes like 192x192 or "
                              "'192x192 512x512' or any")
    if not isinstance(s.manifest_extra, Mapping):
        raise ConfigError("manifest_extra", s.manifest_extra, "a dict of manifest members")
    for k, v in s.manifest_extra.items():
        where = f"manifest_extra.{_shown(k)}"
        if k in DEDICATED_MEMBERS:
            raise ConfigError(where, v,
                              f"set it with the {DEDICATED_MEMBERS[k]} setting instead")
        try:
            text = json.dumps({k: v}, allow_nan=False, ensure_ascii=False)
        except RecursionError:
            raise ConfigError(where, "<deeply nested value>", "a JSON value nested less "
                              "deeply (a manifest member needs a few levels at most)") from None
        except (TypeError, ValueError):
            raise ConfigError(where, v, "a JSON value") from None
        problem = lone_surrogate(text)
        if problem:
            _find_surrogate("manifest_extra", {k: v})  # names the member's path
            raise ConfigError(where, v, _utf8_allowed(problem))  # (not reached)
    if s.gcm_sender_id is not None and not _SENDER_ID_RE.fullmatch(s.gcm_sender_id):
        raise ConfigError("gcm_sender_id", s.gcm_sender_id,
                          "the numeric sender id from the MoEngage dashboard "
                          f"(the MoEngage Shared Project uses {MOENGAGE_SHARED_SENDER_ID})")
    if s.vapid_subject is not None:
        check_subject(s.vapid_subject)  # the same rule VapidClaims applies
    elif s.vapid_private_key:
        raise ConfigError("vapid_subject", None,
                          "required with vapid_private_key: the contact push services see in "
                          "every push, a real mailto: address or https: URL of your site")
    for i, host in enumerate(s.push_hosts):
        if not isinstance(host, str):
            raise ConfigError(f"push_hosts[{i}]", host, "a host name or *.suffix")
        problem = host_pattern_problem(host)
        if problem:
            raise ConfigError(f"push_hosts[{i}]", host, problem)
        if re.fullmatch(r"[0-9.]+", host):
            raise ConfigError(f"push_hosts[{i}]", host,
                              "a host name: endpoints on IP addresses are always refused "
                              "(for a local push service in development, set "
                              "allow_localhost_endpoints)")
    if not 60 <= s.user_token_max_age <= _TOKEN_MAX_AGE_MAX:
        raise ConfigError("user_token_max_age", s.user_token_max_age,
                          f"seconds between 60 and {_TOKEN_MAX_AGE_MAX}")
    if not 1024 <= s.max_body_bytes <= 1024 * 1024:
        raise ConfigError("max_body_bytes", s.max_body_bytes, "bytes between 1024 and 1048576")


def _check_path(name: str, value: str, *, query_ok: bool = False) -> None:
    path = value
    if query_ok:
        path = path.split("#", 1)[0].split("?", 1)[0]
    if not isinstance(value, str) or not _PATH_RE.fullmatch(path) or "//" in path \
            or "/../" in path + "/" or "/./" in path + "/":
        raise ConfigError(name, value, "a root-relative URL path such as /manifest.json "
                          "(starting with /, no //, .., spaces or quotes)")


def _check_url(name: str, value: str, allowed: str, *, relative_ok: bool = True) -> None:
    if not isinstance(value, str) or not value or any(
            c in value for c in "\"'<>\\ \t\r\n\x00") or any(ord(c) < 32 for c in value):
        raise ConfigError(name, value, allowed)
    if value.startswith("/") and not value.startswith("//"):
        if relative_ok:
            return
        raise ConfigError(name, value, allowed)
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises ValueError for a port that is not 0-65535
    except ValueError:  # "http://[::1/x.js": an unclosed IPv6 bracket, or a bad port
        raise ConfigError(name, value, allowed) from None
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and is_loopback_host(parts.hostname):
        return  # local stand-ins for tests and development
    raise ConfigError(name, value, allowed)


def settings_warnings(s: Settings) -> list[str]:
    """What keeps the site from being installable or iOS-push ready (not errors)."""
    out: list[str] = []
    if not (s.manifest_name or s.manifest_short_name):
        out.append("manifest has no name or short_name: browsers will not offer to install "
                   "the site (set manifest_name)")
    sizes: set[str] = set()
    for icon in s.manifest_icons:
        sizes.update(icon.get("sizes", "").split())
    largest = max((int(x.split("x")[0]) for x in sizes if "x" in x), default=0)
    if not {"192x192", "512x512"} <= sizes and "any" not in sizes:
        out.append("manifest icons lack 192x192 and 512x512 entries: Chrome needs them to "
                   "offer installation (set manifest_icons)")
    elif largest and largest < 144 and "any" not in sizes:
        out.append("largest manifest icon is under 144px, Chromium's minimum")
    if s.manifest_display not in ("standalone", "fullscreen"):
        out.append(f"manifest display {s.manifest_display!r}: iOS and iPadOS only deliver "
                   "web push to Home Screen apps with display standalone or fullscreen")
    if s.manifest_extra.get("prefer_related_applications") is True:
        out.append("prefer_related_applications is true: Chrome will not offer to install")
    if s.gcm_sender_id and s.vapid_private_key:
        out.append("gcm_sender_id is set beside a VAPID key: it is obsolete with VAPID "
                   "(only Chrome <= 51 used it); remove it unless MoEngage asks for it")
    return out


def log_warnings(s: Settings) -> None:
    for w in settings_warnings(s):
        log.warning("webpush_kit: %s", w)


__all__ = [
    "CONFIG_PREFIX",
    "MOENGAGE_SHARED_SENDER_ID",
    "Settings",
    "iter_options",
    "log_warnings",
    "settings_warnings",
    "toml_key",
]


def options_markdown() -> str:
    """The README's settings table, generated from the catalogue (a test keeps them equal)."""
    rows = ["| Setting (`WEBPUSH_` + upper case in Flask config) | TOML | Default | What it is |",
            "|---|---|---|---|"]
    for f in iter_options():
        missing = f.default is dataclasses.MISSING
        default = f.default_factory() if missing else f.default  # type: ignore[operator]
        shown = "unset" if default is None else json.dumps(
            list(default) if isinstance(default, tuple) else default)
        doc = f.metadata["doc"].replace("|", "\\|")
        rows.append(f"| `{f.name}` | `[{f.metadata['section']}] {toml_key(f)}` | `{shown}` "
                    f"| {doc} |")
    return "\n".join(rows) + "\n"
