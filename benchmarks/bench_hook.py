"""The whole after_request injection hook as a share of a minimal request's time.

    .venv/bin/python benchmarks/bench_hook.py

Calls three WSGI apps in-process (no network, so the share is not hidden by socket time),
interleaved over several rounds: a minimal HTML page with no extension, the same page with
WebPushKit injecting the head snippet, and with the view exempt (the hook's early exit).
Prints microseconds per request (median of rounds) and the hook's share of the injecting
request.
"""

from __future__ import annotations

import statistics
import sys
import timeit
from collections.abc import Callable
from typing import Any

from flask import Flask
from werkzeug.test import EnvironBuilder

from webpush_kit.flask import WebPushKit, exempt

PAGE = ("<!doctype html><html lang=en><head><meta charset=utf-8><title>Minimal</title>"
        "<meta name=viewport content='width=device-width'></head><body><h1>Hi</h1>"
        "<p>A minimal page.</p></body></html>")
OPTIONS: dict[str, Any] = {
    "manifest_name": "Bench",
    "manifest_icons": ({"src": "/i192.png", "sizes": "192x192"},
                       {"src": "/i512.png", "sizes": "512x512"}),
}


def make(with_extension: bool, exempt_view: bool = False) -> Flask:
    app = Flask(__name__)
    if with_extension:
        WebPushKit(app, **OPTIONS)

    def page() -> str:
        return PAGE

    app.add_url_rule("/", "page", exempt(page) if exempt_view else page)
    return app


def timer(app: Flask) -> Callable[[], None]:
    environ = EnvironBuilder(path="/").get_environ()

    def run() -> None:
        body = app(dict(environ), lambda *a: None)
        b"".join(body)
        body.close()  # type: ignore[attr-defined]

    run()
    return run


def main() -> int:
    apps = {"no extension": make(False), "injecting": make(True),
            "exempt view": make(True, exempt_view=True)}
    assert b'rel="manifest"' in make(True).test_client().get("/").data
    runs = {name: timer(app) for name, app in apps.items()}
    results: dict[str, list[float]] = {name: [] for name in apps}
    for _ in range(7):
        for name, run in runs.items():
            results[name].append(min(timeit.repeat(run, number=2000, repeat=3)) / 2000 * 1e6)
    med = {name: statistics.median(v) for name, v in results.items()}
    for name, us in med.items():
        print(f"  {name:14s} {us:7.1f} us/request")
    share = (med["injecting"] - med["no extension"]) / med["injecting"]
    print(f"  extension's share of an injected minimal request: {share:.1%} "
          f"({med['injecting'] - med['no extension']:.1f} us)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
