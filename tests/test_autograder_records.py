"""Grade records (:mod:`autograder.records`): one JSON file per graded submission, and replay.

The reference solution of hw-attention is graded once in the production sandbox (bubblewrap,
as ``autograde`` does); its record is checked for content (every check, points, what is needed
to reproduce it, plain JSON), written and read back, and replayed twice more in the real
sandbox: unchanged (no difference; an edited torch version is only a note), and with edited
points, a flipped check and a swapped-in faulty ``gqa_attention`` (exactly those differences,
``replay_main`` exits 1). Bad input (missing, corrupt, foreign-schema, incomplete records,
unknown assignment, CUDA without a GPU) exits 2 with a message saying what is wrong, without
grading. Three gradings in all (about 5 s each on an idle 2-core CPU).
"""
from __future__ import annotations

import copy
import datetime
import glob
import hashlib
import json
import subprocess
from pathlib import Path

import pytest
import torch

from autograder import records, selfcheck
from autograder.engine import grading
from autograder.engine.sandbox import default_sandbox
from autograder.notebook import read_notebook, submission_source
from autograder.records import NOTE, RecordError
from autograder.suites import load_suite

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENT = "hw-attention"
STUDENT = "alice"
FAULTY = "gqa_missing_scale"  # catalog entry: gqa_attention forgets the 1/sqrt(D) scaling


@pytest.fixture(scope="module")
def graded():
    """(suite, source, cells, record) of the reference solution graded in the production sandbox."""
    suite = load_suite(ASSIGNMENT)
    source = submission_source(ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    cells = grading.grade(suite, source, device="cpu", sandbox=default_sandbox("cpu"))
    record = records.make_record(assignment=ASSIGNMENT, student=STUDENT, suite=suite, source=source,
                                 cells=cells, device="cpu", seconds=4.2, submission_sha256="ab" * 32)
    return suite, source, cells, record


def _faulty_source() -> str:
    """The reference notebook's code with the catalog's faulty gqa_attention in its solution cell."""
    entry = next(e for e in selfcheck.load_catalog(ASSIGNMENT) if e.name == FAULTY)
    reference = read_notebook(ROOT / "solutions" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb")
    return submission_source(reference, selfcheck.with_cell(reference, entry.breaks, entry.source))


def _plain(value, where="record") -> None:
    """Fail unless ``value`` is plain JSON data (no tensor, dtype, tuple or other object)."""
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str), f"{where}: key {k!r}"
            _plain(v, f"{where}.{k}")
    elif isinstance(value, list):
        for n, v in enumerate(value):
            _plain(v, f"{where}[{n}]")
    else:
        assert value is None or type(value) in (str, int, float, bool), f"{where}: {type(value).__name__}"


def _first_check(record: dict, gid: str) -> dict:
    return record["cells"][gid]["checks"][0]


# --- the record ---------------------------------------------------------------------------------

def test_record_holds_every_check_and_what_reproduces_it(graded):
    suite, source, cells, record = graded
    assert set(record) == set(records.REQUIRED_KEYS)
    assert record["schema"] == records.SCHEMA == 1
    assert (record["assignment"], record["student"]) == (ASSIGNMENT, STUDENT)
    graded_at = datetime.datetime.fromisoformat(record["graded_at"])
    assert graded_at.utcoffset() == datetime.timedelta(0)
    assert record["source"] == source and record["source_sha256"] == hashlib.sha256(source.encode()).hexdigest()
    assert record["submission_sha256"] == "ab" * 32
    assert record["score"] == record["max_score"] == sum(points for _, points in suite.GRADE_CELLS.values())
    assert record["timings"] == {"grading_s": 4.2}
    assert list(record["cells"]) == list(suite.GRADE_CELLS)
    for gid, cell in cells.items():
        entry = record["cells"][gid]
        assert (entry["function"], entry["points"], entry["max_points"]) == (cell.function, cell.points, cell.max_points)
        assert [c["name"] for c in entry["checks"]] == [r.name for r in cell.results]
        assert [c["kind"] for c in entry["checks"]] == [getattr(r, "kind", None) for r in cell.results]
        assert all(c["passed"] is True and c["hint"] is None for c in entry["checks"])

    reproduce = record["reproduce"]
    assert set(reproduce) == set(records.REPRODUCE_KEYS)
    assert reproduce["suite_module"] == "autograder.suites.hw_attention"
    suite_bytes = (ROOT / "autograder" / "suites" / "hw_attention.py").read_bytes()
    assert reproduce["suite_sha256"] == hashlib.sha256(suite_bytes).hexdigest()
    spec = ROOT / "src" / "lec4" / "homework" / "hw_attention.py"  # the public spec, where there is one
    assert reproduce["spec_sha256"] == (hashlib.sha256(spec.read_bytes()).hexdigest() if spec.exists() else None)
    assert "torch.float32" in reproduce["tolerances"]  # dtype keys as strings
    assert (reproduce["torch"], reproduce["cuda"]) == (torch.__version__, torch.version.cuda)
    assert reproduce["device"] == "cpu" and reproduce["device_name"]
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert reproduce["grader_commit"] in (head, head + "-dirty")
    assert reproduce["sandbox"].startswith("bubblewrap ")


def test_record_is_plain_json_without_tensors(graded):
    record = graded[3]
    _plain(record)
    assert json.loads(json.dumps(record, allow_nan=False)) == record


def test_jsonable_turns_dtype_keys_and_tensors_into_json():
    assert records.jsonable({torch.float16: (1e-3, 2e-3), "sizes": torch.tensor([1, 2])}) == \
        {"torch.float16": [1e-3, 2e-3], "sizes": [1, 2]}


def test_records_live_in_a_dot_folder_outside_feedback(tmp_path):
    path = records.record_path(tmp_path, ASSIGNMENT, STUDENT)
    assert path == tmp_path / "autograded" / ".records" / ASSIGNMENT / f"{STUDENT}.json"
    assert "feedback" not in path.parts
    path.parent.mkdir(parents=True)
    path.write_text("{}")
    (tmp_path / "autograded" / STUDENT / ASSIGNMENT).mkdir(parents=True)
    # nbgrader finds students with glob.glob, which skips dot folders
    assert glob.glob(str(tmp_path / "autograded" / "*" / ASSIGNMENT)) == [str(tmp_path / "autograded" / STUDENT / ASSIGNMENT)]
    for bad in ("../bob", "a/b", "", ".."):
        with pytest.raises(RecordError, match="plain name"):
            records.record_path(tmp_path, ASSIGNMENT, bad)


def test_write_then_read_gives_the_record_back_atomically(graded, tmp_path):
    record = graded[3]
    path = records.record_path(tmp_path, ASSIGNMENT, STUDENT)
    records.write_record(path, record)  # creates the folders
    assert records.read_record(path) == record
    records.write_record(path, {**record, "score": 50.0})  # replaces
    assert records.read_record(path)["score"] == 50.0
    with pytest.raises(TypeError):  # not JSON: nothing is written, the old record stays
        records.write_record(path, {**record, "score": torch.tensor(1.0)})
    assert records.read_record(path)["score"] == 50.0
    assert sorted(p.name for p in path.parent.iterdir()) == [f"{STUDENT}.json"]  # no temp files left


@pytest.mark.parametrize("content, message", [
    (None, "no grade record at"),
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "holds a JSON list, expected an object"),
    ('{"schema": 2}', "has schema 2, expected 1"),
])
def test_read_record_says_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "bob.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(RecordError, match=message) as err:
        records.read_record(path)
    assert str(path) in str(err.value)


def test_older_record_with_seeds_still_reads(graded, tmp_path):
    """Older records hold "reproduce.seeds" (always null), no longer written: they still read, without a note."""
    older = copy.deepcopy(graded[3])
    older["reproduce"]["seeds"] = None
    path = tmp_path / "bob.json"
    path.write_text(json.dumps(older))
    assert records.read_record(path) == older
    assert records.environment_notes(older, graded[3]) == []


def test_read_record_names_missing_keys(graded, tmp_path):
    record = copy.deepcopy(graded[3])
    del record["cells"]["gqa_hidden"]["points"]
    del record["reproduce"]["suite_sha256"]
    del record["source"]
    path = tmp_path / "bob.json"
    path.write_text(json.dumps(record))
    with pytest.raises(RecordError, match="incomplete") as err:
        records.read_record(path)
    for key in ("'source'", "'reproduce.suite_sha256'", "'cells.gqa_hidden.points'"):
        assert key in str(err.value)


# --- comparing (no grading) ---------------------------------------------------------------------

def test_compare_reports_exactly_an_edited_cell_or_check(graded):
    record = graded[3]
    assert records.compare(record, record) == []

    points = copy.deepcopy(record)
    points["cells"]["rope_hidden"]["points"] = 7.5
    full = f"{record['cells']['rope_hidden']['max_points']:g}"
    assert records.compare(points, record) == [f"rope_hidden: points 7.5/{full} then, {full}/{full} now"]

    flipped = copy.deepcopy(record)
    check = _first_check(flipped, "swa_visible")
    check.update(passed=False, hint="wrong result")
    assert records.compare(flipped, record) == [
        f"swa_visible: check {check['name']!r}: failed then, passed now (hint then: wrong result)"]

    hint = copy.deepcopy(record)
    hint_check = _first_check(hint, "gqa_hidden")
    hint_check["hint"] = "old hint"
    assert records.compare(hint, record) == [f"gqa_hidden: check {hint_check['name']!r}: hint changed: 'old hint' -> None"]

    total = copy.deepcopy(record)
    total["score"] = 9.5
    full = f"{record['max_score']:g}"
    assert records.compare(total, record) == [f"total: 9.5/{full} then, {full}/{full} now"]


def test_environment_changes_are_notes_not_differences(graded):
    record = graded[3]
    assert records.environment_notes(record, record) == []
    older = copy.deepcopy(record)
    older["reproduce"].update(torch="1.0.0", suite_sha256="0" * 64, grader_commit="deadbeef", device="cuda")
    notes = records.environment_notes(older, record)
    assert records.compare(older, record) == []
    assert len(notes) == 4 and all(n.startswith(NOTE) for n in notes)
    for what in ("another torch version", "the hidden suite changed", "another grader commit", "another device"):
        assert any(what in n for n in notes), what
    assert records.split_notes(["a", notes[0]]) == (["a"], [notes[0]])


# --- replay in the production sandbox (two more gradings) ---------------------------------------

def test_replay_of_an_unchanged_record_finds_no_difference(graded):
    record = copy.deepcopy(graded[3])
    record["reproduce"]["torch"] = "1.0.0"  # an environment change: a note only
    record["reproduce"]["seeds"] = None  # as in older records (no longer written): still replays
    lines = records.replay(record)
    differences, notes = records.split_notes(lines)
    assert differences == []
    assert notes == [f"{NOTE}another torch version: torch '1.0.0' then, {torch.__version__!r} now"]


def test_replay_main_reports_edits_and_a_swapped_source(graded, tmp_path, capsys):
    record = copy.deepcopy(graded[3])
    record["cells"]["rope_hidden"]["points"] = 0.0
    flipped = _first_check(record, "swa_visible")
    flipped["passed"] = False
    record["source"] = _faulty_source()  # what replay grades now: gqa_attention without 1/sqrt(D)
    records.write_record(records.record_path(tmp_path, ASSIGNMENT, STUDENT), record)

    assert records.replay_main(tmp_path, ASSIGNMENT, STUDENT, None) == 1
    out = capsys.readouterr().out
    assert f"grade record {records.record_path(tmp_path, ASSIGNMENT, STUDENT)}" in out
    lines = [line.strip() for line in out.splitlines() if line.startswith("  ") and NOTE not in line]
    full = {gid: f"{cell['max_points']:g}" for gid, cell in record["cells"].items()}
    assert [x for x in lines if x.startswith("rope")] == [
        f"rope_hidden: points 0/{full['rope_hidden']} then, {full['rope_hidden']}/{full['rope_hidden']} now"]
    assert [x for x in lines if x.startswith("swa")] == [
        f"swa_visible: check {flipped['name']!r}: failed then, passed now"]
    gqa = [x for x in lines if x.startswith("gqa")]
    assert any("passed then, failed now" in x for x in gqa) and any(
        x.startswith(f"gqa_hidden: points {full['gqa_hidden']}/{full['gqa_hidden']} then") for x in gqa)
    assert any(x.startswith(f"total: {record['score']:g}/{record['max_score']:g} then, ") for x in lines)
    assert f"{len(lines)} difference(s):" in out
    assert "the record's source does not match its source_sha256" in out


# --- bad input: exit 2, nothing graded -----------------------------------------------------------

def test_replay_main_without_a_record_says_where_it_looked(tmp_path, capsys):
    assert records.replay_main(tmp_path, ASSIGNMENT, "bob", None) == 2
    err = capsys.readouterr().err
    assert str(records.record_path(tmp_path, ASSIGNMENT, "bob")) in err
    assert f"python -m autograder autograde {ASSIGNMENT} --student bob" in err


def test_replay_main_rejects_an_unknown_assignment(tmp_path, capsys):
    assert records.replay_main(tmp_path, "hw-nope", STUDENT, None) == 2
    assert "no grading suite for assignment 'hw-nope'" in capsys.readouterr().err


@pytest.mark.parametrize("content, message", [("{oops", "is not valid JSON"), ('{"schema": 0}', "has schema 0, expected 1")])
def test_replay_main_rejects_a_bad_record(tmp_path, capsys, content, message):
    path = records.record_path(tmp_path, ASSIGNMENT, STUDENT)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    assert records.replay_main(tmp_path, ASSIGNMENT, STUDENT, None) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a node without a GPU")
def test_replay_main_needs_a_gpu_for_cuda(graded, tmp_path, capsys):
    assert records.replay_main(tmp_path, ASSIGNMENT, STUDENT, "cuda") == 2
    assert "sees no CUDA device" in capsys.readouterr().err
    record = copy.deepcopy(graded[3])
    record["reproduce"]["device"] = "cuda"
    records.write_record(records.record_path(tmp_path, ASSIGNMENT, STUDENT), record)
    assert records.replay_main(tmp_path, ASSIGNMENT, STUDENT, None) == 2
    assert "--device cpu" in capsys.readouterr().err


def test_replay_grades_in_the_assignments_own_limits(graded, monkeypatch):
    """An assignment's public spec may set its own scratch and memory limits: a replay grades in
    them too (as the hidden suite did), or a submission stopped by them would replay differently."""
    import lec4.homework.hw_attention as spec

    monkeypatch.setattr(spec, "SCRATCH_BYTES", 32 * 2**20, raising=False)
    monkeypatch.setattr(spec, "HOST_MEMORY_BYTES", 3 * 2**30, raising=False)
    used = []

    def graded_in(suite, source, device, sandbox):
        used.append(sandbox.limits)
        raise KeyboardInterrupt  # the sandbox given is all this test needs (not an Exception: never swallowed)

    monkeypatch.setattr(grading, "grade", graded_in)
    with pytest.raises(KeyboardInterrupt):
        records.replay(copy.deepcopy(graded[3]))
    (limits,) = used
    assert (limits.scratch_bytes, limits.memory_bytes, limits.data_bytes) == (32 * 2**20, 3 * 2**30, 3 * 2**30)
