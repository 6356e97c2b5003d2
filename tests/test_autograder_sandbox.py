"""The sandbox and the runner's deadlines, checked by running real confined processes."""
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
from autograder.checks import Call  # noqa: E402
from autograder.engine.supervisor import LOAD_TIMEOUT, launcher_for, run_calls  # noqa: E402
from autograder.engine.sandbox import BwrapSandbox, Limits  # noqa: E402

PROBE = """
import os, socket
print(os.path.exists('{root}/solutions'), os.path.exists('{root}/autograder/suites'), os.path.exists('{root}/gradebook.db'))
try:
    socket.create_connection(('1.1.1.1', 53), timeout=2); print('net')
except OSError:
    print('nonet')
for p in ['{root}/src/evil.py', '/usr/evil']:
    try:
        open(p, 'w'); print('wrote', p)
    except OSError:
        pass
open('mine.txt', 'w').write('ok'); print('own dir ok')
"""


def test_sandbox_hides_course_files_and_network(tmp_path):
    out = subprocess.run(BwrapSandbox().wrap([sys.executable, "-c", PROBE.format(root=ROOT)], tmp_path),
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.split("\n")[:2] == ["False False False", "nonet"], out
    assert "wrote" not in out.stdout and "own dir ok" in out.stdout


def test_memory_limit_applies(tmp_path):
    sandbox = BwrapSandbox(Limits(memory_bytes=2**30))
    out = subprocess.run(sandbox.wrap([sys.executable, "-c", "b = bytearray(3 * 2**30)"], tmp_path),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "MemoryError" in out.stderr


def test_call_timeout_and_recovery():
    source = "def spin(x):\n    while True:\n        pass\n\ndef double(x):\n    return 2 * x\n"
    start = time.monotonic()
    outs = run_calls(source, [Call("spin", [torch.ones(1)], timeout=2), Call("double", [torch.ones(2)], timeout=20)],
                     sandbox=BwrapSandbox())
    assert not outs[0].ok and "timed out" in outs[0].error
    assert outs[1].ok and torch.equal(outs[1].output["tensor"], torch.full((2,), 2.0))
    assert time.monotonic() - start < 60


def test_infinite_loop_at_top_level_fails_every_call_once(monkeypatch):
    """Timed from the moment the sandbox is up (its trusted parent's torch import is not the
    submission's time): one load deadline for all three calls, not one each."""
    monkeypatch.setattr("autograder.engine.supervisor.LOAD_TIMEOUT", 8.0)
    launcher = launcher_for(BwrapSandbox())
    try:
        launcher._ensure_started()
        start = time.monotonic()
        outs = run_calls("while True:\n    pass\n", [Call("f", [1], timeout=5)] * 3, launcher=launcher)
        elapsed = time.monotonic() - start
    finally:
        launcher.close()
    assert all(not o.ok and "did not finish" in o.error for o in outs)
    assert 8.0 <= elapsed < 8.0 + 5


LEAVES = """
import os

def leave(x):               # what one submission leaves: files in its home, /tmp and /dev/shm
    for path in ('left.txt', '/tmp/left.txt', '/dev/shm/left.txt'):
        open(path, 'w').write('left')
    return x

def hang(x):
    while True:
        pass
"""
FINDS = """
import os

def find(x):                # what the next submission finds; hang() here returns
    return [os.path.exists(p) for p in ('left.txt', '/tmp/left.txt', '/dev/shm/left.txt')]

def hang(x):
    return x + 1

def shown(path):            # a file of a read-only mount below /tmp
    return len(open(path).read())
"""


def test_the_next_submission_in_a_kept_sandbox_starts_afresh(tmp_path):
    """selfcheck's rows share a sandbox (SandboxLauncher.next_submission): the next submission
    finds no file the last one wrote (home, /tmp, /dev/shm), and a function that timed out in the
    last one is run again in it (its stop is forgotten); the trusted parent is the same process.
    What is mounted below the sandbox's /tmp stays mounted (a fresh clone under /tmp, as CI has
    it: its code and venv; here a data folder of this test's)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "shown.txt").write_text("still mounted")
    assert data.resolve().is_relative_to("/tmp"), data  # the case to prove: a mount point bwrap made in /tmp
    launcher = launcher_for(BwrapSandbox(extra_ro=[data.resolve()]))
    try:
        first = run_calls(LEAVES, [Call("leave", [1], timeout=30), Call("hang", [1], timeout=3)], launcher=launcher)
        parent = launcher.proc.pid
        assert first[0].ok and not first[1].ok and "timed out" in first[1].error, first
        assert launcher.stopped, "the hung function is not recorded as stopped: the check below would prove nothing"
        launcher.next_submission()
        second = run_calls(FINDS, [Call("find", [1], timeout=30), Call("hang", [torch.ones(1)], timeout=30),
                                   Call("shown", [str(data.resolve() / "shown.txt")], timeout=30)], launcher=launcher)
        assert launcher.proc.pid == parent
    finally:
        launcher.close()
    assert second[0].ok and [i["value"] for i in second[0].output["items"]] == [False, False, False], second[0]
    assert second[1].ok and torch.equal(second[1].output["tensor"], torch.full((1,), 2.0)), second[1]
    assert second[2].ok and second[2].output == {"kind": "scalar", "value": len("still mounted")}, second[2]


PRELOADED = """
import sys
LOADED_WITH_ME = "torch._dynamo" in sys.modules  # at the run's start: inherited from the trusted parent

def preloaded(x):
    return LOADED_WITH_ME
"""


def test_the_trusted_parent_imports_a_devices_modules_only_for_runs_on_it():
    """The meta device's first use imports torch._dynamo and sympy (a second of CPU): the trusted
    parent imports them once, before the first run with a call on "meta", so every later run
    inherits them -- and a suite without such calls (the fixture's) never pays for them."""
    launcher = launcher_for(BwrapSandbox())
    try:
        cpu_only = run_calls(PRELOADED, [Call("preloaded", [1], timeout=30)], launcher=launcher)
        launcher.next_submission()
        with_meta = run_calls(PRELOADED, [Call("preloaded", [1], timeout=30),
                                          Call("preloaded", [torch.ones(1)], device="meta", timeout=30)],
                              launcher=launcher)
    finally:
        launcher.close()
    assert cpu_only[0].ok and cpu_only[0].output == {"kind": "scalar", "value": False}, cpu_only[0]
    assert with_meta[0].ok and with_meta[0].output == {"kind": "scalar", "value": True}, with_meta[0]


MEMORY_PROBES = """
import os
import time
import torch

def small(x):
    return x + 1

def big(x):                 # 600 MiB, touched
    return x + torch.ones(600 * 2**20 // 4)[:1]

def orphan(x):              # the 600 MiB live in a child the function never waits for (it lives on)
    read, write = os.pipe()
    if os.fork() == 0:
        torch.ones(600 * 2**20 // 4)
        os.write(write, b"done")
        time.sleep(600)
    os.read(read, 4)
    return x + 1

def reset(x):               # the kernel's own way to reset a peak: /proc/self/clear_refs
    torch.ones(600 * 2**20 // 4)
    try:
        open('/proc/self/clear_refs', 'w').write('5')
    except OSError:
        pass
    return x + 1
"""


def test_peak_memory_of_a_sandboxed_call_is_measured_and_cannot_be_hidden():
    """The production measurement (autograder.engine.reaper): 600 MiB more show up as >= 500 MiB,
    also when they live in an orphaned child or after an attempt to reset the peak. The calls
    share one sandbox, as the calls of one submission do."""
    calls = [Call(fn, [torch.ones(1)], isolated=True) for fn in ("small", "big", "orphan", "reset")]
    launcher = launcher_for(BwrapSandbox())
    try:
        outcomes = [run_calls(MEMORY_PROBES, [call], launcher=launcher)[0] for call in calls]
    finally:
        launcher.close()
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    base, *others = [o.peak_rss_bytes for o in outcomes]
    assert base is not None and 50 * 2**20 < base < 2**30, base
    grown = {call.function: (peak - base) // 2**20 for call, peak in zip(calls[1:], others)}
    assert all(extra >= 500 for extra in grown.values()), grown


def test_the_reaper_refuses_to_run_outside_a_fresh_pid_namespace():
    out = subprocess.run([sys.executable, "-I", "-S", str(ROOT / "autograder" / "engine" / "reaper.py"), "1", "0", "/tmp"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "PID namespace" in out.stderr
