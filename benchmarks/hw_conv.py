"""hw-conv: the reference (im2col) conv2d_backward vs. PyTorch autograd's conv2d backward, CPU.

The issue's target: the vectorized reference within 3x of autograd for a LeNet-sized batch
(N=64, C=6, F=16, 14x14, 5x5) and for N=32, C=F=64, 32x32, 3x3. The reference is taken from the
instructor notebook (solutions/hw-conv), so the benchmark times exactly what students are compared
against. Both sides compute all three gradients (x, weight, bias) from the same grad_out.

Usage: .venv/bin/python benchmarks/hw_conv.py [--threads 2] [--repeats 30] [--out src/lec4/results/hw_conv.md]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
from autograder.notebook import submission_source  # noqa: E402

CASES = [("LeNet layer 2", 64, 6, 14, 14, 16, 5), ("ResNet-like 3x3", 32, 64, 32, 32, 64, 3)]


def reference_functions() -> dict:
    """The notebook's given code and reference solutions, executed into a namespace."""
    namespace: dict = {}
    exec(compile(submission_source(ROOT / "solutions" / "hw-conv" / "hw-conv.ipynb"), "hw-conv", "exec"), namespace)
    return namespace


def median_seconds(fns, repeats: int) -> list[float]:
    """Median wall time of each function over ``repeats`` rounds, after two warm-up rounds.

    The functions alternate within each round, so load from other processes on a shared
    machine hits both sides alike and their ratio stays meaningful.
    """
    times = [[] for _ in fns]
    for round_ in range(repeats + 2):
        for fn, samples in zip(fns, times):
            start = time.perf_counter()
            fn()
            if round_ >= 2:
                samples.append(time.perf_counter() - start)
    return [sorted(samples)[len(samples) // 2] for samples in times]


def bench_case(conv2d_backward, N, C, H, W, n_filters, K, repeats: int) -> tuple[float, float, float]:
    """(autograd s, reference s, max abs difference) for one layer size, float32."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(N, C, H, W, generator=gen).requires_grad_()
    weight = (torch.randn(n_filters, C, K, K, generator=gen) / (C * K * K) ** 0.5).requires_grad_()
    bias = torch.zeros(n_filters, requires_grad=True)
    out = F.conv2d(x, weight, bias)
    grad_out = torch.randn(out.shape, generator=gen)
    autograd = lambda: torch.autograd.grad(out, (x, weight, bias), grad_out, retain_graph=True)  # noqa: E731
    ours = lambda: conv2d_backward(grad_out, x.detach(), weight.detach())  # noqa: E731
    diff = max((a - b).abs().max().item() for a, b in zip(autograd(), ours()))
    t_autograd, t_ours = median_seconds([autograd, ours], repeats)
    return t_autograd, t_ours, diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None, help="write a Markdown table here")
    parser.add_argument("--note", default="", help="a line about the machine's state (e.g. shared, loaded)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    conv2d_backward = reference_functions()["conv2d_backward"]

    rows = []
    for name, N, C, H, W, n_filters, K in CASES:
        t_auto, t_ref, diff = bench_case(conv2d_backward, N, C, H, W, n_filters, K, args.repeats)
        rows.append(f"| {name}: N={N}, C={C}, F={n_filters}, {H}x{W}, {K}x{K} | {t_auto * 1e3:.2f} | "
                    f"{t_ref * 1e3:.2f} | {t_ref / t_auto:.2f}x | {diff:.1e} |")
        print(rows[-1], flush=True)

    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
               f"{args.threads} thread(s), float32, median of {args.repeats} alternating runs, no GPU")
    table = "\n".join([
        "| layer (forward F.conv2d, stride 1, no padding) | autograd backward (ms) | reference conv2d_backward (ms) "
        "| ratio (target <= 3x) | max abs diff |",
        "|---|---|---|---|---|", *rows])
    print(machine)
    if args.out:
        text = (f"# hw-conv: reference `conv2d_backward` vs. autograd (CPU)\n\n"
                f"Command: `.venv/bin/python benchmarks/hw_conv.py --threads {args.threads} --repeats {args.repeats}`\n\n"
                f"Machine: {machine}.\n{args.note}\n\n{table}\n")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
