"""Pacing of outgoing Telegram messages: the limiter's arithmetic, and bursts on the wire."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bots.media import MediaStore
from bots.settings import Settings
from bots.telegram import SendLimiter, SendLimits, TelegramReceiver, open_telegram
from handlers.catalog import Catalog
from handlers.messages import Inbound, Outbound
from tests.emulators.telegram import TelegramEmulator
from tests.emulators.telegram_app import TOKEN


class VirtualClock:
    """A clock that only moves when someone sleeps (one waiter at a time)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


def limiter_on(clock: VirtualClock, limits: SendLimits | None = None) -> SendLimiter:
    return SendLimiter(limits, clock=clock, sleep=clock.sleep)


async def times_of(limiter: SendLimiter, clock: VirtualClock, chats: list[str]) -> list[float]:
    """When each acquisition (one after another) was granted, from the start."""
    start, times = clock.now, []
    for chat in chats:
        await limiter.acquire(chat)
        times.append(round(clock.now - start, 6))
    return times


# -- the limiter ----------------------------------------------------------------------


async def test_one_chat_gets_one_message_a_second_by_default() -> None:
    clock = VirtualClock()
    times = await times_of(limiter_on(clock), clock, ["42"] * 5)
    assert times == [0, 1, 2, 3, 4]


async def test_all_chats_together_get_thirty_messages_a_second_by_default() -> None:
    clock = VirtualClock()
    times = await times_of(limiter_on(clock), clock, [str(chat) for chat in range(90)])
    assert times == pytest.approx([i / 30 for i in range(90)], abs=1e-6)
    assert max(sum(1 for t in times if s <= t < s + 1 - 1e-9) for s in times) == 30


async def test_per_chat_spacing_and_the_global_rate_apply_together() -> None:
    clock = VirtualClock()
    limiter = limiter_on(clock, SendLimits(rate=10.0, chat_interval=0.5))
    times = await times_of(limiter, clock, ["a", "b", "a", "c", "a"])
    # b and c take the global slots between a's; a waits for its own spacing.
    assert times == pytest.approx([0.0, 0.1, 0.5, 0.6, 1.0])


async def test_a_chat_is_spaced_from_when_telegram_answered() -> None:
    clock = VirtualClock()
    limiter = limiter_on(clock)
    await limiter.acquire("a")
    clock.now += 0.4  # the request took a while
    limiter.sent("a")
    await limiter.acquire("a")
    assert clock.now == pytest.approx(1001.4)


async def test_a_burst_allowance_releases_that_many_at_once() -> None:
    clock = VirtualClock()
    limiter = limiter_on(clock, SendLimits(rate=10.0, burst=3, chat_interval=0.0))
    times = await times_of(limiter, clock, [str(chat) for chat in range(6)])
    assert times == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2, 0.3])


async def test_a_pause_holds_every_chat_until_it_ends() -> None:
    clock = VirtualClock()
    limiter = limiter_on(clock)
    await limiter.acquire("a")
    limiter.pause(5)
    times = await times_of(limiter, clock, ["b", "c", "a"])
    assert times == pytest.approx([5.0, 5.0 + 1 / 30, 5.0 + 2 / 30])


async def test_waiters_queued_before_a_pause_wait_for_its_end() -> None:
    limiter = SendLimiter(SendLimits(rate=50.0, chat_interval=0.0))
    loop = asyncio.get_running_loop()
    await limiter.acquire("first")

    async def acquire(chat: str) -> float:
        await limiter.acquire(chat)
        return loop.time()

    waiters = [asyncio.create_task(acquire(f"chat-{i}")) for i in range(5)]
    await asyncio.sleep(0)  # every waiter has reserved its slot
    limiter.pause(0.3)
    granted = await asyncio.gather(*waiters)
    assert min(granted) >= limiter.paused_until


@pytest.mark.parametrize(
    "limits",
    [{"rate": 0.0}, {"burst": 0}, {"chat_interval": -1.0}, {"max_retries": -1}],
    ids=["rate", "burst", "interval", "retries"],
)
def test_impossible_limits_are_refused(limits: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SendLimits(**limits)  # type: ignore[arg-type]


# -- bursts on the wire ----------------------------------------------------------------

BURST = SendLimits(rate=300.0, chat_interval=0.05)


@pytest.fixture
async def emulator() -> AsyncIterator[TelegramEmulator]:
    """The Bot API, measuring sends against the burst limits (0.5 s windows)."""
    async with TelegramEmulator(
        TOKEN, chat_interval=BURST.chat_interval, rate=BURST.rate, window=0.5
    ) as emulator:
        yield emulator


@pytest.fixture
async def receiver(
    emulator: TelegramEmulator, tmp_path: Path, media_store: MediaStore
) -> AsyncIterator[TelegramReceiver]:
    """The Telegram channel alone (no pipeline behind it), polling the emulator."""

    async def handle(inbound: Inbound) -> list[Outbound] | None:
        raise AssertionError("no resident writes in these tests")

    settings = Settings(
        data_dir=tmp_path, telegram_token=TOKEN, telegram_api_base=emulator.base_url
    )
    async with open_telegram(
        settings, handle, Catalog.load(), BURST, photos=media_store
    ) as receiver:
        yield receiver


async def test_a_burst_of_pushes_is_delivered_in_full_within_the_limits(
    emulator: TelegramEmulator, receiver: TelegramReceiver
) -> None:
    # Per-chat flood control here; tests/test_telegram.py meets the global kind through
    # the whole app.
    emulator.flood(50, 180, retry_after=1, scope="chat")
    chats = [3000 + i for i in range(30)]
    pushes = [(chats[i % 30], f"工单进展 第{i}条") for i in range(300)]

    await asyncio.gather(*(receiver.channel.push(str(c), Outbound(t)) for c, t in pushes))

    delivered = Counter(message.text for message in emulator.sent)
    assert delivered == Counter(text for _, text in pushes)  # all of them, each once
    per_chat: dict[int, list[str]] = defaultdict(list)
    for chat, text in pushes:
        per_chat[chat].append(text)
    for chat in chats:
        assert [m.text for m in emulator.messages_to(chat)] == per_chat[chat]  # in order
    assert emulator.violations == []
    assert (emulator.too_many, emulator.early) == (2, 0)  # each retry_after was waited out
    assert len(emulator.calls_of("sendMessage")) == 302


async def test_replies_and_pushes_to_one_chat_go_out_in_the_order_given(
    emulator: TelegramEmulator, receiver: TelegramReceiver
) -> None:
    emulator.flood(2, retry_after=1)
    channel = receiver.channel
    inbound = Inbound("telegram", "77", "77", "m1", "你好")
    channel.reply_later(inbound, [Outbound("回复一"), Outbound("回复二")])
    push = asyncio.create_task(channel.push("77", Outbound("推送")))
    await asyncio.sleep(0)  # the push is queued
    await channel.reply(inbound, [Outbound("回复三")])
    await push
    assert [m.text for m in emulator.messages_to(77)] == ["回复一", "回复二", "推送", "回复三"]
    assert emulator.violations == []


class StallingClock:
    """Virtual time with many waiters: sleeps end when ``advance`` passes their deadline.

    ``advance`` to a far time is an event-loop stall: every timer that fell due in
    between fires at once, as asyncio's do after a stall.
    """

    def __init__(self) -> None:
        self.now = 1000.0
        self._timers: list[tuple[float, asyncio.Future[None]]] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        self._timers.append((self.now + seconds, future))
        await future

    async def settle(self) -> None:
        for _ in range(20):  # let every woken task run up to its next sleep
            await asyncio.sleep(0)

    async def advance(self, to: float | None = None) -> bool:
        """Move to ``to`` (default: the next timer) and fire what is due; False when idle."""
        if not self._timers:
            return False
        self.now = max(self.now, to if to is not None else min(t for t, _ in self._timers))
        due = [timer for timer in self._timers if timer[0] <= self.now + 1e-9]
        self._timers = [timer for timer in self._timers if timer not in due]
        for _, future in sorted(due, key=lambda timer: timer[0]):
            future.set_result(None)
        await self.settle()
        return True


async def stalled_grants(stall: float, count: int = 90) -> list[float]:
    """When each of ``count`` sends to different chats was granted, the event loop
    having stalled for ``stall`` seconds just after they all reserved their slots."""
    return await grants_on(StallingClock(), count, stall)


async def grants_on(clock: StallingClock, count: int, stall: float = 0.0) -> list[float]:
    """When each of ``count`` sends to different chats was granted on ``clock``, all
    reserved at once (after a stall of ``stall`` seconds, if any)."""
    limiter = SendLimiter(clock=clock, sleep=clock.sleep)  # 30/s, 1/s per chat
    granted: list[float] = []

    async def send(chat: str) -> None:
        await limiter.acquire(chat)
        granted.append(clock.now)

    tasks = [asyncio.create_task(send(str(chat))) for chat in range(count)]
    await clock.settle()  # each has reserved its slot: 1/30 s apart
    if stall:
        await clock.advance(clock.now + stall)  # every slot that fell due fires at once
    while await clock.advance():
        pass
    await asyncio.gather(*tasks)
    return granted


async def test_a_stalled_event_loop_does_not_release_a_burst() -> None:
    granted = await stalled_grants(1.6)  # ~48 slots fall due together
    assert len(granted) == 90
    gaps = [later - earlier for earlier, later in itertools.pairwise(granted)]
    # The late ones catch up at most at twice the rate, not all together, and never
    # more than 30 go out in any one second.
    assert min(gaps) >= 1 / 60 - 1e-9
    assert most_in_one_second(granted) == 30


def most_in_one_second(granted: list[float]) -> int:
    return max(sum(1 for t in granted if s <= t < s + 1 - 1e-9) for s in granted)


class LateClock(StallingClock):
    """Virtual time on a busy loop: every timer fires late, by 0 to 12 ms in turn."""

    def __init__(self) -> None:
        super().__init__()
        self._lateness = itertools.cycle([0.012, 0.0, 0.006, 0.003])

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds + next(self._lateness))


async def test_late_timers_are_made_up_so_a_drain_keeps_the_full_rate() -> None:
    clock = LateClock()
    start = clock.now
    granted = await grants_on(clock, 300)
    # 300 sends at 30/s take 10 s; each lateness lost for good would make it ~11.5 s.
    assert max(granted) - start < 10.1
    assert most_in_one_second(granted) <= 30


async def test_sweeping_quiet_chats_spares_those_still_waiting_for_their_turn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Sends held up behind a stall wait longer than their chat's spacing: a sweep of
    # quiet chats meanwhile drops their entries, which must not fail their send.
    monkeypatch.setattr("bots.telegram.limiter.PRUNE_EVERY", 2)
    assert len(await stalled_grants(1.6)) == 90
