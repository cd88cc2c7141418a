"""Temperature scaling of the embedded classifier, fitted out of fold.

The classifier's probabilities are divided by a temperature before the softmax. It is
fitted on out-of-fold logits: each of ``CALIBRATION_FOLDS`` stratified folds is scored
by a classifier that never saw it, so the temperature reflects how sure the model
should be on new messages, not on its own training data. The temperature depends on
the message's length (``temperature_at``): TF-IDF rows are L2-normalised, so a long
letter's raw scores are flatter than a short message's even when the model is as
often right.

The folds are independent fits: half of them run in a worker process (loky) while the
training process fits the address CRF and the other half.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from functools import partial

import numpy as np
import scipy.sparse as sp
from joblib.externals import loky
from scipy.optimize import minimize
from scipy.special import log_softmax
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

CALIBRATION_FOLDS = 4
# The temperature is exp(a + b * log(length / REFERENCE_LENGTH)), length in characters.
REFERENCE_LENGTH = 20

# A training step's name, reported as it finishes (for a progress bar).
Progress = Callable[[str], None]


def temperature_at(temperature: float, slope: float, length: int) -> float:
    """``temperature`` at the reference length, scaled by (length / reference) ** slope."""
    return float(temperature * (max(length, 1) / REFERENCE_LENGTH) ** slope)


# Processes that fit calibration folds beside the main one, which fits the address CRF
# and the other half of the folds meanwhile: these machines have two cores.
TRAINING_WORKERS = 1


@contextlib.contextmanager
def training_pool() -> Iterator[Executor | None]:
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


def warm_up() -> None:
    """Nothing: loading this module (and scikit-learn) is the work."""


# A fold: its held-out rows, and their logits from a worker or to be computed here.
Fold = tuple[np.ndarray, "Future[np.ndarray] | Callable[[], np.ndarray]"]


def calibration_folds(
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
    here by ``gather``, so this returns at once.
    """
    _, counts = np.unique(labels, return_counts=True)
    number = min(CALIBRATION_FOLDS, int(counts.min()))
    if number < 2:
        return []
    splitter = StratifiedKFold(number, shuffle=True, random_state=0)
    folds: list[Fold] = []
    for index, (train_rows, test_rows) in enumerate(splitter.split(features, labels)):
        job = (features[train_rows], labels[train_rows], features[test_rows], start)
        if pool is not None and index % 2 == 0:
            folds.append((test_rows, pool.submit(fold_logits, *job)))
        else:
            folds.append((test_rows, partial(fold_logits, *job)))
    return folds


def fold_logits(
    train_features: sp.csr_matrix,
    train_labels: np.ndarray,
    test_features: sp.csr_matrix,
    start: LogisticRegression,
) -> np.ndarray:
    """One calibration fold: fit a classifier like ``start``, from its weights, on the
    training rows and score the held-out ones (module-level, so a worker process can
    run it)."""
    with threadpool_limits(1):
        fold = clone(start).set_params(warm_start=True)
        fold.coef_, fold.intercept_ = start.coef_.copy(), start.intercept_.copy()
        fold.fit(train_features, train_labels)
        return np.asarray(fold.decision_function(test_features))


def gather(folds: list[Fold], rows: int, classes: int, progress: Progress) -> np.ndarray | None:
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
