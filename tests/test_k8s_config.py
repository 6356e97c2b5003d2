"""The Kubernetes route on paper (issue 26): hub/k8s/config.yaml is valid for the Zero to JupyterHub
chart, and hub/k8s/lec4_k8s.py gives every user their own uid and their role's image and config.

No cluster here: the values are merged over the chart's defaults as helm merges them and validated
against the chart's own values schema (vendored, hub/k8s/z2jh-chart/SOURCE.md); the hub-side Python
runs against traitlets' config object and stand-in spawners.
"""
import json
import runpy
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
import yaml
from traitlets.config import Config

from autograder.engine.sandbox import HOST_MEMORY_BYTES

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "hub" / "k8s"
CHART = K8S / "z2jh-chart"


def helm_merge(base, override):
    """Helm's merge of a values file over the chart's defaults: maps merge key by key, a null
    deletes the key, anything else (lists included) replaces."""
    if not (isinstance(base, dict) and isinstance(override, dict)):
        return override
    merged = dict(base)
    for key, value in override.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = helm_merge(base.get(key), value)
    return merged


def course_values(**set_file: str) -> dict:
    """config.yaml over the chart's values.yaml, with `--set-file hub.extraFiles.NAME.stringData=...`."""
    values = helm_merge(yaml.safe_load((CHART / "values.yaml").read_text()),
                        yaml.safe_load((K8S / "config.yaml").read_text()))
    for name, text in set_file.items():
        values["hub"]["extraFiles"][name]["stringData"] = text
    return values


@pytest.fixture(scope="module")
def validator():
    schema = yaml.safe_load((CHART / "values.schema.yaml").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def errors(validator, values) -> list[str]:
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(values)]


def test_course_values_satisfy_the_charts_schema(validator):
    uids = json.dumps({"student1": 10001, "instructor": 10002})
    values = course_values(lec4=(K8S / "lec4_k8s.py").read_text(), uids=uids)
    assert errors(validator, values) == []


@pytest.mark.parametrize("path, bad", [
    (("singleuser", "profilelist"), []),                  # a misspelt key
    (("cull", "timeout"), "an hour"),                     # a wrong type
    (("hub", "extraFiles", "lec4", "mountpath"), "/x"),   # a key the chart does not know
])
def test_the_schema_check_rejects_a_broken_config(validator, path, bad):
    values = course_values()
    node = values
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = bad
    assert errors(validator, values), f"{'.'.join(path)} = {bad!r} was accepted"


def test_profiles_culler_memory_and_exchange_mount():
    values = course_values()
    single = values["singleuser"]
    slugs = {p["slug"]: p for p in single["profileList"]}
    assert set(slugs) == {"cpu", "gpu"} and slugs["cpu"]["default"] is True
    assert slugs["gpu"]["kubespawner_override"]["extra_resource_limits"] == {"nvidia.com/gpu": "1"}
    assert values["cull"]["enabled"] is True and values["cull"]["users"] is False  # servers, not accounts
    assert single["memory"]["limit"] == "8Gi" and 8 * 2**30 == HOST_MEMORY_BYTES
    module = runpy.run_path(str(K8S / "lec4_k8s.py"))
    mounts = {m["mountPath"] for m in single["storage"]["extraVolumeMounts"]}
    assert module["EXCHANGE"] in mounts
    files = values["hub"]["extraFiles"]
    assert files["uids"]["mountPath"] == str(module["UIDS_FILE"])
    assert files["lec4"]["mountPath"].startswith("/usr/local/etc/jupyterhub/jupyterhub_config.d/")


def spawner(name: str, groups=()):
    user = SimpleNamespace(name=name, groups=[SimpleNamespace(name=g) for g in groups])
    return SimpleNamespace(user=user, environment={}, image=None, supplemental_gids=None)


@pytest.fixture
def k8s(tmp_path):
    """lec4_k8s.py loaded as the chart loads it (``get_config`` in scope) into a fresh Config."""
    config = Config()
    module = runpy.run_path(str(K8S / "lec4_k8s.py"), init_globals={"get_config": lambda: config})
    uids = tmp_path / "uids.json"
    uids.write_text(json.dumps({"student1": 10001, "student2": 10002, "instructor": 10003,
                                "root": 0, "flag": True}))
    return SimpleNamespace(c=config, m=module, uids=uids)


def test_hub_config_sets_own_uid_and_role_hook(k8s):
    c, m = k8s.c, k8s.m
    assert c.KubeSpawner.uid is m["course_uid"] and c.KubeSpawner.gid is m["course_uid"]
    assert c.KubeSpawner.pre_spawn_hook is m["pre_spawn"] and c.KubeSpawner.fs_gid is None
    uid = m["course_uid"]
    assert uid(spawner("student1"), k8s.uids) == 10001 and uid(spawner("student2"), k8s.uids) == 10002


@pytest.mark.parametrize("name, why", [("nobody", "None"), ("root", "0"), ("flag", "True")])
def test_a_user_without_a_course_uid_cannot_start(k8s, name, why):
    with pytest.raises(k8s.m["CourseAccountError"], match=f"{name}.*got {why}.*ask the course staff"):
        k8s.m["course_uid"](spawner(name), k8s.uids)


def test_roles_get_their_image_config_and_group(k8s):
    m = k8s.m
    student, staff = spawner("student1"), spawner("instructor", groups=["lec4-staff"])
    m["pre_spawn"](student)
    m["pre_spawn"](staff)
    assert student.image == m["STUDENT_IMAGE"] and staff.image == m["STAFF_IMAGE"]
    assert student.supplemental_gids == [] and staff.supplemental_gids == [m["STAFF_GID"]]
    for who, role in ((student, "student"), (staff, "staff")):
        folders = who.environment["JUPYTER_CONFIG_PATH"].split(":")
        assert folders == [f"{m['CONFIG_ROOT']}/{role}", f"{m['CONFIG_ROOT']}/common"]
        for folder in folders:  # each is a folder of hub/config the image copies in
            assert (ROOT / "hub" / "config" / Path(folder).name).is_dir()
        assert who.environment["LEC4_EXCHANGE"] == m["EXCHANGE"]


def test_student_image_is_built_from_the_published_repository():
    """The student image's build context is the public repository: what it copies must be in it,
    and nothing of the staff's (autograder/, solutions/) is named."""
    from autograder.publish import PUBLIC_PATHS
    text = (K8S / "Dockerfile.student").read_text()
    assert "environment.yml" in PUBLIC_PATHS and "/opt/lec4/environment.yml" in text
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert not any(word in line for line in instructions for word in ("autograder", "solutions"))
    staff = (K8S / "Dockerfile.staff").read_text()
    assert "COPY autograder" in staff
