"""``webpush-kit doctor``: the Content-Security-Policy sent with the worker must allow the
worker's importScripts (WEB-PUSH-RULES 1.8). Sites are served for real on loopback with
the helpers of tests/test_doctor.py; a real Chromium confirms that the rule the doctor
applies is the browser's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, Response

from tests.test_doctor import DC1_IMPORT, GOOD_SW, MOENGAGE, doctor, failed_ids, only, site
from webpush_kit.doctor import check_worker_csp, parse_csp_list
from webpush_kit.flask import WebPushKit
from webpush_kit.settings import Settings

Start = Callable[[Any], Any]
MOE_SW = DC1_IMPORT + GOOD_SW
CDN = "https://cdn.moengage.com"


def csp_site(csp: str | None = None, *, report_only: str | None = None,
             sw: bytes = MOE_SW) -> Flask:
    headers: dict[str, str] = {}
    if csp is not None:
        headers["Content-Security-Policy"] = csp
    if report_only is not None:
        headers["Content-Security-Policy-Report-Only"] = report_only
    return site(sw=sw, sw_headers=headers)


@pytest.mark.parametrize("csp", [
    f"script-src {CDN}",                             # host source with scheme
    "script-src cdn.moengage.com",                   # host source, scheme from the worker
    "script-src *.moengage.com",                     # wildcard host
    "script-src https://cdn.moengage.com:443",       # explicit default port
    "script-src https://cdn.moengage.com/release/",  # path prefix
    "script-src https:",                             # scheme source
    "script-src http:",                              # http: also matches https:
    "script-src *",
    "SCRIPT-SRC 'SELF' HTTPS://CDN.MOENGAGE.COM",    # names and keywords in any case
    f"default-src 'self'; script-src 'self' {CDN}",  # script-src wins over default-src
    f"script-src-elem {CDN}; script-src 'self'",     # script-src-elem wins over script-src
    "script-src 'strict-dynamic' 'nonce-abc'",       # importScripts is not parser-inserted
    "worker-src 'self'; img-src 'none'",             # no script directive at all
    f"default-src {CDN}",
])
def test_policies_that_allow_the_moengage_import(live_server: Start, csp: str) -> None:
    report = doctor(live_server, csp_site(csp), MOENGAGE)
    check = only(report, "worker.csp")
    assert check.status == "pass", report.to_text()
    assert CDN in check.message
    assert report.ok, report.to_text()


@pytest.mark.parametrize("csp,directive", [
    ("script-src 'self'", "script-src 'self'"),
    ("default-src 'self'", "default-src 'self' (there is no script-src)"),
    ("default-src 'none'", "default-src 'none'"),
    ("script-src 'none'; default-src *", "script-src 'none'"),
    (f"script-src-elem 'self'; script-src {CDN}", "script-src-elem 'self'"),
    ("script-src 'self' 'unsafe-inline' 'unsafe-eval' 'nonce-abc' 'sha256-abc='",
     "script-src 'self' 'unsafe-inline'"),               # none of these allow a URL
    ("script-src https://cdn.moengage.com/other/", "script-src https://cdn.moengage.com/other/"),
    ("script-src https://cdn.moengage.com:8443", "script-src https://cdn.moengage.com:8443"),
    ("script-src *.cdn.moengage.com", "script-src *.cdn.moengage.com"),  # not the bare host
    ("script-src http://*.example.com data: blob:", "script-src http://*.example.com data:"),
    ("script-src", "script-src (empty: matches nothing)"),
    ("script-src 'self", "script-src 'self"),             # a broken expression matches nothing
])
def test_policies_that_block_the_moengage_import(live_server: Start, csp: str,
                                                 directive: str) -> None:
    report = doctor(live_server, csp_site(csp), MOENGAGE)
    check = only(report, "worker.csp")
    assert check.status == "fail", report.to_text()
    assert directive in check.message
    assert f"importScripts({CDN}/release/dc_1/" in check.message
    assert "MoEngage pushes stop" in check.message
    assert check.fix is not None
    assert CDN in check.fix and "exempt" in check.fix and "Flask-Talisman" in check.fix
    assert "worker.csp" in failed_ids(report)
    assert "FAIL  worker.csp" in report.to_text()


def test_the_fix_for_a_default_src_block_repeats_its_sources(live_server: Start) -> None:
    check = only(doctor(live_server, csp_site("default-src 'self' https://img.example"),
                        MOENGAGE), "worker.csp")
    assert check.fix is not None
    assert f"script-src 'self' https://img.example {CDN}" in check.fix


def test_every_policy_must_allow_the_import(live_server: Start) -> None:
    # Two policies in one header (comma) and in two headers: each one is enforced.
    report = doctor(live_server, csp_site(f"script-src {CDN}, script-src 'self'"), MOENGAGE)
    check = only(report, "worker.csp")
    assert check.status == "fail" and "policy 2 of 2: script-src 'self'" in check.message

    app = Flask("two-headers")

    @app.get("/")
    def index() -> Response:
        return site().view_functions["index"]()

    @app.get("/serviceworker.js")
    def worker() -> Response:
        resp = Response(MOE_SW, content_type="text/javascript")
        resp.headers["Cache-Control"] = "no-cache"
        resp.headers.add("Content-Security-Policy", "default-src *")
        resp.headers.add("Content-Security-Policy", "script-src 'none'")
        return resp

    report = doctor(live_server, app, MOENGAGE)
    check = only(report, "worker.csp")
    assert check.status == "fail" and "policy 2 of 2: script-src 'none'" in check.message


def test_report_only_warns_and_never_fails(live_server: Start) -> None:
    report = doctor(live_server, csp_site(report_only="script-src 'self'"), MOENGAGE)
    check = only(report, "worker.csp-report-only")
    assert check.status == "warn" and "would block" in check.message
    assert check.fix is not None and CDN in check.fix
    assert not report.by_id("worker.csp") and report.ok, report.to_text()

    both = doctor(live_server, csp_site(f"script-src {CDN}", report_only="default-src 'self'"),
                  MOENGAGE)
    assert only(both, "worker.csp").status == "pass"
    assert only(both, "worker.csp-report-only").status == "warn"
    assert both.ok


def test_no_csp_passes_with_a_line_saying_so(live_server: Start) -> None:
    report = doctor(live_server, csp_site(), MOENGAGE)
    check = only(report, "worker.csp")
    assert check.status == "pass" and "no Content-Security-Policy" in check.message
    assert report.ok


@pytest.mark.parametrize("csp", [
    "@@@ ;;; ,,, \x7f", ";", ",", "script-src\tcdn.moengage.com\x0b", "script-src ☃",
    "default-src 'self'; default-src *",   # the first of a repeated directive wins: blocked
    "script-src https://[::1]:8000 https://cdn.moengage.com:99999 *.:80",
])
def test_malformed_headers_never_crash(live_server: Start, csp: str) -> None:
    report = doctor(live_server, csp_site(csp.encode("utf-8").decode("latin-1")), MOENGAGE)
    check = only(report, "worker.csp")
    assert check.status in ("pass", "fail")
    assert "Traceback" not in report.to_text()


def test_a_header_with_no_readable_directive_restricts_nothing() -> None:
    assert parse_csp_list(";; , ;") == []
    check = check_worker_csp("https://s.example/serviceworker.js",
                             {"content-security-policy": " ; , ; "}, MOE_SW)[0]
    assert check.status == "pass"
    assert parse_csp_list("Script-Src a b; script-src c, img-src d") == [
        {"script-src": ["a", "b"]}, {"img-src": ["d"]}]


def test_the_seeds_dated_import_is_checked_by_its_origin(live_server: Start) -> None:
    seed = (b'importScripts("//cdn.moengage.com/webpush/releases/serviceworker_cdn.min.latest'
            b'.js?date="+new Date().getUTCFullYear());\n')
    # "//cdn..." takes the worker's scheme: http here, on loopback.
    check = only(doctor(live_server, csp_site("script-src 'self'", sw=seed)), "worker.csp")
    assert check.status == "fail"
    assert "importScripts(http://cdn.moengage.com/webpush/releases/" in check.message
    ok = only(doctor(live_server, csp_site("script-src cdn.moengage.com", sw=seed)),
              "worker.csp")
    assert ok.status == "pass"
    https_only = only(doctor(live_server, csp_site(f"script-src {CDN}", sw=seed)), "worker.csp")
    assert https_only.status == "fail"  # https: does not match an http: URL


def test_same_origin_and_extra_imports_are_checked_too(live_server: Start) -> None:
    sw = b'importScripts("/lib/a.js", "https://other.example/b.js");\n' + GOOD_SW
    check = only(doctor(live_server, csp_site("script-src 'self'", sw=sw)), "worker.csp")
    assert check.status == "fail" and "importScripts(https://other.example/b.js)" in check.message
    assert "MoEngage" not in check.message
    allowed = csp_site("script-src 'self' https://other.example", sw=sw)
    assert only(doctor(live_server, allowed), "worker.csp").status == "pass"


def test_connect_src_blocking_the_moengage_api_is_a_warning(live_server: Start) -> None:
    csp = f"default-src 'self'; script-src 'self' {CDN}"
    report = doctor(live_server, csp_site(csp), MOENGAGE)
    check = only(report, "worker.csp-connect")
    assert check.status == "warn" and "https://sdk-01.moengage.com" in check.message
    assert report.ok
    fine = doctor(live_server, csp_site(f"{csp}; connect-src 'self' https://*.moengage.com"),
                  MOENGAGE)
    assert not fine.by_id("worker.csp-connect")


def test_flask_talisman_site_wide_policy_is_caught_and_fixed(live_server: Start) -> None:
    """The case this check exists for: Flask-Talisman's default policy (default-src 'self')
    is sent on /serviceworker.js too. Listing the CDN in script-src fixes it."""
    from flask_talisman import Talisman

    def app(policy: dict[str, Any]) -> Flask:
        a = Flask("talisman")
        a.config["SECRET_KEY"] = "x"
        WebPushKit(a, moengage_app_id="APPID123", manifest_name="Shop")
        Talisman(a, force_https=False, content_security_policy=policy)
        return a

    settings = Settings(moengage_app_id="APPID123", manifest_name="Shop")
    bad = only(doctor(live_server, app({"default-src": "'self'"}), settings), "worker.csp")
    assert bad.status == "fail" and "default-src 'self'" in bad.message
    good = app({"default-src": "'self'", "script-src": ["'self'", CDN]})
    assert only(doctor(live_server, good, settings), "worker.csp").status == "pass"


# --- the browser agrees -------------------------------------------------------------------

BROWSER_CASES = [
    # (policy on the worker response, report-only?, registration expected to succeed)
    (None, False, True),
    ("script-src 'self'", False, False),
    ("default-src 'self'", False, False),
    ("default-src 'self'; script-src 'self' http://127.0.0.1:{port}", False, True),
    ("script-src http:", False, True),
    ("script-src *", False, True),
    ("script-src 'self' 'strict-dynamic'", False, True),
    ("script-src 'self' 'unsafe-inline' 'nonce-abc'", False, False),
    ("script-src-elem 'self'; script-src *", False, False),
    ("script-src *, script-src 'self'", False, False),
    ("worker-src 'self'", False, True),
    ("script-src 'self'", True, True),
]


@pytest.mark.browser
@pytest.mark.parametrize("policy,report_only,registers", BROWSER_CASES)
def test_chromium_applies_the_workers_policy_as_the_doctor_does(
    live_server: Start, browser_context: Any, policy: str | None, report_only: bool,
    registers: bool,
) -> None:
    """The worker imports a script from another origin (the same host, another port). The
    policy sent with the worker decides whether Chromium can install it, and the doctor's
    verdict on the same live site must match."""
    lib = Flask("lib")

    @lib.get("/lib.js")
    def lib_js() -> Response:
        return Response("self.libLoaded = true;", content_type="text/javascript")

    lib_server = live_server(lib)
    worker = (f'importScripts("{lib_server.url}/lib.js");\n').encode() + GOOD_SW
    header = "Content-Security-Policy-Report-Only" if report_only else "Content-Security-Policy"
    headers = {header: policy.format(port=lib_server.port)} if policy else {}
    page = (b'<!doctype html><html><head><link rel="manifest" href="/manifest.json">'
            b"</head><body></body></html>")
    app = site(page=page, sw=worker, sw_headers=headers)
    server = live_server(app)

    tab = browser_context.new_page()
    tab.goto(server.url + "/")
    outcome = tab.evaluate("""navigator.serviceWorker.register('/serviceworker.js')
        .then(r => new Promise(resolve => {
            const w = r.installing || r.waiting || r.active;
            if (!w || w.state === 'activated') return resolve(w ? 'activated' : 'none');
            w.addEventListener('statechange', () => {
                if (w.state === 'activated' || w.state === 'redundant') resolve(w.state);
            });
        }), e => 'rejected: ' + e.name)""")
    assert (outcome == "activated") is registers, outcome

    report = doctor(live_server, app)
    check_id = "worker.csp-report-only" if report_only else "worker.csp"
    check = only(report, check_id)
    expected = "pass" if registers and not (report_only and policy) else (
        "warn" if report_only else "fail")
    assert check.status == expected, check
