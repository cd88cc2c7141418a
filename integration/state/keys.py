"""One builder for every shared-state key, like aiogram's DefaultKeyBuilder."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyBuilder:
    """Builds keys as ``{prefix}:{part}:{channel}:{id}``.

    Keys that one script touches together (a turn's dedupe mark, lock, rate counter and
    state) are built with the same ``tag``, which goes in braces: Redis Cluster places
    keys by the text in their first pair of braces, so they land in one hash slot.
    """

    prefix: str = "yimen"

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:
            raise ValueError("the Redis key prefix may not contain braces (hash tags)")

    def build(self, part: str, channel: str, ident: str, *, tag: str | None = None) -> str:
        """The key of ``part`` (dedupe, lock, rate, state...) for one channel identity."""
        if tag is None:
            return f"{self.prefix}:{part}:{channel}:{ident}"
        return f"{self.prefix}:{part}:{{{tag}}}:{channel}:{ident}"

    @staticmethod
    def conversation(channel: str, chat_id: str) -> str:
        """The tag of one conversation's keys."""
        return f"{channel}:{chat_id}"

    def state(self, channel: str, chat_id: str) -> str:
        """The key of one conversation's state (the pipeline's, and what forgetting deletes)."""
        return self.build("state", channel, chat_id, tag=self.conversation(channel, chat_id))
