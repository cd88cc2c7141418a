"""A linear-chain CRF decoder that reads CRFsuite's model file.

The address tagger (``nlu.addresses``) is trained by CRFsuite; at parse time this
decoder tags with the same weights and the same Viterbi search, without pycrfsuite's
per-call conversion of every feature to C++ strings (tests/test_nlu_fast_paths.py holds
the two to the same tags).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from itertools import repeat

import numpy as np


class Decoder:
    """CRFsuite's tagging of a linear-chain CRF, from the model's weights read once.

    pycrfsuite's ``Tagger.tag`` turns every feature dict into C++ strings and looks each
    up per call, which costs more than the tagging. Here each feature's weights are
    looked up by its name and value in dicts built once, the state scores are added up
    in CRFsuite's order (feature by feature, from 0), and the Viterbi search is
    CRFsuite's (``crf1dc_viterbi``: the first of equal scores wins). Weights are read
    from the model file's bytes, not from pycrfsuite's ``info()``, which prints them
    with six decimals.
    """

    def __init__(self, model: bytes, feature_names: Sequence[str]) -> None:
        labels, state, transitions = read_model(model)
        self._names = tuple(feature_names)
        self.labels = labels
        size = len(labels)
        rows: list[list[float]] = [[0.0] * size]  # row 0: an attribute the model lacks
        self._index: dict[str, dict[str, int]] = {}
        for (attribute, label), weight in state.items():
            name, colon, value = attribute.partition(":")
            if not colon:
                raise ValueError(f"attribute without a value: {attribute!r}")
            table = self._index.setdefault(name, {})
            row = table.get(value)
            if row is None:
                row = table[value] = len(rows)
                rows.append([0.0] * size)
            rows[row][label] = weight
        self._weights = np.array(rows, dtype=np.float64)
        self._transitions = [[0.0] * size for _ in range(size)]
        for (source, target), weight in transitions.items():
            self._transitions[source][target] = weight

    def tag(self, columns: Sequence[Sequence[str]]) -> list[str]:
        """The labels of a sequence given its features: ``columns[k][i]`` is the value of
        feature ``feature_names[k]`` at position ``i``."""
        length = len(columns[0]) if columns else 0
        if not length:
            return []
        ids: list[int] = []
        used = 0
        for name, values in zip(self._names, columns, strict=True):
            table = self._index.get(name)
            if table is not None:
                ids += map(table.get, values, repeat(0))
                used += 1
        size = len(self.labels)
        if used:
            scores = self._weights[ids].reshape(used, length, size).sum(axis=0).tolist()
        else:
            scores = [[0.0] * size for _ in range(length)]
        return [self.labels[i] for i in viterbi(scores, self._transitions)]


def viterbi(scores: list[list[float]], transitions: list[list[float]]) -> list[int]:
    """The best label path, as CRFsuite's ``crf1dc_viterbi`` finds it.

    ``scores[t][j]`` is label j's state score at t, ``transitions[i][j]`` that of i → j.
    Of equal scores the lowest label wins, in each step and at the end.
    """
    size = len(transitions)
    if size == 3:
        return _viterbi3(scores, transitions)
    labels = range(size)
    current = list(scores[0])
    back: list[list[int]] = []
    for state in scores[1:]:
        previous = current
        current = []
        pointers = []
        for j in labels:
            best = -np.inf
            arg = 0
            for i in labels:
                score = previous[i] + transitions[i][j]
                if best < score:
                    best, arg = score, i
            pointers.append(arg)
            current.append(best + state[j])
        back.append(pointers)
    best = -np.inf
    last = 0
    for i in labels:
        if best < current[i]:
            best, last = current[i], i
    path = [last]
    for pointers in reversed(back):
        last = pointers[last]
        path.append(last)
    path.reverse()
    return path


def _viterbi3(scores: list[list[float]], transitions: list[list[float]]) -> list[int]:
    """``viterbi`` for three labels (B, I, O), unrolled: the same comparisons in order."""
    (t00, t01, t02), (t10, t11, t12), (t20, t21, t22) = transitions
    p0, p1, p2 = scores[0]
    back: list[tuple[int, int, int]] = []
    for s0, s1, s2 in scores[1:]:
        best, k0 = p0 + t00, 0
        if best < (x := p1 + t10):
            best, k0 = x, 1
        if best < (x := p2 + t20):
            best, k0 = x, 2
        c0 = best + s0
        best, k1 = p0 + t01, 0
        if best < (x := p1 + t11):
            best, k1 = x, 1
        if best < (x := p2 + t21):
            best, k1 = x, 2
        c1 = best + s1
        best, k2 = p0 + t02, 0
        if best < (x := p1 + t12):
            best, k2 = x, 1
        if best < (x := p2 + t22):
            best, k2 = x, 2
        c2 = best + s2
        back.append((k0, k1, k2))
        p0, p1, p2 = c0, c1, c2
    last, best = 0, p0
    if best < p1:
        last, best = 1, p1
    if best < p2:
        last = 2
    path = [last]
    for pointers in reversed(back):
        last = pointers[last]
        path.append(last)
    path.reverse()
    return path


def read_model(
    model: bytes,
) -> tuple[list[str], dict[tuple[str, int], float], dict[tuple[int, int], float]]:
    """A CRFsuite model file's labels, state weights ((attribute, label id) → weight) and
    transition weights ((label id, label id) → weight), as CRFsuite stores them.

    The file is CRFsuite's "lCRF" format: a header of offsets, the features as (type,
    source, target, double weight), and the label and attribute names in CQDB chunks,
    whose backward array gives each id's string.
    """
    if model[:4] != b"lCRF" or model[8:12] != b"FOMC":
        raise ValueError("not a CRFsuite CRF1d model")
    offsets = struct.unpack_from("<IIIII", model, 28)
    features_at, labels_at, attributes_at = offsets[:3]
    labels = _quarks(model, labels_at)
    attributes = _quarks(model, attributes_at)
    if model[features_at : features_at + 4] != b"FEAT":
        raise ValueError("CRFsuite model without a feature chunk")
    (count,) = struct.unpack_from("<I", model, features_at + 8)
    state: dict[tuple[str, int], float] = {}
    transitions: dict[tuple[int, int], float] = {}
    for kind, source, target, weight in struct.iter_unpack(
        "<IIId", model[features_at + 12 : features_at + 12 + 20 * count]
    ):
        if kind == 0:
            state[attributes[source], target] = weight
        elif kind == 1:
            transitions[source, target] = weight
        else:
            raise ValueError(f"unknown CRFsuite feature type {kind}")
    return labels, state, transitions


def _quarks(model: bytes, at: int) -> list[str]:
    """The strings of a CQDB chunk, by id."""
    if model[at : at + 4] != b"CQDB":
        raise ValueError("CRFsuite model without its CQDB chunk")
    count, backward = struct.unpack_from("<II", model, at + 16)
    out = []
    for number, offset in enumerate(struct.unpack_from(f"<{count}I", model, at + backward)):
        record = at + offset
        key, size = struct.unpack_from("<II", model, record)
        if key != number:
            raise ValueError("CRFsuite model with an unordered CQDB chunk")
        out.append(model[record + 8 : record + 8 + size - 1].decode("utf-8"))
    return out
