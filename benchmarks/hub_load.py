"""A class at once against the course hub: N students start their servers, fetch and submit together.

Issue 26's load test (a benchmark, not a timed test). As root it starts ``hub/hub.py start`` (the
real hub, proxy, PAM logins, each student's server as that OS user; ``--spawner slurm`` needs a
Slurm that ``sinfo`` reaches) with ``LEC4_HUB_STUDENTS=N`` accounts, the instructor releases
hw-attention, then N threads, one per student, drive the hub's REST API as a browser would
(``hub/rest_client.py``): log in (token from the password), start the server, press *Fetch*, then
*Submit* (nbgrader's server extension in the student's own server). Then the TA's ``collect``
must find every submission. Every step must succeed; the table gives p50/p95 of each step's
latency. The checks-before-the-deadline service is set to 0 checks per day for the run (each
submission answered "over budget" at once), so the table measures the hub, not grading
(grading's own: ``benchmarks/results/serve.md``).

Usage (root): .venv/bin/python benchmarks/hub_load.py [--students 20] [--out benchmarks/results/hub_load.md]
The simulated students are student3 .. student(N+2) (created if missing and kept, as `make hub` keeps its
users); student1 and student2, the accounts tests/test_hub.py drives, are left alone, so the load test
can run beside it (not beside tests/test_hub_slurm.py, which drives student3 and student4).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import datetime as dt
import json
import os
import platform
import pwd
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "hub"))
import hub as course_hub  # noqa: E402  (hub/hub.py)
from rest_client import Rest  # noqa: E402  (hub/rest_client.py)

ASSIGNMENT, NOTEBOOK = "hw-attention", "hw-attention.ipynb"
STEPS = ("log in", "start server", "fetch", "submit")


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0..1) by linear interpolation between order statistics."""
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def as_user(user: str, where: dict, *cmd: str) -> subprocess.CompletedProcess:
    """A command as the hub's OS ``user`` with their server's environment (as a terminal of it)."""
    env = course_hub.user_environment(user, where, course_hub.course_id())
    home = pwd.getpwnam(user).pw_dir
    return subprocess.run(["runuser", "-u", user, "--", "env", f"HOME={home}", *(f"{k}={v}" for k, v in env.items()),
                           *cmd], cwd=ROOT, capture_output=True, text=True, timeout=1800)


def one_student(url: str, user: str, password: str, options: dict) -> dict[str, float]:
    """One student's session; the seconds each step took. Raises on any failure."""
    took = {}
    start = time.monotonic()
    client = Rest(url, user, password, course_hub.course_id())
    took["log in"] = time.monotonic() - start
    for step, action in (("start server", lambda: client.start(options, timeout=900)),
                         ("fetch", lambda: client.nbgrader("fetch", ASSIGNMENT)),
                         ("submit", lambda: client.nbgrader("submit", ASSIGNMENT))):
        start = time.monotonic()
        reply = action()
        took[step] = time.monotonic() - start
        if step != "start server":
            status = {"fetch": "fetched", "submit": "submitted"}[step]
            if not any(a.get("assignment_id") == ASSIGNMENT and a.get("status") == status for a in reply):
                raise RuntimeError(f"{user}: {step} did not report {status}: {reply}")
    return took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--spawner", choices=("local", "slurm"), default="local")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "hub_load.md")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        parser.error("run as root (the hub creates and logs in OS users)")
    state = Path(tempfile.mkdtemp(prefix="lec4-hub-load-"))
    os.chmod(state, 0o755)
    env = {**os.environ, "LEC4_HUB_STATE": str(state), course_hub.STUDENTS_VAR: str(args.students + 2),
           "LEC4_CHECKS_PER_DAY": "0"}
    port = course_hub.free_port()
    load_before = os.getloadavg()[0]
    proc = subprocess.Popen([sys.executable, str(ROOT / "hub" / "hub.py"), "start", "--port", str(port),
                             "--spawner", args.spawner], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        banner = []
        for line in proc.stdout:
            banner.append(line)
            if line.startswith("Stop with"):
                break
        if proc.poll() is not None or "is up at" not in "".join(banner):
            raise SystemExit("the hub did not start:\n" + "".join(banner))
        where = course_hub.paths(state)
        passwords = json.loads(where["accounts"].read_text())
        url = f"http://127.0.0.1:{port}"
        cli = [sys.executable, "-m", "autograder", "--course-root", str(where["course"]),
               "--exchange", str(where["exchange"])]
        r = as_user("instructor", where, *cli, "release", ASSIGNMENT)
        if r.returncode != 0:
            raise SystemExit(f"release failed: {r.stdout}{r.stderr}")
        students = [f"student{i}" for i in range(3, args.students + 3)]
        for user in students:  # a fresh start: no earlier fetch of this assignment in their homes
            home = Path(pwd.getpwnam(user).pw_dir)
            if (home / ASSIGNMENT).exists():
                shutil.move(str(home / ASSIGNMENT), str(home / f"{ASSIGNMENT}-before-load-{int(time.time())}"))
        options = {"profile": "cpu"} if args.spawner == "slurm" else {}
        wall = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(len(students)) as pool:
            futures = {u: pool.submit(one_student, url, u, passwords[u], options) for u in students}
            results = {u: f.result() for u, f in futures.items()}  # any failure raises here
        wall = time.monotonic() - wall
        r = as_user("ta", where, *cli, "collect", ASSIGNMENT)
        collected = sorted(p.name for p in (where["course"] / "submitted").iterdir()
                           if (p / ASSIGNMENT / NOTEBOOK).is_file()) if r.returncode == 0 else []
        missing = sorted(set(students) - set(collected))
        if r.returncode != 0 or missing:
            raise SystemExit(f"collect: exit {r.returncode}, missing {missing}\n{r.stdout}{r.stderr}")
        for user in students:
            Rest(url, user, passwords[user], course_hub.course_id()).stop(timeout=300)
    except BaseException:
        kept = Path(tempfile.mkdtemp(prefix="lec4-hub-load-failed-"))
        log = course_hub.paths(state)["log"]  # the hub's log (every spawn, port and proxy route) outlives the run
        if log.is_file():
            shutil.copy2(log, kept / log.name)
        print(f"hub_load: failed; the hub's log is kept in {kept}", file=sys.stderr)
        raise
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            rest_out = proc.communicate(timeout=180)[0]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            rest_out = proc.communicate()[0]
        course_hub.kill_leftovers(state)
        shutil.rmtree(state, ignore_errors=True)
    if "nothing left running" not in rest_out:
        raise SystemExit(f"the hub's stop left processes behind:\n{rest_out}")
    load_after = os.getloadavg()[0]
    rows = [f"| {step} | {percentile([t[step] for t in results.values()], 0.5):.1f} | "
            f"{percentile([t[step] for t in results.values()], 0.95):.1f} | "
            f"{max(t[step] for t in results.values()):.1f} |" for step in STEPS]
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                if l.startswith("model name")), platform.processor())
    text = f"""# A class at once: {args.students} students start, fetch and submit together (`make hub`{' --spawner slurm' if args.spawner == 'slurm' else ''})

Run {now} by `benchmarks/hub_load.py --students {args.students} --spawner {args.spawner}` as root on {os.cpu_count()} cores ({cpu}), {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB.
Load average (1 min) at start {load_before:.1f}, at end {load_after:.1f}{' (other jobs shared the machine: upper bounds)' if load_before > 1.5 else ''}.

Every step of every student succeeded; the TA's `collect` found all {len(collected)} submissions; the hub's
stop left nothing running. All {args.students} sessions ran at once (one thread each); wall time {wall:.0f} s.

| step (per student) | p50 (s) | p95 (s) | max (s) |
|---|---|---|---|
{chr(10).join(rows)}

*log in*: a token from the password (PAM). *start server*: `POST /hub/api/users/NAME/server` until the hub
reports it ready (JupyterLab + nbgrader started as that OS user{', as a Slurm job' if args.spawner == 'slurm' else ''}). *fetch* / *submit*: the
Assignments panel's buttons (nbgrader's server extension in the student's server, copying from/to the
exchange). The checks-before-the-deadline service was set to 0 checks per day (submissions answered
"over budget" at once), so grading does not compete for the CPU here.
"""
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
