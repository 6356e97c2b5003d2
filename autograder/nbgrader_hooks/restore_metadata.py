"""Sanitize step: every cell's nbgrader metadata restored from the source notebook, and deleted
test and read-only cells put back (where nbgrader's own OverwriteCells would crash)."""
from __future__ import annotations

import copy
from pathlib import Path

import nbformat
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import NbGraderPreprocessor


class RestoreMetadata(NbGraderPreprocessor):
    """Sanitize step: every cell's nbgrader metadata comes from the source notebook (by
    ``grade_id``); metadata naming no source cell is dropped. nbgrader's OverwriteCells
    crashes on e.g. a solution cell turned into a grade cell; after this it cannot."""

    def preprocess(self, nb, resources):
        info = resources["nbgrader"]
        coursedir = CourseDirectory(config=self.config)
        source_nb = Path(coursedir.format_path(coursedir.source_directory, ".", info["assignment"])) / \
            f"{info['notebook']}.ipynb"
        source = {c.metadata["nbgrader"]["grade_id"]: c for c in nbformat.read(source_nb, 4).cells
                  if c.metadata.get("nbgrader", {}).get("grade_id")}
        for cell in nb.cells:
            gid = cell.metadata.get("nbgrader", {}).get("grade_id")
            if gid in source and source[gid].cell_type == cell.cell_type:
                cell.metadata["nbgrader"] = dict(source[gid].metadata["nbgrader"])
            else:
                cell.metadata.pop("nbgrader", None)
        self._restore_deleted_cells(nb, list(source.values()))
        return nb, resources

    @staticmethod
    def _restore_deleted_cells(nb, source_cells) -> None:
        """Put deleted test and read-only cells back after the previous source cell present.

        nbgrader's own OverwriteCells.add_missing_cells crashes (KeyError) when the cell
        before a deleted test cell is a read-only cell. Solution cells are not restored:
        a deleted answer stays an empty answer.
        """
        def gid_of(cell):
            return cell.metadata.get("nbgrader", {}).get("grade_id")

        for position, cell in enumerate(source_cells):
            meta = cell.metadata["nbgrader"]
            if meta.get("solution") or not (meta.get("grade") or meta.get("locked")):
                continue
            present = {gid_of(c): i for i, c in enumerate(nb.cells) if gid_of(c)}
            if meta["grade_id"] in present:
                continue
            before = [present[gid_of(c)] for c in source_cells[:position] if gid_of(c) in present]
            restored = nbformat.from_dict(copy.deepcopy(dict(cell)))
            if restored.cell_type == "code":
                restored.outputs, restored.execution_count = [], None
            nb.cells.insert(max(before) + 1 if before else 0, restored)
