"""What judging returns: one case's outcome, and one test item's (a case, or every case of a statistical row).

``plugin.py`` alone turns these into pytest's failures: it re-raises :attr:`CaseOutcome.exception` (the
user's own assertion, so pytest shows it as written) and fails with :attr:`ItemOutcome.message` otherwise.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..golden import GoldenCase
from ..results import CaseResult


class Status(enum.Enum):
    """How a case came out on its model row."""

    PASSED = "passed"
    BROKEN = "broken"  # the checks failed on a candidate where the incumbent passed at least one sample
    CHECK_FAILED = "check failed"  # the checks failed otherwise (on the incumbent, or where it failed too)
    BEYOND_TOLERANCE = "beyond tolerance"  # the checks passed but drift broke a tolerance
    FAILED_CALL = "failed call"  # the model gave no answer (recording or candidate)
    NOT_JUDGED = "not judged"  # no usable golden (missing, stale, unrecorded perturbed inputs, changed app)


@dataclass(frozen=True)
class CaseOutcome:
    """One case judged on one row: its result, why it failed, and the golden it recorded."""

    status: Status
    result: CaseResult
    #: the one-line reasons the case failed (the tolerance lines broken, the failed call, the missing golden)
    reasons: tuple[str, ...] = ()
    #: the checks' own failure, re-raised so pytest shows the user's assertion
    exception: BaseException | None = None
    #: a golden recorded on the incumbent row, to be written when the run ends
    recording: GoldenCase | None = None

    @property
    def passed(self) -> bool:
        return self.status is Status.PASSED

    @property
    def message(self) -> str | None:
        """The line pytest fails the item with when there is no exception to re-raise."""
        if self.status is Status.BEYOND_TOLERANCE:
            return "drift beyond tolerance: " + "; ".join(self.reasons)
        return self.reasons[0] if self.reasons else None


@dataclass(frozen=True)
class ItemOutcome:
    """One test item judged: its cases, and the exception or message that fails it (neither when it passed)."""

    cases: tuple[CaseOutcome, ...]
    exception: BaseException | None = None
    message: str | None = None

    @classmethod
    def of_case(cls, case: CaseOutcome) -> ItemOutcome:
        return cls((case,), case.exception, None if case.exception is not None else case.message)

    @property
    def passed(self) -> bool:
        return self.exception is None and self.message is None
