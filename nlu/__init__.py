"""Natural-language understanding: intents and entities for resident messages.

Every backend (the embedded classifier here, a Rasa server later) implements
``Interpreter`` and predicts exactly the intents of docs/intents (the NLU contract).
"""

from nlu.types import Entity, Interpreter, NLUError, Parse

__all__ = ["Entity", "Interpreter", "NLUError", "Parse"]
