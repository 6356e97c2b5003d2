"""The course hub with every user's server a Slurm job (``make hub-slurm``; issue 26), on the real
one-node Slurm of tests/servers.py, driven as its users would:

1. student3 logs in in Chromium, picks the CPU profile on the spawn page and gets JupyterLab from a
   Slurm job of their own (squeue: user student3, the profile's CPUs and memory);
2. the instructor releases hw-attention; student3 and student4 fetch and submit through their
   servers' nbgrader endpoints (what the Assignments panel's buttons call), i.e. from inside their
   Slurm jobs; student4 cannot list inbound or read student3's submission; the TA's collect gets both;
3. student3's job is killed under the running server (scancel): the hub notices, says the server is
   gone, and student3 starts again with every file intact;
4. an idle server is stopped by jupyterhub-idle-culler (its job ends, the home is kept) while a
   server with activity is left running;
5. a profile Slurm cannot satisfy (a GPU on this GPU-less node) and an unknown profile give the user
   a clear error.

What the browser course loop of tests/test_hub.py does on its local servers, this file proves
where it depends on the server being a Slurm job: the Nbgrader menu by role in JupyterLab served
from the job (student3: Assignment List, no Formgrader; the instructor's Formgrader answers from
the instructor's own job, student3's is 404), Validate running the notebook in a kernel inside the
job, and Fetch Feedback bringing the TA's feedback into the job's home. (Until issue 20 this file
also ran that whole loop in the browser on a second Slurm-mode hub: 140 s of a 2-core machine for
steps whose code does not depend on where the server runs.)

Needs root, Node.js (hub/node_modules) and slurm-wlm + munge (``make test`` installs them).
Its students are student3 and student4: tests/test_hub.py (student1, student2) may run beside it.
The instructor and TA accounts are shared; each hub has its own course folder and exchange.
"""
from __future__ import annotations

import json
import pwd
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from servers import slurm_cluster
from test_hub import ASSIGNMENT, NOTEBOOK, PY, as_user, chromium, course_hub, running_hub, shot  # noqa: F401

from rest_client import HubRequestError, Rest  # hub/rest_client.py (test_hub puts hub/ on sys.path)

pytestmark = [pytest.mark.browser]
# this file's students: not tests/test_hub.py's student1/student2, whose homes that file's hub uses when
# pytest-xdist runs the two files side by side
STUDENTS = ("student3", "student4")
CULL_TIMEOUT = 40  # s; the culler checks every max(5, timeout // 6) s (hub/jupyterhub_config.py)


@pytest.fixture(scope="module")
def slurm():
    # 4 CPUs on the 2-core machine: the course loop holds three 1-CPU servers at once (instructor,
    # student3, student4); Slurm schedules by what slurm.conf declares
    with slurm_cluster(cpus=4) as cluster:
        yield cluster


@contextmanager
def slurm_hub(slurm, **env: str):
    """A Slurm-mode hub for one test (each test its own: they fetch and release the same assignment)."""
    with running_hub("--spawner", "slurm", env={"SLURM_CONF": slurm.env["SLURM_CONF"], **env},
                     students=STUDENTS) as where:
        yield {**where, "slurm": slurm}


@pytest.fixture
def hub(slurm):
    with slurm_hub(slurm, **{course_hub.CULL_VAR: str(CULL_TIMEOUT)}) as where:
        yield where


def rest(hub, user: str) -> Rest:
    return Rest(hub["url"], user, hub["passwords"][user], course_hub.course_id())


@contextmanager
def kept_active(client: Rest, every: float = 5):
    """Report ``client``'s user active every ``every`` s (an open JupyterLab tab) while the block runs."""
    stop = threading.Event()

    def beat():
        while not stop.wait(every):
            try:
                client.touch()
            except HubRequestError:  # no server at this moment (killed, restarting): nothing to keep alive
                pass

    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def jobs_of(slurm, user: str) -> list[dict]:
    """The user's jobs in squeue, with Slurm's own account of what they hold."""
    out = slurm.run("squeue", "-h", "-u", user, "-o", "%i %T %C %m %u %j")
    return [dict(zip(("id", "state", "cpus", "memory", "user", "name"), line.split()))
            for line in out.splitlines() if line.strip()]


def test_students_servers_are_slurm_jobs_and_the_course_runs_on_them(hub, chromium):
    slurm, course, exchange = hub["slurm"], hub["course"], hub["exchange"]
    cli = [PY, "-m", "autograder", "--course-root", str(course), "--exchange", str(exchange)]
    s1, s2 = rest(hub, "student3"), rest(hub, "student4")

    # 1. student3 in the browser: the spawn page offers the profiles; CPU -> JupyterLab from a Slurm job
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = context.new_page()
        page.set_default_timeout(120_000)
        page.goto(f"{hub['url']}/hub/login")
        page.fill("input[name=username]", "student3")
        page.fill("input[name=password]", hub["passwords"]["student3"])
        page.click("#login_submit")
        page.locator("input[name=profile][value=gpu]").wait_for()
        form = page.locator("form#spawn_form").inner_text()
        assert "CPU" in form and "One GPU" in form, form
        shot(page, "slurm-1-profiles")
        page.check("input[name=profile][value=cpu]")
        page.click("form#spawn_form [type=submit]")
        page.wait_for_url(f"**/user/student3/lab**", timeout=240_000)
        page.locator(".jp-LabShell").wait_for()
        shot(page, "slurm-1-lab-from-a-slurm-job")
        # nbgrader's lab extensions, by role, in the server the job runs
        page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
        menu = page.locator(".lm-Menu-content").first.inner_text()
        shot(page, "slurm-1-student-nbgrader-menu")
        assert "Assignment List" in menu and "Formgrader" not in menu and "Create assignment" not in menu, menu
        page.keyboard.press("Escape")
    finally:
        context.close()
    [job] = jobs_of(slurm, "student3")
    assert job["state"] == "RUNNING" and job["user"] == "student3", job
    assert (job["cpus"], job["memory"]) == ("1", "2G"), job  # the CPU profile of hub/slurm_spawner.py
    assert s1.model()["servers"][""]["ready"]

    with kept_active(s1):  # student3 keeps a JupyterLab tab open from here on; student4 does not
        release_submit_kill_and_cull(hub, cli, s1, s2, job)

    # 5. profiles Slurm cannot satisfy, and unknown ones: a clear error, no job left behind
    s1.stop()
    s1.call("POST", "/hub/api/users/student3/server", {"profile": "gpu"}, expect=(201, 202, 400, 500))
    failed = s1.wait(lambda m: not m["servers"] or not m["servers"].get("", {}).get("pending"), 120,
                     "the GPU spawn to end")
    assert not failed["servers"], failed
    log = hub["log"].read_text()
    assert "Slurm refused the server's job (One GPU profile)" in log, log[-3000:]
    assert not jobs_of(slurm, "student3")
    s1.call("POST", "/hub/api/users/student3/server", {"profile": "quantum"}, expect=(400, 500))
    assert "unknown profile 'quantum': expected one of cpu, gpu" in hub["log"].read_text()
    assert not jobs_of(slurm, "student3")  # refused before anything was submitted


def release_submit_kill_and_cull(hub, cli, s1: Rest, s2: Rest, job: dict) -> None:
    """Steps 2-4 of the module docstring (the caller keeps student3 active)."""
    slurm, course, exchange = hub["slurm"], hub["course"], hub["exchange"]
    # 2. release; both students fetch and submit from inside their jobs; isolation; the TA collects both
    r = as_user(hub, "instructor", *cli, "release", ASSIGNMENT)
    assert r.returncode == 0, r.stdout + r.stderr
    # the instructor's Formgrader, from the instructor's own Slurm job, sees it released; student3 has none
    staff = rest(hub, "instructor")
    staff.start({"profile": "cpu"})
    [staff_job] = jobs_of(slurm, "instructor")
    assert staff_job["state"] == "RUNNING" and staff_job["user"] == "instructor", staff_job
    listed = {a["name"]: a["status"] for a in staff.call("GET", "/user/instructor/formgrader/api/assignments")}
    assert listed.get(ASSIGNMENT) == "released" and listed.get("hw-conv") == "draft", listed
    s1.call("GET", "/user/student3/formgrader", expect=(404,))
    staff.stop()
    assert not jobs_of(slurm, "instructor")
    s2.start({"profile": "cpu"})
    assert len(jobs_of(slurm, "student4")) == 1
    for student in (s1, s2):
        student.touch()
        listed = student.nbgrader("fetch", ASSIGNMENT)
        assert any(a["assignment_id"] == ASSIGNMENT and a["status"] == "fetched" for a in listed), listed
        home = Path(pwd.getpwnam(student.user).pw_dir)
        assert (home / ASSIGNMENT / NOTEBOOK).is_file()
        listed = student.nbgrader("submit", ASSIGNMENT)
        assert any(a["assignment_id"] == ASSIGNMENT and a["status"] == "submitted" for a in listed), listed
    # Validate (after student4's turn: its idle server may be culled from here on): nbgrader runs
    # student3's notebook in a kernel inside the job
    report = s1.call("POST", "/user/student3/assignments/validate", {"path": f"{ASSIGNMENT}/{NOTEBOOK}"}, timeout=600)
    assert report.get("success") and "NotImplementedError" in json.dumps(report["value"]), report
    inbound = exchange / course_hub.course_id() / "inbound"
    mine = sorted(p for p in inbound.iterdir() if p.name.startswith("student3+"))
    assert mine, list(inbound.iterdir())
    for argv in (["ls", str(inbound)], ["cat", str(mine[-1] / NOTEBOOK)]):
        r = as_user(hub, "student4", *argv)
        assert r.returncode != 0 and "Permission denied" in r.stderr, (argv, r.stdout, r.stderr)
    r = as_user(hub, "ta", *cli, "collect", ASSIGNMENT)
    assert r.returncode == 0, r.stdout + r.stderr
    for student in ("student3", "student4"):
        assert (course / "submitted" / student / ASSIGNMENT / NOTEBOOK).is_file(), r.stdout
    # the TA grades; Fetch Feedback from inside student3's job brings the feedback into the home
    for args in (["autograde", ASSIGNMENT, "--student", "student3"], ["feedback", ASSIGNMENT],
                 ["release-feedback", ASSIGNMENT]):
        r = as_user(hub, "ta", *cli, *args)
        assert r.returncode == 0, f"{args}: {r.stdout[-3000:]}{r.stderr[-3000:]}"
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_hub.course_id()) as gb:
        submission = gb.find_submission(ASSIGNMENT, "student3")
        score, max_score = submission.score, submission.max_score
    s1.nbgrader("fetch_feedback", ASSIGNMENT)
    [feedback] = Path(pwd.getpwnam("student3").pw_dir, ASSIGNMENT, "feedback").glob(f"*/{ASSIGNMENT}.html")
    text = feedback.read_text()
    # nbgrader's feedback heading: (Score: S / M), each `| float | round(2)`
    assert f"(Score: {round(float(score), 2)} / {round(float(max_score), 2)})" in text and "apply_rope" in text, text[:3000]

    # 3. student3's job killed under the running server: the hub notices; student3 starts again, files intact
    home1 = Path(pwd.getpwnam("student3").pw_dir)
    marker = home1 / ASSIGNMENT / "my-notes.txt"
    r = as_user(hub, "student3", "sh", "-c", f"echo 'kept across a killed job' > {marker}")
    assert r.returncode == 0, r.stderr
    slurm.run("scancel", job["id"])
    s1.wait(lambda m: not m["servers"], 60, "the hub to notice the killed job")
    assert not jobs_of(slurm, "student3")
    again = s1.start({"profile": "cpu"})
    [job2] = jobs_of(slurm, "student3")
    assert job2["id"] != job["id"] and again["servers"][""]["ready"]
    assert marker.read_text() == "kept across a killed job\n"
    assert (home1 / ASSIGNMENT / NOTEBOOK).is_file()

    # 4. the culler: student4 idle -> its server and job end (home kept); student3 active -> kept
    s2_notebook = Path(pwd.getpwnam("student4").pw_dir) / ASSIGNMENT / NOTEBOOK
    deadline = time.monotonic() + CULL_TIMEOUT + 120
    while s2.model()["servers"] and time.monotonic() < deadline:
        time.sleep(3)
    assert not s2.model()["servers"], "the idle server of student4 was not culled"
    assert not jobs_of(slurm, "student4")
    assert s2_notebook.is_file()
    assert s1.model()["servers"][""]["ready"], "student3's active server was culled"
    assert "Culling server student4" in hub["log"].read_text()
    assert "Culling server student3" not in hub["log"].read_text()
