"""Settings: one validated object from kwargs, Flask config or TOML (issue 2, item 2)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from webpush_kit.errors import ConfigError
from webpush_kit.settings import (
    MOENGAGE_SHARED_SENDER_ID,
    Settings,
    iter_options,
    log_warnings,
    settings_warnings,
)

CDN = "https://cdn.moengage.com"


def test_defaults_are_plain_and_never_switch_on_the_shared_sender_id() -> None:
    s = Settings()
    assert s.gcm_sender_id is None
    assert s.moengage_app_id is None
    assert s.sw_import_url is None  # no app id: the worker imports nothing
    assert s.sw_path == "/serviceworker.js" and s.manifest_path == "/manifest.json"
    assert s.manifest_id == "/"  # an explicit, stable id (WEB-PUSH-RULES 2.7)
    assert Settings(moengage_app_id="APP1").gcm_sender_id is None


@pytest.mark.parametrize(
    ("options", "url"),
    [
        ({"moengage_app_id": "APP1"},
         f"{CDN}/release/dc_1/versions/2/serviceworker_cdn.min.latest.js"),
        ({"moengage_app_id": "APP1", "moengage_data_center": "dc_4",
          "moengage_sdk_version": "2.73.00"},
         f"{CDN}/release/dc_4/versions/2.73.00/serviceworker_cdn.min.latest.js"),
        ({"moengage_app_id": "APP1", "moengage_sw_import": "legacy"},
         f"{CDN}/webpush/releases/serviceworker_cdn.min.latest.js"),
        ({"moengage_app_id": "APP1", "moengage_sw_import": "none"}, None),
        ({"moengage_sw_import": "versioned"},
         f"{CDN}/release/dc_1/versions/2/serviceworker_cdn.min.latest.js"),
        ({"moengage_app_id": "APP1", "moengage_sw_import": "/static/moe/sw.js"},
         "/static/moe/sw.js"),
        ({"moengage_app_id": "APP1", "moengage_sw_import": "https://proxy.example.com/m/sw.js"},
         "https://proxy.example.com/m/sw.js"),
    ],
)
def test_service_worker_import_modes(options: dict[str, str], url: str | None) -> None:
    assert Settings(**options).sw_import_url == url


def test_sdk_url_comes_from_the_same_place_as_the_worker_import() -> None:
    assert Settings(moengage_app_id="A").sdk_url == \
        f"{CDN}/release/dc_1/versions/2/moe_webSdk.min.latest.js"
    assert Settings(moengage_app_id="A", moengage_sw_import="legacy").sdk_url == \
        f"{CDN}/webpush/moe_webSdk.min.latest.js"
    local = Settings(moengage_app_id="A",
                     moengage_sw_import="/_standin/moengage/serviceworker_cdn.min.latest.js")
    assert local.sdk_url == "/_standin/moengage/moe_webSdk.min.latest.js"
    explicit = Settings(moengage_app_id="A", moengage_sdk_url="https://x.example.com/sdk.js")
    assert explicit.sdk_url == "https://x.example.com/sdk.js"
    assert Settings().sdk_url is None


def test_data_centre_is_normalised_only_in_form_dc_n() -> None:
    with pytest.raises(ConfigError) as exc:
        Settings(moengage_data_center="DC-1")
    assert exc.value.key == "moengage_data_center"
    assert "dc_<n>" in str(exc.value) and "'DC-1'" in str(exc.value)


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("moengage_data_center", "eu", "dc_<n>"),
        ("moengage_data_center", "dc_", "dc_<n>"),
        ("moengage_app_id", "bad id!", "App ID"),
        ("moengage_sdk_version", "latest", "version"),
        ("moengage_sw_import", "sometimes", "constant"),
        ("moengage_sw_import", 'https://cdn.moengage.com/sw.js?date="+new Date()', "constant"),
        ("moengage_sw_import", "javascript:alert(1)", "constant"),
        ("moengage_sw_import", "http://cdn.moengage.com/sw.js", "constant"),
        ("sw_import_scripts", ("ftp://x/y.js",), "constant"),
        ("sw_path", "serviceworker.js", "root-relative"),
        ("sw_path", "/a/../serviceworker.js", "root-relative"),
        ("sw_path", "/sw/", "not ending in /"),
        ("manifest_path", "/manifest.json?x=<", "root-relative"),
        ("sw_scope", "//evil.example/", "root-relative"),
        ("manifest_display", "window", "standalone"),
        ("manifest_theme_color", "red;}</style>", "CSS color"),
        ("manifest_start_url", "https://other.example/", "root-relative"),
        ("manifest_scope", "/app/", "inside manifest_scope"),
        ("gcm_sender_id", "GCM_SENDER_ID", MOENGAGE_SHARED_SENDER_ID),
        ("vapid_subject", "mailto:admin@localhost", "mailto:"),
        ("vapid_subject", "admin@example.com", "mailto:"),
        ("vapid_subject", "https://localhost/", "https:"),
        ("user_token_max_age", 5, "seconds"),
        ("max_body_bytes", 10, "bytes"),
        ("push_hosts", ("bad host!",), "host"),
        ("sw_push_handler", "maybe", "auto, on or off"),
        ("moengage_debug", "perhaps", "true or false"),
    ],
)
def test_a_wrong_value_names_the_key_the_value_and_what_is_allowed(
    key: str, value: object, fragment: str
) -> None:
    with pytest.raises(ConfigError) as exc:
        Settings.from_mapping({key: value})
    message = str(exc.value)
    assert key.split("[")[0] in message
    assert repr(value if not isinstance(value, tuple) else value[0]) in message or \
        repr(value) in message
    assert fragment in message


def test_manifest_start_url_outside_scope_is_refused() -> None:
    with pytest.raises(ConfigError, match="inside manifest_scope"):
        Settings(manifest_scope="/app/", manifest_start_url="/other/")
    assert Settings(manifest_scope="/app/", manifest_start_url="/app/?src=pwa").manifest_scope


def test_icons_are_checked_member_by_member() -> None:
    with pytest.raises(ConfigError, match=r"manifest_icons\[1\]\.sizes"):
        Settings(manifest_icons=({"src": "/a.png", "sizes": "192x192"},
                                 {"src": "/b.png", "sizes": "huge"}))
    with pytest.raises(ConfigError, match=r"manifest_icons\[0\]"):
        Settings(manifest_icons=({"href": "/a.png"},))
    with pytest.raises(ConfigError, match=r"manifest_icons\[0\]\.src"):
        Settings(manifest_icons=({"src": "javascript:x"},))


def test_extra_members_cannot_shadow_dedicated_settings() -> None:
    with pytest.raises(ConfigError, match="manifest_name setting"):
        Settings(manifest_extra={"name": "x"})
    with pytest.raises(ConfigError, match="JSON value"):
        Settings(manifest_extra={"lang": {1, 2}})
    assert Settings(manifest_extra={"lang": "fr", "dir": "ltr"}).manifest_extra["lang"] == "fr"


def test_unknown_keys_get_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="did you mean 'moengage_app_id'"):
        Settings.from_mapping({"moengage_appid": "A"})


def test_from_flask_config_reads_prefixed_keys_and_coerces_strings() -> None:
    s = Settings.from_flask_config({
        "WEBPUSH_MOENGAGE_APP_ID": "APP1",
        "WEBPUSH_MOENGAGE_DEBUG": "true",
        "WEBPUSH_GCM_SENDER_ID": 540868316921,
        "WEBPUSH_SW_IMPORT_SCRIPTS": "/a.js, /b.js",
        "WEBPUSH_MANIFEST_ICONS": '[{"src": "/i.png", "sizes": "192x192"}]',
        "WEBPUSH_USER_TOKEN_MAX_AGE": "3600",
        "SECRET_KEY": "ignored",
    })
    assert s.moengage_debug is True and s.gcm_sender_id == "540868316921"
    assert s.sw_import_scripts == ("/a.js", "/b.js")
    assert s.manifest_icons[0]["sizes"] == "192x192"
    assert s.user_token_max_age == 3600


def test_flask_config_errors_name_the_config_key() -> None:
    with pytest.raises(ConfigError) as exc:
        Settings.from_flask_config({"WEBPUSH_MOENGAGE_DATA_CENTER": "europe"})
    assert exc.value.key == "WEBPUSH_MOENGAGE_DATA_CENTER"
    with pytest.raises(ConfigError, match="did you mean WEBPUSH_MOENGAGE_DATA_CENTER"):
        Settings.from_flask_config({"WEBPUSH_MOENGAGE_DATA_CENTRE": "dc_2"})


def test_keyword_overrides_win_over_config() -> None:
    s = Settings.from_flask_config({"WEBPUSH_MOENGAGE_DEBUG": True}, {"moengage_debug": False})
    assert s.moengage_debug is False


def test_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "webpush.toml"
    path.write_text(
        '[moengage]\napp_id = "APP1"\ndata_center = "dc_2"\ndebug = true\n'
        '[manifest]\nname = "Shop"\ngcm_sender_id = "540868316921"\n'
        'icons = [{src = "/i.png", sizes = "192x192"}]\n'
        '[manifest.extra]\nlang = "en"\n'
        '[worker]\nimport_scripts = ["/own.js"]\n',
        encoding="utf-8",
    )
    s = Settings.from_toml(path)
    assert (s.moengage_app_id, s.moengage_data_center, s.moengage_debug) == ("APP1", "dc_2", True)
    assert s.manifest_name == "Shop" and s.manifest_extra == {"lang": "en"}
    assert s.sw_import_scripts == ("/own.js",)


def test_toml_errors_name_section_and_key(tmp_path: Path) -> None:
    path = tmp_path / "w.toml"
    path.write_text('[moengage]\ndata_center = "eu"\n', encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        Settings.from_toml(path)
    assert "[moengage] data_center" in str(exc.value) and "w.toml" in str(exc.value)
    path.write_text('[moengage]\napp_idd = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"did you mean \[moengage\] app_id"):
        Settings.from_toml(path)
    path.write_text('[moengage\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        Settings.from_toml(path)
    with pytest.raises(ConfigError, match="webpush-kit init"):
        Settings.from_toml(tmp_path / "missing.toml")


def test_every_option_is_documented_and_in_a_section() -> None:
    for f in iter_options():
        assert f.metadata["doc"].strip(), f.name
        assert f.metadata["section"] in {"moengage", "worker", "manifest", "head", "push",
                                         "store"}


def test_warnings_for_installability_and_ios_push(caplog: pytest.LogCaptureFixture) -> None:
    bare = settings_warnings(Settings(manifest_display="browser"))
    assert any("no name" in w for w in bare)
    assert any("192x192 and 512x512" in w for w in bare)
    assert any("iOS" in w for w in bare)
    good = Settings(
        manifest_name="Shop",
        manifest_icons=({"src": "/a.png", "sizes": "192x192"},
                        {"src": "/b.png", "sizes": "512x512"}),
    )
    assert settings_warnings(good) == []
    with caplog.at_level(logging.WARNING, logger="webpush_kit"):
        log_warnings(Settings(manifest_display="minimal-ui"))
    assert "standalone or fullscreen" in caplog.text


def test_settings_are_immutable() -> None:
    s = Settings()
    with pytest.raises(AttributeError):
        s.sw_path = "/x.js"  # type: ignore[misc]
    assert s.replace(moengage_app_id="B").moengage_app_id == "B"


@pytest.mark.parametrize(
    ("options", "key", "allowed"),
    [
        # Settings(...) built directly gets the same type checks as config and TOML.
        ({"max_body_bytes": "big"}, "max_body_bytes", "a whole number"),
        ({"user_token_max_age": True}, "user_token_max_age", "a whole number"),
        ({"push_hosts": "push.example.com"}, "push_hosts", "a list of strings"),
        ({"sw_import_scripts": "https://cdn.example.com/a.js"}, "sw_import_scripts",
         "a list of strings"),
        ({"manifest_icons": {"src": "/i.png"}}, "manifest_icons", "a list of icon tables"),
        ({"database_url": 5}, "database_url", "a string, or unset"),
        ({"moengage_app_id": ["APP"]}, "moengage_app_id", "a string, or unset"),
        # The JSON endpoints answer every path below api_path.
        ({"api_path": "/"}, "api_path", "a prefix of its own"),
        ({"api_path": "/hooks/"}, "api_path", "not ending in /"),
        ({"api_path": "/manifest.json"}, "api_path", "does not contain manifest_path"),
        ({"api_path": "/push", "client_path": "/push/client.js"}, "api_path",
         "does not contain client_path"),
        # An IP literal in push_hosts could never match an accepted endpoint.
        ({"push_hosts": ["10.0.0.7"]}, "push_hosts[0]", "endpoints on IP addresses"),
    ],
)
def test_direct_construction_is_checked_like_every_other_source(
    options: dict[str, object], key: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Settings(**options)  # type: ignore[arg-type]
    assert info.value.key == key
    assert allowed in info.value.allowed


def test_lists_are_kept_as_tuples() -> None:
    s = Settings(push_hosts=["push.example.com"],  # type: ignore[arg-type]
                 sw_import_scripts=["/extra.js"])  # type: ignore[arg-type]
    assert s.push_hosts == ("push.example.com",) and s.sw_import_scripts == ("/extra.js",)
    assert s == Settings(push_hosts=("push.example.com",), sw_import_scripts=("/extra.js",))


# --- bad input found by a newcomer -------------------------------------------------------


def _string_options() -> list[str]:
    """Every setting whose value is a string (or unset)."""
    return [f.name for f in iter_options()
            if isinstance(f.default, str) or (f.default is None and f.name != "manifest_extra")]


@pytest.mark.parametrize("name", _string_options())
def test_every_string_setting_refuses_a_lone_surrogate_naming_itself(name: str) -> None:
    # Appended to a valid value where there is one, so only the surrogate is wrong.
    valid = {"vapid_subject": "mailto:push@shop-example.com", "moengage_sdk_url":
             "https://cdn.example.com/sdk.js", "manifest_theme_color": "white",
             "manifest_background_color": "white", "gcm_sender_id": "1"}
    base = valid.get(name, getattr(Settings(), name) or "x")
    with pytest.raises(ConfigError) as info:
        Settings(**{name: base + "\ud800"})
    assert info.value.key == name
    assert "lone surrogate" in info.value.allowed
    str(info.value).encode("utf-8")  # printable: the surrogate is shown escaped


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"manifest_extra": {"x": "\udcff"}}, "manifest_extra.x"),
        ({"manifest_extra": {"a": {"b": ["ok", "\ud800"]}}}, "manifest_extra.a.b[1]"),
        ({"manifest_extra": {"k\ud800": 1}}, "manifest_extra.k\\ud800"),
        ({"manifest_icons": [{"src": "/i\ud800.png"}]}, "manifest_icons[0].src"),
        ({"sw_import_scripts": ["/a.js", "/b\udfff.js"]}, "sw_import_scripts[1]"),
        ({"push_hosts": ["push\ud800.example.com"]}, "push_hosts[0]"),
    ],
)
def test_lone_surrogates_inside_lists_and_tables_are_refused_by_path(
    options: dict[str, object], key: str
) -> None:
    with pytest.raises(ConfigError) as info:
        Settings(**options)  # type: ignore[arg-type]
    assert info.value.key == key
    assert "lone surrogate" in info.value.allowed
    str(info.value).encode("utf-8")


def test_a_deeply_nested_manifest_extra_is_a_config_error() -> None:
    deep: list[object] = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ConfigError, match="nested less deeply") as info:
        Settings(manifest_extra={"x": deep})
    assert info.value.key == "manifest_extra.x"


@pytest.mark.parametrize(
    ("toml", "key", "allowed"),
    [
        ('[moengage]\ndebug = "yes"\n', "[moengage] debug", "without quotes"),
        ('[moengage]\ndebug = "false"\n', "[moengage] debug", "without quotes"),
        ('[head]\ninject_head = "off"\n', "[head] inject_head", "true or false"),
        ("[moengage]\napp_id = 123\n", "[moengage] app_id", 'in quotes, "123"'),
        ("[manifest]\ngcm_sender_id = 540868316921\n", "[manifest] gcm_sender_id",
         'in quotes, "540868316921"'),
        ('[store]\nmax_body_bytes = "2048"\n', "[store] max_body_bytes", "without quotes"),
        ('[store]\npush_hosts = "push.example.com"\n', "[store] push_hosts", "TOML array"),
        ('[manifest]\nextra = \'{"lang": "en"}\'\n', "[manifest] extra", "TOML table"),
    ],
)
def test_toml_values_must_have_their_type(
    tmp_path: Path, toml: str, key: str, allowed: str
) -> None:
    path = tmp_path / "webpush.toml"
    path.write_text(toml, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        Settings.from_toml(path)
    assert info.value.key == f"{path}: {key}"
    assert allowed in info.value.allowed


def test_flask_config_strings_from_the_environment_are_still_read() -> None:
    s = Settings.from_flask_config({"WEBPUSH_MOENGAGE_DEBUG": "false",
                                    "WEBPUSH_INJECT_HEAD": "off",
                                    "WEBPUSH_MAX_BODY_BYTES": "2048",
                                    "WEBPUSH_MOENGAGE_APP_ID": 123,
                                    "WEBPUSH_PUSH_HOSTS": "a.example.com, b.example.com"})
    assert (s.moengage_debug, s.inject_head, s.max_body_bytes) == (False, False, 2048)
    assert s.moengage_app_id == "123"
    assert s.push_hosts == ("a.example.com", "b.example.com")
    assert Settings.from_mapping({"moengage_debug": "yes"}).moengage_debug is True


def test_a_member_error_from_flask_config_keeps_its_member_path() -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_flask_config({"WEBPUSH_MANIFEST_EXTRA": {"name": "x"}})
    assert info.value.key == "WEBPUSH_MANIFEST_EXTRA.name"
    with pytest.raises(ConfigError) as info:
        Settings.from_flask_config({}, {"manifest_icons": [{"src": "javascript:x"}]})
    assert info.value.key == "manifest_icons[0].src"


def test_from_toml_names_a_directory_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="a directory, not a settings file") as info:
        Settings.from_toml(tmp_path)
    assert info.value.value == str(tmp_path)
    binary = tmp_path / "w.toml"
    binary.write_bytes(b"[moengage]\napp_id = \"\xff\"\n")
    with pytest.raises(ConfigError, match="not a UTF-8 text file"):
        Settings.from_toml(binary)


@pytest.mark.parametrize("host", ["*.com", "*.co.uk", "*.com.au", "*.co.jp", "*.github.io",
                                  "*.", "*", "push.*.example.com"])
def test_a_push_host_wildcard_must_name_a_domain_of_its_own(host: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings(push_hosts=[host])  # type: ignore[arg-type]
    assert info.value.key == "push_hosts[0]"


def test_wildcards_over_a_real_domain_are_accepted() -> None:
    hosts = ("*.example.com", "*.push.example.com", "*.example.co.uk", "push.example.com")
    assert Settings(push_hosts=hosts).push_hosts == hosts


def test_wildcard_refusal_says_why() -> None:
    with pytest.raises(ConfigError, match=r"every \.com host") as info:
        Settings(push_hosts=["*.com"])  # type: ignore[arg-type]
    assert "at least two labels" in info.value.allowed
    with pytest.raises(ConfigError, match="public suffix"):
        Settings(push_hosts=["*.co.uk"])  # type: ignore[arg-type]


def test_settings_are_explicitly_unhashable() -> None:
    for s in (Settings(), Settings(manifest_icons=[{"src": "/i.png"}])):  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="unhashable type: 'Settings'"):
            hash(s)
    assert Settings() == Settings()  # equality still compares the values
