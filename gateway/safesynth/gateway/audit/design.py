"""The audit design: fixed at registration, before any engine runs.

From the registered table (``n_rows`` rows, identified by their position ``0..n_rows-1``) the design
draws

* a **reference holdout**: rows the engines never see. The attacks use it to calibrate (what does a
  non-member look like?) and the quality report tests on it;
* an **audit pool**: rows each of which enters the training data independently with probability 1/2
  (Steinke, Nasr & Jagielski 2023, "Privacy auditing with one (1) training run"). Pool members are in
  the training data, pool non-members are not. Because membership is a fair coin independent of
  everything else, a permutation test over the membership labels is exact under "the release does not
  depend on who is in the pool", and the one-run empirical epsilon lower bound is valid.

The design also fixes the seeds and the attack list, and commits to the private parts (holdout rows,
pool rows, membership vector) with a salted SHA-256 hash: the commitment goes into the ledger before
the engine runs, so that the audit cannot be re-drawn after the fact. :meth:`AuditDesign.to_ledger_json`
returns only public parts (commitment, seeds, attacks, sizes): the membership labels and the holdout
rows would tell who is in the training data, so they stay with the gateway's private state
(:meth:`AuditDesign.to_private_json`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from safesynth.gateway.audit.errors import DatasetTooSmall, DesignMismatch, InvalidAuditInput

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DEFAULT_ATTACKS",
    "DESIGN_VERSION",
    "AuditDesign",
    "make_design",
    "split",
]

DESIGN_VERSION = "audit-design/v1"
_COMMITMENT_DOMAIN = b"safesynth/audit-design/v1\x00"

#: Every attack the suite knows; text attacks run only where the schema has text columns.
DEFAULT_ATTACKS: tuple[str, ...] = (
    "exact_match",
    "dcr",
    "dcr_calibrated",
    "domias_kde",
    "classifier",
    "inference",
    "linkability",
    "singling_out",
    "text_exact",
    "text_ngram",
    "text_nn",
    "text_nn_calibrated",
)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def _frozen(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    a = np.array(a, copy=True)
    a.setflags(write=False)
    return a


def _commitment(salt: bytes, n_rows: int, holdout: IntArray, pool: IntArray, membership: BoolArray) -> str:
    body = json.dumps(
        {
            "n_rows": int(n_rows),
            "holdout": [int(i) for i in holdout],
            "pool": [int(i) for i in pool],
            "membership": "".join("1" if m else "0" for m in membership),
        },
        sort_keys=True,
        separators=(",", ":"),
    ).encode()
    return hashlib.sha256(_COMMITMENT_DOMAIN + salt + body).hexdigest()


@dataclass(frozen=True, eq=False)
class AuditDesign:
    """The audit plan of one dataset. Private: ``holdout``, ``pool``, ``membership``, ``salt``."""

    n_rows: int
    holdout: IntArray
    pool: IntArray
    membership: BoolArray
    salt: bytes
    attack_seed: int
    permutation_seed: int
    attacks: tuple[str, ...] = DEFAULT_ATTACKS
    n_permutations: int = 999
    commitment: str = field(default="")
    version: str = DESIGN_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "holdout", _frozen(np.asarray(self.holdout, dtype=np.int64)))
        object.__setattr__(self, "pool", _frozen(np.asarray(self.pool, dtype=np.int64)))
        object.__setattr__(self, "membership", _frozen(np.asarray(self.membership, dtype=np.bool_)))
        if self.pool.shape != self.membership.shape:
            raise DesignMismatch("pool and membership have different lengths")
        rows = np.concatenate([self.holdout, self.pool])
        if rows.size and (rows.min() < 0 or rows.max() >= self.n_rows):
            raise DesignMismatch("design rows outside 0..n_rows-1")
        if np.unique(rows).size != rows.size:
            raise DesignMismatch("holdout and pool rows must be distinct")
        unknown = sorted(set(self.attacks) - set(DEFAULT_ATTACKS))
        if unknown:
            raise InvalidAuditInput(f"unknown attacks: {unknown}", detail={"parameter": "attacks"})
        expected = _commitment(self.salt, self.n_rows, self.holdout, self.pool, self.membership)
        if not self.commitment:
            object.__setattr__(self, "commitment", expected)
        elif not hmac.compare_digest(self.commitment, expected):
            raise DesignMismatch("the commitment does not match the design's private parts")

    # ------------------------------------------------------------------ derived row sets
    @property
    def members(self) -> IntArray:
        """Pool rows that are in the training data."""
        return self.pool[self.membership]

    @property
    def non_members(self) -> IntArray:
        """Pool rows kept out of the training data."""
        return self.pool[~self.membership]

    @property
    def train_rows(self) -> IntArray:
        """Positions of the rows an engine may see (everything but the holdout and pool non-members)."""
        keep = np.ones(self.n_rows, dtype=np.bool_)
        keep[self.holdout] = False
        keep[self.non_members] = False
        return np.flatnonzero(keep).astype(np.int64)

    @property
    def unseen_rows(self) -> IntArray:
        """Positions the engines never see: the reference holdout plus pool non-members."""
        return np.sort(np.concatenate([self.holdout, self.non_members])).astype(np.int64)

    # ------------------------------------------------------------------ serialisation
    def verify_commitment(self) -> bool:
        """True when the commitment matches the private parts (always, for a constructed design)."""
        expected = _commitment(self.salt, self.n_rows, self.holdout, self.pool, self.membership)
        return hmac.compare_digest(self.commitment, expected)

    def to_ledger_json(self) -> dict[str, Any]:
        """The public parts, for the ``audit.design/v1`` ledger entry: no rows, labels or salt."""
        return {
            "version": self.version,
            "commitment": {"scheme": "sha256(domain || salt32 || canonical-json)", "digest": self.commitment},
            "n_rows": self.n_rows,
            "holdout_size": int(self.holdout.size),
            "pool_size": int(self.pool.size),
            "inclusion_probability": "0.5",
            "attack_seed": self.attack_seed,
            "permutation_seed": self.permutation_seed,
            "n_permutations": self.n_permutations,
            "attacks": list(self.attacks),
        }

    def to_private_json(self) -> dict[str, Any]:
        """Everything, for the gateway's private state (never for the ledger or a client)."""
        out = self.to_ledger_json()
        out.update(
            holdout=[int(i) for i in self.holdout],
            pool=[int(i) for i in self.pool],
            membership="".join("1" if m else "0" for m in self.membership),
            salt=self.salt.hex(),
        )
        return out

    @classmethod
    def from_private_json(cls, obj: dict[str, Any]) -> AuditDesign:
        """Inverse of :meth:`to_private_json`; checks the commitment (DesignMismatch if it differs)."""
        try:
            if obj.get("version") != DESIGN_VERSION:
                raise DesignMismatch(f"unknown design version {obj.get('version')!r}")
            return cls(
                n_rows=int(obj["n_rows"]),
                holdout=np.asarray(obj["holdout"], dtype=np.int64),
                pool=np.asarray(obj["pool"], dtype=np.int64),
                membership=np.asarray([c == "1" for c in obj["membership"]], dtype=np.bool_),
                salt=bytes.fromhex(obj["salt"]),
                attack_seed=int(obj["attack_seed"]),
                permutation_seed=int(obj["permutation_seed"]),
                attacks=tuple(obj["attacks"]),
                n_permutations=int(obj["n_permutations"]),
                commitment=str(obj["commitment"]["digest"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DesignMismatch(f"malformed design: {exc}") from exc


def make_design(
    n_rows: int,
    *,
    holdout_fraction: float = 0.1,
    pool_size: int | None = None,
    rng: np.random.Generator | None = None,
    attacks: tuple[str, ...] = DEFAULT_ATTACKS,
    n_permutations: int = 999,
) -> AuditDesign:
    """Draw an audit design for a table of ``n_rows`` rows.

    ``pool_size`` defaults to ``min(2000, (n_rows - holdout) // 4)`` rounded down to even; half of the
    pool (in expectation) is kept out of training, so the pool costs the engines about ``pool_size/2``
    rows. ``rng`` draws the rows and the membership coins; None uses a generator seeded from the OS's
    cryptographic source. The salt of the commitment always comes from :mod:`secrets`.
    """
    if isinstance(n_rows, bool) or not isinstance(n_rows, int) or n_rows < 0:
        raise InvalidAuditInput("n_rows must be a non-negative integer", detail={"parameter": "n_rows"})
    if not 0.0 < holdout_fraction < 1.0:
        raise InvalidAuditInput(
            "holdout_fraction must be in (0, 1)", detail={"parameter": "holdout_fraction"}
        )
    if n_permutations < 99:
        raise InvalidAuditInput("n_permutations must be at least 99", detail={"parameter": "n_permutations"})
    if n_rows < 8:
        raise DatasetTooSmall(f"an audit design needs at least 8 rows, the table has {n_rows}")
    gen = rng if rng is not None else np.random.default_rng(secrets.randbits(128))
    n_holdout = max(2, round(holdout_fraction * n_rows))
    rest = n_rows - n_holdout
    if pool_size is None:
        pool_size = min(2000, rest // 4)
    if pool_size < 0 or pool_size > rest - 2:
        raise InvalidAuditInput(
            f"pool_size must be in [0, {rest - 2}] for {n_rows} rows", detail={"parameter": "pool_size"}
        )
    perm = gen.permutation(n_rows).astype(np.int64)
    holdout = np.sort(perm[:n_holdout])
    pool = np.sort(perm[n_holdout : n_holdout + pool_size])
    membership = gen.random(pool_size) < 0.5
    return AuditDesign(
        n_rows=n_rows,
        holdout=holdout,
        pool=pool,
        membership=membership,
        salt=secrets.token_bytes(32),
        attack_seed=int(gen.integers(0, 2**31 - 1)),
        permutation_seed=int(gen.integers(0, 2**31 - 1)),
        attacks=tuple(attacks),
        n_permutations=n_permutations,
    )


def split(df: pd.DataFrame, design: AuditDesign) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train, holdout)`` of the registered table ``df`` under ``design``.

    ``train`` is what the engines see (all rows but the reference holdout and the pool non-members);
    ``holdout`` is every row they never see (the reference holdout plus the pool non-members). Both keep
    the row position in the registered table as their index: :func:`run_audit` finds the pool through it.
    """
    if len(df) != design.n_rows:
        raise DesignMismatch(f"the design is for {design.n_rows} rows, the table has {len(df)}")
    base = df.reset_index(drop=True)
    return base.iloc[design.train_rows], base.iloc[design.unseen_rows]
