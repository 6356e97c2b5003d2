"""``python -m autograder report ASSIGNMENT [--out DIR] [--json]``: the class at a glance.

Built from the grade records only (``COURSE/autograded/.records/ASSIGNMENT/*.json``, see
:mod:`autograder.records`) plus the list of submitted folders (a submission with no record
could not be graded; the reason is the pre-flight check's, or the last line of its log):

- score distribution per task (graded function) and in total (the late-adjusted
  ``late.final_score`` when a record carries H21's ``late`` object, else ``score``);
- the pass rate of every hidden check;
- **mistakes by name**: students whose failed checks (and forbidden calls, read from the record's
  graded ``source``) match a catalog entry's measured signature
  (:func:`autograder.diagnosis.likely_mistakes`), with its one-line description, and the students
  with failures that match no entry;
- **suspect checks**: a check that is the *only* failure of at least :data:`SUSPECT_MIN`
  students (and of at least :data:`SUSPECT_SHARE` of the graded class): maybe the check, not
  the students, is wrong;
- submissions that could not be graded and why; grading time per submission; late penalties.

:func:`class_facts` computes every number once; :func:`render_html` and ``--json`` only show
them. The page is one self-contained HTML file: figures are matplotlib SVGs embedded as data
URIs, drawn twice (light and dark) and chosen by the reader's ``prefers-color-scheme``; no
script, font or style is loaded from anywhere.
"""
from __future__ import annotations

import argparse
import base64
import html
import io
import json
import statistics
import sys
from collections import Counter, defaultdict
from pathlib import Path

from autograder import diagnosis, records

SUSPECT_MIN = 3        # students who fail only this check
SUSPECT_SHARE = 0.05   # ... and at least this share of the graded students
THEMES = {"light": {"fg": "#1a1a1a", "bg": "#ffffff", "bar": "#3465a4", "grid": "#b0b0b0"},
          "dark": {"fg": "#e8e8e8", "bg": "#16181d", "bar": "#7aa6e0", "grid": "#555a66"}}


class ReportError(ValueError):
    """Nothing to report on (no records, unknown folder): the message says what was expected."""


# --- the facts ----------------------------------------------------------------------------------

def _final(record: dict) -> float:
    """The score that counts: H21's late-policy final score when the record has one (one rule, autograder/late.py)."""
    from autograder.late import final_score

    return final_score(record)


def _no_record_reason(course_root: Path, assignment: str, student: str) -> str:
    """Why a submitted folder has no grade record: the pre-flight check's reason, else its log."""
    from autograder.cli import Course, preflight
    from autograder.suites import load_suite

    try:
        reason = preflight(Course(course_root, "", ""), load_suite(assignment), assignment, student)
    except Exception as err:  # an unloadable suite must not hide the submission
        reason = f"could not be checked ({type(err).__name__}: {err})"
    if reason:
        return reason
    log = course_root / "autograded" / ".logs" / assignment / f"{student}.log"
    if log.exists():
        lines = [x.strip() for x in log.read_text(errors="replace").splitlines() if x.strip()]
        return "grading left no record; last log line: " + (lines[-1][:300] if lines else "(empty log)")
    return "not graded yet (no grade record, no log): run autograde"


def class_facts(course_root: Path, assignment: str) -> dict:
    """Every number the report shows (JSON data). ReportError when there is nothing to report."""
    course_root = Path(course_root)
    folder = course_root / records.RECORDS / assignment
    submitted = {p.parent.name for p in (course_root / "submitted").glob(f"*/{assignment}") if p.is_dir()}
    paths = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not paths and not submitted:
        raise ReportError(f"no grade records in {folder} and no submissions in {course_root / 'submitted'}/*/"
                          f"{assignment}: run `python -m autograder autograde {assignment}` first")
    recs, ungraded = {}, []
    for path in paths:
        try:
            recs[path.stem] = records.read_record(path)
        except records.RecordError as err:
            ungraded.append({"student": path.stem, "reason": str(err)})
    for student in sorted(submitted - set(recs) - {u["student"] for u in ungraded}):
        ungraded.append({"student": student, "reason": _no_record_reason(course_root, assignment, student)})
    ungraded.sort(key=lambda u: u["student"])

    max_score = max((float(r["max_score"]) for r in recs.values()), default=0.0)
    check_rows: dict[str, dict] = {}
    students = []
    for name, rec in sorted(recs.items()):
        per_task: dict[str, float] = defaultdict(float)
        for gid, cell in rec["cells"].items():
            per_task[cell["function"]] += float(cell["points"])
            for check in cell["checks"]:
                cid = diagnosis.check_id(gid, check["name"])
                row = check_rows.setdefault(cid, {"check": cid, "cell": gid, "function": cell["function"],
                                                  "kind": check["kind"], "passed": 0, "graded": 0})
                row["graded"] += 1
                row["passed"] += bool(check["passed"])
        failed = diagnosis.failed_checks(rec)
        mistakes = diagnosis.likely_mistakes(assignment, failed, rec["source"])
        late = rec.get("late") if isinstance(rec.get("late"), dict) else None
        students.append({
            "student": name, "score": float(rec["score"]), "max_score": float(rec["max_score"]),
            "final_score": _final(rec), "late": late, "tasks": {k: round(v, 2) for k, v in per_task.items()},
            "failed_checks": sorted(failed), "mistakes": [m.name for m in mistakes],
            "grading_s": float(rec["timings"]["grading_s"]), "graded_at": rec["graded_at"],
            "device": rec["reproduce"].get("device")})
    task_max: dict[str, float] = defaultdict(float)  # function -> max points (the records share one suite)
    for cell in (recs[min(recs)]["cells"].values() if recs else ()):
        task_max[cell["function"]] += float(cell["max_points"])
    for row in check_rows.values():
        row["pass_rate"] = round(row["passed"] / row["graded"], 4) if row["graded"] else None

    catalog = {m.name: m for m in diagnosis.catalog_signatures(assignment)}
    by_entry: dict[str, list[str]] = defaultdict(list)
    for s in students:
        for m in s["mistakes"]:
            by_entry[m].append(s["student"])
    mistakes = [{"entry": name, "description": catalog[name].description, "breaks": catalog[name].breaks,
                 "students": by_entry[name]} for name in sorted(by_entry, key=lambda n: (-len(by_entry[n]), n))]
    unmatched = [s["student"] for s in students if s["failed_checks"] and not s["mistakes"]]

    only = Counter(s["failed_checks"][0] for s in students if len(s["failed_checks"]) == 1)
    threshold = max(SUSPECT_MIN, SUSPECT_SHARE * len(students))
    suspects = [{"check": c, "only_failure_of": n, "pass_rate": check_rows[c]["pass_rate"]}
                for c, n in sorted(only.items(), key=lambda x: (-x[1], x[0])) if n >= threshold]

    finals = [s["final_score"] for s in students]
    times = [s["grading_s"] for s in students]
    late = [{"student": s["student"], **{k: s["late"].get(k) for k in
             ("due", "submitted", "lateness_s", "penalty", "rule", "raw_score", "final_score", "counted")},
             "extension": s["late"].get("extension")} for s in students if s["late"]]
    return {
        "assignment": assignment,
        "course_root": str(course_root),
        "graded": len(students),
        "ungradable": len(ungraded),
        "max_score": max_score,
        "score_summary": _summary(finals),
        "tasks": [{"task": t, "max_points": round(task_max[t], 2),
                   "summary": _summary([s["tasks"].get(t, 0.0) for s in students])} for t in task_max],
        "students": students,
        "checks": sorted(check_rows.values(), key=lambda r: (r["pass_rate"] if r["pass_rate"] is not None else 2,
                                                              r["check"])),
        "mistakes": mistakes,
        "unmatched": unmatched,
        "catalog_size": len(catalog) + len(diagnosis.unidentifiable(assignment)),
        "unidentifiable": diagnosis.unidentifiable(assignment),
        "suspect_checks": suspects,
        "suspect_rule": f"the only failed check of at least {SUSPECT_MIN} students and at least "
                        f"{SUSPECT_SHARE:.0%} of the graded class",
        "ungraded": ungraded,
        "grading_time_s": _summary(times),
        "late": late,
    }


def _summary(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "mean": None, "median": None, "min": None, "max": None}
    return {"n": len(values), "mean": round(statistics.fmean(values), 3), "median": round(statistics.median(values), 3),
            "min": round(min(values), 3), "max": round(max(values), 3)}


# --- figures ------------------------------------------------------------------------------------

def _svg(draw, theme: str, size: tuple[float, float]) -> str:
    """A data: URI of the SVG ``draw(fig, colors)`` makes in ``theme``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from lec4.plotting import BOOK_STYLE

    colors = THEMES[theme]
    style = {**BOOK_STYLE, "figure.figsize": size, "text.color": colors["fg"], "axes.labelcolor": colors["fg"],
             "axes.edgecolor": colors["fg"], "xtick.color": colors["fg"], "ytick.color": colors["fg"],
             "grid.color": colors["grid"], "figure.facecolor": colors["bg"], "axes.facecolor": colors["bg"],
             "savefig.facecolor": colors["bg"], "svg.fonttype": "none", "font.size": 10}
    with matplotlib.rc_context(style):
        fig = plt.figure()
        try:
            draw(fig, colors)
            buf = io.BytesIO()
            fig.savefig(buf, format="svg", metadata={"Date": None})
        finally:
            plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode()


def _hist(ax, values, bins, colors, xlabel, ylabel, title):
    ax.hist(values, bins=bins, color=colors["bar"], edgecolor=colors["bg"])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.yaxis.get_major_locator().set_params(integer=True)


def figures(facts: dict) -> list[dict]:
    """Each figure: id, title, alt text, and its light and dark SVG (data URIs)."""
    students, a = facts["students"], facts["assignment"]
    out = []
    if not students:
        return out

    def add(fid, title, alt, draw, size=(6.4, 3.4)):
        out.append({"id": fid, "title": title, "alt": alt,
                    **{theme: _svg(draw, theme, size) for theme in THEMES}})

    finals, top = [s["final_score"] for s in students], facts["max_score"]
    summ = facts["score_summary"]
    bins = [i * top / 20 for i in range(21)] if top else 10
    add("fig-total", f"Total score, {a}",
        f"Histogram of the total scores of {summ['n']} graded students, out of {top:g} points (bins of "
        f"{top / 20:g} points): median {summ['median']:g}, mean {summ['mean']:g}, lowest {summ['min']:g}, "
        f"highest {summ['max']:g}.",
        lambda fig, c: _hist(fig.add_subplot(), finals, bins, c, f"total score (points out of {top:g})",
                             "students (count)", f"Total score, {a} ({summ['n']} graded)"))

    tasks = facts["tasks"]

    def draw_tasks(fig, c):
        axes = fig.subplots(1, len(tasks), squeeze=False)[0]
        for ax, t in zip(axes, tasks):
            values = [s["tasks"].get(t["task"], 0.0) for s in students]
            m = t["max_points"] or 1
            _hist(ax, values, [i * m / 10 for i in range(11)], c, f"points (out of {m:g})",
                  "students (count)" if ax is axes[0] else "", t["task"])
        fig.suptitle(f"Score per task, {a}")
    add("fig-tasks", f"Score per task, {a}",
        "Histograms of the points per task, one panel per graded function: " + "; ".join(
            f"{t['task']} (out of {t['max_points']:g}): median {t['summary']['median']:g}, "
            f"lowest {t['summary']['min']:g}, highest {t['summary']['max']:g}" for t in tasks) + ".",
        draw_tasks, size=(max(6.4, 3.0 * len(tasks)), 3.2))

    checks = list(reversed(facts["checks"]))  # lowest pass rate at the top of the chart

    def draw_checks(fig, c):
        ax = fig.add_subplot()
        ax.barh(range(len(checks)), [100 * r["pass_rate"] for r in checks], color=c["bar"])
        ax.set_yticks(range(len(checks)), [_short(r["check"], 60) for r in checks], fontsize=7)
        ax.set_xlim(0, 100)
        ax.set_xlabel("students who pass the check (%)")
        ax.set_ylabel("hidden check (grade cell: check)")
        ax.set_title(f"Pass rate of every hidden check, {a}")
    worst = facts["checks"][:3]
    add("fig-checks", f"Pass rate of every hidden check, {a}",
        f"Horizontal bars: the share of the {len(students)} graded students passing each of the "
        f"{len(checks)} hidden checks. Lowest: " + "; ".join(
            f"{r['check']} {100 * r['pass_rate']:.0f}%" for r in worst) + ".",
        draw_checks, size=(7.5, max(3.0, 0.2 * len(checks) + 1.2)))

    times, ts = [s["grading_s"] for s in students], facts["grading_time_s"]
    add("fig-time", f"Grading time per submission, {a}",
        f"Histogram of the hidden suite's grading time of {ts['n']} submissions in seconds: median "
        f"{ts['median']:g} s, fastest {ts['min']:g} s, slowest {ts['max']:g} s.",
        lambda fig, c: _hist(fig.add_subplot(), times, 20, c, "grading time per submission (s)",
                             "submissions (count)", f"Grading time per submission, {a}"))

    if facts["late"]:
        late = facts["late"]

        def draw_late(fig, c):
            ax = fig.add_subplot()
            ax.scatter([x["lateness_s"] / 3600 for x in late], [x["penalty"] for x in late], color=c["bar"])
            ax.set_xlabel("submitted after the due date (hours)")
            ax.set_ylabel("late penalty (points)")
            ax.set_title(f"Late penalties, {a} ({len(late)} students)")
        add("fig-late", f"Late penalties, {a}",
            f"Scatter plot of the late penalty in points against the hours past the due date for {len(late)} "
            f"students; largest penalty {max(x['penalty'] for x in late):g} points.", draw_late)
    return out


def _short(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"


# --- the page -----------------------------------------------------------------------------------

CSS = """
:root { color-scheme: light dark; --fg: #1a1a1a; --bg: #ffffff; --muted: #555; --line: #d0d0d0;
        --warn: #8a1c00; --head: #f0f2f5; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #e8e8e8; --bg: #16181d; --muted: #b0b4bc; --line: #3a3f4a; --warn: #ffab91; --head: #23262e; }
}
body { font-family: system-ui, sans-serif; color: var(--fg); background: var(--bg); margin: 2rem auto;
       max-width: 60rem; padding: 0 1rem; line-height: 1.45; }
h1, h2 { line-height: 1.2; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.92rem; }
th, td { border: 1px solid var(--line); padding: 0.25rem 0.5rem; text-align: left; vertical-align: top; }
th { background: var(--head); }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0 2rem; }
figure img { max-width: 100%; height: auto; }
figcaption, .muted { color: var(--muted); }
.warn { color: var(--warn); font-weight: 600; }
code { font-size: 0.9em; }
"""


def _e(value) -> str:
    return html.escape(str(value))


def _table(header: list[str], rows: list[list], cls: str = "", numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th scope=\"col\">{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(
        f"<td class=\"num\">{c}</td>" if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows)
    return f"<table class=\"{cls}\"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(facts: dict) -> str:
    a = facts["assignment"]
    parts = [f"<h1>Class report: {_e(a)}</h1>",
             f"<p>{facts['graded']} submissions graded, {facts['ungradable']} could not be graded. "
             f"Built from the grade records in <code>{_e(facts['course_root'])}/autograded/.records/{_e(a)}/</code>. "
             "Scores are after late penalties where a record has one.</p>"]
    figs = figures(facts)
    fig_no = {f["id"]: n for n, f in enumerate(figs, 1)}

    def figure(fid):
        f = next((x for x in figs if x["id"] == fid), None)
        if f is None:
            return ""
        return (f"<figure id=\"{f['id']}\"><picture><source media=\"(prefers-color-scheme: dark)\" "
                f"srcset=\"{f['dark']}\"><img src=\"{f['light']}\" alt=\"{_e(f['alt'])}\">"
                f"</picture><figcaption>Figure {fig_no[fid]}. {_e(f['alt'])}</figcaption></figure>")

    s = facts["score_summary"]
    parts.append("<h2 id=\"scores\">Scores</h2>")
    if s["n"]:
        parts.append(f"<p>Total out of {facts['max_score']:g}: median {s['median']:g}, mean {s['mean']:g}, "
                     f"lowest {s['min']:g}, highest {s['max']:g}.</p>")
    parts.append(figure("fig-total"))
    parts.append(_table(["task", "max points", "median", "mean", "lowest", "highest"],
                        [[f"<code>{_e(t['task'])}</code>", f"{t['max_points']:g}", f"{t['summary']['median']:g}",
                          f"{t['summary']['mean']:g}", f"{t['summary']['min']:g}", f"{t['summary']['max']:g}"]
                         for t in facts["tasks"] if t["summary"]["n"]], "tasks", {1, 2, 3, 4, 5}))
    parts.append(figure("fig-tasks"))

    parts.append("<h2 id=\"mistakes\">Mistakes by name</h2>")
    parts.append(f"<p>Students whose failed checks match what a known faulty implementation fails "
                 f"(catalog of {facts['catalog_size']} entries, signatures measured by "
                 f"<code>selfcheck --signatures</code>).</p>")
    if facts["mistakes"]:
        parts.append(_table(["mistake", "what is wrong", "students", "who"],
                            [[f"<code>{_e(m['entry'])}</code>", _e(m["description"]), len(m["students"]),
                              ", ".join(_e(x) for x in m["students"])] for m in facts["mistakes"]],
                            "mistakes", {2}))
    else:
        parts.append("<p>No student's failures match a catalog entry.</p>")
    if facts["unidentifiable"]:
        parts.append("<p>Not identifiable from the hidden checks (they fail every check of their cells and use no "
                     "forbidden call, as a blank answer does), so never named: " + ", ".join(f"<code>{_e(x)}</code>"
                                                                       for x in facts["unidentifiable"]) + ".</p>")
    parts.append(f"<p>Failures matching no known mistake ({len(facts['unmatched'])} students): "
                 + (", ".join(f"<span class=\"unmatched\">{_e(x)}</span>" for x in facts["unmatched"]) or "none")
                 + ".</p>")

    parts.append("<h2 id=\"suspects\">Suspect checks</h2>")
    parts.append(f"<p>A check is suspect when it is {_e(facts['suspect_rule'])}: perhaps the check, not the "
                 "students, is wrong. Replay one of them (<code>python -m autograder replay</code>) and read the check.</p>")
    parts.append(_table(["check", "only failure of (students)", "pass rate"],
                        [[f"<code class=\"warn\">{_e(x['check'])}</code>", x["only_failure_of"],
                          f"{100 * x['pass_rate']:.1f}%"] for x in facts["suspect_checks"]], "suspects", {1, 2})
                 if facts["suspect_checks"] else "<p>None.</p>")

    parts.append("<h2 id=\"checks\">Pass rate of every hidden check</h2>")
    parts.append(figure("fig-checks"))
    parts.append(_table(["check", "kind", "passed", "graded", "pass rate"],
                        [[f"<code>{_e(r['check'])}</code>", _e(r["kind"]), r["passed"], r["graded"],
                          f"{100 * r['pass_rate']:.1f}%"] for r in facts["checks"]], "checks", {2, 3, 4}))

    parts.append("<h2 id=\"ungraded\">Submissions that could not be graded</h2>")
    parts.append(_table(["student", "why"], [[_e(u["student"]), _e(u["reason"])] for u in facts["ungraded"]],
                        "ungraded") if facts["ungraded"] else "<p>None.</p>")

    parts.append("<h2 id=\"time\">Grading time</h2>")
    t = facts["grading_time_s"]
    if t["n"]:
        parts.append(f"<p>Hidden suite per submission: median {t['median']:g} s, slowest {t['max']:g} s.</p>")
    parts.append(figure("fig-time"))

    parts.append("<h2 id=\"late\">Late penalties</h2>")
    if facts["late"]:
        parts.append(figure("fig-late"))
        parts.append(_table(["student", "due", "submitted", "extension", "penalty", "raw", "final", "rule"],
                            [[_e(x["student"]), _e(x["due"]), _e(x["submitted"]),
                              _e(x["extension"]["until"]) if x.get("extension") else "-",
                              f"{x['penalty']:g}", f"{x['raw_score']:g}", f"{x['final_score']:g}", _e(x["rule"])]
                             for x in facts["late"]], "late", {4, 5, 6}))
    else:
        parts.append("<p>No record carries a late penalty (no due date, or none late).</p>")

    parts.append("<h2 id=\"students\">Every student</h2>")
    parts.append(_table(["student", "score", "max", "likely mistake", "failed checks", "grading (s)"],
                        [[_e(x["student"]), f"{x['final_score']:g}", f"{x['max_score']:g}",
                          ", ".join(f"<code>{_e(m)}</code>" for m in x["mistakes"]) or "-",
                          len(x["failed_checks"]), f"{x['grading_s']:g}"] for x in facts["students"]],
                        "students", {1, 2, 4, 5}))
    body = "\n".join(p for p in parts if p)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            f"style-src 'unsafe-inline'\">"
            f"<title>Class report: {_e(a)}</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n")


# --- command ------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("assignment")
    parser.add_argument("--out", help="folder for report.html (default: COURSE/reports/ASSIGNMENT)")
    parser.add_argument("--json", action="store_true", help="print the facts as JSON instead of writing HTML")


def run(args: argparse.Namespace, course_root: Path) -> int:
    try:
        facts = class_facts(course_root, args.assignment)
    except (ReportError, ValueError) as err:
        print(f"report: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(facts, indent=1))
        return 0
    out = Path(args.out) if args.out else Path(course_root) / "reports" / args.assignment
    out.mkdir(parents=True, exist_ok=True)
    page = out / "report.html"
    page.write_text(render_html(facts), encoding="utf-8")
    print(f"report: {page} ({facts['graded']} graded, {facts['ungradable']} not gradable, "
          f"{sum(len(m['students']) for m in facts['mistakes'])} named mistakes)")
    return 0
