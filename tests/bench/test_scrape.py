"""bench/scrape.py: the soak's figures from a /metrics text."""

import pytest

from bench.scrape import ScrapeError, read_metrics

METRICS = """\
# HELP gql_blog_db_pool_checkout_seconds Time a checkout waited.
# TYPE gql_blog_db_pool_checkout_seconds histogram
gql_blog_db_pool_checkout_seconds_bucket{le="0.001"} 90.0
gql_blog_db_pool_checkout_seconds_bucket{le="0.01"} 99.0
gql_blog_db_pool_checkout_seconds_bucket{le="0.1"} 100.0
gql_blog_db_pool_checkout_seconds_bucket{le="+Inf"} 100.0
gql_blog_db_pool_checkout_seconds_count 100.0
gql_blog_db_pool_checkout_seconds_sum 0.25
# HELP gql_blog_db_pool_timeouts_total Timeouts.
# TYPE gql_blog_db_pool_timeouts_total counter
gql_blog_db_pool_timeouts_total 2.0
# HELP gql_blog_graphql_operations_total Operations.
# TYPE gql_blog_graphql_operations_total counter
gql_blog_graphql_operations_total{operation="Feed",outcome="success"} 40.0
gql_blog_graphql_operations_total{operation="Detail",outcome="success"} 2.0
gql_blog_graphql_operations_total{operation="Feed",outcome="error"} 1.0
# HELP gql_blog_open_subscriptions Open.
# TYPE gql_blog_open_subscriptions gauge
gql_blog_open_subscriptions 40.0
"""


def test_pool_waits_come_from_the_checkout_histogram() -> None:
    pool = read_metrics(METRICS).pool

    assert (pool.checkouts, pool.timeouts) == (100, 2)
    assert (pool.slower_than(0.001), pool.slower_than(0.01)) == (10, 1)
    assert pool.mean_seconds == pytest.approx(0.0025)
    assert (pool.quantile_bound(0.9), pool.quantile_bound(0.99), pool.quantile_bound(1)) == (
        0.001,
        0.01,
        0.1,
    )


def test_operations_add_up_by_outcome_and_subscriptions_are_read() -> None:
    figures = read_metrics(METRICS)

    assert dict(figures.operations) == {"success": 42, "error": 1}
    assert figures.open_subscriptions == 40


def test_a_bound_the_histogram_lacks_is_refused() -> None:
    with pytest.raises(ScrapeError, match=r"no bucket at 0\.5 s"):
        read_metrics(METRICS).pool.slower_than(0.5)


def test_metrics_without_the_pool_histogram_are_refused() -> None:
    with pytest.raises(ScrapeError, match="no gql_blog_db_pool_checkout_seconds_count"):
        read_metrics("# TYPE up gauge\nup 1.0\n")
