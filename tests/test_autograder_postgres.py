"""The gradebook on a real PostgreSQL server (Debian's package), started here on a free port."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
from servers import postgres_server  # noqa: E402  (shared with tests/test_slurm.py)


@pytest.fixture
def postgres():
    with postgres_server() as url:
        yield url


@pytest.mark.slow
def test_generate_and_zero_grade_into_postgres(postgres, tmp_path):
    course = tmp_path / "course"
    shutil.copytree(ROOT / "tests" / "fixtures" / "course" / "solutions", course / "solutions")
    env = {**os.environ, "AUTOGRADER_SUITE_PATH": str(ROOT / "tests" / "fixtures" / "suites")}
    run = lambda *a: subprocess.run([sys.executable, "-m", "autograder", "--course-root", str(course),
                                     "--db-url", postgres, *a], cwd=ROOT, env=env, capture_output=True, text=True)
    gen = run("generate", "hw-fixture")
    assert gen.returncode == 0, gen.stdout[-1500:] + gen.stderr[-1500:]
    folder = course / "submitted" / "dora" / "hw-fixture"
    folder.mkdir(parents=True)
    (folder / "hw-fixture.ipynb").write_text("{not json")
    result = run("autograde", "hw-fixture")
    assert result.returncode == 1 and "not valid notebook JSON" in result.stdout
    from nbgrader.api import Gradebook
    with Gradebook(postgres, "10423-lec4") as gb:
        assert gb.find_submission("hw-fixture", "dora").score == 0
        assert gb.find_submission("hw-fixture", "dora").max_score == 7
    assert not (course / "gradebook.db").exists()  # nothing went to SQLite
