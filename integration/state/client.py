"""The Redis client: one server (or Sentinel-managed primary), or a Redis Cluster.

Everything that talks to Redis takes a ``RedisClient``. On a cluster, the keys one
script touches share a hash tag (integration.state.keys), and the client routes each
command and script by its keys.
"""

from __future__ import annotations

from redis.asyncio import Redis, RedisCluster

RedisClient = Redis | RedisCluster


def open_redis(url: str, *, cluster: bool = False) -> RedisClient:
    """A client for ``url`` (any node's address, for a cluster); connects on first use."""
    return RedisCluster.from_url(url) if cluster else Redis.from_url(url)
