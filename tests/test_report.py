"""``python -m autograder report`` and the catalog matching (autograder/diagnosis.py) on a class
graded for real: every catalog entry, the reference and the blank release as students (the CPU
self-check's grading, shared with tests/test_autograder_selfcheck.py, so graded once per run),
plus the e2e generator's partial, syntax-error and forbidden-call students graded by the same
engine in the production sandbox, and its ungradable submissions (missing, renamed, corrupt,
foreign notebook) as submitted folders without a record. The HTML is opened in headless
Chromium (file://, no other request) in both colour schemes."""
from __future__ import annotations

import concurrent.futures
import copy
import functools
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import selfcheck_rows
from autograder import diagnosis, records, report, selfcheck
from autograder.suites import assignments, load_suite
from classgen import UNGRADABLE, make_class

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = assignments()  # the folders of solutions/ with a suite
E2E_GRADED = ("partial_", "syntax_error", "hostile_dynamic_forbidden")  # graded by the engine alone
LATE = {"due": "2026-02-01T23:59:00+00:00", "extension": None, "submitted": "2026-02-03T01:59:00+00:00",
        "lateness_s": 93600.0, "penalty": 10.0, "rule": "10% of the points per started day, at most 3 days",
        "counted": "latest"}  # the `late` object H21's records carry (SHARED.md)


def _late(record: dict) -> dict:
    return {**LATE, "raw_score": record["score"], "final_score": max(0.0, record["score"] - LATE["penalty"])}


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    return selfcheck_rows.shared_folder(tmp_path_factory)


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def graded_class(request, shared, tmp_path_factory):
    """(course root, assignment, {student: catalog entry or None})."""
    from autograder.engine.grading import grade
    from autograder.engine.sandbox import default_sandbox
    from autograder.engine.supervisor import launcher_for
    from autograder.notebook import submission_source

    assignment = request.param
    suite = load_suite(assignment)
    course = tmp_path_factory.mktemp(f"class-{assignment}")
    rows = selfcheck_rows.rows(assignment, shared)
    students: dict[str, str | None] = {}
    for row in rows:
        student = {"reference": "correct", "blank release": "blank"}.get(row.entry, f"cat_{row.entry}")
        students[student] = None if row.entry in selfcheck.FIXED_ROWS else row.entry
        record = records.make_record(assignment=assignment, student=student, suite=suite, source=row.source,
                                     cells=row.cells, device="cpu", seconds=row.seconds, submission_sha256=None)
        if student == "correct":
            record["late"] = _late(record)
        records.write_record(records.record_path(course, assignment, student), record)

    # the e2e class generator's students, as submitted folders
    source_nb = ROOT / "solutions" / assignment / suite.NOTEBOOK
    drafts = course / "drafts"
    expected = make_class(source_nb, ROOT / "assignments" / assignment / suite.NOTEBOOK, suite, drafts)
    chosen = [s.name for s in drafts.iterdir() if s.name.startswith(E2E_GRADED) or s.name in UNGRADABLE]
    for student in chosen:
        shutil.copytree(drafts / student, course / "submitted" / student / assignment)
    # the generator's students are this test's own code (no isolation from each other needed): the
    # two threads' launchers, one production sandbox each, grade one after another as selfcheck does
    launchers = [launcher_for(default_sandbox("cpu")) for _ in range(2)]

    def grade_all(launcher, students):
        for student in students:
            code = submission_source(source_nb, course / "submitted" / student / assignment / suite.NOTEBOOK)
            cells = grade(suite, code, device="cpu", launcher=launcher)  # each afresh (next_submission)
            record = records.make_record(assignment=assignment, student=student, suite=suite, source=code,
                                         cells=cells, device="cpu", seconds=1.0, submission_sha256=None)
            records.write_record(records.record_path(course, assignment, student), record)
    gradable = [s for s in chosen if s not in UNGRADABLE]
    try:
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            list(pool.map(grade_all, launchers, [gradable[::2], gradable[1::2]]))
    finally:
        for launcher in launchers:
            launcher.close()
    shutil.rmtree(drafts)
    # the e2e class's expected scores (whole functions lost, read from GRADE_CELLS) hold for the
    # hidden suite's finer checks too: no check of a blank function passes
    recs = _records(course, assignment)
    assert {s: recs[s]["score"] for s in chosen if s not in UNGRADABLE} == pytest.approx(
        {s: expected[s] for s in chosen if s not in UNGRADABLE})
    return course, assignment, students


def _records(course: Path, assignment: str) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (course / records.RECORDS / assignment).glob("*.json")}


def test_signatures_committed_equal_what_selfcheck_measures(shared):
    """autograder/catalog/*/signatures.json is what grading every entry in the sandbox gives."""
    for assignment in ASSIGNMENTS:
        rows = selfcheck_rows.rows(assignment, shared)
        measured = diagnosis.measured_signatures(assignment, rows, selfcheck.load_catalog(assignment))
        committed = json.loads(diagnosis.signatures_path(assignment).read_text())
        assert committed == json.loads(json.dumps(measured)), (
            f"{diagnosis.signatures_path(assignment)} is stale: regenerate it with `python -m autograder selfcheck "
            f"{assignment} --device cpu --signatures {diagnosis.signatures_path(assignment).relative_to(ROOT)}`")


@functools.lru_cache(maxsize=None)
def _sources(assignment: str) -> dict[str, str]:
    """The graded code of every catalog entry (the instructor's notebook with the entry's cell), and of
    the reference and the blank release: what the self-check grades, built without grading."""
    from autograder.notebook import read_notebook, submission_source

    suite = load_suite(assignment)
    reference = read_notebook(ROOT / "solutions" / assignment / suite.NOTEBOOK)
    found = {e.name: submission_source(reference, selfcheck.with_cell(reference, e.breaks, e.source))
             for e in selfcheck.load_catalog(assignment)}
    found["reference"] = submission_source(reference)
    found["blank release"] = submission_source(reference, ROOT / "assignments" / assignment / suite.NOTEBOOK)
    return found


def _source_with(assignment: str, *names: str) -> str:
    """The graded code of the instructor's notebook with the cells of several catalog entries."""
    from autograder.notebook import read_notebook, submission_source

    reference = read_notebook(ROOT / "solutions" / assignment / load_suite(assignment).NOTEBOOK)
    catalog = {e.name: e for e in selfcheck.load_catalog(assignment)}
    nb = reference
    for name in names:
        nb = selfcheck.with_cell(nb, catalog[name].breaks, catalog[name].source)
    return submission_source(reference, nb)


# Entries the hidden checks cannot tell apart: the same observable mistake for the suite (every check
# fails both or neither); the report names both. Any other shared signature is a test failure.
SAME_OBSERVABLE = {
    # only the size of the scale differs (1 vs 1/D instead of 1/sqrt(D)): every check whose scores depend
    # on the scale fails both, the one with one-dimensional heads (1/sqrt(1) = 1/1 = 1) passes both
    frozenset({"gqa_missing_scale", "gqa_scale_by_d"}),
}


def test_every_catalog_entry_is_identifiable_and_told_apart():
    """No entry fails exactly what a blank answer fails (it could never be named), and entries share a
    signature (the same checks failed, the same forbidden names used) only where SAME_OBSERVABLE says."""
    for assignment in ASSIGNMENTS:
        assert diagnosis.unidentifiable(assignment) == [], (
            f"{assignment}: entries failing every check of their cells, as a blank answer does: "
            f"{diagnosis.unidentifiable(assignment)}")
        groups: dict[tuple, set[str]] = {}
        for entry in diagnosis.catalog_signatures(assignment):
            groups.setdefault((entry.checks, entry.forbidden), set()).add(entry.name)
        shared = {frozenset(names) for names in groups.values() if len(names) > 1}
        assert shared <= SAME_OBSERVABLE, f"{assignment}: entries with one signature: {shared - SAME_OBSERVABLE}"


def test_each_entry_matches_itself_and_correct_work_matches_nothing():
    for assignment in ASSIGNMENTS:
        entries = diagnosis.catalog_signatures(assignment)
        sources = _sources(assignment)
        assert len(entries) + len(diagnosis.unidentifiable(assignment)) == len(selfcheck.load_catalog(assignment))
        assert len(entries) >= 10
        for entry in entries:
            source = sources[entry.name]
            assert entry.name in {m.name for m in diagnosis.likely_mistakes(assignment, set(entry.checks), source)}
            # one more failure in the entry's own cells is another pattern
            extra = {diagnosis.check_id(next(iter(entry.scope)), "some other check")}
            assert entry.name not in {m.name for m in
                                      diagnosis.likely_mistakes(assignment, set(entry.checks) | extra, source)}
            if entry.forbidden:  # the same failures without the forbidden call (a blank answer's) are not it
                assert entry.name not in {m.name for m in diagnosis.likely_mistakes(
                    assignment, set(entry.checks), sources["blank release"])}
                assert entry.name not in {m.name for m in diagnosis.likely_mistakes(
                    assignment, set(entry.checks), None)}
        assert diagnosis.likely_mistakes(assignment, set(), sources["reference"]) == []
    # a second mistake in an unrelated function does not hide the first (hw-attention's three functions
    # have disjoint cells; hw-conv's both feed the CNN cells, so there a second mistake changes the pattern)
    entries = diagnosis.catalog_signatures("hw-attention")
    for entry in entries:
        other = next(e for e in entries if not (e.scope & entry.scope))
        both = set(entry.checks) | set(other.checks)
        source = _source_with("hw-attention", entry.name, other.name)
        assert {entry.name, other.name} <= {m.name for m in diagnosis.likely_mistakes("hw-attention", both, source)}


def test_report_names_each_catalog_entry_student_under_its_mistake(graded_class):
    course, assignment, students = graded_class
    facts = report.class_facts(course, assignment)
    named = {m["entry"]: set(m["students"]) for m in facts["mistakes"]}
    descriptions = {e.name: e.doc.strip().splitlines()[0] for e in selfcheck.load_catalog(assignment)}
    assert facts["unidentifiable"] == []
    for student, entry in students.items():  # every entry of the catalog, forbidden calls included
        if entry is not None:
            assert student in named.get(entry, set()), f"{student} not named under {entry}: {named.get(entry)}"
    for m in facts["mistakes"]:
        assert m["description"] == descriptions[m["entry"]]
    by_student = {s["student"]: s for s in facts["students"]}
    assert by_student["correct"]["failed_checks"] == [] and by_student["correct"]["mistakes"] == []
    assert "blank" in facts["unmatched"] and by_student["blank"]["mistakes"] == []
    recs = _records(course, assignment)
    for name, rec in recs.items():
        assert by_student[name]["score"] == rec["score"]
        assert by_student[name]["final_score"] == (rec["late"]["final_score"] if "late" in rec else rec["score"])
    assert by_student["correct"]["final_score"] == by_student["correct"]["score"] - LATE["penalty"]
    assert [x["student"] for x in facts["late"]] == ["correct"]
    # the e2e students that could not be graded, with the pre-flight reason
    ungraded = {u["student"]: u["reason"] for u in facts["ungraded"]}
    assert set(ungraded) == set(UNGRADABLE)
    assert "no notebook at all" in ungraded["missing_notebook"]
    assert "found my_" in ungraded["renamed_notebook"]
    # pass rates equal the records
    for row in facts["checks"]:
        gid, name = row["check"].split(": ", 1)
        verdicts = [c["passed"] for r in recs.values() for c in r["cells"][gid]["checks"] if c["name"] == name]
        assert (row["passed"], row["graded"]) == (sum(verdicts), len(verdicts))
    assert facts["suspect_checks"] == []  # no check is the only failure of 3+ students here


def test_a_check_failed_only_by_otherwise_perfect_students_is_suspect(graded_class, tmp_path):
    course, assignment, _ = graded_class
    recs = _records(course, assignment)
    gid, cell = next(iter(recs["correct"]["cells"].items()))
    check = cell["checks"][0]["name"]
    for n in range(3):
        rec = copy.deepcopy(recs["correct"])
        rec["student"] = f"perfect_{n}"
        rec["cells"][gid]["checks"][0]["passed"] = False
        records.write_record(records.record_path(tmp_path, assignment, rec["student"]), rec)
    facts = report.class_facts(tmp_path, assignment)
    assert [s["check"] for s in facts["suspect_checks"]] == [diagnosis.check_id(gid, check)]
    assert facts["suspect_checks"][0]["only_failure_of"] == 3


@pytest.mark.parametrize("entry,named_in,not_in", [("rope_half_split", "rope_hidden", "gqa_hidden"),
                                                  ("gqa_uses_sdpa", "gqa_hidden", "rope_hidden")])
def test_feedback_names_the_likely_mistake(shared, tmp_path, entry, named_in, not_in):
    """TrustedVerdicts (the hook that writes the graded cells' outputs) adds the matched entry's
    description to the cells it fails, and nothing of the hidden suite; a forbidden call is named
    from the graded code (its checks fail as a blank answer's do)."""
    import concurrent.futures as cf

    from traitlets.config import Config

    from autograder import nbgrader_hooks
    from autograder.notebook import read_notebook, submission_source

    assignment = "hw-attention"
    suite = load_suite(assignment)
    row = {r.entry: r for r in selfcheck_rows.rows(assignment, shared)}[entry]
    source_nb = ROOT / "solutions" / assignment / suite.NOTEBOOK
    nb = read_notebook(source_nb)
    catalog = {e.name: e for e in selfcheck.load_catalog(assignment)}
    nb = selfcheck.with_cell(nb, catalog[entry].breaks, catalog[entry].source)
    assert submission_source(source_nb, nb) == row.source
    done = cf.Future()
    done.set_result((row.cells, row.seconds))
    config = Config()
    config.CourseDirectory.root = str(ROOT)
    config.CourseDirectory.source_directory = "solutions"
    resources = {"nbgrader": {"assignment": assignment, "notebook": Path(suite.NOTEBOOK).stem, "student": "s"},
                 "autograder": {"started": (row.source, "cpu", done)}}
    nb, _ = nbgrader_hooks.TrustedVerdicts(config=config, device="cpu").preprocess(nb, resources)
    texts = {c.metadata["nbgrader"]["grade_id"]: json.dumps(c.outputs) for c in nb.cells
             if c.get("metadata", {}).get("nbgrader", {}).get("grade")}
    description = catalog[entry].doc.strip().splitlines()[0]
    assert "Likely mistake" in texts[named_in] and json.dumps(description)[1:-1] in texts[named_in]
    assert "Likely mistake" not in texts[not_in]
    suite_lines = [x.strip() for x in Path(suite.__file__).read_text().splitlines() if len(x.strip()) > 30]
    assert not [x for x in suite_lines if x in "".join(texts.values())]


def _cli(course: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autograder", "--course-root", str(course), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_report_json_and_bad_input(graded_class, tmp_path):
    course, assignment, students = graded_class
    done = _cli(course, "report", assignment, "--json")
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    recs = _records(course, assignment)
    per = {s["student"]: s for s in facts["students"]}
    for name, rec in recs.items():
        assert per[name]["final_score"] == rec.get("late", {}).get("final_score", rec["score"])
    for student, entry in students.items():
        if entry:
            assert entry in per[student]["mistakes"]
    empty = _cli(tmp_path, "report", assignment)
    assert empty.returncode == 2 and "no grade records" in empty.stderr and "autograde" in empty.stderr


def test_report_page_in_chromium(graded_class, tmp_path):
    """The page as a TA opens it: renders offline (nothing but file: and data: requested), every
    figure has alt text and a title and labelled axes, numbers equal the records, and the page
    follows the reader's colour scheme (figures and text) with readable contrast."""
    course, assignment, _ = graded_class
    out = tmp_path / "out"
    done = _cli(course, "report", assignment, "--out", str(out))
    assert done.returncode == 0, done.stderr
    page_file = out / "report.html"
    text = page_file.read_text()
    assert "http://" not in text and "https://" not in text
    recs = _records(course, assignment)
    from test_browser import CHROMIUM, FLAGS

    if not Path(CHROMIUM).exists():
        pytest.fail("chromium not found: install Debian's chromium (`make test` does)")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=FLAGS, headless=True,
                                                       viewport={"width": 1280, "height": 900})
        try:
            seen = {}
            for scheme in ("light", "dark"):
                page = context.new_page()
                requests, errors = [], []
                page.on("request", lambda r: requests.append(r.url))
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.emulate_media(color_scheme=scheme)
                page.goto(page_file.as_uri(), wait_until="load")
                assert [u for u in requests if not u.startswith(("file:", "data:"))] == []
                assert errors == []
                figures = page.evaluate("""() => [...document.querySelectorAll('figure img')].map(i => ({
                    alt: i.alt, ok: i.complete && i.naturalWidth > 0, src: i.currentSrc}))""")
                assert len(figures) >= 4 and all(f["ok"] for f in figures), figures
                assert all(len(f["alt"]) > 60 and any(ch.isdigit() for ch in f["alt"]) for f in figures)
                seen[scheme] = [f["src"] for f in figures]
                colors = page.evaluate("""() => { const s = getComputedStyle(document.body);
                    return [s.color, s.backgroundColor]; }""")
                assert _contrast(*colors) >= 7, colors
                seen[scheme + "-bg"] = colors[1]
                rows = page.evaluate("""() => [...document.querySelectorAll('table.students tbody tr')]
                    .map(r => [...r.cells].map(c => c.textContent))""")
                assert {r[0]: float(r[1]) for r in rows} == {
                    n: r.get("late", {}).get("final_score", r["score"]) for n, r in recs.items()}
                named = page.evaluate("""() => [...document.querySelectorAll('table.mistakes tbody tr')]
                    .map(r => [r.cells[0].textContent, r.cells[3].textContent])""")
                assert named and all(f"cat_{entry}" in who for entry, who in named if f"cat_{entry}" in recs)
                page.close()
            assert seen["light"] != seen["dark"] and seen["light-bg"] != seen["dark-bg"]
        finally:
            context.close()
    # the figures themselves: titles and axis labels with units (read from the SVG text)
    import base64
    import re

    svgs = [base64.b64decode(m).decode() for m in re.findall(r'<img src="data:image/svg\+xml;base64,([^"]+)"', text)]
    assert len(svgs) >= 4
    for svg in svgs:
        assert "(count)" in svg or "(%)" in svg or "(points)" in svg or "(s)" in svg


def _contrast(fg: str, bg: str) -> float:
    def lum(css):
        r, g, b = [int(x) / 255 for x in css[css.index("(") + 1:css.index(")")].split(",")[:3]]
        lin = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (r, g, b)]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted((lum(fg), lum(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)
