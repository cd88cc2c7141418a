"""`yimen nlu cv`: k-fold cross-validation of intent classifiers on the training data.

Candidates, each refitted on every fold's training part (vectorizers included) and
scored on its held-out part by macro-F1 of the top intent (no fallback rule: the
question is which classifier ranks intents best; calibration does not change the top
intent):

- ``embedded``: the current model's classifier — jieba word, character and pinyin TF-IDF
  blocks into one logistic regression (``nlu.embedded``);
- ``char NB-SVM``: binary character 1–3-grams scaled by naive Bayes log-count ratios,
  one linear SVM per intent against the rest (Wang & Manning, 2012);
- ``TF-IDF + LinearSVC``: the current model's three TF-IDF blocks into a linear SVM;
- ``ensemble``: the mean of the embedded model's probabilities and the NB-SVM's
  (a softmax of its margins).

Only ``nlu/data/*.yml`` is read: the test sets are never cross-validated on.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.special import softmax
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

from nlu.embedded import _classifier, _features_text, _vectorizers, domain_vocabulary
from nlu.training_data import Example, TrainingData

# Fitted on a fold's texts and labels; scores texts: one row per text, one column per
# intent in sorted order, larger is likelier (probabilities for the ensemble's members).
Scorer = Callable[[list[str]], np.ndarray]
Fit = Callable[[list[str], np.ndarray], Scorer]


def _tfidf(texts: list[str]) -> tuple[sp.csr_matrix, Callable[[list[str]], sp.csr_matrix]]:
    """The current model's TF-IDF blocks fitted on ``texts``: their features, and the
    transform of new texts."""
    vectorizers = _vectorizers()
    features = sp.hstack([v.fit_transform(texts) for v in vectorizers], format="csr")
    return features, lambda batch: sp.hstack([v.transform(batch) for v in vectorizers], "csr")


def _embedded(texts: list[str], labels: np.ndarray) -> Scorer:
    features, transform = _tfidf(texts)
    model = _classifier().fit(features, labels)
    return lambda batch: np.asarray(model.predict_proba(transform(batch)))


def _tfidf_svc(texts: list[str], labels: np.ndarray) -> Scorer:
    features, transform = _tfidf(texts)
    model = LinearSVC(C=1.0).fit(features, labels)
    return lambda batch: np.asarray(softmax(model.decision_function(transform(batch)), axis=1))


NB_ALPHA = 1.0  # Laplace smoothing of the naive Bayes counts


def _nbsvm(texts: list[str], labels: np.ndarray) -> Scorer:
    vectorizer = CountVectorizer(analyzer="char", ngram_range=(1, 3), lowercase=False, binary=True)
    features = sp.csr_matrix(vectorizer.fit_transform(texts), dtype=np.float64)
    ratios, models = [], []
    for intent in np.unique(labels):
        mine = np.asarray(labels == intent)
        p = np.asarray(features[mine].sum(axis=0)).ravel() + NB_ALPHA
        q = np.asarray(features[~mine].sum(axis=0)).ravel() + NB_ALPHA
        ratio = np.log((p / p.sum()) / (q / q.sum()))
        ratios.append(sp.diags(ratio))
        models.append(LinearSVC(C=0.1).fit(features @ ratios[-1], mine))

    def score(batch: list[str]) -> np.ndarray:
        counts = sp.csr_matrix(vectorizer.transform(batch), dtype=np.float64)
        margins = np.column_stack(
            [m.decision_function(counts @ r) for m, r in zip(models, ratios, strict=True)]
        )
        return np.asarray(softmax(margins, axis=1))

    return score


# The candidates fitted on each fold, by name; the ensemble averages fitted members.
CANDIDATES: dict[str, Fit] = {
    "embedded": _embedded,
    "char NB-SVM": _nbsvm,
    "TF-IDF + LinearSVC": _tfidf_svc,
}
ENSEMBLES: dict[str, tuple[str, ...]] = {
    "ensemble (embedded + NB-SVM)": ("embedded", "char NB-SVM")
}
CURRENT = "embedded"


@dataclass(frozen=True, slots=True)
class Score:
    """One candidate's macro-F1 on every fold."""

    candidate: str
    folds: tuple[float, ...]

    @property
    def mean(self) -> float:
        """The mean over folds."""
        return statistics.fmean(self.folds)

    @property
    def sd(self) -> float:
        """The sample standard deviation over folds."""
        return statistics.stdev(self.folds) if len(self.folds) > 1 else 0.0


def subsample(examples: Sequence[Example], per_intent: int) -> list[Example]:
    """The first ``per_intent`` examples of each intent, in file order."""
    taken: dict[str, int] = {}
    chosen = []
    for example in examples:
        if taken.get(example.intent, 0) < per_intent:
            taken[example.intent] = taken.get(example.intent, 0) + 1
            chosen.append(example)
    return chosen


def cross_validate(
    data: TrainingData,
    folds: int = 5,
    *,
    examples: Sequence[Example] | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[Score]:
    """Macro-F1 of every candidate on ``folds`` stratified folds of ``examples``
    (by default all of ``data``'s); ``progress`` hears of each candidate fitted on a fold
    (``folds * len(CANDIDATES)`` in all). The rows come in ``CANDIDATES`` order, then the
    ensembles."""
    domain_vocabulary(data)  # jieba reads the lookups as words, as in training
    chosen = list(data.examples if examples is None else examples)
    texts = np.array([_features_text(e.text) for e in chosen], dtype=object)
    labels = np.array([e.intent for e in chosen])
    intents = np.unique(labels)
    names = [*CANDIDATES, *ENSEMBLES]
    scores: dict[str, list[float]] = {name: [] for name in names}
    splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    # One BLAS thread, as in training: the machine is shared.
    with threadpool_limits(1):
        for train_rows, test_rows in splitter.split(texts, labels):
            train_labels = labels[train_rows]
            if len(np.unique(train_labels)) != len(intents):
                raise ValueError("every intent needs an example in every fold's training part")
            held_out = list(texts[test_rows])
            outputs = {}
            for name, fit in CANDIDATES.items():
                outputs[name] = fit(list(texts[train_rows]), train_labels)(held_out)
                if progress is not None:
                    progress(1)
            for name, members in ENSEMBLES.items():
                outputs[name] = np.mean([outputs[m] for m in members], axis=0)
            for name in names:
                predicted = intents[outputs[name].argmax(axis=1)]
                scores[name].append(
                    float(f1_score(labels[test_rows], predicted, average="macro", zero_division=0))
                )
    return [Score(name, tuple(scores[name])) for name in names]


def score_table(scores: Sequence[Score]) -> str:
    """Macro-F1 mean ± sd per candidate, best first, with its difference to the current."""
    current = next(s for s in scores if s.candidate == CURRENT).mean
    width = max(len(s.candidate) for s in scores) + 2
    folds = len(scores[0].folds)
    lines = [f"{'candidate':<{width}}{'macro-F1 (' + str(folds) + '-fold)':>22}{'vs current':>12}"]
    for s in sorted(scores, key=lambda s: s.mean, reverse=True):
        lines.append(
            f"{s.candidate:<{width}}{f'{s.mean:.4f} ± {s.sd:.4f}':>22}{s.mean - current:>+12.4f}"
        )
    return "\n".join(lines)


def choose(scores: Sequence[Score]) -> Score:
    """The candidate to keep: the best mean, unless it beats the current model by less
    than the current model's own fold-to-fold standard deviation (then the current)."""
    best = max(scores, key=lambda s: s.mean)
    current = next(s for s in scores if s.candidate == CURRENT)
    return best if best.mean - current.mean > current.sd else current
