"""bench/soak.py: each worker's RSS growth from the first to the last fifth of the run."""

import pytest

from bench.soak import rss_growth


def test_growth_compares_the_medians_of_the_first_and_last_fifth() -> None:
    # A 100 s run sampled every 5 s: warm-up in the first fifth, a spike in the middle.
    samples = [(5.0 * n, 100_000 + (50_000 if n == 10 else 0)) for n in range(21)]
    samples[0] = (0.0, 60_000)

    start, end, growth = rss_growth(samples, 100)

    assert (start, end) == (100_000, 100_000)
    assert growth == 0


def test_growth_is_relative_to_the_first_fifth() -> None:
    samples = [(0.0, 100_000), (10.0, 100_000), (90.0, 112_000), (95.0, 112_000)]

    assert rss_growth(samples, 100)[2] == pytest.approx(0.12)


def test_a_run_without_samples_in_a_window_is_refused() -> None:
    with pytest.raises(ValueError, match="too few RSS samples"):
        rss_growth([(50.0, 100_000)], 100)
