"""Rate-limiter numbers: exponential 5 ms * 2^n capped at 1000 s, token bucket 10 qps / 100 burst."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from controller.runtime.backoff import Backoff
from controller.runtime.ratelimiter import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    default_controller_rate_limiter,
    default_item_rate_limiter,
)


@given(st.integers(min_value=0, max_value=2000))
def test_exponential_delay_is_base_times_two_to_the_failures_capped(n: int) -> None:
    limiter = ItemExponentialFailureRateLimiter[str](0.005, 1000.0)
    delays = [limiter.when("k") for _ in range(n + 1)]
    assert delays[n] == min(0.005 * 2.0**n, 1000.0) if n < 1024 else delays[n] == 1000.0
    assert delays == sorted(delays)
    assert limiter.num_requeues("k") == n + 1


def test_exponential_reaches_cap_on_nineteenth_failure() -> None:
    limiter = default_item_rate_limiter()
    delays = [limiter.when("k") for _ in range(20)]
    assert delays[0] == 0.005
    assert delays[1] == 0.01
    assert delays[17] == 0.005 * 2**17  # 655.36 s, still under the cap
    assert delays[18] == 1000.0  # 5 ms * 2^18 = 1310.72 s > cap
    assert delays[19] == 1000.0


@given(st.lists(st.sampled_from("abc"), max_size=50), st.sampled_from("abc"))
def test_exponential_is_per_item_and_forget_resets(failures: list[str], probe: str) -> None:
    limiter = ItemExponentialFailureRateLimiter[str](0.005, 1000.0)
    for item in failures:
        limiter.when(item)
    assert limiter.num_requeues(probe) == failures.count(probe)
    limiter.forget(probe)
    assert limiter.num_requeues(probe) == 0
    assert limiter.when(probe) == 0.005


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@given(st.integers(min_value=0, max_value=400))
def test_bucket_first_burst_free_then_one_over_qps_each(n: int) -> None:
    clock = FakeClock()
    bucket = BucketRateLimiter[int](10.0, 100, clock=clock)
    delays = [bucket.when(i) for i in range(n)]
    for i, delay in enumerate(delays):
        expected = 0.0 if i < 100 else (i - 99) / 10.0
        assert abs(delay - expected) < 1e-9


def test_bucket_refills_at_qps_up_to_burst() -> None:
    clock = FakeClock()
    bucket = BucketRateLimiter[int](10.0, 100, clock=clock)
    for i in range(100):
        assert bucket.when(i) == 0.0
    assert abs(bucket.when(0) - 0.1) < 1e-9
    clock.now = 1000.0  # long pause: refill caps at burst
    assert all(bucket.when(i) == 0.0 for i in range(100))
    assert bucket.when(0) > 0


@given(st.lists(st.integers(min_value=0, max_value=5), max_size=300))
def test_max_of_is_the_max_of_its_members(items: list[int]) -> None:
    clock = FakeClock()
    combined = MaxOfRateLimiter[int](
        ItemExponentialFailureRateLimiter[int](0.005, 1000.0), BucketRateLimiter[int](10.0, 100, clock=clock)
    )
    shadow_exp = ItemExponentialFailureRateLimiter[int](0.005, 1000.0)
    shadow_bucket = BucketRateLimiter[int](10.0, 100, clock=clock)
    for item in items:
        assert combined.when(item) == max(shadow_exp.when(item), shadow_bucket.when(item))


def test_default_controller_rate_limiter_numbers() -> None:
    limiter = default_controller_rate_limiter()
    exp, bucket = limiter.limiters
    assert isinstance(exp, ItemExponentialFailureRateLimiter)
    assert (exp.base, exp.max_delay) == (0.005, 1000.0)
    assert isinstance(bucket, BucketRateLimiter)
    assert (bucket.qps, bucket.burst) == (10.0, 100)


def test_reflector_backoff_numbers() -> None:
    clock = FakeClock()
    backoff = Backoff(clock=clock, rng=lambda: 0.0)
    assert [backoff.next() for _ in range(8)] == [0.8, 1.6, 3.2, 6.4, 12.8, 25.6, 30.0, 30.0]
    clock.now = 121.0  # healthy for more than 2 min: reset
    assert backoff.next() == 0.8
    jittered = Backoff(clock=clock, rng=lambda: 1.0)
    assert jittered.next() == 1.6  # jitter 1.0 doubles at most
