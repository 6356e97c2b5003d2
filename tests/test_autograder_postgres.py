"""The gradebook on a real PostgreSQL server (Debian's package), started here on a free port."""
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


@pytest.fixture
def postgres(tmp_path):
    if PG_BIN is None or not (PG_BIN / "initdb").exists():
        pytest.fail("PostgreSQL not installed: apt-get install postgresql (.ci/run does it)")
    base = Path(tempfile.mkdtemp(prefix="pg-"))  # pytest's tmp_path is private to root
    data = base / "data"
    data.mkdir()
    prefix = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        os.chmod(base, 0o755)
        shutil.chown(data, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run(prefix + [str(PG_BIN / "initdb"), "-D", str(data), "-U", "grader", "--auth=trust"],
                   check=True, capture_output=True)
    subprocess.run(prefix + [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(data / "log"), "-w", "-o",
                             f"-p {port} -k {data} -c listen_addresses=127.0.0.1", "start"], check=True, capture_output=True)
    try:
        subprocess.run([str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "grader", "lec4"], check=True)
        yield f"postgresql+psycopg2://grader@127.0.0.1:{port}/lec4"
    finally:
        subprocess.run(prefix + [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


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
    sys.path.insert(0, str(ROOT))
    from nbgrader.api import Gradebook
    with Gradebook(postgres, "10423-lec4") as gb:
        assert gb.find_submission("hw-fixture", "dora").score == 0
        assert gb.find_submission("hw-fixture", "dora").max_score == 7
    assert not (course / "gradebook.db").exists()  # nothing went to SQLite
