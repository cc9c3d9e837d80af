"""Patch a site's OWN ``manifest.json`` and service worker (the seed's step 2.c).

Both functions are pure: text in, :class:`MergeResult` out. They edit in place instead of
re-serialising, so everything they were not asked to change stays byte for byte as the
owner wrote it, and they are idempotent (a second run returns ``changed=False``).

Manifest
    :func:`merge_manifest` validates the JSON with :mod:`json`, then finds the spans of the
    top-level members with a small string-aware tokenizer and splices new values in. New
    members are appended before the closing brace in the file's own style (indent unit,
    ``": "`` or ``":"``, line endings, one-line or not); updated members keep their place.

Service worker
    :func:`merge_service_worker` makes ``importScripts("<url>");`` the first statement. It
    goes after the *header*: a UTF-8 BOM, leading comments and the directive prologue
    (``'use strict';`` only works while it is the first statement, and a comment block at
    the top is usually a licence). Comments that sit directly on top of the first
    statement (no blank line between) are taken as belonging to that statement, so the
    import goes above them. Older MoEngage imports (any ``importScripts`` whose argument
    mentions ``cdn.moengage.com``) are removed from where they were rather than kept as a
    second import; one built at run time (the seed's ``?date=`` cache-buster) is reported,
    because a changing URL stops an installed worker from starting (WEB-PUSH-RULES 6).

    The scanner skips comments, string and template literals; a ``/`` starts a regular
    expression literal when the previous token cannot end an expression (the usual
    heuristic). A regex literal right after ``)`` (``if (x) /re/.test(y)``) or after ``}``
    of a block is read as a division, which can only matter if that regex contains a
    quote or a comment marker; such code is rare at the top level of a worker.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from webpush_kit.errors import ValidationError

__all__ = [
    "ImportLine",
    "MergeResult",
    "find_moengage_imports",
    "merge_manifest",
    "merge_service_worker",
    "serialise_import",
]

_BOM: Final = "\ufeff"
MOENGAGE_CDN_HOST: Final = "cdn.moengage.com"


@dataclass(frozen=True)
class MergeResult:
    """The merged text, whether it differs from the input, and notes for the site owner."""

    text: str
    changed: bool
    notes: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------
# manifest.json
# --------------------------------------------------------------------------------------

_JSON_WS: Final = " \t\r\n"
_JSON_STRING_RE: Final = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


@dataclass(frozen=True)
class _Member:
    name: str
    key_start: int
    key_end: int
    value_start: int
    value_end: int


@dataclass(frozen=True)
class _Style:
    one_line: bool
    newline: str
    unit: str  # one indent level, e.g. "  ", "    " or "\t"
    key_sep: str  # between a key and its value, e.g. ": " or ":"
    item_sep: str  # between members on one line, e.g. ", " or ","


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    return line, pos - (text.rfind("\n", 0, pos) + 1) + 1


def _skip_json_ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in _JSON_WS:
        i += 1
    return i


def _skip_json_value(s: str, i: int) -> int:
    """Return the index just after the JSON value starting at ``s[i]`` (already valid)."""
    c = s[i]
    if c == '"':
        m = _JSON_STRING_RE.match(s, i)
        assert m is not None
        return m.end()
    if c in "{[":
        depth = 0
        while True:
            c = s[i]
            if c == '"':
                m = _JSON_STRING_RE.match(s, i)
                assert m is not None
                i = m.end()
                continue
            if c in "{[":
                depth += 1
            elif c in "}]":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
    while i < len(s) and s[i] not in ",}] \t\r\n":
        i += 1
    return i


def _scan_members(s: str) -> tuple[int, int, list[_Member]]:
    """Spans of the top-level object's members in valid JSON text ``s``."""
    i = _skip_json_ws(s, 0)
    open_at = i
    i = _skip_json_ws(s, i + 1)
    members: list[_Member] = []
    while s[i] != "}":
        key_start = i
        key_end = _skip_json_value(s, i)
        name = json.loads(s[key_start:key_end])
        i = _skip_json_ws(s, key_end) + 1  # past ":"
        value_start = _skip_json_ws(s, i)
        value_end = _skip_json_value(s, value_start)
        members.append(_Member(name, key_start, key_end, value_start, value_end))
        i = _skip_json_ws(s, value_end)
        if s[i] == ",":
            i = _skip_json_ws(s, i + 1)
    return open_at, i, members


def _find_bare_constant(s: str) -> int:
    """Offset of the first ``NaN``/``Infinity`` outside strings (accepted by :mod:`json`)."""
    i = 0
    while i < len(s):
        if s[i] == '"':
            m = _JSON_STRING_RE.match(s, i)
            i = m.end() if m else len(s)
            continue
        if s.startswith(("NaN", "Infinity", "-Infinity"), i):
            return i
        i += 1
    return 0


def _line_indent(s: str, pos: int) -> str:
    """The leading whitespace of the line that contains ``pos``."""
    start = max(s.rfind("\n", 0, pos), s.rfind("\r", 0, pos)) + 1
    end = start
    while end < len(s) and s[end] in " \t":
        end += 1
    return s[start:end]


def _detect_style(s: str, open_at: int, close_at: int, members: list[_Member]) -> _Style:
    inner = s[open_at:close_at]
    one_line = "\n" not in inner and "\r" not in inner
    first_break = re.search(r"\r\n|\n|\r", s)
    newline = first_break.group() if first_break else "\n"
    key_sep = s[members[0].key_end : members[0].value_start] if members else ": "
    if len(members) >= 2:
        between = s[members[0].value_end : members[1].key_start]
        item_sep = "," + (" " if between.endswith(" ") else "")
    else:
        item_sep = ", " if key_sep.endswith(" ") else ","
    unit = ""
    if members:
        member_indent = _line_indent(s, members[0].key_start)
        object_indent = _line_indent(s, open_at)
        if member_indent.startswith(object_indent):
            unit = member_indent[len(object_indent) :]
    if not unit:
        unit = "\t" if re.search(r"^\t", s, re.MULTILINE) else "  "
    return _Style(one_line, newline, unit, key_sep, item_sep)


def _dump(value: object, style: _Style, base_indent: str) -> str:
    if style.one_line:
        return json.dumps(
            value, ensure_ascii=False, allow_nan=False, separators=(style.item_sep, style.key_sep)
        )
    out = json.dumps(
        value,
        ensure_ascii=False,
        allow_nan=False,
        indent=style.unit,
        separators=(",", style.key_sep),
    )
    return out.replace("\n", style.newline + base_indent)


def _normalise(value: object, name: str) -> object:
    """Round-trip through JSON (tuples become lists); refuse what JSON cannot carry."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        raise ValidationError(
            f"cannot be written to a manifest as JSON ({exc})",
            field=name,
            code="invalid_manifest_member",
        ) from exc
    result: object = json.loads(text)
    return result


def _json_equal(a: object, b: object) -> bool:
    """Equality as JSON sees it: 1 == 1.0 but True != 1; object member order ignored."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


_JSON_KIND: Final = {
    "list": "an array",
    "str": "a string",
    "int": "a number",
    "float": "a number",
    "bool": "a boolean",
    "NoneType": "null",
}


def _short(value: object, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _reject_constant(name: str) -> object:
    raise _BareConstantError(name)


class _BareConstantError(ValueError):
    pass


def merge_manifest(text: str, members: Mapping[str, object]) -> MergeResult:
    """Add or update top-level ``members`` in the manifest JSON ``text``.

    Everything else -- other members, their order and formatting, indentation, line
    endings, a BOM, a trailing newline, non-ASCII characters -- is kept as written.
    Raises :class:`ValidationError` (code ``invalid_manifest_json``) for text that is not a
    JSON object, naming the line and column.
    """
    bom = _BOM if text.startswith(_BOM) else ""
    body = text[len(bom) :]
    try:
        parsed = json.loads(body, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"manifest is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            code="invalid_manifest_json",
        ) from exc
    except _BareConstantError as exc:
        line, col = _line_col(body, _find_bare_constant(body))
        raise ValidationError(
            f"manifest is not valid JSON: {exc} is not a JSON value at line {line}, column {col}",
            code="invalid_manifest_json",
        ) from exc
    if not isinstance(parsed, dict):
        raise ValidationError(
            "manifest must be a JSON object {...} at the top level, not "
            f"{_JSON_KIND.get(type(parsed).__name__, 'a ' + type(parsed).__name__)}",
            code="invalid_manifest_json",
        )

    open_at, close_at, found = _scan_members(body)
    style = _detect_style(body, open_at, close_at, found)
    last_of: dict[str, _Member] = {}
    count: dict[str, int] = {}
    for m in found:
        last_of[m.name] = m
        count[m.name] = count.get(m.name, 0) + 1

    notes: list[str] = []
    edits: list[tuple[int, int, str]] = []
    added: list[tuple[str, object]] = []
    for name, raw_value in members.items():
        if not isinstance(name, str):
            raise ValidationError(
                "manifest member names must be strings",
                field=repr(name),
                code="invalid_manifest_member",
            )
        value = _normalise(raw_value, name)
        if count.get(name, 0) > 1:
            notes.append(
                f'manifest has {count[name]} "{name}" members; browsers use the last one, '
                "so only that one is managed here -- delete the others"
            )
        member = last_of.get(name)
        if member is None:
            added.append((name, value))
            notes.append(f'added "{name}": {_short(value)}')
            continue
        if _json_equal(parsed[name], value):
            continue
        base = "" if style.one_line else _line_indent(body, member.key_start)
        edits.append((member.value_start, member.value_end, _dump(value, style, base)))
        notes.append(f'updated "{name}" from {_short(parsed[name])} to {_short(value)}')

    if added:
        if found and len(found) >= 2:
            # the file's own separator, e.g. ",\n  " or ", "
            sep = body[found[-2].value_end : found[-1].key_start]
        elif style.one_line:
            sep = style.item_sep
        elif found and re.search(r"[\r\n]", body[open_at + 1 : found[0].key_start]):
            sep = "," + body[open_at + 1 : found[0].key_start]
        else:
            sep = "," + style.newline + _line_indent(body, open_at) + style.unit
        if style.one_line:
            base = ""
        elif found and (len(found) >= 2 or re.search(r"[\r\n]", sep)):
            base = _line_indent(body, found[-1].key_start)
        else:
            base = _line_indent(body, open_at) + style.unit
        rendered = sep.join(
            json.dumps(name, ensure_ascii=False) + style.key_sep + _dump(value, style, base)
            for name, value in added
        )
        if found:
            edits.append((found[-1].value_end, found[-1].value_end, sep + rendered))
        else:
            lead = "" if style.one_line else style.newline + base
            edits.append((open_at + 1, open_at + 1, lead + rendered))

    if not edits:
        return MergeResult(text, False, tuple(notes))
    out = body
    for start, end, replacement in sorted(edits, reverse=True):
        out = out[:start] + replacement + out[end:]
    return MergeResult(bom + out, out != body, tuple(notes))


# --------------------------------------------------------------------------------------
# service worker
# --------------------------------------------------------------------------------------

_ID_START_RE: Final = re.compile(r"[A-Za-z_$\\\u0080-\uffff]")
_IDENT_RE: Final = re.compile(r"(?:[A-Za-z0-9_$\u0080-\uffff]|\\u\{?[0-9A-Fa-f]+\}?)+")
_NUMBER_RE: Final = re.compile(r"\.?[0-9](?:[eE][+-]|[0-9A-Za-z_.])*")
_PUNCT_RE: Final = re.compile(
    r">>>=|\.\.\.|===|!==|\*\*=|<<=|>>=|>>>|&&=|\|\|=|\?\?=|=>|==|!=|<=|>=|&&|\|\||\?\?"
    r"|\?\.(?![0-9])|\+\+|--|\+=|-=|\*=|/=|%=|&=|\|=|\^=|<<|>>|\*\*|."
)
_LINE_BREAK_RE: Final = re.compile(r"\r\n|[\n\r\u2028\u2029]")
_JS_WS: Final = " \t\v\f\u00a0\ufeff"
_JS_BREAKS: Final = "\n\r\u2028\u2029"
# After these words a "/" starts a regular expression literal, not a division.
_REGEX_AFTER_WORDS: Final = frozenset(
    {"return", "typeof", "instanceof", "in", "of", "new", "delete", "void", "throw", "case"}
    | {"do", "else", "yield", "await"}
)
# A token that starts a line but continues the previous statement (no ASI before it).
_CONTINUATION: Final = frozenset(
    {"(", "[", ".", "?.", "+", "-", "*", "/", "%", ",", "?", ":", "=", "==", "===", "!="}
    | {"!==", "<", ">", "<=", ">=", "&&", "||", "??", "`", "=>"}
)
_GLOBAL_OBJECTS: Final = frozenset({"self", "globalThis", "this"})


@dataclass(frozen=True)
class _Tok:
    kind: str  # "ident" "number" "string" "template" "regex" "punct" "comment"
    start: int
    end: int
    text: str
    nl_before: bool  # a line break separates it from the previous non-comment token
    depth: int  # ( [ { still open before it


def _skip_quoted(s: str, i: int) -> int:
    quote = s[i]
    i += 1
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2
        elif c == quote:
            return i + 1
        elif c in "\n\r":
            return i  # unterminated: a syntax error in the worker, stop at the line end
        else:
            i += 1
    return len(s)


def _skip_template(s: str, i: int) -> int:
    i += 1
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2
        elif c == "`":
            return i + 1
        elif s.startswith("${", i):
            inner = _tokens(s, i + 2, stop_at_close=True)
            i = inner[-1].end if inner else len(s)
        else:
            i += 1
    return len(s)


def _skip_regex(s: str, i: int) -> int:
    i += 1
    in_class = False
    while i < len(s):
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c in _JS_BREAKS:
            return i
        if c == "[":
            in_class = True
        elif c == "]":
            in_class = False
        elif c == "/" and not in_class:
            i += 1
            while i < len(s) and (s[i].isalnum() or s[i] in "_$"):
                i += 1
            return i
        i += 1
    return len(s)


def _regex_allowed(prev: _Tok | None) -> bool:
    if prev is None:
        return True
    if prev.kind in ("number", "string", "template", "regex"):
        return False
    if prev.kind == "ident":
        return prev.text in _REGEX_AFTER_WORDS
    return prev.text not in (")", "]", "}", "++", "--")


def _tokens(s: str, i: int = 0, *, stop_at_close: bool = False) -> list[_Tok]:
    """Tokenise JavaScript from ``i``.

    With ``stop_at_close`` (the inside of a template's ``${``), stop after the ``}`` that
    closes it.
    """
    toks: list[_Tok] = []
    prev: _Tok | None = None
    nl = False
    depth = 0
    braces = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c in _JS_WS:
            i += 1
            continue
        if c in _JS_BREAKS:
            nl = True
            i += 1
            continue
        if s.startswith("//", i):
            m = _LINE_BREAK_RE.search(s, i)
            end = m.start() if m else n
            toks.append(_Tok("comment", i, end, s[i:end], nl, depth))
            i = end
            continue
        if s.startswith("/*", i):
            close = s.find("*/", i + 2)
            end = n if close < 0 else close + 2
            toks.append(_Tok("comment", i, end, s[i:end], nl, depth))
            nl = nl or bool(_LINE_BREAK_RE.search(s, i, end))
            i = end
            continue
        if c in "'\"":
            kind, end = "string", _skip_quoted(s, i)
        elif c == "`":
            kind, end = "template", _skip_template(s, i)
        elif c == "/" and _regex_allowed(prev):
            kind, end = "regex", _skip_regex(s, i)
        elif c.isdigit() or (c == "." and s[i + 1 : i + 2].isdigit()):
            m = _NUMBER_RE.match(s, i)
            kind, end = "number", (m.end() if m else i + 1)
        elif _ID_START_RE.match(c):
            m = _IDENT_RE.match(s, i)
            kind, end = "ident", (m.end() if m else i + 1)
        else:
            m = _PUNCT_RE.match(s, i)
            kind, end = "punct", (m.end() if m else i + 1)
        text = s[i:end]
        if text in (")", "]", "}"):
            depth = max(depth - 1, 0)
        tok = _Tok(kind, i, end, text, nl, depth)
        toks.append(tok)
        prev, nl, i = tok, False, end
        if text in ("(", "[", "{"):
            depth += 1
        if text == "{":
            braces += 1
        elif text == "}":
            if stop_at_close and braces == 0:
                break
            braces -= 1
    return toks


_SIMPLE_ESCAPES: Final = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v"}


def _js_string_value(literal: str) -> str | None:
    """The value of a JS string literal, or of a template literal without ``${}``."""
    if len(literal) < 2 or literal[-1] != literal[0]:
        return None
    body = literal[1:-1]
    if literal[0] == "`" and re.search(r"(?<!\\)(?:\\\\)*\$\{", body):
        return None
    out: list[str] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1 : i + 2]
        hex4 = body[i + 2 : i + 6]
        if nxt in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[nxt])
            i += 2
        elif nxt == "x" and re.fullmatch(r"[0-9A-Fa-f]{2}", body[i + 2 : i + 4]):
            out.append(chr(int(body[i + 2 : i + 4], 16)))
            i += 4
        elif nxt == "u" and re.match(r"\{[0-9A-Fa-f]{1,6}\}", body[i + 2 :]):
            close = body.index("}", i)
            out.append(chr(int(body[i + 3 : close], 16)))
            i = close + 1
        elif nxt == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", hex4):
            out.append(chr(int(hex4, 16)))
            i += 6
        elif body[i + 1 : i + 3] == "\r\n":
            i += 3  # line continuation
        elif nxt and nxt in _JS_BREAKS:
            i += 2
        elif nxt == "0" and not body[i + 2 : i + 3].isdigit():
            out.append("\0")
            i += 2
        elif nxt.isdigit() or not nxt:
            return None  # legacy octal escapes: not worth evaluating
        else:
            out.append(nxt)
            i += 2
    return "".join(out)


@dataclass(frozen=True)
class ImportLine:
    """One ``importScripts(...)`` call found in a worker.

    ``span`` is the statement's ``(start, end)`` offsets: a ``self.``/``globalThis.``
    prefix and a trailing ``;`` included. ``expression`` is the argument list as written.
    ``url`` is its value when ``is_constant`` (one string literal, or literals joined with
    ``+``). ``removable`` is true for a call that is a whole top-level statement with one
    argument: only those are moved by :func:`merge_service_worker`.
    """

    span: tuple[int, int]
    line: int
    expression: str
    is_constant: bool
    url: str | None
    top_level: bool
    removable: bool

    @property
    def is_moengage(self) -> bool:
        return MOENGAGE_CDN_HOST in self.expression.lower()


def _significant(toks: list[_Tok]) -> list[_Tok]:
    return [t for t in toks if t.kind != "comment"]


def _closes_condition(sig: list[_Tok], close: int) -> bool:
    """Whether the ``)`` at ``sig[close]`` ends ``if (...)``, ``while (...)`` and the like,
    after which a new line is the body, not a new statement."""
    depth = sig[close].depth
    for j in range(close - 1, -1, -1):
        if sig[j].text == "(" and sig[j].depth == depth:
            return j > 0 and sig[j - 1].text in ("if", "while", "for", "with")
    return False


def _find_imports(text: str, toks: list[_Tok]) -> list[ImportLine]:
    sig = _significant(toks)
    found: list[ImportLine] = []
    for k, tok in enumerate(sig):
        if tok.kind != "ident" or tok.text != "importScripts":
            continue
        if k + 1 >= len(sig) or sig[k + 1].text != "(":
            continue
        first = k
        if k >= 2 and sig[k - 1].text == "." and sig[k - 2].text in _GLOBAL_OBJECTS:
            first = k - 2
        elif k >= 1 and sig[k - 1].text in (".", "?."):
            continue  # obj.importScripts: not the global function
        close = next(
            (j for j in range(k + 2, len(sig)) if sig[j].depth == tok.depth and sig[j].text == ")"),
            None,
        )
        if close is None:
            continue
        args = sig[k + 2 : close]
        expression = text[args[0].start : args[-1].end] if args else ""
        parts = args[::2]
        is_constant = (
            len(args) % 2 == 1
            and all(t.kind in ("string", "template") for t in parts)
            and all(t.text == "+" for t in args[1::2])
        )
        url: str | None = None
        if is_constant:
            values = [_js_string_value(t.text) for t in parts]
            url = "".join(v for v in values if v is not None)
            if None in values:
                is_constant, url = False, None
        end = sig[close].end
        after = sig[close + 1] if close + 1 < len(sig) else None
        if after is not None and after.text == ";":
            end = after.end
            after = sig[close + 2] if close + 2 < len(sig) else None
        before = sig[first - 1] if first >= 1 else None
        top_level = sig[first].depth == 0
        starts_statement = (
            before is None
            or before.text in (";", "}")
            or (
                sig[first].nl_before
                and before.text not in _CONTINUATION | {"else", "do"}
                and not (before.text == ")" and _closes_condition(sig, first - 1))
            )
        )
        ends_statement = (
            end != sig[close].end
            or after is None
            or after.text == "}"
            or (after.nl_before and after.text not in _CONTINUATION)
        )
        one_arg = bool(args) and not any(t.text == "," and t.depth == tok.depth + 1 for t in args)
        found.append(
            ImportLine(
                span=(sig[first].start, end),
                line=text.count("\n", 0, sig[first].start) + 1,
                expression=expression,
                is_constant=is_constant,
                url=url,
                top_level=top_level,
                removable=top_level and starts_statement and ends_statement and one_arg,
            )
        )
    return found


def find_moengage_imports(text: str) -> list[ImportLine]:
    """Every ``importScripts`` call whose argument mentions ``cdn.moengage.com``.

    Mentions inside comments, strings and template literals are not calls and are skipped.
    """
    return [imp for imp in _find_imports(text, _tokens(text)) if imp.is_moengage]


def _validate_import_url(url: object, field: str) -> str:
    if not isinstance(url, str) or not url:
        raise ValidationError("must be a non-empty string", field=field, code="invalid_import_url")
    bad = re.search(r"[\"'`\\\s\x00-\x1f\x7f\u2028\u2029]", url)
    if bad:
        raise ValidationError(
            f"{url!r} contains {bad.group()!r}; an importScripts URL must be a constant URL "
            "without quotes, backslashes, spaces or line breaks",
            field=field,
            code="invalid_import_url",
        )
    if url.startswith("//"):
        raise ValidationError(
            f"{url!r} is scheme-relative; write it with https:",
            field=field,
            code="invalid_import_url",
        )
    parts = urlsplit(url)
    if not (url.startswith("/") or (parts.scheme.lower() in ("http", "https") and parts.netloc)):
        raise ValidationError(
            f"{url!r} must be an http(s) URL or a root-relative path such as /sw-lib.js",
            field=field,
            code="invalid_import_url",
        )
    return url


def serialise_import(url: str) -> str:
    """``importScripts("<url>");`` with ``url`` as a JS string literal safe in any context.

    ``json.dumps`` (ASCII output, so U+2028/U+2029 come out as ``\\u2028``/``\\u2029``)
    with ``</`` written ``<\\/``. The URL is not validated here.
    """
    literal = json.dumps(url).replace("</", "<\\/")
    return f"importScripts({literal});"


def _own_line(text: str, pos: int) -> bool:
    """Only whitespace (or a BOM) between the start of the line and ``pos``."""
    line_start = max(text.rfind(ch, 0, pos) for ch in _JS_BREAKS) + 1
    return not text[line_start:pos].strip(_JS_WS)


def _header_end(text: str, toks: list[_Tok], *, detach: bool = True) -> tuple[int, int]:
    """``(end, first)``: the offset just after the leading comments and directive prologue
    that stay above our line, and the offset of the first statement (or ``len(text)``).

    With ``detach``, comments sitting directly on top of the first statement (own lines,
    no blank line between) are left with that statement, so our line goes above them; a
    block comment that opens the file (a licence) always stays first.
    """
    directives_end = 0
    comments: list[_Tok] = []  # since the last directive
    i = 0
    while i < len(toks):
        tok = toks[i]
        if tok.kind == "comment":
            comments.append(tok)
            i += 1
            continue
        if tok.kind != "string":
            break
        j = next((j for j in range(i + 1, len(toks)) if toks[j].kind != "comment"), len(toks))
        nxt = toks[j] if j < len(toks) else None
        if nxt is not None and nxt.text == ";":
            directives_end, i = nxt.end, j + 1
        elif nxt is None or (nxt.nl_before and nxt.text not in _CONTINUATION):
            directives_end, i = tok.end, i + 1
        else:
            break
        comments = []
    first = toks[i].start if i < len(toks) else len(text)
    if detach and i < len(toks):
        next_start = first
        while comments:
            c = comments[-1]
            licence = c is toks[0] and c.text.startswith("/*")
            blank_line_after = len(_LINE_BREAK_RE.findall(text, c.end, next_start)) >= 2
            if licence or blank_line_after or not _own_line(text, c.start):
                break
            next_start = c.start
            comments.pop()
    return max(directives_end, comments[-1].end if comments else 0), first


def _removal_span(text: str, imp: ImportLine) -> tuple[int, int]:
    """Whole lines when the import stands alone on them (with a trailing ``//`` comment)."""
    start, end = imp.span
    brk = _LINE_BREAK_RE.search(text, end)
    line_end = brk.start() if brk else len(text)
    tail = text[end:line_end].strip(_JS_WS)
    if _own_line(text, start) and (not tail or tail.startswith("//")):
        line_start = max(text.rfind(ch, 0, start) for ch in _JS_BREAKS) + 1
        return line_start, (brk.end() if brk else len(text))
    while end < len(text) and text[end] in " \t":
        end += 1
    return start, end


def _one_line(expression: str) -> str:
    return " ".join(expression.split())


def merge_service_worker(
    text: str, import_url: str, *, extra_imports: Sequence[str] = ()
) -> MergeResult:
    """Make ``importScripts("<import_url>");`` (then each of ``extra_imports``) the first
    statement of the worker ``text``, once.

    Older MoEngage imports and earlier copies of these URLs are moved, not duplicated;
    every other byte stays as it was. Raises :class:`ValidationError` for a URL that is
    not a constant http(s) or root-relative URL (code ``invalid_import_url``), and for a
    MoEngage import that cannot be moved safely -- inside a block or an expression, or
    sharing its call with other URLs (code ``unsupported_service_worker``).
    """
    if isinstance(extra_imports, str):
        raise ValidationError(
            "must be a list of URLs, not one string",
            field="extra_imports",
            code="invalid_import_url",
        )
    wanted = [_validate_import_url(import_url, "import_url")]
    for n, extra in enumerate(extra_imports):
        url = _validate_import_url(extra, f"extra_imports[{n}]")
        if url not in wanted:
            wanted.append(url)

    bom = _BOM if text.startswith(_BOM) else ""
    toks = _tokens(text, len(bom))
    imports = _find_imports(text, toks)
    stuck = [i for i in imports if i.is_moengage and not i.removable]
    if stuck:
        where = ", ".join(f"line {i.line}" for i in stuck)
        raise ValidationError(
            f"the service worker imports MoEngage at {where} from inside a block or an "
            "expression, or together with other scripts; move that importScripts call to "
            "a statement of its own at the top level (or remove it) and run again",
            code="unsupported_service_worker",
        )
    ours = [i for i in imports if i.removable and (i.is_moengage or i.url in wanted)]

    # Already right: the first statements after the prologue are our imports, in order,
    # and there are no others.
    head, first = _header_end(text, toks)
    if any(i.span[0] == first for i in ours):
        # The first statement is an import we manage: ours takes its place, below any
        # comment on top of it.
        head, first = _header_end(text, toks, detach=False)
    by_start = {i.span[0]: i for i in imports}
    leading: list[str | None] = []
    pos = 0
    for tok in _significant(toks):
        if tok.start < head or (leading and tok.start < pos):
            continue
        imp = by_start.get(tok.start)
        if imp is None or not imp.removable or len(leading) == len(wanted):
            break
        leading.append(imp.url)
        pos = imp.span[1]
    if leading == wanted and len(ours) == len(wanted):
        return MergeResult(text, False, ())

    first_break = _LINE_BREAK_RE.search(text)
    newline = "\r\n" if first_break and first_break.group() == "\r\n" else "\n"
    statements = [serialise_import(url) for url in wanted]

    # Our lines go at the start of the line after the header, or inline when the header's
    # last line goes on with code (a minified worker).
    if head == 0:
        at, block = len(bom), "".join(s + newline for s in statements)
    else:
        brk = _LINE_BREAK_RE.search(text, head)
        rest = text[head : brk.start() if brk else len(text)]
        if rest.strip(_JS_WS):
            at, block = head, "".join(statements)
        elif brk is None:
            at, block = len(text), "".join(newline + s for s in statements)
        else:
            at, block = brk.end(), "".join(s + newline for s in statements)

    notes: list[str] = []
    if not any(i.is_moengage or i.url == wanted[0] for i in ours):
        notes.append(f"added importScripts({wanted[0]}) as the first statement")
    for imp in ours:
        if imp.is_moengage and not imp.is_constant:
            notes.append(
                f"replaced the MoEngage importScripts at line {imp.line}, whose URL is "
                f"built at run time ({_one_line(imp.expression)}), with the constant URL "
                f"{wanted[0]}: a changing importScripts URL makes the installed worker "
                "fail to start (NetworkError: importScripts() of new scripts after service "
                "worker installation is not allowed) and pushes are lost"
            )
        elif imp.url in wanted:
            notes.append(f"moved importScripts({imp.url}) from line {imp.line} to the top")
        else:
            notes.append(
                f"replaced the older MoEngage import {imp.url} at line {imp.line} with {wanted[0]}"
            )
    for url in wanted[1:]:
        if not any(i.url == url for i in ours):
            notes.append(f"added importScripts({url}) after it")

    # Every statement starts at or after ``at``, so removals only touch the tail.
    tail = text[at:]
    for start, end in sorted((_removal_span(text, i) for i in ours), reverse=True):
        tail = tail[: max(start - at, 0)] + tail[end - at :]
    out = text[:at] + block + tail
    return MergeResult(out, out != text, tuple(notes))
