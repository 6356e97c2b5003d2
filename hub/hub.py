"""The course in a local multi-user JupyterHub: ``make hub`` (start) and ``make hub-stop``.

    python hub/hub.py start [--port 8000]   # as root: users, exchange, course folder, hub
    python hub/hub.py stop                  # stops a hub started from this checkout

What ``start`` sets up (idempotent; nothing a student or TA made is ever removed):

* OS users ``instructor`` and ``ta`` (group ``lec4-staff``), ``student1``, ``student2``
  (group ``lec4-students``), home folders 0700, each with a random password (PAM login)
  kept in ``STATE/accounts.txt`` (root only, 0600) and printed at start;
* the nbgrader exchange ``STATE/exchange`` (1777, as nbgrader expects: the instructor's
  ``release`` creates ``COURSE/inbound`` 2733 so students cannot list submissions);
* the staff's course folder ``STATE/course`` (group ``lec4-staff``, 2770): the instructor
  notebooks from ``solutions/``, generated (``python -m autograder generate``) into
  ``assignments/`` and the gradebook; linked as ``~/lec4-course`` for instructor and TA;
* what students must not read stays the staff's: every top-level entry of this checkout
  outside ``PUBLIC`` (solutions/, autograder/, tests/, .git, ...) gets group ``lec4-staff``
  and no access for others; the book's launch repository ``STATE/git/...`` is the public
  course repository of ``python -m autograder publish`` (book, library, release notebooks,
  student README; a history of its own);
* JupyterHub (LocalProcessSpawner) on ``--port`` with configurable-http-proxy from
  ``hub/node_modules`` (``npm ci`` in ``hub/``). Students get ``hub/config/student``
  (Assignments panel; Formgrader and Create Assignment off), staff ``hub/config/staff``;
  everyone ``hub/config/common`` (a book chapter's MyST .md opens as a notebook: jupytext).

``STATE`` is ``hub/state`` unless ``LEC4_HUB_STATE`` says otherwise (the tests use a
temporary one). Ctrl-C or ``stop`` ends the hub, the proxy and every user's server.
"""
from __future__ import annotations

import argparse
import errno
import functools
import grp
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HUB = Path(__file__).resolve().parent
ROOT = HUB.parent
VENV_BIN = Path(sys.executable).parent
STATE = Path(os.environ.get("LEC4_HUB_STATE", HUB / "state")).resolve()
# the OS users are shared by every hub of this checkout (tests run their own): one password file
ACCOUNTS = HUB / "state" / "accounts.txt"
STAFF_GROUP, STUDENT_GROUP = "lec4-staff", "lec4-students"
STUDENTS_VAR = "LEC4_HUB_STUDENTS"  # how many student accounts: student1 .. studentN (default 2; the load test: 20+)
_N = os.environ.get(STUDENTS_VAR, "2")
STUDENTS = int(_N) if _N.isdigit() and 1 <= int(_N) <= 500 else 0  # 0: refused by start() with a clear error
STAFF_USERS = ("instructor", "ta")
USERS = {**{name: STAFF_GROUP for name in STAFF_USERS},
         **{f"student{i}": STUDENT_GROUP for i in range(1, STUDENTS + 1)}}
ADMINS = {"instructor"}
ACCOUNT_COMMENT = "lec4 course hub account"
SPAWNER_VAR = "LEC4_HUB_SPAWNER"  # "local" (LocalProcessSpawner) or "slurm" (hub/slurm_spawner.py)
CULL_VAR = "LEC4_CULL_TIMEOUT"  # seconds without activity before jupyterhub-idle-culler stops a server
DEFAULT_CULL_TIMEOUT = 3600
INSTANCE_VAR = "LEC4_HUB_INSTANCE"  # in the environment of every process of one hub (its state folder)
COURSE_LINK = "lec4-course"  # ~/lec4-course of instructor and TA -> the course folder  # marks the users this script created
DEFAULT_PORT = 8000
NODE_MAJOR = 20  # configurable-http-proxy 5.2 needs Node.js >= 20
PROXY = HUB / "node_modules" / ".bin" / "configurable-http-proxy"


class HubError(SystemExit):
    """A precondition the hub cannot work without; the message names the fix."""

    def __init__(self, message: str):
        super().__init__(f"make hub: error: {message}")


def paths(state: Path = STATE) -> dict[str, Path]:
    """Where the hub keeps its state (one place for every path the config and tests use)."""
    return {"state": state, "exchange": state / "exchange", "course": state / "course",
            "accounts": ACCOUNTS, "pid": state / "hub.pid", "runtime": state / "runtime",
            "log": state / "jupyterhub.log", "repo": state / "git" / "cmu-10423" / "lecture4-book"}


@functools.lru_cache(maxsize=None)
def course_id() -> str:
    """The course id, read from the repository's nbgrader_config.py (its one source).

    Parsed, not executed: executing it loads the grading pipeline (torch), 25 s on a busy CPU."""
    text = (ROOT / "nbgrader_config.py").read_text()
    match = re.search(r"^c\.CourseDirectory\.course_id\s*=\s*[\"']([^\"']+)[\"']", text, re.M)
    if match is None:
        raise HubError("nbgrader_config.py sets no c.CourseDirectory.course_id = \"...\"; the hub needs the course id")
    return match.group(1)


def checked_assignments() -> tuple[str, ...]:
    """The assignments `python -m autograder serve` checks before the deadline (the managed service of
    hub/jupyterhub_config.py): every assignment of the course (each declares PRE_DEADLINE in its public spec).

    A function, not a module constant: solutions/ is staff-only once a hub ran, and importing this module
    as another user (the not-root error of `make hub`) must not fail on it."""
    return tuple(sorted(p.name for p in (ROOT / "solutions").iterdir() if p.is_dir()))


# ---------------------------------------------------------------- preconditions
def cull_timeout() -> int:
    """Idle seconds before a user's server is stopped (``LEC4_CULL_TIMEOUT``, default 1 h)."""
    value = os.environ.get(CULL_VAR, str(DEFAULT_CULL_TIMEOUT))
    if not value.isdigit() or int(value) < 10:
        raise HubError(f"{CULL_VAR}={value!r}: expected a whole number of seconds >= 10")
    return int(value)


def check_root() -> None:
    """Creating OS users and starting servers as them needs root: say exactly what fails."""
    if os.geteuid() != 0:
        raise HubError(
            "this needs root, and you are uid %d. Without root it cannot: create the OS users %s "
            "with their home folders; give the exchange and the course folder their owners and groups; "
            "let JupyterHub's LocalProcessSpawner start each user's server as that user; read passwords "
            "through PAM. Run it as root: `sudo make hub`." % (os.geteuid(), ", ".join(USERS)))


def check_node() -> None:
    """Node.js >= 20 and the pinned configurable-http-proxy (hub/package-lock.json) must be there."""
    node = shutil.which("node")
    if node is None:
        raise HubError(f"Node.js not found: JupyterHub's proxy (configurable-http-proxy) runs on Node.js >= "
                       f"{NODE_MAJOR}. Install it (Debian: `apt-get install nodejs npm`), then run `make hub` again.")
    version = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    major = int(version.lstrip("v").split(".")[0] or 0)
    if major < NODE_MAJOR:
        raise HubError(f"Node.js {version} is too old: configurable-http-proxy needs Node.js >= {NODE_MAJOR}.")
    if not PROXY.exists():
        raise HubError(f"{PROXY.relative_to(ROOT)} is missing: run `npm ci --prefix hub` "
                       "(`make hub` does) to install the pinned configurable-http-proxy.")


def check_port(port: int) -> None:
    """Fail early, naming the fix, when something already listens on the hub's port."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            raise HubError(f"port {port} is already in use (another hub? `make hub-stop`; or `ss -ltnp "
                           f"'sport = :{port}'` shows who). Pick a free one: `make hub HUB_PORT={port + 1}`.")


# ---------------------------------------------------------------- OS users and folders
def _run(*cmd: str, user: str | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run a command (as ``user`` with umask 002 and that user's HOME); fail loudly."""
    if user is not None:
        home = pwd.getpwnam(user).pw_dir
        cmd = ("runuser", "-u", user, "--", "env", f"HOME={home}", f"USER={user}",
               f"PATH={VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "sh", "-c", 'umask 002; exec "$@"', "sh", *cmd)
    result = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        raise HubError(f"`{' '.join(cmd)}` failed ({result.returncode}):\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return result


def ensure_group(name: str) -> None:
    try:
        grp.getgrnam(name)
    except KeyError:
        _run("groupadd", name)


def ensure_users(accounts: Path) -> dict[str, str]:
    """Create the course's OS users (homes 0700) with random passwords; reuse existing ones.

    A user of the same name that this script did not create is left alone: that is an error.
    """
    for group in set(USERS.values()):
        ensure_group(group)
    passwords = json.loads(accounts.read_text()) if accounts.exists() else {}
    for user, group in USERS.items():
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            _run("useradd", "--create-home", "--gid", group, "--shell", "/bin/bash", "--comment", ACCOUNT_COMMENT, user)
            entry = pwd.getpwnam(user)
            passwords.pop(user, None)
        if entry.pw_gecos.split(",")[0] != ACCOUNT_COMMENT:
            raise HubError(f"an OS user {user!r} already exists and was not created by `make hub` "
                           f"(its comment is {entry.pw_gecos!r}); remove or rename it, the hub will not take it over.")
        os.chmod(entry.pw_dir, 0o700)
        passwords.setdefault(user, secrets.token_urlsafe(12))
    # every account gets the password this file holds, also one it already had: the OS users belong
    # to the machine, the file to this checkout, and another checkout's hub may have set other ones
    _run("chpasswd", input="".join(f"{user}:{passwords[user]}\n" for user in USERS))
    accounts.write_text(json.dumps(passwords, indent=1))
    os.chmod(accounts, 0o600)
    return passwords


def make_interpreter_reachable() -> list[Path]:
    """Let the hub's users execute this venv's Python (pyenv keeps it under /root, mode 0700).

    Adds only o+x (enter, not list) to the folders on the way; returns those it changed.
    """
    changed = []
    for target in (Path(os.path.realpath(sys.executable)), ROOT):
        for folder in [*reversed(target.parents)]:
            mode = folder.stat().st_mode
            if not mode & 0o001:
                os.chmod(folder, mode | 0o001)
                changed.append(folder)
    return changed


def ensure_exchange(exchange: Path) -> None:
    """nbgrader's exchange root: world-writable (1777; sticky so no one deletes another's folder)."""
    exchange.mkdir(parents=True, exist_ok=True)
    os.chmod(exchange, 0o1777)


def ensure_course(course: Path) -> None:
    """The staff's course folder: instructor notebooks, generated release, gradebook (group lec4-staff)."""
    staff = grp.getgrnam(STAFF_GROUP).gr_gid
    instructor = pwd.getpwnam("instructor").pw_uid
    course.mkdir(parents=True, exist_ok=True)
    os.chown(course, instructor, staff)
    os.chmod(course, 0o2770)
    for source in sorted((ROOT / "solutions").iterdir()):
        target = course / "solutions" / source.name
        if target.exists():
            continue  # the instructor's own edits stay
        shutil.copytree(source, target)
        for path in [course / "solutions", *target.rglob("*"), target]:
            os.chown(path, instructor, staff)
            os.chmod(path, 0o2770 if path.is_dir() else 0o660)
        _run(str(VENV_BIN / "python"), "-m", "autograder", "--course-root", str(course), "generate", source.name,
             user="instructor", cwd=ROOT)
    for user, group in USERS.items():  # Formgrader wants the course inside the server's root (~)
        if group == STAFF_GROUP:
            link = Path(pwd.getpwnam(user).pw_dir) / COURSE_LINK
            if link.is_symlink() or not link.exists():
                link.unlink(missing_ok=True)
                link.symlink_to(course)
                os.lchown(link, pwd.getpwnam(user).pw_uid, grp.getgrnam(group).gr_gid)
    gradebook = course / "gradebook.db"
    if gradebook.exists():
        os.chmod(gradebook, 0o660)  # SQLite creates it 0644: the TA's autograde must write it too


def role(user: str) -> str:
    """``staff`` (instructor, TA) or ``student``."""
    return "staff" if user in STAFF_USERS else "student"


def config_path(user: str) -> str:
    """``user``'s Jupyter config folders: their role's (hub/config/student or hub/config/staff),
    then hub/config/common, what every user gets (JupyterLab opens a MyST .md -- a book chapter --
    as a notebook through jupytext: labconfig/default_setting_overrides.json)."""
    return os.pathsep.join(str(HUB / "config" / name) for name in (role(user), "common"))


def user_environment(user: str, where: dict[str, Path], course: str) -> dict[str, str]:
    """The environment of ``user``'s server and its terminals: which Jupyter config folders
    (:func:`config_path`) and the course values those configs read."""
    return {"JUPYTER_CONFIG_PATH": config_path(user), "LEC4_COURSE_ID": course,
            "LEC4_EXCHANGE": str(where["exchange"]), "LEC4_COURSE_ROOT": str(where["course"]),
            "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", INSTANCE_VAR: str(where["state"])}


# What students may see of this checkout (the book's launch repository holds less:
# autograder.publish.PUBLIC_PATHS): the library, the book and the release notebooks (and what
# runs their servers). Everything else --
# solutions/, autograder/ (hidden suites, catalog), tests/, .git (the history holds both) -- is
# the staff's.
PUBLIC = ("src", "book", "assignments", "hub", ".venv", "README.md", "pyproject.toml", "requirements.txt",
          "requirements-lock.txt", "environment.yml", "nbgrader_config.py", "Makefile")


def protect_staff_material() -> list[str]:
    """Make every top-level entry of the checkout outside ``PUBLIC`` unreadable by students.

    The entry gets group ``lec4-staff`` with group read/enter and nothing for others (its
    contents keep their modes: a folder others cannot enter hides all below it). Instructor
    and TA run ``python -m autograder`` from here; the sandboxed runs need only what the
    sandbox binds in. Returns the entries changed.
    """
    staff, changed = grp.getgrnam(STAFF_GROUP).gr_gid, []
    for entry in sorted(ROOT.iterdir()):
        if entry.name in PUBLIC or entry.is_symlink():
            continue
        info = entry.lstat()
        mode = info.st_mode & 0o7777
        wanted = (mode & ~0o007) | (0o050 if entry.is_dir() else 0o040)
        if info.st_gid != staff or mode != wanted:
            os.chown(entry, -1, staff)
            os.chmod(entry, wanted)
            changed.append(entry.name)
    return changed


def ensure_course_repository(repo: Path) -> None:
    """The book's launch repository (nbgitpuller pulls it into each student's home): the public
    course repository of this checkout's HEAD, written by the code of ``python -m autograder
    publish --update`` (:func:`autograder.publish.refresh`: book, library, release notebooks,
    student README; no solution or hidden test) in a history of its own. Set the book's
    repository.url to file://REPO to use it; nothing leaves the machine. Each start commits
    HEAD's public files anew (students' clones pull it as a fast-forward); uncommitted changes
    of this checkout are not in it, as with ``publish``."""
    from autograder import publish

    if (repo / ".git").exists():
        leaked = _run("git", "-C", str(repo), "log", "--all", "--format=%H", "--", "solutions", "autograder",
                      "tests").stdout.strip()
        if leaked:  # a full clone made by an older version of this script: its history holds solutions
            shutil.rmtree(repo)
    if not (repo / ".git").exists():
        repo.mkdir(parents=True, exist_ok=True)
        _run("git", "init", "--quiet", "--initial-branch", "main", str(repo))
    publish.refresh(repo, ROOT, "lec4 hub <hub@localhost>")
    # nbgitpuller clones it as each user; git refuses a repository another user owns unless the
    # user's ~/.gitconfig trusts it (git 2.39 ignores safe.directory from the environment)
    for user in USERS:
        trusted = subprocess.run(["runuser", "-u", user, "--", "env", f"HOME={pwd.getpwnam(user).pw_dir}", "git",
                                  "config", "--global", "--get-all", "safe.directory"], capture_output=True, text=True)
        if str(repo / ".git") not in trusted.stdout.split():
            _run("git", "config", "--global", "--add", "safe.directory", str(repo / ".git"), user=user)


# ---------------------------------------------------------------- the hub process
def hub_environment(port: int, where: dict[str, Path], spawner: str = "local") -> dict[str, str]:
    """What hub/jupyterhub_config.py reads (it has no other source for these values)."""
    hub_api, proxy_api = free_ports(2, exclude={port})
    return {**os.environ, "LEC4_HUB_PORT": str(port), "LEC4_HUB_STATE": str(where["state"]),
            "LEC4_COURSE_ID": course_id(), "LEC4_HUB_PROXY": str(PROXY),
            "LEC4_HUB_API_PORT": str(hub_api), "LEC4_PROXY_API_PORT": str(proxy_api),
            INSTANCE_VAR: str(where["state"]), SPAWNER_VAR: spawner,
            "PATH": f"{VENV_BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"}


def check_slurm() -> None:
    """The Slurm mode needs a Slurm the hub can submit to: ``sinfo`` must answer (``SLURM_CONF``
    names the cluster's configuration when it is not the system's)."""
    sinfo = shutil.which("sinfo")
    if sinfo is None:
        raise HubError("make hub-slurm: error: Slurm's client commands (sinfo, sbatch) are not installed; "
                       "Debian: apt-get install slurm-wlm, or use `make hub` (servers on this machine)")
    reply = subprocess.run([sinfo, "-h", "-o", "%P %a %D"], capture_output=True, text=True, timeout=30)
    if reply.returncode != 0 or not reply.stdout.strip():
        raise HubError("make hub-slurm: error: Slurm does not answer (`sinfo` said: "
                       f"{(reply.stderr or reply.stdout).strip() or 'no partition'}); start slurmctld/slurmd or set "
                       "SLURM_CONF to the cluster's slurm.conf")


def free_port() -> int:
    """A free local port for the hub's internal API and the proxy's API (two hubs may run)."""
    return free_ports(1, exclude=set())[0]


def free_ports(count: int, exclude: set[int]) -> list[int]:
    """``count`` distinct free local ports, none in ``exclude``.

    Each socket stays bound until all are picked, so two picks never return one port; ``exclude``
    holds the hub's public port, which the caller may have picked the same way (bind to 0, close)
    and nobody has bound yet: one CI run handed it out again as the proxy's API port, and the hub
    then asked its own proxy's public side for its routes (404) and exited."""
    socks, ports = [], []
    try:
        while len(ports) < count:
            sock = socket.socket()
            socks.append(sock)
            sock.bind(("127.0.0.1", 0))
            if sock.getsockname()[1] not in exclude:
                ports.append(sock.getsockname()[1])
        return ports
    finally:
        for sock in socks:
            sock.close()


def wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise HubError(f"JupyterHub exited with status {proc.returncode}; its log:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"{url}/hub/api", timeout=2) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise HubError(f"JupyterHub did not answer on {url} within {timeout:.0f} s; log: {log}")


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM the hub (it stops the proxy and every user's server), then wait; SIGKILL of its
    process group if stuck."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


def kill_leftovers(state: Path, grace: float = 10) -> list[str]:
    """End whatever of this hub still runs (a user's server the hub could not stop, an orphaned
    proxy): SIGTERM each, then SIGKILL after ``grace`` s. Returns what is still there (nothing)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for entry in leftover_processes(state):
            try:
                os.kill(int(entry.split()[0]), sig)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + grace
        while leftover_processes(state) and time.monotonic() < deadline:
            time.sleep(0.3)
        if not leftover_processes(state):
            break
    return leftover_processes(state)


def leftover_processes(state: Path = STATE) -> list[str]:
    """Processes of the hub with this state folder still running (the hub, proxy, users' servers
    and kernels all carry LEC4_HUB_INSTANCE=state in their environment); none after a stop."""
    mark = f"{INSTANCE_VAR}={state}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                if mark in (proc / "environ").read_bytes().split(b"\0"):
                    found.append(f"{proc.name} ({(proc / 'cmdline').read_text().replace(chr(0), ' ')[:100]})")
            except OSError:
                pass
    return found


def _exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


def start(port: int, spawner: str = "local") -> int:
    where = paths()
    check_root()
    check_node()
    check_port(port)
    cull_timeout()  # a bad LEC4_CULL_TIMEOUT fails here, not in the culler's service
    if not STUDENTS:
        raise HubError(f"{STUDENTS_VAR}={_N!r}: expected a number of student accounts from 1 to 500")
    if spawner == "slurm":
        check_slurm()
    started = time.monotonic()
    for key in ("state", "runtime"):
        where[key].mkdir(parents=True, exist_ok=True)
    os.chmod(where["state"], 0o755)
    os.chmod(where["runtime"], 0o700)
    if where["pid"].exists() and _alive(int(where["pid"].read_text())):
        raise HubError(f"a hub from this checkout is already running (pid {where['pid'].read_text()}): `make hub-stop`.")
    where["accounts"].parent.mkdir(parents=True, exist_ok=True)
    passwords = ensure_users(where["accounts"])
    for folder in make_interpreter_reachable():
        print(f"note: made {folder} enterable by other users (o+x, not listable) so they can run {sys.executable}")
    for name in protect_staff_material():
        print(f"note: {ROOT / name} is now readable by group {STAFF_GROUP} only (students must not read it)")
    ensure_exchange(where["exchange"])
    ensure_course(where["course"])
    ensure_course_repository(where["repo"])
    url = f"http://127.0.0.1:{port}"
    stopping = []
    proc = None

    def on_signal(signum, frame):
        stopping.append(signum)
        raise KeyboardInterrupt

    # Our own handlers, whatever was inherited: a hub started as a background job (`make hub &`,
    # a script, `make test &`) inherits SIGINT *ignored*, and Ctrl-C / kill -INT would do nothing.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        with open(where["log"], "w") as log:
            proc = subprocess.Popen([str(VENV_BIN / "jupyterhub"), "-f", str(HUB / "jupyterhub_config.py")],
                                    cwd=where["runtime"], env=hub_environment(port, where, spawner), stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        where["pid"].write_text(str(os.getpid()))
        wait_until_up(url, proc, where["log"])
        print(f"\nJupyterHub for {course_id()} is up at {url}  (started in {time.monotonic() - started:.1f} s)")
        print(f"  exchange: {where['exchange']}    course folder (staff): {where['course']}")
        print(f"  course repository for the launch buttons: file://{where['repo']}")
        print(f"  checks before the deadline (managed service `python -m autograder serve`): state "
              f"{where['state'] / 'serve'}, its answers in the log")
        print(f"  users' servers: {'Slurm jobs (batchspawner, hub/slurm_spawner.py)' if spawner == 'slurm' else 'processes on this machine'}"
              f"; idle servers stopped after {cull_timeout()} s (jupyterhub-idle-culler)")
        print(f"  log: {where['log']}\n")
        print(f"  {'account':<11} {'role':<22} password")
        for user, group in USERS.items():
            role = "instructor (admin)" if user in ADMINS else ("TA" if group == STAFF_GROUP else "student")
            print(f"  {user:<11} {role:<22} {passwords[user]}")
        print("\nStop with Ctrl-C or `make hub-stop`.", flush=True)
        proc.wait()
        print(f"JupyterHub exited by itself (status {proc.returncode}); log: {where['log']}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping JupyterHub, its proxy and every user's server ...", flush=True)
        return 0
    finally:
        if proc is not None:
            stop_process(proc)
        where["pid"].unlink(missing_ok=True)
        deadline = time.monotonic() + 15
        while leftover_processes(where["state"]) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = kill_leftovers(where["state"]) if leftover_processes(where["state"]) else []
        print("stopped; nothing left running." if not left else f"warning: still running: {left}", flush=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def stop() -> int:
    """Stop the hub started from this checkout (its `start` process cleans up and exits)."""
    pid_file = paths()["pid"]
    if not pid_file.exists():
        print("make hub-stop: no hub from this checkout is running.")
        return 0
    pid = int(pid_file.read_text())
    if not _alive(pid):
        pid_file.unlink()
        print(f"make hub-stop: the hub (pid {pid}) was not running; removed its stale pid file.")
        return 0
    os.kill(pid, signal.SIGTERM)
    for _ in range(120):
        if not _alive(pid):
            print("make hub-stop: hub stopped.")
            return 0
        time.sleep(0.5)
    print(f"make hub-stop: the hub (pid {pid}) did not stop within 60 s", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="hub/hub.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start_parser = sub.add_parser("start")
    start_parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    start_parser.add_argument("--spawner", choices=("local", "slurm"), default="local",
                              help="users' servers as processes here (default) or as Slurm jobs (make hub-slurm)")
    sub.add_parser("stop")
    args = parser.parse_args(argv)
    return start(args.port, args.spawner) if args.command == "start" else stop()


if __name__ == "__main__":
    sys.exit(main())
