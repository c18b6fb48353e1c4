"""What a simulation run is asked for: ``SimulationConfig``, the simulator's one input."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta, timezone


@dataclass(frozen=True)
class SimulationConfig:
    """What to simulate. Rates are probabilities per entity or per message, in 0..1."""

    seed: int
    events: int  # exact number of messages, duplicates and refused payloads included
    start: date = date(2024, 1, 1)
    end: date = date(2025, 12, 31)  # inclusive; no event occurs later
    inspection_share: float = 0.30  # of the messages; the rest are service events
    offering_share: float = 0.03  # of the messages, at most: offering/1 lines of chosen services
    v1_agency_share: float = 0.15  # of agencies: not upgraded, they send service/1 as before
    # Inspections
    cancel_rate: float = 0.04
    no_activity_rate: float = 0.06  # concluded without any activity: unclassified
    online_trend: float = 0.12  # P(all online) grows by this much over the range
    straggler_rate: float = 0.03  # an activity delivered after the conclusion
    activity_after_conclusion_rate: float = 0.03  # an activity that occurs after it
    month_boundary_rate: float = 0.03  # concluded 00:00–07:00 local on a month's first day
    thanh_tra_share: float = 0.05  # of other agencies' inspections (TH-TTR's are all thanh_tra)
    # Dossiers
    channel_mix: tuple[float, float, float] = (0.60, 0.32, 0.08)  # online, counter, postal
    after_hours_share: float = 0.2  # of online submissions
    completion_rate: float = 0.82
    rejection_rate: float = 0.10
    withdrawal_rate: float = 0.03  # service/2 only; the rest stay open
    on_time_rate: float = 0.85  # mean over agencies
    never_prefill_share: float = 0.2  # of procedures
    prefill_trend: float = 0.10
    # Dossier lifecycles (service/2); "trend" is the rise over the range
    supplement_rate: float = 0.12  # of dossiers: the agency asks for a supplement
    digitized_rate: float = 0.75
    digitized_trend: float = 0.20
    reuse_rate: float = 0.10  # P(reused_components >= 1)
    reuse_trend: float = 0.35
    fee_share: float = 0.5  # of procedures: a fee is paid
    online_payment_rate: float = 0.45
    online_payment_trend: float = 0.35
    electronic_result_rate: float = 0.70  # of online dossiers' results (counter ones: half)
    electronic_result_trend: float = 0.25
    # Delivery
    duplicate_rate: float = 0.02
    late_duplicate_share: float = 0.25  # of duplicates: re-sent 1–30 days later
    late_rate: float = 0.01  # delivered 1–6 weeks after it occurred
    utc_share: float = 0.05  # of agencies, which send ``Z`` timestamps
    extra_field_rate: float = 0.03  # unnamed free-text field
    invalid_share: float = 0.0
    hybrid_counts_as_online: bool = False
    now: datetime | None = None  # processing time for decode; default: the day after ``end``

    def __post_init__(self) -> None:
        if self.events < 0:
            raise ValueError("events must be >= 0")
        if self.start > self.end:
            raise ValueError("start must not be after end")
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float) and not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be within 0..1, got {value}")
        if len(self.channel_mix) != 3 or min(self.channel_mix) < 0 or sum(self.channel_mix) <= 0:
            raise ValueError("channel_mix: three non-negative weights (online, counter, postal)")
        if self.completion_rate + self.rejection_rate + self.withdrawal_rate > 1.0:
            raise ValueError("completion_rate + rejection_rate + withdrawal_rate must not exceed 1")
        if self.now is not None and self.now.utcoffset() is None:
            raise ValueError("now must carry a UTC offset")

    @property
    def processing_now(self) -> datetime:
        """The fixed ``now`` the truth is decoded with: 00:00+07:00 the day after ``end``."""
        if self.now is not None:
            return self.now
        return datetime.combine(
            self.end + timedelta(days=1), time(), tzinfo=timezone(timedelta(hours=7))
        )
