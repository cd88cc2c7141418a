"""Prometheus metrics, one set per process, served at /metrics (bots.app).

Counters and histograms are updated where things happen (the pipeline, the NLU call,
the dispatch worker, the push pump); gauges that describe stored queues (the outbox)
are read from the database when /metrics is scraped, so they are right whichever
process did the work. Labels are bounded sets (channels, intents, error types,
failure kinds), never resident input.

Under `yimen run --workers N` (bots.workers) PROMETHEUS_MULTIPROC_DIR is set: every
worker writes its samples there and /metrics, whichever worker answers, adds them up.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

MESSAGES = Counter(
    "yimen_messages_total",
    "Messages from residents, by channel and by the intent they were understood as "
    "(nlu_fallback: nothing understood them; nlu_fallback:taken: the model could not "
    "place them but a person, the active step or a rule answered them)",
    ["channel", "intent"],
)
NLU_SECONDS = Histogram(
    "yimen_nlu_seconds",
    "Time to understand one message (the configured backend, fallback included)",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
NLU_FALLBACKS = Counter(
    "yimen_nlu_fallback_total",
    "Messages the model could not place (intent nlu_fallback), whether or not a rule or "
    "the active step then answered them (see yimen_messages_total for which)",
)
DISPATCH_ERRORS = Counter(
    "yimen_dispatch_errors_total",
    "Failed attempts to forward a case or a reopening to the dispatch platform",
    ["platform", "error"],
)
OUTBOX_DEPTH = Gauge(
    "yimen_outbox_depth",
    "Outbox jobs by state (pending: waiting to reach the platform; dead: for staff)",
    ["state"],
    multiprocess_mode="livemostrecent",  # the database's answer, whichever worker read it
)
OUTBOX_AGE = Gauge(
    "yimen_outbox_oldest_pending_seconds",
    "Age of the oldest job still waiting to reach the dispatch platform (0: none)",
    multiprocess_mode="livemostrecent",
)
HANDOFF_WAITING = Gauge(
    "yimen_handoff_waiting",
    "Conversations handed to a person that nobody has claimed yet",
    multiprocess_mode="livemostrecent",
)
HANDOFF_OLDEST = Gauge(
    "yimen_handoff_oldest_waiting_seconds",
    "How long the longest-waiting unclaimed handoff has waited (0: none)",
    multiprocess_mode="livemostrecent",
)
HANDOFF_WAIT = Histogram(
    "yimen_handoff_wait_seconds",
    "Time from a handoff to a staff member claiming it",
    buckets=(30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 16 * 3600, 64 * 3600),
)
PUSH_FAILURES = Counter(
    "yimen_push_failures_total",
    "Status pushes that could not be delivered, by channel and by what happens next",
    ["channel", "outcome"],  # outcome: offline (kept), retry (kept), failed (given up)
)


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric (of every worker), and its content type."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST
