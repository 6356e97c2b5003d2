"""Benchmark of the hw-attention reference solution (the instructor notebook's solution cells).

1. ``sliding_window_attention`` (sliding chunks) vs. dense masked attention (full T x T scores,
   masked, softmax) vs. ``torch.compile``d FlexAttention with a sliding-window block mask;
   B = 1, H = 8, D = 64, T in {2048, 4096, 8192}, w in {256, 512}, float32.
2. ``apply_rope`` vs. the dense-matrix RoPE (a (T, D, D) stack of R_{Theta,m}); T = 4096, D = 128.

Each (method, T, w) runs in a fresh process: inputs are made and the method warmed up (compiled)
at the measured shape, then the peak-RSS counter is reset (/proc/self/clear_refs) and the extra
peak resident memory of one call is read from VmHWM; times are the median of ``--repeats`` calls.
Writes a markdown table (``--out``, default src/lec4/results/hw_attention.md, package data of lec4).

Usage: .venv/bin/python benchmarks/hw_attention.py [--repeats 3] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SOURCE_NB = ROOT / "solutions" / "hw-attention" / "hw-attention.ipynb"
B, H, D = 1, 8, 64


def reference_functions() -> dict:
    """The solution cells of the instructor notebook, executed (what a correct submission runs)."""
    from autograder.notebook import submission_source
    namespace: dict = {}
    exec(compile(submission_source(SOURCE_NB), "hw-attention-solution", "exec"), namespace)
    return namespace


def dense_window_attention(q, k, v, w):
    """The naive implementation: all T x T scores, masked to the window, then softmax."""
    T = q.shape[2]
    t, s = torch.arange(T)[:, None], torch.arange(T)
    visible = (s <= t) & (s >= t - w // 2)
    scores = (q @ k.transpose(-2, -1) / D**0.5).masked_fill(~visible, float("-inf"))
    return scores.softmax(dim=-1) @ v


def flex_window_attention(w, T):
    """torch.compile'd FlexAttention with a sliding-window block mask (built once per shape)."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    mask = create_block_mask(lambda b, h, t, s: (s <= t) & (s >= t - w // 2), None, None, T, T, device="cpu")
    compiled = torch.compile(flex_attention, dynamic=False)
    return lambda q, k, v, w: compiled(q, k, v, block_mask=mask)


def dense_rope(x, positions, base=10000.0):
    """RoPE by the definition: one D x D rotation matrix per position (the book's lec4.rope.rope_by_definition)."""
    from lec4.rope import rope_by_definition
    return rope_by_definition(x, positions, base)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(method: str, T: int, w: int, repeats: int) -> dict:
    """Run in a child process: time and extra peak memory of one method at one shape."""
    torch.manual_seed(0)
    if method.startswith("rope"):
        x, positions = torch.randn(B, H, T, 2 * D), torch.arange(T)
        fn = reference_functions()["apply_rope"] if method == "rope_elementwise" else dense_rope
        run = lambda: fn(x, positions)
    else:
        q, k, v = (torch.randn(B, H, T, D) for _ in range(3))
        fn = {"sliding_chunks": lambda: reference_functions()["sliding_window_attention"],
              "dense_masked": lambda: dense_window_attention,
              "flex_compiled": lambda: flex_window_attention(w, T)}[method]()
        run = lambda: fn(q, k, v, w)
    with torch.no_grad():
        run()                                             # warm-up (and compilation)
        Path("/proc/self/clear_refs").write_text("5")     # reset the peak-RSS counter
        before = _status_kib("VmRSS")
        out = run()
        peak = _status_kib("VmHWM") - before
        del out
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return {"method": method, "T": T, "w": w, "ms": 1e3 * statistics.median(times), "peak_mib": peak / 1024}


def _child(method: str, T: int, w: int, repeats: int) -> dict:
    cmd = [sys.executable, __file__, "--child", method, str(T), str(w), str(repeats)]
    result = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if result.returncode != 0:
        raise RuntimeError(f"{method} T={T} w={w} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def check_agreement() -> float:
    """Max difference of the three attention implementations at T = 512 (they must agree)."""
    q, k, v = (torch.randn(B, H, 512, D) for _ in range(3))
    ref = reference_functions()["sliding_window_attention"](q, k, v, 64)
    dense = dense_window_attention(q, k, v, 64)
    flex = flex_window_attention(64, 512)(q, k, v, 64)
    return max((ref - dense).abs().max().item(), (ref - flex).abs().max().item())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="T in {2048} only (smoke run)")
    parser.add_argument("--out", type=Path, default=ROOT / "src" / "lec4" / "results" / "hw_attention.md")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, T, w, repeats = args.child
        print(json.dumps(measure(method, int(T), int(w), int(repeats))))
        return

    agreement = check_agreement()
    rows = []
    for T in ([2048] if args.quick else [2048, 4096, 8192]):
        for w in (256, 512):
            res = {m: _child(m, T, w, args.repeats) for m in ("sliding_chunks", "dense_masked", "flex_compiled")}
            print(json.dumps(res), flush=True)
            rows.append((T, w, res))
    rope = {m: _child(m, 4096, 0, args.repeats) for m in ("rope_elementwise", "rope_dense_matrix")}
    print(json.dumps(rope), flush=True)

    lines = [
        "# hw-attention: reference solution benchmark",
        "",
        f"Machine: {platform.machine()} CPU, {os.cpu_count()} cores, no GPU (torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads). Measured {time.strftime('%Y-%m-%d')} on a machine doing nothing "
        "else; single runs of a few repeats, so expect a few percent of noise.",
        "GPU part: not measured (no GPU on this machine).",
        "",
        f"Command: `.venv/bin/python benchmarks/hw_attention.py --repeats {args.repeats}`. "
        f"float32, B={B}, H={H}, D={D}; median of {args.repeats} calls after a warm-up; peak = extra peak "
        "resident memory of one call (VmHWM after clear_refs). The three methods agree to "
        f"{agreement:.1e} (max abs difference at T=512, w=64).",
        "",
        "## sliding_window_attention",
        "",
        "| T | w | sliding chunks ms | dense ms | flex (compiled) ms | chunks peak MiB | dense peak MiB | "
        "flex peak MiB | dense/chunks memory | dense/chunks time | chunks/flex time |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for T, w, r in rows:
        c, d, f = r["sliding_chunks"], r["dense_masked"], r["flex_compiled"]
        lines.append(f"| {T} | {w} | {c['ms']:.1f} | {d['ms']:.1f} | {f['ms']:.1f} | {c['peak_mib']:.0f} | "
                     f"{d['peak_mib']:.0f} | {f['peak_mib']:.0f} | {d['peak_mib'] / max(c['peak_mib'], 1):.1f}x | "
                     f"{d['ms'] / c['ms']:.1f}x | {c['ms'] / f['ms']:.2f}x |")
    e, m = rope["rope_elementwise"], rope["rope_dense_matrix"]
    lines += [
        "",
        "Targets at T = 8192: at least 4x less peak memory than dense, faster than dense, within 3x of "
        "compiled FlexAttention (chunks/flex time <= 3).",
        "",
        "## apply_rope (T = 4096, D = 128, B = 1, H = 8)",
        "",
        "| method | ms | peak MiB |",
        "|---|---|---|",
        f"| apply_rope (elementwise) | {e['ms']:.2f} | {e['peak_mib']:.0f} |",
        f"| dense rotation matrices | {m['ms']:.2f} | {m['peak_mib']:.0f} |",
        "",
        f"Speed-up: {m['ms'] / e['ms']:.1f}x (target: at least 20x).",
        "",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
