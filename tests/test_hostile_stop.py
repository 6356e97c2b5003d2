"""Servers started by the tests stop whatever they do: the escalation of tests/servers.py.

A "server" here ignores SIGINT and SIGTERM and has a child in its process group that does
too (what a wedged daemon, or one started as a background job, looks like): the fixtures'
stop must still leave nothing running.
"""
import signal
import subprocess
import sys
import time

from servers import stop_process_group

STUBBORN = """
import os, signal, subprocess, sys, time
for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, '-c', 'import signal, time\\n'
                          'signal.signal(signal.SIGTERM, signal.SIG_IGN)\\ntime.sleep(3600)'])
print(child.pid, flush=True)
time.sleep(3600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_server_that_ignores_sigint_and_sigterm_is_killed_with_its_process_group():
    proc = subprocess.Popen([sys.executable, "-c", STUBBORN], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        child = int(proc.stdout.readline())
        assert _alive(proc.pid) and _alive(child)
        start = time.monotonic()
        stop_process_group(proc, signal.SIGINT, grace=2)
        assert proc.returncode == -signal.SIGKILL
        for _ in range(50):  # the child is reparented and reaped by init once killed
            if not _alive(child):
                break
            time.sleep(0.1)
        assert not _alive(child), "the server's child survived"
        assert time.monotonic() - start < 20
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
