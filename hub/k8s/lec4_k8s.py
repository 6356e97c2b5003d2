"""JupyterHub configuration of the course on Kubernetes (Zero to JupyterHub), the part YAML cannot say.

Mounted into the hub pod by ``hub.extraFiles.lec4`` of ``hub/k8s/config.yaml`` (``helm upgrade
... --set-file hub.extraFiles.lec4.stringData=hub/k8s/lec4_k8s.py``); the chart's
``jupyterhub_config.py`` loads every file of ``/usr/local/etc/jupyterhub/jupyterhub_config.d/``
with ``c`` in scope. It does for KubeSpawner what ``hub/jupyterhub_config.py``'s
``role_config`` does for ``make hub``:

* every user's pod runs as **their own numeric uid** (the campus directory's, listed in
  ``UIDS_FILE``), never the image's shared ``jovyan`` (1000): the nbgrader file exchange on the
  shared volume keeps submissions private by POSIX owner and group (``hub/exchange_hardening.py``),
  which means nothing if every student is uid 1000. A user missing from the list cannot start a
  server (a clear error), rather than falling back to a shared uid;
* staff (JupyterHub group ``lec4-staff``) get the staff image (nbgrader's Formgrader, the
  ``autograder`` package), the staff group as a supplemental gid (the exchange's inbound is
  group-readable by it) and ``hub/config/staff``; students get the student image, which is built
  from the *published* course repository (``python -m autograder publish``: no solutions, no hidden
  suites, no catalog) and ``hub/config/student``.

Not run here: this project has no Kubernetes cluster; ``tests/test_k8s_config.py`` checks this
file's functions with stand-in spawners and ``config.yaml`` against the chart's values schema.
"""
import json
from pathlib import Path

STAFF_GROUP = "lec4-staff"
STAFF_GID = 2423  # the gid of lec4-staff on the exchange volume (same as on the grading nodes)
UIDS_FILE = Path("/usr/local/etc/jupyterhub/lec4/uids.json")  # {"username": uid, ...}: hub.extraFiles.uids
STUDENT_IMAGE = "registry.example.edu/lec4/singleuser-student"
STAFF_IMAGE = "registry.example.edu/lec4/singleuser-staff"
CONFIG_ROOT = "/etc/lec4/config"  # hub/config/{common,student,staff} copied into both images
EXCHANGE = "/srv/nbgrader/exchange"  # the shared volume's mount point (singleuser.storage.extraVolumeMounts)
COURSE_ID = "10423-lec4"
FIRST_UID = 10000  # below this: system accounts, never a course user


class CourseAccountError(Exception):
    """A user the course cannot start a server for; the message says what is missing."""


def is_staff(spawner) -> bool:
    """Whether the spawner's user is in the staff group (JupyterHub groups, ``load_groups``)."""
    return any(group.name == STAFF_GROUP for group in spawner.user.groups)


def course_uid(spawner, uids_file: Path = UIDS_FILE) -> int:
    """The user's own numeric uid from ``uids_file``; a missing user or a system uid is refused."""
    try:
        uids = json.loads(Path(uids_file).read_text())
    except (OSError, ValueError) as error:
        raise CourseAccountError(f"cannot read the course's uid list {uids_file}: {error}") from error
    name = spawner.user.name
    uid = uids.get(name)
    if not isinstance(uid, int) or isinstance(uid, bool) or uid < FIRST_UID:
        raise CourseAccountError(
            f"{name!r} has no course uid in {uids_file} (expected an integer >= {FIRST_UID}, "
            f"got {uid!r}); ask the course staff to add the account")
    return uid


def role_settings(spawner) -> dict:
    """What the user's role decides: image, Jupyter config folders, supplemental gids."""
    role = "staff" if is_staff(spawner) else "student"
    return {
        "image": STAFF_IMAGE if role == "staff" else STUDENT_IMAGE,
        "environment": {"JUPYTER_CONFIG_PATH": f"{CONFIG_ROOT}/{role}:{CONFIG_ROOT}/common",
                        "LEC4_COURSE_ID": COURSE_ID, "LEC4_EXCHANGE": EXCHANGE},
        "supplemental_gids": [STAFF_GID] if role == "staff" else [],
    }


def pre_spawn(spawner) -> None:
    """JupyterHub's pre-spawn hook: apply :func:`role_settings` to the spawner."""
    settings = role_settings(spawner)
    spawner.image = settings["image"]
    spawner.environment.update(settings["environment"])
    spawner.supplemental_gids = settings["supplemental_gids"]


def configure(c) -> None:
    """Set the course's KubeSpawner options on JupyterHub's config object ``c``."""
    c.KubeSpawner.uid = course_uid
    c.KubeSpawner.gid = course_uid  # each user's own group (user private groups, as on the cluster)
    c.KubeSpawner.fs_gid = None  # no shared fsGroup: it would give every pod one common group
    c.KubeSpawner.pre_spawn_hook = pre_spawn


if "get_config" in globals():  # loaded by the chart's jupyterhub_config.py
    configure(get_config())  # noqa: F821
