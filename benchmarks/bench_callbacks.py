"""Subscription callbacks per second vs a bare JSON echo route, on the same gunicorn.

Run from the repository root (``bash .ci/setup --bench`` installs wrk)::

    .venv/bin/python benchmarks/bench_callbacks.py              # 5 rounds of 4 s per route
    .venv/bin/python benchmarks/bench_callbacks.py --quick      # 1 round of 3 s
    .venv/bin/python benchmarks/bench_callbacks.py --threads    # Python load generator
    .venv/bin/python benchmarks/bench_callbacks.py --owner-changes 0 --worker-threads 4

One gunicorn (``tests.apps:server_app()``, 2 worker processes; gthread with 1 thread each
by default, i.e. gunicorn's sync model plus keep-alive) per database: SQLite (the default
store, a file in a temporary instance folder) then PostgreSQL (a database created for the
run on 127.0.0.1:5432). The bodies are 10,000 real ``PushSubscription.toJSON()`` posts
(real P-256 keys), half with a signed user token, all with an anonymous id.

1. **First posts** (informational): 64 Python threads post every body once, so every
   callback inserts a row, with the ``source`` the browser client gives a subscription it
   has just made (which the endpoint writes without reading first); then the same bodies
   to the echo route, for the ratio.
2. **Re-sync mix** (the target): what steady traffic looks like, every page load of a
   subscribed browser re-posting its subscription. A loopback load generator (wrk with a
   Lua script when installed, else 64 Python threads; 64 keep-alive connections) cycles
   through the bodies: 90% are unchanged refreshes, 10% (``--owner-changes``) move a
   subscription to another user (a write each time).
   ``POST /bench/echo`` gets the same bodies, parsed and sent back by a bare Flask route.

Between the two, the database is settled (PostgreSQL: ``VACUUM ANALYZE`` and a checkpoint;
SQLite: a WAL checkpoint and ``ANALYZE``): the steady state is a table that autovacuum
keeps up with, not 10,000 rows inserted a second ago, whose first autovacuum would
otherwise land in one of the measured rounds and take a core from it.

Echo and callbacks are measured alternately, round by round, in one run (the machines are
shared and noisy); the ratio is the median of the per-round ratios. Target: callbacks at
least 0.5x the echo route's rate in the re-sync mix. Prints rates, ratios and PASS/FAIL.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.apps import DB_ENV, INSTANCE_ENV, SECRET_ENV  # noqa: E402
from tests.loadgen import (  # noqa: E402
    API,
    Gunicorn,
    KeepAliveClient,
    key_pool,
    random_salt,
    subscription_json,
)
from webpush_kit.identity import UserTokens  # noqa: E402

TARGET = 0.5
CONNECTIONS = 64
SECRET = "bench-secret"

LUA = r"""
local bodies = {}
for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
local counter = 0
init = function(args) counter = math.random(#bodies) end
local headers = { ["Content-Type"] = "application/json", ["Origin"] = "%(origin)s" }
request = function()
  counter = counter + 1
  local body = bodies[(counter %% #bodies) + 1]
  return wrk.format("POST", "%(path)s", headers, body)
end
"""


def make_bodies(n: int, owner_changes: float = 0.1) -> list[str]:
    """``n`` callback bodies: 90% stable subscriptions (half signed in, all with an
    anonymous id), 10% "flapping" endpoints that appear twice, under two users, so every
    post of one moves the subscription to another owner (a write each time)."""
    pool = key_pool(300)
    tokens = UserTokens(SECRET, 3600)
    salt = random_salt()
    flapping = int(n * owner_changes / 2)
    stable = n - 2 * flapping
    out = []
    for i in range(stable):
        body: dict[str, object] = {
            "subscription": subscription_json(i, salt, pool),
            "anonymous_id": f"anon-{salt}-{i}",
            "source": "resync",
        }
        if i % 2 == 0:
            body["user_token"] = tokens.sign(f"user-{i % 500}")
        out.append(json.dumps(body))
    for owner in ("a", "b"):
        for j in range(flapping):
            i = stable + j
            out.append(json.dumps({
                "subscription": subscription_json(i, salt, pool),
                "anonymous_id": f"anon-{salt}-{i}-{owner}",
                "user_token": tokens.sign(f"flap-{owner}-{j}"),
                "source": "resync",
            }))
    # Spread the owner changes through the list: each wrk connection walks it in order from
    # a random start, so a block of them would make some rounds nearly all writes and others
    # none. Each body still comes once per cycle, so every flapping post moves the owner.
    random.Random(20261203).shuffle(out)
    return out


def first_posts(bodies: list[str]) -> list[str]:
    """The bodies as first posts: the source the client gives a subscription the browser
    has just made (MoEngage's HARD_ASK_ALLOWED, or the self-hosted subscribe())."""
    sources = ("moengage", "self-hosted")
    return [json.dumps({**json.loads(b), "source": sources[i % 2]})
            for i, b in enumerate(bodies)]


def run_wrk(url: str, path: str, bodies_file: Path, seconds: float) -> tuple[float, int]:
    lua = bodies_file.with_suffix(f".{path.strip('/').replace('/', '_')}.lua")
    lua.write_text(LUA % {"bodies": bodies_file, "origin": url, "path": path})
    out = subprocess.run(
        ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{round(seconds)}s", "-s", str(lua), url],
        capture_output=True, text=True, check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, int(m.group(1)) if m else 0


def run_threads(
    url: str, path: str, bodies: list[str], seconds: float | None
) -> tuple[float, int]:
    """64 threads over keep-alive connections; for ``seconds``, or (None) each body once."""
    port = int(url.rsplit(":", 1)[1])
    stop = time.monotonic() + (seconds or 1e9)
    counts = [0] * CONNECTIONS
    bad = [0] * CONNECTIONS

    def worker(k: int) -> None:
        client = KeepAliveClient(port)
        i = k
        while time.monotonic() < stop and (seconds is not None or i < len(bodies)):
            status, _ = client.post(path, bodies[i % len(bodies)].encode())
            counts[k] += 1
            bad[k] += status >= 300
            i += CONNECTIONS
        client.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(CONNECTIONS)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - start), sum(bad)


def settle(env: dict[str, str]) -> None:
    """What autovacuum (PostgreSQL) or a checkpoint (SQLite WAL) does in the background."""
    import sqlalchemy as sa

    if DB_ENV in env:
        engine = sa.create_engine(env[DB_ENV], isolation_level="AUTOCOMMIT")
        statements = ["VACUUM ANALYZE", "CHECKPOINT"]
    else:
        path = Path(env[INSTANCE_ENV]) / "webpush_kit.sqlite3"
        engine = sa.create_engine(f"sqlite:///{path}")
        statements = ["PRAGMA wal_checkpoint(TRUNCATE)", "ANALYZE"]
    with engine.connect() as conn:
        for sql in statements:
            conn.exec_driver_sql(sql)
    engine.dispose()


def bench(name: str, env: dict[str, str], bodies: list[str], bodies_file: Path, rounds: int,
          seconds: float, use_wrk: bool, threads: int) -> bool:
    def run(url: str, path: str) -> tuple[float, int]:
        if use_wrk:
            return run_wrk(url, path, bodies_file, seconds)
        return run_threads(url, path, bodies, seconds)

    with Gunicorn(env, threads=threads) as server:
        run_threads(server.url, "/bench/echo", bodies[:2000], None)  # warm up
        # 1. First sight of every subscription: all inserts (Python threads, each body once),
        # posted as the browser posts a subscription it has just made.
        fresh = first_posts(bodies)
        echo_once, bad = run_threads(server.url, "/bench/echo", fresh, None)
        insert, bad_insert = run_threads(server.url, API + "/subscription", fresh, None)
        failures = bad + bad_insert
        settle(env)
        # 2. The steady state: every page load re-syncs (90% unchanged, 10% new owner).
        ratios, echo_rates, sub_rates = [], [], []
        for _ in range(rounds):
            echo, bad_echo = run(server.url, "/bench/echo")
            sub, bad_sub = run(server.url, API + "/subscription")
            failures += bad_echo + bad_sub
            echo_rates.append(echo)
            sub_rates.append(sub)
            ratios.append(sub / echo)
        errors = server.errors()
    ratio = statistics.median(ratios)
    ok = ratio >= TARGET and failures == 0
    print(f"{name}:")
    print(f"  first posts (all inserts, Python threads): echo {echo_once:7.0f} req/s  "
          f"subscription {insert:7.0f} req/s  ratio {insert / echo_once:.2f} (not the target)")
    print(f"  re-sync mix ({'wrk' if use_wrk else 'threads'}): echo "
          f"{statistics.median(echo_rates):7.0f} req/s  subscription "
          f"{statistics.median(sub_rates):7.0f} req/s  ratio {ratio:.2f} "
          f"(rounds {', '.join(f'{r:.2f}' for r in ratios)})")
    print(f"  non-2xx responses: {failures}   {'PASS' if ok else 'FAIL'} "
          f"(target: re-sync ratio >= {TARGET})")
    if failures and errors.strip():
        print(errors[-3000:])
    return ok


def postgres_url() -> tuple[str, Callable[[], None]]:
    sys.path.insert(0, str(ROOT / "tests"))
    from tests.dbs import _pg_connect, ensure_postgres

    user = ensure_postgres()
    name = f"webpush_kit_bench_{os.getpid()}"
    with _pg_connect(user) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        with _pg_connect(user) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    return f"postgresql+psycopg://{user}@127.0.0.1:5432/{name}", drop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round of 3 s per route")
    parser.add_argument("--threads", action="store_true",
                        help="use the Python load generator even when wrk is installed")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument("--worker-threads", type=int, default=1, metavar="N",
                        help="gthread threads per gunicorn worker (default 1: gunicorn's "
                             "sync model, plus keep-alive)")
    parser.add_argument("--owner-changes", type=float, default=0.1, metavar="FRACTION",
                        help="share of re-sync posts that move a subscription to another "
                             "user (default 0.1)")
    args = parser.parse_args()
    rounds, seconds = (1, 3.0) if args.quick else (5, 4.0)
    use_wrk = shutil.which("wrk") is not None and not args.threads
    print(f"load generator: {'wrk' if use_wrk else 'Python threads'}, {CONNECTIONS} "
          f"connections, {rounds} round(s) of {seconds:.0f} s per route; gunicorn 2 workers "
          f"(gthread x{args.worker_threads}); {os.cpu_count()} CPUs")
    bodies = make_bodies(10_000, args.owner_changes)
    ok = True
    with tempfile.TemporaryDirectory(prefix="bench-callbacks-") as tmp:
        bodies_file = Path(tmp) / "bodies.jsonl"
        bodies_file.write_text("\n".join(bodies) + "\n")
        base = {SECRET_ENV: SECRET}
        if args.only in (None, "sqlite"):
            instance = Path(tmp) / "instance-sqlite"
            env = {**base, INSTANCE_ENV: str(instance)}
            ok &= bench("SQLite", env, bodies, bodies_file, rounds, seconds, use_wrk,
                        args.worker_threads)
        if args.only in (None, "postgresql"):
            url, drop = postgres_url()
            try:
                env = {**base, DB_ENV: url, INSTANCE_ENV: str(Path(tmp) / "instance-pg")}
                ok &= bench("PostgreSQL", env, bodies, bodies_file, rounds, seconds, use_wrk,
                        args.worker_threads)
            finally:
                drop()
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
