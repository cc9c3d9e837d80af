"""Put the head snippet (``<link rel="manifest">`` ...) into the real ``<head>`` of a page.

This runs on every HTML response, so it is a small byte scanner, not a parser: it walks
only as far as the end of the head, jumping with ``bytes.find`` and anchored regexes.
It follows the WHATWG tokenizer (comments, bogus comments, DOCTYPE, quote-aware tags,
raw-text and script-data states) and the "before head" / "in head" / "after head" tree
construction modes closely enough that the inserted link becomes a direct child of
``<head>``, which is the only place Chromium looks for a manifest (WEB-PUSH-RULES 2.3, 5).
When in doubt it inserts nothing: a missing link is a visible, fixable problem; a link in
the wrong place, a page pushed into quirks mode or a broken charset is not.
"""

from __future__ import annotations

import re
from html import unescape
from typing import Final

__all__ = ["find_head_insertion_point", "inject_head"]

# Where the head must start; past this we give up (rule 5: scan the first ~64 KB).
SCAN_LIMIT: Final = 64 * 1024
# How far we follow a head that started in time, to be sure it holds no manifest link.
HEAD_REGION_LIMIT: Final = 1024 * 1024
# A charset declaration must be "serialized completely within the first 1024 bytes".
CHARSET_LIMIT: Final = 1024

_UTF8_BOM: Final = b"\xef\xbb\xbf"
_UTF16_BOMS: Final = (b"\xff\xfe", b"\xfe\xff")
_UTF16_DECL: Final = re.compile(
    rb"charset[\t\n\f\r ]*=[\t\n\f\r ]*[\"']?[\t\n\f\r ]*utf-?16", re.IGNORECASE
)

# Tokenizer pieces. HTML whitespace is TAB LF FF CR SPACE (not VT). Every quantifier is
# possessive or atomic so a malformed tag can never make a regex backtrack into a wrong
# reading: an unterminated quoted value runs on to the next quote, as in the tokenizer.
_ATTRS: Final = (
    rb"(?:[\t\n\f\r /]++"
    rb"|[^\t\n\f\r />][^\t\n\f\r />=]*+"
    rb"(?>[\t\n\f\r ]*+=[\t\n\f\r ]*+"
    rb"(?>\"[^\"]*+\"|'[^']*+'|[^\t\n\f\r >\"'][^\t\n\f\r >]*+|(?=>))"
    rb"|(?![\t\n\f\r ]*+=))"
    rb")*+"
)
_TAG: Final = re.compile(rb"([A-Za-z][^\t\n\f\r />]*+)(" + _ATTRS + rb")>")
_WS_THEN_TAG: Final = re.compile(rb"[\t\n\f\r ]*+<([A-Za-z][^\t\n\f\r />]*+)(" + _ATTRS + rb")>")
_ATTR: Final = re.compile(
    rb"([^\t\n\f\r />][^\t\n\f\r />=]*+)"
    rb"(?:[\t\n\f\r ]*+=[\t\n\f\r ]*+(\"[^\"]*+\"|'[^']*+'|[^\t\n\f\r >\"'][^\t\n\f\r >]*+)?)?"
)
_WS_RUN: Final = re.compile(rb"[\t\n\f\r ]*+")
_HTML_WS: Final = re.compile(rb"[\t\n\f\r ]+")
_COMMENT_END: Final = re.compile(rb"--!?>")

_END_DELIM: Final = rb"[\t\n\f\r />]"
_RAW_TEXT_NAMES: Final = (b"style", b"xmp", b"iframe", b"noembed", b"noframes", b"noscript")
_RAW_END: Final = {
    name: re.compile(rb"</" + name + _END_DELIM, re.IGNORECASE)
    for name in (*_RAW_TEXT_NAMES, b"title", b"textarea")
}
# Script data has escape states: inside "<!--", a "<script>" makes the next "</script>"
# not the end (double-escaped); "-->" leaves the escape.
_SCRIPT_DATA: Final = re.compile(rb"<(?:(!--)|/script" + _END_DELIM + rb")", re.IGNORECASE)
_SCRIPT_ESCAPED: Final = re.compile(rb"-->|<(/?)script" + _END_DELIM, re.IGNORECASE)
_SCRIPT_DOUBLE_ESCAPED: Final = re.compile(rb"(-->)|</script" + _END_DELIM, re.IGNORECASE)

# Fast path. A head is mostly runs of tokens that change nothing here: whitespace,
# comments, ordinary <link>/<meta>/<base> tags, and script/style/title elements. One regex
# swallows such a run in C; whatever it does not recognise is left to the token-by-token
# scanner (_next_token). Its attribute grammar accepts only the common shape (whitespace,
# then `name`, `name=value`, `name="value"` or `name='value'`), on which it reads exactly as
# the tokenizer does. It refuses a <link> whose rel might say "manifest" (an "m" or a
# character reference in it) and, while the charset meta may still move the insertion
# point, a <meta> with charset or http-equiv, so those always get the careful look.
_FAST_NAME: Final = rb"[^\t\n\f\r />=\"'<]++"
_FAST_VALUE: Final = rb"(?:\"[^\"]*+\"|'[^']*+'|[^\t\n\f\r >\"'=<`]++)"
_FAST_REL_VALUE: Final = rb"(?:\"[^\"mM&]*+\"|'[^'mM&]*+'|[^\t\n\f\r >\"'=<`mM&]++)"
_FAST_EQ: Final = rb"[\t\n\f\r ]*+=[\t\n\f\r ]*+"
_FAST_CANONICAL_NAME: Final = rb"[A-Za-z0-9_:.-]++"


def _fast_attrs(forbidden: bytes = b"") -> bytes:
    """Regex for the rest of a tag after its name; ``forbidden`` names send it to the slow path.

    ``rel`` is special when forbidden: it is allowed with a value that cannot hold "manifest".
    A first loop takes the canonical ``name="value"`` attributes (the cheapest to match), a
    second one anything else of the common shape; both read them as the tokenizer does.
    """
    canonical = _FAST_CANONICAL_NAME + rb'="[^"]*+"'
    generic = _FAST_NAME + rb"(?:" + _FAST_EQ + _FAST_VALUE + rb")?"
    if forbidden:
        canonical = rb"(?!(?i:" + forbidden + rb")=)" + canonical
        generic = rb"(?!(?i:" + forbidden + rb")[\t\n\f\r =/>])" + generic
    if forbidden == b"rel":
        # Cheaper than a lookahead on every attribute: names not starting with "r" need no
        # check; other "r" names go to the generic loop, which checks exactly.
        canonical = rb'(?:(?i:rel)="[^"mM&]*+"|[A-QS-Za-qs-z0-9_:.-][A-Za-z0-9_:.-]*+="[^"]*+")'
        rel = rb"(?i:rel)(?=[\t\n\f\r =/>])(?:" + _FAST_EQ + _FAST_REL_VALUE + rb")?"
        generic = rb"(?:" + rel + rb"|" + generic + rb")"
    return (
        rb"(?:[\t\n\f\r ]++" + canonical + rb")*+"
        rb"(?:[\t\n\f\r ]++" + generic + rb")*+[\t\n\f\r /]*+>"
    )


def _fast_raw(name: bytes, also_stop_at: bytes = b"") -> bytes:
    """Regex for a raw-text element after its ``<``: start tag, content, end tag."""
    attrs = _fast_attrs()
    end = rb"/(?i:" + name + rb")[\t\n\f\r />]"
    return b"".join((
        rb"(?i:", name, rb")", attrs,
        rb"[^<]*+(?:<(?!", also_stop_at, end, rb")[^<]*+)*+",
        rb"</(?i:", name, rb")", attrs,
    ))  # fmt: skip


def _fast_run(meta_attrs: bytes, *extra: bytes) -> bytes:
    alternatives = (
        *extra,
        rb"(?i:link)" + _fast_attrs(b"rel"),
        rb"(?i:meta)" + meta_attrs,
        _fast_raw(b"script", also_stop_at=b"!--|"),  # "<!--" starts the escape states
        rb"!--(?:>|->|[^-]*+(?:-(?!-!?>)[^-]*+)*+--!?>)",
        rb"(?i:base|basefont|bgsound)" + _fast_attrs(),
        _fast_raw(b"style"),
        _fast_raw(b"title"),
        _fast_raw(b"noframes"),
    )
    # Whitespace before each token inside the loop: one iteration per token, not two.
    return rb"(?:[\t\n\f\r ]*+<(?:" + b"|".join(alternatives) + rb"))*+[\t\n\f\r ]*+"


_RUN_IN_HEAD: Final = _fast_run(_fast_attrs(), _fast_raw(b"noscript"))
# The head opening with a plain <meta charset=...>: the insertion point goes after it.
_CHARSET_META: Final = (
    rb"[\t\n\f\r ]*+<(?i:meta)[\t\n\f\r ]++(?i:charset)(?:"
    + _FAST_EQ
    + _FAST_VALUE
    + rb")?[\t\n\f\r /]*+>"
)
# The usual end: </head>, whitespace, then a complete <body> start tag.
_HEAD_END: Final = (
    rb"</(?i:head)" + _fast_attrs() + rb"[\t\n\f\r ]*+(?=<(?i:body)" + _fast_attrs() + rb")"
)
# The usual start of a page, up to and including the <head> start tag.
_PROLOGUE: Final = (
    rb"[\t\n\f\r ]*+(?:<!(?i:doctype)[^>]*+>[\t\n\f\r ]*+)?"
    rb"(?:<(?i:html)" + _fast_attrs() + rb"[\t\n\f\r ]*+)?"
    rb"<(?i:head)" + _fast_attrs()
)

# While a charset meta may still move the insertion point: no charset meta, no noscript.
_FAST_RUN_OPENING: Final = re.compile(_fast_run(_fast_attrs(b"charset|http-equiv")))
# "in head" once the insertion point is fixed (scripting on: noscript is raw text).
_FAST_RUN_IN_HEAD: Final = re.compile(_RUN_IN_HEAD)
# "after head": a noscript there starts the body.
_FAST_RUN_AFTER_HEAD: Final = re.compile(_fast_run(_fast_attrs()))
_FAST_PROLOGUE: Final = re.compile(_PROLOGUE)
_FAST_CHARSET_META: Final = re.compile(_CHARSET_META)
_FAST_HEAD_END: Final = re.compile(_HEAD_END)
# Only when "16" occurs is the full declaration search needed; a literal is found fast.
_UTF16_HINT: Final = re.compile(rb"16")

# Start tags the "in head" mode keeps in the head; anything else starts the body.
_HEAD_VOID: Final = frozenset({b"base", b"basefont", b"bgsound", b"link", b"meta"})
_HEAD_RAW: Final = frozenset({b"title", b"style", b"noframes", b"noscript", b"script"})
_HEAD_CONTENT: Final = _HEAD_VOID | _HEAD_RAW | {b"template"}
_RAW_ANYWHERE: Final = frozenset(_RAW_END) | {b"script", b"plaintext"}
_BODY_END_TAGS: Final = frozenset({b"body", b"html", b"br"})

# Token kinds returned by _next_token.
_TEXT: Final = 0  # non-whitespace character data starts at `start`
_SKIP: Final = 1  # comment, bogus comment, processing instruction, `</>`
_DOCTYPE: Final = 2
_START: Final = 3
_END: Final = 4
_STOP: Final = 5  # input (or the scan limit) ends before a complete token

_Token = tuple[int, int, int, bytes, int, int]  # kind, start, end, name, attrs start, attrs end


def _next_token(buf: bytes, pos: int, limit: int) -> _Token:
    """Skip whitespace, then read one token the way the HTML tokenizer would."""
    m = _WS_THEN_TAG.match(buf, pos, limit)
    if m is not None:  # fast path: most head tokens are start tags after some whitespace
        return (_START, m.start(1) - 1, m.end(), m.group(1).lower(), m.start(2), m.end(2))
    ws = _WS_RUN.match(buf, pos, limit)
    if ws is not None:  # always, the run may be empty
        pos = ws.end()
    if pos >= limit:
        return (_STOP, pos, pos, b"", 0, 0)
    if buf[pos] != 0x3C:  # "<"
        return (_TEXT, pos, pos, b"", 0, 0)
    nxt = buf[pos + 1 : pos + 2] if pos + 1 < limit else b""
    if nxt == b"!":
        if buf.startswith(b"--", pos + 2, limit):
            p = pos + 4
            if buf.startswith(b">", p, limit):  # "<!-->"
                return (_SKIP, pos, p + 1, b"", 0, 0)
            if buf.startswith(b"->", p, limit):  # "<!--->"
                return (_SKIP, pos, p + 2, b"", 0, 0)
            c = _COMMENT_END.search(buf, p, limit)
            if c is None:
                return (_STOP, pos, pos, b"", 0, 0)
            return (_SKIP, pos, c.end(), b"", 0, 0)
        gt = buf.find(b">", pos + 2, limit)  # DOCTYPE and bogus comments end at the first ">"
        if gt < 0:
            return (_STOP, pos, pos, b"", 0, 0)
        kind = _DOCTYPE if buf[pos + 2 : pos + 9].lower() == b"doctype" else _SKIP
        return (kind, pos, gt + 1, b"", 0, 0)
    if nxt == b"?":
        gt = buf.find(b">", pos + 2, limit)
        if gt < 0:
            return (_STOP, pos, pos, b"", 0, 0)
        return (_SKIP, pos, gt + 1, b"", 0, 0)
    if nxt == b"/":
        after = buf[pos + 2 : pos + 3] if pos + 2 < limit else b""
        if after.isalpha():
            t = _TAG.match(buf, pos + 2, limit)
            if t is None:
                return (_STOP, pos, pos, b"", 0, 0)
            return (_END, pos, t.end(), t.group(1).lower(), t.start(2), t.end(2))
        if after == b">":  # "</>" is dropped
            return (_SKIP, pos, pos + 3, b"", 0, 0)
        if not after:
            return (_TEXT if limit >= len(buf) else _STOP, pos, pos, b"", 0, 0)
        gt = buf.find(b">", pos + 2, limit)
        if gt < 0:
            return (_STOP, pos, pos, b"", 0, 0)
        return (_SKIP, pos, gt + 1, b"", 0, 0)
    if nxt.isalpha():  # a start tag whose end is not in reach
        return (_STOP, pos, pos, b"", 0, 0)
    if not nxt and limit < len(buf):
        return (_STOP, pos, pos, b"", 0, 0)
    return (_TEXT, pos, pos, b"", 0, 0)  # "<" not followed by a tag: it is text


def _end_tag_end(buf: bytes, lt: int, limit: int) -> int:
    """Offset just past the end tag starting at ``lt`` (its attributes are tokenized too)."""
    t = _TAG.match(buf, lt + 2, limit)
    return -1 if t is None else t.end()


def _skip_script(buf: bytes, pos: int, limit: int) -> int:
    """Offset past ``</script>``, honouring the escaped and double-escaped states, or -1."""
    state = 0  # 0: script data, 1: escaped ("<!--" seen), 2: double escaped
    while True:
        if state == 0:
            m = _SCRIPT_DATA.search(buf, pos, limit)
            if m is None:
                return -1
            if m.group(1) is None:
                return _end_tag_end(buf, m.start(), limit)
            state, pos = 1, m.start() + 2  # the "--" of "<!--" also counts towards "-->"
        elif state == 1:
            m = _SCRIPT_ESCAPED.search(buf, pos, limit)
            if m is None:
                return -1
            slash = m.group(1)
            if slash is None:  # "-->"
                state = 0
            elif slash:
                return _end_tag_end(buf, m.start(), limit)
            else:
                state = 2
            pos = m.end()
        else:
            m = _SCRIPT_DOUBLE_ESCAPED.search(buf, pos, limit)
            if m is None:
                return -1
            state, pos = (0 if m.group(1) else 1), m.end()


def _skip_raw(buf: bytes, name: bytes, pos: int, limit: int) -> int:
    """Offset past the content and end tag of a raw-text/RCDATA element, or -1."""
    if name == b"script":
        return _skip_script(buf, pos, limit)
    end = _RAW_END.get(name)
    if end is None:  # plaintext never ends
        return -1
    m = end.search(buf, pos, limit)
    return -1 if m is None else _end_tag_end(buf, m.start(), limit)


def _skip_template(buf: bytes, pos: int, limit: int) -> int:
    """Offset past the matching ``</template>``: its contents never reach the head, or -1."""
    depth = 1
    while True:
        kind, start, end, name, _, _ = _next_token(buf, pos, limit)
        if kind == _STOP:
            return -1
        if kind == _TEXT:
            end = buf.find(b"<", start + 1, limit)
            if end < 0:
                return -1
        elif kind == _START:
            if name == b"template":
                depth += 1
            elif name in _RAW_ANYWHERE:
                end = _skip_raw(buf, name, end, limit)
                if end < 0:
                    return -1
        elif kind == _END and name == b"template":
            depth -= 1
            if depth == 0:
                return end
        pos = end


def _attributes(buf: bytes, start: int, end: int) -> dict[bytes, bytes]:
    """Lower-cased names to raw values; the first of duplicate attributes wins, as in HTML."""
    attrs: dict[bytes, bytes] = {}
    for m in _ATTR.finditer(buf, start, end):
        name = m.group(1).lower()
        if name not in attrs:
            value = m.group(2) or b""
            if value[:1] in (b'"', b"'"):
                value = value[1:-1]
            attrs[name] = value
    return attrs


def _decoded_lower(value: bytes) -> bytes:
    """ASCII-lower-cased value with character references resolved (``&#109;anifest``)."""
    if b"&" in value:
        value = unescape(value.decode("latin-1")).encode("utf-8", "replace")
    return value.lower()


def _is_manifest_link(buf: bytes, start: int, end: int) -> bool:
    rel = _attributes(buf, start, end).get(b"rel")
    return rel is not None and b"manifest" in _HTML_WS.split(_decoded_lower(rel))


def _is_charset_meta(buf: bytes, start: int, end: int) -> bool:
    attrs = _attributes(buf, start, end)
    if b"charset" in attrs:
        return True
    return _decoded_lower(attrs.get(b"http-equiv", b"")) == b"content-type"


def _not_ascii_compatible(buf: bytes) -> bool:
    """UTF-16 by BOM or declaration, or NUL bytes early (UTF-16/32 without a BOM)."""
    if buf.startswith(_UTF16_BOMS) or buf.find(b"\x00", 0, CHARSET_LIMIT) >= 0:
        return True
    if _UTF16_HINT.search(buf, 0, CHARSET_LIMIT) is None:
        return False
    return _UTF16_DECL.search(buf, 0, CHARSET_LIMIT) is not None


def _locate(buf: bytes, fast: bool = True) -> tuple[int, int, int] | None:
    """(insertion offset, head region start, head region end), or None to leave it alone.

    The head region runs from where the head begins to the first token that would start
    the body; it includes the "after head" stretch, whose head-content tags the parser
    still appends to ``<head>``. ``fast=False`` turns off the regex shortcuts (tests
    compare both paths).
    """
    n = len(buf)
    if _not_ascii_compatible(buf):
        return None  # not ASCII-compatible: inserting ASCII bytes would corrupt it
    start = 3 if buf.startswith(_UTF8_BOM) else 0  # BOM sniffing needs it first
    limit = min(n, SCAN_LIMIT)
    # "initial", "before html", "before head": only whitespace, comments, DOCTYPE, <html>
    # and ignored end tags may come before the head. The anchor is the latest point after
    # which a link still lands in the (implied) head without moving a DOCTYPE.
    anchor, anchored, after_head, pos = start, False, False, start
    prologue = _FAST_PROLOGUE.match(buf, start, limit) if fast else None
    if prologue is not None:
        base = pos = prologue.end()
    else:
        while True:
            kind, tstart, tend, name, _, _ = _next_token(buf, pos, limit)
            if kind == _SKIP:
                pos = tend
            elif kind == _DOCTYPE or (kind == _START and name == b"html"):
                anchor = pos = tend
                anchored = True
            elif kind == _START:
                if name == b"head":
                    base = pos = tend
                    break
                if name in _HEAD_CONTENT:  # implied head opens here
                    base, pos = anchor, tstart
                    break
                # Body content first: an implied, empty head sits at the anchor. Without a
                # DOCTYPE or <html> (or <body>) this is a fragment, e.g. an HTMX partial.
                return (anchor, anchor, anchor) if anchored or name == b"body" else None
            elif kind == _END:
                if name == b"head":
                    if not anchored:
                        return None
                    base, pos, after_head = anchor, tend, True
                    break
                if name in _BODY_END_TAGS:
                    return (anchor, anchor, anchor) if anchored else None
                pos = tend  # other end tags are ignored here
            elif kind == _TEXT:
                return (anchor, anchor, anchor) if anchored else None
            else:  # _STOP: end of input, or the head is not in the first SCAN_LIMIT bytes
                return (anchor, anchor, anchor) if anchored and limit >= n else None

    # "in head" and "after head": look for an existing manifest link and a charset meta.
    rlimit = min(n, HEAD_REGION_LIMIT)
    # `movable`: a charset meta may still pull the insertion point after itself. A
    # <noscript> or <template> freezes it: with scripting off, noscript content can end
    # the head early, and parsers that predate <template> (html5lib 1.1) end it there.
    k, opening, movable = base, not after_head, not after_head
    if fast and opening:
        meta = _FAST_CHARSET_META.match(buf, pos, rlimit)
        if meta is not None:
            k = pos = meta.end()
            opening = movable = False
    while True:
        if fast and not opening:
            if movable:
                run = _FAST_RUN_OPENING.match(buf, pos, rlimit)
            else:
                run = (_FAST_RUN_AFTER_HEAD if after_head else _FAST_RUN_IN_HEAD).match(
                    buf, pos, rlimit
                )
            if run is not None:  # always: the run may be empty
                pos = run.end()
            end = _FAST_HEAD_END.match(buf, pos, rlimit)
            if end is not None:
                region_end = end.end()
                break
        kind, tstart, tend, name, a0, a1 = _next_token(buf, pos, rlimit)
        if kind == _START:
            if name in _HEAD_VOID:
                if name == b"link":
                    if _is_manifest_link(buf, a0, a1):
                        return None  # the page's own manifest comes first and wins
                elif name == b"meta" and movable and _is_charset_meta(buf, a0, a1):
                    movable = False
                    if opening or tend <= CHARSET_LIMIT:
                        k = tend  # never push the charset declaration later
                opening = False
                pos = tend
                continue
            if name in (b"html", b"head"):  # merged into <html> / ignored
                pos = tend
                continue
            if name == b"template":
                movable = False
                pos = _skip_template(buf, tend, rlimit)
            elif name in _HEAD_RAW and not (after_head and name == b"noscript"):
                movable = movable and name != b"noscript"
                pos = _skip_raw(buf, name, tend, rlimit)
            else:
                region_end = tstart  # body content
                break
            opening = False
            if pos < 0:  # the element runs to the end of the input (or of our patience)
                if rlimit < n:
                    return None
                region_end = n
                break
        elif kind in (_SKIP, _DOCTYPE):
            pos = tend
        elif kind == _END:
            if name in _BODY_END_TAGS:
                region_end = tstart
                break
            if name == b"head":
                after_head, opening, movable = True, False, False
            pos = tend
        elif kind == _TEXT:
            region_end = tstart
            break
        else:  # _STOP
            if rlimit < n:
                return None
            region_end = n
            break
    return (k, base, region_end)


def find_head_insertion_point(html: bytes, *, snippet: bytes | None = None) -> int | None:
    """Offset at which the head snippet belongs, or None when nothing should be inserted.

    None means: no head can be placed safely (a fragment, body content first, UTF-16 or
    NUL bytes in the first 1024 bytes, the head not in the first 64 KiB), or the head
    already has a manifest link (the first one wins in Chromium), or ``snippet`` is given
    and is already in the head.
    """
    located = _locate(html)
    if located is None:
        return None
    k, lo, hi = located
    if snippet is not None and html.find(snippet, lo, hi) >= 0:
        return None
    return k


def inject_head(html: bytes, snippet: bytes) -> bytes:
    """``html`` with ``snippet`` inserted as the first children of its real ``<head>``.

    Returns ``html`` itself when nothing should be inserted; otherwise every input byte is
    kept, in order, around the snippet. Safe to call twice. ``snippet`` must be ASCII so
    it reads the same in any ASCII-compatible charset.
    """
    if not snippet.isascii():
        raise ValueError("the head snippet must be ASCII bytes (use character references)")
    located = _locate(html)
    if located is None:
        return html
    k, lo, hi = located
    if html.find(snippet, lo, hi) >= 0:
        return html
    view = memoryview(html)  # one copy of the page instead of three
    return b"".join((view[:k], snippet, view[k:]))
