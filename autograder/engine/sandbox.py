"""Bubblewrap sandbox for everything a submission runs: the grading runner and the notebook kernel.

Inside the sandbox a process sees only the system (``/usr``, ``/etc``), the Python
installation, the project's virtual environment, ``src/`` (the public ``lec4`` library)
and the engine's ``runner.py`` (with the ``marker.py`` it imports) and ``reaper.py`` -- all
read-only -- plus its own working directory
and its scratch folders ``/tmp`` and ``/dev/shm``, the only writable places (see "Bounded
scratch space and host memory" below). ``solutions/``, the hidden-test suites, the gradebook and the other
students' folders are simply not there. There is no network (``--unshare-net``), its own
PID namespace (it cannot signal the grader), and resource limits set with ``prlimit``:
address space (memory), CPU seconds, processes/threads, size of any written file, open files.
``/proc`` is mounted read-only on the CPU (a process cannot reset its own peak-memory counter);
GPU sandboxes keep it writable, as CUDA needs, and judge memory by the CUDA allocator's peak.

Graded calls run under :meth:`BwrapSandbox.wrap_reaper`: the sandbox's program is then the
trusted :mod:`autograder.engine.reaper`, which starts each run of the submission's code as
``nobody`` and reports its peak memory (how, and why this cannot be forged: its docstring).

When the grader runs as root, the sandboxed program is started as an unprivileged user
(``nobody``) with no capabilities, so the limits apply and root-owned files stay read-only.

Bounded scratch space and host memory
-------------------------------------
One hostile submission must not fill the grading node's memory or the disk that holds the
gradebook. What bounds it, and why this way:

- **No tmpfs the code can write.** A tmpfs is host memory that RLIMIT_AS does not count, and
  bubblewrap 0.8 cannot size one (no ``--size``). So ``/tmp`` and ``/dev/shm`` are bound to
  folders inside the sandbox's working folder on disk (``.tmp``, ``.shm``), and bubblewrap's
  own root and ``/dev`` tmpfs are remounted read-only (when the grader is not root, the
  sandboxed user owns the folders bubblewrap creates there and could otherwise fill them:
  seen with a probe run as an unprivileged TA).
- **Scratch bytes** (:data:`SCRATCH_BYTES`, per assignment ``SCRATCH_BYTES`` in its public spec
  ``lec4.homework.<assignment>``): everything the code writes -- its folder, ``/tmp``,
  ``/dev/shm`` -- is measured from outside by :class:`ScratchWatch` (a thread of the trusted
  grader, every :data:`SCRATCH_POLL_S` s: allocated blocks of every entry, links not
  followed, at most :data:`SCRATCH_FILES` entries). Over the limit, the sandbox is killed and
  the run fails with "wrote N MiB of files ...; the limit is ..."; RLIMIT_FSIZE caps each file at
  the same size, so no single write outruns it. No run can reserve space faster than it writes
  it: a seccomp filter (:mod:`autograder.engine.syscall_filter`, the first program of every
  sandbox) refuses ``fallocate(2)``, which reserves GiB in milliseconds, and io_uring. Why
  not a quota, a loop-mounted image or a size-limited tmpfs: they need root (a TA may grade as
  an ordinary user), and a per-submission memory cgroup (which would charge tmpfs pages to the
  writer) needs a delegated cgroup, which this machine (cgroup v1) and many clusters do not give
  a user.
- **Host memory**: RLIMIT_AS (:data:`HOST_MEMORY_BYTES`) on the CPU. CUDA reserves huge virtual
  ranges, so GPU sandboxes have no RLIMIT_AS; they get RLIMIT_DATA (same value), which counts
  the writable private memory a process maps (malloc, torch's CPU tensors) but not CUDA's
  ``PROT_NONE`` reservations. CPU sandboxes get both.

What this does not cover: between two measurements a run can write at the disk's speed, so
the disk may briefly hold up to about ``SCRATCH_POLL_S`` x write speed more than the limit
(removed as soon as the sandbox is killed). RLIMIT_DATA and RLIMIT_AS are per process: a
submission that forks (up to ``processes``) can hold that much in each process at once until
its CPU time or deadline runs out (the reaper sees every process's peak, so its memory checks
fail, but nothing kills it earlier); a memory cgroup would bound the sum, where one can be had.
Memory the GPU driver pins for a process is not counted by RLIMIT_DATA, and whether CUDA
initialises under RLIMIT_DATA at :data:`HOST_MEMORY_BYTES` has not been measured on a GPU yet.
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from autograder import options

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "autograder" / "engine"
NOBODY = 65534
REAPER = ENGINE / "reaper.py"
SYSCALL_FILTER = ENGINE / "syscall_filter.py"  # run first in every sandbox: no fallocate
GiB = 2**30
MiB = 2**20
SCRATCH_BYTES = 512 * MiB  # the one default: all a submission's sandbox may write (folder, /tmp, /dev/shm)
SCRATCH_FILES = 20_000  # files and folders it may create there
SCRATCH_POLL_S = 0.2  # how often the grader measures it
HOST_MEMORY_BYTES = 8 * GiB  # the one default: RLIMIT_AS on the CPU, RLIMIT_DATA everywhere
SCRATCH_DIRS = {"/tmp": ".tmp", "/dev/shm": ".shm"}  # in the sandbox -> under its working folder


class SandboxUnavailable(RuntimeError):
    """bubblewrap (or prlimit/setpriv) is missing: grading refuses to run unconfined."""


@dataclass
class Limits:
    """Resource limits of one sandboxed process tree (``None`` = no limit).

    ``memory_bytes`` is RLIMIT_AS (virtual memory). CUDA reserves huge virtual ranges,
    so GPU grading leaves it unset (``Limits.for_device``); ``data_bytes`` (RLIMIT_DATA) is the
    host-memory cap every sandbox keeps (see the module docstring). ``scratch_bytes`` /
    ``scratch_files``: what the code may write in all (enforced by :class:`ScratchWatch`);
    each file is also capped at ``min(file_bytes, scratch_bytes)`` (RLIMIT_FSIZE).
    """

    memory_bytes: int | None = HOST_MEMORY_BYTES
    data_bytes: int | None = HOST_MEMORY_BYTES
    cpu_seconds: int | None = 600
    processes: int | None = 512  # threads count too (torch starts one per core)
    file_bytes: int | None = 256 * 2**20
    open_files: int | None = 1024
    scratch_bytes: int | None = SCRATCH_BYTES
    scratch_files: int | None = SCRATCH_FILES

    @classmethod
    def for_device(cls, device: str, **overrides) -> "Limits":
        limits = cls(**overrides)
        if device.startswith("cuda") and "memory_bytes" not in overrides:
            limits.memory_bytes = None
        return limits

    @classmethod
    def for_assignment(cls, assignment: str | None, device: str, **overrides) -> "Limits":
        """``for_device`` with the assignment's own ``SCRATCH_BYTES`` / ``HOST_MEMORY_BYTES``
        when its public spec ``lec4.homework.<assignment>`` sets them (explicit overrides win)."""
        if assignment:
            import importlib

            try:
                spec = importlib.import_module(f"lec4.homework.{assignment.replace('-', '_')}")
            except ModuleNotFoundError:
                spec = None
            if spec is not None and getattr(spec, "SCRATCH_BYTES", None) is not None:
                overrides.setdefault("scratch_bytes", int(spec.SCRATCH_BYTES))
            if spec is not None and getattr(spec, "HOST_MEMORY_BYTES", None) is not None:
                overrides.setdefault("data_bytes", int(spec.HOST_MEMORY_BYTES))
                if not device.startswith("cuda"):
                    overrides.setdefault("memory_bytes", int(spec.HOST_MEMORY_BYTES))
        return cls.for_device(device, **overrides)

    def prlimit_args(self) -> list[str]:
        fsize = self.file_bytes
        if self.scratch_bytes is not None:
            fsize = self.scratch_bytes if fsize is None else min(fsize, self.scratch_bytes)
        pairs = [("--as", self.memory_bytes), ("--data", self.data_bytes), ("--cpu", self.cpu_seconds),
                 ("--nproc", self.processes), ("--fsize", fsize), ("--nofile", self.open_files), ("--core", 0)]
        return [f"{flag}={value}" for flag, value in pairs if value is not None]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise SandboxUnavailable(f"{name} not found: install it (Debian: apt-get install "
                                 f"{'bubblewrap' if name == 'bwrap' else 'util-linux'}); "
                                 "grading never runs submissions unconfined")
    return path


class BwrapSandbox:
    """The :class:`autograder.engine.supervisor.Sandbox` used for grading (see module docstring).

    ``extra_ro``: more host paths to show read-only (e.g. a data folder the notebook reads).
    ``gpu``: also expose ``/dev/nvidia*`` and the driver's files so CUDA works inside.
    """

    def __init__(self, limits: Limits | None = None, extra_ro: list[Path] = (), gpu: bool = False):
        self.limits = limits or Limits()
        self.extra_ro = [Path(p) for p in extra_ro]
        self.gpu = gpu
        self.bwrap = _tool("bwrap")
        self.prlimit = _tool("prlimit")
        self.as_root = os.geteuid() == 0
        self.setpriv = _tool("setpriv") if self.as_root else None

    def readonly_paths(self) -> list[Path]:
        """Host paths visible (read-only) inside, at the same place."""
        paths = [Path("/usr"), Path("/etc"), Path(sys.base_prefix), Path(sys.prefix), ROOT / "src",
                 ROOT / "autograder" / "__init__.py", ENGINE / "__init__.py", ENGINE / "runner.py", ENGINE / "marker.py", REAPER, SYSCALL_FILTER,
                 *self.extra_ro]
        if self.gpu:
            paths += [Path(p) for p in ("/proc/driver/nvidia", "/sys") if Path(p).exists()]
        return [p for p in dict.fromkeys(paths) if p.exists()]

    def scratch_mount_points(self, workdir: Path) -> dict[str, tuple[str, ...]]:
        """``{folder name of SCRATCH_DIRS: its entries that hold mount points}``: the first part below
        ``/tmp`` (``/dev/shm``) of every path mounted under it -- the working folder itself, and the
        checkout or the venv when they lie under /tmp (a fresh clone in CI). bwrap made them in the
        scratch folder, which is mounted first; they must stay while the sandbox runs
        (:meth:`autograder.engine.supervisor.SandboxLauncher.next_submission` empties the rest)."""
        mounts = self.readonly_paths() + [Path(workdir).resolve()]
        return {name: tuple(sorted({p.relative_to(inside).parts[0] for p in mounts
                                    if p.is_relative_to(inside) and p != Path(inside)}))
                for inside, name in SCRATCH_DIRS.items()}

    def wrap(self, argv: list[str], workdir: Path) -> list[str]:
        """The command that runs ``argv`` confined, with ``workdir`` its only writable folder
        (``/tmp`` and ``/dev/shm`` are folders inside it: :data:`SCRATCH_DIRS`)."""
        workdir = Path(workdir).resolve()
        if self.as_root:
            os.chown(workdir, NOBODY, NOBODY)  # the unprivileged user must be able to write it
        return self._confined(workdir, workdir) + self._unprivileged() + list(argv)

    def watch(self, workdir: Path, on_exceed) -> "ScratchWatch":
        """A started :class:`ScratchWatch` of ``workdir`` with this sandbox's scratch limits."""
        return ScratchWatch(Path(workdir), self.limits.scratch_bytes, self.limits.scratch_files, on_exceed)

    def wrap_reaper(self, workdir: Path, home: Path, report_fd: int, control_fd: int) -> list[str]:
        """The command that runs :mod:`autograder.engine.reaper` confined, with ``workdir`` mounted
        writable (the grader's job folders, owned by the grader) and ``home`` inside it the
        graded code's own folder (owned by ``nobody`` when grading runs as root).
        ``report_fd``/``control_fd``: inherited pipe ends (pass them with ``pass_fds``)."""
        workdir, home = Path(workdir).resolve(), Path(home).resolve()
        if self.as_root:
            os.chown(home, NOBODY, NOBODY)
        uid = ["--uid", str(NOBODY)] if self.as_root else []
        return self._confined(workdir, home) + [sys.executable, "-s", str(REAPER), str(report_fd),
                                                str(control_fd), str(home), *uid]

    def _unprivileged(self) -> list[str]:
        """As root: become nobody, with no groups, capabilities or way back, before ``exec``."""
        if not self.as_root:
            return []
        return [self.setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]

    def _confined(self, workdir: Path, home: Path) -> list[str]:
        """bwrap + prlimit + the system-call filter, up to the program to run: ``workdir`` writable,
        ``home`` its HOME and cwd."""
        cmd = [self.bwrap, "--die-with-parent", "--new-session",
               "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
               "--proc", "/proc", "--dev", "/dev"]
        # No tmpfs the code can write (host memory no rlimit counts): /tmp and /dev/shm are folders
        # of the working folder on disk, measured with it (mounted first: the working folder may
        # itself lie under the host's /tmp); bwrap's own tmpfs (/, /dev) become read-only.
        for inside, name in SCRATCH_DIRS.items():
            folder = workdir / name
            folder.mkdir(mode=0o700, exist_ok=True)
            if self.as_root:
                os.chown(folder, NOBODY, NOBODY)
            cmd += ["--bind", str(folder), inside]
        cmd += ["--remount-ro", "/dev"]
        if not self.as_root:
            cmd.append("--unshare-user")
        for top in ("/bin", "/lib", "/lib64", "/sbin", "/lib32"):
            if os.path.islink(top):
                cmd += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                cmd += ["--ro-bind", top, top]
        mounts = self.readonly_paths() + [workdir]
        # Folders above the mount points, created traversable (bwrap makes them 0700 as root).
        parents = sorted({a for p in mounts for a in p.parents if a != Path("/")}, key=lambda a: len(a.parts))
        for folder in parents:
            if folder not in mounts:
                cmd += ["--perms", "0755", "--dir", str(folder)]
        for path in mounts[:-1]:
            cmd += ["--ro-bind", str(path), str(path)]
        if self.gpu:
            for dev in sorted(Path("/dev").glob("nvidia*")):
                cmd += ["--dev-bind", str(dev), str(dev)]
        cmd += ["--bind", str(workdir), str(workdir), "--remount-ro", "/"]
        if not self.gpu:
            # A read-only /proc breaks CUDA's initialisation (cudaGetDeviceCount: error 304, seen on
            # an H100 node), so GPU sandboxes keep it writable; their memory checks read the CUDA
            # allocator's peak, not the reaper's resident-set peak.
            cmd += ["--remount-ro", "/proc"]
        return cmd + [
            "--chdir", str(home),
            "--setenv", "HOME", str(home), "--setenv", "TMPDIR", "/tmp",
            "--setenv", "MPLCONFIGDIR", str(home / ".matplotlib"),
            "--setenv", "WANDB_MODE", "disabled", "--unsetenv", "AUTOGRADER_DB_URL",
            # torch caches (inductor, used even by some meta-device kernels) go to the writable
            # home: the host user's name in /tmp/torchinductor_<user> is not ours to create
            "--setenv", "TORCHINDUCTOR_CACHE_DIR", str(home / ".torchinductor"),
            "--setenv", "USER", "nobody" if self.as_root else options.user("student"),
            # ipykernel would poll the host PID, which does not exist in this PID namespace
            "--unsetenv", "JPY_PARENT_PID",
            "--", self.prlimit, *self.limits.prlimit_args(), "--",
            # a seccomp filter without fallocate (see autograder/engine/syscall_filter.py)
            sys.executable, "-S", "-I", str(SYSCALL_FILTER)]


def default_sandbox(device: str = "cpu", assignment: str | None = None, **limit_overrides) -> BwrapSandbox:
    """The sandbox grading uses for ``device`` (CPU limits, or GPU access without RLIMIT_AS),
    with ``assignment``'s own limits from its public spec (:meth:`Limits.for_assignment`)."""
    return BwrapSandbox(Limits.for_assignment(assignment, device, **limit_overrides), gpu=device.startswith("cuda"))


def scratch_usage(folder: Path, max_entries: int | None = None) -> tuple[int, int]:
    """(bytes allocated on disk, entries) of everything under ``folder``, links not followed;
    counting stops after ``max_entries`` + 1 entries. Entries that vanish meanwhile are skipped."""
    used, entries, stack = 0, 0, [str(folder)]
    while stack:
        try:
            it = os.scandir(stack.pop())
        except OSError:
            continue
        with it:
            for entry in it:
                entries += 1
                if max_entries is not None and entries > max_entries:
                    return used, entries
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue
                used += st.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return used, entries


class ScratchWatch:
    """Measures a sandbox's writable folder from outside, every :data:`SCRATCH_POLL_S` s, and
    calls ``on_exceed(message)`` once when it holds more than ``limit_bytes`` (or more than
    ``limit_files`` entries); ``message`` says what was written and what the limit is. The
    message stays in :attr:`exceeded`. :meth:`stop` ends the thread; :meth:`reset` clears
    the event (after the folder was emptied) so the next run is watched afresh."""

    def __init__(self, folder: Path, limit_bytes: int | None, limit_files: int | None, on_exceed,
                 interval: float | None = None):
        import threading

        self.folder, self.limit_bytes, self.limit_files = Path(folder), limit_bytes, limit_files
        self.on_exceed, self.interval = on_exceed, interval or SCRATCH_POLL_S
        self.exceeded: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="scratch-watch", daemon=True)
        if limit_bytes is not None or limit_files is not None:
            self._thread.start()

    def check(self) -> str | None:
        """Measure now; the message when over a limit (and call ``on_exceed`` the first time)."""
        if self.exceeded:
            return self.exceeded
        used, entries = scratch_usage(self.folder, self.limit_files)
        message = None
        if self.limit_bytes is not None and used > self.limit_bytes:
            message = (f"wrote {used / MiB:.0f} MiB of files (working folder, /tmp and /dev/shm together); "
                       f"the limit is {self.limit_bytes / MiB:.0f} MiB")
        elif self.limit_files is not None and entries > self.limit_files:
            message = f"created more than {self.limit_files} files and folders; the limit is {self.limit_files}"
        if message:
            self.exceeded = message
            self.on_exceed(message)
        return message

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.exceeded:
                try:
                    self.check()
                except Exception:  # never let a measuring error end the watch silently: retry
                    pass

    def reset(self) -> None:
        self.exceeded = None

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def empty_folder(folder: Path, keep: tuple[str, ...] = ()) -> None:
    """Remove everything in ``folder`` but the names in ``keep`` (links removed, not followed)."""
    import shutil as _shutil

    for entry in list(os.scandir(folder)):
        if entry.name in keep:
            continue
        if entry.is_dir(follow_symlinks=False):
            _shutil.rmtree(entry.path, ignore_errors=True)
        else:
            try:
                os.unlink(entry.path)
            except OSError:
                pass
