"""Real servers for the tests, started from temporary folders and stopped by PID.

- :func:`postgres_server`: Debian's PostgreSQL on a free port (the shared gradebook).
- :func:`slurm_cluster`: a one-node Slurm (munged, slurmctld, slurmd) with a generated
  ``slurm.conf``; every client call passes ``SLURM_CONF`` so nothing system-wide is used.

Both are context managers: whatever they start is stopped on exit and their folders are
removed. A missing program or missing root is a test failure naming what to install.
Stopping escalates (:func:`stop_process_group`): the polite signal, then SIGTERM, then SIGKILL
of the server's whole process group, so a failing test leaves nothing running.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)
SLURM_PROGRAMS = {"munged": "munge", "slurmctld": "slurmctld", "slurmd": "slurmd",
                  "sbatch": "slurm-client", "scontrol": "slurm-client", "scancel": "slurm-client"}
SLURM_PACKAGES = "slurm-wlm munge"  # Debian packages; `make test` installs them


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def postgres_server():
    """Yield the SQLAlchemy URL of database ``lec4`` on a fresh PostgreSQL server (user grader)."""
    if PG_BIN is None or not (PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL not installed: apt-get install postgresql (`make test` does it)")
    base = Path(tempfile.mkdtemp(prefix="pg-"))  # pytest's tmp_path is private to root
    data = base / "data"
    data.mkdir()
    prefix = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        os.chmod(base, 0o755)
        shutil.chown(data, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_port()
    try:
        subprocess.run(prefix + [str(PG_BIN / "initdb"), "-D", str(data), "-U", "grader", "--auth=trust"],
                       check=True, capture_output=True)
        subprocess.run(prefix + [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(data / "log"), "-w", "-o",
                                 f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"],
                       check=True, capture_output=True)
        subprocess.run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "grader", "lec4"],
                       check=True)
        yield f"postgresql+psycopg2://grader@127.0.0.1:{port}/lec4"
    finally:
        if (data / "postmaster.pid").exists():
            pid = int((data / "postmaster.pid").read_text().split()[0])
            try:
                subprocess.run(prefix + [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                               capture_output=True, timeout=60)
            finally:
                if (data / "postmaster.pid").exists():  # pg_ctl failed or hung: the postmaster goes anyway
                    _kill_escalating(pid)
        shutil.rmtree(base, ignore_errors=True)


def _kill_escalating(pid: int, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL, to ``pid`` and its process group (a server we did not start with
    Popen, e.g. the postmaster pg_ctl daemonizes), until both are gone."""
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for kill, target in ((os.kill, pid), (os.killpg, pgid)):
            if target == os.getpgrp() and kill is os.killpg:
                continue  # never our own group
            try:
                kill(target, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)


def slurm_missing() -> list[str]:
    """What a one-node Slurm needs and this machine lacks (empty when all is there)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root (slurmd runs jobs as their user and munged needs the munge account: run as root, "
                       "as CI does)")
    lacking = sorted({f"{prog} (package {pkg})" for prog, pkg in SLURM_PROGRAMS.items() if not shutil.which(prog)
                      and not Path("/usr/sbin", prog).exists()})
    if lacking:
        missing.append("programs " + ", ".join(lacking) + f": apt-get install {SLURM_PACKAGES} (`make test` does it)")
    return missing


def _program(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin") / name)


@dataclass
class Slurm:
    """A running one-node cluster: ``env`` carries SLURM_CONF for every client call."""

    base: Path
    env: dict

    def run(self, *argv: str, check: bool = True) -> str:
        """Run a Slurm client command (sbatch, scontrol, ...) against this cluster; its stdout."""
        result = subprocess.run(list(argv), env=self.env, capture_output=True, text=True, timeout=60)
        if check and result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {result.returncode}: {result.stderr.strip()}")
        return result.stdout

    def jobs(self, job_id: str) -> list[dict[str, str]]:
        """``scontrol show job -o``: one dict per job (or array task) of ``job_id``."""
        out = self.run("scontrol", "show", "job", "-o", job_id)
        return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.splitlines() if line.strip()]

    def wait(self, job_ids: list[str], timeout: float) -> None:
        """Block until none of ``job_ids`` (or their array tasks) is pending or running."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = [j["JobState"] for jid in job_ids for j in self.jobs(jid)]
            if states and all(s not in ("PENDING", "RUNNING", "CONFIGURING", "COMPLETING") for s in states):
                return
            time.sleep(2)
        raise TimeoutError(f"jobs {job_ids} still active after {timeout:.0f} s:\n"
                           + self.run("squeue", "-a", check=False) + self.log_tail())

    def log_tail(self) -> str:
        return _logs(self.base)


def _slurm_conf(base: Path, socket_path: Path, cpus: int | None = None) -> str:
    node = socket.gethostname()
    cpus = cpus or os.cpu_count()
    # more CPUs than the machine has (a hub test with three 1-CPU servers on 2 cores): slurmd must not
    # drain the node for it (config_overrides: the node is what slurm.conf says)
    overrides = "SlurmdParameters=config_overrides\n" if cpus > os.cpu_count() else ""
    mem_mib = int(next(l for l in Path("/proc/meminfo").read_text().splitlines()
                       if l.startswith("MemTotal")).split()[1]) // 1024
    return f"""# generated by tests/servers.py: one node, state and logs under {base}
ClusterName=lec4test
SlurmctldHost={node}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={socket_path}
SlurmUser=root
SlurmdUser=root
StateSaveLocation={base}/state
SlurmdSpoolDir={base}/spool
SlurmctldPidFile={base}/slurmctld.pid
SlurmdPidFile={base}/slurmd.pid
SlurmctldLogFile={base}/slurmctld.log
SlurmdLogFile={base}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
SwitchType=switch/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc={base}/jobcomp.txt
ReturnToService=2
MinJobAge=3600
SchedulerParameters=sched_interval=2
{overrides}NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={int(mem_mib * 0.9)} State=UNKNOWN
PartitionName=grading Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def stop_process_group(proc: subprocess.Popen, first: int = signal.SIGTERM, grace: float = 15) -> None:
    """Stop a server started with ``start_new_session=True`` and everything in its process group:
    ``first`` to the server, then SIGTERM and finally SIGKILL to the whole group, each given
    ``grace`` s. Returns once the server is reaped and its group is empty."""
    for sig, group in ((first, False), (signal.SIGTERM, True), (signal.SIGKILL, True)):
        proc.poll()
        if proc.returncode is not None and not _group_alive(proc.pid):
            return
        try:
            os.killpg(proc.pid, sig) if group else proc.send_signal(sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()
            if proc.returncode is not None and not _group_alive(proc.pid):
                return
            time.sleep(0.2)
    proc.wait()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGTERM/SIGKILL of its process group (see :func:`stop_process_group`)."""
    stop_process_group(proc, signal.SIGTERM, 15)


@contextmanager
def slurm_cluster(cpus: int | None = None):
    """Start munged (as the munge user), slurmctld and slurmd; yield a :class:`Slurm`; stop all.

    ``cpus``: the CPUs the node offers Slurm (default: the machine's; more oversubscribes it)."""
    missing = slurm_missing()
    if missing:
        pytest.fail("a real Slurm cannot be started here; missing: " + "; ".join(missing))
    base = Path(tempfile.mkdtemp(prefix="slurm-"))
    os.chmod(base, 0o755)  # munged (user munge) reaches its folder through this one
    munge_dir = base / "munge"
    munge_dir.mkdir()
    munge_dir.chmod(0o711)  # munged: clients need execute permission on the socket's folder
    key = munge_dir / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    for path in (munge_dir, key):
        shutil.chown(path, "munge", "munge")
    for sub in ("state", "spool"):
        (base / sub).mkdir()
    socket_path = munge_dir / "munge.socket"
    conf = base / "slurm.conf"
    conf.write_text(_slurm_conf(base, socket_path, cpus))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    procs: list[subprocess.Popen] = []
    slurm = Slurm(base, env)
    try:
        procs.append(subprocess.Popen(
            [_program("munged"), "--foreground", f"--key-file={key}", f"--socket={socket_path}",
             f"--pid-file={munge_dir}/munged.pid", f"--log-file={munge_dir}/munged.log",
             f"--seed-file={munge_dir}/munged.seed"], user="munge", group="munge",
            stdout=subprocess.DEVNULL, stderr=open(base / "munged.stderr", "wb"), start_new_session=True))
        _wait_for(lambda: socket_path.exists(), 20, "munged socket", procs[-1], base=base)
        procs.append(subprocess.Popen([_program("slurmctld"), "-D", "-c", "-f", str(conf)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True))
        procs.append(subprocess.Popen([_program("slurmd"), "-D", "-f", str(conf)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=open(base / "munged.stderr", "wb"),
                                      start_new_session=True))
        _wait_for(lambda: "idle" in slurm.run("sinfo", "-h", "-o", "%T", check=False), 60,
                  "the node to be idle in sinfo", *procs[1:], base=base)
        yield slurm
    finally:
        try:  # nothing of ours keeps running: cancel every job, wait for their steps to end
            if len(procs) == 3 and procs[1].poll() is None:
                slurm.run("scancel", "--full", "--partition=grading", check=False)
                _wait_for(lambda: not slurm.run("squeue", "-h", check=False).strip(), 60, "jobs to end",
                          raise_error=False)
        finally:
            for proc in reversed(procs):
                _stop(proc)
            shutil.rmtree(base, ignore_errors=True)


def _wait_for(ready, timeout: float, what: str, *procs: subprocess.Popen, base: Path | None = None,
              raise_error: bool = True) -> None:
    """Poll ``ready()`` until true; fail early (with the daemons' logs) if one of ``procs`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{Path(proc.args[0]).name} exited with status {proc.returncode} while "
                                   f"waiting for {what}" + (_logs(base) if base else ""))
        time.sleep(0.5)
    if raise_error:
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}" + (_logs(base) if base else ""))


def _logs(base: Path) -> str:
    """The ends of the daemons' logs, for error messages."""
    names = ["munged.stderr", "munge/munged.log", "slurmctld.stderr", "slurmctld.log", "slurmd.stderr", "slurmd.log"]
    return "".join(f"\n--- {name} ---\n" + (base / name).read_text(errors="replace")[-2500:]
                   for name in names if (base / name).exists())
