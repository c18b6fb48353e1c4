"""A crafted contract-v2 scenario whose KPIs are computed by hand (EVENTS.md version 2).

Agency TH-S-TP (Sở Tư pháp) and TH-S-XD (Sở Xây dựng), May–July 2024, local time (+07:00).

Offerings of TH-S-TP:
* O1 1.001193 (eligible): partial, no prefill from 2024-05-01; full_process with prefill from
  2024-06-15 10:00 (an upgrade in the middle of a month).
* O2 1.000656 (eligible): full_process with prefill from 2024-06-01 03:00+07:00, i.e.
  2024-05-31 20:00 UTC: after the end of May locally (2024-05-31 17:00 UTC), before it in UTC.
* O3 1.000894 (not eligible): full_process, no prefill, from 2024-05-01.
* O4 1.004873 (eligible): partial from 2024-05-01, not_offered from 2024-06-10.

Dossiers (service/2 unless said otherwise):
* D1 (TP, 1.001193) online full_process, 4 of 10 fields prefilled, submitted 06-25 09:00, due
  07-03 17:00: open across the end of June, not overdue; completed 07-02 10:00, electronic.
* D2 (TP) counter, reused 2 components, submitted 06-03 08:00, due 06-20 17:00: open and overdue
  at the end of June; completed 07-05 10:00, not electronic.
* D3 (TP, 1.000656) online partial, 0 of 8 prefilled, submitted 06-05 09:00, due 06-12 17:00,
  paid online 06-05 09:30, supplement requested 06-07 09:00 and received 06-12 09:00 (5 days),
  completed 06-15 10:00: late against due_at, on time against the effective due (06-17 17:00).
* D4 (TP) counter, submitted 06-10 09:00, withdrawn 06-12 09:00.
* D5 (TP) service/1 counter, submitted 06-11 09:00, completed 06-14 09:00 with on_time false.
* D6 (TP) postal, submitted 06-20 15:00, paid at the counter 06-21 09:00, rejected 06-22 09:00.
* D7 (TP) counter, submitted 06-28 09:00, due 2024-07-01 03:00+07:00 (06-30 20:00 UTC):
  open at the end of June, not overdue locally (overdue if June ended at midnight UTC);
  completed 2024-07-01 02:00+07:00 (June in UTC, July here), on time, electronic.
* D8 (XD, 1.013225) counter, submitted 07-10 09:00, due 07-15 17:00, completed 07-12 09:00,
  electronic.

Inspections of TH-S-TP: I1 online activity 06-03, concluded 06-04 (online); I2 on-site and
information-system activities, concluded 06-20 (hybrid); I3 ``thanh_tra`` (kind on its opened
event), on-site activity, concluded 06-21; I4 on-site activity 06-25, not concluded.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

TP, XD = "TH-S-TP", "TH-S-XD"
_NS = uuid.UUID("2f1d6c1e-5a0b-4f7e-9c1d-3a7b2e8f9d10")


def _id(name: str) -> str:
    return str(uuid.uuid5(_NS, name))


def _t(text: str) -> str:
    return text if "+" in text[10:] or text.endswith("Z") else f"2024-{text}:00+07:00"


def offering(
    name: str, agency: str, procedure: str, at: str, level: str, prefill: bool
) -> dict[str, Any]:
    return {
        "schema": "offering/1", "event_id": _id(name), "occurred_at": _t(at),
        "agency_code": agency, "procedure_code": procedure, "level": level,
        "prefill_designed": prefill,
    }  # fmt: skip


def dossier(name: str, kind: str, at: str, agency: str = TP, procedure: str = "1.001193",
            schema: str = "service/2", **fields: Any) -> dict[str, Any]:  # fmt: skip
    return {
        "schema": schema, "event_id": _id(f"{name}:{kind}:{at}"), "event_type": kind,
        "occurred_at": _t(at), "agency_code": agency, "procedure_code": procedure,
        "dossier_id": name, **fields,
    }  # fmt: skip


def inspection(name: str, event_type: str, at: str, **fields: Any) -> dict[str, Any]:
    return {
        "schema": "inspection/1", "event_id": _id(f"{name}:{event_type}:{at}"),
        "event_type": event_type,
        "occurred_at": _t(at), "agency_code": TP, "inspection_id": name, **fields,
    }  # fmt: skip


def _form(total: int, prefilled: int) -> dict[str, int]:
    return {"fields_total": total, "fields_prefilled": prefilled}


EVENTS: list[dict[str, Any]] = [
    offering("O1a", TP, "1.001193", "05-01T00:00", "partial", False),
    offering("O1b", TP, "1.001193", "06-15T10:00", "full_process", True),
    offering("O2", TP, "1.000656", "06-01T03:00", "full_process", True),
    offering("O3", TP, "1.000894", "05-01T00:00", "full_process", False),
    offering("O4a", TP, "1.004873", "05-01T00:00", "partial", False),
    offering("O4b", TP, "1.004873", "06-10T00:00", "not_offered", False),
    dossier("D1", "submitted", "06-25T09:00", channel="online", service_level="full_process",
            form=_form(10, 4), due_at=_t("07-03T17:00"), digitized=True),
    dossier("D1", "completed", "07-02T10:00", result_electronic=True),
    dossier("D2", "submitted", "06-03T08:00", channel="counter", due_at=_t("06-20T17:00"),
            digitized=False, reused_components=2),
    dossier("D2", "completed", "07-05T10:00", result_electronic=False),
    dossier("D3", "submitted", "06-05T09:00", procedure="1.000656", channel="online",
            service_level="partial", form=_form(8, 0), due_at=_t("06-12T17:00"), digitized=True),
    dossier("D3", "paid", "06-05T09:30", procedure="1.000656", payment_channel="online"),
    dossier("D3", "supplement_requested", "06-07T09:00", procedure="1.000656"),
    dossier("D3", "supplement_received", "06-12T09:00", procedure="1.000656"),
    dossier("D3", "completed", "06-15T10:00", procedure="1.000656", result_electronic=True),
    dossier("D4", "submitted", "06-10T09:00", channel="counter", due_at=_t("06-20T17:00"),
            digitized=True),
    dossier("D4", "withdrawn", "06-12T09:00"),
    dossier("D5", "submitted", "06-11T09:00", schema="service/1", channel="counter"),
    dossier("D5", "completed", "06-14T09:00", schema="service/1", on_time=False),
    dossier("D6", "submitted", "06-20T15:00", channel="postal", due_at=_t("06-28T17:00"),
            digitized=False),
    dossier("D6", "paid", "06-21T09:00", payment_channel="counter"),
    dossier("D6", "rejected", "06-22T09:00"),
    dossier("D7", "submitted", "06-28T09:00", channel="counter", due_at=_t("07-01T03:00"),
            digitized=True),
    dossier("D7", "completed", "07-01T02:00", result_electronic=True),
    dossier("D8", "submitted", "07-10T09:00", agency=XD, procedure="1.013225", channel="counter",
            due_at=_t("07-15T17:00"), digitized=True),
    dossier("D8", "completed", "07-12T09:00", agency=XD, procedure="1.013225",
            result_electronic=True),
    inspection("I1", "opened", "06-01T09:00"),
    inspection("I1", "activity", "06-03T09:00", activity={"mode": "video_conference"}),
    inspection("I1", "concluded", "06-04T09:00"),
    inspection("I2", "opened", "06-10T09:00"),
    inspection("I2", "activity", "06-11T09:00", activity={"mode": "on_site"}),
    inspection("I2", "activity", "06-12T09:00",
               activity={"mode": "information_system", "system_code": "HTTT-01"}),
    inspection("I2", "concluded", "06-20T09:00"),
    inspection("I3", "opened", "06-15T09:00", kind="thanh_tra"),
    inspection("I3", "activity", "06-16T09:00", activity={"mode": "on_site"}),
    inspection("I3", "concluded", "06-21T09:00"),
    inspection("I4", "activity", "06-25T09:00", activity={"mode": "on_site"}),
]  # fmt: skip


def payloads() -> list[bytes]:
    return [json.dumps(e, ensure_ascii=False).encode() for e in EVENTS]


DAY = 86_400_000
HOUR = 3_600_000

# Hand-computed monthly KPIs: (agency or None, month) -> the values that matter.
EXPECTED_MONTH: dict[tuple[str | None, str], dict[str, Any]] = {
    # End of May: O1 partial, O3 full_process (ineligible), O4 partial; O2 not yet (local time).
    (TP, "2024-05"): {
        "services_existing": 3, "services_eligible": 2, "services_full_process": 0,
        "full_process_offering_rate": 0.0, "services_online": 3, "services_prefill_designed": 0,
        "prefill_design_coverage": 0.0, "dossiers_submitted": 0, "on_time_rate": None,
        "online_inspection_share": None,
    },
    (TP, "2024-06"): {
        # O1 full_process (upgraded mid-June), O2 full_process; O3 ineligible; O4 not offered.
        "services_existing": 3, "services_eligible": 2, "services_full_process": 2,
        "full_process_offering_rate": 1.0, "services_online": 3, "services_prefill_designed": 2,
        "prefill_design_coverage": 2 / 3,
        # D1..D7 submitted in June; online D1, D3; full_process D1.
        "dossiers_submitted": 7, "online_submissions": 2, "online_dossier_rate": 2 / 7,
        "online_full_process": 1, "full_process_dossier_rate": 1 / 7,
        "dossiers_reusing": 2, "data_reuse_rate": 2 / 7,  # D1 prefilled, D2 reused
        "dossiers_v2": 6, "dossiers_digitized": 4, "digitization_rate": 4 / 6,
        "online_prefilled": 1, "prefilled_submission_share": 0.5, "prefill_depth": 4 / 18,
        "services_with_online_dossiers": 2, "services_with_prefilled_dossiers": 1,
        "prefill_observed_coverage": 0.5,
        # Completed in June: D3 (on time through its pause), D5 (v1, late). Open at the end of
        # June: D1 (not overdue), D2 (overdue), D7 (not overdue, local time).
        "dossiers_completed": 2, "dossiers_completed_on_time": 1, "dossiers_open": 3,
        "dossiers_overdue": 1, "on_time_rate": 3 / 5,
        "dossiers_resolved": 1, "average_resolution_days": (10 * DAY + HOUR - 5 * DAY) / DAY,
        "completions_v2": 1, "results_electronic": 1, "electronic_result_rate": 1.0,
        "payments": 2, "payments_online": 1, "online_payment_rate": 0.5,
        "inspections_online": 1, "inspections_hybrid": 1, "inspections_in_person": 0,
        "inspections_unclassified": 0, "inspections_thanh_tra": 1, "online_inspection_share": 0.5,
        "activities": 4, "activities_online": 2, "online_activity_share": 0.5,
    },
    (TP, "2024-07"): {
        "services_existing": 3, "full_process_offering_rate": 1.0,
        "prefill_design_coverage": 2 / 3, "dossiers_submitted": 0, "online_dossier_rate": None,
        # D1 on time, D2 late, D7 on time (local July).
        "dossiers_completed": 3, "dossiers_completed_on_time": 2, "dossiers_open": 0,
        "on_time_rate": 2 / 3,
        "average_resolution_days": (
            (7 * DAY + HOUR) + (32 * DAY + 2 * HOUR) + (2 * DAY + 17 * HOUR)
        ) / 3 / DAY,
        "completions_v2": 3, "results_electronic": 2, "electronic_result_rate": 2 / 3,
        "payments": 0, "online_payment_rate": None, "activities": 0,
    },
    (XD, "2024-07"): {
        "services_existing": 0, "full_process_offering_rate": None, "dossiers_submitted": 1,
        "online_dossier_rate": 0.0, "digitization_rate": 1.0, "dossiers_completed": 1,
        "on_time_rate": 1.0, "average_resolution_days": (2 * DAY) / DAY,
        "electronic_result_rate": 1.0,
    },
    (None, "2024-05"): {"services_existing": 3, "full_process_offering_rate": 0.0},
    (None, "2024-06"): {"dossiers_submitted": 7, "on_time_rate": 3 / 5, "dossiers_open": 3},
    (None, "2024-07"): {
        "dossiers_submitted": 1, "online_dossier_rate": 0.0, "dossiers_completed": 4,
        "dossiers_completed_on_time": 3, "on_time_rate": 3 / 4, "completions_v2": 4,
        "electronic_result_rate": 3 / 4, "full_process_offering_rate": 1.0,
    },
}  # fmt: skip

EXPECTED_ROWS_MONTH = {(TP, "2024-05"), (TP, "2024-06"), (TP, "2024-07"), (XD, "2024-07"),
                       (None, "2024-05"), (None, "2024-06"), (None, "2024-07")}  # fmt: skip
"""Every (agency, month) row: XD has a row only in July (no fact or service before)."""
