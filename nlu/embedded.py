"""The embedded interpreter: jieba words plus character n-grams into a linear classifier.

It trains in seconds from the same Rasa YAML as the Rasa backend and is cached as a
file keyed by a hash of the data, so a process loads it once and never retrains for
nothing.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import jieba
import joblib
import numpy as np
import scipy.sparse as sp
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from nlu.entities import EntityExtractor
from nlu.normalize import normalize
from nlu.scoring import FastScorer
from nlu.training_data import DATA_DIR, TrainingData
from nlu.training_data import load as load_training_data
from nlu.types import FALLBACK_INTENT, NLUError, Parse

log = logging.getLogger(__name__)

MODEL_VERSION = "2"

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


@dataclass(slots=True)
class EmbeddedModel:
    """The fitted parts of the embedded classifier."""

    word_vectorizer: TfidfVectorizer
    char_vectorizer: TfidfVectorizer
    classifier: LogisticRegression
    vocabulary: tuple[str, ...]  # domain words added to jieba before tokenising
    fingerprint: str

    @property
    def intents(self) -> list[str]:
        """The intents this model predicts."""
        return [str(c) for c in self.classifier.classes_]

    def features(self, texts: list[str]) -> sp.csr_matrix:
        """The stacked word and character TF-IDF features of normalised texts."""
        return sp.hstack(
            [self.word_vectorizer.transform(texts), self.char_vectorizer.transform(texts)],
            format="csr",
        )

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Intent probabilities, one row per text, columns in ``intents`` order."""
        return self.classifier.predict_proba(self.features([_features_text(t) for t in texts]))


def fingerprint(data_dir: Path = DATA_DIR) -> str:
    """A hash of the training files, the model code version and scikit-learn's version."""
    digest = hashlib.sha256(f"{MODEL_VERSION}:{sklearn.__version__}".encode())
    for path in sorted(data_dir.glob("*.yml")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def train(data: TrainingData, fingerprint: str = "") -> EmbeddedModel:
    """Fit the classifier on every example of ``data``."""
    if len(data.intents) < 2:
        raise NLUError("training data needs at least two intents")
    vocabulary = tuple(
        sorted({*data.lookups.get("service", ()), *data.lookups.get("community", ())})
    )
    tokenizer = _jieba()
    for word in vocabulary:
        tokenizer.add_word(word)
    texts = [_features_text(e.text) for e in data.examples]
    labels = [e.intent for e in data.examples]
    word_vectorizer = TfidfVectorizer(
        tokenizer=words, token_pattern=None, lowercase=False, ngram_range=(1, 2), sublinear_tf=True
    )
    char_vectorizer = TfidfVectorizer(
        analyzer="char", ngram_range=(1, 3), lowercase=False, sublinear_tf=True, min_df=1
    )
    features = sp.hstack(
        [word_vectorizer.fit_transform(texts), char_vectorizer.fit_transform(texts)], format="csr"
    )
    classifier = LogisticRegression(C=20.0, max_iter=2000)
    classifier.fit(features, labels)
    return EmbeddedModel(word_vectorizer, char_vectorizer, classifier, vocabulary, fingerprint)


def load_or_train(
    cache_dir: Path, data_dir: Path = DATA_DIR, *, force: bool = False
) -> EmbeddedModel:
    """The cached model for the current training data, training and caching it if needed."""
    key = fingerprint(data_dir)
    path = cache_dir / f"embedded-{key}.joblib"
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
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
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
        threshold: float = 0.3,
        margin: float = 0.0,
    ) -> None:
        self._model = model
        self._scorer = FastScorer(
            model.word_vectorizer, model.char_vectorizer, model.classifier, words
        )
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
        runner_up = ranking[1][1] if len(ranking) > 1 else 0.0
        if confidence < self._threshold or confidence - runner_up < self._margin:
            intent = FALLBACK_INTENT
        return Parse(text, intent, confidence, self._extractor.extract(text), ranking)

    async def parse(self, text: str) -> Parse:
        """Parse one message (see ``parse_sync``)."""
        return self.parse_sync(text)
