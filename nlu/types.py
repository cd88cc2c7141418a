"""The NLU result types and the Interpreter protocol every backend implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

FALLBACK_INTENT = "nlu_fallback"
# Not a model intent: a button pressed whose payload no active flow expects.
BUTTON_INTENT = "button"
# Below this confidence, or with the runner-up closer than the margin, a parse is
# ``nlu_fallback`` and the dialogue asks again. Chosen on the embedded model's calibrated,
# out-of-fold probabilities over the training data (README, "Understanding messages"):
# together they send about 3% of messages back, catching about a fifth of the would-be
# mistakes for about 1% of the right answers.
DEFAULT_THRESHOLD = 0.5
DEFAULT_MARGIN = 0.05
# The extractor name of a time entity that is a period (每晚, 三天了): a description of
# the problem, not a time to fill a slot with.
PERIOD = "period"


def unsure(ranking: tuple[tuple[str, float], ...], threshold: float, margin: float) -> bool:
    """Whether a ranking (best first) is too weak or too close to act on."""
    if not ranking:
        return True
    best = ranking[0][1]
    runner_up = ranking[1][1] if len(ranking) > 1 else 0.0
    return best < threshold or best - runner_up < margin


@dataclass(frozen=True, slots=True)
class Entity:
    """An entity span, shaped like Rasa's: character offsets into the parsed text."""

    entity: str
    start: int
    end: int
    value: str
    extractor: str


@dataclass(frozen=True, slots=True)
class Parse:
    """What an interpreter understood of one message."""

    text: str
    intent: str
    confidence: float
    entities: tuple[Entity, ...] = ()
    ranking: tuple[tuple[str, float], ...] = field(default=())

    def first(self, entity: str) -> Entity | None:
        """The first entity of the given type, if any."""
        return next((e for e in self.entities if e.entity == entity), None)


class Interpreter(Protocol):
    """Parses resident text into an intent and entities."""

    async def parse(self, text: str) -> Parse:
        """Understand one message."""
        ...


class NLUError(Exception):
    """Root of the NLU package's errors."""


class TrainingDataError(NLUError):
    """The training data could not be read; ``source`` names the file."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason
