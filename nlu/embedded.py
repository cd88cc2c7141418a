"""The embedded interpreter: words, characters and pinyin into a calibrated linear model.

Three TF-IDF blocks feed one logistic regression:

- jieba words and word bigrams, with the service and community lookups as words;
- character 1–3-grams, which survive jieba's mistakes and residents' typos;
- pinyin syllables and syllable bigrams, so homophones (蟹蟹/谢谢, 在马/在吗, 路等/路灯)
  read alike.

The probabilities are calibrated by temperature scaling: a temperature fitted on
out-of-fold logits (cross-validation over the training data) makes the confidence mean
what it says, so the threshold and margin that turn a parse into ``nlu_fallback`` act
on real uncertainty. The temperature depends on the message's length (it falls as a
power of the length): TF-IDF rows are L2-normalised, so a long letter spreads its
weight over many features and its raw scores are flatter than a short message's even
when the model is as often right, and one temperature for both made long, formal
reports fall back for being long. It trains from the same Rasa YAML as the Rasa backend
and is cached as a file keyed by a hash of the data (by default in the user's cache
directory, shared by every data directory and checkout), so a process loads it once and
never retrains for nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jieba
import joblib
import numpy as np
import scipy.sparse as sp
import sklearn
from scipy.special import softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from nlu import address_training
from nlu.addresses import AddressTagger, Hints
from nlu.calibration import (
    CALIBRATION_FOLDS,
    Progress,
    calibration_folds,
    fit_temperature,
    gather,
    temperature_at,
    training_pool,
    warm_up,
)
from nlu.entities import EntityExtractor
from nlu.normalize import normalize
from nlu.scoring import FastScorer
from nlu.segment import Segmenter, word_syllables
from nlu.training_data import DATA_DIR, TrainingData
from nlu.training_data import load as load_training_data
from nlu.types import DEFAULT_MARGIN, DEFAULT_THRESHOLD, FALLBACK_INTENT, NLUError, Parse, unsure

log = logging.getLogger(__name__)

MODEL_VERSION = "5"
C = 10.0  # inverse regularisation, chosen by cross-validation on the training data

_tokenizer_lock = threading.Lock()
_tokenizer: Segmenter | None = None


def _jieba() -> Segmenter:
    global _tokenizer
    with _tokenizer_lock:
        if _tokenizer is None:
            jieba.setLogLevel(logging.WARNING)
            tokenizer = Segmenter()
            tokenizer.initialize()
            _tokenizer = tokenizer
        return _tokenizer


def _features_text(text: str) -> str:
    """What the classifier reads: the normalised text, lower-cased."""
    return normalize(text).lower()


# The last text's words: the word block and the pinyin block read the same message.
_last_words: tuple[str, int, tuple[str, ...]] = ("", -1, ())


def words(text: str) -> list[str]:
    """jieba words of normalised text, spaces dropped (module-level so models pickle).

    Dictionary words only, without jieba's HMM guesses at unknown words: the character
    block reads what the dictionary does not know, cross-validation scores the two
    alike (0.9294 and 0.9287 macro-F1, README), and the guesses cost a tenth of a parse.
    """
    global _last_words
    tokenizer = _jieba()
    last_text, generation, found = _last_words
    if last_text != text or generation != tokenizer.generation:
        found = tuple(w for w in tokenizer.words(text, hmm=False) if not w.isspace())
        _last_words = (text, tokenizer.generation, found)
    return list(found)


def cut(text: str) -> list[str]:
    """jieba words covering ``text`` exactly, spaces included (the address tagger's words).

    Dictionary words only, no HMM guesses for unknown ones: a third faster, and the CRF
    reads characters for what the dictionary does not know.
    """
    return _jieba().words(text, hmm=False)


def syllables(text: str) -> list[str]:
    """Toneless pinyin of the Chinese characters in ``text``; anything else is dropped.

    Read word by word (its jieba ``words``, pypinyin's phrases looked for within each),
    so a word's pinyin is worked out once per process, not once per message."""
    return word_syllables(words(text))


@dataclass(slots=True)
class EmbeddedModel:
    """The fitted parts of the embedded classifier."""

    word_vectorizer: TfidfVectorizer
    char_vectorizer: TfidfVectorizer
    pinyin_vectorizer: TfidfVectorizer
    classifier: LogisticRegression
    temperature: float  # logits are divided by temperature_at(length) before the softmax
    vocabulary: tuple[str, ...]  # domain words added to jieba before tokenising
    fingerprint: str
    addresses: AddressTagger | None = None  # the address CRF (nlu.addresses)
    length_slope: float = 0.0  # b in the temperature's power law of length

    def temperature_at(self, length: int) -> float:
        """The softmax temperature for a normalised text of ``length`` characters."""
        return temperature_at(self.temperature, self.length_slope, length)

    @property
    def intents(self) -> list[str]:
        """The intents this model predicts."""
        return [str(c) for c in self.classifier.classes_]

    def features(self, texts: list[str]) -> sp.csr_matrix:
        """The stacked word, character and pinyin TF-IDF features of normalised texts."""
        return sp.hstack(
            [v.transform(texts) for v in self.vectorizers],
            format="csr",
        )

    @property
    def vectorizers(self) -> tuple[TfidfVectorizer, TfidfVectorizer, TfidfVectorizer]:
        """The feature blocks, in column order."""
        return self.word_vectorizer, self.char_vectorizer, self.pinyin_vectorizer

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Calibrated intent probabilities, one row per text, columns in ``intents`` order."""
        prepared = [_features_text(t) for t in texts]
        logits = self.classifier.decision_function(self.features(prepared))
        temperatures = np.array([[self.temperature_at(len(t))] for t in prepared])
        return np.asarray(softmax(logits / temperatures, axis=1))


# The modules whose code shapes the features and the fit: a change to any of them must
# retrain, even when nobody remembers to bump MODEL_VERSION.
_FEATURE_CODE = (
    "embedded.py",
    "calibration.py",
    "normalize.py",
    "scoring.py",
    "training_data.py",
    "addresses.py",
    "address_training.py",
    "crf.py",
    "entities.py",
    "gazetteer.py",
    "timeparse.py",
    "timewords.py",
    "periods.py",
    "segment.py",
)


def fingerprint(data_dir: Path = DATA_DIR) -> str:
    """A hash of the training files, the feature code and scikit-learn's version."""
    digest = hashlib.sha256(f"{MODEL_VERSION}:{sklearn.__version__}".encode())
    for name in _FEATURE_CODE:
        digest.update((Path(__file__).parent / name).read_bytes())
    for path in sorted(data_dir.glob("*.yml")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _vectorizers() -> tuple[TfidfVectorizer, TfidfVectorizer, TfidfVectorizer]:
    """Fresh word, character and pinyin blocks, in column order."""

    def tokens(tokenizer: Callable[[str], list[str]]) -> TfidfVectorizer:
        """Unigrams and bigrams of ``tokenizer``'s tokens."""
        return TfidfVectorizer(
            tokenizer=tokenizer,
            token_pattern=None,
            lowercase=False,
            ngram_range=(1, 2),
            sublinear_tf=True,
        )

    characters = TfidfVectorizer(
        analyzer="char", ngram_range=(1, 3), lowercase=False, sublinear_tf=True
    )
    return tokens(words), characters, tokens(syllables)


def _classifier() -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=3000)


# The steps ``train`` reports, in order: a progress bar's total is their count.
# Each with its rough share of the training time, for a progress bar's estimate.
TRAINING_STEPS: tuple[tuple[str, float], ...] = (
    ("start", 0.0),
    ("features", 1.0),
    ("classifier", 9.0),
    ("addresses", 3.0),
    *((f"calibration {i + 1}/{CALIBRATION_FOLDS}", 1.5) for i in range(CALIBRATION_FOLDS)),
)


def train(
    data: TrainingData, fingerprint: str = "", progress: Progress | None = None
) -> EmbeddedModel:
    """Fit the classifier on every example of ``data``, and calibrate its temperature.

    ``progress`` is told each of ``TRAINING_STEPS`` as it finishes ("start" first).
    Half the calibration folds run in a worker process while this one fits the address
    CRF and the other half (see ``training_pool``); the model is the same as on one
    process.
    """
    step = progress or (lambda _name: None)
    step("start")
    if len(data.intents) < 3:
        raise NLUError("training data needs at least three intents (a multinomial model)")
    vocabulary = domain_vocabulary(data)
    texts = [_features_text(e.text) for e in data.examples]
    labels = np.array([e.intent for e in data.examples])
    vectorizers = _vectorizers()
    with training_pool() as pool:
        if pool is not None:  # the worker starts and imports while the classifier fits
            pool.submit(warm_up)
        # One BLAS/OpenMP thread: on a shared machine more threads mostly wait for each other.
        with threadpool_limits(1):
            features = sp.hstack([v.fit_transform(texts) for v in vectorizers], format="csr")
            step("features")
            classifier = _classifier().fit(features, labels)
            step("classifier")
        folds = calibration_folds(features, labels, classifier, pool)
        addresses = train_addresses(data)
        step("addresses")
        logits = gather(folds, len(labels), len(classifier.classes_), step)
    lengths = np.array([len(t) for t in texts])
    temperature, slope = fit_temperature(logits, labels, lengths)
    return EmbeddedModel(
        *vectorizers, classifier, temperature, vocabulary, fingerprint, addresses, slope
    )


def domain_vocabulary(data: TrainingData) -> tuple[str, ...]:
    """The service, community and town lookups, added to jieba as single words (for both
    models); returns them, sorted."""
    vocabulary = tuple(
        sorted(
            {w for name in ("service", "community", "place") for w in data.lookups.get(name, ())}
        )
    )
    _jieba().register(vocabulary)
    return vocabulary


def train_addresses(data: TrainingData, extractor: EntityExtractor | None = None) -> AddressTagger:
    """Fit the address CRF on the data's annotated address spans (a few seconds).

    Its evidence comes from ``extractor``'s rules and gazetteer, by default the one
    built from ``data``, as at parse time; jieba must already know the vocabulary.
    """
    extractor = extractor or EntityExtractor.from_training_data(data)

    def prepare(text: str) -> tuple[str, Hints]:
        masked = extractor.mask(text)
        return masked, extractor.hints(masked)

    rows = address_training.train_rows(data.examples, prepare, cut)
    return AddressTagger.train(rows, cut)


@dataclass(frozen=True, slots=True)
class Loaded:
    """Where ``load_or_train`` found the model, and whether it had to train it."""

    path: Path
    trained: bool


def load_or_train(
    cache_dir: Path,
    data_dir: Path = DATA_DIR,
    *,
    force: bool = False,
    search: tuple[Path, ...] = (),
    progress: Progress | None = None,
    found: Callable[[Loaded], None] | None = None,
) -> EmbeddedModel:
    """The cached model for the current training data, training and caching it if needed.

    The model file is looked for in ``search`` and then ``cache_dir``; a model trained
    here is written to ``cache_dir``. ``progress`` hears each training step; ``found``
    is told where the model came from (also when this process had it loaded already).
    """
    key = fingerprint(data_dir)
    name = f"embedded-{key}.joblib"
    candidates = [d / name for d in (*search, cache_dir)]
    path = next((p for p in candidates if p.exists()), candidates[-1])
    real = path.resolve()  # links to one cache file share its loaded model
    with _loaded_lock:
        if not force and (model := _loaded.get(real)) is not None:
            trained = False
        else:
            model, trained = _load_or_train(path, key, data_dir, force=force, progress=progress)
            _loaded[path.resolve()] = model
    if found is not None:
        found(Loaded(path, trained))
    return model


# Models already loaded by this process, by cache file: a model is immutable once
# trained, so every app and interpreter in the process shares one copy.
_loaded: dict[Path, EmbeddedModel] = {}
_loaded_lock = threading.Lock()


def _load_or_train(
    path: Path, key: str, data_dir: Path, *, force: bool, progress: Progress | None
) -> tuple[EmbeddedModel, bool]:
    if path.exists() and not force:
        try:
            model: EmbeddedModel = joblib.load(path)
        except Exception as exc:  # a corrupt or foreign cache file is rebuilt, not fatal
            log.warning("ignoring unreadable NLU model cache %s: %s", path, exc)
        else:
            _jieba().register(model.vocabulary)
            log.info("loaded embedded NLU model %s", path)
            return model, False
    model = train(load_training_data(sorted(data_dir.glob("*.yml"))), key, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # processes training at once don't collide
    joblib.dump(model, tmp)
    tmp.replace(path)  # atomic, so a concurrent reader never sees half a file
    log.info("trained embedded NLU model %s (%d intents)", path, len(model.intents))
    return model, True


class EmbeddedInterpreter:
    """Interpreter backed by an in-process ``EmbeddedModel``.

    Below ``threshold`` confidence, or when the top two intents are closer than
    ``margin``, the result is ``nlu_fallback`` so the dialogue asks again.
    """

    def __init__(
        self,
        model: EmbeddedModel,
        extractor: EntityExtractor,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        margin: float = DEFAULT_MARGIN,
    ) -> None:
        self._model = model
        self._scorer = FastScorer(
            [
                (model.word_vectorizer, words),
                (model.char_vectorizer, None),
                (model.pinyin_vectorizer, syllables),
            ],
            model.classifier,
            model.temperature_at,
        )
        if model.addresses is not None and extractor.tagger is None:
            extractor = extractor.with_tagger(model.addresses)
        self._extractor = extractor
        self._intents = model.intents
        self._threshold = threshold
        self._margin = margin

    def parse_sync(self, text: str) -> Parse:
        """Parse on the calling thread (CPU-bound, well under a millisecond)."""
        text = normalize(text)
        probs = self._scorer.probabilities(text.lower())
        order = np.argsort(probs)[::-1][:5]
        ranking = tuple((self._intents[i], float(probs[i])) for i in order)
        intent, confidence = ranking[0]
        if unsure(ranking, self._threshold, self._margin):
            intent = FALLBACK_INTENT
        return Parse(text, intent, confidence, self._extractor.extract(text), ranking)

    async def parse(self, text: str) -> Parse:
        """Parse one message (see ``parse_sync``)."""
        return self.parse_sync(text)
