"""Conversation state and message admission: in process memory or in Redis.

The memory implementation serves a single worker on a fresh machine; the Redis one
lets several workers share dedupe claims, locks, rate limits and conversation state.
"""

from integration.state.client import RedisClient, open_redis
from integration.state.keys import KeyBuilder
from integration.state.memory import MemoryConversationStore
from integration.state.redis import RedisConversationStore
from integration.state.types import Admission, Ticket, Timing

__all__ = [
    "Admission",
    "KeyBuilder",
    "MemoryConversationStore",
    "RedisClient",
    "RedisConversationStore",
    "Ticket",
    "Timing",
    "open_redis",
]
