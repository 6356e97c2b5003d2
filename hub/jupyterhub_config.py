"""JupyterHub configuration of the course hub (started by hub/hub.py, i.e. `make hub`).

Values come from the environment hub/hub.py sets (LEC4_HUB_PORT, LEC4_HUB_STATE,
LEC4_COURSE_ID, LEC4_HUB_PROXY); the user list and roles from hub/hub.py itself.
Every user's server is `jupyterhub-singleuser` from the course venv, started as that OS
user (LocalProcessSpawner), with JupyterLab 4, nbgrader and nbgitpuller. The role decides
the Jupyter config folder put on JUPYTER_CONFIG_PATH: hub/config/student (Assignments
panel only) or hub/config/staff (Formgrader, Create Assignment, the course folder).
"""
import os
import sys
from pathlib import Path

HUB = Path(__file__).resolve().parent
sys.path.insert(0, str(HUB))
import hub as course_hub  # noqa: E402  (hub/hub.py: users, groups, paths)

c = get_config()  # noqa: F821
where = course_hub.paths(Path(os.environ["LEC4_HUB_STATE"]))
venv_bin = Path(sys.executable).parent

c.JupyterHub.bind_url = f"http://127.0.0.1:{os.environ['LEC4_HUB_PORT']}"
c.JupyterHub.db_url = f"sqlite:///{where['state'] / 'jupyterhub.sqlite'}"
c.JupyterHub.cookie_secret_file = str(where["state"] / "jupyterhub_cookie_secret")
c.JupyterHub.hub_port = int(os.environ["LEC4_HUB_API_PORT"])
c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{os.environ['LEC4_PROXY_API_PORT']}"
c.ConfigurableHTTPProxy.command = [os.environ["LEC4_HUB_PROXY"]]
c.ConfigurableHTTPProxy.pid_file = str(where["runtime"] / "proxy.pid")
c.JupyterHub.cleanup_servers = True  # stopping the hub stops every user's server
c.JupyterHub.cleanup_proxy = True

# Accounts: the OS users hub.py created; passwords checked by PAM (no PAM session: a container has no logind).
c.JupyterHub.authenticator_class = "pam"
c.PAMAuthenticator.open_sessions = False
c.Authenticator.allowed_users = set(course_hub.USERS)
c.Authenticator.admin_users = set(course_hub.ADMINS)

if os.environ.get(course_hub.SPAWNER_VAR, "local") == "slurm":
    # make hub-slurm: each user's server is a Slurm job of that user (hub/slurm_spawner.py)
    from slurm_spawner import CourseSlurmSpawner  # noqa: E402  (hub/slurm_spawner.py; registers /api/batchspawner)

    c.JupyterHub.spawner_class = CourseSlurmSpawner
    c.CourseSlurmSpawner.batchspawner_singleuser_cmd = str(venv_bin / "batchspawner-singleuser")
    c.CourseSlurmSpawner.poll_interval = 10  # a job that ends under a running server is noticed within seconds
    c.CourseSlurmSpawner.startup_poll_interval = 1
else:
    # make hub: each user's server a process of that user, on a port no other server of the hub holds
    from local_spawner import CourseLocalSpawner  # noqa: E402  (hub/local_spawner.py)

    c.JupyterHub.spawner_class = CourseLocalSpawner
c.Spawner.cmd = [str(venv_bin / "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.http_timeout = 120
c.Spawner.start_timeout = 120


def role_config(spawner):
    """Students get hub/config/student, instructor and TA hub/config/staff; both learn the course."""
    spawner.environment.update(course_hub.user_environment(spawner.user.name, where, os.environ["LEC4_COURSE_ID"]))


c.Spawner.pre_spawn_hook = role_config

# H22: checks before the deadline (`python -m autograder serve`, README "Checking before the deadline"),
# a managed service: JupyterHub starts it with the hub (and again if it dies) and stops it with the hub
# (SIGINT, then SIGTERM, SIGKILL). It runs as the hub's user (root: it reads every student's inbound
# folder; its state, STATE/serve, is root-only); its grading workers carry the hub's instance mark, so
# a stop leaves nothing behind. LEC4_CHECKS_PER_DAY (optional) overrides the specs' budget.
c.JupyterHub.services = [{
    "name": "checks-before-deadline",
    "command": [sys.executable, "-m", "autograder", "--course-root", str(where["course"]), "--exchange",
                str(where["exchange"]), "serve", *course_hub.checked_assignments(), "--state", str(where["state"] / "serve"),
                "--poll", "1", *(["--checks-per-day", os.environ["LEC4_CHECKS_PER_DAY"]]
                                 if os.environ.get("LEC4_CHECKS_PER_DAY") else [])],
    "cwd": str(course_hub.ROOT),
    "environment": {course_hub.INSTANCE_VAR: os.environ[course_hub.INSTANCE_VAR],
                    "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"},
}]

# Idle servers stopped (jupyterhub-idle-culler, a managed service): a server without activity for
# LEC4_CULL_TIMEOUT s (hub/hub.py, default 1 h) is stopped -- its Slurm job ends and frees its
# CPUs/GPU; the user is kept, and so is everything in their home. Its role can only read activity
# and stop servers.
_cull = course_hub.cull_timeout()
c.JupyterHub.services.append({
    "name": "idle-culler",
    "command": [sys.executable, "-m", "jupyterhub_idle_culler", f"--timeout={_cull}",
                f"--cull-every={max(5, min(300, _cull // 6))}"],
    "environment": {course_hub.INSTANCE_VAR: os.environ[course_hub.INSTANCE_VAR]},
})
c.JupyterHub.load_roles = [{"name": "idle-culler", "services": ["idle-culler"],
                            "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"]}]
