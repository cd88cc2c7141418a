"""A PNG of latency over time: every message as a dot, and each second's p50 and p99."""

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
        for label, points in runs:
            if not points:
                continue
            xs = [sent for sent, _, _ in points]
            ys = [latency * 1000 for _, latency, _ in points]
            dots = axes.scatter(xs, ys, s=4, alpha=0.35, label=f"{label}: each message")
            seconds: dict[int, list[float]] = {}
            for x, y in zip(xs, ys, strict=True):
                seconds.setdefault(int(x), []).append(y)
            ticks = sorted(seconds)
            p50 = [_quantile(seconds[t], 0.5) for t in ticks]
            p99 = [_quantile(seconds[t], 0.99) for t in ticks]
            middle = [t + 0.5 for t in ticks]
            colour = dots.get_facecolor()[0][:3]
            axes.plot(middle, p50, color=colour, linewidth=1.5, label=f"{label}: p50 per second")
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
