"""Load shedding for the rerank stage: shrink the depth before the stage would time out.

Pure bookkeeping, no clock: the caller reports each call's pairs and elapsed time. The
cost of a pair is an exponentially weighted mean of elapsed / (pairs that were ahead of
the call + its own pairs), i.e. the peer's service time a pair including queueing behind
calls this process already had in flight. A new call's expected time is then
(pairs in flight + its pairs) x that cost; when that exceeds the budget the depth shrinks
to what fits, never below ``min_depth``, and the reason says so.
"""

from __future__ import annotations

__all__ = ["RerankLoad"]


class RerankLoad:
    """In-flight pairs and the recent cost a pair, for one peer (one process)."""

    def __init__(self, *, budget_ms: float, min_depth: int, smoothing: float = 0.2) -> None:
        if budget_ms <= 0 or min_depth < 1 or not 0 < smoothing <= 1:
            raise ValueError("need budget_ms > 0, min_depth >= 1 and 0 < smoothing <= 1")
        self._budget_ms = budget_ms
        self._min_depth = min_depth
        self._smoothing = smoothing
        self.in_flight_pairs = 0
        self.in_flight_calls = 0
        self.ms_per_pair: float | None = None

    def allowed_pairs(self, requested: int) -> int:
        """How many of ``requested`` new pairs fit the budget now (at least ``min_depth``)."""
        cost = self.ms_per_pair
        if requested <= self._min_depth or cost is None or cost <= 0:
            return requested
        fits = int(self._budget_ms / cost) - self.in_flight_pairs
        return max(self._min_depth, min(requested, fits))

    def describe(self) -> str:
        """The load, for ``rerank.reason``."""
        cost = f"~{self.ms_per_pair:.0f}" if self.ms_per_pair is not None else "unknown"
        return (
            f"{self.in_flight_calls} rerank calls with {self.in_flight_pairs} pairs in flight "
            f"at {cost} ms a pair, against a {self._budget_ms:.0f} ms budget"
        )

    def start(self, pairs: int) -> int:
        """Count a call in; returns the pairs that were ahead of it (pass to :meth:`finish`)."""
        ahead = self.in_flight_pairs
        self.in_flight_pairs += pairs
        self.in_flight_calls += 1
        return ahead

    def finish(self, pairs: int, ahead: int, elapsed_ms: float, *, sample: bool) -> None:
        """Count a call out; with ``sample`` (it succeeded, or timed out) learn its cost a pair.

        A timed-out call's elapsed time is a lower bound of its cost: still the signal that
        the peer is slow. A fast failure (refused connection) would teach nothing true.
        """
        self.in_flight_pairs = max(0, self.in_flight_pairs - pairs)
        self.in_flight_calls = max(0, self.in_flight_calls - 1)
        if not sample or pairs <= 0:
            return
        cost = elapsed_ms / (ahead + pairs)
        prev = self.ms_per_pair
        self.ms_per_pair = cost if prev is None else prev + self._smoothing * (cost - prev)
