"""The submission's grade record (:mod:`autograder.records`): made with the hash of the submitted
folder, and written by the last autograde step once nbgrader has saved the grades."""
from __future__ import annotations

import hashlib
from pathlib import Path

from nbgrader.preprocessors import NbGraderPreprocessor

from autograder import records


def submission_sha256(folder: Path) -> str:
    """Hash of every file of a submission folder (names and contents): "the same submission"."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _make_record(coursedir, info, suite, code, cells, device, seconds) -> tuple[Path, dict]:
    """(where, what): the grade record of this submission, with the hash of its submitted folder."""
    student = info.get("student")
    submitted = Path(coursedir.format_path(coursedir.submitted_directory, student, info["assignment"]))
    record = records.make_record(
        assignment=info["assignment"], student=student, suite=suite, source=code, cells=cells,
        device=device, seconds=seconds, submission_sha256=submission_sha256(submitted) if submitted.is_dir() else None)
    return records.record_path(Path(coursedir.root), info["assignment"], student), record


class WriteGradeRecord(NbGraderPreprocessor):
    """Last step of autograding: write the grade record :class:`TrustedVerdicts` made, now
    that nbgrader's SaveAutoGrades has stored the grades (see :class:`TrustedVerdicts`)."""

    def preprocess(self, nb, resources):
        made = resources.get("autograder", {}).pop("record", None)
        if made is not None:
            records.write_record(*made)
        return nb, resources
