"""The embedded model's fast paths give what the libraries they replace give.

jieba words (nlu.segment.Segmenter against jieba.Tokenizer), pinyin (nlu.segment.syllables
against pypinyin.lazy_pinyin), the TF-IDF scorer (nlu.scoring.FastScorer against
scikit-learn) and the address decoder (nlu.crf.Decoder against pycrfsuite's
Tagger), each on every training and blind-set message.
"""

from __future__ import annotations

import logging
from pathlib import Path

import jieba
import pytest
from pypinyin import lazy_pinyin

from nlu import addresses, crf, embedded
from nlu.embedded import EmbeddedInterpreter, EmbeddedModel, cut, domain_vocabulary, words
from nlu.entities import EntityExtractor
from nlu.normalize import normalize
from nlu.segment import Segmenter, syllables, word_syllables
from nlu.training_data import DATA_DIR, load, load_file

EXTRA = ["", " ", "abc  DEF 3.5% x-y", "好" * 300, "\n\t x", "ＡＢＣ路灯123号楼", "谢谢!!! 😀"]


def _texts() -> list[str]:
    raw = [e.text for e in load().examples]
    raw += [
        e.text for f in sorted((DATA_DIR / "test").glob("*.yml")) for e in load_file(f).examples
    ]
    return raw + EXTRA


@pytest.fixture(scope="module")
def texts() -> list[str]:
    raw = _texts()
    normal = [normalize(t) for t in raw]
    return list(dict.fromkeys(raw + normal + [t.lower() for t in normal]))


def test_segmenter_cuts_as_jieba_with_and_without_the_hmm(texts: list[str]) -> None:
    jieba.setLogLevel(logging.WARNING)
    data = load()
    vocabulary = tuple(
        sorted({w for n in ("service", "community", "place") for w in data.lookups.get(n, ())})
    )
    reference = jieba.Tokenizer()
    for word in vocabulary:
        reference.add_word(word)
    fast = Segmenter()
    fast.register(vocabulary)
    fast.register(vocabulary)  # a second registration changes nothing
    for text in texts:
        for hmm in (True, False):
            expected = reference.lcut(text, HMM=hmm)
            assert fast.lcut(text, HMM=hmm) == expected, (text, hmm)
            assert fast.lcut(text, HMM=hmm) == expected, (text, hmm)  # from the caches


def test_segmenter_forgets_its_caches_when_the_dictionary_changes() -> None:
    fast = Segmenter()
    reference = jieba.Tokenizer()
    text = "楼下新开的嘎嘎香烧烤店太吵"
    assert fast.lcut(text) == reference.lcut(text)
    fast.add_word("嘎嘎香烧烤店")
    reference.add_word("嘎嘎香烧烤店")
    assert "嘎嘎香烧烤店" in fast.lcut(text)
    assert fast.lcut(text) == reference.lcut(text)


def test_syllables_are_lazy_pinyin(texts: list[str]) -> None:
    for text in texts:
        assert syllables(text) == lazy_pinyin(text, errors="ignore"), text


def test_word_syllables_read_each_word_as_lazy_pinyin_does(texts: list[str]) -> None:
    for text in texts:
        cut_words = words(text)
        expected = [s for w in cut_words for s in lazy_pinyin(w, errors="ignore")]
        assert word_syllables(cut_words) == expected, text
        assert word_syllables(cut_words) == expected, text  # from the cache
    # Phrases are read within a word, never across two: 长期 is chang, 长大 zhang.
    assert word_syllables(["长期存在", "长大"]) == ["chang", "qi", "cun", "zai", "zhang", "da"]


def test_classifier_words_are_remembered_only_while_the_dictionary_stands() -> None:
    text = "楼道里的咚咚锵声音太吵了"
    first = words(text)
    assert words(text) == first
    words(text).append("x")  # a caller's copy: the remembered words do not change
    assert words(text) == first
    tokenizer = Segmenter()
    assert "咚咚锵" not in tokenizer.words(text, hmm=False)
    before = words(text)
    embedded._jieba().add_word("咚咚锵")
    try:
        assert "咚咚锵" in words(text) and words(text) != before
    finally:
        embedded._jieba().del_word("咚咚锵")
    assert "咚咚锵" not in words(text)


def test_fast_scorer_matches_scikit_learn_on_every_message(
    nlu_model: EmbeddedModel, interpreter: EmbeddedInterpreter
) -> None:
    texts = _texts()
    expected = nlu_model.probabilities(texts)
    for text, row in zip(texts, expected, strict=True):
        ranking = interpreter.parse_sync(text).ranking
        order = row.argsort()[::-1][: len(ranking)]
        assert [name for name, _ in ranking] == [nlu_model.intents[i] for i in order], text
        for (_, confidence), i in zip(ranking, order, strict=True):
            assert confidence == pytest.approx(float(row[i]), abs=1e-9), text


def test_column_features_are_the_feature_dicts() -> None:
    hints = addresses.Hints([(0, 3)], [(5, 7)], [(2, 9)])
    text = "金辉小区3号楼门口路灯坏了"
    words = cut(text)
    rows = addresses.features(text, words, hints)
    assert len(rows) == len(text)
    assert rows[0]["c"] == "金" and rows[0]["c-1"] == "^" and rows[0]["gaz"] == "B"
    assert rows[3]["sfx"] == "E:小区" and rows[2]["sfx+1"] == "O" and rows[1]["sfx+1"] == "S:小区"
    assert rows[-1]["c+1c+2"] == "$$" and rows[-1]["rule+1"] == "$"
    # words not covering the text: the rest read as single characters with no word
    short = addresses.features(text, words[:1], hints)
    assert short[-1]["wp"] == "S" and short[-1]["w"] == ""


def test_decoder_tags_as_crfsuite_on_every_clause(nlu_model: EmbeddedModel) -> None:
    domain_vocabulary(load())  # once per process: a no-op when the model registered it
    tagger = nlu_model.addresses
    assert tagger is not None
    extractor = EntityExtractor.from_training_data(load())
    clauses = 0
    for text in _texts():
        masked = extractor.mask(normalize(text))
        hints = extractor.hints(masked)
        for start, end in addresses.clauses(masked):
            clause, within = masked[start:end], hints.within(start, end)
            assert tagger.tag(clause, within) == tagger.tag_with_crfsuite(clause, within), clause
            clauses += 1
    assert clauses > 5000


def test_decoder_reads_the_weights_crfsuite_prints(nlu_model: EmbeddedModel) -> None:
    tagger = nlu_model.addresses
    assert tagger is not None
    labels, state, transitions = crf.read_model(tagger._model)
    info = tagger._tagger.info()
    assert set(labels) == set(info.labels)
    named = {(a, labels[y]): w for (a, y), w in state.items()}
    assert named.keys() == info.state_features.keys()
    assert all(abs(named[k] - w) < 1e-6 for k, w in info.state_features.items())
    assert {(labels[a], labels[b]): w for (a, b), w in transitions.items()} == pytest.approx(
        info.transitions, abs=1e-6
    )


def test_viterbi_breaks_ties_as_crfsuite() -> None:
    flat = [[0.0, 0.0, 0.0]] * 3
    assert crf.viterbi(flat, [[0.0] * 3] * 3) == [0, 0, 0]
    assert crf.viterbi([[0.0, 1.0, 1.0], [2.0, 0.0, 2.0]], [[0.0] * 3] * 3) == [1, 0]


def test_a_new_process_sets_up_jieba_once(tmp_path: Path) -> None:
    segmenter = Segmenter()
    segmenter.register(("嘎嘎香",))
    total = segmenter.total
    segmenter.register(("嘎嘎香",))
    assert segmenter.total == total
