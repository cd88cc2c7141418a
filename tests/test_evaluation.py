"""`yimen nlu eval`'s reports, as `rasa test nlu` writes them."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import pytest

from nlu.embedded import EmbeddedInterpreter
from nlu.evaluation import evaluate, summary_table, write_reports
from nlu.training_data import parse_example
from nlu.types import Entity, Parse

EXAMPLES = [
    parse_example("楼下烧烤店每天半夜还很吵", "report_noise"),
    parse_example("[金辉小区3号楼](address)路灯不亮了", "report_facility"),
    parse_example("你好", "greet"),
    # Deliberately mislabelled, so there is an error to report.
    parse_example("谢谢你们", "report_parking"),
]


class Scripted:
    """An interpreter that answers from a table."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    async def parse(self, text: str) -> Parse:
        return Parse(text, self.answers[text], 0.8)


async def test_reports_are_written_with_rasa_shapes(
    tmp_path: Path, interpreter: EmbeddedInterpreter
) -> None:
    advanced: list[int] = []
    result = await evaluate(interpreter, EXAMPLES, advanced.append)
    assert len(advanced) == len(EXAMPLES) == len(result.latencies)
    report = write_reports(result, tmp_path)

    stored = json.loads((tmp_path / "intent_report.json").read_text(encoding="utf-8"))
    assert stored == report
    assert {"accuracy", "macro avg", "weighted avg", "report_noise"} <= set(stored)
    assert {"precision", "recall", "f1-score", "support", "confused_with"} <= set(
        stored["report_noise"]
    )
    assert stored["report_parking"]["recall"] == 0.0
    assert stored["report_parking"]["confused_with"]  # what it was mistaken for

    errors = json.loads((tmp_path / "intent_errors.json").read_text(encoding="utf-8"))
    assert [e["text"] for e in errors] == ["谢谢你们"]
    assert errors[0]["intent"] == "report_parking"
    assert errors[0]["intent_prediction"]["name"] != "report_parking"

    entities = json.loads((tmp_path / "entity_report.json").read_text(encoding="utf-8"))
    assert entities["address"]["support"] == 1
    assert entities["address"]["recall"] == 1.0

    png = (tmp_path / "intent_confusion_matrix.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert "accuracy" in summary_table(report)


async def test_fallback_predictions_count_against_recall_without_a_row(tmp_path: Path) -> None:
    answers = {e.text: e.intent for e in EXAMPLES} | {"你好": "nlu_fallback"}
    result = await evaluate(Scripted(answers), EXAMPLES)
    report = result.intent_report()
    assert "nlu_fallback" not in report
    assert report["greet"]["recall"] == 0.0
    assert report["accuracy"] == 0.75
    assert report["macro avg"]["f1-score"] == 0.75  # four rows: three right, one missed


class Spanning:
    """An interpreter that finds one address span per message, from a table."""

    def __init__(
        self, spans: dict[str, tuple[int, int]], intents: dict[str, str] | None = None
    ) -> None:
        self.spans = spans
        self.intents = intents or {}

    async def parse(self, text: str) -> Parse:
        start, end = self.spans[text]
        address = Entity("address", start, end, text[start:end], "crf")
        return Parse(text, self.intents.get(text, "report_noise"), 0.9, (address,))


async def test_entity_errors_list_the_wrong_spans(tmp_path: Path) -> None:
    examples = [
        parse_example("住[建设街道](address)楼下太吵", "report_noise"),
        parse_example("[金辉小区3号楼](address)路灯不亮", "report_facility"),
    ]
    # The first keeps the verb in its span (the failure class of issue 15); the second is right.
    spanning = Spanning({"住建设街道楼下太吵": (0, 5), "金辉小区3号楼路灯不亮": (0, 7)})
    write_reports(await evaluate(spanning, examples), tmp_path)
    errors = json.loads((tmp_path / "entity_errors.json").read_text(encoding="utf-8"))
    assert errors == [
        {
            "text": "住建设街道楼下太吵",
            "intent": "report_noise",
            "expected": [{"entity": "address", "text": "建设街道", "start": 1, "end": 5}],
            "predicted": [{"entity": "address", "text": "住建设街道", "start": 0, "end": 5}],
        }
    ]


async def test_the_bench_scores_one_trained_backend_on_every_set(tmp_path: Path) -> None:
    from bots.bench.nlu import _evaluate_all, score_table
    from bots.progress import counting

    sets = {
        "spans": [
            parse_example("住[建设街道](address)楼下太吵", "report_noise"),
            parse_example("[金辉小区3号楼](address)路灯不亮", "report_facility"),
        ],
        "plain": [parse_example("楼下太吵", "report_noise"), parse_example("你好", "greet")],
    }
    spanning = Spanning(
        {"住建设街道楼下太吵": (0, 5), "金辉小区3号楼路灯不亮": (0, 7), "楼下太吵": (0, 2)}
        | {"你好": (0, 0)},
        {"金辉小区3号楼路灯不亮": "report_facility", "你好": "greet"},
    )
    scores = await _evaluate_all("scripted", spanning, sets, 12.5, counting, tmp_path)
    assert [(s.backend, s.test_set) for s in scores] == [
        ("scripted", "spans"),
        ("scripted", "plain"),
    ]
    spans, plain = scores
    assert spans.macro_f1 == spans.accuracy == 1.0
    assert spans.address_f1 == 0.5  # one span of two exactly right, one wrong guess
    assert spans.time_f1 is None  # no time annotated or found
    assert plain.address_f1 == 0.0  # spans where none is annotated
    assert spans.training_seconds == plain.training_seconds == 12.5
    assert (tmp_path / "scripted" / "spans" / "entity_errors.json").exists()
    assert (tmp_path / "scripted" / "plain" / "intent_report.json").exists()
    rows = [row.split() for row in score_table(scores).splitlines()]
    assert rows[0][:4] == ["backend", "test", "set", "macro"]
    assert rows[1][:6] == ["scripted", "spans", "1.000", "1.000", "0.500", "-"]
    assert rows[2][:2] == ["scripted", "plain"]


def test_starting_the_rasa_server_does_not_wait_for_the_server_to_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rasa-server.sh start` leaves a server running. Under uvloop that server held
    the end of the bench's stdout pipe, and the bench waited for it for ever."""
    import bots.bench.nlu as bench
    from bots.loop import run

    script = tmp_path / "rasa-server.sh"
    script.write_text(
        'case "$1" in\n'
        '  start) setsid sleep 30 > /dev/null 2>&1 < /dev/null & echo $! > "$PIDS" ;;\n'
        "  train) echo training >&2; echo /models/nlu-1.tar.gz ;;\n"
        "esac\n"
    )
    pids = tmp_path / "pids"
    monkeypatch.setattr(bench, "SCRIPT", script)

    async def both() -> tuple[str, str]:
        started = await asyncio.wait_for(bench._script("start", env={"PIDS": str(pids)}), 15)
        trained = await asyncio.wait_for(bench._script("train", output=True), 15)
        return started, trained

    try:
        assert run(both()) == ("", "/models/nlu-1.tar.gz\n")
    finally:
        os.kill(int(pids.read_text()), signal.SIGTERM)
