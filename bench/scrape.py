"""The figures the soak reads from gql_blog's /metrics (every worker's values added up).

- Pool waits: `gql_blog_db_pool_checkout_seconds` (a histogram of each checkout's wait) and
  `gql_blog_db_pool_timeouts_total`.
- `gql_blog_graphql_operations_total` by outcome, `gql_blog_graphql_errors_total` by code.
- `gql_blog_open_subscriptions`.
"""

import math
from collections import Counter
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

_CHECKOUT = "gql_blog_db_pool_checkout_seconds"


class ScrapeError(ValueError):
    """The /metrics text lacks a figure the soak reads."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolWaits:
    """Checkouts from the connection pools, and how many waited longer than each bound."""

    checkouts: int
    wait_seconds: float
    timeouts: int
    # Upper bound (seconds) → checkouts that waited at most that long, as the buckets say.
    at_most: dict[float, int]

    def slower_than(self, seconds: float) -> int:
        """Checkouts that waited longer than `seconds` (a bucket bound of the histogram)."""
        if seconds not in self.at_most:
            raise ScrapeError(f"the checkout histogram has no bucket at {seconds} s")
        return self.checkouts - self.at_most[seconds]

    def quantile_bound(self, quantile: float) -> float:
        """The smallest bucket bound that at least `quantile` of the checkouts waited within."""
        wanted = quantile * self.checkouts
        return min(
            (bound for bound, count in self.at_most.items() if count >= wanted), default=math.inf
        )

    @property
    def mean_seconds(self) -> float:
        return self.wait_seconds / self.checkouts if self.checkouts else 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerFigures:
    pool: PoolWaits
    operations: Counter[str] = field(default_factory=Counter)  # outcome → operations
    error_codes: Counter[str] = field(default_factory=Counter)
    open_subscriptions: int = 0


def read_metrics(text: str) -> ServerFigures:
    """The soak's figures in a Prometheus exposition text."""
    samples = [
        sample for family in text_string_to_metric_families(text) for sample in family.samples
    ]
    operations: Counter[str] = Counter()
    error_codes: Counter[str] = Counter()
    values: dict[str, float] = {}
    buckets: dict[float, int] = {}
    for sample in samples:
        if sample.name == "gql_blog_graphql_operations_total":
            operations[sample.labels["outcome"]] += int(sample.value)
        elif sample.name == "gql_blog_graphql_errors_total":
            error_codes[sample.labels["code"]] += int(sample.value)
        elif sample.name == f"{_CHECKOUT}_bucket":
            buckets[float(sample.labels["le"])] = int(sample.value)
        else:
            values[sample.name] = sample.value
    return ServerFigures(
        pool=PoolWaits(
            checkouts=int(_required(values, f"{_CHECKOUT}_count")),
            wait_seconds=_required(values, f"{_CHECKOUT}_sum"),
            timeouts=int(values.get("gql_blog_db_pool_timeouts_total", 0)),
            at_most=buckets,
        ),
        operations=operations,
        error_codes=error_codes,
        open_subscriptions=int(values.get("gql_blog_open_subscriptions", 0)),
    )


def _required(values: dict[str, float], name: str) -> float:
    if name not in values:
        raise ScrapeError(f"/metrics has no {name}: is the server older than its pool metrics?")
    return values[name]
