"""One contract suite over every ConversationStore: in process memory and in Redis.

Modelled on aiogram's tests/test_fsm/storage/test_storages.py: each test gets a store
maker of one implementation and asserts only what the protocol in handlers/state.py
promises, so the embedded default and Redis cannot drift apart.
"""

from __future__ import annotations

import asyncio
import copy
import uuid
from typing import Any

import pytest
from redis.crc import key_slot

from handlers.messages import Button, Inbound
from handlers.pipeline import turn_ticket
from handlers.state import ConversationState, ConversationStore
from integration.state import (
    KeyBuilder,
    MemoryConversationStore,
    RedisClient,
    RedisConversationStore,
    Ticket,
)
from integration.state.throttle import RedisThrottle
from integration.state.types import Timing
from tests.conftest import StoreMaker

NESTED: dict[str, Any] = {
    "flow": "complaint",
    "step": "photo",
    "slots": {
        "description": "楼道里的灯坏了三天了",
        "address": "幸福路12号3单元",
        "latitude": 31.2304,
        "longitude": 121.4737,
        "photos": [{"kind": "image", "ref": "media-1", "url": ""}],
        "editing": False,
        "phone": None,
    },
    "reprompts": 2,
    "buttons": [["提交", "submit"], ["修改", "edit"]],
}


def ticket(keys: KeyBuilder, message: str, chat: str = "chat-1", user: str = "") -> Ticket:
    """A fresh delivery of ``message`` in ``chat``."""
    tag = keys.conversation("webchat", chat)  # one hash slot, as the pipeline's tickets
    return Ticket(
        mark=keys.build("dedupe", "webchat", message, tag=tag),
        lock=keys.build("lock", "webchat", chat, tag=tag),
        rate=keys.build("rate", "webchat", user or chat, tag=tag),
        state=keys.state("webchat", chat),
        token=uuid.uuid4().hex,
    )


async def turn(
    store: ConversationStore,
    t: Ticket,
    state: dict[str, Any] | None = None,
    *,
    changed: bool = False,
) -> dict[str, Any] | None:
    """One whole turn; returns the state it found."""
    admission = await store.enter(t)
    assert admission is not None
    await store.leave(t, state, changed=changed)
    return admission.state


# --- dedupe claims -------------------------------------------------------------------


async def test_a_message_is_admitted_once(store: ConversationStore, keys: KeyBuilder) -> None:
    first = ticket(keys, "m1")
    admission = await store.enter(first)
    assert admission is not None and admission.count == 1 and admission.state is None
    assert await store.enter(ticket(keys, "m1")) is None  # in progress
    await store.leave(first, None, changed=False)
    assert await store.enter(ticket(keys, "m1")) is None  # settled
    assert await store.enter(ticket(keys, "m2")) is not None
    # Message ids are a conversation's own: another chat's m1 is another message (and a
    # web page cannot block someone else's message by sending its id first).
    assert await store.enter(ticket(keys, "m1", chat="elsewhere")) is not None


async def test_concurrent_deliveries_admit_exactly_one(
    store: ConversationStore, keys: KeyBuilder
) -> None:
    deliveries = [ticket(keys, "m1") for _ in range(10)]
    results = await asyncio.gather(*(store.enter(t) for t in deliveries))
    assert sum(r is not None for r in results) == 1


async def test_abort_lets_a_redelivery_in(store: ConversationStore, keys: KeyBuilder) -> None:
    first = ticket(keys, "m1")
    assert await store.enter(first) is not None
    await store.abort(first)
    assert await store.enter(ticket(keys, "m1")) is not None


async def test_abort_of_a_duplicate_keeps_the_original_claim(
    store: ConversationStore, keys: KeyBuilder
) -> None:
    first, again = ticket(keys, "m1"), ticket(keys, "m1")
    assert await store.enter(first) is not None
    assert await store.enter(again) is None
    await store.abort(again)  # not its claim to drop
    assert await store.enter(ticket(keys, "m1")) is None


async def test_unfinished_claim_lapses(make_store: StoreMaker, keys: KeyBuilder) -> None:
    store = make_store(Timing(processing_ttl=0.2, lock_ttl=0.2))
    assert await store.enter(ticket(keys, "m1", chat="dead-worker")) is not None
    await asyncio.sleep(0.3)
    assert await store.enter(ticket(keys, "m1", chat="fresh")) is not None


async def test_settled_claim_lapses_after_the_dedupe_window(
    make_store: StoreMaker, keys: KeyBuilder
) -> None:
    store = make_store(Timing(dedupe_ttl=0.2))
    await turn(store, ticket(keys, "m1"))
    assert await store.enter(ticket(keys, "m1")) is None
    await asyncio.sleep(0.3)
    assert await store.enter(ticket(keys, "m1")) is not None


# --- conversation locks --------------------------------------------------------------


async def test_turns_of_one_conversation_never_overlap(
    store: ConversationStore, keys: KeyBuilder
) -> None:
    log: list[str] = []

    async def run(name: str) -> None:
        t = ticket(keys, name)
        assert await store.enter(t) is not None
        log.append(f"in {name}")
        await asyncio.sleep(0.03)
        log.append(f"out {name}")
        await store.leave(t, None, changed=False)

    await asyncio.gather(*(run(f"m{i}") for i in range(4)))
    assert len(log) == 8
    for entered, left in zip(log[::2], log[1::2], strict=True):
        assert entered.replace("in", "out") == left


async def test_other_conversations_are_not_blocked(
    store: ConversationStore, keys: KeyBuilder
) -> None:
    held = ticket(keys, "m1", chat="busy")
    assert await store.enter(held) is not None
    other = ticket(keys, "m2", chat="free")
    async with asyncio.timeout(2):
        assert await store.enter(other) is not None
    await store.leave(other, None, changed=False)
    await store.leave(held, None, changed=False)


async def test_waiting_for_a_held_lock_times_out_and_leaves_it_held(
    make_store: StoreMaker, keys: KeyBuilder
) -> None:
    store = make_store(Timing(lock_wait=0.1))
    holder = ticket(keys, "m1")
    assert await store.enter(holder) is not None
    waiter = ticket(keys, "m2")
    with pytest.raises(TimeoutError):
        await store.enter(waiter)
    await store.abort(waiter)  # must not release the holder's lock
    with pytest.raises(TimeoutError):
        await store.enter(ticket(keys, "m3"))
    await store.leave(holder, None, changed=False)
    assert await store.enter(ticket(keys, "m4")) is not None


async def test_abort_releases_the_lock(store: ConversationStore, keys: KeyBuilder) -> None:
    failed = ticket(keys, "m1")
    assert await store.enter(failed) is not None
    await store.abort(failed)
    async with asyncio.timeout(2):
        assert await store.enter(ticket(keys, "m2")) is not None


async def test_waiter_gets_the_lock_when_the_holder_leaves(
    store: ConversationStore, keys: KeyBuilder
) -> None:
    holder = ticket(keys, "m1")
    assert await store.enter(holder) is not None
    waiter = asyncio.create_task(store.enter(ticket(keys, "m2")))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await store.leave(holder, {"flow": "complaint"}, changed=True)
    admission = await asyncio.wait_for(waiter, 5)
    assert admission is not None and admission.state == {"flow": "complaint"}


async def test_redis_lock_of_a_dead_worker_lapses(redis: Any, keys: KeyBuilder) -> None:
    store = RedisConversationStore(redis, Timing(lock_ttl=0.2, lock_wait=2))
    assert await store.enter(ticket(keys, "m1")) is not None  # the worker dies here
    async with asyncio.timeout(2):
        assert await store.enter(ticket(keys, "m2")) is not None


# --- rate counters -------------------------------------------------------------------


async def test_rate_counts_a_senders_messages(store: ConversationStore, keys: KeyBuilder) -> None:
    counts = []
    for i in range(3):
        t = ticket(keys, f"m{i}", user="alice")
        admission = await store.enter(t)
        assert admission is not None
        counts.append(admission.count)
        await store.leave(t, None, changed=False)
    other = await store.enter(ticket(keys, "m9", chat="c2", user="bob"))
    assert counts == [1, 2, 3] and other is not None and other.count == 1


async def test_rate_window_is_fixed_from_its_first_message(
    make_store: StoreMaker, keys: KeyBuilder
) -> None:
    window = 0.4 if isinstance(make_store(None), MemoryConversationStore) else 1.0
    store = make_store(Timing(rate_window=window))
    await turn(store, ticket(keys, "m1"))
    await asyncio.sleep(window * 0.6)
    second = ticket(keys, "m2")
    admission = await store.enter(second)
    assert admission is not None and admission.count == 2
    await store.leave(second, None, changed=False)
    await asyncio.sleep(window * 0.6)  # past the first message's window, not the second's
    third = await store.enter(ticket(keys, "m3"))
    assert third is not None and third.count == 1


# --- states --------------------------------------------------------------------------


async def test_state_round_trips_nested_data(store: ConversationStore, keys: KeyBuilder) -> None:
    assert await turn(store, ticket(keys, "m1"), copy.deepcopy(NESTED), changed=True) is None
    assert await turn(store, ticket(keys, "m2")) == NESTED


async def test_unchanged_state_is_kept_and_none_deletes(
    store: ConversationStore, keys: KeyBuilder
) -> None:
    await turn(store, ticket(keys, "m1"), {"flow": "complaint"}, changed=True)
    await turn(store, ticket(keys, "m2"), {"flow": "ignored"}, changed=False)
    assert await turn(store, ticket(keys, "m3"), None, changed=True) == {"flow": "complaint"}
    assert await turn(store, ticket(keys, "m4")) is None


async def test_states_of_different_chats_are_separate(
    store: ConversationStore, keys: KeyBuilder
) -> None:
    await turn(store, ticket(keys, "m1", chat="a"), {"flow": "complaint"}, changed=True)
    await turn(store, ticket(keys, "m2", chat="b"), {"flow": "status"}, changed=True)
    assert await turn(store, ticket(keys, "m3", chat="a")) == {"flow": "complaint"}
    assert await turn(store, ticket(keys, "m4", chat="b")) == {"flow": "status"}


async def test_saved_state_is_a_snapshot(store: ConversationStore, keys: KeyBuilder) -> None:
    state = copy.deepcopy(NESTED)
    await turn(store, ticket(keys, "m1"), state, changed=True)
    state["slots"]["photos"].append({"kind": "image", "ref": "late", "url": ""})
    loaded = await turn(store, ticket(keys, "m2"))
    assert loaded == NESTED
    assert loaded is not None
    loaded["slots"]["photos"].clear()
    assert await turn(store, ticket(keys, "m3")) == NESTED


async def test_state_lapses_after_its_ttl(make_store: StoreMaker, keys: KeyBuilder) -> None:
    store = make_store(Timing(state_ttl=0.3))
    await turn(store, ticket(keys, "m1"), {"flow": "complaint"}, changed=True)
    await asyncio.sleep(0.4)
    assert await turn(store, ticket(keys, "m2")) is None


async def test_conversation_state_round_trips_through_the_store(
    store: ConversationStore, keys: KeyBuilder
) -> None:
    state = _complaint_state()
    await turn(store, ticket(keys, "m1"), state.to_dict(), changed=True)
    restored = ConversationState.from_dict(await turn(store, ticket(keys, "m2")))
    assert restored == state
    assert restored.choice("2") == "edit"


# --- ConversationState ---------------------------------------------------------------


def _complaint_state() -> ConversationState:
    return ConversationState(
        flow="complaint",
        step="confirm",
        slots=copy.deepcopy(NESTED["slots"]),
        reprompts=1,
        buttons=[("提交", "submit"), ("修改", "edit"), ("取消", "cancel")],
    )


def test_from_dict_of_nothing_is_idle() -> None:
    assert ConversationState.from_dict(None) == ConversationState()
    assert ConversationState.from_dict({}).idle


def test_from_dict_ignores_unknown_keys() -> None:
    state = ConversationState.from_dict({"flow": "status", "step": "ask", "legacy": 1})

    assert (state.flow, state.step, state.slots, state.buttons) == ("status", "ask", {}, [])


@pytest.mark.parametrize(
    ("text", "payload"),
    [
        ("提交", "submit"),
        ("修改", "edit"),
        ("1", "submit"),
        ("3", "cancel"),
        (" 2 ", "edit"),
        ("提交。", "submit"),
        ("2！", "edit"),
        ("0", None),
        ("4", None),
        ("-1", None),
        ("提交吧", None),
        ("submit", None),
        ("", None),
        ("好的", None),
    ],
)
def test_choice_resolves_a_label_or_number(text: str, payload: str | None) -> None:
    assert _complaint_state().choice(text) == payload


def test_choice_without_offered_buttons_is_none() -> None:
    state = ConversationState(flow="complaint", step="what")

    assert state.choice("1") is None
    assert state.choice("提交") is None


def test_offer_replaces_and_clears_the_buttons() -> None:
    state = _complaint_state()

    state.offer((Button("跳过", "skip"),))
    assert state.choice("1") == "skip"
    assert state.choice("提交") is None

    state.offer(())
    assert state.buttons == []
    assert state.choice("1") is None


def test_a_turns_keys_share_one_redis_cluster_hash_slot() -> None:
    """Its scripts touch the dedupe mark, lock, rate counter and state together."""
    keys = KeyBuilder("yimen")
    turn = Inbound("wechat", "o-user", "o-user", "msg-1", "路灯不亮了")
    ticket = turn_ticket(keys, turn)
    slots = {key_slot(k.encode()) for k in (ticket.mark, ticket.lock, ticket.rate, ticket.state)}
    assert len(slots) == 1
    other = turn_ticket(keys, Inbound("wechat", "o-other", "o-other", "msg-1", "你好"))
    assert other.mark != ticket.mark  # the same message id in another chat is another key
    assert ticket.state == keys.state("wechat", "o-user")
    with pytest.raises(ValueError, match="braces"):
        KeyBuilder("{yimen}")


async def test_the_throttle_counts_on_a_redis_cluster(
    redis_cluster: RedisClient, keys: KeyBuilder
) -> None:
    """The web chat's and uploads' per-address counters, with several workers on a cluster."""
    throttle = RedisThrottle(redis_cluster)
    key = keys.build("webchat-address", "webchat", "198.51.100.7")
    try:
        assert [await throttle.hit(key, 5.0) for _ in range(3)] == [1, 2, 3]
        assert await throttle.hit(key, 5.0, amount=4) == 7  # an upload's bytes, say
        assert 0 < await redis_cluster.pttl(key) <= 5000
    finally:
        await redis_cluster.delete(key)
