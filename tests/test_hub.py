"""The course in a real JupyterHub (hub/hub.py, what `make hub` runs), driven as its users
would in headless Chromium (Playwright), each user in their own browser profile:

1. the instructor releases hw-attention (the project's CLI, as OS user `instructor`) and sees it in Formgrader;
2. student1 fetches it in the Assignments panel, fills apply_rope, runs all, validates, submits;
3. student2 submits a partial solution, then from a notebook on their own server tries to list
   the inbound folder, read student1's submission and overwrite it: all three are denied;
4. the TA collects, autogrades, writes and returns feedback (`python -m autograder ...`, as OS
   user `ta`); student1 fetches and opens it (nothing requested outside the hub: math offline);
5. students have no Formgrader / Create Assignment (the instructor has both);
6. the built book's launch button opens the chapter in student1's server through nbgitpuller,
   from a local git clone of this repository.

Needs root (OS users), Node.js and hub/node_modules (`make test` runs `npm ci` in hub/).
Screenshots: artifacts/hub/. Step times are printed (pytest -s) and summarised in the README.
"""
from __future__ import annotations

import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import nbformat
import pytest
import yaml

from conftest import ROOT
from servers import free_port, stop_process_group
from test_browser import CHROMIUM, FLAGS

sys.path.insert(0, str(ROOT / "hub"))
import hub as course_hub  # noqa: E402

pytestmark = [pytest.mark.browser]
ASSIGNMENT, NOTEBOOK = "hw-attention", "hw-attention.ipynb"
SHOTS = ROOT / "artifacts" / "hub"
PY = sys.executable
TIMES: dict[str, float] = {}
FEEDBACK: dict[str, list] = {}  # what step 4 saw when student1 opened the feedback


# ---------------------------------------------------------------- helpers
def as_user(hub, user: str, *cmd: str, timeout: float = 900, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a command as one of the hub's OS users, in the environment of a terminal of their server
    (in the checkout, or in ``cwd``: a student's nbgrader fetches into and submits from their home)."""
    home = pwd.getpwnam(user).pw_dir
    env = course_hub.user_environment(user, hub, course_hub.course_id())
    argv = ["runuser", "-u", user, "--", "env", f"HOME={home}", *(f"{k}={v}" for k, v in env.items()),
            "sh", "-c", 'umask 002; exec "$@"', "sh", *cmd]
    return subprocess.run(argv, cwd=cwd or ROOT, capture_output=True, text=True, timeout=timeout)


def solution_source(grade_id: str) -> str:
    """The instructor's code of one solution cell, as a student who got it right would write it."""
    nb = nbformat.read(ROOT / "solutions" / ASSIGNMENT / NOTEBOOK, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    lines = [l for l in cell.source.splitlines() if "### BEGIN SOLUTION" not in l and "### END SOLUTION" not in l]
    return "\n".join(lines)


def points(prefix: str) -> float:
    """Points of the graded cells of one task, from the instructor notebook's nbgrader metadata."""
    nb = nbformat.read(ROOT / "solutions" / ASSIGNMENT / NOTEBOOK, as_version=4)
    return sum(c.metadata["nbgrader"].get("points", 0) for c in nb.cells
               if c.metadata.get("nbgrader", {}).get("grade") and
               c.metadata["nbgrader"]["grade_id"].startswith(prefix))


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


class timed:
    """Record the wall time of one step of the loop into TIMES."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.start = time.monotonic()

    def __exit__(self, *exc):
        TIMES[self.name] = time.monotonic() - self.start
        print(f"[hub] {self.name}: {TIMES[self.name]:.1f} s", flush=True)


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def hub():
    """A hub from hub/hub.py on a free port with its own state folder; stopped like Ctrl-C."""
    with running_hub() as where:
        yield where


@contextmanager
def running_hub(*start_args: str, env: dict[str, str] | None = None, students: tuple[str, ...] = ("student1", "student2")):
    """Start ``hub/hub.py start --port FREE *start_args`` (with ``env`` added) on its own state
    folder; yield its paths, URL and passwords; then stop it like Ctrl-C and check nothing is left.

    ``students``: the student accounts this test drives (their earlier work is moved aside; the hub
    gets accounts up to the highest). The Slurm mode's tests drive their own (student3, student4), so
    they never touch the homes of tests/test_hub.py's students when the two files run side by side."""
    users = ["instructor", "ta", *students]
    count = max(int(name.removeprefix("student")) for name in students)
    if os.geteuid() != 0:
        pytest.fail("the hub test needs root (it creates the OS users instructor, ta, student1, student2)")
    if not course_hub.PROXY.exists():
        pytest.fail("hub/node_modules missing: run `npm ci --prefix hub` (make test does)")
    state = Path(tempfile.mkdtemp(prefix="lec4-hub-"))
    os.chmod(state, 0o755)
    # earlier runs' work of these test accounts is moved aside, never deleted
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for user in users:
        try:
            home = Path(pwd.getpwnam(user).pw_dir)
        except KeyError:
            continue
        for name in (ASSIGNMENT, "hw-conv", "lecture4-book", "probe.ipynb", "deadlines.ipynb",
                     ".local/share/jupyter/nbgrader_cache"):
            if (home / name).exists():
                (home / f"before-hub-test-{stamp}").mkdir(exist_ok=True)
                shutil.move(str(home / name), str(home / f"before-hub-test-{stamp}" / Path(name).name))
    port = free_port()
    env = {**os.environ, **(env or {}), "LEC4_HUB_STATE": str(state), course_hub.STUDENTS_VAR: str(count)}
    start = time.monotonic()
    # started as a background job is (`make hub &`, `make test &`): SIGINT ignored; Ctrl-C must still stop it
    proc = subprocess.Popen([PY, str(ROOT / "hub" / "hub.py"), "start", "--port", str(port), *start_args],
                            cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=_ignore_sigint)
    try:  # from here on, whatever fails, the finally below stops the hub and all it started
        banner = []
        for line in proc.stdout:
            banner.append(line)
            if line.startswith("Stop with"):
                break
        text = "".join(banner)
        if proc.poll() is not None or "is up at" not in text:
            proc.wait(10)
            pytest.fail(f"the hub did not start:\n{text}{proc.stdout.read()}")
        TIMES["hub start"] = time.monotonic() - start
        where = course_hub.paths(state)
        every = json.loads(where["accounts"].read_text())  # shared by every hub of this checkout
        passwords = {user: every[user] for user in users}
        for user, password in passwords.items():  # the banner shows every account of this hub with its password
            assert re.search(rf"^\s+{user}\s+.*\s{re.escape(password)}$", text, re.M), text
        url = f"http://127.0.0.1:{port}"
        assert url in text
        yield {"url": url, "passwords": passwords, "state": state, **where}
        assert course_hub.leftover_processes(state), "the hub's processes are not found by their mark"
        proc.send_signal(signal.SIGINT)  # what Ctrl-C in `make hub` sends (SIGINT ignored: see _ignore_sigint)
        rest = proc.communicate(timeout=90)[0]
        assert proc.returncode == 0, rest
        assert "nothing left running" in rest, rest
        assert not course_hub.leftover_processes(state)
        with socket.socket() as sock:  # the port is free again
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
    finally:  # escalates (SIGINT, SIGTERM, SIGKILL of its group, then whatever of this hub is left)
        stop_process_group(proc, signal.SIGINT, 90)
        course_hub.kill_leftovers(state)
        shutil.rmtree(state, ignore_errors=True)


def _ignore_sigint():
    """What a background job inherits from its shell: SIGINT ignored."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium not found: install Debian's chromium (`make test` does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield browser
        browser.close()


def login(chromium, hub, user: str):
    """A fresh browser context (its own cookies) logged in as ``user`` through the hub's login form."""
    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(f"{hub['url']}/hub/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", hub["passwords"][user])
    page.click("#login_submit")
    # the lab, or the Slurm mode's profile page (/hub/spawn; not /hub/spawn-pending, where a server starts)
    profile_page = r"/hub/spawn(?!-pending)"
    page.wait_for_url(re.compile(rf"/user/{user}/lab|{profile_page}"), timeout=120_000)
    if re.search(profile_page, page.url):  # the profile page (hub/slurm_spawner.py): CPU
        page.check("input[name=profile][value=cpu]")
        page.click("form#spawn_form [type=submit]")
        page.wait_for_url(re.compile(rf"/user/{user}/lab"), timeout=240_000)
    page.locator(".jp-LabShell").wait_for()
    page.locator(".jp-DirListing-content").wait_for()
    return context, page


def api(page, hub, user: str, method: str, path: str, data=None):
    """Call the user's Jupyter server REST API from their browser session (cookies + XSRF)."""
    xsrf = next((c["value"] for c in page.context.cookies(f"{hub['url']}/user/{user}/") if c["name"] == "_xsrf"), "")
    reply = page.request.fetch(f"{hub['url']}/user/{user}/api/{path}", method=method,
                               headers={"X-XSRFToken": xsrf, "Content-Type": "application/json"},
                               data=json.dumps(data) if data is not None else None)
    assert reply.ok, f"{method} {path}: {reply.status} {reply.text()[:500]}"
    return reply.json() if reply.text() else None


def open_assignments(page):
    page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
    page.locator(".lm-Menu-itemLabel", has_text="Assignment List").click()
    panel = page.locator("#nbgrader-assignment-list")
    panel.wait_for()
    return panel


def fetch_and_fill(page, hub, user: str, grade_id: str):
    """Assignments panel -> Fetch; then fill one solution cell of the fetched notebook."""
    panel = open_assignments(page)
    panel.get_by_role("button", name="Fetch", exact=True).click()
    panel.locator("#fetched_assignments_list").get_by_text(ASSIGNMENT).first.wait_for()
    home = Path(pwd.getpwnam(user).pw_dir)
    assert (home / ASSIGNMENT / NOTEBOOK).exists()
    model = api(page, hub, user, "GET", f"contents/{ASSIGNMENT}/{NOTEBOOK}")
    cells = model["content"]["cells"]
    cell = next(c for c in cells if c["metadata"].get("nbgrader", {}).get("grade_id") == grade_id)
    assert "NotImplementedError" in "".join(cell["source"])  # the release holds no solution
    cell["source"] = solution_source(grade_id)
    api(page, hub, user, "PUT", f"contents/{ASSIGNMENT}/{NOTEBOOK}",
        {"type": "notebook", "format": "json", "content": model["content"]})
    return panel


def submit(page, panel, user: str) -> None:
    panel.get_by_role("button", name="Submit", exact=True).first.click()
    panel.locator("#submitted_assignments_list").get_by_text(ASSIGNMENT).first.wait_for()


def run_notebook(page, path: str) -> None:
    """Open a notebook in JupyterLab, wait for its kernel, run all cells; wait until none is running."""
    page.goto(page.url.split("/lab")[0] + f"/lab/tree/{path}")
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").first.wait_for()  # the open tab, not a restored one behind it
    page.locator("#jp-main-statusbar").get_by_text("Python 3 (ipykernel) | Idle").first.wait_for(timeout=180_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    page.locator(".jp-InputPrompt", has_text=re.compile(r"\[\d+\]")).first.wait_for(timeout=300_000)
    page.wait_for_function("() => !Array.from(document.querySelectorAll('.jp-InputPrompt'))"
                           ".some(e => e.textContent.includes('[*]'))", timeout=300_000)


def submission_of(hub, student: str) -> Path:
    inbound = hub["exchange"] / course_hub.course_id() / "inbound"
    found = sorted(inbound.glob(f"{student}+{ASSIGNMENT}+*"))
    assert len(found) == 1, f"{student}: submissions in the exchange {found}"
    return found[0]


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return digest.hexdigest()


# ---------------------------------------------------------------- the loop
@contextmanager
def screenshots_on_failure(chromium):
    """If the block fails, a screenshot of every open page: what each user saw."""
    try:
        yield
    except BaseException:
        for i, context in enumerate(chromium.contexts):
            for j, page in enumerate(context.pages):
                shot(page, f"failed-{i}-{j}")
        raise


def test_course_loop_in_jupyterhub(hub, chromium, request):
    with screenshots_on_failure(chromium):
        course_loop(hub, chromium, request)


def course_loop(hub, chromium, request):
    """Steps 1-6 of the module docstring (the Slurm mode proves what depends on its servers in
    tests/test_hub_slurm.py)."""
    first, second = "student1", "student2"
    loop_start = time.monotonic()
    course, exchange = hub["course"], hub["exchange"]
    cli = [PY, "-m", "autograder", "--course-root", str(course), "--exchange", str(exchange)]

    # 1. instructor releases (CLI) and sees it released in Formgrader
    with timed("1 instructor releases, sees it in Formgrader"):
        r = as_user(hub, "instructor", *cli, "release", ASSIGNMENT)
        assert r.returncode == 0, r.stdout + r.stderr
        assert (exchange / course_hub.course_id() / "outbound" / ASSIGNMENT / NOTEBOOK).exists()
        instructor_ctx, instructor = login(chromium, hub, "instructor")
        instructor.goto(f"{hub['url']}/user/instructor/formgrader/manage_assignments")
        row = instructor.locator("tr", has_text=ASSIGNMENT).first
        row.wait_for()
        assert "released" in row.inner_text(), row.inner_text()  # the Status column
        assert "draft" in instructor.locator("tr", has_text="hw-conv").first.inner_text()  # not released
        shot(instructor, "1-formgrader-released")

    # 2. student1: fetch, fill apply_rope, run all, validate, submit
    with timed("2 student1 fetches, fills, validates, submits"):
        s1_ctx, s1 = login(chromium, hub, first)
        fetch_and_fill(s1, hub, first, "apply_rope")
        run_notebook(s1, f"{ASSIGNMENT}/{NOTEBOOK}")
        outputs = s1.locator(".jp-OutputArea-output").all_inner_texts()
        assert not any("apply_rope" in o and "Error" in o for o in outputs[:6]), outputs[:6]
        s1.get_by_role("button", name="Validate").first.click()
        dialog = s1.locator(".jp-Dialog", has_text="Validation Results")
        dialog.wait_for(timeout=300_000)
        report = dialog.inner_text()
        shot(s1, "2-student1-validate")
        # apply_rope done, the two other tasks still raise NotImplementedError
        assert "NotImplementedError" in report and "gqa_attention" in report, report
        dialog.get_by_role("button", name="Ok").click()
        panel = open_assignments(s1)
        submit(s1, panel, first)
        shot(s1, "2-student1-submitted")
        s1_submission = submission_of(hub, first)
        s1_digest = tree_digest(s1_submission)

    # 3. student2 submits a partial solution, then tries to read/overwrite student1's submission
    with timed("3 student2 submits, is denied student1's submission"):
        s2_ctx, s2 = login(chromium, hub, second)
        panel = fetch_and_fill(s2, hub, second, "gqa_attention")
        submit(s2, panel, second)
        target = s1_submission / NOTEBOOK
        probe = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            "import os\n"
            f"inbound, target = {str(s1_submission.parent)!r}, {str(target)!r}\n"
            "for what, attempt in [('list', lambda: os.listdir(inbound)),\n"
            "                      ('read', lambda: open(target).read()),\n"
            "                      ('overwrite', lambda: open(target, 'w').write('{}')),\n"
            "                      ('replace', lambda: os.replace(target, target + '.x'))]:\n"
            "    try:\n"
            "        attempt()\n"
            "        print(what, 'ALLOWED')\n"
            "    except OSError as err:\n"
            "        print(what, 'DENIED', type(err).__name__)\n")])
        probe.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        api(s2, hub, second, "PUT", "contents/probe.ipynb",
            {"type": "notebook", "format": "json", "content": json.loads(nbformat.writes(probe))})
        run_notebook(s2, "probe.ipynb")
        out = s2.locator(".jp-OutputArea-output").first
        out.wait_for()
        printed = out.inner_text()
        shot(s2, "3-student2-denied")
        for what in ("list", "read", "overwrite", "replace"):
            assert f"{what} DENIED PermissionError" in printed, printed
        assert "ALLOWED" not in printed, printed
        assert tree_digest(s1_submission) == s1_digest  # student1's submission is untouched

    # 4. TA: collect, autograde, feedback, release feedback; student1 fetches and opens it
    with timed("4 TA grades and returns feedback, student1 reads it"):
        for args in (["collect", ASSIGNMENT], ["autograde", ASSIGNMENT, "--workers", "2"], ["feedback", ASSIGNMENT]):
            r = as_user(hub, "ta", *cli, *args)
            assert r.returncode == 0, f"{args}: {r.stdout[-3000:]}{r.stderr[-3000:]}"
        r = as_user(hub, "ta", *cli, "release-feedback", ASSIGNMENT)
        assert r.returncode == 0, r.stdout + r.stderr
        from nbgrader.api import Gradebook

        with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_hub.course_id()) as gb:
            s1_score = gb.find_submission(ASSIGNMENT, first).score
            s2_score = gb.find_submission(ASSIGNMENT, second).score
        assert s1_score == points("rope_"), (s1_score, points("rope_"))  # unaffected by student2
        assert s2_score == points("gqa_"), (s2_score, points("gqa_"))
        collected = course / "submitted" / first / ASSIGNMENT / NOTEBOOK
        assert collected.read_bytes() == (s1_submission / NOTEBOOK).read_bytes()  # graded what student1 sent

        panel = open_assignments(s1)
        panel.get_by_role("button", name="Fetch Feedback").first.click()
        view = panel.get_by_text("(view feedback)").first
        view.wait_for(timeout=60_000)
        view.click()
        html_file = next(Path(pwd.getpwnam(first).pw_dir, ASSIGNMENT, "feedback").glob(f"*/{ASSIGNMENT}.html"))
        s1.locator(".jp-DirListing-item", has_text=html_file.name).first.wait_for()
        shot(s1, "4-student1-feedback-folder")
        page = s1_ctx.new_page()
        external: list[str] = []
        page.on("request", lambda req: external.append(req.url) if not req.url.startswith(hub["url"]) else None)
        rel = html_file.relative_to(pwd.getpwnam(first).pw_dir)
        page.goto(f"{hub['url']}/user/{first}/files/{rel}", wait_until="networkidle")
        text = page.inner_text("body")
        shot(page, "4-student1-feedback")
        assert f"{s1_score:g}" in text and "apply_rope" in text, text[:2000]
        assert re.search(r"PASS", text) and re.search(r"FAIL", text), text[:3000]  # hidden-check hints
        hidden = (ROOT / "autograder" / "suites" / "hw_attention.py").read_text()
        release = (ROOT / "assignments" / ASSIGNMENT / NOTEBOOK).read_text()  # what students see anyway
        leaked = [l.strip() for l in hidden.splitlines()
                  if len(l.strip()) > 30 and l.strip() in text and json.dumps(l.strip())[1:-1] not in release]
        assert not leaked, f"hidden test source in the feedback: {leaked[:3]}"
        FEEDBACK["external requests"] = external  # checked by test_feedback_renders_math_offline
        page.close()

    # 5. students see neither Formgrader nor Create Assignment; the instructor sees both
    with timed("5 no Formgrader or Create Assignment for students"):
        def nbgrader_menu(page, user: str) -> str:
            page.goto(f"{hub['url']}/user/{user}/lab")
            page.locator(".jp-LabShell").wait_for()
            page.locator(".lm-MenuBar-itemLabel", has_text="Nbgrader").click()
            items = page.locator(".lm-Menu-content").first.inner_text()
            shot(page, f"5-{user}-nbgrader-menu")
            page.keyboard.press("Escape")
            return items

        staff_menu = nbgrader_menu(instructor, "instructor")
        assert "Formgrader" in staff_menu and "Create assignment" in staff_menu, staff_menu
        student_menu = nbgrader_menu(s1, first)
        assert "Assignment List" in student_menu, student_menu
        assert "Formgrader" not in student_menu and "Create assignment" not in student_menu, student_menu
        reply = s1.request.get(f"{hub['url']}/user/{first}/formgrader")
        assert reply.status == 404, f"{first}'s formgrader answered {reply.status}"
        reply = instructor.request.get(f"{hub['url']}/user/instructor/formgrader")
        assert reply.status == 200, f"instructor's formgrader answered {reply.status}"

    # 6. the built book's launch button opens the chapter in student1's server (nbgitpuller)
    with timed("6 launch button -> nbgitpuller -> chapter in JupyterLab"):
        book = request.getfixturevalue("launch_book")  # here, so steps 1-5 do not wait for a clean build
        page = launch(s1_ctx, hub, book, "modern_transformers")
        wait_for_notebook(page, "modern_transformers")  # a notebook (jupytext), not the text editor
        shot(page, "6-launch-button-chapter")
        pulled = Path(pwd.getpwnam(first).pw_dir, "lecture4-book", "book", "modern_transformers.md")
        committed = subprocess.run(["git", "show", "HEAD:book/modern_transformers.md"], cwd=ROOT,
                                   capture_output=True, check=True).stdout
        assert pulled.read_bytes() == committed
        # the launch repository brought the book, not the staff's material (nor its history)
        clone = pulled.parents[1]
        assert not [p for p in ("solutions", "autograder", "tests") if (clone / p).exists()], sorted(clone.iterdir())
        history = subprocess.run(["git", "-c", "safe.directory=*", "-C", str(clone), "log", "--all", "--name-only",
                                  "--format="],
                                 capture_output=True, text=True, check=True).stdout.split()
        assert history and not [f for f in history if f.startswith(("solutions/", "autograder/", "tests/"))]

    TIMES["whole loop"] = time.monotonic() - loop_start
    print("[hub] times: " + ", ".join(f"{k}: {v:.1f} s" for k, v in TIMES.items()), flush=True)
    for context in (instructor_ctx, s1_ctx, s2_ctx):
        context.close()


# ---------------------------------------------------------------- H25: every chapter runs from its launch button
@pytest.fixture(scope="module")
def launch_book(hub, tmp_path_factory) -> Path:
    """HEAD's book (what the launch repository holds) built with this hub's URL and launch
    repository. Returns the book folder. Its cells are not executed here: only the pages and
    their launch buttons are needed, and the tests run every chapter in the hub themselves
    (the executed site is tests/test_book.py's)."""
    where = tmp_path_factory.mktemp("launch")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", "HEAD", "book"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    book = where / "book"
    config = yaml.safe_load((book / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "off"
    config["launch_buttons"]["jupyterhub_url"] = hub["url"]
    config["repository"]["url"] = f"file://{hub['repo']}"  # the local launch repository `make hub` made
    config["sphinx"]["recursive_update"] = True  # add to the theme options, do not replace them
    config["sphinx"]["config"].setdefault("html_theme_options", {})["repository_provider"] = "github"
    (book / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    # not tools/build_book.py: without outputs, references to figures made by cells are warnings
    r = subprocess.run([str(Path(PY).with_name("jupyter-book")), "build", str(book), "--builder", "html"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and (book / "_build" / "html" / "index.html").exists(), \
        r.stdout[-3000:] + r.stderr[-3000:]
    return book


def notebook_chapters(book: Path) -> list[str]:
    """The pages of the book's table of contents that are notebooks (a MyST .md with a kernelspec,
    or an .ipynb): the pages Jupyter Book gives a launch button. Whatever chapters exist."""
    def files(node) -> list[str]:
        if isinstance(node, dict):
            return ([node["file"]] if "file" in node else []) + [f for v in node.values() for f in files(v)]
        return [f for v in node for f in files(v)] if isinstance(node, list) else []

    toc = yaml.safe_load((book / "_toc.yml").read_text())
    chapters = []
    for name in [toc["root"], *files(toc.get("parts", [])), *files(toc.get("chapters", []))]:
        md = book / f"{name}.md"
        if (book / f"{name}.ipynb").exists():
            chapters.append(name)
        elif md.exists() and md.read_text().startswith("---"):
            front = yaml.safe_load(md.read_text().split("---", 2)[1]) or {}
            if "kernelspec" in front:
                chapters.append(name)
    return chapters


def launch(context, hub, book: Path, chapter: str):
    """Click ``chapter``'s launch button on the built site; return the JupyterLab page it opens."""
    page = context.new_page()
    page.goto((book / "_build" / "html" / f"{chapter}.html").as_uri())
    link = page.locator("a[href*='/hub/user-redirect/git-pull']").first
    assert link.count(), f"{chapter}.html has no JupyterHub launch button"
    href = link.get_attribute("href")
    assert href.startswith(hub["url"]) and "lecture4-book" in href, href
    page.locator(".dropdown-launch-buttons button").first.click()
    with context.expect_page(timeout=60_000) as opened:  # the button's link has target="_blank"
        link.click()
    page.close()
    page = opened.value
    page.set_default_timeout(60_000)
    page.wait_for_url(re.compile(rf"/user/student1/lab/tree/lecture4-book/book/{chapter}"), timeout=180_000)
    return page


def wait_for_notebook(page, chapter: str) -> None:
    """The chapter's tab is the current one and shows a notebook (cells, a kernel), not the editor."""
    page.locator(".lm-TabBar-tab.lm-mod-current", has_text=chapter).first.wait_for()
    page.locator(".jp-NotebookPanel:visible .jp-Cell").first.wait_for()
    assert page.locator(".jp-FileEditor:visible").count() == 0, f"{chapter} opened in the text editor"


def kernel_message(payload) -> tuple[str, dict, dict]:
    """(channel, header, content) of one kernel websocket frame (JupyterLab 4's v1 protocol or JSON)."""
    if isinstance(payload, str):
        msg = json.loads(payload)
        return msg.get("channel", ""), msg.get("header", {}), msg.get("content", {})
    from jupyter_server.services.kernels.connection.base import deserialize_msg_from_ws_v1

    channel, parts = deserialize_msg_from_ws_v1(payload)
    return channel, json.loads(parts[0]), json.loads(parts[3])


def test_every_chapter_runs_from_its_launch_button(hub, chromium, launch_book):
    """Issue 25: each notebook page of the built book, opened from its launch button in this hub,
    lands in student1's JupyterLab as a notebook (jupytext) and runs, all cells, in student1's
    kernel, with no error. Errors are read from the kernel's own replies to the page (every
    execute_reply and iopub message on its websocket), not from the rendered text."""
    import jupytext

    chapters = notebook_chapters(launch_book)
    assert "modern_transformers" in chapters and len(chapters) >= 3, chapters
    context, first = login(chromium, hub, "student1")
    first.close()  # each chapter gets the page its launch button opens
    frames: list = []
    messages: list = []  # frames[:len(messages)] parsed, each once (a chapter sends megabytes of figures)

    def parsed() -> list:
        messages.extend(kernel_message(f) for f in frames[len(messages):])
        return messages

    def watch(page):
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(payload))
                                         if "/api/kernels/" in ws.url else None)

    context.on("page", watch)
    failures = []
    try:
        for chapter in chapters:
            start, frames[:], messages[:] = time.monotonic(), [], []
            page = launch(context, hub, launch_book, chapter)
            wait_for_notebook(page, chapter)
            page.locator("#jp-main-statusbar").get_by_text("Python 3 (ipykernel) | Idle").first.wait_for(
                timeout=180_000)
            pulled = Path(pwd.getpwnam("student1").pw_dir, "lecture4-book", "book", f"{chapter}.md")
            code_cells = sum(c.cell_type == "code" and bool(c.source.strip()) for c in jupytext.read(pulled).cells)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            deadline = time.monotonic() + 1800  # modern_transformers: 725 s in a clean build at load 15
            replies: list[dict] = []
            while time.monotonic() < deadline:
                page.wait_for_timeout(500)  # frames are parsed once each (parsed()): polling often costs nothing
                replies = [content for channel, header, content in parsed()
                           if channel == "shell" and header.get("msg_type") == "execute_reply"]
                if len(replies) >= code_cells or any(r.get("status") != "ok" for r in replies):
                    break
            page.wait_for_timeout(1000)  # the last outputs reach the page
            errors = [f"{c.get('ename')}: {c.get('evalue')}" for channel, h, c in parsed()
                      if channel == "iopub" and h.get("msg_type") == "error"]
            errors += [f"execute_reply {r.get('status')}: {r.get('ename', '')} {r.get('evalue', '')}"
                       for r in replies if r.get("status") != "ok"]
            shot(page, f"launch-{chapter}")
            print(f"[hub] {chapter}: {len(replies)}/{code_cells} cells in {time.monotonic() - start:.0f} s, "
                  f"errors: {errors}", flush=True)
            if errors or len(replies) != code_cells:
                failures.append(f"{chapter}: {len(replies)} of {code_cells} code cells ran; errors: {errors}")
            for session in api(page, hub, "student1", "GET", "sessions"):  # free student1's memory
                api(page, hub, "student1", "DELETE", f"kernels/{session['kernel']['id']}")
            page.close()
            # the next launch starts from a fresh JupyterLab layout (no restored tab starting a kernel)
            xsrf = next((c["value"] for c in context.cookies(f"{hub['url']}/user/student1/") if c["name"] == "_xsrf"), "")
            context.request.delete(f"{hub['url']}/user/student1/lab/api/workspaces/default",
                                   headers={"X-XSRFToken": xsrf})
    finally:
        context.close()
    assert not failures, "\n".join(failures)


def test_students_cannot_read_solutions_or_hidden_tests(hub):
    """A student's terminal reaches the checkout (its Python runs from .venv), but not the
    instructor notebooks, the hidden suites, the catalog or the git history; the library yes."""
    staff_only = [ROOT / "solutions" / ASSIGNMENT / NOTEBOOK, ROOT / "autograder" / "suites" / "hw_attention.py",
                  ROOT / "autograder" / "catalog", ROOT / ".git" / "HEAD", ROOT / "tests" / "e2e" / "classgen.py"]
    for path in staff_only:
        assert path.exists(), path
        r = as_user(hub, "student1", "cat" if path.is_file() else "ls", str(path))
        assert r.returncode != 0 and "Permission denied" in r.stderr, (path, r.returncode, r.stdout[:200], r.stderr)
    r = as_user(hub, "student1", "git", "-C", str(ROOT), "log", "-1", "--", "solutions")
    assert r.returncode != 0, r.stdout[:300]
    r = as_user(hub, "student1", PY, "-c", "import lec4.rope, lec4.homework; print('ok')")
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
    r = as_user(hub, "ta", "cat", str(ROOT / "autograder" / "suites" / "hw_attention.py"))
    assert r.returncode == 0, r.stderr  # the staff grade from here


def test_feedback_renders_math_offline(hub):
    """The feedback page student1 opened in step 4 requested nothing outside the hub."""
    assert "external requests" in FEEDBACK, "the loop did not reach step 4"
    assert not FEEDBACK["external requests"], f"the feedback page loads: {FEEDBACK['external requests'][:5]}"


def test_clear_errors_for_not_root_port_taken_missing_node(hub, tmp_path):
    """`make hub` refuses with a message naming the fix (the hub fixture made the venv reachable)."""
    start = [PY, str(ROOT / "hub" / "hub.py"), "start"]
    env = {**os.environ, "LEC4_HUB_STATE": str(tmp_path / "state")}
    r = subprocess.run(["runuser", "-u", "nobody", "--", *start], cwd="/", env=env, capture_output=True, text=True)
    assert r.returncode != 0 and "needs root" in r.stderr and "sudo make hub" in r.stderr, r.stderr
    assert "create the OS users" in r.stderr and "LocalProcessSpawner" in r.stderr, r.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([*start, "--port", str(port)], env=env, capture_output=True, text=True)
    assert r.returncode != 0 and f"port {port} is already in use" in r.stderr, r.stderr
    assert f"HUB_PORT={port + 1}" in r.stderr, r.stderr
    no_node = {**env, "PATH": str(Path(PY).parent)}  # the venv only: no node on PATH
    r = subprocess.run([*start, "--port", str(free_port())], env=no_node, capture_output=True, text=True)
    assert r.returncode != 0 and "Node.js not found" in r.stderr and "apt-get install nodejs" in r.stderr, r.stderr
    assert not (tmp_path / "state").exists()  # refused before touching anything


# ---------------------------------------------------------------- configured URLs (no hub needed)
def book_config() -> dict:
    return yaml.safe_load((ROOT / "book" / "_config.yml").read_text())


def test_release_notebooks_link_to_the_published_site():
    """Links to the book in the notebooks students fetch go to the published site (html.baseurl),
    never to a relative path (dead once fetched), and name pages the book has."""
    baseurl = book_config()["html"]["baseurl"]
    assert baseurl.startswith("https://"), f"book/_config.yml html.baseurl {baseurl!r}: the published site's URL"
    checked = []
    for path in sorted([*ROOT.glob("solutions/*/*.ipynb"), *ROOT.glob("assignments/*/*.ipynb")]):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "markdown":
                continue
            for target in re.findall(r"\]\(([^)\s]+)\)", cell.source):
                if target.startswith(("http://", "https://")) and not target.startswith(baseurl):
                    continue  # some other site
                assert target.startswith(baseurl), f"{path.relative_to(ROOT)}: link {target!r} is not on {baseurl}"
                page = target[len(baseurl):].split("#")[0]
                assert page.endswith(".html") and (ROOT / "book" / page.replace(".html", ".md")).exists(), \
                    f"{path.relative_to(ROOT)}: {target!r} names no page of book/"
                checked.append(target)
    assert len(checked) >= 2, f"expected the book link in solutions/ and assignments/, found {checked}"


def test_placeholder_hosts_are_reported_at_build_time(tmp_path):
    sys.path.insert(0, str(ROOT / "tools"))
    import build_book

    book = tmp_path / "book"
    book.mkdir()
    config = book_config()
    config["launch_buttons"]["jupyterhub_url"] = "https://hub.example.edu"
    config["html"]["baseurl"] = "https://www.example.org/book/"
    (book / "_config.yml").write_text(yaml.safe_dump(config))
    assert len(build_book.placeholder_urls(book)) == 2
    config["launch_buttons"]["jupyterhub_url"] = "https://hub.cs.cmu.edu"
    config["html"]["baseurl"] = "https://cmu-10423.github.io/lecture4-book/"
    (book / "_config.yml").write_text(yaml.safe_dump(config))
    assert build_book.placeholder_urls(book) == []


# (issue 19) A hub started with SIGINT ignored (`make hub &`) stops on SIGINT: every hub of these
# tests is started that way and stopped like that (running_hub). A student's hand-made inbound
# folder with links to the solutions and the hidden suite: tests/test_hostile_grading.py (linky,
# collected and graded as root, who could read every target).


# ---------------------------------------------------------------- H21: due dates, extensions, late penalty
def test_student_sees_own_due_date_and_late_penalty_and_ta_table_matches(hub, chromium):
    """hw-conv (the loop above uses hw-attention): the TA sets a due date 26 h in the past and the
    term's late days; student1 sees their own due date in the first code cell of the notebook
    they fetched (run in the browser); their
    (late) submission is graded with the penalty, which their feedback states; the TA's
    ``calendar`` table shows the same numbers as the grade record and the gradebook."""
    import datetime as dt

    from nbgrader.api import Gradebook

    assignment, notebook = "hw-conv", "hw-conv.ipynb"
    course, exchange = hub["course"], hub["exchange"]
    cli = [PY, "-m", "autograder", "--course-root", str(course), "--exchange", str(exchange)]
    nbgrader = [PY, "-m", "nbgrader"]
    r = as_user(hub, "instructor", *cli, "release", assignment)
    assert r.returncode == 0, r.stdout + r.stderr
    r = as_user(hub, "ta", *nbgrader, "db", "student", "add", "student1", f"--CourseDirectory.root={course}")
    assert r.returncode == 0, r.stdout + r.stderr
    due = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=26)).replace(microsecond=0)
    try:
        r = as_user(hub, "ta", *cli, "due", assignment, due.isoformat(), "--penalty-percent", "10", "--per", "day")
        assert r.returncode == 0, r.stdout + r.stderr
        r = as_user(hub, "ta", *cli, "calendar", "--late-days", "0")
        assert r.returncode == 0 and "wrote" in r.stdout, r.stdout + r.stderr
        r = as_user(hub, "student2", "cat", str(exchange / course_hub.course_id() / "calendar" / "student1.json"))
        assert r.returncode != 0, "student2 read student1's calendar"

        # student1 fetches, does conv2d_backward, submits (26 h after the due date: 2 started days)
        home = Path(pwd.getpwnam("student1").pw_dir)
        r = as_user(hub, "student1", *nbgrader, "fetch_assignment", assignment, cwd=home)
        assert r.returncode == 0, r.stdout + r.stderr
        nb = nbformat.read(home / assignment / notebook, as_version=4)
        source = nbformat.read(ROOT / "solutions" / assignment / notebook, as_version=4)
        answers = {c.metadata["nbgrader"]["grade_id"]: c.source for c in source.cells
                   if c.metadata.get("nbgrader", {}).get("solution")}
        first = next(iter(answers))
        for cell in nb.cells:
            if cell.metadata.get("nbgrader", {}).get("grade_id") == first:
                cell.source = "\n".join(l for l in answers[first].splitlines() if "### " not in l)
        nbformat.write(nb, home / assignment / notebook)
        r = as_user(hub, "student1", *nbgrader, "submit", assignment, cwd=home)
        assert r.returncode == 0, r.stdout + r.stderr

        # in the browser: student1's own due date, in the first code cell of the notebook they fetched
        context, page = login(chromium, hub, "student1")
        page.goto(page.url.split("/lab")[0] + f"/lab/tree/{assignment}/{notebook}")
        page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").first.wait_for()  # the open tab, not a restored one behind it
        page.locator("#jp-main-statusbar").get_by_text("Python 3 (ipykernel) | Idle").first.wait_for(timeout=180_000)
        cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell").first  # the open tab (a restored one may be behind it)
        assert "deadlines.show" in cell.inner_text(), cell.inner_text()
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        out = cell.locator(".jp-OutputArea-output").first
        out.wait_for(timeout=180_000)
        shown = out.inner_text()
        shot(page, "h21-student1-due-date")
        assert f"hw-conv: due {due:%a %Y-%m-%d %H:%M}" in shown and "10% of the maximum score per started day" in shown, shown
        assert "late days left for the term: 0 of 0" in shown, shown

        # the TA grades; student1 reads the penalty in the feedback
        for args in (["collect", assignment], ["autograde", assignment, "--student", "student1"],
                     ["feedback", assignment], ["release-feedback", assignment]):
            r = as_user(hub, "ta", *cli, *args)
            assert r.returncode == 0, f"{args}: {r.stdout[-3000:]}{r.stderr[-3000:]}"
        record = json.loads((course / "autograded" / ".records" / assignment / "student1.json").read_text())
        late = record["late"]
        assert late["penalty"] > 0 and "2 started days" in late["rule"], late
        measured = record["submission_time"]  # collect measured the inbound entry: an honest timestamp.txt counts
        assert measured["used"] == "timestamp.txt" and measured["changed"], measured
        with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_hub.course_id()) as gb:
            sub = gb.find_submission(assignment, "student1")
            assert sub.score - sub.late_submission_penalty == pytest.approx(late["final_score"])
        r = as_user(hub, "student1", *nbgrader, "fetch_feedback", assignment, cwd=home)
        assert r.returncode == 0, r.stdout + r.stderr
        html_file = next((home / assignment / "feedback").glob(f"*/{notebook.replace('.ipynb', '.html')}"))
        view = context.new_page()
        view.goto(f"{hub['url']}/user/student1/files/{html_file.relative_to(home)}", wait_until="networkidle")
        text = view.inner_text("body")
        shot(view, "h21-student1-feedback-penalty")
        assert f"Late penalty: -{late['penalty']:g} points" in text and f"{late['final_score']:g} / " in text, text[:3000]
        assert "2 started days" in text, text[:3000]
        assert "As graded: see 'Due date and late policy'" in text, text[:3000]  # the due-date cell's output
        view.close()
        context.close()

        r = as_user(hub, "ta", *cli, "calendar", assignment)
        assert r.returncode == 0, r.stdout + r.stderr
        row = next(l for l in r.stdout.splitlines() if l.strip().startswith("student1"))
        assert f"{late['penalty']:g}" in row and f"{late['final_score']:g}/{record['max_score']:g} (latest)" in row, r.stdout
    finally:  # later tests see hw-conv without a due date in the past
        as_user(hub, "ta", *cli, "due", assignment, "2099-01-01T00:00Z")


# ---------------------------------------------------------------- H22: checks before the deadline (autograder/serve.py)
# The hub's managed service `python -m autograder serve` (hub/jupyterhub_config.py) answers each
# submission through nbgrader's feedback exchange: Submit, then Fetch Feedback, as students already do.
H22_TIMES: list[float] = []


def _rope_source(wrong: bool) -> str:
    """apply_rope as a student writes it: right, or the catalog's "ignores base" mistake (fails hidden checks)."""
    if not wrong:
        return solution_source("apply_rope")
    text = (ROOT / "autograder" / "catalog" / "hw_attention" / "rope_base_ignored.py").read_text()
    return text[text.index("def apply_rope"):]


def _service_cpu(state: Path) -> tuple[int, float]:
    """(pid, CPU seconds) of this hub's checks service: the process and its live descendants (user +
    system, ended children included), read from /proc."""
    mark, tick = f"{course_hub.INSTANCE_VAR}={state}".encode(), os.sysconf("SC_CLK_TCK")
    procs = {}
    for proc in Path("/proc").iterdir():
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            procs[int(proc.name)] = (int(fields[1]), sum(int(v) for v in fields[11:15]) / tick)
        except (OSError, ValueError, IndexError):
            continue
    service = [pid for pid in procs if b"autograder\0" in _read(f"/proc/{pid}/cmdline") and
               b"\0serve\0" in _read(f"/proc/{pid}/cmdline") and mark in _read(f"/proc/{pid}/environ").split(b"\0")]
    assert len(service) == 1, f"expected one checks service of this hub, found {service}"
    tree, grew = set(service), True
    while grew:
        more = {pid for pid, (ppid, _) in procs.items() if ppid in tree} - tree
        tree |= more
        grew = bool(more)
    return service[0], sum(procs[pid][1] for pid in tree if pid in procs)


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


def test_checks_before_the_deadline_through_fetch_feedback(hub, chromium):
    """Issue 22: student1 submits a wrong apply_rope (Assignments panel), presses Fetch Feedback and
    reads which hidden checks failed; fixes it, resubmits, sees the change; a submission over the
    budget gets the message at once; after the due date (the TA moves it) checks are closed. The
    service's CPU (prepare + everything it graded so far) is printed."""
    from urllib.parse import quote

    course, exchange = hub["course"], hub["exchange"]
    cli = [PY, "-m", "autograder", "--course-root", str(course), "--exchange", str(exchange)]
    serving = re.compile(r"^serving checks before the deadline .*CPU used to prepare: ([\d.]+) s\)$", re.M)
    deadline = time.monotonic() + 600  # the service prepares its own course when the hub starts
    while not serving.search(hub["log"].read_text()):
        assert time.monotonic() < deadline, "the hub's checks service is not serving: " + hub["log"].read_text()[-3000:]
        time.sleep(1)
    prepare_cpu = float(serving.search(hub["log"].read_text()).group(1))
    service_pid, cpu_before = _service_cpu(hub["state"])
    if not (exchange / course_hub.course_id() / "outbound" / ASSIGNMENT / NOTEBOOK).exists():  # run alone
        r = as_user(hub, "instructor", *cli, "release", ASSIGNMENT)
        assert r.returncode == 0, r.stdout + r.stderr
    home = Path(pwd.getpwnam("student1").pw_dir)
    cache = home / ".local" / "share" / "jupyter" / "nbgrader_cache" / course_hub.course_id()
    feedback = home / ASSIGNMENT / "feedback"
    context, page = login(chromium, hub, "student1")
    try:
        panel = open_assignments(page)
        if not (home / ASSIGNMENT / NOTEBOOK).exists():
            panel.get_by_role("button", name="Fetch", exact=True).click()
            panel.locator("#fetched_assignments_list").get_by_text(ASSIGNMENT).first.wait_for()

        def write(source: str) -> None:
            model = api(page, hub, "student1", "GET", f"contents/{ASSIGNMENT}/{NOTEBOOK}")
            cell = next(c for c in model["content"]["cells"]
                        if c["metadata"].get("nbgrader", {}).get("grade_id") == "apply_rope")
            cell["source"] = source
            api(page, hub, "student1", "PUT", f"contents/{ASSIGNMENT}/{NOTEBOOK}",
                {"type": "notebook", "format": "json", "content": model["content"]})

        def submit_now() -> str:
            """Submit in the panel; the new submission's timestamp (from student1's nbgrader cache)."""
            before = set(cache.glob(f"student1+{ASSIGNMENT}+*"))
            panel = open_assignments(page)
            panel.get_by_role("button", name="Submit", exact=True).first.click()
            deadline = time.monotonic() + 120
            while not set(cache.glob(f"student1+{ASSIGNMENT}+*")) - before:
                assert time.monotonic() < deadline, "the Submit button made no submission"
                time.sleep(0.5)
            return (set(cache.glob(f"student1+{ASSIGNMENT}+*")) - before).pop().name.split("+")[2]

        def answer(stamp: str, timeout: float = 900) -> str:
            """Press Fetch Feedback until the answer to the submission ``stamp`` is there; its text as shown."""
            start = time.monotonic()
            while not (feedback / stamp / f"{ASSIGNMENT}.html").exists():
                assert time.monotonic() - start < timeout, f"no answer to {stamp} within {timeout:.0f} s"
                panel = open_assignments(page)
                panel.get_by_role("button", name="Fetch Feedback").first.click()
                time.sleep(3)
            H22_TIMES.append(round(time.monotonic() - start, 1))
            view = context.new_page()
            view.goto(f"{hub['url']}/user/student1/files/{ASSIGNMENT}/feedback/{quote(stamp)}/{ASSIGNMENT}.html",
                      wait_until="networkidle")
            text = view.inner_text("body")
            shot(view, f"h22-check-{len(H22_TIMES)}")
            view.close()
            return text

        def rope_part(text: str) -> list[str]:
            """The answer's lines under its apply_rope heading (up to the next task's)."""
            return text.split("\napply_rope\n", 1)[1].split("\ngqa_attention\n", 1)[0].splitlines()

        write(_rope_source(wrong=True))
        first = answer(submit_now())
        assert "not your grade" in first, first
        failed = [line for line in rope_part(first) if line.startswith("FAIL ")]
        assert failed, first  # rope_hidden is declared "verdicts": the failed hidden checks by name
        hidden = (ROOT / "autograder" / "suites" / "hw_attention.py").read_text()
        release = (ROOT / "assignments" / ASSIGNMENT / NOTEBOOK).read_text()
        leaked = [l.strip() for l in hidden.splitlines()
                  if len(l.strip()) > 30 and l.strip() in first and json.dumps(l.strip())[1:-1] not in release]
        assert not leaked, f"hidden test source in the answer: {leaked[:3]}"
        write(_rope_source(wrong=False))
        second = answer(submit_now())
        rope = rope_part(second)
        assert not [l for l in rope if l.startswith("FAIL")] and [l for l in rope if l.startswith("PASS")], second
        left = int(re.search(r"in the last 24 hours: (\d+) of (\d+)", second).group(1))
        stamps = [submit_now() for _ in range(left + 1)]  # the budget's rest, then one more
        over = answer(stamps[-1], timeout=120)  # answered at once, not after the queued ones
        assert "Not checked: you have used all" in over and "Your next check is available at" in over, over
        # after the due date (the TA moves it into the past): no more checks
        r = as_user(hub, "ta", *cli, "due", ASSIGNMENT, "2020-01-01T00:00Z")
        assert r.returncode == 0, r.stdout + r.stderr
        closed = answer(submit_now(), timeout=120)
        assert "Checks before the deadline are closed" in closed and "Nothing was run" in closed, closed
    finally:
        as_user(hub, "ta", *cli, "due", ASSIGNMENT, "2099-01-01T00:00Z")  # later tests see an open assignment
        context.close()
    pid, cpu_after = _service_cpu(hub["state"])
    assert pid == service_pid, "the checks service was restarted during the test (it died)"
    print(f"[hub] H22 seconds from Submit to the answer fetched: {H22_TIMES}; the service's CPU: "
          f"{prepare_cpu:.0f} s to prepare, {cpu_before - prepare_cpu:.0f} s for earlier tests' submissions, "
          f"{cpu_after - cpu_before:.0f} s during this test", flush=True)
