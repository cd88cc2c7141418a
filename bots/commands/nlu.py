"""`yimen nlu`: train, evaluate and benchmark the NLU backends."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from bots.commands import load_settings, run_async
from bots.runtime import load_embedded
from bots.settings import Settings
from nlu.types import Interpreter

nlu_app = typer.Typer(help="Train and inspect the NLU model.", no_args_is_help=True)


@nlu_app.command("train")
def nlu_train(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data",
            exists=True,
            file_okay=False,
            help="A directory of Rasa 3.x NLU YAML files to train on instead of nlu/data.",
        ),
    ] = None,
) -> None:
    """Train the embedded model from nlu/data and cache it (YIMEN_MODEL_CACHE)."""
    from bots.progress import TrainingReport
    from nlu.embedded import load_or_train
    from nlu.training_data import DATA_DIR, load

    settings = load_settings()
    source = data_dir or DATA_DIR
    data = load(sorted(source.glob("*.yml")))
    started = time.perf_counter()
    with TrainingReport() as report:
        model = load_or_train(settings.model_dir, source, force=True, progress=report.step)
    elapsed = time.perf_counter() - started
    path = settings.model_dir / f"embedded-{model.fingerprint}.joblib"
    print(
        f"trained on {len(data.examples)} examples, {len(model.intents)} intents "
        f"in {elapsed:.1f}s -> {path}"
    )


class Backend(enum.StrEnum):
    """The NLU backends `yimen nlu eval` can measure."""

    embedded = "embedded"
    rasa = "rasa"


@nlu_app.command("eval")
def nlu_eval(
    data: Annotated[Path, typer.Option(exists=True, dir_okay=False, help="Rasa 3.x NLU YAML.")],
    out: Annotated[Path, typer.Option(help="Directory for the reports.")] = Path("results"),
    backend: Annotated[Backend, typer.Option(help="Which backend to evaluate.")] = Backend.embedded,
) -> None:
    """Evaluate a backend on a test file; writes Rasa's intent, error and entity reports."""
    from nlu.evaluation import evaluate, summary_table, write_reports
    from nlu.training_data import load_file

    settings = load_settings()
    examples = load_file(data).examples
    if not examples:
        print(f"error: {data} has no intent examples", file=sys.stderr)
        raise typer.Exit(1)

    async def go() -> dict[str, Any]:
        async with _backend(settings, backend) as interpreter:
            with _progress(f"parsing with {backend.value}", len(examples)) as advance:
                result = await evaluate(interpreter, examples, advance)
        return write_reports(result, out)

    report = run_async(go())
    print(summary_table(report))
    print(f"reports written to {out}/")


@nlu_app.command("bench")
def nlu_bench(
    data: Annotated[
        list[Path],
        typer.Option(exists=True, dir_okay=False, help="Rasa 3.x NLU YAML test file (repeatable)."),
    ],
    out: Annotated[Path | None, typer.Option(help="Directory for JSON and reports.")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="DIET epochs for Rasa.")] = 30,
    backend: Annotated[
        list[Backend] | None, typer.Option(help="Only these backends (repeatable).")
    ] = None,
) -> None:
    """Train both backends on nlu/data once, evaluate both on every test file, compare them."""
    from bots.bench.nlu import bench_embedded, bench_rasa, score_table, write_scores
    from nlu.training_data import load_file

    settings = load_settings()
    sets = {path.stem: load_file(path).examples for path in data}
    if empty := [name for name, examples in sets.items() if not examples]:
        print(f"error: no intent examples in {', '.join(empty)}", file=sys.stderr)
        raise typer.Exit(1)
    if len(sets) < len(data):
        print("error: test files need distinct names", file=sys.stderr)
        raise typer.Exit(1)
    chosen = backend or list(Backend)
    unsure = (settings.nlu_threshold, settings.nlu_margin)

    async def go() -> list[Any]:
        scores = []
        if Backend.embedded in chosen:
            print("training the embedded model...", file=sys.stderr)
            scores.extend(await bench_embedded(sets, unsure, _progress, out))
        if Backend.rasa in chosen:
            print(f"training Rasa ({epochs} DIET epochs)...", file=sys.stderr)
            scores.extend(await bench_rasa(sets, unsure, epochs, _progress, out))
        return scores

    scores = run_async(go())
    print(score_table(scores))
    if out is not None:
        print(f"written to {write_scores(scores, out)}")


@nlu_app.command("cv")
def nlu_cv(
    folds: Annotated[int, typer.Option(min=2, help="Number of stratified folds.")] = 5,
    per_intent: Annotated[
        int | None, typer.Option(min=2, help="Only the first N examples of each intent.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the fold split.")] = 0,
) -> None:
    """Cross-validate the current intent model and candidates on nlu/data (never a test set)."""
    from nlu.crossval import CANDIDATES, choose, cross_validate, score_table, subsample
    from nlu.training_data import load

    data = load()
    examples = data.examples if per_intent is None else subsample(data.examples, per_intent)
    label = f"{folds}-fold cross-validation of {len(examples)} examples"
    with _progress(label, folds * len(CANDIDATES)) as advance:
        scores = cross_validate(data, folds, examples=examples, seed=seed, progress=advance)
    print(score_table(scores))
    print(f"chosen: {choose(scores).candidate}")


@contextlib.asynccontextmanager
async def _backend(settings: Settings, backend: Backend) -> AsyncIterator[Interpreter]:
    """One backend, alone: no fallback, so its own accuracy is what gets measured."""
    if backend is Backend.embedded:
        yield await asyncio.to_thread(load_embedded, settings)
        return
    from nlu.rasa_client import RasaInterpreter

    async with RasaInterpreter(
        settings.rasa_url,
        token=settings.rasa_token or None,
        timeout=settings.rasa_timeout,
        threshold=settings.nlu_threshold,
        margin=settings.nlu_margin,
    ) as rasa:
        yield rasa


def _progress(label: str, total: int) -> contextlib.AbstractContextManager[Callable[[int], None]]:
    """A progress bar on stderr with an estimate; yields the function that advances it."""
    from bots.progress import counting

    return counting(label, total)


@nlu_app.command("export-corrections")
def nlu_export_corrections(
    out: Annotated[
        Path | None, typer.Option(help="Write the YAML here (default: standard output).")
    ] = None,
) -> None:
    """Staff's corrections from the console as Rasa NLU YAML, to review and merge into nlu/data."""
    from bots.commands import staff_services
    from console.corrections import latest, rasa_yaml

    async def go() -> Any:
        async with staff_services(load_settings()) as services:
            return await latest(services.sessions)

    corrections = run_async(go())
    document, skipped = rasa_yaml(corrections)
    if out is None:
        sys.stdout.write(document)
    else:
        out.write_text(document, encoding="utf-8")
    print(
        f"{len(corrections) - skipped} correction(s) exported"
        + (f", {skipped} without an intent skipped" if skipped else ""),
        file=sys.stderr,
    )
