"""Evaluate an interpreter on Rasa YAML test data, writing what `rasa test nlu` writes.

Reports, in the output directory:
- ``intent_report.json``: scikit-learn's classification report as a dict (per intent
  precision, recall, f1-score, support and ``confused_with``, plus accuracy, macro avg
  and weighted avg), as Rasa writes it;
- ``intent_errors.json``: every misclassified example with the predicted intent and
  its confidence;
- ``entity_report.json``: the same report for entities, counting exact spans;
- ``entity_errors.json``: every example whose entity spans differ from the annotation,
  with the expected and predicted spans (text, entity, start, end) as Rasa lists them;
- ``intent_confusion_matrix.png``: the confusion matrix as a heat map.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sklearn.metrics import classification_report, confusion_matrix

from nlu.normalize import normalize
from nlu.training_data import Example
from nlu.types import Interpreter, Parse

NO_ENTITY = "no_entity"
AVERAGES = ("macro avg", "weighted avg", "micro avg")


@dataclass(slots=True)
class Evaluation:
    """Predictions of one interpreter on one test set, with their latencies."""

    examples: list[Example]
    parses: list[Parse]
    latencies: list[float] = field(default_factory=list)  # seconds per parse

    @property
    def gold(self) -> list[str]:
        """The labelled intents."""
        return [e.intent for e in self.examples]

    @property
    def predicted(self) -> list[str]:
        """The predicted intents."""
        return [p.intent for p in self.parses]

    def intent_report(self) -> dict[str, Any]:
        """scikit-learn's classification report with Rasa's ``confused_with`` per intent.

        Rows are the test set's intents: a fallback prediction counts against recall but
        gets no row of its own to drag the macro average down.
        """
        report: dict[str, Any] = classification_report(
            self.gold,
            self.predicted,
            labels=sorted(set(self.gold)),
            output_dict=True,
            zero_division=0,
        )
        # With explicit labels scikit-learn reports a micro average; Rasa reports accuracy.
        report.pop("micro avg", None)
        hits = sum(g == p for g, p in zip(self.gold, self.predicted, strict=True))
        report["accuracy"] = hits / len(self.gold) if self.gold else 0.0
        confusions: dict[str, Counter[str]] = {}
        for gold, predicted in zip(self.gold, self.predicted, strict=True):
            if gold != predicted:
                confusions.setdefault(gold, Counter())[predicted] += 1
        for intent, scores in report.items():
            if isinstance(scores, dict) and intent not in AVERAGES:
                scores["confused_with"] = dict(confusions.get(intent, Counter()).most_common(3))
        return report

    def intent_errors(self) -> list[dict[str, Any]]:
        """The misclassified examples, as Rasa lists them."""
        return [
            {
                "text": example.text,
                "intent": example.intent,
                "intent_prediction": {"name": parse.intent, "confidence": parse.confidence},
            }
            for example, parse in zip(self.examples, self.parses, strict=True)
            if example.intent != parse.intent
        ]

    def entity_report(self) -> dict[str, Any]:
        """Precision, recall and F1 per entity type, counting exact (start, end) spans.

        Gold spans are annotated on the raw example; predictions are on the normalised
        text, so gold spans are compared by their normalised surface text.
        """
        gold: list[str] = []
        predicted: list[str] = []
        for example, parse in zip(self.examples, self.parses, strict=True):
            expected = {
                (e.entity, normalize(example.text[e.start : e.end])) for e in example.entities
            }
            found = {(e.entity, parse.text[e.start : e.end]) for e in parse.entities}
            for span in expected | found:
                gold.append(span[0] if span in expected else NO_ENTITY)
                predicted.append(span[0] if span in found else NO_ENTITY)
        if not gold:
            return {}
        labels = sorted({label for label in gold + predicted if label != NO_ENTITY})
        report: dict[str, Any] = classification_report(
            gold, predicted, labels=labels, output_dict=True, zero_division=0
        )
        return report

    def entity_errors(self) -> list[dict[str, Any]]:
        """The examples whose entities are not exactly the annotated spans.

        Offsets are into the normalised text (``Parse.text``), which is also the
        ``text`` given; the expected spans are the annotations located in it.
        """
        errors = []
        for example, parse in zip(self.examples, self.parses, strict=True):
            expected = _expected_spans(example, parse.text)
            predicted = [
                _span(e.entity, parse.text, e.start, e.end)
                for e in parse.entities
                if e.entity in _ENTITY_TYPES
            ]
            key = _span_key
            if sorted(map(key, expected)) != sorted(map(key, predicted)):
                errors.append(
                    {
                        "text": parse.text,
                        "intent": example.intent,
                        "expected": expected,
                        "predicted": predicted,
                    }
                )
        return errors

    def latency_ms(self, quantile: float) -> float:
        """A latency quantile in milliseconds."""
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * quantile))] * 1000


async def evaluate(
    interpreter: Interpreter,
    examples: Iterable[Example],
    progress: Callable[[int], None] | None = None,
) -> Evaluation:
    """Parse every example one at a time (as messages arrive), timing each parse."""
    result = Evaluation(list(examples), [])
    for example in result.examples:
        started = time.perf_counter()
        result.parses.append(await interpreter.parse(example.text))
        result.latencies.append(time.perf_counter() - started)
        if progress:
            progress(1)
    return result


def write_reports(result: Evaluation, out: Path) -> dict[str, Any]:
    """Write the four reports into ``out``; returns the intent report."""
    out.mkdir(parents=True, exist_ok=True)
    report = result.intent_report()
    _dump(out / "intent_report.json", report)
    _dump(out / "intent_errors.json", result.intent_errors())
    _dump(out / "entity_report.json", result.entity_report())
    _dump(out / "entity_errors.json", result.entity_errors())
    plot_confusion(result, out / "intent_confusion_matrix.png")
    return report


def plot_confusion(result: Evaluation, path: Path) -> None:
    """Draw the intent confusion matrix (counts) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display: render straight to a file
    import matplotlib.pyplot as plt

    labels = sorted(set(result.gold) | set(result.predicted))
    matrix = confusion_matrix(result.gold, result.predicted, labels=labels)
    size = max(6.0, len(labels) * 0.4)
    figure, axes = plt.subplots(figsize=(size + 2, size))
    image = axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    axes.set_yticks(range(len(labels)), labels, fontsize=7)
    axes.set_xlabel("predicted intent")
    axes.set_ylabel("true intent")
    axes.set_title(f"Intent confusion matrix ({len(result.gold)} examples)")
    for row in range(len(labels)):
        for column in range(len(labels)):
            if matrix[row, column]:
                dark = matrix[row, column] > matrix.max() / 2
                axes.text(
                    column,
                    row,
                    str(matrix[row, column]),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if dark else "black",
                )
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def summary_table(report: dict[str, Any], worst: int = 8) -> str:
    """A short text table: overall scores, then the weakest intents."""
    macro = report["macro avg"]
    lines = [
        f"accuracy {report['accuracy']:.3f}   macro F1 {macro['f1-score']:.3f}   "
        f"macro precision {macro['precision']:.3f}   macro recall {macro['recall']:.3f}",
        f"{'intent':<24}{'precision':>10}{'recall':>8}{'f1':>8}{'support':>9}  confused with",
    ]
    intents = [
        (name, scores)
        for name, scores in report.items()
        if isinstance(scores, dict) and name not in AVERAGES
    ]
    for name, scores in sorted(intents, key=lambda item: item[1]["f1-score"])[:worst]:
        confused = ", ".join(f"{k} {v}" for k, v in scores.get("confused_with", {}).items())
        lines.append(
            f"{name:<24}{scores['precision']:>10.3f}{scores['recall']:>8.3f}"
            f"{scores['f1-score']:>8.3f}{int(scores['support']):>9}  {confused}"
        )
    return "\n".join(lines)


# The entities test sets annotate; anything else a parser adds is not scored.
_ENTITY_TYPES = frozenset({"address", "time", "phone", "service"})


def _span(entity: str, text: str, start: int, end: int) -> dict[str, Any]:
    return {"entity": entity, "text": text[start:end], "start": start, "end": end}


def _span_key(span: dict[str, Any]) -> tuple[str, str]:
    return span["entity"], span["text"]


def _expected_spans(example: Example, text: str) -> list[dict[str, Any]]:
    """The example's annotations, found again in the normalised ``text``, left to right."""
    spans = []
    cursor = 0
    for entity in sorted(example.entities, key=lambda e: e.start):
        surface = normalize(example.text[entity.start : entity.end])
        start = text.find(surface, cursor)
        if start < 0:  # normalisation changed it beyond recognition: keep the surface
            spans.append({"entity": entity.entity, "text": surface, "start": -1, "end": -1})
            continue
        spans.append(_span(entity.entity, text, start, start + len(surface)))
        cursor = start + len(surface)
    return spans


def _dump(path: Path, document: Any) -> None:
    path.write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
