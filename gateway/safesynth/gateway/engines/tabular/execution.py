"""Running the planned mechanisms, in order, exactly as planned.

``PlannedMechanisms`` walks the plan's transcript: each call names the step it runs, must be the next
planned step, and uses that step's noise parameters. ``finish()`` checks that every planned step ran.
So the events charged (``plan.events``) are the mechanisms run, one for one.

The noise itself comes from ``safesynth.gateway.dp.mechanisms`` (secure samplers), looked up at call
time; unit tests may pass another ``NoiseBackend``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from safesynth.gateway.engines.base import Plan, PlanMismatch, TranscriptItem

if TYPE_CHECKING:
    from safesynth.gateway.dp.rng import RandomSource

__all__ = ["DpNoise", "NoiseBackend", "PlannedMechanisms"]

FloatArray = npt.NDArray[np.float64]
K = TypeVar("K", bound=Hashable)


class NoiseBackend(Protocol):
    """The four mechanisms the tabular engine uses (signatures of ``dp.mechanisms``)."""

    def gaussian(
        self, values: FloatArray, *, sensitivity: float, sigma: float, rng: RandomSource
    ) -> FloatArray:
        """Gaussian mechanism on a vector."""
        ...

    def discrete_gaussian(
        self, values: npt.NDArray[np.int64], *, sensitivity: int, sigma: float, rng: RandomSource
    ) -> npt.NDArray[np.int64]:
        """Discrete Gaussian mechanism on integers."""
        ...

    def exponential(
        self, scores: FloatArray, *, sensitivity: float, epsilon: float, rng: RandomSource
    ) -> int:
        """Exponential mechanism: the index of the selected score."""
        ...

    def partition_selection(
        self,
        counts: Mapping[Any, int],
        *,
        epsilon: float,
        delta: float,
        max_partitions_contributed: int,
        rng: RandomSource,
    ) -> list[Any]:
        """Noisy-threshold key selection."""
        ...


class DpNoise:
    """The production backend: ``safesynth.gateway.dp.mechanisms`` (looked up at each call)."""

    def gaussian(
        self, values: FloatArray, *, sensitivity: float, sigma: float, rng: RandomSource
    ) -> FloatArray:
        """See ``dp.mechanisms.gaussian_mechanism``."""
        import safesynth.gateway.dp.mechanisms as mechanisms

        return np.asarray(
            mechanisms.gaussian_mechanism(values, sensitivity=sensitivity, sigma=sigma, rng=rng),
            dtype=np.float64,
        )

    def discrete_gaussian(
        self, values: npt.NDArray[np.int64], *, sensitivity: int, sigma: float, rng: RandomSource
    ) -> npt.NDArray[np.int64]:
        """See ``dp.mechanisms.discrete_gaussian_mechanism``."""
        import safesynth.gateway.dp.mechanisms as mechanisms

        return np.asarray(
            mechanisms.discrete_gaussian_mechanism(values, sensitivity=sensitivity, sigma=sigma, rng=rng),
            dtype=np.int64,
        )

    def exponential(
        self, scores: FloatArray, *, sensitivity: float, epsilon: float, rng: RandomSource
    ) -> int:
        """See ``dp.mechanisms.exponential_mechanism``."""
        import safesynth.gateway.dp.mechanisms as mechanisms

        return int(
            mechanisms.exponential_mechanism(scores, sensitivity=sensitivity, epsilon=epsilon, rng=rng)
        )

    def partition_selection(
        self,
        counts: Mapping[Any, int],
        *,
        epsilon: float,
        delta: float,
        max_partitions_contributed: int,
        rng: RandomSource,
    ) -> list[Any]:
        """See ``dp.mechanisms.partition_selection``."""
        import safesynth.gateway.dp.mechanisms as mechanisms

        return list(
            mechanisms.partition_selection(
                counts,
                epsilon=epsilon,
                delta=delta,
                max_partitions_contributed=max_partitions_contributed,
                rng=rng,
            )
        )


class PlannedMechanisms:
    """Runs the plan's transcript step by step (see the module docstring)."""

    def __init__(self, plan: Plan, rng: RandomSource, noise: NoiseBackend | None = None) -> None:
        self._items = list(plan.transcript)
        self._next = 0
        self._rng = rng
        self._noise: NoiseBackend = noise if noise is not None else DpNoise()
        self.ran: list[str] = []

    def peek(self) -> TranscriptItem | None:
        """The next planned step, or None when all ran."""
        return self._items[self._next] if self._next < len(self._items) else None

    def _take(self, step: str, mechanism: str) -> TranscriptItem:
        item = self.peek()
        if item is None or item.step != step or item.mechanism != mechanism:
            planned = None if item is None else f"{item.step} ({item.mechanism})"
            raise PlanMismatch(
                f"the run reached step {step!r} ({mechanism}) but the plan's next step is {planned}"
            )
        self._next += 1
        self.ran.append(step)
        return item

    def count(self, step: str, n: int) -> int:
        """A DP count (discrete Gaussian)."""
        item = self._take(step, "discrete_gaussian")
        out = self._noise.discrete_gaussian(
            np.array([n], dtype=np.int64),
            sensitivity=int(item.noise["sensitivity"]),
            sigma=float(item.noise["sigma"]),
            rng=self._rng,
        )
        return int(out[0])

    def histogram(self, step: str, counts: FloatArray) -> FloatArray:
        """A noisy histogram (Gaussian on the whole vector; L2 sensitivity from the plan)."""
        item = self._take(step, "gaussian")
        return self._noise.gaussian(
            np.asarray(counts, dtype=np.float64).ravel(),
            sensitivity=float(item.noise["sensitivity"]),
            sigma=float(item.noise["sigma"]),
            rng=self._rng,
        ).reshape(np.shape(counts))

    def select(self, step: str, scores: FloatArray) -> int:
        """An exponential-mechanism choice among ``scores``."""
        item = self._take(step, "exponential")
        return self._noise.exponential(
            np.asarray(scores, dtype=np.float64),
            sensitivity=float(item.noise["sensitivity"]),
            epsilon=float(item.noise["epsilon"]),
            rng=self._rng,
        )

    def partition(self, step: str, counts: Mapping[K, int]) -> list[K]:
        """DP key selection (noisy threshold)."""
        item = self._take(step, "partition_selection")
        return self._noise.partition_selection(
            counts,
            epsilon=float(item.noise["epsilon"]),
            delta=float(item.noise["delta"]),
            max_partitions_contributed=int(item.noise["max_partitions_contributed"]),
            rng=self._rng,
        )

    def sigma(self, step: str) -> float:
        """The planned sigma of a Gaussian step (public), by name."""
        for item in self._items:
            if item.step == step:
                return float(item.noise["sigma"])
        raise PlanMismatch(f"no planned step {step!r}")

    def has(self, step: str) -> bool:
        """Whether the plan holds a step of that name."""
        return any(item.step == step for item in self._items)

    def finish(self) -> None:
        """Check that every planned step ran."""
        if self._next != len(self._items):
            raise PlanMismatch(f"{len(self._items) - self._next} planned steps did not run")
