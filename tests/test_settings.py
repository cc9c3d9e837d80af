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
        '[manifest]\nname = "Shop"\ngcm_sender_id = 540868316921\n'
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
