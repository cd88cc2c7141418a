"""One contract suite over every Gate and ConversationStore: in memory and in Redis.

Modelled on aiogram's tests/test_fsm/storage/test_storages.py: each test receives the
``shared_state`` pair of one implementation and asserts only what the Protocols in
handlers/state.py promise, so the embedded default and Redis cannot drift apart.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from handlers.messages import Button
from handlers.state import ConversationState, ConversationStore, Gate
from integration.state import KeyBuilder, MemoryGate

SharedState = tuple[Gate, ConversationStore]

# Long enough that no test outlives it; short TTLs are given where a test needs expiry.
TTL = 60.0


def _window(gate: Gate) -> float:
    """The shortest rate window an implementation can honour (Redis EXPIRE is whole seconds)."""
    return 0.3 if isinstance(gate, MemoryGate) else 1.0


# --- claim, settle, forget ---------------------------------------------------------------


async def test_claim_succeeds_once_per_key(shared_state: SharedState, keys: KeyBuilder) -> None:
    gate, _ = shared_state
    key = keys.build("dedupe", "webchat", "m1")

    assert await gate.claim(key, TTL) is True
    assert await gate.claim(key, TTL) is False
    assert await gate.claim(key, TTL) is False


async def test_claims_of_different_keys_are_independent(
    shared_state: SharedState, keys: KeyBuilder
) -> None:
    gate, _ = shared_state

    assert await gate.claim(keys.build("dedupe", "webchat", "m1"), TTL) is True
    assert await gate.claim(keys.build("dedupe", "webchat", "m2"), TTL) is True
    assert await gate.claim(keys.build("dedupe", "telegram", "m1"), TTL) is True


async def test_concurrent_claims_admit_exactly_one(
    shared_state: SharedState, keys: KeyBuilder
) -> None:
    gate, _ = shared_state
    key = keys.build("dedupe", "wechat", "redelivered")

    results = await asyncio.gather(*(gate.claim(key, TTL) for _ in range(10)))

    assert results.count(True) == 1


async def test_settle_keeps_the_key_claimed(shared_state: SharedState, keys: KeyBuilder) -> None:
    gate, _ = shared_state
    key = keys.build("dedupe", "webchat", "m1")
    assert await gate.claim(key, 0.2)

    await gate.settle(key, TTL)
    await asyncio.sleep(0.3)  # past the processing TTL, within the settled one

    assert await gate.claim(key, TTL) is False


async def test_forget_lets_the_key_be_claimed_again(
    shared_state: SharedState, keys: KeyBuilder
) -> None:
    gate, _ = shared_state
    key = keys.build("dedupe", "webchat", "m1")
    assert await gate.claim(key, TTL)

    await gate.forget(key)

    assert await gate.claim(key, TTL) is True
    assert await gate.claim(key, TTL) is False


async def test_forget_of_an_unknown_key_is_harmless(
    shared_state: SharedState, keys: KeyBuilder
) -> None:
    gate, _ = shared_state
    key = keys.build("dedupe", "webchat", "never-claimed")

    await gate.forget(key)

    assert await gate.claim(key, TTL) is True


async def test_claim_lapses_after_its_ttl(shared_state: SharedState, keys: KeyBuilder) -> None:
    gate, _ = shared_state
    key = keys.build("dedupe", "webchat", "m1")
    assert await gate.claim(key, 0.2)
    assert await gate.claim(key, 0.2) is False

    await asyncio.sleep(0.3)

    assert await gate.claim(key, TTL) is True


# --- lock --------------------------------------------------------------------------------


async def test_lock_holders_never_overlap(shared_state: SharedState, keys: KeyBuilder) -> None:
    gate, _ = shared_state
    key = keys.build("lock", "webchat", "chat-1")
    events: list[tuple[str, str]] = []

    async def worker(name: str) -> None:
        for _ in range(3):
            async with gate.lock(key, wait=5):
                events.append(("enter", name))
                await asyncio.sleep(0.02)
                events.append(("exit", name))
            await asyncio.sleep(0)  # give the other worker a chance at the lock

    await asyncio.gather(worker("a"), worker("b"))

    assert len(events) == 12
    assert {name for _, name in events} == {"a", "b"}
    for entered, exited in zip(events[::2], events[1::2], strict=True):
        assert entered[0] == "enter"
        assert exited == ("exit", entered[1])


async def test_locks_of_different_keys_do_not_block_each_other(
    shared_state: SharedState, keys: KeyBuilder
) -> None:
    gate, _ = shared_state
    first = keys.build("lock", "webchat", "chat-1")
    second = keys.build("lock", "webchat", "chat-2")

    async with gate.lock(first, wait=1):
        async with gate.lock(second, wait=0.2):
            held_both = True

    assert held_both


async def test_lock_waiter_times_out_while_the_lock_is_held(
    shared_state: SharedState, keys: KeyBuilder
) -> None:
    gate, _ = shared_state
    key = keys.build("lock", "webchat", "chat-1")
    entered = False

    async with gate.lock(key, wait=1):
        with pytest.raises(TimeoutError):
            async with gate.lock(key, wait=0.2):
                entered = True

    assert not entered
    # A timed-out waiter leaves nothing behind: the lock is free once its holder is gone.
    async with gate.lock(key, wait=0.2):
        pass


async def test_lock_is_released_after_an_exception(
    shared_state: SharedState, keys: KeyBuilder
) -> None:
    gate, _ = shared_state
    key = keys.build("lock", "webchat", "chat-1")

    with pytest.raises(RuntimeError, match="boom"):
        async with gate.lock(key, wait=1):
            raise RuntimeError("boom")

    async with gate.lock(key, wait=0.2):
        reacquired = True
    assert reacquired


async def test_lock_waiter_gets_the_lock_when_the_holder_leaves(
    shared_state: SharedState, keys: KeyBuilder
) -> None:
    gate, _ = shared_state
    key = keys.build("lock", "webchat", "chat-1")
    order: list[str] = []
    holding = asyncio.Event()

    async def holder() -> None:
        async with gate.lock(key, wait=1):
            holding.set()
            await asyncio.sleep(0.1)
            order.append("holder done")

    async def waiter() -> None:
        await holding.wait()
        async with gate.lock(key, wait=2):
            order.append("waiter in")

    await asyncio.gather(holder(), waiter())

    assert order == ["holder done", "waiter in"]


# --- hit ---------------------------------------------------------------------------------


async def test_hit_counts_within_a_window(shared_state: SharedState, keys: KeyBuilder) -> None:
    gate, _ = shared_state
    key = keys.build("rate", "webchat", "u1")

    counts = [await gate.hit(key, TTL) for _ in range(3)]

    assert counts == [1, 2, 3]


async def test_hit_counts_each_key_separately(shared_state: SharedState, keys: KeyBuilder) -> None:
    gate, _ = shared_state
    first = keys.build("rate", "webchat", "u1")
    second = keys.build("rate", "webchat", "u2")

    await gate.hit(first, TTL)
    await gate.hit(first, TTL)

    assert await gate.hit(second, TTL) == 1
    assert await gate.hit(first, TTL) == 3


async def test_hit_window_is_fixed_from_its_first_hit(
    shared_state: SharedState, keys: KeyBuilder
) -> None:
    """A later hit must not push the window's end back (a fixed, not a sliding, window)."""
    gate, _ = shared_state
    key = keys.build("rate", "webchat", "u1")
    window = _window(gate)

    assert await gate.hit(key, window) == 1
    await asyncio.sleep(window * 0.6)
    assert await gate.hit(key, window) == 2
    await asyncio.sleep(window * 0.55)  # past the first hit's window, not the second's

    assert await gate.hit(key, window) == 1
    assert await gate.hit(key, window) == 2


# --- ConversationStore -------------------------------------------------------------------

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


async def test_load_of_a_missing_key_is_none(shared_state: SharedState, keys: KeyBuilder) -> None:
    _, store = shared_state

    assert await store.load(keys.build("state", "webchat", "nobody")) is None


async def test_save_and_load_round_trip_nested_data(
    shared_state: SharedState, keys: KeyBuilder
) -> None:
    _, store = shared_state
    key = keys.build("state", "webchat", "chat-1")

    await store.save(key, copy.deepcopy(NESTED), TTL)

    assert await store.load(key) == NESTED


async def test_save_replaces_the_previous_state(
    shared_state: SharedState, keys: KeyBuilder
) -> None:
    _, store = shared_state
    key = keys.build("state", "webchat", "chat-1")
    await store.save(key, copy.deepcopy(NESTED), TTL)

    await store.save(key, {"flow": "status"}, TTL)

    assert await store.load(key) == {"flow": "status"}


async def test_states_of_different_keys_are_separate(
    shared_state: SharedState, keys: KeyBuilder
) -> None:
    _, store = shared_state
    first = keys.build("state", "webchat", "chat-1")
    second = keys.build("state", "telegram", "chat-1")

    await store.save(first, {"flow": "complaint"}, TTL)
    await store.save(second, {"flow": "status"}, TTL)

    assert await store.load(first) == {"flow": "complaint"}
    assert await store.load(second) == {"flow": "status"}


async def test_changing_a_saved_dict_does_not_change_the_store(
    shared_state: SharedState, keys: KeyBuilder
) -> None:
    """The store keeps a snapshot, as Redis does by serialising it."""
    _, store = shared_state
    key = keys.build("state", "webchat", "chat-1")
    state = copy.deepcopy(NESTED)
    await store.save(key, state, TTL)

    state["slots"]["photos"].append({"kind": "image", "ref": "after-save", "url": ""})
    state["slots"]["description"] = "changed after save"

    assert await store.load(key) == NESTED


async def test_changing_a_loaded_dict_does_not_change_the_store(
    shared_state: SharedState, keys: KeyBuilder
) -> None:
    """A flow that edits its slots and then fails must leave the saved state as it was."""
    _, store = shared_state
    key = keys.build("state", "webchat", "chat-1")
    await store.save(key, copy.deepcopy(NESTED), TTL)

    loaded = await store.load(key)
    assert loaded is not None
    loaded["slots"]["photos"].append({"kind": "image", "ref": "after-load", "url": ""})
    loaded["slots"]["description"] = "changed after load"

    assert await store.load(key) == NESTED


async def test_unsaved_edits_of_a_conversation_state_do_not_leak(
    shared_state: SharedState, keys: KeyBuilder
) -> None:
    """What the pipeline does: load, from_dict, a flow appends a photo, then no save."""
    _, store = shared_state
    key = keys.build("state", "webchat", "chat-1")
    await store.save(key, _complaint_state().to_dict(), TTL)

    state = ConversationState.from_dict(await store.load(key))
    state.slots["photos"].append({"kind": "image", "ref": "unsaved", "url": ""})

    restored = ConversationState.from_dict(await store.load(key))
    assert restored.slots["photos"] == [{"kind": "image", "ref": "media-1", "url": ""}]


async def test_delete_forgets_the_state(shared_state: SharedState, keys: KeyBuilder) -> None:
    _, store = shared_state
    key = keys.build("state", "webchat", "chat-1")
    await store.save(key, copy.deepcopy(NESTED), TTL)

    await store.delete(key)

    assert await store.load(key) is None
    await store.delete(key)  # deleting twice is harmless
    assert await store.load(key) is None


async def test_state_lapses_after_its_ttl(shared_state: SharedState, keys: KeyBuilder) -> None:
    _, store = shared_state
    key = keys.build("state", "webchat", "chat-1")
    await store.save(key, {"flow": "complaint"}, 0.3)
    assert await store.load(key) == {"flow": "complaint"}

    await asyncio.sleep(0.4)

    assert await store.load(key) is None


# --- ConversationState -------------------------------------------------------------------


def _complaint_state() -> ConversationState:
    return ConversationState(
        flow="complaint",
        step="confirm",
        slots=copy.deepcopy(NESTED["slots"]),
        reprompts=1,
        buttons=[("提交", "submit"), ("修改", "edit"), ("取消", "cancel")],
    )


async def test_conversation_state_round_trips_through_the_store(
    shared_state: SharedState, keys: KeyBuilder
) -> None:
    _, store = shared_state
    key = keys.build("state", "webchat", "chat-1")
    state = _complaint_state()

    await store.save(key, state.to_dict(), TTL)
    restored = ConversationState.from_dict(await store.load(key))

    assert restored == state
    assert restored.choice("2") == "edit"


async def test_idle_state_round_trips_through_the_store(
    shared_state: SharedState, keys: KeyBuilder
) -> None:
    _, store = shared_state
    key = keys.build("state", "webchat", "chat-1")

    await store.save(key, ConversationState().to_dict(), TTL)
    restored = ConversationState.from_dict(await store.load(key))

    assert restored == ConversationState()
    assert restored.idle


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
