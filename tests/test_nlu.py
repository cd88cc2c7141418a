"""Training data, normalisation, entities and the embedded classifier."""

from __future__ import annotations

import os
import shutil
from concurrent.futures import Future
from pathlib import Path

import joblib
import numpy as np
import pytest
import scipy.sparse as sp

from bots.settings import Settings
from nlu.calibration import calibration_folds, gather, training_pool
from nlu.contract import ENTITIES, INTENTS
from nlu.embedded import (
    EmbeddedInterpreter,
    EmbeddedModel,
    Loaded,
    _classifier,
    _features_text,
    _vectorizers,
    fingerprint,
    load_or_train,
)
from nlu.entities import EntityExtractor
from nlu.normalize import has_content, has_emoji, normalize
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
    assert has_emoji("好👍") and not has_emoji("？？？") and not has_emoji("。。。")


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


def test_the_temperature_falls_with_length_so_long_letters_keep_their_confidence(
    nlu_model: EmbeddedModel,
) -> None:
    # Fitted out of fold: a long letter's flatter scores are sharpened more.
    assert nlu_model.length_slope < 0
    assert (
        nlu_model.temperature_at(200) < nlu_model.temperature_at(20) < nlu_model.temperature_at(5)
    )
    assert nlu_model.temperature_at(20) == pytest.approx(nlu_model.temperature)


def test_calibration_folds_in_worker_processes_match_one_process_and_leave_none() -> None:
    data = load()
    examples = data.examples[::16]
    texts = [_features_text(e.text) for e in examples]
    labels = np.array([e.intent for e in examples])
    features = sp.hstack([v.fit_transform(texts) for v in _vectorizers()], format="csr")
    start = _classifier().fit(features, labels)
    classes = len(start.classes_)
    alone = gather(calibration_folds(features, labels, start, None), len(labels), classes, print)
    with training_pool() as pool:
        assert pool is not None  # these machines have two cores
        workers = {pool.submit(os.getpid).result() for _ in range(4)}
        folds = calibration_folds(features, labels, start, pool)
        assert [isinstance(result, Future) for _, result in folds] == [True, False] * 2
        pooled = gather(folds, len(labels), classes, print)
    assert alone is not None and pooled is not None
    assert np.abs(alone).max() > 1.0  # real logits, not a zero matrix
    np.testing.assert_allclose(pooled, alone)
    assert workers and os.getpid() not in workers
    for pid in workers:  # shut down and reaped when training ends
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        (
            "致街道办事处：本人住在幸福里小区，自今年4月以来，小区对面的夜市每晚营业到凌晨一点，"
            "摊主用扩音喇叭招揽顾客，食客划拳吵闹，临街几栋楼的居民长期无法入睡，恳请予以整治。",
            "report_noise",
        ),
        (
            "关于我家楼前路面塌陷的问题：塌陷处已经有半米多深，周围只放了两个锥桶，晚上没有任何照明，"
            "骑电动车的人随时可能掉进去，恳请市政部门尽快修复并设置警示灯。",
            "report_facility",
        ),
        (
            "您好，本人想咨询一下，退休后户口迁到子女所在城市，养老金领取地要不要变更，"
            "需要到哪个部门办理，带哪些材料？",
            "ask_service_info",
        ),
        (
            "我九月份反映的楼道堆物问题，到现在快两个月了，打了好几次电话都说在处理，"
            "可东西还堆在那里，请问这件事到底有没有人在跟进？",
            "check_status",
        ),
    ],
)
def test_long_formal_messages_are_understood_without_falling_back(
    interpreter: EmbeddedInterpreter, text: str, intent: str
) -> None:
    assert len(text) > 50
    assert interpreter.parse_sync(text).intent == intent


def test_the_model_is_looked_for_beside_the_data_then_in_the_shared_cache(
    tmp_path: Path, model_dir: Path, nlu_model: EmbeddedModel
) -> None:
    name = f"embedded-{nlu_model.fingerprint}.joblib"
    own, shared = tmp_path / "data" / "models", tmp_path / "shared"
    own.mkdir(parents=True)
    (own / name).symlink_to(model_dir / name)
    found: list[Loaded] = []
    model = load_or_train(shared, search=(own,), found=found.append)
    assert found == [Loaded(own / name, trained=False)]
    assert model.intents == nlu_model.intents
    assert not shared.exists()  # nothing trained, nothing written
    found.clear()
    load_or_train(model_dir, search=(tmp_path / "nowhere",), found=found.append)
    assert found == [Loaded(model_dir / name, trained=False)]


def test_the_model_cache_is_the_users_unless_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("YIMEN_MODEL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    settings = Settings(_env_file=None, data_dir=tmp_path / "one")  # type: ignore[call-arg]
    assert settings.model_dir == tmp_path / "xdg" / "yimen" / "models"
    other = Settings(_env_file=None, data_dir=tmp_path / "two")  # type: ignore[call-arg]
    assert other.model_dir == settings.model_dir  # shared by every data directory
    assert settings.model_dirs == (tmp_path / "one" / "models", settings.model_dir)
    monkeypatch.setenv("YIMEN_MODEL_CACHE", str(tmp_path / "mine"))
    assert Settings(_env_file=None).model_dir == tmp_path / "mine"  # type: ignore[call-arg]
    monkeypatch.setenv("YIMEN_MODEL_CACHE", "")
    assert Settings(_env_file=None).model_dir == settings.model_dir  # type: ignore[call-arg]


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


def test_corrupt_cache_is_rebuilt(tmp_path: Path, small_data_dir: Path) -> None:
    key = fingerprint(small_data_dir)
    path = tmp_path / f"embedded-{key}.joblib"
    path.write_bytes(b"not a model")
    model = load_or_train(tmp_path, small_data_dir)
    assert model.intents == sorted(load(sorted(small_data_dir.glob("*.yml"))).intents)
    assert path.stat().st_size > 1000
    assert joblib.load(path).fingerprint == key  # the rebuilt file is a model again


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
