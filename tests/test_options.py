"""``autograder/options.py``: the one reader of the environment. Each ``AUTOGRADER_*`` variable
is named there once with its type and default; the README's table of variables is checked
against it, bad values give a clear error, and values are read when asked for."""
from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from autograder import options

ROOT = Path(__file__).resolve().parents[1]
NAMES = [v.name for v in options.VARIABLES]


def readme_table() -> dict[str, list[str]]:
    """The README's table of environment variables: name -> its other cells."""
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        match = re.match(r"\|\s*`(AUTOGRADER_\w+)`\s*\|(.*)\|\s*$", line)
        if match:
            rows[match.group(1)] = [cell.strip() for cell in match.group(2).split("|")]
    return rows


def test_each_variable_is_named_once_and_sets_one_field():
    assert len(set(NAMES)) == len(NAMES)
    assert [v.field for v in options.VARIABLES] == [f.name for f in dataclasses.fields(options.Options)]


def test_the_readme_table_documents_exactly_the_variables():
    table = readme_table()
    assert sorted(table) == sorted(NAMES), "README.md's table of environment variables and autograder/options.py differ"
    assert table["AUTOGRADER_CELL_TIMEOUT"][-1] == str(options.CELL_TIMEOUT_S)
    assert table["AUTOGRADER_NOTEBOOK_TIMEOUT"][-1] == str(options.NOTEBOOK_TIMEOUT_S)
    assert table["AUTOGRADER_CALL_TIMEOUT"][-1] == f"each call's own: {options.CALL_TIMEOUT_S}"


def test_defaults_are_the_constants():
    from autograder import nbgrader_hooks

    default = options.Options.from_environment({})
    assert (default.cell_timeout, default.notebook_timeout) == (options.CELL_TIMEOUT_S, options.NOTEBOOK_TIMEOUT_S)
    assert (nbgrader_hooks.CELL_TIMEOUT_S, nbgrader_hooks.NOTEBOOK_TIMEOUT_S) == (60, 600) == (
        options.CELL_TIMEOUT_S, options.NOTEBOOK_TIMEOUT_S)
    assert (default.db_url, default.course_root, default.device, default.suite_path) == (None, None, "", ())
    assert default.call_timeout is None  # each call's own limit: Call.timeout's default
    from autograder.checks import Call
    assert Call("f", []).timeout == options.CALL_TIMEOUT_S == 60
    assert default.scratch == Path(tempfile.gettempdir())
    assert options.Options.from_environment({name: "" for name in NAMES}) == default  # empty = unset


def test_values_are_parsed():
    given = options.Options.from_environment({
        "AUTOGRADER_CELL_TIMEOUT": "5", "AUTOGRADER_NOTEBOOK_TIMEOUT": "90", "AUTOGRADER_DEVICE": "cuda:1",
        "AUTOGRADER_CALL_TIMEOUT": "7",
        "AUTOGRADER_DB_URL": "postgresql+psycopg2://ta@db/lec4", "AUTOGRADER_COURSE_ROOT": "/srv/course",
        "AUTOGRADER_SUITE_PATH": f"/a{os.pathsep}{os.pathsep}/b", "AUTOGRADER_SCRATCH": "/scratch"})
    assert (given.cell_timeout, given.notebook_timeout, given.call_timeout, given.device) == (5, 90, 7, "cuda:1")
    assert (given.db_url, given.course_root) == ("postgresql+psycopg2://ta@db/lec4", "/srv/course")
    assert (given.suite_path, given.scratch) == ((Path("/a"), Path("/b")), Path("/scratch"))


@pytest.mark.parametrize("name, value, expected", [
    ("AUTOGRADER_CELL_TIMEOUT", "abc", "AUTOGRADER_CELL_TIMEOUT='abc': expected a number of seconds"),
    ("AUTOGRADER_CELL_TIMEOUT", "1.5", "AUTOGRADER_CELL_TIMEOUT='1.5': expected a number of seconds"),
    ("AUTOGRADER_NOTEBOOK_TIMEOUT", "0", "AUTOGRADER_NOTEBOOK_TIMEOUT='0': expected a number of seconds"),
    ("AUTOGRADER_NOTEBOOK_TIMEOUT", "-5", "AUTOGRADER_NOTEBOOK_TIMEOUT='-5': expected a number of seconds"),
    ("AUTOGRADER_CALL_TIMEOUT", "0", "AUTOGRADER_CALL_TIMEOUT='0': expected a number of seconds"),
    ("AUTOGRADER_DEVICE", "gpu", "AUTOGRADER_DEVICE='gpu': expected cpu, cuda or cuda:N"),
])
def test_a_bad_value_is_a_clear_error(name, value, expected):
    with pytest.raises(options.OptionError) as err:
        options.Options.from_environment({name: value})
    assert str(err.value).startswith(expected)


def test_read_when_asked_not_at_import(monkeypatch, tmp_path):
    monkeypatch.setenv("AUTOGRADER_SUITE_PATH", str(tmp_path))
    monkeypatch.setenv("AUTOGRADER_CELL_TIMEOUT", "7")
    assert (options.current().suite_path, options.current().cell_timeout) == ((tmp_path,), 7)
    monkeypatch.setenv("AUTOGRADER_CELL_TIMEOUT", "abc")
    with pytest.raises(options.OptionError, match="AUTOGRADER_CELL_TIMEOUT='abc'"):
        options.current()


def test_the_hooks_configuration_takes_the_variables():
    """What nbgrader_config.py applies (flags given to the CLI are applied after it and win)."""
    from traitlets.config import Config

    from autograder.nbgrader_hooks import configure_from_environment

    c = Config()
    configure_from_environment(c, {"AUTOGRADER_CELL_TIMEOUT": "5", "AUTOGRADER_DEVICE": "cpu",
                                   "AUTOGRADER_DB_URL": "sqlite:///x.db", "AUTOGRADER_COURSE_ROOT": "/srv/course"})
    assert (c.SandboxedExecute.timeout, c.SandboxedExecute.notebook_timeout) == (5, options.NOTEBOOK_TIMEOUT_S)
    assert c.TrustedVerdicts.device == c.StartTrustedGrading.device == c.SandboxedExecute.device == "cpu"
    assert (c.CourseDirectory.db_url, c.CourseDirectory.root) == ("sqlite:///x.db", "/srv/course")
    c = Config()
    configure_from_environment(c, {})
    assert "device" not in c.TrustedVerdicts and "db_url" not in c.CourseDirectory and "root" not in c.CourseDirectory
    with pytest.raises(options.OptionError, match="AUTOGRADER_NOTEBOOK_TIMEOUT='ten'"):
        configure_from_environment(Config(), {"AUTOGRADER_NOTEBOOK_TIMEOUT": "ten"})


def test_child_env_merges_in_order_and_leaves_the_process_alone(monkeypatch):
    monkeypatch.setenv("LEC4_OPTIONS_TEST", "parent")
    before = dict(os.environ)
    env = options.child_env({"LEC4_OPTIONS_A": "1", "LEC4_OPTIONS_B": "1"}, {"LEC4_OPTIONS_B": "2"},
                            LEC4_OPTIONS_B="3", LEC4_OPTIONS_C="3")
    assert [env[k] for k in ("LEC4_OPTIONS_TEST", "LEC4_OPTIONS_A", "LEC4_OPTIONS_B", "LEC4_OPTIONS_C")] == [
        "parent", "1", "3", "3"]
    env["LEC4_OPTIONS_TEST"] = "child"
    assert dict(os.environ) == before


def test_the_options_module_is_cheap_to_import():
    """The CLI imports it at startup, before it knows whether nbgrader or torch is needed."""
    code = ("import sys, autograder.options; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('nbgrader', 'torch', 'traitlets')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_grading_threads_share_the_cpus_and_keep_a_set_count(monkeypatch):
    """One rule for the thread counts of gradings side by side (autograde, serve, selfcheck): the
    process's CPUs shared out, at least one each; a count set by the caller (Slurm) is kept."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    assert options.grading_threads(2, {}) == {"OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4"}
    assert options.grading_threads(3, {}) == {"OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}
    assert options.grading_threads(16, {}) == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    assert options.grading_threads(2, {"OMP_NUM_THREADS": "3"}) == {"OMP_NUM_THREADS": "3", "MKL_NUM_THREADS": "4"}


def test_the_serve_workers_get_the_thread_counts(monkeypatch, tmp_path):
    """serve's grading workers start with their share of the CPUs in their environment (the
    sandboxes inherit it); autograde's get it through the same function."""
    import autograder.worker
    from autograder.serve import WorkerGrader

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1})
    for name in options.THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    started = []
    monkeypatch.setattr(autograder.worker, "Worker", lambda config, env, stderr: started.append(env) or object())
    grader = WorkerGrader(tmp_path, tmp_path / "state", "course", [], workers=2)
    grader.log_dir.mkdir(parents=True)
    grader.worker(0)
    assert started and started[0]["OMP_NUM_THREADS"] == started[0]["MKL_NUM_THREADS"] == "1", started


@pytest.mark.parametrize("command", [["report", "hw-attention"], ["replay", "hw-attention", "bob"],
                                     ["similarity", "hw-attention"]])
def test_every_command_takes_the_course_root_from_the_environment(command, tmp_path):
    """AUTOGRADER_COURSE_ROOT is the course for the commands that read records too, not only for
    those that run nbgrader (which take it through nbgrader_config.py)."""
    env = {**os.environ, "AUTOGRADER_COURSE_ROOT": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "autograder", *command], capture_output=True, text=True, env=env,
                       cwd=ROOT)
    assert r.returncode == 2 and str(tmp_path) in r.stderr, (r.returncode, r.stdout[-1000:], r.stderr[-1000:])


@pytest.mark.parametrize("command", [["report", "hw-attention"], ["selfcheck", "hw-attention"],
                                     ["due", "hw-attention", "2026-12-10 23:59 UTC"], ["collect", "hw-attention"]])
def test_a_bad_variable_stops_every_command_with_one_line(command, tmp_path):
    """A bad ``AUTOGRADER_*`` value is the TA's first line of output, with exit status 2, before
    any command runs (nothing read, nothing changed): not a traceback from wherever it is read."""
    env = {**os.environ, "AUTOGRADER_CELL_TIMEOUT": "abc", "AUTOGRADER_COURSE_ROOT": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "autograder", *command], capture_output=True, text=True, env=env,
                       cwd=ROOT)
    assert r.returncode == 2, (r.returncode, r.stdout[-1000:], r.stderr[-1000:])
    assert r.stderr.strip().splitlines() == [
        f"python -m autograder {command[0]}: AUTOGRADER_CELL_TIMEOUT='abc': expected a number of seconds "
        "(a whole number, at least 1); nothing was done"], r.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []
