"""Token buckets, rate parsing and the pacer, on a hand-driven clock (issue 4, point 4)."""

from __future__ import annotations

import itertools

import pytest

from adapters.registry import pacing_limits
from core.pacing import Pacer, Rate, RateError, TokenBucket, parse_rate


class Tick:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "count", "period"),
    [("1/s", 1, 1), ("20/min", 20, 60), ("30/s", 30, 1), ("80 / sec", 80, 1), ("1/3s", 1, 3), ("0.5/s", 0.5, 1),
     ("100/h", 100, 3600), ("2/minute", 2, 60)],
)
def test_rates_are_read_as_people_write_them(text: str, count: float, period: float) -> None:
    assert parse_rate(text) == Rate(count, period)


@pytest.mark.parametrize("text", ["unlimited", "off", " None "])
def test_unlimited_means_no_bucket(text: str) -> None:
    assert parse_rate(text) is None


@pytest.mark.parametrize("text", ["", "1", "1/", "/s", "1/fortnight", "-1/s", "0/s", "one/s", "1/0s"])
def test_bad_rates_say_how_to_write_one(text: str) -> None:
    with pytest.raises(RateError, match=r"1/s"):
        parse_rate(text)


def test_a_bad_setting_is_named_in_the_error() -> None:
    with pytest.raises(RateError, match=r"^outbox\.telegram_per_group: '20 per minute'"):
        pacing_limits({"telegram_per_group": "20 per minute"})


def test_bucket_spaces_sends_evenly_and_never_saves_up_a_burst() -> None:
    bucket = TokenBucket(Rate(1, 1), now=0.0)
    assert bucket.ready_at(0.0) == 0.0
    bucket.take(0.0)
    assert bucket.ready_at(0.0) == pytest.approx(1.0)
    bucket.take(1.0)
    bucket.take(bucket.ready_at(1.0))  # a reservation for t=2
    assert bucket.ready_at(1.0) == pytest.approx(3.0)
    # After a long pause only one token is waiting: one send now, the next a full interval later.
    assert bucket.ready_at(60.0) == 60.0
    bucket.take(60.0)
    assert bucket.ready_at(60.0) == pytest.approx(61.0)


def test_telegram_private_chats_groups_and_the_overall_limit() -> None:
    tick = Tick()
    pacer = Pacer(pacing_limits(), clock=tick, target_margin=0)
    # One private chat: 1/s.
    assert [pacer.reserve("telegram", "42") - 100 for _ in range(3)] == pytest.approx([0, 1, 2])
    # A group (negative id): 20/min, one every 3 s; its first send takes the overall gap after t+0.
    group = [pacer.reserve("telegram", "-100123") - 100 for _ in range(3)]
    assert group == pytest.approx([1 / 30, 3 + 1 / 30, 6 + 1 / 30])
    # Many different chats at once: the 30/s overall limit spaces every send at least 1/30 s apart,
    # filling the gaps around the reservations above rather than queueing behind them.
    times = [pacer.reserve("telegram", str(1000 + n)) - 100 for n in range(60)]
    everything = sorted([0, 1, 2, *group, *times])
    gaps = [b - a for a, b in itertools.pairwise(everything)]
    assert min(gaps) == pytest.approx(1 / 30)
    # 64 sends in all (4 reserved before), one every 1/30 s from t+0: no slot wasted.
    assert max(times) == pytest.approx(63 / 30)


def test_a_chat_held_back_by_the_platform_bucket_still_keeps_its_own_spacing() -> None:
    tick = Tick()
    limits = {"telegram": pacing_limits({"telegram_overall": "1/5s"})["telegram"]}
    pacer = Pacer(limits, clock=tick, target_margin=0)
    first = pacer.reserve("telegram", "7")
    assert first == 100
    second = pacer.reserve("telegram", "7")  # the overall bucket says t+5; the chat's own would allow t+1
    assert second == pytest.approx(105)
    tick.now = 105.5
    # The chat's next slot is a full second after its last send (t+6), not one second after "now minus".
    third_ready = pacer.target_ready_at("telegram", "7")
    assert third_ready == pytest.approx(106)


def test_slack_and_whatsapp_defaults() -> None:
    tick = Tick()
    pacer = Pacer(pacing_limits(), clock=tick, target_margin=0)
    assert [pacer.reserve("slack", "C1") - 100 for _ in range(2)] == pytest.approx([0, 1])
    assert pacer.reserve("slack", "C2") == 100  # another channel is not held back
    times = [pacer.reserve("whatsapp", f"whatsapp:+65{n}") - 100 for n in range(3)]
    assert times == pytest.approx([0, 1 / 80, 2 / 80])  # one sending number for every customer


def test_slack_threads_count_against_their_channel() -> None:
    tick = Tick()
    pacer = Pacer(pacing_limits(), clock=tick, target_margin=0)
    sends = [pacer.reserve("slack", "T1:C1"), pacer.reserve("slack", "T1:C1:1700000000.000100"),
             pacer.reserve("slack", "T1:C1:1700000000.000200")]
    assert [t - 100 for t in sends] == pytest.approx([0, 1, 2])  # one channel, 1/s, threads included
    assert pacer.reserve("slack", "T1:C2:1700000000.000300") == 100  # another channel is not held back


def test_unpaced_platforms_are_never_held_back_but_retry_after_is_honoured() -> None:
    tick = Tick()
    pacer = Pacer(pacing_limits(), clock=tick, target_margin=0)
    assert {pacer.reserve("console", "me") for _ in range(5)} == {100}
    pacer.block("console", "me", 7.5)
    assert pacer.ready_at("console", "me") == pytest.approx(107.5)
    assert pacer.ready_at("console", "someone else") == 100
    pacer.block("telegram", "42", 3)
    assert pacer.reserve("telegram", "42") == pytest.approx(103)
    tick.now = 200
    assert pacer.ready_at("console", "me") == 200


def test_pacer_forgets_idle_buckets_when_it_has_many() -> None:
    tick = Tick()
    pacer = Pacer(pacing_limits(), clock=tick, target_margin=0)
    pacer.PRUNE_ABOVE = 10
    for n in range(10):
        pacer.reserve("slack", f"C{n}")
    tick.now += 5
    pacer.reserve("slack", "new")
    assert list(pacer._targets) == [("slack", "new")]


def test_sends_to_one_chat_keep_a_safety_margin_but_the_platform_rate_does_not() -> None:
    tick = Tick()
    pacer = Pacer(pacing_limits(), clock=tick)  # the default 10% margin per chat
    assert [pacer.reserve("telegram", "42") - 100 for _ in range(3)] == pytest.approx([0, 1 / 0.9, 2 / 0.9])
    times = [pacer.reserve("telegram", str(n)) - 100 for n in range(1, 31)]
    assert max(times) - min(times) == pytest.approx(29 / 30, abs=0.04)  # still 30/s across chats


def test_a_gate_on_actual_start_times_lets_one_late_start_be_followed_closely() -> None:
    tick = Tick()
    gate = Pacer(pacing_limits(), clock=tick, platform_burst=2, target_margin=0)
    gate.reserve("telegram", "1")
    tick.now += 1 / 30 + 0.01  # this one left 10 ms late...
    assert gate.reserve("telegram", "2") == tick.now
    tick.now += 1 / 30 - 0.01  # ...so the next, on time, is only 23 ms after it: allowed, the average holds
    assert gate.reserve("telegram", "3") == tick.now
    assert gate.ready_at("telegram", "4") > tick.now  # but never two at once
    assert gate.ready_at("telegram", "3") == pytest.approx(tick.now + 1)  # a chat's own limit stays strict
