"""A task that kills its worker process every time it runs, for the poison-message test (T26 e).

Loaded into a test worker with `--include poison_tasks` (PYTHONPATH points here); it is not part of the service.
Each run appends a line to $POISON_LOG before dying, so the test can count deliveries.
"""

from __future__ import annotations

import os

from celery import shared_task


@shared_task(name="tests.poison")
def poison() -> None:
    with open(os.environ["POISON_LOG"], "a", encoding="utf-8") as log:
        log.write("ran\n")
    os._exit(1)  # as an OOM kill would: no exception, no acknowledgement
