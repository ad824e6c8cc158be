"""Who holds a host lease: a killed holder is seen as gone even while it is a zombie (PID 1 of a container may
never reap it), so its lease and its crawl run are taken over at once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from crawlers.hostlease import holder_is_dead, process_alive


def test_a_zombie_is_not_alive() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # not reaped yet: a zombie until wait()
        with open(f"/proc/{child.pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.01)
    try:
        assert not process_alive(child.pid)
    finally:
        child.wait()
    assert not process_alive(child.pid)
    assert process_alive(os.getpid())


def test_only_a_dead_holder_on_this_machine_is_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    here = socket.gethostname()
    assert holder_is_dead(f"{here}/{child.pid}/abcd")
    assert not holder_is_dead(f"{here}/{os.getpid()}/abcd")  # ourselves
    assert not holder_is_dead(f"another-machine/{child.pid}/abcd")  # cannot tell: the lease expires instead
    assert not holder_is_dead("garbage")
