"""Trusted parent inside the sandbox: starts every run of the graded code and measures its memory.

Started once per submission by :class:`autograder.engine.supervisor.SandboxLauncher` as the sandbox's
first program (``bwrap --unshare-pid``, under the ``prlimit`` limits, as root when grading
runs as root)::

    python reaper.py REPORT_FD CONTROL_FD HOME [--uid UID]

It imports torch and :mod:`autograder.engine.runner` once (trusted code from the read-only
environment, before any submission code exists in the sandbox), says ``ready`` on
``REPORT_FD``, then serves the grader's lines on ``CONTROL_FD``:

- ``run JOB_DIR OUT_DIR DEVICES``: fork a child that drops to ``UID`` (no groups, no
  capabilities, no new privileges), enters ``HOME`` and runs ``runner.main`` -- the
  submission's code and the job's calls; answer ``done STATUS PEAK_KIB``
  when it has ended (STATUS: exit code, or minus the signal that killed it). DEVICES names
  the devices of the job's calls (``cpu,meta``): before the first run on a device in
  :data:`PRELOAD`, this process imports what that device's first use imports;
- ``kill``: end the current run now (the grader's deadline passed).

Forking from a process that already imported torch saves each run the interpreter and
torch start-up (seconds), while every run still starts from the same clean state.

Why the memory is measured here, and why it cannot be forged (the CPU memory checks of
the hidden suites depend on it):

- ``wait4`` on the bubblewrap process, outside, does not see the sandboxed program's memory,
  and cgroups cannot be relied on (this project's machines have cgroup v1, a read-only
  cgroup v2, or none in a container).
- ``ru_maxrss`` of a reaped child is its peak resident memory (the kernel's high-water
  mark, kept across ``exec``), including every descendant it reaped itself. As a *child
  subreaper*, this process also inherits every orphaned descendant, so a submission that
  forks and never waits cannot hide a process; when a run's main child has exited, whatever
  is still running in the sandbox is killed and reaped too. PEAK_KIB is the largest peak of
  any process of the run (the maximum, not the sum: concurrent processes count one by one).
- The report leaves through a pipe the graded code does not inherit; this process is root
  (the code runs as ``UID``) or, when grading does not run as root, non-dumpable, so the
  code can neither ptrace it nor open its file descriptors through /proc. The one kernel
  interface that resets a high-water mark, ``/proc/PID/clear_refs``, is unwritable: the
  sandbox mounts /proc read-only (and a writable procfs cannot be mounted from inside).
- If this process dies, the report is lost and the calls fail (fail closed).

What it does not defend against: a submission that deliberately wastes memory in the small
*baseline* call to hide the growth of the big one (the checks compare the two). That takes
intent, not an honest O(T^2) implementation, and shows in the code.
"""
from __future__ import annotations

import ctypes
import os
import select
import signal
import sys

# The protocol's words, one line each (autograder.engine.supervisor speaks the other side): this process
# says READY, then DONE STATUS PEAK_KIB after each run; the grader says RUN JOB_DIR OUT_DIR DEVICES or KILL.
READY, RUN, DONE, KILL = "ready", "run", "done", "kill"
DEVICE_SEPARATOR = ","
# What a device's first use imports, in every run that uses it (seconds of CPU): imported here
# once, before the first run on that device, and inherited by every later run. Only when a run
# needs it: a suite without calls on "meta" (the hidden suites' "another device" checks: its ops
# import torch._dynamo and sympy) does not pay for it. The first such run's load deadline
# (supervisor.LOAD_TIMEOUT) includes the import, about a second of it.
PRELOAD = {"meta": ("torch._decomp", "torch._dynamo", "torch._refs")}

PR_SET_DUMPABLE = 4
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_SET_CHILD_SUBREAPER = 36
LINUX_CAPABILITY_VERSION_3 = 0x20080522
_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> int:
    return _libc.prctl(option, value, 0, 0, 0)


def _require(ok: bool, what: str) -> None:
    if not ok:
        raise OSError(ctypes.get_errno(), f"{what} failed")


def drop_privileges(uid: int) -> None:
    """Become ``uid`` with no supplementary groups, no capabilities (bounding and inheritable
    sets cleared too) and no way to gain privileges again -- what ``setpriv --reuid=UID
    --regid=UID --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs`` does."""
    cap = 0
    while _prctl(PR_CAPBSET_DROP, cap) == 0:  # EINVAL past the kernel's last capability
        cap += 1
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)  # from root: permitted, effective and ambient sets are emptied
    header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
    _require(_libc.capset(header, (ctypes.c_uint32 * 6)()) == 0, "capset (clearing inheritable)")
    _require(_prctl(PR_SET_NO_NEW_PRIVS, 1) == 0, "PR_SET_NO_NEW_PRIVS")
    with open("/proc/self/status") as status:
        fields = dict(line.split(":", 1) for line in status if ":" in line)
    caps = [int(fields[f].strip(), 16) for f in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")]
    if any(caps) or os.getuid() != uid or fields["NoNewPrivs"].strip() != "1":
        raise PermissionError(f"privileges not dropped: uid {os.getuid()}, capabilities {caps}")


def in_fresh_pid_namespace() -> bool:
    """True when this is the first program of a new PID namespace (bwrap --unshare-pid starts
    it as PID 2, after bwrap's init), so ``kill(-1)`` reaches only the sandbox."""
    return os.getpid() == 2


class Lines:
    """Lines read from a raw file descriptor, without blocking longer than asked."""

    def __init__(self, fd: int):
        self.fd, self.buffer, self.closed = fd, b"", False

    def next(self, timeout: float | None) -> str | None:
        """The next line, None if none arrived within ``timeout`` s; "" once the pipe is closed."""
        while b"\n" not in self.buffer:
            if self.closed:
                return ""
            ready, _, _ = select.select([self.fd], [], [], timeout)
            if not ready:
                return None
            chunk = os.read(self.fd, 4096)
            if not chunk:
                self.closed = True
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return line.decode()


def run_once(job_dir: str, out_dir: str, home: str, uid: int | None, close: list[int],
             control: Lines) -> tuple[int, int]:
    """Fork the run, wait for it (ending it on ``kill``), kill and reap the rest of the sandbox.

    Returns (status, peak ru_maxrss in KiB over every process reaped).
    """
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            for fd in close:
                os.close(fd)
            os.chdir(home)
            if uid is not None:
                drop_privileges(uid)
            _prctl(PR_SET_DUMPABLE, 1)  # like any exec'd program: its own /proc entries are its own
            from autograder.engine import runner
            runner.main(job_dir, out_dir)
            code = 0
        finally:
            os._exit(code)
    peak, status = 0, None
    while status is None:
        line = control.next(0.05)
        if line in (KILL, ""):  # the deadline passed, or the grader is gone
            os.kill(pid, signal.SIGKILL)
        while True:
            try:
                reaped, wait_status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                reaped = 0
            if reaped == 0:
                break
            peak = max(peak, usage.ru_maxrss)
            if reaped == pid:
                status = os.waitstatus_to_exitcode(wait_status)
    try:  # this PID namespace only: every process of the sandbox but us and its init
        os.kill(-1, signal.SIGKILL)
    except ProcessLookupError:
        pass
    while True:
        try:
            _, _, usage = os.wait4(-1, 0)
        except ChildProcessError:
            break
        peak = max(peak, usage.ru_maxrss)
    return status, peak


def serve(report_fd: int, control_fd: int, home: str, uid: int | None) -> int:
    """Answer the grader's ``run``/``kill`` lines until it closes the control pipe."""
    import importlib

    import torch  # noqa: F401  (trusted imports every run shares, copy-on-write)
    from autograder.engine import runner  # noqa: F401

    control = Lines(control_fd)
    os.write(report_fd, f"{READY}\n".encode())
    while True:
        line = control.next(None)
        if not line:
            return 0
        words = line.split()
        if words[0] != RUN or len(words) != 4:
            continue
        for device in words[3].split(DEVICE_SEPARATOR):
            for module in PRELOAD.get(device, ()):
                importlib.import_module(module)  # once: imported modules are kept (no threads start)
        status, peak = run_once(words[1], words[2], home, uid, [report_fd, control_fd], control)
        os.write(report_fd, f"{DONE} {status} {peak}\n".encode())


def main(argv: list[str]) -> int:
    if len(argv) not in (3, 5) or (len(argv) == 5 and argv[3] != "--uid"):
        print("usage: reaper.py REPORT_FD CONTROL_FD HOME [--uid UID]", file=sys.stderr)
        return 2
    if not in_fresh_pid_namespace():
        print("reaper.py must run in its own PID namespace (bwrap --unshare-pid)", file=sys.stderr)
        return 2
    _require(_prctl(PR_SET_DUMPABLE, 0) == 0, "PR_SET_DUMPABLE")
    _require(_prctl(PR_SET_CHILD_SUBREAPER, 1) == 0, "PR_SET_CHILD_SUBREAPER")
    uid = int(argv[4]) if len(argv) == 5 else None
    return serve(int(argv[0]), int(argv[1]), argv[2], uid)


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Without the interpreter's teardown: every run is over and reaped, the answers went out by
    # os.write, and nothing is left to clean up here (the grader removes the sandbox's folders). With
    # torch imported the teardown took 0.6 s, and the grader waits for this process at every
    # submission's end (SandboxLauncher.close).
    os._exit(status)
