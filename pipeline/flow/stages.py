"""What one attempt (send.py, transfer_step.py) uses of the stage chain that calls it.

work.FileWork runs a file's step and hands each attempt to send.py or transfer_step.py with
itself; they know it only as :class:`Stages`, so they sit below work.py and never import it.
Everything an attempt reads or calls on it is declared here, and mypy holds FileWork to it.
"""

from __future__ import annotations

from typing import Callable, Optional, Protocol

from pipeline.flow.addressing import Addressing
from pipeline.flow.check import Judge
from pipeline.flow.job import Client, Job, Step
from pipeline.flow.retry import CircuitBreaker, RetryPolicy
from pipeline.journal import Journal, SidecarView
from pipeline.redox.transfer.upload import Transfer
from pipeline.values import Outcome


class Stages(Protocol):
    """The shared pieces an attempt works with, and the three ways it hands a file back."""
    journal: Journal
    client: Client
    policy: RetryPolicy
    breaker: CircuitBreaker
    transfer: Optional[Transfer]             # the upload path (None: not configured)
    routing: Addressing

    @property
    def judge(self) -> Judge: ...

    @property
    def rand(self) -> Callable[[], float]: ...

    @property
    def wall(self) -> Callable[[], float]: ...

    @property
    def observe(self) -> Callable[..., None]:
        """The metrics hook."""

    def auth_ready(self, job: Job, next_attempt: int) -> Optional[Step]:
        """A token before an attempt, or the Step for "later"."""

    def give_up(self, job: Job, attempts: Optional[int] = None, what: str = "attempts") -> Step:
        """Fail the file: its attempts are exhausted."""

    def done(self, job: Job, outcome: Outcome, view: Optional[SidecarView] = None) -> Step:
        """Finish the file with ``outcome``."""
