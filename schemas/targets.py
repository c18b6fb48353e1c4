"""The official targets of the KPIs (EVENTS.md version 2), each with its source.

A KPI has a default target only where an official source gives one; the others have none
(``None``). Every target is a setting (``PARWATCH_TARGET_<KPI>``), written to the warehouse's
``kpi_settings`` table, which the KPI views read as ``target_<kpi>`` columns.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Target:
    value: float
    source: str


TARGETS: dict[str, Target] = {
    "full_process_offering_rate": Target(
        1.00,
        "Thanh Hóa's 2024 administrative-reform plan: 100% of eligible procedures offered as "
        "full-process online services (Decision 766/QĐ-TTg §3.1 measures it)",
    ),
    "prefill_design_coverage": Target(
        1.00,
        "Thanh Hóa's 2024 plan: 100% of online public services prefill data the user gave "
        "before (Decision 942/QĐ-TTg, the e-government strategy)",
    ),
    "online_inspection_share": Target(
        0.40,
        "Thanh Hóa's 2024 plan: 40% of the checks of state management agencies carried out "
        "through networks and information systems",
    ),
    "online_dossier_rate": Target(
        0.60,
        "Ministry of Information and Communications, 2024 target for online dossiers (reported "
        "with the 54.8% reached; vienkinhteso.vn)",
    ),
    "full_process_dossier_rate": Target(
        0.30,
        "the 2024 target for the full-process online dossier rate measured by the national EMC "
        "system: 30–50% (kinhtedothi.vn); the lower bound",
    ),
    "data_reuse_rate": Target(
        0.80,
        "Decision 766/QĐ-TTg §4.3: full marks from 80% of dossiers reusing digitised data",
    ),
}
"""KPI key -> its default target. KPIs absent here have no sourced target."""
