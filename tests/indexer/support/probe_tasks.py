"""A task that does nothing, sent to one worker's own queue to see that it consumes (T26: the worker recovers
consumption after a TCP reset). Loaded into a test worker with `--include probe_tasks` (PYTHONPATH points here);
it is not part of the service. Its "succeeded" line in the worker's log is what the test waits for.
"""

from __future__ import annotations

from celery import shared_task


@shared_task(name="tests.probe")
def probe() -> None:
    return None
