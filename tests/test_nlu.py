"""Training data, normalisation, entities and the embedded classifier."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nlu.contract import ENTITIES, INTENTS
from nlu.embedded import EmbeddedInterpreter, EmbeddedModel, fingerprint, load_or_train
from nlu.entities import EntityExtractor
from nlu.normalize import has_content, normalize
from nlu.training_data import DATA_DIR, load, load_file, parse_example
from nlu.types import FALLBACK_INTENT, TrainingDataError, unsure


def test_training_data_covers_exactly_the_contract() -> None:
    data = load()
    assert sorted(data.intents) == sorted(INTENTS)
    for intent in INTENTS:
        examples = [e for e in data.examples if e.intent == intent]
        assert len(examples) >= 15, intent
    texts = [e.text for e in data.examples]
    assert len(texts) == len(set(texts)), "an example is listed twice"
    used = {entity.entity for e in data.examples for entity in e.entities}
    assert used <= set(ENTITIES)


def test_annotations_become_spans_and_synonyms() -> None:
    example = parse_example(
        '我想[明天上午](time)办[社会保障卡]{"entity": "service", "value": "社保卡"}', "x"
    )
    assert example.text == "我想明天上午办社会保障卡"
    time, service = example.entities
    assert example.text[time.start : time.end] == "明天上午" and time.entity == "time"
    assert example.text[service.start : service.end] == "社会保障卡"
    assert service.value == "社保卡"


def test_bad_training_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("nlu:\n- intent: greet\n  examples: [not, a, block]\n", encoding="utf-8")
    with pytest.raises(TrainingDataError, match=r"bad\.yml"):
        load_file(bad)


@pytest.mark.parametrize(
    ("raw", "normal"),
    [
        ("  ＡＢＣ１２３　路灯😀不亮  ", "ABC123 路灯 不亮"),
        ("樓下燒烤店每天半夜還很吵", "楼下烧烤店每天半夜还很吵"),
        ("三号楼二单元", "3号楼2单元"),
        ("十一月二十八日九点", "11月28日9点"),
        ("两天没人管", "2天没人管"),
        ("第三个我来认领", "第3个我来认领"),
        ("二零二六年", "2026年"),
        # Numerals that do not count anything are words, not numbers.
        ("我想一下", "我想一下"),
        ("一起去", "一起去"),
        ("有一点吵", "有一点吵"),
        ("一门受理", "一门受理"),
        ("三五个人", "三五个人"),
        ("下周一下午", "下周一下午"),
    ],
)
def test_normalize(raw: str, normal: str) -> None:
    assert normalize(raw) == normal


def test_has_content() -> None:
    assert has_content("路灯") and has_content("3") and not has_content("😀👍 ！！")


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("楼下烧烤店每天半夜还很吵", "report_noise"),
        ("小区垃圾好几天没人收了臭死了", "report_sanitation"),
        ("我们这条街的路灯坏了一个星期了", "report_facility"),
        ("有人把车停在消防通道上", "report_parking"),
        ("您好", "greet"),
        ("我要找人工客服", "human_handoff"),
        ("我上次反映的问题有结果了吗", "check_status"),
    ],
)
async def test_embedded_model_understands_plain_requests(
    interpreter: EmbeddedInterpreter, text: str, intent: str
) -> None:
    parse = await interpreter.parse(text)
    assert parse.intent == intent
    assert parse.ranking[0] == (intent, parse.confidence)
    assert 0.0 < parse.confidence <= 1.0


def test_low_confidence_or_a_close_runner_up_becomes_fallback(nlu_model: EmbeddedModel) -> None:
    text = "那个事情你们看着办吧"
    plain = EmbeddedInterpreter(nlu_model, EntityExtractor(), threshold=0.0, margin=0.0)
    parse = plain.parse_sync(text)
    (best, confidence), (_, runner_up) = parse.ranking[:2]
    assert parse.intent == best in INTENTS

    def intent(threshold: float, margin: float) -> str:
        interpreter = EmbeddedInterpreter(
            nlu_model, EntityExtractor(), threshold=threshold, margin=margin
        )
        return interpreter.parse_sync(text).intent

    assert intent(confidence + 1e-9, 0.0) == FALLBACK_INTENT
    assert intent(confidence - 1e-9, 0.0) == best
    gap = confidence - runner_up
    assert intent(0.0, gap + 1e-9) == FALLBACK_INTENT
    assert intent(0.0, gap - 1e-9) == best


@pytest.mark.parametrize(
    ("ranking", "expected"),
    [
        ((), True),
        ((("greet", 0.9),), False),
        ((("greet", 0.49), ("thanks", 0.01)), True),  # below the threshold
        ((("greet", 0.52), ("thanks", 0.48)), True),  # the runner-up is too close
        ((("greet", 0.56), ("thanks", 0.44)), False),
    ],
)
def test_unsure_applies_threshold_and_margin(
    ranking: tuple[tuple[str, float], ...], expected: bool
) -> None:
    assert unsure(ranking, threshold=0.5, margin=0.05) is expected


def test_the_temperature_is_fitted_and_sharpens_an_underconfident_model(
    nlu_model: EmbeddedModel,
) -> None:
    # Regularised logistic regression over 28 intents spreads its probability thinly; the
    # out-of-fold fit says how much to sharpen it. 1.0 would mean calibration never ran.
    assert 0.1 < nlu_model.temperature < 0.9
    probabilities = nlu_model.probabilities(["楼下烧烤店每天半夜还很吵"])[0]
    assert probabilities.sum() == pytest.approx(1.0)
    assert nlu_model.intents[int(probabilities.argmax())] == "report_noise"


def test_model_is_cached_by_data_fingerprint(nlu_model: EmbeddedModel, model_dir: Path) -> None:
    path = model_dir / f"embedded-{nlu_model.fingerprint}.joblib"
    assert path.exists() and nlu_model.fingerprint == fingerprint()
    before = path.stat().st_mtime_ns
    again = load_or_train(model_dir)
    assert path.stat().st_mtime_ns == before  # loaded, not retrained
    assert again.intents == nlu_model.intents


def test_changed_data_gets_a_new_fingerprint(tmp_path: Path) -> None:
    copy = tmp_path / "data"
    shutil.copytree(DATA_DIR, copy)
    assert fingerprint(copy) == fingerprint()
    with (copy / "conversation.yml").open("a", encoding="utf-8") as f:
        f.write("\n- intent: greet\n  examples: |\n    - 哈喽哈喽在不在\n")
    assert fingerprint(copy) != fingerprint()


def test_corrupt_cache_is_rebuilt(tmp_path: Path, nlu_model: EmbeddedModel) -> None:
    path = tmp_path / f"embedded-{nlu_model.fingerprint}.joblib"
    path.write_bytes(b"not a model")
    model = load_or_train(tmp_path)
    assert model.intents == nlu_model.intents
    assert path.stat().st_size > 1000


def test_fast_scorer_matches_scikit_learn(
    nlu_model: EmbeddedModel, interpreter: EmbeddedInterpreter
) -> None:
    texts = [e.text for e in load().examples[::7]] + ["", "  ａｂｃ  路灯  ", "好" * 300]
    expected = nlu_model.probabilities(texts)
    for text, row in zip(texts, expected, strict=True):
        parse = interpreter.parse_sync(text)
        ranked = dict(parse.ranking)
        best = nlu_model.intents[int(row.argmax())]
        assert ranked[best] == pytest.approx(float(row.max()), abs=1e-9), text
