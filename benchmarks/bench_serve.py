"""Asset serving under gunicorn: our /serviceworker.js vs a bare Flask route.

    bash .ci/setup --bench && .venv/bin/python benchmarks/bench_serve.py

Starts gunicorn (2 sync workers) on 127.0.0.1 with benchmarks/serve_app.py and drives it
with wrk from a second process, alternating the two routes over several rounds so both see
the same machine load; prints requests per second and the ratio ours / bare (target >= 0.9).
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"server at {url} did not start")


def wrk(url: str, seconds: int, connections: int) -> float:
    out = subprocess.run(["wrk", "-t", "1", "-c", str(connections), "-d", f"{seconds}s", url],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    if not m:
        raise SystemExit(f"could not read wrk output:\n{out}")
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} error responses")
    return float(m.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is not installed: run `bash .ci/setup --bench`", file=sys.stderr)
        return 2
    port = free_port()
    gunicorn = [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}",
                "--log-level", "warning", "benchmarks.serve_app:create_app()"]
    server = subprocess.Popen(gunicorn, cwd=ROOT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_up(base + "/serviceworker.js")
        wrk(base + "/serviceworker.js", 1, args.connections)  # warm up both workers
        ours, bare = [], []
        for _ in range(args.rounds):
            bare.append(wrk(base + "/bare.js", args.seconds, args.connections))
            ours.append(wrk(base + "/serviceworker.js", args.seconds, args.connections))
        o, b = statistics.median(ours), statistics.median(bare)
        ratio = o / b
        print(f"gunicorn -w 2, wrk -c {args.connections}, {args.rounds} rounds x "
              f"{args.seconds}s each, medians:")
        print(f"  bare route      {b:10.0f} req/s")
        print(f"  /serviceworker.js {o:8.0f} req/s")
        print(f"  ratio ours/bare {ratio:10.2f}   target >= 0.90   "
              f"{'PASS' if ratio >= 0.9 else 'FAIL'}")
        return 0 if ratio >= 0.9 else 1
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    sys.exit(main())
