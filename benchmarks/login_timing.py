"""T21 / ASVS 6.3.8: does the login time tell whether an account exists?

Median time of `check_login` for an existing account with a wrong password vs an unknown e-mail address, over
200 trials each (the target: the medians differ by at most 10 ms). Run: `python benchmarks/login_timing.py`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from indexer.config import Settings
from indexer.store import Store
from search_app.auth.accounts import check_login, create_user


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings.from_env(data_dir=Path(directory), database_url=f"sqlite:///{directory}/bench.db")
        store = Store.from_settings(settings)
        store.migrate()
        with store.session() as db:
            create_user(db, email="known@example.jp", display_name="bench", role="citizen",
                        password="みなと市の図書館は駅の北口")

        def timed(email: str) -> float:
            start = time.perf_counter()
            check_login(store, email, "まちがった合言葉です")
            return (time.perf_counter() - start) * 1000

        known, unknown = [], []
        for _ in range(args.trials):  # interleaved, so machine load affects both alike
            known.append(timed("known@example.jp"))
            unknown.append(timed("nobody@example.jp"))
        store.dispose()
    k, u = statistics.median(known), statistics.median(unknown)
    print(f"login, existing account (wrong password): median {k:.1f} ms over {args.trials}")
    print(f"login, unknown account:                  median {u:.1f} ms over {args.trials}")
    print(f"difference of medians: {abs(k - u):.1f} ms (target ≤ 10 ms)")


if __name__ == "__main__":
    main()
