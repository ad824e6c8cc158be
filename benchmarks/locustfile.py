"""T29 with Locust, as RELIABILITY.md names it: citizens over a search/detail/suggest mix, and one shop pushing
recall notices and timing each until the search finds it. For the nightly run at 200 users against staging (with
Elasticsearch); benchmarks/load_t29.py is the same load on this machine, with the workers' memory and pool.

Locust brings gevent and pins its own Flask, so it lives in a venv of its own, not the service's:

    python3 -m venv /tmp/locust && /tmp/locust/bin/pip install locust
    /tmp/locust/bin/locust -f benchmarks/locustfile.py --headless -u 200 -r 20 -t 10m \\
        --host https://staging.example.jp --csv t29        # add LOAD_SHOP_KEY=… for the freshness probe

The search URLs and typed prefixes are benchmarks/api_load.py's (stdlib only, so this file imports nothing of
the service). With LOAD_SHOP_KEY set (a shop's API key, issued on the admin page 店舗と API キー, /admin/shops),
one extra user pushes a notice every PUSH_EVERY seconds (default 5), polls the search for its model number and
reports the time as a request named "pushed → searchable" (T29: p99 <= 5 s), then retracts it. Locust's own
table gives p95/p99 and the failure rate (T29: p95 <= 300 ms, p99 <= 1 s, errors < 0.1 %).
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path
from urllib.parse import urlencode

from locust import HttpUser, between, constant, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.api_load import QUERIES, TYPED, probe_notice  # after the path: run from the checkout

FRESHNESS_GIVE_UP_S = 30.0
PUSH_EVERY_S = float(os.environ.get("PUSH_EVERY", "5"))


class Citizen(HttpUser):
    """Searches (60 %), opens a record found so far (25 %), or types into the box (15 %), then thinks."""

    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.ids: list[str] = []
        newest = self.client.get("/api/v1/search?size=50&sort=newest", name="/api/v1/search")
        if newest.ok:
            self.ids = [hit["id"] for hit in newest.json()["hits"]]

    @task(60)
    def search(self) -> None:
        response = self.client.get("/api/v1/search?" + urlencode(random.choice(QUERIES)), name="/api/v1/search")
        if response.ok:
            self.ids.extend(hit["id"] for hit in response.json()["hits"][:3])
            del self.ids[:-200]  # a bounded memory of what this citizen has seen

    @task(25)
    def detail(self) -> None:
        if self.ids:
            self.client.get(f"/api/v1/records/{random.choice(self.ids)}", name="/api/v1/records/[id]")

    @task(15)
    def suggest(self) -> None:
        self.client.get("/api/v1/suggest?" + urlencode({"q": random.choice(TYPED)}), name="/api/v1/suggest")


class NoticePusher(HttpUser):
    """One shop: push a recall notice, time it until the search finds it, retract it (only with LOAD_SHOP_KEY)."""

    fixed_count = 1
    wait_time = constant(PUSH_EVERY_S)
    key = os.environ.get("LOAD_SHOP_KEY", "")
    weight = 1 if key else 0  # without a key Locust never spawns it

    @task
    def push_and_find(self) -> None:
        model = f"LT29-{int(time.time() * 1000)}-{random.randrange(10_000):04d}"
        headers = {"Authorization": f"Bearer {self.key}"}
        notice = probe_notice(model)
        pushed = time.monotonic()
        created = self.client.post("/api/v1/notices", json=notice, headers=headers, name="/api/v1/notices")
        if created.status_code != 201:
            return
        try:
            while time.monotonic() - pushed < FRESHNESS_GIVE_UP_S:
                found = self.client.get(
                    "/api/v1/search?" + urlencode({"q": model, "kind": "notice"}), name="freshness poll"
                )
                if found.ok and found.json()["total"]:
                    self._report(time.monotonic() - pushed, None)
                    return
                time.sleep(0.05)
            self._report(FRESHNESS_GIVE_UP_S, RuntimeError(f"not found within {FRESHNESS_GIVE_UP_S:.0f} s"))
        finally:
            self.client.post(f"/api/v1/notices/load-{model}/retract", headers=headers, name="retract")

    def _report(self, seconds: float, exception: BaseException | None) -> None:
        self.environment.events.request.fire(
            request_type="T29", name="pushed → searchable", response_time=seconds * 1000,
            response_length=0, exception=exception, context={},
        )  # fmt: skip
