"""The push-burst benchmark: every queued push arrives once, within the platform's limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from bots.bench.push import main, max_in_window, run
from bots.settings import Settings


def test_the_busiest_second_is_counted_over_sliding_windows() -> None:
    assert max_in_window([]) == 0
    assert max_in_window([0.0, 0.5, 0.99, 1.0, 1.2]) == 4  # 0.5 .. 1.2
    assert max_in_window([i / 30 for i in range(90)]) == 30
    assert max_in_window([5.0] * 48 + [7.0]) == 48  # a burst after a stall shows


@pytest.mark.parametrize("channel", ["telegram", "wechat"])
async def test_a_burst_drains_in_full_at_the_configured_rate(
    channel: str, database_url: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, database_url=database_url)
    result = await run(settings, channel, pushes=40, chats=8, rate=10.0, stall=30.0)

    assert (result.pushes, result.received, result.lost, result.duplicates) == (40, 40, 0, 0)
    assert result.left_in_queue == {"sent": 40}
    # Paced at 10/s: never the whole burst at once. One more than the rate is allowed
    # for the loopback's jitter (the emulator stamps arrivals, not the limiter's slots).
    assert 1 <= result.max_per_second <= 11
    assert result.violations == 0  # Telegram's emulator also checks 1 msg/s per chat
    assert result.as_dict()["received"] == 40


async def test_the_command_line_prints_and_writes_the_figures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("YIMEN_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("YIMEN_DATABASE_URL", raising=False)
    report = tmp_path / "push.json"
    await _in_thread(
        main, ["--channel", "wechat", "--pushes", "12", "--chats", "3", "--json", str(report)]
    )
    out = capsys.readouterr().out
    assert "emulator received 12; lost 0; duplicates 0" in out
    assert '"lost": 0' in report.read_text()


async def _in_thread(function: object, argv: list[str]) -> None:
    """``main`` runs its own event loop: call it off the test's."""
    import asyncio

    assert callable(function)
    await asyncio.to_thread(function, argv)
