"""The plan's three targets (Thanh Hóa's administrative-reform plan): full-process offering 100%,
prefill design 100%, online inspections 40%.

For each target, one row of panels: a gauge over the chosen period (variables ``grain`` and
``period``, read from ``kpi_<grain>``), its monthly trend over the dashboard's range with a
projection to December of the plan year, the projection as a number, and the list an operator
acts on. The projection method (``PROJECTION_RULE``): the least-squares line through the last
``PROJECTION_MONTHS`` monthly values (months with a value within the range), evaluated at
December of the year of the latest of them (the plan year), clipped to 0..1; none with fewer
than two months.
"""

from __future__ import annotations

from dataclasses import dataclass

from dashboards.spec import (
    AGENCY,
    DAYS_IN_RANGE,
    PERIOD,
    PERIOD_END_MS,
    Dashboard,
    Panel,
    Targets,
)

PROJECTION_MONTHS = 6
UID = "parwatch-plan-targets"


@dataclass(frozen=True)
class PlanKpi:
    key: str
    short: str  # the gauge's label
    title: str
    numerator: str  # over the summed counts of the family's view rows
    denominator: str
    rule: str  # how it is counted (Vietnamese)
    family: str  # the narrow KPI views it reads: kpi_<family>_<grain> (migration 0012)


KPIS = (
    PlanKpi(
        "full_process_offering_rate",
        "Toàn trình",
        "Thủ tục đủ điều kiện cung cấp dịch vụ công trực tuyến toàn trình",
        "services_full_process",
        "services_eligible",
        "Dịch vụ (cơ quan × thủ tục) tồn tại vào cuối kỳ theo sự kiện offering mới nhất (không "
        "tính not_offered); tỷ lệ = dịch vụ của thủ tục đủ điều kiện (cờ full_process_eligible "
        "của CSDL quốc gia về thủ tục hành chính) đang ở mức full_process ÷ dịch vụ của thủ tục "
        "đủ điều kiện (QĐ 766/QĐ-TTg §3.1).",
        "services",
    ),
    PlanKpi(
        "prefill_design_coverage",
        "Thiết kế điền sẵn",
        "Dịch vụ công trực tuyến được thiết kế điền sẵn dữ liệu đã cung cấp",
        "services_prefill_designed",
        "services_online",
        "Dịch vụ trực tuyến (toàn trình hoặc một phần) tồn tại vào cuối kỳ; tỷ lệ = dịch vụ có "
        "prefill_designed (biểu mẫu tự điền dữ liệu người dân đã cung cấp) ÷ dịch vụ trực "
        "tuyến (QĐ 942/QĐ-TTg).",
        "services",
    ),
    PlanKpi(
        "online_inspection_share",
        "Kiểm tra trực tuyến",
        "Cuộc kiểm tra qua môi trường mạng và hệ thống thông tin",
        "inspections_online + if(hybrid = 1, inspections_hybrid, 0)",
        "inspections_online + inspections_hybrid + inspections_in_person",
        "Cuộc kiểm tra của cơ quan quản lý nhà nước (kiem_tra; không tính thanh tra) kết thúc "
        "trong kỳ, không tính cuộc đã hủy; tỷ lệ = trực tuyến (mọi hoạt động qua mạng) ÷ "
        "(trực tuyến + kết hợp + trực tiếp); kết hợp chỉ vào tử số khi "
        "PARWATCH_HYBRID_COUNTS_AS_ONLINE=true; chưa phân loại không vào mẫu số.",
        "inspections",
    ),
)

# The counts each family's gauge sums (the columns of kpi_<family>_<grain>).
SUMMED = {
    "services": (
        "services_eligible", "services_full_process", "services_online",
        "services_prefill_designed",
    ),
    "inspections": (
        "inspections_online", "inspections_hybrid", "inspections_in_person",
        "inspections_unclassified",
    ),
}  # fmt: skip


def _sums(family: str) -> str:
    out = ",\n       ".join(f"sum({c}) AS {c}" for c in SUMMED[family])
    if family == "inspections":
        out += ",\n       max(hybrid_counts_as_online) AS hybrid"
    return out


PROJECTION_RULE = (
    f"Dự báo: đường thẳng bình phương tối thiểu qua {PROJECTION_MONTHS} giá trị tháng gần nhất "
    "có số liệu trong khoảng thời gian đang xem, kéo dài đến tháng 12 của năm kế hoạch (năm "
    "của tháng gần nhất), giới hạn trong 0–100%; không dự báo khi có dưới 2 tháng. Giá trị "
    "mỗi tháng là chỉ số của tháng đó (với dịch vụ: trạng thái vào cuối tháng)."
)
PERIOD_RULE = (
    "Kỳ chọn ở biến 'Loại kỳ' và 'Kỳ' (năm, quý, tháng theo giờ Việt Nam); cộng số liệu của "
    "các cơ quan đã chọn rồi chia, như parwatch kpi."
)


def _value(k: PlanKpi) -> str:
    return f"if(({k.denominator}) = 0, NULL, ({k.numerator}) / ({k.denominator}))"


def period_sums(family: str) -> str:
    """One row: the family's counts of the chosen agencies' rows of the chosen period."""
    return f"""SELECT {_sums(family)}
FROM kpi_{family}_${{grain}}
WHERE period = {PERIOD} AND agency_code IS NOT NULL AND {AGENCY}"""


def monthly(k: PlanKpi) -> str:
    """(period_start, v): the KPI of each month of the range with a row."""
    return f"""SELECT period_start, {_value(k)} AS v
FROM (
SELECT period_start, {_sums(k.family)}
FROM kpi_{k.family}_month
WHERE agency_code IS NOT NULL AND {AGENCY} AND {DAYS_IN_RANGE}
GROUP BY period_start
)"""


def fit(k: PlanKpi) -> str:
    """(kb, n, last_month): the line through the last monthly values, over the month number."""
    return f"""SELECT simpleLinearRegression(toFloat64(toRelativeMonthNum(period_start)), v) AS kb,
       count() AS n, max(period_start) AS last_month
FROM (
SELECT period_start, v FROM ({monthly(k)})
WHERE v IS NOT NULL
ORDER BY period_start DESC
LIMIT {PROJECTION_MONTHS}
)"""


def _at(month: str) -> str:
    return f"greatest(0., least(1., kb.1 * toRelativeMonthNum({month}) + kb.2))"


def _target(key: str, t: Targets) -> str:
    """The warehouse's target (``kpi_settings``, as the views read it), else the dashboard's."""
    default = "NULL" if t.get(key) is None else repr(t.get(key))
    return (
        f"ifNull((SELECT anyOrNull(value) FROM kpi_settings FINAL WHERE name = 'target_{key}'), "
        f"{default})"
    )


def _gauge(k: PlanKpi, t: Targets) -> Panel:
    return Panel(
        key=f"{k.key}_gauge",
        kind="gauge",
        title=k.title,
        description=f"Mục tiêu: {t.pct(k.key)}. {k.rule} {PERIOD_RULE}",
        sql=f"SELECT {_value(k)} AS {k.key}\nFROM (\n{period_sums(k.family)}\n)",
        labels={k.key: k.short},
        unit="percentunit",
        target=t.get(k.key),
        kpi_keys={k.key: k.key},
        w=6,
        h=9,
    )


def _trend(k: PlanKpi, t: Targets) -> Panel:
    sql = f"""SELECT toDateTime(p, 'Asia/Ho_Chi_Minh') AS time, max(actual) AS {k.key},
       max(projection) AS projection, any(target) AS target_line
FROM (
SELECT period_start AS p, v AS actual, CAST(NULL, 'Nullable(Float64)') AS projection,
       {_target(k.key, t)} AS target
FROM ({monthly(k)})
UNION ALL
SELECT addMonths(last_month, toInt32(m)) AS p, CAST(NULL, 'Nullable(Float64)') AS actual,
       {_at("addMonths(last_month, toInt32(m))")} AS projection, {_target(k.key, t)} AS target
FROM ({fit(k)})
ARRAY JOIN range(toUInt64(13 - toMonth(last_month))) AS m
WHERE n >= 2
)
GROUP BY p
ORDER BY time"""
    return Panel(
        key=f"{k.key}_trend",
        kind="timeseries",
        title=f"{k.short}: theo tháng và dự báo đến tháng 12",
        description=f"{k.rule} {PROJECTION_RULE} Đường đỏ nét đứt: mục tiêu.",
        sql=sql,
        labels={k.key: "Thực tế", "projection": "Dự báo", "target_line": "Mục tiêu"},
        unit="percentunit",
        target=t.get(k.key),
        time_series=True,
        dashed=("projection", "target_line"),
        w=12,
        h=9,
    )


def _projection(k: PlanKpi, t: Targets) -> Panel:
    december = "makeDate(toYear(last_month), 12, 1)"
    sql = f"""SELECT if(n < 2, NULL, {_at(december)}) AS projected,
       if(n = 0, '—', toString(toYear(last_month))) AS plan_year,
       n AS months, if(n < 2, NULL, kb.1) AS slope
FROM ({fit(k)})"""
    return Panel(
        key=f"{k.key}_projection",
        kind="stat",
        title=f"{k.short}: dự báo tháng 12 năm kế hoạch",
        description=(
            f"Mục tiêu: {t.pct(k.key)}. {PROJECTION_RULE} 'Mỗi tháng' = độ dốc của đường "
            "thẳng (điểm phần trăm mỗi tháng)."
        ),
        sql=sql,
        labels={
            "projected": "Dự báo tháng 12",
            "plan_year": "Năm kế hoạch",
            "months": "Số tháng dùng",
            "slope": "Mỗi tháng",
        },
        unit="percentunit",
        column_units={"plan_year": "none", "months": "short"},
        target=t.get(k.key),
        w=6,
        h=9,
    )


_NAMES = """LEFT JOIN (SELECT code, name FROM agencies FINAL) AS a ON a.code = h.agency_code
LEFT JOIN (SELECT code, name FROM procedures FINAL) AS pr ON pr.code = h.procedure_code"""

SERVICE_GAP_LABELS = {
    "agency_code": "Mã cơ quan",
    "agency_name": "Cơ quan",
    "procedure_code": "Mã thủ tục",
    "procedure_name": "Tên thủ tục",
    "level": "Mức hiện tại",
    "since": "Từ ngày",
}


def services_at_period_end(condition: str) -> str:
    """The services existing at the end of the chosen period that meet ``condition`` (on
    ``level``, ``prefill_designed``, ``eligible``), with agency and procedure names."""
    return f"""SELECT h.agency_code AS agency_code, a.name AS agency_name,
       h.procedure_code AS procedure_code, pr.name AS procedure_name, h.level AS level,
       h.valid_from AS since
FROM (
SELECT agency_code, procedure_code, level, prefill_designed, valid_from,
       procedure_code IN (SELECT code FROM procedures WHERE full_process_eligible = 1)
         AS eligible
FROM service_offering_history
WHERE toUnixTimestamp64Milli(valid_from) <= {PERIOD_END_MS}
  AND (valid_to IS NULL OR toUnixTimestamp64Milli(valid_to) > {PERIOD_END_MS})
  AND level != 'not_offered'
  AND {AGENCY}
) AS h
{_NAMES}
WHERE {condition}
ORDER BY agency_code, procedure_code"""


def _gap_panels(t: Targets) -> dict[str, Panel]:
    end = "vào cuối kỳ đã chọn (trạng thái theo sự kiện offering mới nhất)"
    not_full = Panel(
        key="full_process_offering_rate_gaps",
        kind="table",
        title="Thủ tục đủ điều kiện chưa cung cấp toàn trình",
        description=(
            f"Dịch vụ của thủ tục đủ điều kiện toàn trình mà cơ quan chưa cung cấp ở mức "
            f"full_process {end}, theo cơ quan: đây là phần còn thiếu để đạt "
            f"{t.pct('full_process_offering_rate')}. 'Từ ngày': ngày trạng thái hiện tại có hiệu "
            "lực."
        ),
        sql=services_at_period_end("h.eligible AND h.level != 'full_process'"),
        labels=SERVICE_GAP_LABELS,
        h=12,
        w=24,
    )
    no_prefill = Panel(
        key="prefill_design_coverage_gaps",
        kind="table",
        title="Dịch vụ công trực tuyến chưa thiết kế điền sẵn",
        description=(
            f"Dịch vụ trực tuyến (toàn trình hoặc một phần) chưa có prefill_designed {end}, "
            f"theo cơ quan: phần còn thiếu để đạt {t.pct('prefill_design_coverage')}."
        ),
        sql=services_at_period_end(
            "h.level IN ('full_process', 'partial') AND h.prefill_designed = 0"
        ),
        labels=SERVICE_GAP_LABELS,
        h=12,
        w=24,
    )
    below = Panel(
        key="online_inspection_share_gaps",
        kind="table",
        title="Cơ quan dưới mục tiêu kiểm tra trực tuyến",
        description=(
            f"Cơ quan có tỷ lệ kiểm tra trực tuyến trong kỳ dưới mục tiêu "
            f"{t.pct('online_inspection_share')}, thấp nhất trước, với số cuộc của từng hình "
            "thức. 'Cần thêm' = số cuộc trực tuyến tối thiểu thêm vào (trong số đã phân loại) "
            "để đạt mục tiêu: ⌈mục tiêu × đã phân loại⌉ − trực tuyến. " + KPIS[2].rule
        ),
        sql=f"""WITH {_target("online_inspection_share", t)} AS target
SELECT k.agency_code AS agency_code, a.name AS agency_name,
       inspections_online + inspections_hybrid + inspections_in_person AS classified,
       inspections_online AS online, inspections_hybrid AS hybrid,
       inspections_in_person AS in_person, inspections_unclassified AS unclassified,
       online_inspection_share,
       toInt64(ceil(target * classified - 1e-9))
         - toInt64(inspections_online + if(hybrid_counts_as_online = 1, inspections_hybrid, 0))
         AS needed
FROM kpi_inspections_${{grain}} AS k
LEFT JOIN (SELECT code, name FROM agencies FINAL) AS a ON a.code = k.agency_code
WHERE period = {PERIOD} AND k.agency_code IS NOT NULL AND {AGENCY}
  AND online_inspection_share < target
ORDER BY online_inspection_share, agency_code""",
        labels={
            "agency_code": "Mã",
            "agency_name": "Cơ quan",
            "classified": "Đã phân loại",
            "online": "Trực tuyến",
            "hybrid": "Kết hợp",
            "in_person": "Trực tiếp",
            "unclassified": "Chưa phân loại",
            "online_inspection_share": "Tỷ lệ",
            "needed": "Cần thêm",
        },
        unit="short",
        column_units={"online_inspection_share": "percentunit"},
        target=t.get("online_inspection_share"),
        target_column="online_inspection_share",
        h=12,
        w=24,
    )
    return {p.key.removesuffix("_gaps"): p for p in (not_full, no_prefill, below)}


def _counts() -> Panel:
    labels = {
        "services_eligible": "Dịch vụ đủ điều kiện",
        "services_full_process": "Đang toàn trình",
        "services_online": "Dịch vụ trực tuyến",
        "services_prefill_designed": "Có điền sẵn",
        "inspections_online": "Kiểm tra trực tuyến",
        "inspections_hybrid": "Kết hợp",
        "inspections_in_person": "Trực tiếp",
        "inspections_unclassified": "Chưa phân loại",
    }
    return Panel(
        key="plan_counts",
        kind="stat",
        title="Số liệu của kỳ",
        description="Các số đếm sau ba tỷ lệ, trong kỳ đã chọn. " + PERIOD_RULE,
        sql=f"SELECT {', '.join(labels)}\nFROM (\n{period_sums('services')}\n) AS s\n"
        f"CROSS JOIN (\n{period_sums('inspections')}\n) AS i",
        labels=labels,
        unit="short",
        kpi_keys={c: c for c in labels},
        w=24,
        h=5,
    )


def panels(t: Targets) -> tuple[Panel, ...]:
    gaps = _gap_panels(t)
    out: list[Panel] = []
    for k in KPIS:
        out += [_gauge(k, t), _trend(k, t), _projection(k, t), gaps[k.key]]
    return (*out, _counts())


def dashboard(t: Targets) -> Dashboard:
    return Dashboard(
        uid=UID,
        title="Mục tiêu kế hoạch cải cách hành chính",
        description=(
            "Ba mục tiêu của kế hoạch cải cách hành chính tỉnh Thanh Hóa: "
            f"{t.pct('full_process_offering_rate')} thủ tục đủ điều kiện cung cấp dịch vụ công "
            f"trực tuyến toàn trình, {t.pct('prefill_design_coverage')} dịch vụ công trực tuyến "
            f"điền sẵn dữ liệu, {t.pct('online_inspection_share')} cuộc kiểm tra qua môi trường "
            "mạng. Mỗi mục tiêu: giá trị trong kỳ, xu hướng và dự báo đến cuối năm, danh sách "
            "việc cần làm."
        ),
        panels=panels(t),
        variables=("grain", "period", "agency"),
    )
