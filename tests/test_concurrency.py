"""Many browsers posting at once (issue 3, "Concurrency"), on SQLite and on PostgreSQL.

gunicorn (2 worker processes, 4 threads each) serves ``tests.apps:server_app()`` on
127.0.0.1; 64 client threads, each with its own keep-alive connection, post 10,000
subscriptions in four rounds separated by barriers, so that "the last poster" of every
endpoint is well defined:

1. 6,000 first posts of distinct endpoints (a third anonymous, the rest signed in);
2. 2,000 re-posts by another client: half identical, half moving to another user;
3. 20 "hot" endpoints posted by all 64 clients at the same moment, each as a different
   user (1,280 racing inserts and updates of the same rows);
4. the hot endpoints settled by one last poster each, and 700 endpoints taken over by an
   anonymous visitor with a new anonymous id (a shared profile).

Then: no 5xx (every answer 200 or 201), exactly one 201 per endpoint, as many rows as
distinct endpoints, and every row owned as the store's rule says for its last poster
(see ``webpush_kit.store``). Keys are real P-256 points from a pool of 300.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.apps import DB_ENV, INSTANCE_ENV, SECRET_ENV
from tests.loadgen import API, Gunicorn, KeepAliveClient, key_pool, subscription_json
from webpush_kit.identity import UserTokens
from webpush_kit.store import Store, subscriptions

pytestmark = pytest.mark.slow
pytest_plugins = ["tests.dbs"]

CLIENTS = 64
STABLE = 6000
HOT = 20
USERS = 200
SECRET = "concurrency-secret"

Post = tuple[int, str | None, str | None]  # endpoint index, user id, anonymous id


def plan() -> list[dict[int, list[Post]]]:
    """Per round, per client, the posts it makes, in order."""
    rounds: list[dict[int, list[Post]]] = [{k: [] for k in range(CLIENTS)} for _ in range(4)]
    for i in range(STABLE):
        user = None if i % 3 == 0 else f"user-{i % USERS}"
        rounds[0][i % CLIENTS].append((i, user, f"anon-{i}"))
    for n, i in enumerate(range(0, STABLE, 3)):
        if n % 2 == 0:
            post: Post = (i, None, f"anon-{i}")  # the same visitor again: unchanged
        else:
            post = (i, f"user-{(i * 7) % USERS}", f"anon-{i}")  # logged in: moves to a user
        rounds[1][(i + 1) % CLIENTS].append(post)
    rng = random.Random(7)
    for k in range(CLIENTS):
        hot = [(STABLE + h, f"racer-{k}", f"anon-racer-{k}") for h in range(HOT)]
        rng.shuffle(hot)
        rounds[2][k] = hot
    for h in range(HOT):
        rounds[3][h % CLIENTS].append((STABLE + h, f"final-{h}", f"anon-final-{h}"))
    for n, i in enumerate(range(1, STABLE, 8)):
        if n == 700:
            break
        rounds[3][(i + 5) % CLIENTS].append((i, None, f"anon-new-{i}"))
    assert sum(len(p) for r in rounds for p in r.values()) == 10_000
    return rounds


def expected_owners(rounds: list[dict[int, list[Post]]]) -> dict[int, tuple[Any, Any]]:
    """The store's rule, applied to each endpoint's posts in round order. Within round 3
    the order is unknown, but round 4 settles every hot endpoint with a signed-in post,
    which sets both ids whatever came before."""
    state: dict[int, tuple[Any, Any]] = {}
    for r, posts in enumerate(rounds):
        for client_posts in posts.values():
            for i, user, anon in client_posts:
                if r == 2:
                    state[i] = ("<racing>", "<racing>")
                    continue
                old_user, old_anon = state.get(i, (None, None))
                new_user = user if user else (old_user if anon and anon == old_anon else None)
                new_anon = anon if anon else (old_anon if user and user == old_user else None)
                state[i] = (new_user, new_anon)
    assert not any(v[0] == "<racing>" for v in state.values())
    return state


def run_clients(port: int, rounds: list[dict[int, list[Post]]]) -> tuple[Counter[int], int]:
    pool = key_pool(300)
    tokens = UserTokens(SECRET, 3600)
    token_cache: dict[str, str] = {}
    salt = f"c{time.monotonic_ns() % 10**8}"
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(CLIENTS)
    errors: list[BaseException] = []
    reconnects = [0]

    def body(post: Post) -> bytes:
        i, user, anon = post
        value: dict[str, Any] = {"subscription": subscription_json(i, salt, pool),
                                 "anonymous_id": anon, "source": "resync"}
        if user is not None:
            with lock:
                token = token_cache.get(user) or token_cache.setdefault(user, tokens.sign(user))
            value["user_token"] = token
        return json.dumps(value).encode()

    def client(k: int) -> None:
        http = KeepAliveClient(port)
        mine: Counter[int] = Counter()
        try:
            for r in rounds:
                payloads = [body(p) for p in r[k]]
                barrier.wait(timeout=120)
                for data in payloads:
                    status, _ = http.post(API + "/subscription", data)
                    mine[status] += 1
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            barrier.abort()
        finally:
            http.close()
            with lock:
                statuses.update(mine)
                reconnects[0] += http.reconnects

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return statuses, reconnects[0]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[dict[str, str],
                                                                             str]]:
    env = {SECRET_ENV: SECRET, INSTANCE_ENV: str(tmp_path / "instance")}
    if request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
        env[DB_ENV] = url
    else:
        # The default store: SQLite in the instance folder, shared by both workers.
        url = f"sqlite:///{tmp_path / 'instance' / 'webpush_kit.sqlite3'}"
    yield env, url


def test_64_clients_post_10000_subscriptions(backend: tuple[dict[str, str], str]) -> None:
    env, url = backend
    rounds = plan()
    expected = expected_owners(rounds)
    started = time.monotonic()
    with Gunicorn(env) as server:
        statuses, reconnects = run_clients(server.port, rounds)
        log = server.errors()
    elapsed = time.monotonic() - started

    assert sum(statuses.values()) == 10_000
    assert set(statuses) <= {200, 201}, (statuses, log[-3000:])
    if reconnects == 0:  # a retried post may have been the one that created its row
        assert statuses[201] == len(expected)
    store = Store(url)
    try:
        with store.engine.connect() as conn:
            got = conn.execute(sa.select(
                subscriptions.c.endpoint, subscriptions.c.user_id,
                subscriptions.c.anonymous_id, subscriptions.c.status)).all()
    finally:
        store.dispose()
    assert len(got) == len(expected) == STABLE + HOT
    by_index = {int(endpoint.split("-")[1].split(":")[0]): (user, anon, status)
                for endpoint, user, anon, status in got}
    wrong = {i: (by_index[i][:2], want) for i, want in expected.items()
             if by_index[i][:2] != want}
    assert not wrong, f"{len(wrong)} rows not owned by their last poster, e.g. " \
                      f"{list(wrong.items())[:5]}"
    assert {status for _, _, status in by_index.values()} == {"active"}
    assert "Traceback" not in log, log[-3000:]
    print(f"10,000 posts in {elapsed:.1f} s ({statuses}), {reconnects} reconnects")
