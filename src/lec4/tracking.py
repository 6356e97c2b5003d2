"""Experiment tracking with Weights & Biases, offline by default.

Runs are written under ``$LEC4_RUNS_DIR`` (default ``./runs``, gitignored) and can be
uploaded later with ``wandb sync runs/wandb/offline-run-*``. Nothing here needs the
network. Tracking is disabled under pytest or with ``LEC4_TRACKING=disabled``; the
run still records its history locally so pages can plot it with matplotlib.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODES = ("offline", "online", "disabled")


def tracking_mode() -> str:
    """``offline`` unless ``LEC4_TRACKING`` says otherwise; always ``disabled`` under pytest."""
    if "PYTEST_CURRENT_TEST" in os.environ:
        return "disabled"
    mode = os.environ.get("LEC4_TRACKING", "offline").strip().lower()
    if mode not in MODES:
        raise ValueError(f"LEC4_TRACKING={mode!r}; expected one of {MODES}")
    return mode


def runs_dir() -> Path:
    """Folder holding the offline runs (created on first use)."""
    path = Path(os.environ.get("LEC4_RUNS_DIR", "runs")).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Run:
    """A tracked run: ``log`` metrics each step, then ``finish``.

    ``history`` keeps every logged row (with its step) for local plotting, whatever the mode.
    """

    name: str
    mode: str
    history: list[dict[str, Any]] = field(default_factory=list)
    _wandb_run: Any = None

    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        if not metrics:
            raise ValueError("log() needs at least one metric")
        step = len(self.history) if step is None else int(step)
        self.history.append({"step": step, **{k: float(v) for k, v in metrics.items()}})
        if self._wandb_run is not None:
            self._wandb_run.log(metrics, step=step)

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """(steps, values) of one metric, skipping rows that did not log it."""
        rows = [r for r in self.history if key in r]
        if not rows:
            raise KeyError(f"metric {key!r} was never logged in run {self.name!r}")
        return [r["step"] for r in rows], [r[key] for r in rows]

    @property
    def offline_dir(self) -> Path | None:
        """Where wandb wrote the run (sync it with ``wandb sync <dir>``); None when disabled."""
        if self._wandb_run is None:
            return None
        return Path(self._wandb_run.dir).parent

    def finish(self) -> None:
        if self._wandb_run is not None:
            self._wandb_run.finish()
            self._wandb_run = None


def start_run(name: str, config: dict[str, Any] | None = None, project: str = "lec4-book",
              group: str | None = None) -> Run:
    """Start a run named ``name`` with hyper-parameters ``config``."""
    mode = tracking_mode()
    run = Run(name=name, mode=mode)
    if mode == "disabled":
        return run
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_CONSOLE", "off")
    import wandb  # imported lazily: it is slow and unused when disabled

    run._wandb_run = wandb.init(project=project, name=name, group=group, config=config or {},
                                mode=mode, dir=str(runs_dir()), reinit="finish_previous",
                                settings=wandb.Settings(silent=True, console="off",
                                                        x_disable_stats=True))
    return run
