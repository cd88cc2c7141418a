"""`yimen nlu cv` (nlu/crossval.py) on a small slice of the training data."""

from __future__ import annotations

import re

import pytest

from nlu.crossval import (
    CANDIDATES,
    CURRENT,
    ENSEMBLES,
    Score,
    choose,
    cross_validate,
    score_table,
    subsample,
)
from nlu.training_data import load

FOLDS = 3


@pytest.fixture(scope="module")
def scores() -> list[Score]:
    data = load()
    examples = subsample(data.examples, 9)
    advanced: list[int] = []
    result = cross_validate(data, FOLDS, examples=examples, progress=advanced.append)
    # The bar hears of every candidate fitted on every fold.
    assert sum(advanced) == FOLDS * len(CANDIDATES)
    return result


def test_subsample_takes_the_first_examples_of_each_intent() -> None:
    data = load()
    chosen = subsample(data.examples, 3)
    assert len(chosen) == 3 * len(data.intents)
    first = next(e for e in data.examples if e.intent == "greet")
    assert first in chosen


def test_every_candidate_is_scored_on_every_fold(scores: list[Score]) -> None:
    assert [s.candidate for s in scores] == [*CANDIDATES, *ENSEMBLES]
    for score in scores:
        assert len(score.folds) == FOLDS
        assert all(0.0 <= f <= 1.0 for f in score.folds)
        # Nine examples an intent: better than chance (1/28), short of perfect.
        assert 0.1 < score.mean < 1.0
        assert score.sd >= 0.0
    # The candidates are different models, not one model under four names.
    assert len({s.folds for s in scores}) == len(scores)


def test_the_table_lists_each_candidate_with_mean_and_sd(scores: list[Score]) -> None:
    table = score_table(scores).splitlines()
    assert f"macro-F1 ({FOLDS}-fold)" in table[0]
    rows = {}
    for line in table[1:]:
        match = re.match(r"(.+?)\s+(\d\.\d{4}) ± (\d\.\d{4})\s+([+-]\d\.\d{4})$", line)
        assert match, line
        rows[match[1]] = (float(match[2]), float(match[3]), float(match[4]))
    assert set(rows) == {s.candidate for s in scores}
    means = [mean for mean, _, _ in rows.values()]
    assert means == sorted(means, reverse=True)  # best first
    assert rows[CURRENT][2] == 0.0
    for score in scores:
        assert rows[score.candidate][:2] == (round(score.mean, 4), round(score.sd, 4))


def test_choice_keeps_the_current_model_unless_beaten_by_more_than_its_spread() -> None:
    current = Score(CURRENT, (0.90, 0.92, 0.94))  # sd 0.02
    close = Score("close", (0.91, 0.93, 0.95))  # +0.01
    clear = Score("clear", (0.95, 0.96, 0.97))  # +0.04
    assert choose([current, close]) is current
    assert choose([current, close, clear]) is clear
