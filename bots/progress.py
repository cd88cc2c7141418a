"""Progress bars on stderr for the long jobs: training the NLU model, evaluating it.

Rich draws them with the elapsed time and an estimate of what is left; on a pipe or a
log file (no terminal) only the final state is written, so logs stay readable.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from nlu.embedded import TRAINING_STEPS, Loaded


def _bar(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


@contextlib.contextmanager
def counting(label: str, total: int) -> Iterator[Callable[[int], None]]:
    """A bar of ``total`` items; yields the function that advances it by n."""
    with _bar(Console(file=sys.stderr)) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)


class TrainingReport:
    """Shows a bar while the NLU model trains, and says where the model is cached.

    Pass ``step`` as ``load_or_train``'s progress and ``found`` as its found callback;
    the bar appears only if training starts. Use as a context manager.
    """

    def __init__(self, console: Console | None = None) -> None:
        self._console = console or Console(file=sys.stderr)
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._weights = dict(TRAINING_STEPS)

    def step(self, name: str) -> None:
        """One training step has finished."""
        if self._bar is None:
            self._console.print("training the NLU model (the first start on this data)...")
            self._bar = _bar(self._console)
            self._bar.start()
            self._task = self._bar.add_task("NLU training", total=sum(self._weights.values()))
        assert self._task is not None
        self._bar.advance(self._task, self._weights.get(name, 0.0))

    def found(self, loaded: Loaded) -> None:
        """Where the model came from."""
        self.close()
        verb = "trained and cached at" if loaded.trained else "loaded from"
        self._console.print(f"NLU model {verb} {loaded.path}", highlight=False, soft_wrap=True)

    def close(self) -> None:
        """Stop the bar if one is showing."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def __enter__(self) -> TrainingReport:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
