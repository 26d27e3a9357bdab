"""The verification rules a deployment chooses: lifetimes, limits and the legacy contract."""

from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class VerificationPolicy:
    """Settings of the use cases, turned into plain values by the entry point."""

    code_time_to_live: timedelta = timedelta(minutes=5)
    max_check_attempts: int = 5
    resend_cooldown: timedelta = timedelta(seconds=30)
    # ISO 3166-1 alpha-2 regions that may receive codes; empty allows every region.
    allowed_countries: frozenset[str] = field(default_factory=frozenset)
    # How long a worker's claim on a request lasts before another worker may take it
    # over, as long as no send was started.
    claim_lease: timedelta = timedelta(minutes=2)
    legacy_plain_code: bool = False

    def __post_init__(self) -> None:
        if self.max_check_attempts < 1:
            raise ValueError(f"max_check_attempts must be 1 or more, got {self.max_check_attempts}")
