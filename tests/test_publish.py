"""`python -m autograder publish DEST`: the public course repository (issue 25).

Published from a clone of this repository's HEAD (the working tree of /work/main may hold
uncommitted work: publish refuses a dirty tree, tested below). What is checked is what a
student's home receives: the tree and every object of its git history hold no solution line,
no hidden-check source and no catalog source; `lec4` installs from it (package data included)
and the book builds from it alone with a real, clean jupyter-book build.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT, TEST_AUTHOR

PY = sys.executable
AUTHOR = TEST_AUTHOR
PUBLISHED = {"README.md", "book", "src", "assignments", "environment.yml", "requirements.txt",
             "requirements-lock.txt", "pyproject.toml", ".gitignore"}
MIN_LINE = 25  # shorter lines (`return out`, `x = x.float()`) are common to any code
# Solution lines that are public by design: the solution repeats given library code (each one
# is checked to still be a solution line, so the list cannot go stale unnoticed).
GIVEN = {
    "if isinstance(w, bool) or not isinstance(w, int) or w < 2 or w % 2:":
        "the window check of lec4.attention.check_window, repeated in sliding_window_attention",
    "windows = x.unfold(2, kernel_size, stride).unfold(3, kernel_size, stride)   # (N, C, H', W', k, k)":
        "the given maxpool2d_forward (lec4.homework.hw_conv); the backward re-extracts the same windows",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def publish(dest: Path, source: Path, *extra: str, subprocess_cli: bool = False) -> subprocess.CompletedProcess:
    """`python -m autograder publish DEST ...`: in this process (the CLI's imports take 20-50 s on a
    loaded 2-core machine), or as the real command with ``subprocess_cli`` (the fixture does)."""
    argv = ["publish", str(dest), "--source", str(source), *extra]
    if subprocess_cli:
        return subprocess.run([PY, "-m", "autograder", *argv], capture_output=True, text=True, cwd=ROOT)
    import contextlib
    import io

    from autograder import cli

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    """A clean clone of this repository's HEAD (what publish reads)."""
    clone = tmp_path_factory.mktemp("staff") / "lecture4"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
    return clone


@pytest.fixture(scope="module")
def published(source, tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("public") / "lecture4-public"
    r = publish(dest, source, "--author", AUTHOR, subprocess_cli=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "published" in r.stdout and str(dest) in r.stdout, r.stdout
    return dest


def all_blobs(repo: Path) -> dict[str, str]:
    """Every blob in the repository's object store (the tree and all of its history), by id."""
    ids = git(repo, "cat-file", "--batch-all-objects", "--batch-check=%(objectname) %(objecttype)").split("\n")
    blobs = [line.split()[0] for line in ids if line.endswith(" blob")]
    return {b: subprocess.run(["git", "-C", str(repo), "cat-file", "blob", b], capture_output=True,
                              check=True).stdout.decode("utf-8", "replace") for b in blobs}


def solution_lines() -> set[str]:
    """Every line of the instructor notebooks between BEGIN and END SOLUTION (longer than MIN_LINE)."""
    lines = set()
    for path in ROOT.glob("solutions/*/*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            inside = False
            for line in cell.source.splitlines():
                if "BEGIN SOLUTION" in line:
                    inside = True
                elif "END SOLUTION" in line:
                    inside = False
                elif inside and len(line.strip()) > MIN_LINE:
                    lines.add(line.strip())
    assert len(lines) > 20, f"found only {len(lines)} solution lines: are the solution markers still there?"
    return lines


def public_by_design() -> set[str]:
    """Lines students are given anyway: the instructor notebooks outside the solution regions
    (signatures, docstrings, given code, visible tests: the release notebooks carry them)."""
    lines = set()
    for path in ROOT.glob("solutions/*/*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            inside = False
            for line in cell.source.splitlines():
                inside = ("BEGIN SOLUTION" in line) or (inside and "END SOLUTION" not in line)
                if not inside:
                    lines.add(line.strip())
    return lines


def normalized(text: str) -> str:
    """Code as lines without indentation or blank lines; a notebook as its cells' sources."""
    try:
        text = "\n".join(cell.source for cell in nbformat.reads(text, as_version=4).cells)
    except Exception:  # not a notebook
        pass
    return "\n".join(line.strip() for line in text.splitlines() if line.strip())


def staff_source_chunks(folder: str, size: int = 3) -> set[str]:
    """Runs of ``size`` consecutive lines of the staff's Python under ``folder`` (hidden suites,
    catalog), each run holding a line longer than MIN_LINE, not an import, that students are not
    given anyway.
    (Single lines give false alarms: `gen = torch.Generator().manual_seed(seed)` is in any code.)"""
    given = public_by_design()
    chunks = set()
    for path in (ROOT / folder).rglob("*.py"):
        lines = normalized(path.read_text()).splitlines()
        for i in range(len(lines) - size + 1):
            run = lines[i:i + size]
            if any(len(line) > MIN_LINE and line not in given and not line.startswith(("import ", "from "))
                   for line in run):
                chunks.add("\n".join(run))
    assert len(chunks) > 20, f"found only {len(chunks)} runs of lines in {folder}"
    return chunks


def leaks(lines: set[str], blobs: dict[str, str]) -> list[str]:
    texts = [normalized(text) for text in blobs.values()]
    return sorted(line for line in lines if any(line in text for text in texts))


# ---------------------------------------------------------------- what is published
def test_the_public_repository_holds_only_the_public_files(published):
    assert {p.name for p in published.iterdir()} == PUBLISHED | {".git"}
    tracked = git(published, "ls-files").split()
    assert not [f for f in tracked if f.startswith(("solutions/", "autograder/", "tests/", "benchmarks/", "hub/",
                                                    ".ci/", "tools/"))]
    assert "src/lec4/results/hw_attention.md" in tracked and "src/lec4/attention.py" in tracked
    assert {"book/_config.yml", "book/modern_transformers.md"} <= set(tracked)
    release = {f for f in tracked if f.startswith("assignments/") and f.endswith(".ipynb")}
    assert release == {str(p.relative_to(ROOT)) for p in ROOT.glob("assignments/*/*.ipynb")}, release
    # one commit, by the configured author (also committer: no machine identity in the history)
    log = git(published, "log", "--all", "--format=%an <%ae>|%cn <%ce>|%s").splitlines()
    assert len(log) == 1 and log[0].startswith(f"{AUTHOR}|{AUTHOR}|"), log
    readme = (published / "README.md").read_text()
    assert "assignments/" in readme and "pip install -e ." in readme and "{" not in readme, readme[:500]
    assert "autograder" not in (published / "pyproject.toml").read_text().replace("python -m autograder publish", "")
    assert "book/_build/" in (published / ".gitignore").read_text()  # a built book is no change to commit


def test_no_solution_hidden_check_or_catalog_source_in_tree_or_history(published):
    blobs = all_blobs(published)
    assert len(blobs) >= len(git(published, "ls-files").split())
    solutions = solution_lines()
    assert set(GIVEN) <= solutions, set(GIVEN) - solutions
    assert not (leaked := leaks(solutions - set(GIVEN), blobs)), f"solution lines published: {leaked[:5]}"
    assert not (leaked := leaks(staff_source_chunks("autograder/suites"), blobs)), \
        f"hidden check source published: {leaked[:5]}"
    assert not (leaked := leaks(staff_source_chunks("autograder/catalog"), blobs)), \
        f"catalog source published: {leaked[:5]}"


def test_lec4_and_its_benchmark_tables_install_from_the_published_copy(published, tmp_path):
    """A real (non-editable) install of the published copy: the tables come as package data."""
    target = tmp_path / "site"
    r = subprocess.run([PY, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--target",
                        str(target), str(published)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    code = ("import lec4, lec4.attention as a\n"
            "print(a.__file__)\n"
            "cpu = a.benchmark_results('hw_attention.md')\n"
            "print(a.results_tables(cpu)[0][0])\n"
            "print(a.benchmark_results('gpu_attention.md') is not None)\n")
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env={**os.environ, "PYTHONPATH": str(target)})
    assert r.returncode == 0, r.stderr[-3000:]
    where, heading, gpu = r.stdout.splitlines()
    assert where == str(target / "lec4" / "attention.py")  # the installed copy, not this checkout
    assert heading == "sliding_window_attention" and gpu == "True", r.stdout


@pytest.mark.book
@pytest.mark.slow
def test_the_book_builds_from_the_published_repository_alone(built_book):
    """The test run's one book build (conftest's ``built_book``, which test_book and test_browser
    check page by page) is a clean tools/build_book.py build (every chapter executed, PDF
    printed) of a published repository's book/, with the published lec4 first on the path:
    nothing from this checkout is needed."""
    if os.environ.get("LEC4_BUILT_BOOK"):
        pytest.fail("LEC4_BUILT_BOOK is set: this test proves the published repository's own build; unset it")
    public = built_book.parents[2]  # PUBLIC/book/_build/html
    assert {p.name for p in public.iterdir()} == PUBLISHED | {".git"}, sorted(p.name for p in public.iterdir())
    tracked = git(public, "ls-files").split()
    assert not [f for f in tracked if f.startswith(("solutions/", "autograder/", "tests/", "tools/"))]
    log = git(public, "log", "--all", "--format=%an <%ae>|%s").splitlines()
    assert len(log) == 1 and log[0].startswith(f"{AUTHOR}|"), log  # a publish's one commit
    for page in ("index", "modern_transformers", "pretraining", "cnns"):
        assert (built_book / f"{page}.html").exists(), page
    page = (built_book / "modern_transformers.html").read_text()
    assert "sliding chunks ms" in page  # the committed CPU table, read from the published lec4
    assert (built_book / "lec4-book.pdf").stat().st_size > 100_000


# ---------------------------------------------------------------- bad input: exit 2, nothing written
def test_destination_inside_the_repository_is_refused(source):
    dest = source / "public"
    r = publish(dest, source)
    assert r.returncode == 2 and "inside the staff repository" in r.stderr, r.stderr
    assert not dest.exists()


def test_destination_not_empty_is_refused(source, tmp_path):
    dest = tmp_path / "public"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    r = publish(dest, source)
    assert r.returncode == 2 and "not empty" in r.stderr and "notes.txt" in r.stderr, r.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["notes.txt"]  # nothing written, nothing lost


def test_uncommitted_published_files_are_refused(source, tmp_path):
    chapter = source / "book" / "intro.md"
    original = chapter.read_text()
    chapter.write_text(original + "\nan uncommitted sentence\n")
    new = source / "src" / "lec4" / "scratch.py"
    new.write_text("x = 1\n")
    try:
        r = publish(tmp_path / "public", source)
        assert r.returncode == 2 and "uncommitted changes" in r.stderr, r.stderr
        assert "book/intro.md" in r.stderr and "src/lec4/scratch.py" in r.stderr, r.stderr
        assert not (tmp_path / "public").exists()
    finally:
        chapter.write_text(original)
        new.unlink()
    # staff-only files may be dirty: they are not published
    (source / "solutions" / "scratch.txt").write_text("not published")
    try:
        r = publish(tmp_path / "public2", source)
        assert r.returncode == 0, r.stderr
        assert not (tmp_path / "public2" / "solutions").exists()
    finally:
        (source / "solutions" / "scratch.txt").unlink()


def test_bad_author_is_refused(source, tmp_path):
    r = publish(tmp_path / "public", source, "--author", "no email here")
    assert r.returncode == 2 and "Name <email>" in r.stderr, r.stderr
    assert not (tmp_path / "public").exists()


# ---------------------------------------------------------------- updates during the term
def test_update_commits_on_top_so_student_clones_fast_forward(source, tmp_path):
    public = tmp_path / "public"
    assert publish(public, source, "--author", AUTHOR).returncode == 0
    student = tmp_path / "student"  # what nbgitpuller made in a student's home
    subprocess.run(["git", "clone", "--quiet", str(public), str(student)], check=True)
    staff = tmp_path / "staff"  # the staff fix a chapter and commit
    subprocess.run(["git", "clone", "--quiet", str(source), str(staff)], check=True)
    (staff / "book" / "intro.md").write_text((staff / "book" / "intro.md").read_text() + "\nA correction.\n")
    git(staff, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet", "-am", "fix intro")
    r = publish(public, staff, "--update", "--author", AUTHOR)
    assert r.returncode == 0 and "committed" in r.stdout, r.stdout + r.stderr
    assert len(git(public, "log", "--format=%H").split()) == 2
    pull = subprocess.run(["git", "-C", str(student), "pull", "--ff-only", "--quiet"], capture_output=True, text=True)
    assert pull.returncode == 0, pull.stderr
    assert (student / "book" / "intro.md").read_text().endswith("A correction.\n")
    r = publish(public, staff, "--update", "--author", AUTHOR)  # nothing new: no empty commit
    assert r.returncode == 0 and "unchanged" in r.stdout and len(git(public, "log", "--format=%H").split()) == 2


def test_update_refuses_a_dirty_clone_or_a_staff_repository(source, tmp_path):
    public = tmp_path / "public"
    assert publish(public, source).returncode == 0
    (public / "book" / "intro.md").write_text("a student's or TA's local edit")
    r = publish(public, source, "--update")
    assert r.returncode == 2 and "uncommitted changes" in r.stderr, r.stderr
    assert (public / "book" / "intro.md").read_text() == "a student's or TA's local edit"  # nothing lost
    staff = tmp_path / "staff-clone"
    subprocess.run(["git", "clone", "--quiet", str(source), str(staff)], check=True)
    r = publish(staff, source, "--update")
    assert r.returncode == 2 and "holds staff material" in r.stderr, r.stderr
    assert (staff / "solutions").is_dir()
    r = publish(tmp_path / "nothing-here", source, "--update")
    assert r.returncode == 2 and "not a git repository" in r.stderr, r.stderr
