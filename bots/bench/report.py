"""What `yimen bench` writes besides its lines: the JSON file and the latency PNG."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bots.bench import Samples


def png_path(json_path: Path | None, png: Path | None) -> Path | None:
    """Where the PNG goes: ``--png``, else beside ``--json`` with the suffix .png."""
    if png is not None:
        return png
    return json_path.with_suffix(".png") if json_path is not None else None


def write(
    runs: Sequence[tuple[str, dict[str, Any], Samples | None]],
    json_path: Path | None,
    png: Path | None,
) -> list[str]:
    """Write the runs (label, figures, samples) as JSON and as a PNG of latency over
    time, where asked; the lines that say where."""
    lines = []
    if json_path is not None:
        document = {"runs": [figures for _, figures, _ in runs]}
        json_path.write_text(json.dumps(document, indent=2, ensure_ascii=False), "utf-8")
        lines.append(f"  JSON: {json_path}")
    target = png_path(json_path, png)
    series = [(label, samples.points) for label, _, samples in runs if samples]
    if target is not None and series:  # wrk's runs keep no per-message times
        from bots.bench.plot import latency_png

        latency_png(target, series)
        lines.append(f"  PNG: {target}")
    return lines
