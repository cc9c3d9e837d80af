"""How much does head injection cost per HTML response?

Run: ``python benchmarks/bench_inject.py``

Builds a realistic ~125 KB page (a ~3 KB head with the usual meta, link and script tags, a
long body) and times, in one run: ``inject_head``, the bare splice
``body[:k] + snippet + body[k:]`` at an already known offset (the floor for any approach
that returns new bytes), and BeautifulSoup parse + insert + re-serialise (what a
"just parse it" implementation would cost). Targets: ours <= 3x the bare splice, and
>= 1000x faster than BeautifulSoup. No assertions on wall-clock time live in the tests.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from webpush_kit.html import find_head_insertion_point, inject_head

SNIPPET = (
    b'<link rel="manifest" href="/manifest.json" crossorigin="use-credentials">'
    b'<script src="/webpush-kit/client.js" defer></script>'
)

HEAD = b"""<!DOCTYPE html>
<html lang="en" class="no-js">
<head>
  <meta charset="utf-8">
  <meta http-equiv="X-UA-Compatible" content="IE=edge">
  <meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
  <title>Autumn sale: 40% off running shoes | Example Store</title>
  <meta name="description" content="Shop the autumn sale: running shoes, trail shoes and more.">
  <meta property="og:title" content="Autumn sale: 40% off running shoes">
  <meta property="og:description" content="Running shoes, trail shoes and more, 40% off.">
  <meta property="og:image" content="https://cdn.example.com/img/og/autumn-sale-1200x630.jpg">
  <meta property="og:url" content="https://www.example.com/sale/autumn">
  <meta name="twitter:card" content="summary_large_image">
  <meta name="theme-color" content="#0b5fff">
  <link rel="canonical" href="https://www.example.com/sale/autumn">
  <link rel="alternate" hreflang="de" href="https://www.example.com/de/sale/herbst">
  <link rel="alternate" hreflang="fr" href="https://www.example.com/fr/soldes/automne">
  <link rel="alternate" hreflang="x-default" href="https://www.example.com/sale/autumn">
  <link rel="preconnect" href="https://cdn.example.com" crossorigin>
  <link rel="dns-prefetch" href="https://www.googletagmanager.com">
  <link rel="preload" href="/static/fonts/inter-var.woff2" as="font" type="font/woff2" crossorigin>
  <link rel="preload" href="/static/img/hero-autumn-1600.avif" as="image" fetchpriority="high">
  <link rel="icon" href="/favicon.ico" sizes="any">
  <link rel="icon" href="/icon.svg" type="image/svg+xml">
  <link rel="apple-touch-icon" href="/apple-touch-icon.png">
  <link rel="stylesheet" href="/static/css/main.4f9c2a1b.css">
  <link rel="stylesheet" href="/static/css/sale.91be0c33.css" media="screen and (min-width: 40em)">
  <style>
    :root { --brand: #0b5fff; --ink: #1b1b1f; }
    .skip-link { position: absolute; left: -999px; } .skip-link:focus { left: 1rem; top: 1rem; }
    header > nav a[aria-current="page"] { font-weight: 700; }
  </style>
  <script>document.documentElement.className = document.documentElement.className
    .replace("no-js", "js");</script>
  <script async src="https://www.googletagmanager.com/gtag/js?id=G-XXXXXXXX"></script>
  <script>
    window.dataLayer = window.dataLayer || [];
    function gtag(){dataLayer.push(arguments);}
    gtag('js', new Date());
    gtag('config', 'G-XXXXXXXX', { 'anonymize_ip': true, 'page_path': '/sale/autumn' });
    var banner = '<div class="banner"><a href="/sale">Sale</a></div>'; // '</head>' in a string
  </script>
  <script type="application/ld+json">{"@context": "https://schema.org", "@type": "WebPage",
    "name": "Autumn sale", "url": "https://www.example.com/sale/autumn",
    "publisher": {"@type": "Organization", "name": "Example Store",
    "logo": "https://cdn.example.com/img/logo-512.png"}}</script>
  <script src="/static/js/vendor.0d1e2f3a.js" defer></script>
  <script src="/static/js/main.a1b2c3d4.js" defer></script>
  <noscript><img height="1" width="1" style="display:none"
    src="https://www.facebook.com/tr?id=000000000000000&ev=PageView&noscript=1"></noscript>
</head>
"""

CARD = b"""    <article class="product-card" data-sku="SKU-%05d" data-price="%d.99">
      <a href="/p/running-shoe-%05d"><img src="https://cdn.example.com/img/p/%05d-480.webp"
        srcset="https://cdn.example.com/img/p/%05d-960.webp 2x" alt="Running shoe %d"
        loading="lazy" width="480" height="480"></a>
      <h3 class="product-card__title"><a href="/p/running-shoe-%05d">Running shoe %d</a></h3>
      <p class="product-card__price"><s>%d.99</s> <strong>%d.99</strong></p>
      <button type="button" class="btn btn--primary" data-add-to-cart="SKU-%05d">Add</button>
    </article>
"""


def build_page(size: int = 125_000) -> bytes:
    """A ~125 KB product-listing page: a ~3 KB head, then cards until the size is reached."""
    parts = [
        HEAD,
        b'<body>\n  <header><nav><a href="/" aria-current="page">Home</a></nav>'
        b"</header>\n  <main>\n",
    ]
    total, i = sum(map(len, parts)), 0
    while total < size - 40:
        card = CARD % ((i, 100 + i % 50) + (i,) * 3 + (i, i, i, 150 + i % 50, 90 + i % 50, i))
        parts.append(card)
        total += len(card)
        i += 1
    parts.append(b"  </main>\n</body>\n</html>\n")
    return b"".join(parts)


def interleaved(
    fns: dict[str, Callable[[], object]], number: int, repeat: int
) -> dict[str, list[float]]:
    """Seconds per call of each function, per round; rounds alternate between the functions
    so that machine load and allocator state hit them alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(number):
                fn()
            times[name].append((time.perf_counter() - start) / number)
    return times


def main() -> int:
    page = build_page()
    k = find_head_insertion_point(page)
    assert k is not None
    head_end = page.index(b"\n</head>\n") + len(b"\n</head>")
    print(f"page: {len(page):,} bytes, head: {head_end:,} bytes, insertion offset {k}")
    assert inject_head(page, SNIPPET) == page[:k] + SNIPPET + page[k:]

    try:
        import lxml  # noqa: F401

        parser = "lxml"
    except ImportError:
        parser = "html.parser"
    from bs4 import BeautifulSoup

    def with_bs4() -> bytes:
        soup = BeautifulSoup(page, parser)
        link = soup.new_tag("link", rel="manifest", href="/manifest.json")
        assert soup.head is not None
        soup.head.insert(0, link)
        return soup.encode()

    fast = interleaved(
        {
            "ours": lambda: inject_head(page, SNIPPET),
            "scan": lambda: find_head_insertion_point(page, snippet=SNIPPET),
            "bare": lambda: page[:k] + SNIPPET + page[k:],
        },
        number=1000,
        repeat=15,
    )
    slow = interleaved({"bs4": with_bs4}, number=2, repeat=5)
    median = {name: statistics.median(t) for name, t in (fast | slow).items()}
    best = {name: min(t) for name, t in (fast | slow).items()}

    labels = {
        "ours": "inject_head (ours)",
        "scan": "  of which the scan (find_head_insertion_point)",
        "bare": "bare splice body[:k] + snippet + body[k:]",
        "bs4": f"BeautifulSoup({parser}) parse + insert + encode",
    }
    print("per call, median of rounds (best round):")
    for name, label in labels.items():
        print(
            f"  {label:<48} {median[name] * 1e6:10.1f} us ({best[name] * 1e6:9.1f} us)"
            f" {1 / median[name]:11,.0f}/s"
        )

    speedup = median["bs4"] / median["ours"]
    overhead = median["ours"] / median["bare"]
    print(f"ours vs BeautifulSoup: {speedup:,.0f}x faster (target >= 1000x)")
    print(
        f"ours / bare splice: {overhead:.2f}x (target <= 3x; best rounds: "
        f"{best['ours'] / best['bare']:.2f}x)"
    )
    ok_speed, ok_overhead = speedup >= 1000, overhead <= 3
    print(f"{'PASS' if ok_speed else 'FAIL'}: >= 1000x faster than BeautifulSoup")
    print(f"{'PASS' if ok_overhead else 'FAIL'}: <= 3x the bare splice")
    return 0 if ok_speed and ok_overhead else 1


if __name__ == "__main__":
    raise SystemExit(main())
