"""GPU benchmark of the hw-attention reference solution (the instructor notebook's solution cells).

1. ``sliding_window_attention`` (sliding chunks, the reference) vs. ``torch.compile``d FlexAttention
   with a sliding-window block mask (a fused kernel); bf16, B = 1, Hq = 32, Hkv = 8 (grouped-query),
   D = 128, w = 4096, T in {8192, 32768, 65536}. An out-of-memory error is caught and reported
   as a table row, not a crash.
2. ``apply_rope`` (element-wise) vs. RoPE by its definition (a (T, D, D) stack of rotation matrices);
   bf16, B = 1, H = 32, T = 8192, D = 128.

Times are the median of ``--repeats`` calls after a warm-up (compilation), with CUDA synchronised
around each call; "peak" is the extra peak GPU memory of one call (``torch.cuda.max_memory_allocated``
after ``reset_peak_memory_stats``, minus what was allocated before: the inputs do not count).
Each row also gives the largest difference between the two methods, and at the smallest T both are
compared with float32 dense masked attention.

Runs with nothing but torch (no nbformat, nbgrader or jupyter: the notebook is read as JSON).
Stops starting new sizes once ``--budget-s`` seconds have passed (the rows left out say so).

Usage (GPU machine, repository root):  PYTHONPATH=src python benchmarks/gpu_attention.py --out $OUT/gpu_attention.md
Then commit that file as src/lec4/results/gpu_attention.md (package data of lec4: the book reads it
through lec4.attention.benchmark_results, also from an installed lec4 or a student's clone).
Smoke test on CPU with tiny sizes:       .venv/bin/python benchmarks/gpu_attention.py --smoke --out /tmp/gpu_smoke.md
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SOURCE_NB = ROOT / "solutions" / "hw-attention" / "hw-attention.ipynb"
RESULTS = ROOT / "src" / "lec4" / "results" / "gpu_attention.md"  # lec4.attention.RESULTS_DIR (package data)

FULL = dict(B=1, Hq=32, Hkv=8, D=128, w=4096, Ts=(8192, 32768, 65536), rope_T=8192,
            dtype=torch.bfloat16)
SMOKE = dict(B=1, Hq=4, Hkv=2, D=16, w=64, Ts=(256, 512), rope_T=256, dtype=torch.bfloat16)


# ----------------------------------------------------------------------------- the reference solution
def _cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def reference_source(notebook: Path = SOURCE_NB) -> str:
    """The code grading runs for the instructor's own solution, read with ``json`` only.

    Same layout as ``autograder.notebook.submission_source(notebook)`` (tested equal): the solution
    cells and the locked, non-graded cells in order, IPython magics commented out.
    """
    cells = json.loads(Path(notebook).read_text())["cells"]
    parts = []
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader", {}) or {}
        if cell.get("cell_type") != "code" or meta.get("grade") or not (meta.get("solution") or meta.get("locked")):
            continue
        code = "\n".join(f"# {line}" if line.lstrip().startswith(("%", "!")) else line
                         for line in _cell_source(cell).splitlines())
        parts.append(f"# --- cell {meta.get('grade_id', '?')} ---\n{code}")
    return "\n\n".join(parts) + "\n"


def reference_functions(notebook: Path = SOURCE_NB) -> dict:
    """The reference solution's namespace (``sliding_window_attention``, ``apply_rope``, ...)."""
    namespace: dict = {}
    exec(compile(reference_source(notebook), "hw-attention-solution", "exec"), namespace)
    return namespace


# ----------------------------------------------------------------------------- comparison methods
def flex_window_attention(T: int, w: int, device: str):
    """Compiled FlexAttention with a sliding-window block mask for length T: (q, k, v) -> out.

    The kernel is fused: it walks the non-empty (128 x 128) blocks of the mask, keeping a running
    max and sum per query (online softmax), so no T x w score tensor is ever written to memory.
    """
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    from lec4.attention import flex_sliding_window_mask_mod

    # the assignment's causal window (w/2 + 1 keys), lec4's one definition of it
    mask = create_block_mask(flex_sliding_window_mask_mod(w), None, None, T, T, device=device, _compile=True)
    compiled = torch.compile(flex_attention, dynamic=False)
    return lambda q, k, v: compiled(q, k, v, block_mask=mask, enable_gqa=True)


def dense_window_attention_f32(q, k, v, w):
    """Float32 dense masked attention (all T x T scores), the independent check at small T."""
    q, k, v = (x.float() for x in (q, k, v))
    g = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
    T = q.shape[2]
    t = torch.arange(T, device=q.device)[:, None]
    s = torch.arange(T, device=q.device)
    scores = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).masked_fill(~((s <= t) & (s >= t - w // 2)),
                                                                            float("-inf"))
    return scores.softmax(dim=-1) @ v


def dense_rope(x, positions, base=10000.0):
    """RoPE by its definition: one D x D rotation matrix R_{Theta,m} per position m (x: (B, H, T, D))."""
    d = x.shape[-1]
    i = torch.arange(d // 2, device=x.device)
    angles = positions.float()[:, None] * base ** (-2.0 * i.float() / d)
    R = torch.zeros(len(positions), d, d, device=x.device)
    R[:, 2 * i, 2 * i], R[:, 2 * i, 2 * i + 1] = angles.cos(), -angles.sin()
    R[:, 2 * i + 1, 2 * i], R[:, 2 * i + 1, 2 * i + 1] = angles.sin(), angles.cos()
    return torch.einsum("tij,bhtj->bhti", R, x.float()).to(x.dtype)


# ----------------------------------------------------------------------------- measuring
def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def measure(fn, device: str, repeats: int) -> dict:
    """Median time (ms) and extra peak memory (MiB) of ``fn()``; out of memory -> {"oom": message}."""
    try:
        with torch.no_grad():
            fn()                                                       # warm-up (and compilation)
            _sync(device)
            peak = None
            if device == "cuda":
                torch.cuda.empty_cache()
                before = torch.cuda.memory_allocated()
                torch.cuda.reset_peak_memory_stats()
                out = fn()
                _sync(device)
                peak = (torch.cuda.max_memory_allocated() - before) / 2**20
                del out
            times = []
            for _ in range(repeats):
                _sync(device)
                start = time.perf_counter()
                fn()
                _sync(device)
                times.append(time.perf_counter() - start)
        return {"ms": 1e3 * statistics.median(times), "peak_mib": peak}
    except torch.OutOfMemoryError as err:
        return {"oom": str(err).splitlines()[0][:160]}
    finally:
        if device == "cuda":
            torch.cuda.empty_cache()


def _fmt(res: dict, key: str, spec: str) -> str:
    if "oom" in res:
        return "out of memory"
    return "n/a" if res.get(key) is None else format(res[key], spec)


def run(cfg: dict, device: str, repeats: int, budget_s: float) -> tuple[list, dict, float]:
    """All measurements: (attention rows, rope row, max error against float32 dense at the smallest T)."""
    ref = reference_functions()
    sliding, apply_rope = ref["sliding_window_attention"], ref["apply_rope"]
    B, Hq, Hkv, D, w, dtype = cfg["B"], cfg["Hq"], cfg["Hkv"], cfg["D"], cfg["w"], cfg["dtype"]
    start, rows, dense_err = time.perf_counter(), [], None
    for T in cfg["Ts"]:
        if time.perf_counter() - start > budget_s:
            rows.append({"T": T, "skipped": f"not run: the {budget_s:.0f} s time budget was spent"})
            continue
        torch.manual_seed(0)
        q = torch.randn(B, Hq, T, D, device=device, dtype=dtype)
        k, v = (torch.randn(B, Hkv, T, D, device=device, dtype=dtype) for _ in range(2))
        flex = flex_window_attention(T, w, device)
        row = {"T": T,
               "chunks": measure(lambda: sliding(q, k, v, w), device, repeats),
               "flex": measure(lambda: flex(q, k, v), device, repeats)}
        try:
            with torch.no_grad():
                f_out = flex(q, k, v)
                if "oom" not in row["chunks"]:
                    row["diff"] = (sliding(q, k, v, w).float() - f_out.float()).abs().max().item()
                if dense_err is None:
                    d = dense_window_attention_f32(q, k, v, w)
                    dense_err = max((d - f_out.float()).abs().max().item(),
                                    (d - sliding(q, k, v, w).float()).abs().max().item())
                    del d
        except torch.OutOfMemoryError:
            pass                                                       # the rows already say what ran out
        rows.append(row)
        print(json.dumps(row), flush=True)
        del q, k, v, flex
        if device == "cuda":
            torch.cuda.empty_cache()
    torch.manual_seed(0)
    x = torch.randn(B, Hq, cfg["rope_T"], D, device=device, dtype=dtype)
    positions = torch.arange(cfg["rope_T"], device=device)
    rope = {"elementwise": measure(lambda: apply_rope(x, positions), device, repeats),
            "dense": measure(lambda: dense_rope(x, positions), device, repeats),
            "diff": (apply_rope(x, positions).float() - dense_rope(x, positions).float()).abs().max().item()}
    print(json.dumps(rope), flush=True)
    return rows, rope, dense_err


def machine(device: str) -> str:
    """The GPU (or CPU) and the software versions, for the table's header."""
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        what = f"{torch.cuda.get_device_name(0)} ({p.total_memory / 2**30:.0f} GiB), CUDA {torch.version.cuda}"
    else:
        what = f"{platform.machine()} CPU (smoke run, no GPU)"
    try:
        import triton
        tri = f", triton {triton.__version__}"
    except ImportError:
        tri = ""
    return f"{what}; torch {torch.__version__}{tri}, Python {platform.python_version()}"


def table(cfg: dict, device: str, repeats: int, rows: list, rope: dict, dense_err, command: str) -> str:
    """The results as markdown."""
    lines = [
        "# hw-attention on a GPU: sliding chunks vs. fused FlexAttention",
        "",
        f"Machine: {machine(device)}. Measured {time.strftime('%Y-%m-%d')}.",
        "",
        f"Command: `{command}`. {str(cfg['dtype']).replace('torch.', '')}, B={cfg['B']}, Hq={cfg['Hq']}, "
        f"Hkv={cfg['Hkv']}, D={cfg['D']}, w={cfg['w']}; median of {repeats} calls after a warm-up; "
        "peak = extra peak GPU memory of one call (max_memory_allocated, inputs excluded). "
        f"At T={cfg['Ts'][0]} both methods agree with float32 dense masked attention to "
        + ("(not checked)" if dense_err is None else f"{dense_err:.1e}") + " (max abs difference).",
        "",
        "## sliding_window_attention",
        "",
        "| T | sliding chunks ms | flex (compiled) ms | chunks peak MiB | flex peak MiB | chunks/flex time | "
        "chunks/flex memory | max abs diff |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "skipped" in r:
            lines.append(f"| {r['T']} | {r['skipped']} | | | | | | |")
            continue
        c, f = r["chunks"], r["flex"]
        ok = "oom" not in c and "oom" not in f
        lines.append(
            f"| {r['T']} | {_fmt(c, 'ms', '.2f')} | {_fmt(f, 'ms', '.2f')} | {_fmt(c, 'peak_mib', '.0f')} | "
            f"{_fmt(f, 'peak_mib', '.0f')} | " + (f"{c['ms'] / f['ms']:.1f}x" if ok else "") + " | "
            + (f"{c['peak_mib'] / f['peak_mib']:.0f}x" if ok and c["peak_mib"] and f["peak_mib"] else "")
            + " | " + (f"{r['diff']:.1e}" if "diff" in r else "") + " |")
    e, d = rope["elementwise"], rope["dense"]
    lines += [
        "",
        f"## apply_rope (T = {cfg['rope_T']}, D = {cfg['D']}, B = {cfg['B']}, H = {cfg['Hq']})",
        "",
        "| method | ms | peak MiB |",
        "|---|---|---|",
        f"| apply_rope (element-wise) | {_fmt(e, 'ms', '.3f')} | {_fmt(e, 'peak_mib', '.0f')} |",
        f"| dense rotation matrices | {_fmt(d, 'ms', '.3f')} | {_fmt(d, 'peak_mib', '.0f')} |",
        "",
        f"Max abs difference: {rope['diff']:.1e}.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (runs on CPU): checks the script only")
    parser.add_argument("--budget-s", type=float, default=75.0,
                        help="start no new sequence length after this many seconds")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.smoke:
        sys.exit("gpu_attention.py: no CUDA device found; run it on a GPU machine, or pass --smoke for a "
                 "tiny CPU check of the script")
    cfg = SMOKE if args.smoke else FULL
    rows, rope, dense_err = run(cfg, device, args.repeats, args.budget_s)
    command = "PYTHONPATH=src python benchmarks/gpu_attention.py" + (" --smoke" if args.smoke else "")
    text = table(cfg, device, args.repeats, rows, rope, dense_err, command)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
