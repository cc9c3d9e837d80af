"""Merging into a site's own manifest.json and service worker (issue 5, item 3).

Every case runs twice: the second run must return the same text and ``changed=False``.
"""

from __future__ import annotations

import difflib
import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webpush_kit.errors import ValidationError
from webpush_kit.merge import (
    MergeResult,
    find_moengage_imports,
    merge_manifest,
    merge_service_worker,
    serialise_import,
)

SENDER: dict[str, object] = {"gcm_sender_id": "540868316921"}
ICONS: list[dict[str, object]] = [
    {"src": "/icon-192.png", "sizes": "192x192"},
    {"src": "/icon-512.png", "sizes": "512x512"},
]


def _twice_manifest(text: str, members: dict[str, object]) -> MergeResult:
    first = merge_manifest(text, members)
    second = merge_manifest(first.text, members)
    assert second.text == first.text
    assert second.changed is False
    return first


# --------------------------------------------------------------------------------------
# manifests
# --------------------------------------------------------------------------------------


@dataclass
class M:
    id: str
    text: str
    members: dict[str, object]
    expected: str  # the exact merged text
    changed: bool = True
    notes: tuple[str, ...] = field(default_factory=tuple)  # substrings, one per note


MANIFESTS = [
    M(
        "add-2-spaces",
        '{\n  "name": "Shop",\n  "display": "standalone"\n}\n',
        SENDER,
        '{\n  "name": "Shop",\n  "display": "standalone",\n  "gcm_sender_id": "540868316921"\n}\n',
        notes=('added "gcm_sender_id"',),
    ),
    M(
        "update-keeps-position",
        '{\n  "name": "Shop",\n  "gcm_sender_id": "103953800507",\n  "display": "standalone"\n}',
        SENDER,
        '{\n  "name": "Shop",\n  "gcm_sender_id": "540868316921",\n  "display": "standalone"\n}',
        notes=('updated "gcm_sender_id" from "103953800507" to "540868316921"',),
    ),
    M(
        "already-there",
        '{\n  "gcm_sender_id": "540868316921"\n}\n',
        SENDER,
        '{\n  "gcm_sender_id": "540868316921"\n}\n',
        changed=False,
    ),
    M(
        "4-spaces-nested-untouched",
        '{\n    "name": "Shop",\n    "icons": [{"src":"/a.png",  "sizes":"48x48"},\n'
        '              {"src": "/b.png"}],\n    "x": {"a": {"b": [1, 2.50, true]}}\n}\n',
        SENDER,
        '{\n    "name": "Shop",\n    "icons": [{"src":"/a.png",  "sizes":"48x48"},\n'
        '              {"src": "/b.png"}],\n    "x": {"a": {"b": [1, 2.50, true]}},\n'
        '    "gcm_sender_id": "540868316921"\n}\n',
    ),
    M(
        "tabs-new-nested-member",
        '{\n\t"name": "Shop"\n}',
        {"icons": ICONS},
        '{\n\t"name": "Shop",\n\t"icons": [\n\t\t{\n\t\t\t"src": "/icon-192.png",\n'
        '\t\t\t"sizes": "192x192"\n\t\t},\n\t\t{\n\t\t\t"src": "/icon-512.png",\n'
        '\t\t\t"sizes": "512x512"\n\t\t}\n\t]\n}',
    ),
    M(
        "4-spaces-update-nested",
        '{\n    "icons": [],\n    "name": "Shop"\n}\n',
        {"icons": ICONS[:1]},
        '{\n    "icons": [\n        {\n            "src": "/icon-192.png",\n'
        '            "sizes": "192x192"\n        }\n    ],\n    "name": "Shop"\n}\n',
    ),
    M(
        "equal-value-other-formatting-untouched",
        '{"icons": [ {"sizes": "192x192", "src": "/icon-192.png"} ], "n": 1.0}',
        {"icons": ICONS[:1], "n": 1},
        '{"icons": [ {"sizes": "192x192", "src": "/icon-192.png"} ], "n": 1.0}',
        changed=False,
    ),
    M(
        "unicode-not-escaped",
        '{\n  "name": "Café Zürich ☕",\n  "short_name": "\\u00e9t\\u00e9"\n}\n',
        {"gcm_sender_id": "540868316921", "description": "Ünïcode — 東京"},
        '{\n  "name": "Café Zürich ☕",\n  "short_name": "\\u00e9t\\u00e9",\n'
        '  "gcm_sender_id": "540868316921",\n  "description": "Ünïcode — 東京"\n}\n',
    ),
    M(
        "crlf",
        '{\r\n  "name": "Shop",\r\n  "icons": [\r\n    {"src": "/a.png"}\r\n  ]\r\n}\r\n',
        {"gcm_sender_id": "540868316921", "display": "standalone", "start_url": "/"},
        '{\r\n  "name": "Shop",\r\n  "icons": [\r\n    {"src": "/a.png"}\r\n  ],\r\n'
        '  "gcm_sender_id": "540868316921",\r\n  "display": "standalone",\r\n'
        '  "start_url": "/"\r\n}\r\n',
    ),
    M(
        "crlf-new-nested",
        '{\r\n  "name": "Shop"\r\n}',
        {"icons": ICONS[:1]},
        '{\r\n  "name": "Shop",\r\n  "icons": [\r\n    {\r\n      "src": "/icon-192.png",\r\n'
        '      "sizes": "192x192"\r\n    }\r\n  ]\r\n}',
    ),
    M(
        "minified-one-line",
        '{"name":"Shop","icons":[{"src":"/a.png"}]}',
        {"gcm_sender_id": "540868316921", "icons": ICONS[:1]},
        '{"name":"Shop","icons":[{"src":"/icon-192.png","sizes":"192x192"}],'
        '"gcm_sender_id":"540868316921"}',
    ),
    M(
        "one-line-with-spaces",
        '{"name": "Shop", "display": "browser"}\n',
        {"display": "standalone", "icons": ICONS[:1]},
        '{"name": "Shop", "display": "standalone", '
        '"icons": [{"src": "/icon-192.png", "sizes": "192x192"}]}\n',
    ),
    M(
        "bom",
        '\ufeff{\n  "name": "Shop"\n}\n',
        SENDER,
        '\ufeff{\n  "name": "Shop",\n  "gcm_sender_id": "540868316921"\n}\n',
    ),
    M(
        "no-trailing-newline",
        '{\n  "name": "Shop"\n}',
        SENDER,
        '{\n  "name": "Shop",\n  "gcm_sender_id": "540868316921"\n}',
    ),
    M(
        "trailing-blank-lines-and-spaces-kept",
        '  {\n    "name": "Shop"  \n  }\n\n',
        SENDER,
        '  {\n    "name": "Shop",\n    "gcm_sender_id": "540868316921"  \n  }\n\n',
    ),
    M("empty-one-line", "{}", SENDER, '{"gcm_sender_id": "540868316921"}'),
    M(
        "empty-two-lines",
        "{\n}\n",
        {"gcm_sender_id": "540868316921", "icons": ICONS[:1]},
        '{\n  "gcm_sender_id": "540868316921",\n  "icons": [\n    {\n'
        '      "src": "/icon-192.png",\n      "sizes": "192x192"\n    }\n  ]\n}\n',
    ),
    M(
        "empty-with-tab-elsewhere-is-not-guessed",
        "{\r\n}",
        SENDER,
        '{\r\n  "gcm_sender_id": "540868316921"\r\n}',
    ),
    M(
        "single-member-on-brace-line",
        '{"name": "Shop",\n "x": 1}',
        SENDER,
        '{"name": "Shop",\n "x": 1,\n "gcm_sender_id": "540868316921"}',
    ),
    M(
        "duplicate-keys-update-last",
        '{\n  "gcm_sender_id": "1",\n  "name": "Shop",\n  "gcm_sender_id": "2"\n}\n',
        SENDER,
        '{\n  "gcm_sender_id": "1",\n  "name": "Shop",\n  "gcm_sender_id": "540868316921"\n}\n',
        notes=('2 "gcm_sender_id" members; browsers use the last', 'updated "gcm_sender_id"'),
    ),
    M(
        "escaped-key-matches",
        '{"\\u0067cm_sender_id": "1"}',
        SENDER,
        '{"\\u0067cm_sender_id": "540868316921"}',
    ),
    M(
        "strings-with-braces-and-quotes",
        '{\n  "a": "}{,\\"[",\n  "b": ["]", "\\\\"]\n}',
        {"c": None, "d": False, "e": 0},
        '{\n  "a": "}{,\\"[",\n  "b": ["]", "\\\\"],\n  "c": null,\n  "d": false,\n  "e": 0\n}',
    ),
    M(
        "bool-is-not-number",
        '{"prefer_related_applications": 0}',
        {"prefer_related_applications": False},
        '{"prefer_related_applications": false}',
    ),
    M("no-members-requested", '{ "a" : 1 }', {}, '{ "a" : 1 }', changed=False),
    M(
        "spaced-colon-style-kept",
        '{\n  "a" : 1\n}',
        SENDER,
        '{\n  "a" : 1,\n  "gcm_sender_id" : "540868316921"\n}',
    ),
]


@pytest.mark.parametrize("case", MANIFESTS, ids=[c.id for c in MANIFESTS])
def test_merge_manifest(case: M) -> None:
    result = _twice_manifest(case.text, case.members)
    assert result.text == case.expected
    assert result.changed is case.changed
    expected = json.loads(case.text.lstrip("\ufeff"))
    expected.update(case.members)
    assert json.loads(result.text.lstrip("\ufeff")) == expected
    for needle in case.notes:
        assert any(needle in note for note in result.notes), (needle, result.notes)
    if not case.changed:
        assert result.text is case.text or result.text == case.text


def test_merge_manifest_keeps_untouched_members_byte_for_byte() -> None:
    text = (
        '{\n  "name":   "Shop",\n  "icons": [\n      {"src": "/a.png",\n'
        '       "sizes": "48x48"}],\n  "gcm_sender_id": "1",\n  "theme_color": "#fff"\n}\n'
    )
    result = _twice_manifest(text, SENDER)
    diff = [
        line
        for line in difflib.ndiff(text.splitlines(), result.text.splitlines())
        if line[:1] in "+-"
    ]
    assert diff == ['-   "gcm_sender_id": "1",', '+   "gcm_sender_id": "540868316921",']


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ('{\n  "name": "Shop",\n}\n', 3, 1),
        ('{\n  "name": "Shop"\n  "x": 1\n}', 3, 3),
        ("{\"name\": 'Shop'}", 1, 10),
        ("", 1, 1),
        ('\ufeff{\n  "a": 1,,\n}', 2, 10),
        ('{"a": NaN}', 1, 7),
        ('{\n "a": -Infinity}', 2, 7),
        ('{"a": 1} x', 1, 10),
    ],
)
def test_merge_manifest_refuses_invalid_json(text: str, line: int, column: int) -> None:
    with pytest.raises(ValidationError) as info:
        merge_manifest(text, SENDER)
    assert info.value.code == "invalid_manifest_json"
    assert f"line {line}, column {column}" in str(info.value)


@pytest.mark.parametrize("text", ["[]", '[{"a": 1}]', '"manifest"', "1", "null", "true"])
def test_merge_manifest_refuses_non_object(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        merge_manifest(text, SENDER)
    assert info.value.code == "invalid_manifest_json"
    assert "JSON object" in str(info.value)


@pytest.mark.parametrize("value", [float("nan"), object(), {1, 2}, "\ud800"])
def test_merge_manifest_refuses_unserialisable_members(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        merge_manifest("{}", {"name": value})
    assert info.value.code == "invalid_manifest_member"
    assert info.value.field == "name"


def test_merge_manifest_accepts_tuples_as_arrays() -> None:
    result = _twice_manifest('{"icons": [{"src": "/a.png"}]}', {"icons": ({"src": "/a.png"},)})
    assert result.changed is False


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
_objects = st.dictionaries(st.text(max_size=6), _json_values, max_size=5)


@settings(max_examples=300, deadline=None)
@given(
    original=_objects,
    members=_objects,
    overlap=st.booleans(),
    indent=st.sampled_from([None, 0, 2, 4, "\t"]),
    ascii_only=st.booleans(),
    crlf=st.booleans(),
    bom=st.booleans(),
    final_newline=st.booleans(),
)
def test_merge_manifest_properties(
    original: dict[str, object],
    members: dict[str, object],
    overlap: bool,
    indent: int | str | None,
    ascii_only: bool,
    crlf: bool,
    bom: bool,
    final_newline: bool,
) -> None:
    if overlap and original:
        members = {next(iter(original)): "changed", **members}
    text = json.dumps(original, indent=indent, ensure_ascii=ascii_only)
    if crlf:
        text = text.replace("\n", "\r\n")
    nl = "\r\n" if crlf else "\n"
    text = ("\ufeff" if bom else "") + text + (nl if final_newline else "")
    result = _twice_manifest(text, members)
    merged = json.loads(result.text.removeprefix("\ufeff"))
    expected = {**original, **members}
    assert merged == expected
    assert list(merged) == list(expected)  # updated keep their place, new ones at the end
    assert result.text.startswith("\ufeff") is bom
    assert result.text.endswith("\n") is final_newline
    if crlf:
        assert "\n" not in result.text.replace("\r\n", "")
    if "\n" not in text:
        assert "\n" not in result.text
    # Members that are not touched keep their bytes: the original text minus its closing
    # brace is a prefix of the result when only new members are added.
    if not set(members) & set(original):
        head = text.rstrip("\r\n}")
        assert result.text.startswith(head)


# --------------------------------------------------------------------------------------
# service workers
# --------------------------------------------------------------------------------------

NEW = "https://cdn.moengage.com/release/dc_1/versions/2/serviceworker_cdn.min.latest.js"
LINE = f'importScripts("{NEW}");'
SEED_LINE = (
    'importScripts("//cdn.moengage.com/webpush/releases/serviceworker_cdn.min.latest.js?date="+\n'
    'new Date().getUTCFullYear()+""+new Date().getUTCMonth()+""+new Date().getUTCDate());\n'
)
BODY = (
    "self.addEventListener('install', () => self.skipWaiting());\n"
    "self.addEventListener('push', (event) => {\n"
    "  event.waitUntil(self.registration.showNotification('Hi'));\n"
    "});\n"
)


@dataclass
class W:
    id: str
    text: str
    expected: str
    changed: bool = True
    extra: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # substrings, each in some note
    url: str = NEW


WORKERS = [
    W("no-import", BODY, f"{LINE}\n{BODY}", notes=("added importScripts(",)),
    W("empty-file", "", f"{LINE}\n"),
    W("same-import-first", f"{LINE}\n{BODY}", f"{LINE}\n{BODY}", changed=False),
    W(
        "same-url-other-spelling-first",
        f"importScripts('{NEW}')\n{BODY}",
        f"importScripts('{NEW}')\n{BODY}",
        changed=False,
    ),
    W(
        "same-import-not-first-moves",
        f"{BODY}{LINE}\n",
        f"{LINE}\n{BODY}",
        notes=("moved importScripts(",),
    ),
    W(
        "seed-dated-two-line-form",
        SEED_LINE + BODY,
        f"{LINE}\n{BODY}",
        notes=("built at run time", "NetworkError: importScripts() of new scripts", "lost"),
    ),
    W(
        "seed-form-after-code",
        BODY + SEED_LINE,
        f"{LINE}\n{BODY}",
        notes=("line 5, whose URL is built at run time",),
    ),
    W(
        "legacy-constant",
        "importScripts('https://cdn.moengage.com/webpush/releases/serviceworker_cdn.min.latest.js')\n"
        + BODY,
        f"{LINE}\n{BODY}",
        notes=("replaced the older MoEngage import https://cdn.moengage.com/webpush/",),
    ),
    W(
        "dc-versioned-older",
        'importScripts("https://cdn.moengage.com/release/dc_3/versions/1/serviceworker_cdn.min.latest.js");\n'
        + BODY,
        f"{LINE}\n{BODY}",
        notes=("dc_3/versions/1",),
    ),
    W(
        "self-importScripts-single-quotes-crlf",
        BODY.replace("\n", "\r\n")
        + "self.importScripts('https://cdn.moengage.com/release/dc_1/serviceworker_cdn.min.latest.js');\r\n",
        f"{LINE}\r\n" + BODY.replace("\n", "\r\n"),
    ),
    W("crlf-no-import", BODY.replace("\n", "\r\n"), f"{LINE}\r\n" + BODY.replace("\n", "\r\n")),
    W(
        "use-strict-prologue",
        "'use strict';\n\n" + BODY,
        f"'use strict';\n{LINE}\n\n" + BODY,
    ),
    W(
        "use-strict-double-quotes-no-semicolon",
        '"use strict"\n' + BODY,
        f'"use strict"\n{LINE}\n' + BODY,
    ),
    W(
        "licence-comment-and-prologue",
        "/*\n * Copyright 2024 Shop Ltd. MIT licence.\n */\n'use strict'; // strict mode\n" + BODY,
        "/*\n * Copyright 2024 Shop Ltd. MIT licence.\n */\n'use strict'; // strict mode\n"
        f"{LINE}\n" + BODY,
    ),
    W(
        "licence-line-comments-then-blank-line",
        "// Copyright 2024 Shop Ltd.\n// SPDX-License-Identifier: MIT\n\n// install\n" + BODY,
        f"// Copyright 2024 Shop Ltd.\n// SPDX-License-Identifier: MIT\n{LINE}\n\n// install\n"
        + BODY,
    ),
    W(
        "comment-on-top-of-first-statement-stays-with-it",
        "// take over at once\n" + BODY,
        f"{LINE}\n// take over at once\n" + BODY,
    ),
    W(
        "comment-on-top-of-old-import-kept",
        "// MoEngage web push\n"
        "importScripts('https://cdn.moengage.com/release/dc_1/serviceworker_cdn.min.latest.js');\n"
        + BODY,
        f"// MoEngage web push\n{LINE}\n" + BODY,
    ),
    W(
        "mentions-in-comments-and-strings-are-not-imports",
        "// importScripts('https://cdn.moengage.com/old.js');\n"
        '/* importScripts("https://cdn.moengage.com/old.js") */\n'
        "const help = 'importScripts(\"https://cdn.moengage.com/old.js\")';\n"
        'const tpl = `importScripts("https://cdn.moengage.com/${help}")`;\n'
        "const re = /importScripts\\('https:\\/\\/cdn.moengage.com'\\)/;\n" + BODY,
        f"{LINE}\n// importScripts('https://cdn.moengage.com/old.js');\n"
        '/* importScripts("https://cdn.moengage.com/old.js") */\n'
        "const help = 'importScripts(\"https://cdn.moengage.com/old.js\")';\n"
        'const tpl = `importScripts("https://cdn.moengage.com/${help}")`;\n'
        "const re = /importScripts\\('https:\\/\\/cdn.moengage.com'\\)/;\n" + BODY,
    ),
    W(
        "other-imports-kept-as-they-are",
        "importScripts('https://storage.googleapis.com/workbox-cdn/releases/7.0.0/workbox-sw.js');\n"
        + BODY,
        f"{LINE}\n"
        "importScripts('https://storage.googleapis.com/workbox-cdn/releases/7.0.0/workbox-sw.js');\n"
        + BODY,
    ),
    W(
        "extra-imports",
        BODY,
        f'{LINE}\nimportScripts("/push-extra.js");\nimportScripts("/b.js");\n{BODY}',
        extra=("/push-extra.js", "/b.js", "/push-extra.js"),
        notes=("added importScripts(/push-extra.js) after it",),
    ),
    W(
        "extra-import-already-elsewhere-moves",
        BODY + "importScripts('/push-extra.js');\n",
        f'{LINE}\nimportScripts("/push-extra.js");\n{BODY}',
        extra=("/push-extra.js",),
    ),
    W(
        "extra-imports-wrong-order-fixed",
        f'importScripts("/push-extra.js");\n{LINE}\n{BODY}',
        f'{LINE}\nimportScripts("/push-extra.js");\n{BODY}',
        extra=("/push-extra.js",),
    ),
    W(
        "minified-one-line",
        '"use strict";self.addEventListener("push",function(e){e.waitUntil(1)});',
        f'"use strict";{LINE}self.addEventListener("push",function(e){{e.waitUntil(1)}});',
    ),
    W(
        "minified-old-import-inline",
        "importScripts('https://cdn.moengage.com/release/dc_1/serviceworker_cdn.min.latest.js');"
        "self.a=1;",
        f"{LINE}\nself.a=1;",
    ),
    W(
        "bom-and-no-final-newline",
        "\ufeff'use strict';",
        f"\ufeff'use strict';\n{LINE}",
    ),
    W(
        "local-stand-in-url",
        SEED_LINE + BODY,
        f'importScripts("/moengage-stub.js");\n{BODY}',
        url="/moengage-stub.js",
        notes=("with the constant URL /moengage-stub.js",),
    ),
    W(
        "url-needing-escapes",
        BODY,
        'importScripts("/sw.js?a=<\\/script>&b=\\u00e9");\n' + BODY,
        url="/sw.js?a=</script>&b=é",
    ),
]


def _node_check(tmp_path: Path, name: str, text: str) -> None:
    node = shutil.which("node") or "/usr/bin/node"
    script = tmp_path / f"{name}.js"
    script.write_text(text, encoding="utf-8", newline="")
    proc = subprocess.run([node, "--check", str(script)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def _without_imports(text: str) -> str:
    """The worker with its MoEngage / managed import statements taken out, for comparing."""
    result = text
    for imp in sorted(find_moengage_imports(text), key=lambda i: -i.span[0]):
        result = result[: imp.span[0]] + result[imp.span[1] :]
    for url in ("/push-extra.js", "/b.js", "/moengage-stub.js", "/sw.js?a=<\\/script>&b=\\u00e9"):
        for quote in "'\"":
            for end in (";", ""):
                result = result.replace(f"importScripts({quote}{url}{quote}){end}", "")
    lines = [line for line in result.splitlines(keepends=True) if line.strip()]
    if lines:  # an import appended at the very end leaves the last line's newline behind
        lines[-1] = lines[-1].rstrip("\r\n")
    return "".join(lines)


@pytest.mark.parametrize("case", WORKERS, ids=[c.id for c in WORKERS])
def test_merge_service_worker(case: W, tmp_path: Path) -> None:
    first = merge_service_worker(case.text, case.url, extra_imports=case.extra)
    second = merge_service_worker(first.text, case.url, extra_imports=case.extra)
    assert second.text == first.text
    assert second.changed is False
    assert second.notes == ()
    assert first.text == case.expected
    assert first.changed is case.changed
    for needle in case.notes:
        assert any(needle in note for note in first.notes), (needle, first.notes)
    if case.changed:
        assert first.notes
    _node_check(tmp_path, "before", case.text)
    _node_check(tmp_path, "after", first.text)
    # nothing but import lines changed
    assert _without_imports(first.text) == _without_imports(case.text)
    # the result has no MoEngage import other than ours, and ours is constant
    found = find_moengage_imports(first.text)
    if case.url == NEW:
        assert [(i.url, i.is_constant) for i in found] == [(NEW, True)]
    else:
        assert found == []


def test_untouched_lines_byte_for_byte() -> None:
    text = "/* lic */\r\n'use strict';\r\n\r\n" + BODY.replace("\n", "\r\n") + SEED_LINE
    result = merge_service_worker(text, NEW)
    added = [line for line in difflib.ndiff(text.splitlines(True), result.text.splitlines(True))]
    plus = [line[2:] for line in added if line.startswith("+ ")]
    minus = [line[2:] for line in added if line.startswith("- ")]
    assert plus == [LINE + "\r\n"]
    assert minus == SEED_LINE.splitlines(True)


def test_find_moengage_imports_reports_shape() -> None:
    text = (
        "// importScripts('https://cdn.moengage.com/in-comment.js')\n"
        + SEED_LINE
        + "self.importScripts('https://cdn.moengage.com/release/dc_2/serviceworker.js')\n"
        + "importScripts('https://cdn.moengage.com/a.js' + '?v=2');\n"
        + "importScripts('/not-moengage.js');\n"
        + "function later() { importScripts(`https://cdn.moengage.com/${x}.js`); }\n"
    )
    found = find_moengage_imports(text)
    assert [(i.line, i.is_constant, i.url, i.top_level, i.removable) for i in found] == [
        (2, False, None, True, True),
        (4, True, "https://cdn.moengage.com/release/dc_2/serviceworker.js", True, True),
        (5, True, "https://cdn.moengage.com/a.js?v=2", True, True),
        (7, False, None, False, False),
    ]
    seed = found[0]
    assert text[seed.span[0] : seed.span[1]] == SEED_LINE.rstrip("\n")
    assert seed.expression.startswith('"//cdn.moengage.com/webpush/releases/')
    assert text[found[1].span[0] : found[1].span[1]].startswith("self.importScripts(")


@pytest.mark.parametrize(
    "text",
    [
        "if (self.registration) { importScripts('https://cdn.moengage.com/a.js'); }\n",
        "importScripts('/workbox.js', 'https://cdn.moengage.com/a.js');\n",
        "const ok = importScripts('https://cdn.moengage.com/a.js');\n",
    ],
)
def test_merge_service_worker_refuses_imports_it_cannot_move(text: str) -> None:
    with pytest.raises(ValidationError) as info:
        merge_service_worker(text, NEW)
    assert info.value.code == "unsupported_service_worker"
    assert "line 1" in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "//cdn.moengage.com/x.js",
        "cdn.moengage.com/x.js",
        "javascript:alert(1)",
        "ftp://example.com/x.js",
        'https://e.com/x.js"+new Date()+"',
        "https://e.com/x.js'",
        "https://e.com/a b.js",
        "https://e.com/x.js\n",
        "https://e.com/\u2028.js",
        "https://e.com/x\\.js",
        "https:///x.js",
    ],
)
def test_merge_service_worker_validates_urls(url: str) -> None:
    with pytest.raises(ValidationError) as info:
        merge_service_worker(BODY, url)
    assert info.value.code == "invalid_import_url"
    assert info.value.field == "import_url"
    with pytest.raises(ValidationError) as info:
        merge_service_worker(BODY, NEW, extra_imports=[url])
    assert info.value.field == "extra_imports[0]"


def test_extra_imports_must_be_a_sequence_of_urls() -> None:
    with pytest.raises(ValidationError):
        merge_service_worker(BODY, NEW, extra_imports="/a.js")


def test_serialise_import_escapes_for_script_contexts() -> None:
    assert serialise_import("/a.js?x=</script>") == 'importScripts("/a.js?x=<\\/script>");'
    assert serialise_import("/\u2028\u2029") == 'importScripts("/\\u2028\\u2029");'
