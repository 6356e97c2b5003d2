"""Bubblewrap sandbox for everything a submission runs: the grading runner and the notebook kernel.

Inside the sandbox a process sees only the system (``/usr``, ``/etc``), the Python
installation, the project's virtual environment, ``src/`` (the public ``lec4`` library)
and the engine's ``runner.py`` and ``reaper.py`` -- all read-only -- plus its own working directory, the only
writable place. ``solutions/``, the hidden-test suites, the gradebook and the other
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
"""
from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ENGINE = ROOT / "autograder" / "engine"
NOBODY = 65534
REAPER = ENGINE / "reaper.py"
GiB = 2**30


class SandboxUnavailable(RuntimeError):
    """bubblewrap (or prlimit/setpriv) is missing: grading refuses to run unconfined."""


@dataclass
class Limits:
    """Resource limits of one sandboxed process tree (``None`` = no limit).

    ``memory_bytes`` is RLIMIT_AS (virtual memory). CUDA reserves huge virtual ranges,
    so GPU grading leaves it unset (``Limits.for_device``) and relies on the GPU's own memory.
    """

    memory_bytes: int | None = 8 * GiB
    cpu_seconds: int | None = 600
    processes: int | None = 512  # threads count too (torch starts one per core)
    file_bytes: int | None = 256 * 2**20
    open_files: int | None = 1024

    @classmethod
    def for_device(cls, device: str, **overrides) -> "Limits":
        limits = cls(**overrides)
        if device.startswith("cuda") and "memory_bytes" not in overrides:
            limits.memory_bytes = None
        return limits

    def prlimit_args(self) -> list[str]:
        pairs = [("--as", self.memory_bytes), ("--cpu", self.cpu_seconds), ("--nproc", self.processes),
                 ("--fsize", self.file_bytes), ("--nofile", self.open_files), ("--core", 0)]
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
                 ROOT / "autograder" / "__init__.py", ENGINE / "__init__.py", ENGINE / "runner.py", REAPER, *self.extra_ro]
        if self.gpu:
            paths += [Path(p) for p in ("/proc/driver/nvidia", "/sys") if Path(p).exists()]
        return [p for p in dict.fromkeys(paths) if p.exists()]

    def wrap(self, argv: list[str], workdir: Path) -> list[str]:
        """The command that runs ``argv`` confined, with ``workdir`` its only writable folder."""
        workdir = Path(workdir).resolve()
        if self.as_root:
            os.chown(workdir, NOBODY, NOBODY)  # the unprivileged user must be able to write it
        return self._confined(workdir, workdir) + self._unprivileged() + list(argv)

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
        """bwrap + prlimit, up to the program to run: ``workdir`` writable, ``home`` its HOME and cwd."""
        cmd = [self.bwrap, "--die-with-parent", "--new-session",
               "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try",
               "--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/tmp"]
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
        cmd += ["--bind", str(workdir), str(workdir)]
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
            "--setenv", "USER", "nobody" if self.as_root else os.environ.get("USER", "student"),
            # ipykernel would poll the host PID, which does not exist in this PID namespace
            "--unsetenv", "JPY_PARENT_PID",
            "--", self.prlimit, *self.limits.prlimit_args(), "--"]


def default_sandbox(device: str = "cpu", **limit_overrides) -> BwrapSandbox:
    """The sandbox grading uses for ``device`` (CPU limits, or GPU access without RLIMIT_AS)."""
    return BwrapSandbox(Limits.for_device(device, **limit_overrides), gpu=device.startswith("cuda"))
