"""``python -m autograder serve``: checks before the deadline (autograder/serve.py).

Real service tests (the fixture assignment, the production sandbox, real ``nbgrader submit`` and
``fetch_feedback`` through a real exchange, the service as a subprocess): the answer and what it
shows; kill -9 in the middle of grading and a restart; a worker crash. Scheduling-level tests (the
service in-process, a fake grader, a controlled clock): budget, due dates, fairness, and the
isolation between OS users.

Each was seen failing on a deliberately broken service (see the report of issue 22): FIFO order
(fairness), a queue kept outside STATE (kill -9: answered twice), no refund (crash), no owner check
(isolation). The kill -9 test's negative controls are kept in tests/fixtures/broken_serve (not run by
`make test`: minutes each): a restart that leaves the killed service's worker grading (caught: the
old worker still runs when the new service serves) and a queue that takes in-flight submissions as
answered on restart (caught: a student never gets an answer).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
import pytest

from autograder import calendar, serve

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures"
ASSIGNMENT = "hw-fixture"
NOTEBOOK = f"{ASSIGNMENT}.ipynb"
COURSE_ID = "10423-lec4"
HIDDEN_SOFTMAX = ("matches the definition on a 3-d input", "stable for large logits", "leaves its input unchanged")


def env() -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("AUTOGRADER_")}
    e["AUTOGRADER_SUITE_PATH"] = str(FIXTURE / "suites")
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e.get('PATH', '')}"
    return e


def cli(course: Path, exchange: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "--course-root", str(course), "--exchange",
                           str(exchange), *args], cwd=ROOT, env=env(), capture_output=True, text=True, timeout=timeout)


def nbgrader(exchange: Path, cache: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nbgrader", *args, f"--course={COURSE_ID}",
                           f"--Exchange.root={exchange}", f"--Exchange.cache={cache}"],
                          cwd=cwd, env=env(), capture_output=True, text=True, timeout=300)


def released(course: Path, scaled_add: str | None = None, softmax: str | None = None) -> nbformat.NotebookNode:
    """The release notebook with the reference answers, or the given (wrong) bodies."""
    nb = nbformat.read(course / "assignments" / ASSIGNMENT / NOTEBOOK, as_version=4)
    ref = nbformat.read(FIXTURE / "course" / "solutions" / ASSIGNMENT / NOTEBOOK, as_version=4)
    for gid, given in (("scaled_add", scaled_add), ("row_softmax", softmax)):
        ref_cell = next(c for c in ref.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)
        cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == gid)
        cell.source = given or "\n".join(l for l in ref_cell.source.splitlines() if "SOLUTION" not in l)
    return nb


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Student:
    """A student's side: their own folder and nbgrader cache; submit and fetch feedback for real."""

    def __init__(self, name: str, base: Path, exchange: Path):
        self.name, self.exchange = name, exchange
        self.home, self.cache = base / name, base / f"{name}-cache"
        (self.home / ASSIGNMENT).mkdir(parents=True)
        self.cache.mkdir()

    def submit(self, nb) -> None:
        nbformat.write(nb, self.home / ASSIGNMENT / NOTEBOOK)
        r = nbgrader(self.exchange, self.cache, self.home, "submit", ASSIGNMENT, f"--student={self.name}")
        assert r.returncode == 0, r.stdout + r.stderr
        time.sleep(0.01)  # two submissions never share a timestamp

    def feedback(self, count: int, timeout: float = 600) -> list[str]:
        """Fetch Feedback until ``count`` answers are there; their HTML, oldest submission first."""
        deadline = time.monotonic() + timeout
        while True:
            r = nbgrader(self.exchange, self.cache, self.home, "fetch_feedback", ASSIGNMENT, f"--student={self.name}")
            assert r.returncode == 0, r.stdout + r.stderr
            pages = sorted((self.home / ASSIGNMENT / "feedback").glob(f"*/{ASSIGNMENT}.html"))
            if len(pages) >= count or time.monotonic() > deadline:
                assert len(pages) == count, f"{self.name}: {len(pages)} answers, expected {count}"
                return [p.read_text() for p in pages]
            time.sleep(0.5)


def start_service(course: Path, exchange: Path, state: Path, log: Path, *extra: str) -> subprocess.Popen:
    """The service as a subprocess, once it serves (its own course prepared: minutes on a busy CPU)."""
    seen = log.read_text().count("serving checks") if log.exists() else 0
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "autograder", "--course-root", str(course), "--exchange",
                                 str(exchange), "serve", ASSIGNMENT, "--state", str(state), "--poll", "0.2",
                                 "--device", "cpu", *extra], cwd=ROOT, env=env(), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: log.read_text().count("serving checks") > seen or proc.poll() is not None, 900,
                 "the service did not start")
        assert proc.poll() is None, log.read_text()[-3000:]
    except BaseException:
        stop_service(proc)
        raise
    return proc


def stop_service(proc: subprocess.Popen, sig=signal.SIGTERM) -> None:
    """SIGTERM (or ``sig``), then SIGKILL of its process group; nothing left running."""
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_for(what, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(message)


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The fixture assignment generated and released to an exchange (the TA's course and gradebook)."""
    base = tmp_path_factory.mktemp("serve")
    course, exchange = base / "course", base / "exchange"
    shutil.copytree(FIXTURE / "course" / "solutions" / ASSIGNMENT, course / "solutions" / ASSIGNMENT)
    exchange.mkdir()
    r = cli(course, exchange, "release", ASSIGNMENT)
    assert r.returncode == 0, r.stdout + r.stderr
    return course, exchange, base


@pytest.fixture(scope="module")
def service(course):
    """One real service for the module's real-grading tests; stopped (and checked gone) at the end."""
    course_root, exchange, base = course
    state, log = base / "state", base / "serve.log"
    proc = start_service(course_root, exchange, state, log)
    yield proc, state, log
    stop_service(proc)
    workers = [int(p.read_text()) for p in (state / "workers").glob("*.pgid")]
    assert not [w for w in workers if serve._running(w)], "a grading worker outlived the service"


@pytest.mark.slow
def test_answer_shows_hidden_verdicts_as_the_spec_allows_and_never_the_grade(course, service):
    course_root, exchange, base = course
    gradebook = course_root / "gradebook.db"
    before = sha(gradebook)
    ann = Student("ann", base, exchange)
    ann.submit(released(course_root, scaled_add="def scaled_add(x, y, alpha):\n    return x + alpha * y.sum()\n",
                        softmax="def row_softmax(x):\n    e = x.exp()\n    return e / e.sum(-1, keepdim=True)\n"))
    (first,) = ann.feedback(1)
    assert "not your grade" in first
    # scaled_add's hidden cell is declared "verdicts": each hidden check, its verdict and hint
    assert "FAIL broadcasts (3, 5) + (5,)" in first, first
    # row_softmax's hidden cell is declared "count": a count, never the checks' names
    assert "hidden tests (shown as a count before the deadline): 2 of 3 passed" in first, first
    assert not [name for name in HIDDEN_SOFTMAX if name in first], first
    assert "90417" not in first and "SECRET_SEED" not in first and "manual_seed" not in first
    assert "Checks left for hw-fixture in the last 24 hours: 2 of 3." in first
    ann.submit(released(course_root))  # fixed
    second = ann.feedback(2)[1]
    assert "FAIL" not in second and "PASS broadcasts (3, 5) + (5,)" in second, second
    assert "3 of 3 passed" in second and "Checks left for hw-fixture in the last 24 hours: 1 of 3." in second
    # the grade that counts is the TA's: the course's gradebook and records are untouched
    assert sha(gradebook) == before
    assert not (course_root / "autograded").exists() and not (course_root / "submitted").exists()
    assert oct(os.stat(service[1]).st_mode & 0o777) == "0o700"


@pytest.mark.slow
def test_a_worker_crash_answers_try_again_and_refunds_the_check(course, service):
    course_root, exchange, base = course
    proc, state, log = service
    cai = Student("cai", base, exchange)
    slow = "import time\ndef scaled_add(x, y, alpha):\n    time.sleep(3600.25)\n    return x + alpha * y\n"
    cai.submit(released(course_root, scaled_add=slow))
    running = wait_for(lambda: list((state / "queue" / "running").glob("cai+*.json")), 600, "never graded")
    pgid = int(wait_for(lambda: [p.read_text() for p in (state / "workers").glob("*.pgid")], 60, "no worker")[0])
    scratch = Path(wait_for(lambda: [p.read_text() for p in (state / "workers").glob("*.scratch")], 60, "no scratch")[0])
    time.sleep(2)  # inside the sandbox now
    assert [p.name for p in scratch.iterdir() if p.name.startswith(("grade-", "kernel-"))], "nothing to clean up"
    os.killpg(pgid, signal.SIGKILL)  # the grading worker dies (its sandboxes with it)
    (answer,) = cai.feedback(1)
    assert "could not be checked" in answer and "Try again" in answer, answer
    # what the killed worker could not remove (cai's source in job.pt among it) is gone
    assert not scratch.exists(), sorted(p.name for p in scratch.iterdir())
    done = json.loads((state / "queue" / "done" / running[0].name).read_text())
    assert done["status"] == "crashed" and done["refunded"] is True
    cai.submit(released(course_root))
    second = cai.feedback(2)[1]
    # the crashed attempt was given back: one check used, not two
    assert "Checks left for hw-fixture in the last 24 hours: 2 of 3." in second, second
    assert proc.poll() is None, log.read_text()[-3000:]


@pytest.mark.slow
def test_kill_9_mid_grading_then_restart_answers_every_submission_exactly_once(course, tmp_path):
    course_root, released_to, base = course
    state, log = tmp_path / "state", tmp_path / "serve.log"
    exchange = tmp_path / "exchange"  # its own: only these three submissions in inbound
    shutil.copytree(released_to / COURSE_ID / "outbound", exchange / COURSE_ID / "outbound")
    (exchange / COURSE_ID / "inbound").mkdir(mode=0o1733)
    names = ["dan", "eve", "fay"]
    students = {n: Student(n, tmp_path, exchange) for n in names}
    # dan's (graded first: the oldest) takes 15 s (the hidden suite's three calls of scaled_add, 5 s
    # each), so the killed service's worker is still grading it when the new service starts; the
    # others 3 s
    slowish = "import time\ndef scaled_add(x, y, alpha):\n    time.sleep({})\n    return x + alpha * y\n"
    for name, s in students.items():
        s.submit(released(course_root, scaled_add=slowish.format(5 if name == "dan" else 1)))
    proc = start_service(course_root, exchange, state, log)
    try:
        running = wait_for(lambda: list((state / "queue" / "running").glob("*.json")), 600, "nothing was graded")
        assert running[0].name.startswith("dan+"), running
        old_worker = int(wait_for(lambda: [p.read_text() for p in (state / "workers").glob("*.pgid")], 60, "no worker")[0])
        old_scratch = Path(wait_for(lambda: [p.read_text() for p in (state / "workers").glob("*.scratch")], 60,
                                    "no scratch")[0])
        time.sleep(1.5)  # mid-grading: the worker is in its sandbox
        stop_service(proc, signal.SIGKILL)  # kill -9 of the service (its worker is in a session of its own)
        assert (state / "queue" / "running" / running[0].name).exists()
        assert serve._running(old_worker), "the test needs the old worker still grading when the service restarts"
        proc = start_service(course_root, exchange, state, log)
        # the killed service's worker is gone before the new one serves: never two gradings at once
        assert not serve._running(old_worker), "the killed service's worker still grades after the restart"
        assert not old_scratch.exists(), "the killed worker's scratch folder (dan's source in it) was left"
        for s in students.values():
            (page,) = s.feedback(1)
            assert "Checks left for hw-fixture in the last 24 hours: 2 of 3." in page, page
    finally:
        stop_service(proc)
    done = {p.name: json.loads(p.read_text()) for p in (state / "queue" / "done").glob("*.json")}
    assert sorted(e["student"] for e in done.values()) == names
    assert all(e["status"] == "checked" for e in done.values()), done
    assert not list((state / "queue" / "pending").glob("*")) and not list((state / "queue" / "running").glob("*"))
    answered = [line for line in log.read_text().splitlines() if line.startswith("answered ")]
    assert sorted(line.split("+")[0] for line in answered) == [f"answered {n}" for n in names], answered
    assert "recovered" in log.read_text()


# --- scheduling level: the service in-process with a fake grader -----------------------------------

FAKE_CELLS = {"test_scaled_add_visible": [("ones + 2 * ones", True)],
              "test_scaled_add_hidden": [("broadcasts (3, 5) + (5,)", False), ("keeps float64", True)],
              "test_row_softmax_visible": [("uniform rows", True)],
              "test_row_softmax_hidden": [("matches the definition on a 3-d input", True),
                                          ("stable for large logits", False), ("leaves its input unchanged", True)]}


def fake_record() -> dict:
    return {"cells": {gid: {"checks": [{"name": n, "kind": "value", "passed": p, "hint": "a hint"} for n, p in checks]}
                      for gid, checks in FAKE_CELLS.items()}}


def inbound(exchange: Path, student: str, when: float, uid: int | None = None) -> str:
    """An inbound submission folder as nbgrader's submit makes it (timestamp, secret, notebook)."""
    stamp = dt.datetime.fromtimestamp(when, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    name = f"{student}+{ASSIGNMENT}+{stamp}+{os.urandom(4).hex()}"
    folder = exchange / COURSE_ID / "inbound" / name
    folder.mkdir(parents=True)
    (folder / "timestamp.txt").write_text(stamp)
    (folder / "submission_secret.txt").write_text(os.urandom(16).hex())
    (folder / NOTEBOOK).write_text("{}")
    if uid is not None:
        for p in (folder, *folder.iterdir()):
            os.chown(p, uid, uid)
    return name


def answer_of(exchange: Path, name: str) -> str:
    from nbgrader.utils import notebook_hash

    secret = (exchange / COURSE_ID / "inbound" / name / "submission_secret.txt").read_text()
    path = exchange / COURSE_ID / "feedback" / f"{notebook_hash(secret=secret, notebook_id=ASSIGNMENT)}.html"
    return path.read_text() if path.exists() else ""


def make_service(tmp: Path, grade, workers=1, order="round-robin", clock=time.time, budget=3, poll=0.02):
    os.environ["AUTOGRADER_SUITE_PATH"] = str(FIXTURE / "suites")
    policy = serve.load_policy(ASSIGNMENT, budget)
    course, exchange = tmp / "course", tmp / "exchange"
    course.mkdir(parents=True, exist_ok=True)
    (exchange / COURSE_ID / "inbound").mkdir(parents=True, exist_ok=True)
    return serve.Service(course, exchange, COURSE_ID, tmp / "state", {ASSIGNMENT: policy}, grade, workers=workers,
                         poll=poll, order=order, clock=clock, log=lambda text: None)


def drain(svc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        svc.scan()
        if svc.idle():
            return
        time.sleep(0.02)
    raise AssertionError("the service did not finish")


def test_over_budget_is_answered_at_once_with_when_the_next_check_is_available(tmp_path):
    now = [1_800_000_000.0]
    graded = []
    svc = make_service(tmp_path, lambda e, i: graded.append(e["id"]) or serve.Outcome("checked", fake_record()),
                       clock=lambda: now[0], budget=2)
    svc.start()
    try:
        names = []
        for k in range(3):
            names.append(inbound(svc.exchange, "gus", now[0]))
            drain(svc)
            now[0] += 600
        assert graded == names[:2]
        third = answer_of(svc.exchange, names[2])
        assert "Not checked: you have used all 2 checks of hw-fixture allowed in 24 hours." in third, third
        assert "Your next check is available at 2027-01-16 08:00 UTC (in 23 h 40 min)" in third, third
        assert "still submitted" in third
        now[0] += DAY - 1800 + 1  # the first check is 24 h old: one check free again
        names.append(inbound(svc.exchange, "gus", now[0]))
        drain(svc)
        assert graded[-1] == names[3]
        assert "Checks left for hw-fixture in the last 24 hours: 0 of 2." in answer_of(svc.exchange, names[3])
        # another student's budget is their own
        other = inbound(svc.exchange, "hal", now[0])
        drain(svc)
        assert "1 of 2" in answer_of(svc.exchange, other)
    finally:
        svc.stop()


DAY = serve.DAY


def test_after_the_due_date_checks_stop_and_an_extension_keeps_them_open(tmp_path):
    graded = []
    svc = make_service(tmp_path, lambda e, i: graded.append(e["student"]) or serve.Outcome("checked", fake_record()))
    exchange = svc.exchange
    what = []
    with calendar.transaction(svc.course_root, what) as cal:  # what `due` and `extend` of the CLI do
        what.append(calendar.set_due(cal, ASSIGNMENT, "2026-12-01T12:00Z"))
        what.append(calendar.grant(cal, ASSIGNMENT, "ivy", until="2099-01-01T00:00Z", reason="medical",
                                   granted_by="ta"))
    svc.start()
    try:
        late, extended = inbound(exchange, "jon", time.time()), inbound(exchange, "ivy", time.time())
        drain(svc)
        assert graded == ["ivy"]
        page = answer_of(exchange, late)
        assert "Checks before the deadline are closed" in page and "2026-12-01 12:00 UTC" in page, page
        assert "Nothing was run" in page and "FAIL" not in page
        page = answer_of(exchange, extended)
        assert "FAIL broadcasts (3, 5) + (5,)" in page and "Due 2099-01-01 00:00 UTC" in page, page
        assert "stable for large logits" not in page and "2 of 3 passed" in page
    finally:
        svc.stop()


def waits(tmp: Path, heavy: int, order: str, grade_s: float = 0.3, workers: int = 2) -> list[float]:
    """Seconds from arrival to answer of 10 students' single submissions, arriving one by one while
    (``heavy`` > 0) one student's ``heavy`` submissions wait."""
    answered: dict[str, float] = {}

    def grade(entry, index):
        time.sleep(grade_s)
        answered[entry["id"]] = time.monotonic()
        return serve.Outcome("checked", fake_record())

    svc = make_service(tmp, grade, workers=workers, order=order, budget=100)
    svc.start()
    stop = threading.Event()
    scanner = threading.Thread(target=svc.run, kwargs={"until": stop.is_set})
    scanner.start()
    try:
        for _ in range(heavy):
            inbound(svc.exchange, "heavy", time.time())
        time.sleep(grade_s)
        arrived = {}
        for k in range(10):
            arrived[inbound(svc.exchange, f"other{k:02d}", time.time())] = time.monotonic()
            time.sleep(grade_s * 1.2)
        wait_for(lambda: all(n in answered for n in arrived), 60, "not every submission was answered")
        if heavy:
            wait_for(lambda: len(answered) == heavy + 10, 60, "the heavy student's submissions were not all answered")
    finally:
        stop.set()
        scanner.join()
        svc.stop()
    return [answered[n] - t for n, t in arrived.items()]


def p95(values: list[float]) -> float:
    import numpy as np

    return float(np.percentile(values, 95))


def test_round_robin_keeps_others_within_2x_of_idle_while_one_student_submits_30(tmp_path):
    idle = p95(waits(tmp_path / "idle", 0, "round-robin"))
    busy = p95(waits(tmp_path / "busy", 30, "round-robin"))
    assert busy <= 2 * idle, f"others' p95 wait {busy:.2f} s with a student submitting 30, {idle:.2f} s idle"
    # the measurement can fail: first-come first-served makes the others wait for the 30
    fifo = p95(waits(tmp_path / "fifo", 30, "fifo"))
    assert fifo > 2 * idle, f"FIFO: {fifo:.2f} s vs idle {idle:.2f} s"


def test_a_crashed_check_is_answered_and_given_back(tmp_path):
    """Scheduling level (the real worker crash: test_a_worker_crash_answers_try_again_and_refunds_the_check)."""
    outcomes = [serve.Outcome("crashed", reason="the grading worker died (exit status -9)"),
                serve.Outcome("checked", fake_record())]
    svc = make_service(tmp_path, lambda e, i: outcomes.pop(0))
    svc.start()
    try:
        first = inbound(svc.exchange, "lee", time.time())
        drain(svc)
        second = inbound(svc.exchange, "lee", time.time())
        drain(svc)
    finally:
        svc.stop()
    page = answer_of(svc.exchange, first)
    assert "could not be checked" in page and "Try again" in page and "exit status" not in page, page
    assert "Checks left for hw-fixture in the last 24 hours: 2 of 3." in answer_of(svc.exchange, second)


def test_the_staffs_released_feedback_is_never_replaced_by_a_check(tmp_path):
    from nbgrader.utils import notebook_hash

    svc = make_service(tmp_path, lambda e, i: serve.Outcome("checked", fake_record()))
    name = inbound(svc.exchange, "kim", time.time())
    secret = (svc.exchange / COURSE_ID / "inbound" / name / "submission_secret.txt").read_text()
    page = svc.exchange / COURSE_ID / "feedback" / f"{notebook_hash(secret=secret, notebook_id=ASSIGNMENT)}.html"
    page.parent.mkdir(parents=True)
    page.write_text("<html>the TA's feedback</html>")  # what release-feedback wrote for this submission
    svc.start()
    try:
        drain(svc)
    finally:
        svc.stop()
    assert page.read_text() == "<html>the TA's feedback</html>"
    assert json.loads(svc.store.path("done", name).read_text())["status"] == "checked"


def test_the_exchange_course_folder_is_the_instructors_and_feedback_stays_writable_by_staff(tmp_path):
    svc = make_service(tmp_path, lambda e, i: serve.Outcome("checked", fake_record()))
    shutil.rmtree(svc.exchange / COURSE_ID)
    svc.start()
    try:
        assert not (svc.exchange / COURSE_ID).exists()  # else the instructor's release could not create outbound
        (svc.exchange / COURSE_ID / "inbound").mkdir(parents=True)
        os.chmod(svc.exchange / COURSE_ID, 0o2775)  # what a group-shared (staff) release makes
        os.chown(svc.exchange / COURSE_ID, 0, 4242)
        name = inbound(svc.exchange, "max", time.time())
        drain(svc)
        assert "Checks left" in answer_of(svc.exchange, name)
        st = os.stat(svc.exchange / COURSE_ID / "feedback")
        assert oct(st.st_mode & 0o7777) == "0o2771" and st.st_gid == 4242  # the TA's release-feedback writes here
    finally:
        svc.stop()


def test_a_service_on_the_same_state_refuses_to_start(tmp_path):
    first = make_service(tmp_path, lambda e, i: serve.Outcome("checked", fake_record()))
    first.start()
    try:
        with pytest.raises(serve.ServeError, match="another `python -m autograder serve` is running"):
            make_service(tmp_path, lambda e, i: serve.Outcome("checked", fake_record())).start()
    finally:
        first.stop()


def test_a_bad_declaration_is_refused_with_what_to_fix(monkeypatch):
    from autograder.suites import load_suite

    monkeypatch.setenv("AUTOGRADER_SUITE_PATH", str(FIXTURE / "suites"))
    suite = load_suite(ASSIGNMENT)
    monkeypatch.setattr("autograder.suites.load_suite", lambda a: suite)
    monkeypatch.setattr(suite, "PRE_DEADLINE", {"test_scaled_add_visible": "everything"})
    with pytest.raises(serve.ServeError) as err:
        serve.load_policy(ASSIGNMENT)
    assert "test_row_softmax_hidden is not declared" in str(err.value)
    assert "'everything' is neither of ('verdicts', 'count')" in str(err.value)


# --- separate OS users ------------------------------------------------------------------------------

USERS = ("servetest1", "servetest2")


@pytest.fixture
def os_users():
    """Two throw-away OS users (this test's own: the hub's fixed users belong to tests/test_hub.py)."""
    if os.geteuid() != 0:
        pytest.fail("the isolation test needs root (it creates two OS users); the suite runs as root")
    for user in USERS:
        subprocess.run(["userdel", "-r", user], capture_output=True)
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", user], check=True)
    yield {u: pwd.getpwnam(u).pw_uid for u in USERS}
    for user in USERS:
        subprocess.run(["userdel", user], capture_output=True)


def as_user(user: str, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", *cmd], capture_output=True, text=True, timeout=60)


def test_isolation_between_students_and_from_the_service_state(os_users):
    base = Path(tempfile.mkdtemp(prefix="serve-isolation-", dir="/tmp"))
    try:
        os.chmod(base, 0o755)
        graded = []
        svc = make_service(base, lambda e, i: graded.append(e["student"]) or serve.Outcome("checked", fake_record()))
        os.chmod(svc.exchange, 0o755)
        os.chmod(svc.exchange / COURSE_ID, 0o755)
        os.chmod(svc.exchange / COURSE_ID / "inbound", 0o1733)  # nbgrader's: anyone may add, no one may list
        svc.start()
        try:
            one, two = USERS
            mine = inbound(svc.exchange, one, time.time(), os_users[one])
            forged = inbound(svc.exchange, one, time.time(), os_users[two])  # two submits in one's name
            drain(svc)
            assert graded == [one], graded  # the forged folder spent nothing of one's budget
            assert answer_of(svc.exchange, forged) == ""
            done = json.loads((svc.store.path("done", forged)).read_text())
            assert done["status"] == "ignored" and f"not by {one}" in done["reason"]
            assert "2 of 3" in answer_of(svc.exchange, mine)
            feedback = svc.exchange / COURSE_ID / "feedback"
            # two cannot list the feedback folder, so cannot find one's answer without one's secret
            assert as_user(two, "ls", str(feedback)).returncode != 0
            # the service's state (queue entries with names and results) is staff-only
            for path in (svc.store.state, svc.store.path("done", mine)):
                r = as_user(two, "cat", str(path)) if path.is_file() else as_user(two, "ls", str(path))
                assert r.returncode != 0 and "Permission denied" in r.stderr, (path, r)
            # the answer file itself is what nbgrader's release_feedback makes: readable by its hash
            page = next(feedback.glob("*.html"))
            assert oct(page.stat().st_mode & 0o777) == "0o644" and oct(feedback.stat().st_mode & 0o777) == "0o711"
        finally:
            svc.stop()
    finally:
        shutil.rmtree(base)
