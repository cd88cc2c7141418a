"""A PNG of latency over time: every message as a dot, and p50 and p99 over time."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def latency_png(path: Path, runs: Sequence[tuple[str, Sequence[tuple[float, float, str]]]]) -> Path:
    """Draw each run's (sent at s, latency s, scenario) points into ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 5), dpi=100)
    try:
        for index, (label, points) in enumerate(runs):
            if not points:
                continue
            xs = [sent for sent, _, _ in points]
            ys = [latency * 1000 for _, latency, _ in points]
            colour = f"C{index}"  # the colour cycle's n-th
            axes.scatter(xs, ys, s=4, alpha=0.35, color=colour, label=f"{label}: each message")
            width = max(max(xs) / 40, 0.05)  # about 40 bins (seconds on a long run)
            bins: dict[int, list[float]] = {}
            for x, y in zip(xs, ys, strict=True):
                bins.setdefault(int(x / width), []).append(y)
            ticks = sorted(bins)
            p50 = [_quantile(bins[t], 0.5) for t in ticks]
            p99 = [_quantile(bins[t], 0.99) for t in ticks]
            middle = [(t + 0.5) * width for t in ticks]
            axes.plot(middle, p50, color=colour, linewidth=1.5, label=f"{label}: p50")
            axes.plot(middle, p99, color=colour, linewidth=1, linestyle="--", label=f"{label}: p99")
        axes.set_xlabel("seconds since the start")
        axes.set_ylabel("latency (ms)")
        axes.set_ylim(bottom=0)
        axes.set_title("yimen bench: latency over time")
        axes.grid(alpha=0.3)
        axes.legend(loc="upper right", fontsize="small")
        figure.tight_layout()
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
    return path


def _quantile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]
