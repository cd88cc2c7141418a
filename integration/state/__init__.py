"""Shared conversation state and message admission: in process memory or in Redis.

The memory implementations serve a single worker on a fresh machine; the Redis ones
let several workers share dedupe marks, locks, rate limits and conversation state.
"""

from integration.state.keys import KeyBuilder
from integration.state.memory import MemoryConversationStore, MemoryGate
from integration.state.redis import RedisConversationStore, RedisGate

__all__ = [
    "KeyBuilder",
    "MemoryConversationStore",
    "MemoryGate",
    "RedisConversationStore",
    "RedisGate",
]
