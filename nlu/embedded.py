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

import contextlib
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jieba
import joblib
import numpy as np
import scipy.sparse as sp
import sklearn
from joblib.externals import loky
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from nlu import addresses as address_tagging
from nlu.addresses import AddressTagger, Hints
from nlu.entities import EntityExtractor
from nlu.normalize import normalize
from nlu.scoring import FastScorer
from nlu.segment import Segmenter
from nlu.segment import syllables as pinyin_syllables
from nlu.training_data import DATA_DIR, TrainingData
from nlu.training_data import load as load_training_data
from nlu.types import DEFAULT_MARGIN, DEFAULT_THRESHOLD, FALLBACK_INTENT, NLUError, Parse, unsure

log = logging.getLogger(__name__)

MODEL_VERSION = "5"
C = 10.0  # inverse regularisation, chosen by cross-validation on the training data
CALIBRATION_FOLDS = 4
# The temperature is exp(a + b * log(length / REFERENCE_LENGTH)), length in characters.
REFERENCE_LENGTH = 20

# A training step's name, reported as it finishes (for a progress bar); see TRAINING_STEPS.
Progress = Callable[[str], None]

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


def words(text: str) -> list[str]:
    """jieba words of normalised text, spaces dropped (module-level so models pickle)."""
    return [w for w in _jieba().words(text) if not w.isspace()]


def cut(text: str) -> list[str]:
    """jieba words covering ``text`` exactly, spaces included (the address tagger's words).

    Dictionary words only, no HMM guesses for unknown ones: a third faster, and the CRF
    reads characters for what the dictionary does not know.
    """
    return _jieba().words(text, hmm=False)


def syllables(text: str) -> list[str]:
    """Toneless pinyin of the Chinese characters in ``text``; anything else is dropped.

    ``lazy_pinyin(text, errors="ignore")``, with the pinyin of words remembered."""
    return pinyin_syllables(text)


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


def temperature_at(temperature: float, slope: float, length: int) -> float:
    """``temperature`` at the reference length, scaled by (length / reference) ** slope."""
    return float(temperature * (max(length, 1) / REFERENCE_LENGTH) ** slope)


# The modules whose code shapes the features and the fit: a change to any of them must
# retrain, even when nobody remembers to bump MODEL_VERSION.
_FEATURE_CODE = (
    "embedded.py",
    "normalize.py",
    "scoring.py",
    "training_data.py",
    "addresses.py",
    "entities.py",
    "gazetteer.py",
    "timeparse.py",
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
    CRF and the other half (see ``_training_pool``); the model is the same as on one
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
    with _training_pool() as pool:
        if pool is not None:  # the worker starts and imports while the classifier fits
            pool.submit(_warm_up)
        # One BLAS/OpenMP thread: on a shared machine more threads mostly wait for each other.
        with threadpool_limits(1):
            features = sp.hstack([v.fit_transform(texts) for v in vectorizers], format="csr")
            step("features")
            classifier = _classifier().fit(features, labels)
            step("classifier")
        folds = _calibration_folds(features, labels, classifier, pool)
        addresses = train_addresses(data)
        step("addresses")
        logits = _gather(folds, len(labels), len(classifier.classes_), step)
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

    rows = address_tagging.train_rows(data.examples, prepare, cut)
    return AddressTagger.train(rows, cut)


# Processes that fit calibration folds beside the main one, which fits the address CRF
# and the other half of the folds meanwhile: these machines have two cores.
TRAINING_WORKERS = 1


@contextlib.contextmanager
def _training_pool() -> Iterator[Executor | None]:
    """A worker process for half the calibration folds, or None on a single core.

    loky (joblib's process pool, which scikit-learn already uses) starts fresh
    interpreters without re-running the caller's ``__main__``, unlike multiprocessing's
    spawn, and without fork's hazards in a process that runs threads. The pool is shut
    down on leaving, so no worker outlives training.
    """
    if len(os.sched_getaffinity(0)) < 2:
        yield None
        return
    pool = loky.ProcessPoolExecutor(max_workers=TRAINING_WORKERS)
    try:
        yield pool
    finally:
        pool.shutdown(wait=True)


def _warm_up() -> None:
    """Nothing: loading this module (and scikit-learn) is the work."""


# A fold: its held-out rows, and their logits from a worker or to be computed here.
Fold = tuple[np.ndarray, "Future[np.ndarray] | Callable[[], np.ndarray]"]


def _calibration_folds(
    features: sp.csr_matrix,
    labels: np.ndarray,
    start: LogisticRegression,
    pool: Executor | None,
) -> list[Fold]:
    """Out-of-fold logits over ``CALIBRATION_FOLDS`` stratified folds: each fold's
    classifier scores examples it never saw, so the temperature reflects how sure the
    model should be on new messages, not on its own training data. (The TF-IDF weights
    are fitted once on all the data; refitting them per fold changes little.)

    Each fold's fit starts from ``start`` (the model fitted on all the data), which
    reaches the same optimum of the convex loss in about a third of the iterations.
    Every other fold is submitted to ``pool`` (when there is one); the rest are fitted
    here by ``_gather``, so this returns at once.
    """
    _, counts = np.unique(labels, return_counts=True)
    number = min(CALIBRATION_FOLDS, int(counts.min()))
    if number < 2:
        return []
    splitter = StratifiedKFold(number, shuffle=True, random_state=0)
    folds: list[Fold] = []
    for index, (train_rows, test_rows) in enumerate(splitter.split(features, labels)):
        job = (
            features[train_rows],
            labels[train_rows],
            features[test_rows],
            start.coef_,
            start.intercept_,
        )
        if pool is not None and index % 2 == 0:
            folds.append((test_rows, pool.submit(fold_logits, *job)))
        else:
            folds.append((test_rows, partial(fold_logits, *job)))
    return folds


def fold_logits(
    train_features: sp.csr_matrix,
    train_labels: np.ndarray,
    test_features: sp.csr_matrix,
    coef: np.ndarray,
    intercept: np.ndarray,
) -> np.ndarray:
    """One calibration fold: fit from (``coef``, ``intercept``) on the training rows and
    score the held-out ones (module-level, so a worker process can run it)."""
    with threadpool_limits(1):
        fold = _classifier().set_params(warm_start=True)
        fold.coef_, fold.intercept_ = coef.copy(), intercept.copy()
        fold.fit(train_features, train_labels)
        return np.asarray(fold.decision_function(test_features))


def _gather(folds: list[Fold], rows: int, classes: int, progress: Progress) -> np.ndarray | None:
    """The out-of-fold logits of every row, fitting the folds kept here and waiting for
    the worker's (None without folds)."""
    if not folds:
        return None
    logits = np.zeros((rows, classes))
    for number, (test_rows, result) in enumerate(folds):
        logits[test_rows] = result.result() if isinstance(result, Future) else result()
        progress(f"calibration {number + 1}/{CALIBRATION_FOLDS}")
    return logits


def fit_temperature(
    logits: np.ndarray | None, labels: np.ndarray, lengths: np.ndarray
) -> tuple[float, float]:
    """The temperature and length slope that minimise the log loss of out-of-fold
    ``logits`` (1.0 and 0.0 without them: too few examples of some intent to fold).

    The temperature is ``temperature_at(t, b, length)``: ``t`` at 20 characters, times
    (length / 20) ** b.
    """
    if logits is None:
        return 1.0, 0.0
    target = np.searchsorted(np.unique(labels), labels)
    scale = np.log(np.maximum(lengths, 1) / REFERENCE_LENGTH)[:, None]

    def log_loss(parameters: np.ndarray) -> float:
        temperatures = np.exp(parameters[0] + parameters[1] * scale)
        scaled = log_softmax(logits / temperatures, axis=1)
        return float(-scaled[np.arange(len(target)), target].mean())

    best = minimize(log_loss, np.array([np.log(0.5), 0.0]), method="Nelder-Mead").x
    return float(np.exp(best[0])), float(best[1])


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
