"""Trusted parent inside the sandbox: runs the graded program and reports its peak memory.

Usage (built by :meth:`autograder.sandbox.BwrapSandbox.wrap` with ``report_fd``)::

    python -I -S reaper.py REPORT_FD -- setpriv ... -- python -m autograder.runner ...

Why a reaper, and why this one (the CPU memory checks of the hidden suites depend on it):

- ``wait4`` on the bubblewrap process, outside, does not see the sandboxed program's memory
  (bubblewrap's own processes are what it reaps), and cgroups cannot be relied on: this
  project's machines have cgroup v1 or a read-only cgroup v2, containers often have none.
- So the measurement is made *inside* the sandbox by this process, which the kernel makes
  the parent of the graded program: ``ru_maxrss`` of a reaped child is its peak resident
  memory (the kernel's high-water mark, kept across ``exec``), including every descendant
  it reaped itself. As a *child subreaper*, this process also inherits every orphaned
  descendant, so a submission that forks and never waits cannot hide a process; when the
  graded program exits, whatever is still running is killed and reaped too. The report is
  the largest peak of any process in the sandbox (the maximum, not the sum: processes
  running concurrently are measured one by one).
- The submission cannot forge it: the report goes out through a pipe (``REPORT_FD``) that
  the graded program does not inherit; this process runs as root (the program as
  ``nobody``) or, when grading is not run as root, is made non-dumpable, so the program can
  neither ptrace it nor open its file descriptors through /proc. The one kernel interface
  that resets a high-water mark, ``/proc/PID/clear_refs``, is unwritable because the sandbox
  mounts /proc read-only (a fresh, writable procfs cannot be mounted from inside either).
- Killing this process loses the report, which fails the memory check (fail closed).

What it does not defend against: a submission that deliberately wastes memory in the small
*baseline* call to hide the growth of the big one (the checks compare the two). That takes
intent, not an honest O(T^2) implementation, and shows in the code.

Only the standard library, started with ``-I -S``: nothing of the submission's environment
is imported here. Exit status: the graded program's (128 + signal when it was killed).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}, {value}) failed")


def reap_all(main_pid: int) -> tuple[int, int]:
    """Wait for ``main_pid``, then kill and reap every other descendant.

    Returns (the largest ru_maxrss seen, in KiB; the main child's wait status).
    """
    peak, main_status = 0, None
    while True:
        try:
            pid, status, usage = os.wait4(-1, 0)
        except ChildProcessError:  # no children left
            break
        except InterruptedError:
            continue
        peak = max(peak, usage.ru_maxrss)
        if pid == main_pid:
            main_status = status
            try:  # only this PID namespace: every process of the sandbox but us and its init
                os.kill(-1, signal.SIGKILL)
            except ProcessLookupError:
                pass
    return peak, main_status


def in_fresh_pid_namespace() -> bool:
    """True when this is the first program of a new PID namespace (bwrap --unshare-pid starts
    it as PID 2, after bwrap's init), so ``kill(-1)`` reaches only the sandbox."""
    return os.getpid() == 2


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: reaper.py REPORT_FD -- COMMAND ...", file=sys.stderr)
        return 2
    if not in_fresh_pid_namespace():
        print("reaper.py must run in its own PID namespace (bwrap --unshare-pid)", file=sys.stderr)
        return 2
    report_fd, command = int(argv[0]), argv[2:]
    _prctl(PR_SET_DUMPABLE, 0)
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(report_fd)
            os.execvp(command[0], command)
        finally:
            os._exit(127)
    peak_kib, status = reap_all(pid)
    with os.fdopen(report_fd, "w") as report:
        report.write(f"peak_rss_kib {peak_kib}\n")
    return os.waitstatus_to_exitcode(status) if status is not None else 127


if __name__ == "__main__":
    code = main(sys.argv[1:])
    sys.exit(128 - code if code < 0 else code)
