"""The embedded interpreter: words, characters and pinyin into a calibrated linear model.

Three TF-IDF blocks feed one logistic regression:

- jieba words and word bigrams, with the service and community lookups as words;
- character 1–3-grams, which survive jieba's mistakes and residents' typos;
- pinyin syllables and syllable bigrams, so homophones (蟹蟹/谢谢, 在马/在吗, 路等/路灯)
  read alike.

The probabilities are calibrated by temperature scaling: a temperature fitted on
out-of-fold logits (cross-validation over the training data) makes the confidence mean
what it says, so the threshold and margin that turn a parse into ``nlu_fallback`` act
on real uncertainty. It trains in seconds from the same Rasa YAML as the Rasa backend
and is cached as a file keyed by a hash of the data, so a process loads it once and
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
from pypinyin import lazy_pinyin
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from nlu import addresses as address_tagging
from nlu.addresses import AddressTagger, Hints
from nlu.entities import EntityExtractor
from nlu.normalize import normalize
from nlu.scoring import FastScorer
from nlu.training_data import DATA_DIR, TrainingData
from nlu.training_data import load as load_training_data
from nlu.types import DEFAULT_MARGIN, DEFAULT_THRESHOLD, FALLBACK_INTENT, NLUError, Parse, unsure

log = logging.getLogger(__name__)

MODEL_VERSION = "4"
C = 10.0  # inverse regularisation, chosen by cross-validation on the training data
CALIBRATION_FOLDS = 4

_tokenizer_lock = threading.Lock()
_tokenizer: jieba.Tokenizer | None = None


def _jieba() -> jieba.Tokenizer:
    global _tokenizer
    with _tokenizer_lock:
        if _tokenizer is None:
            jieba.setLogLevel(logging.WARNING)
            tokenizer = jieba.Tokenizer()
            tokenizer.initialize()
            _tokenizer = tokenizer
        return _tokenizer


def _features_text(text: str) -> str:
    """What the classifier reads: the normalised text, lower-cased."""
    return normalize(text).lower()


def words(text: str) -> list[str]:
    """jieba words of normalised text, spaces dropped (module-level so models pickle)."""
    return [w for w in _jieba().lcut(text) if not w.isspace()]


def cut(text: str) -> list[str]:
    """jieba words covering ``text`` exactly, spaces included (the address tagger's words).

    Dictionary words only, no HMM guesses for unknown ones: a third faster, and the CRF
    reads characters for what the dictionary does not know.
    """
    return _jieba().lcut(text, HMM=False)


def syllables(text: str) -> list[str]:
    """Toneless pinyin of the Chinese characters in ``text``; anything else is dropped."""
    return lazy_pinyin(text, errors="ignore")


@dataclass(slots=True)
class EmbeddedModel:
    """The fitted parts of the embedded classifier."""

    word_vectorizer: TfidfVectorizer
    char_vectorizer: TfidfVectorizer
    pinyin_vectorizer: TfidfVectorizer
    classifier: LogisticRegression
    temperature: float  # logits are divided by it before the softmax
    vocabulary: tuple[str, ...]  # domain words added to jieba before tokenising
    fingerprint: str
    addresses: AddressTagger | None = None  # the address CRF (nlu.addresses)

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
        logits = self.classifier.decision_function(
            self.features([_features_text(t) for t in texts])
        )
        return np.asarray(softmax(logits / self.temperature, axis=1))


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


def train(data: TrainingData, fingerprint: str = "") -> EmbeddedModel:
    """Fit the classifier on every example of ``data``, and calibrate its temperature."""
    if len(data.intents) < 3:
        raise NLUError("training data needs at least three intents (a multinomial model)")
    # Services, communities and towns are single words to jieba, for both models.
    vocabulary = tuple(
        sorted(
            {w for name in ("service", "community", "place") for w in data.lookups.get(name, ())}
        )
    )
    tokenizer = _jieba()
    for word in vocabulary:
        tokenizer.add_word(word)
    texts = [_features_text(e.text) for e in data.examples]
    labels = np.array([e.intent for e in data.examples])
    vectorizers = _vectorizers()
    features = sp.hstack([v.fit_transform(texts) for v in vectorizers], format="csr")
    classifier = _classifier().fit(features, labels)
    temperature = calibrate(features, labels)
    addresses = train_addresses(data)
    return EmbeddedModel(*vectorizers, classifier, temperature, vocabulary, fingerprint, addresses)


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


def calibrate(features: sp.csr_matrix, labels: np.ndarray) -> float:
    """The softmax temperature that minimises the log loss of out-of-fold predictions.

    Each fold's classifier scores examples it never saw, so the temperature reflects how
    sure the model should be on new messages, not on its own training data. (The TF-IDF
    weights are fitted once on all the data; refitting them per fold changes little.)
    """
    _, counts = np.unique(labels, return_counts=True)
    folds = min(CALIBRATION_FOLDS, int(counts.min()))
    if folds < 2:
        return 1.0
    classes = np.unique(labels)
    target = np.searchsorted(classes, labels)
    logits = np.zeros((len(labels), len(classes)))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=0)
    for train_rows, test_rows in splitter.split(features, labels):
        fold = _classifier().fit(features[train_rows], labels[train_rows])
        logits[test_rows] = fold.decision_function(features[test_rows])

    def log_loss(temperature: float) -> float:
        scaled = log_softmax(logits / temperature, axis=1)
        return float(-scaled[np.arange(len(target)), target].mean())

    return float(minimize_scalar(log_loss, bounds=(0.05, 20.0), method="bounded").x)


def load_or_train(
    cache_dir: Path, data_dir: Path = DATA_DIR, *, force: bool = False
) -> EmbeddedModel:
    """The cached model for the current training data, training and caching it if needed."""
    key = fingerprint(data_dir)
    path = cache_dir / f"embedded-{key}.joblib"
    real = path.resolve()  # links to one cache file share its loaded model
    with _loaded_lock:
        if not force and (model := _loaded.get(real)) is not None:
            return model
        model = _load_or_train(path, key, data_dir, force=force)
        _loaded[path.resolve()] = model
        return model


# Models already loaded by this process, by cache file: a model is immutable once
# trained, so every app and interpreter in the process shares one copy.
_loaded: dict[Path, EmbeddedModel] = {}
_loaded_lock = threading.Lock()


def _load_or_train(path: Path, key: str, data_dir: Path, *, force: bool) -> EmbeddedModel:
    if path.exists() and not force:
        try:
            model: EmbeddedModel = joblib.load(path)
        except Exception as exc:  # a corrupt or foreign cache file is rebuilt, not fatal
            log.warning("ignoring unreadable NLU model cache %s: %s", path, exc)
        else:
            tokenizer = _jieba()
            for word in model.vocabulary:
                tokenizer.add_word(word)
            return model
    model = train(load_training_data(sorted(data_dir.glob("*.yml"))), key)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # processes training at once don't collide
    joblib.dump(model, tmp)
    tmp.replace(path)  # atomic, so a concurrent reader never sees half a file
    log.info("trained embedded NLU model %s (%d intents)", path.name, len(model.intents))
    return model


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
            model.temperature,
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
