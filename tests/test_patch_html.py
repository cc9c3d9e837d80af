"""``webpush-kit export --patch-html GLOB`` over real-world-shaped pages (issue 5, item 3).

The pages in tests/fixtures/pages/ are byte-exact (a .gitattributes keeps git from
touching them): UTF-8 with a BOM, Latin-1 declared by a meta charset, CRLF with an
upper-case head carrying attributes, no head tag, a page that already links its own
manifest, comments and templates holding "<head>", a <header> with no head, a WordPress-like
head, a minified page, an HTMX fragment and a UTF-16 page. Every patched page is parsed
with html5lib (the WHATWG parser) to prove the link is a direct child of <head>.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from bs4 import BeautifulSoup
from click.testing import CliRunner, Result
from flask import Flask, Response

from webpush_kit.assets import render_assets
from webpush_kit.cli import main
from webpush_kit.export import settings_file
from webpush_kit.flask import WebPushKit
from webpush_kit.settings import Settings

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pages"
SNIPPET = render_assets(Settings()).head_snippet
BOM = b"\xef\xbb\xbf"

# Pages the patch must leave alone, and why (a word of the reason printed).
LEFT_ALONE = {
    "existing-manifest-link.html": "already has a manifest link",
    "htmx-fragment.html": "no place",
    "utf16le-bom.html": "UTF-16",
}


def all_pages() -> list[Path]:
    return sorted(p for p in FIXTURES.rglob("*") if p.is_file() and p.suffix in (".html", ".htm"))


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    shutil.copytree(FIXTURES, root)
    (tmp_path / "webpush.toml").write_bytes(settings_file())
    return root


def patch(site: Path, *args: str) -> Result:
    config = site.parent / "webpush.toml"
    result = CliRunner().invoke(
        main, ["export", "--config", str(config), "--patch-html", f"{site}/**/*.htm*", *args]
    )
    assert result.exit_code == 0, result.output + (result.stderr or "")
    return result


def head_manifest_links(html: bytes) -> list[Any]:
    soup = BeautifulSoup(html, "html5lib")
    assert soup.head is not None
    return [el for el in soup.head.find_all("link", recursive=False)
            if "manifest" in [r.lower() for r in el.get("rel", [])]]


def snapshot(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_fixture_bytes_are_what_the_tests_expect() -> None:
    # Guards against an editor or git normalising the fixtures.
    assert (FIXTURES / "utf8-bom.html").read_bytes().startswith(BOM)
    assert b"\r\n" in (FIXTURES / "crlf-uppercase-head-attrs.html").read_bytes()
    assert b"\n" not in (FIXTURES / "crlf-uppercase-head-attrs.html").read_bytes().replace(
        b"\r\n", b"")
    assert b"Gr\xfc\xdfe" in (FIXTURES / "latin1-meta-charset.html").read_bytes()
    assert (FIXTURES / "utf16le-bom.html").read_bytes().startswith(b"\xff\xfe")


def test_every_eligible_page_gets_the_link_as_a_direct_child_of_head(site: Path) -> None:
    before = {p.name: p.read_bytes() for p in all_pages()}
    result = patch(site)
    for name, why in LEFT_ALONE.items():
        assert f"{name}: " in result.output and why in result.output
    pages = sorted(p for p in site.rglob("*") if p.suffix in (".html", ".htm"))
    assert len(pages) == len(before)
    for page in pages:
        old, new = before[page.name], page.read_bytes()
        if page.name in LEFT_ALONE:
            assert new == old, page.name
            continue
        assert new.count(SNIPPET) == 1, page.name
        # Every original byte kept, in order: only the snippet was inserted.
        assert new.replace(SNIPPET, b"", 1) == old, page.name
        links = head_manifest_links(new)
        assert links and links[0]["href"] == "/manifest.json", page.name
        soup = BeautifulSoup(new, "html5lib")
        assert soup.head is not None and soup.body is not None
        assert not [el for el in soup.body.find_all("link") if "manifest" in el.get("rel", [])]


def test_page_with_its_own_manifest_keeps_it_first(site: Path) -> None:
    patch(site)
    links = head_manifest_links((site / "existing-manifest-link.html").read_bytes())
    assert [el["href"] for el in links] == ["/site.webmanifest"]


def test_encodings_bom_and_line_endings_are_kept(site: Path) -> None:
    patch(site)
    bom = (site / "utf8-bom.html").read_bytes()
    assert bom.startswith(BOM) and bom.count(BOM) == 1
    assert "日本語".encode() in bom
    latin1 = (site / "latin1-meta-charset.html").read_bytes()
    assert b"Gr\xfc\xdfe aus K\xf6ln" in latin1  # still Latin-1, not re-encoded as UTF-8
    soup = BeautifulSoup(latin1, "html5lib")
    assert soup.title is not None and soup.title.string == "Grüße aus Köln"
    # The link goes after the charset declaration, which must stay in the first 1024 bytes.
    assert latin1.index(b"charset=iso-8859-1") < latin1.index(SNIPPET)
    crlf = (site / "crlf-uppercase-head-attrs.html").read_bytes()
    assert crlf.count(b"\r\n") == (FIXTURES / "crlf-uppercase-head-attrs.html").read_bytes() \
        .count(b"\r\n")
    assert b"\n" not in crlf.replace(b"\r\n", b"")


def test_no_head_pages_do_not_fall_into_quirks_mode(site: Path) -> None:
    patch(site)
    for name in ("no-head-tag.html", "doctype-only.html", "header-without-head.html"):
        data = (site / name).read_bytes()
        # The DOCTYPE still comes first (a link before it would mean quirks mode).
        assert data.lower().startswith(b"<!doctype html>"), name
        assert data.index(SNIPPET) > data.lower().index(b"<!doctype html>")


def test_second_run_changes_nothing(site: Path) -> None:
    patch(site)
    before = snapshot(site)
    result = patch(site)
    assert "patched" not in result.output
    assert snapshot(site) == before  # same bytes, same mtimes, no new backups


def test_backups_keep_the_original_bytes(site: Path) -> None:
    originals = {p.name: p.read_bytes() for p in all_pages()}
    patch(site)
    backups = sorted(site.rglob("*.bak"))
    assert {b.name for b in backups} == {
        f"{n}.bak" for n in originals if n not in LEFT_ALONE
    }
    for b in backups:
        assert b.read_bytes() == originals[b.name[: -len(".bak")]]


def test_no_backup_option(site: Path) -> None:
    patch(site, "--no-backup")
    assert not list(site.rglob("*.bak"))
    assert SNIPPET in (site / "utf8-bom.html").read_bytes()


def test_dry_run_prints_a_diff_and_writes_nothing(site: Path) -> None:
    before = snapshot(site)
    result = patch(site, "--dry-run")
    assert snapshot(site) == before
    assert f"+++ b/{site}/wordpress-like.html" in result.output
    assert '<link rel="manifest" href="/manifest.json">' in result.output
    assert "nothing written" in result.output


def test_glob_that_matches_nothing_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "webpush.toml").write_bytes(settings_file())
    result = CliRunner().invoke(main, ["export", "--config", str(tmp_path / "webpush.toml"),
                                       "--patch-html", str(tmp_path / "nope" / "*.html")])
    assert result.exit_code == 1
    assert "no file matches" in result.output + (result.stderr or "")


def test_patching_gives_the_same_bytes_as_the_flask_hook(site: Path) -> None:
    """The CLI and the Flask after-request hook share inject_head: same page, same bytes."""
    originals = {p.name: p.read_bytes() for p in all_pages()}
    patch(site)
    app = Flask(__name__)
    WebPushKit(app)

    @app.get("/page/<name>")
    def page(name: str) -> Response:
        return Response(originals[name], mimetype="text/html")

    client = app.test_client()
    for name in originals:
        if name in LEFT_ALONE:
            continue
        served = client.get(f"/page/{name}").data
        patched = next(site.rglob(name)).read_bytes()
        assert served == patched, name


def test_patched_file_keeps_its_permissions(site: Path) -> None:
    page = site / "wordpress-like.html"
    os.chmod(page, 0o640)
    patch(site)
    assert page.stat().st_mode & 0o777 == 0o640
