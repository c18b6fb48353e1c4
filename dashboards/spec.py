"""The dashboards as data: panels with their SQL, in one place for Grafana's JSON and the report.

A ``Panel`` holds one query (``sql``, written for the ClickHouse datasource plugin: its macros and
Grafana's variables, see ``dashboards.macros``), the visualisation, Vietnamese labels for its
columns and, where a target applies, the thresholds. ``build_dashboards(targets)`` returns the
three dashboards; ``dashboards.build`` turns them into Grafana JSON and ``dashboards.report``
runs the same SQL for the HTML page.

Conventions that keep every query valid after expansion (checked by the tests):
- shares are computed from the same facts and with the same formulas as the KPI views
  (``schemas/clickhouse/0005_kpi_views.sql``), so a stat over a whole month, quarter or year
  equals that period's row of ``parwatch kpi --json``;
- time filters on DateTime64 columns use ``$__timeFilter_ms`` (exact to the millisecond);
- a macro without arguments is written in parentheses, ``($__interval_s)``, because the plugin
  takes the next ``(`` after a macro as the start of its arguments;
- the hybrid policy and the target lines come from ``kpi_settings``, as in the KPI views.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["gauge", "stat", "timeseries", "bargauge", "table", "barchart"]

AGENCY = "$__conditionalAll(agency_code IN (${agency:singlequote}), $agency)"
SECTOR = "$__conditionalAll(sector IN (${sector:singlequote}), $sector)"

_SETTING = (
    "(SELECT ifNull(anyOrNull(value), {default}) FROM kpi_settings FINAL WHERE name = '{name}')"
)
HYBRID = _SETTING.format(default=0, name="hybrid_counts_as_online")
TARGET_ONLINE = _SETTING.format(default=0.4, name="target_online_inspection_share")


MONTH = "toDateTime(toStartOfMonth({col}, 'Asia/Ho_Chi_Minh'), 'Asia/Ho_Chi_Minh')"


@dataclass(frozen=True)
class Targets:
    """The targets the thresholds show (fractions 0..1), from the settings."""

    online_inspection_share: float = 0.40
    prefill_design_coverage: float = 1.00
    full_process_offering_rate: float = 1.00


@dataclass(frozen=True)
class Panel:
    key: str  # stable id inside the dashboard (also the report's anchor)
    kind: Kind
    title: str
    description: str
    sql: str
    labels: dict[str, str]  # column -> Vietnamese label; the columns shown, in order
    unit: str = "none"  # Grafana unit: percentunit, short, s …
    target: float | None = None  # threshold: red below, green at or above
    target_column: str | None = None  # in tables: the one column the target applies to
    inverse_steps: tuple[tuple[float, str], ...] = ()  # other thresholds (value, colour)
    column_units: dict[str, str] = field(default_factory=dict)  # per-column unit overrides
    time_series: bool = False  # first column is the time axis
    # the KPI-JSON key each column of a stat/gauge equals over a whole period (tests)
    kpi_keys: dict[str, str] = field(default_factory=dict)
    w: int = 12
    h: int = 8
    # A live panel: PromQL queries (legend, expression) on the Prometheus datasource instead of
    # ``sql``; the report leaves it to Grafana (it reads the warehouse only).
    promql: tuple[tuple[str, str], ...] = ()

    @property
    def live(self) -> bool:
        return bool(self.promql)


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    variables: tuple[str, ...]  # besides the datasource: "agency", "sector"
    time_from: str = "now-3y"
    time_to: str = "now"
    refresh: str = ""
    tags: tuple[str, ...] = ("parwatch",)


VARIABLE_SQL = {
    "agency": "SELECT code, concat(code, ' — ', name) FROM agencies FINAL ORDER BY code",
    "sector": (
        "SELECT DISTINCT toString(sector) FROM inspection_classifications FINAL "
        "WHERE sector IS NOT NULL ORDER BY 1"
    ),
}
VARIABLE_LABELS = {"agency": "Cơ quan, đơn vị", "sector": "Lĩnh vực"}

# The inspections the 40% target counts: concluded, not cancelled, checks (kiem_tra) only.
COUNTED = (
    "(SELECT agency_code, classification, concluded_at, sector "
    "FROM inspection_classifications FINAL "
    "WHERE cancelled = 0 AND concluded_at IS NOT NULL AND kind != 'thanh_tra')"
)

_INSPECTIONS = f"""
FROM {COUNTED} AS ci
WHERE $__timeFilter_ms(concluded_at)
  AND {AGENCY}
  AND {SECTOR}"""

_CLASS_COUNTS = """countIf(classification = 'online') AS online,
       countIf(classification = 'hybrid') AS hybrid,
       countIf(classification = 'in_person') AS in_person,
       countIf(classification = 'unclassified') AS unclassified,
       online + hybrid + in_person AS classified"""

_ONLINE_SHARE = "if(classified = 0, NULL, (online + if(hybrid_policy = 1, hybrid, 0)) / classified)"

ONLINE_RULE = (
    "Tỷ lệ = số cuộc kiểm tra trực tuyến ÷ (trực tuyến + kết hợp + trực tiếp), trong các cuộc "
    "kiểm tra đã kết thúc (sự kiện concluded mới nhất) trong khoảng thời gian, không tính cuộc "
    "đã hủy. Trực tuyến = mọi hoạt động qua mạng và hệ thống thông tin (video_conference, "
    "remote_document_review, information_system, online_reporting); kết hợp = có cả hai; trực "
    "tiếp = mọi hoạt động tại chỗ. Chưa phân loại (kết thúc mà không có hoạt động nào) không "
    "tính vào mẫu số. Cuộc kết hợp chỉ tính vào tử số khi cài đặt "
    "PARWATCH_HYBRID_COUNTS_AS_ONLINE=true (bảng kpi_settings)."
)


def _inspection_panels(t: Targets) -> tuple[Panel, ...]:
    pct = f"{t.online_inspection_share:.0%}"
    return (
        Panel(
            key="online_share",
            kind="gauge",
            title="Tỷ lệ kiểm tra qua mạng và hệ thống thông tin",
            description=f"Mục tiêu: {pct}. {ONLINE_RULE}",
            sql=f"""WITH {HYBRID} AS hybrid_policy
SELECT {_ONLINE_SHARE} AS online_inspection_share
FROM (
SELECT {_CLASS_COUNTS}{_INSPECTIONS}
)""",
            labels={"online_inspection_share": "Tỷ lệ trực tuyến"},
            unit="percentunit",
            target=t.online_inspection_share,
            kpi_keys={"online_inspection_share": "online_inspection_share"},
            w=8,
        ),
        Panel(
            key="class_counts",
            kind="stat",
            title="Số cuộc kiểm tra theo hình thức",
            description=(
                "Số cuộc kiểm tra đã kết thúc trong khoảng thời gian, theo hình thức. Kết hợp và "
                "chưa phân loại hiển thị bên cạnh để thấy phần không tính là trực tuyến. "
                + ONLINE_RULE
            ),
            sql=f"SELECT {_CLASS_COUNTS}{_INSPECTIONS}",
            labels={
                "online": "Trực tuyến",
                "hybrid": "Kết hợp",
                "in_person": "Trực tiếp",
                "unclassified": "Chưa phân loại",
            },
            kpi_keys={
                "online": "inspections_online",
                "hybrid": "inspections_hybrid",
                "in_person": "inspections_in_person",
                "unclassified": "inspections_unclassified",
            },
            w=16,
        ),
        Panel(
            key="online_share_by_month",
            kind="timeseries",
            title="Tỷ lệ kiểm tra trực tuyến theo tháng",
            description=(
                f"Mỗi điểm là một tháng (giờ Việt Nam) theo ngày kết thúc; đường mục tiêu {pct} "
                "đọc từ kpi_settings. " + ONLINE_RULE
            ),
            sql=f"""WITH {HYBRID} AS hybrid_policy, {TARGET_ONLINE} AS target
SELECT time, {_ONLINE_SHARE} AS online_inspection_share, target AS target_line
FROM (
SELECT {MONTH.format(col="concluded_at")} AS time, {_CLASS_COUNTS}{_INSPECTIONS}
GROUP BY time
)
ORDER BY time""",
            labels={"online_inspection_share": "Tỷ lệ trực tuyến", "target_line": "Mục tiêu"},
            unit="percentunit",
            target=t.online_inspection_share,
            time_series=True,
            w=24,
        ),
        Panel(
            key="agencies_ranked",
            kind="bargauge",
            title="Xếp hạng cơ quan theo tỷ lệ kiểm tra trực tuyến",
            description=(
                "Mỗi cơ quan có ít nhất một cuộc kiểm tra được phân loại trong khoảng thời gian, "
                "xếp từ cao xuống thấp; màu đỏ là dưới mục tiêu. " + ONLINE_RULE
            ),
            sql=f"""WITH {HYBRID} AS hybrid_policy
SELECT concat(c.agency_code, ' — ', a.name) AS agency,
       {_ONLINE_SHARE} AS online_inspection_share
FROM (
SELECT agency_code, {_CLASS_COUNTS}{_INSPECTIONS}
GROUP BY agency_code
HAVING classified > 0
) AS c
LEFT JOIN (SELECT code, name FROM agencies FINAL) AS a ON a.code = c.agency_code
ORDER BY online_inspection_share DESC, c.agency_code""",
            labels={"agency": "Cơ quan", "online_inspection_share": "Tỷ lệ trực tuyến"},
            unit="percentunit",
            target=t.online_inspection_share,
            h=14,
        ),
        Panel(
            key="agencies_below_target",
            kind="table",
            title="Cơ quan chưa đạt mục tiêu",
            description=(
                f"Cơ quan có tỷ lệ dưới mục tiêu {pct} (đọc từ kpi_settings), thấp nhất trước; "
                "'Còn thiếu' = mục tiêu − tỷ lệ. " + ONLINE_RULE
            ),
            sql=f"""WITH {HYBRID} AS hybrid_policy, {TARGET_ONLINE} AS target
SELECT c.agency_code AS agency_code, a.name AS agency_name, classified, online, hybrid,
       {_ONLINE_SHARE} AS online_inspection_share,
       target - online_inspection_share AS gap
FROM (
SELECT agency_code, {_CLASS_COUNTS}{_INSPECTIONS}
GROUP BY agency_code
HAVING classified > 0
) AS c
LEFT JOIN (SELECT code, name FROM agencies FINAL) AS a ON a.code = c.agency_code
WHERE online_inspection_share < target
ORDER BY online_inspection_share, c.agency_code""",
            labels={
                "agency_code": "Mã",
                "agency_name": "Cơ quan",
                "classified": "Đã phân loại",
                "online": "Trực tuyến",
                "hybrid": "Kết hợp",
                "online_inspection_share": "Tỷ lệ",
                "gap": "Còn thiếu",
            },
            unit="percentunit",
            column_units={"classified": "short", "online": "short", "hybrid": "short"},
            target=t.online_inspection_share,
            target_column="online_inspection_share",
            h=14,
        ),
        Panel(
            key="classes_by_month",
            kind="barchart",
            title="Kiểm tra kết hợp và chưa phân loại theo tháng",
            description=(
                "Số cuộc kiểm tra kết thúc mỗi tháng theo hình thức (xếp chồng). Kết hợp chỉ "
                "tính là trực tuyến khi PARWATCH_HYBRID_COUNTS_AS_ONLINE=true; chưa phân loại "
                "không tính vào tỷ lệ."
            ),
            sql=f"""SELECT time, online, hybrid, in_person, unclassified
FROM (
SELECT {MONTH.format(col="concluded_at")} AS time, {_CLASS_COUNTS}{_INSPECTIONS}
GROUP BY time
)
ORDER BY time""",
            labels={
                "online": "Trực tuyến",
                "hybrid": "Kết hợp",
                "in_person": "Trực tiếp",
                "unclassified": "Chưa phân loại",
            },
            time_series=True,
            w=24,
        ),
    )


_SERVICES = f"""
FROM kpi_facts
WHERE fact IN ('submission', 'completion')
  AND $__timeFilter_ms(at)
  AND {AGENCY}"""

_SERVICE_FIGURES = """
  if(uniqExactIf(procedure_code, fact = 'submission' AND channel = 'online') = 0, NULL,
     uniqExactIf(procedure_code, fact = 'submission' AND channel = 'online'
                 AND fields_prefilled > 0)
     / uniqExactIf(procedure_code, fact = 'submission' AND channel = 'online'))
    AS prefill_observed_coverage,
  countIf(fact = 'submission' AND channel = 'online') AS online_submissions,
  if(online_submissions = 0, NULL,
     countIf(fact = 'submission' AND channel = 'online' AND fields_prefilled > 0)
     / online_submissions) AS prefilled_submission_share,
  if(sumIf(fields_total, fact = 'submission' AND channel = 'online') = 0, NULL,
     sumIf(fields_prefilled, fact = 'submission' AND channel = 'online')
     / sumIf(fields_total, fact = 'submission' AND channel = 'online')) AS prefill_depth,
  if(countIf(fact = 'submission') = 0, NULL,
     countIf(fact = 'submission' AND channel = 'online' AND service_level = 'full_process')
     / countIf(fact = 'submission')) AS full_process_dossier_rate,
  if(countIf(fact = 'completion') = 0, NULL,
     countIf(fact = 'completion' AND on_time = 1) / countIf(fact = 'completion'))
    AS on_time_rate"""

SERVICE_RULES = (
    "Tính trên các sự kiện submitted (mỗi event_id một lần) và completed trong khoảng thời "
    "gian. Độ phủ điền sẵn = số thủ tục có ít nhất một hồ sơ trực tuyến được điền sẵn ÷ số "
    "thủ tục có hồ sơ trực tuyến. Tỷ lệ hồ sơ điền sẵn = hồ sơ trực tuyến có ít nhất một "
    "trường điền sẵn ÷ hồ sơ trực tuyến. Độ sâu = tổng trường điền sẵn ÷ tổng trường của "
    "biểu mẫu trực tuyến. Toàn trình = hồ sơ trực tuyến mức full_process ÷ mọi hồ sơ (mọi "
    "kênh). Đúng hạn = completed có on_time ÷ mọi completed."
)

_SERVICE_LABELS = {
    "prefill_observed_coverage": "Độ phủ điền sẵn quan sát (dịch vụ)",
    "prefilled_submission_share": "Hồ sơ được điền sẵn",
    "prefill_depth": "Độ sâu điền sẵn",
    "full_process_dossier_rate": "Hồ sơ toàn trình",
    "on_time_rate": "Đúng hạn",
}


# The end E of the range (Grafana's "to" is E - 1 ms): a service's state at E is its offering
# event with the latest occurred_at <= E.
END_MS = "(toUnixTimestamp64Milli($__toTime_ms) + 1)"
_OFFERING_SQL = f"""SELECT if(eligible = 0, NULL, full / eligible) AS full_process_offering_rate,
       if(online = 0, NULL, designed / online) AS prefill_design_coverage
FROM (
SELECT countIf(is_eligible) AS eligible,
       countIf(is_eligible AND level = 'full_process') AS full,
       countIf(level IN ('full_process', 'partial')) AS online,
       countIf(level IN ('full_process', 'partial') AND prefill_designed = 1) AS designed
FROM (
SELECT level, prefill_designed,
       procedure_code IN (SELECT code FROM procedures WHERE full_process_eligible = 1)
         AS is_eligible
FROM service_offering_history
WHERE toUnixTimestamp64Milli(valid_from) <= {END_MS}
  AND (valid_to IS NULL OR toUnixTimestamp64Milli(valid_to) > {END_MS})
  AND level != 'not_offered'
  AND {AGENCY}
))"""

OFFERING_RULES = (
    "Tính trên các dịch vụ (cơ quan × thủ tục) tồn tại vào cuối khoảng thời gian, theo sự kiện "
    "offering mới nhất (không tính not_offered). Toàn trình = thủ tục đủ điều kiện đang cung "
    "cấp mức full_process ÷ thủ tục đủ điều kiện (QĐ 766 §3.1). Thiết kế điền sẵn = dịch vụ "
    "trực tuyến (toàn trình hoặc một phần) có prefill_designed ÷ dịch vụ trực tuyến (QĐ 942)."
)


def _service_panels(t: Targets) -> tuple[Panel, ...]:
    return (
        Panel(
            key="prefill_coverage",
            kind="gauge",
            title="Dịch vụ công trực tuyến được thiết kế điền sẵn dữ liệu",
            description=(
                f"Mục tiêu: {t.prefill_design_coverage:.0%}. " + OFFERING_RULES
            ),
            sql=_OFFERING_SQL,
            labels={"prefill_design_coverage": "Thiết kế điền sẵn"},
            unit="percentunit",
            target=t.prefill_design_coverage,
            kpi_keys={"prefill_design_coverage": "prefill_design_coverage"},
            w=8,
        ),
        Panel(
            key="full_process",
            kind="gauge",
            title="Thủ tục đủ điều kiện cung cấp dịch vụ công trực tuyến toàn trình",
            description=f"Mục tiêu: {t.full_process_offering_rate:.0%}. " + OFFERING_RULES,
            sql=_OFFERING_SQL,
            labels={"full_process_offering_rate": "Toàn trình"},
            unit="percentunit",
            target=t.full_process_offering_rate,
            kpi_keys={"full_process_offering_rate": "full_process_offering_rate"},
            w=8,
        ),
        Panel(
            key="service_figures",
            kind="stat",
            title="Điền sẵn, độ sâu và đúng hạn",
            description="Không có mục tiêu riêng; giúp giải thích độ phủ. " + SERVICE_RULES,
            sql=f"SELECT{_SERVICE_FIGURES}{_SERVICES}",
            labels={
                "online_submissions": "Hồ sơ trực tuyến",
                "prefilled_submission_share": "Hồ sơ được điền sẵn",
                "prefill_depth": "Độ sâu điền sẵn",
                "on_time_rate": "Đúng hạn",
            },
            unit="percentunit",
            column_units={"online_submissions": "short"},
            w=8,
        ),
        Panel(
            key="services_by_month",
            kind="timeseries",
            title="Các chỉ số dịch vụ công theo tháng",
            description="Mỗi điểm là một tháng (giờ Việt Nam). " + SERVICE_RULES,
            sql=f"""SELECT time, prefill_observed_coverage, prefilled_submission_share,
       prefill_depth, full_process_dossier_rate, on_time_rate
FROM (
SELECT {MONTH.format(col="at")} AS time,{_SERVICE_FIGURES}{_SERVICES}
GROUP BY time
)
ORDER BY time""",
            labels=_SERVICE_LABELS,
            unit="percentunit",
            time_series=True,
            w=24,
        ),
        Panel(
            key="services_by_agency",
            kind="table",
            title="Theo cơ quan",
            description="Một dòng mỗi cơ quan có hồ sơ trong khoảng thời gian. " + SERVICE_RULES,
            sql=f"""SELECT f.agency_code AS agency_code,
       any(a.name) AS agency_name,{_SERVICE_FIGURES}
FROM (SELECT * {_SERVICES.strip()}) AS f
LEFT JOIN (SELECT code, name FROM agencies FINAL) AS a ON a.code = f.agency_code
GROUP BY f.agency_code
ORDER BY prefill_observed_coverage, f.agency_code""",
            labels={
                "agency_code": "Mã",
                "agency_name": "Cơ quan",
                "online_submissions": "Hồ sơ trực tuyến",
                **_SERVICE_LABELS,
            },
            unit="percentunit",
            column_units={"online_submissions": "short"},
            target=None,
            h=14,
        ),
        Panel(
            key="never_prefilled",
            kind="table",
            title="Thủ tục chưa bao giờ điền sẵn",
            description=(
                "Thủ tục có hồ sơ trực tuyến trong khoảng thời gian nhưng không hồ sơ nào có "
                "trường được điền sẵn: đây là phần làm độ phủ thấp hơn 100%."
            ),
            sql=f"""SELECT s.procedure_code AS procedure_code, any(p.name) AS procedure_name,
       count() AS online_submissions, uniqExact(s.agency_code) AS agencies
FROM (
SELECT procedure_code, agency_code, fields_prefilled
FROM service_submissions FINAL
WHERE channel = 'online' AND $__timeFilter_ms(occurred_at)
  AND {AGENCY}
) AS s
LEFT JOIN (SELECT code, name FROM procedures FINAL) AS p ON p.code = s.procedure_code
GROUP BY s.procedure_code
HAVING max(s.fields_prefilled) = 0
ORDER BY online_submissions DESC, s.procedure_code""",
            labels={
                "procedure_code": "Mã thủ tục",
                "procedure_name": "Tên thủ tục",
                "online_submissions": "Hồ sơ trực tuyến",
                "agencies": "Số cơ quan",
            },
            h=14,
        ),
    )


def _pipeline_panels() -> tuple[Panel, ...]:
    def per_interval(table: str, column: str, label: str) -> str:
        return (
            f"SELECT $__timeInterval({column}) AS time, '{label}' AS k, count() AS n "
            f"FROM {table} FINAL WHERE $__timeFilter_ms({column}) AND {AGENCY} GROUP BY time"
        )

    return (
        Panel(
            key="ingested_per_minute",
            kind="timeseries",
            title="Sự kiện ghi nhận mỗi phút",
            description=(
                "Số sự kiện kiểm tra, dịch vụ công và cung cấp dịch vụ được ghi vào kho mỗi phút "
                "(theo _ingested_at, mỗi event_id một lần), "
                "trung bình trên mỗi khoảng của biểu đồ ($__interval_s giây); cùng với thư lỗi "
                "(dead letters) và bản trùng lặp đã bỏ qua."
            ),
            sql=f"""SELECT time,
       sumIf(n, k = 'inspection') * 60 / ($__interval_s) AS inspection_events,
       sumIf(n, k = 'service') * 60 / ($__interval_s) AS service_events,
       sumIf(n, k = 'offering') * 60 / ($__interval_s) AS offering_events,
       sumIf(n, k = 'dead_letter') * 60 / ($__interval_s) AS dead_letters,
       sumIf(n, k = 'duplicate') * 60 / ($__interval_s) AS duplicates
FROM (
{per_interval("inspection_events", "_ingested_at", "inspection")}
UNION ALL
{per_interval("service_events", "_ingested_at", "service")}
UNION ALL
{per_interval("offering_events", "_ingested_at", "offering")}
UNION ALL
{per_interval("dead_letters", "_refused_at", "dead_letter")}
UNION ALL
{per_interval("duplicates", "_detected_at", "duplicate")}
)
GROUP BY time
ORDER BY time""",
            labels={
                "inspection_events": "Sự kiện kiểm tra",
                "service_events": "Sự kiện dịch vụ công",
                "offering_events": "Sự kiện cung cấp dịch vụ",
                "dead_letters": "Thư lỗi",
                "duplicates": "Trùng lặp",
            },
            unit="short",
            time_series=True,
            w=24,
        ),
        Panel(
            key="freshness",
            kind="stat",
            title="Độ trễ: thời gian từ sự kiện mới nhất được ghi",
            description=(
                "Bây giờ trừ thời điểm ghi (_ingested_at) của sự kiện mới nhất, kiểm tra hoặc "
                "dịch vụ công, của các cơ quan đã chọn; không phụ thuộc khoảng thời gian. Vàng "
                "từ 5 phút, đỏ từ 1 giờ."
            ),
            sql=f"""SELECT dateDiff('second', max(t), now64(3)) AS freshness_s
FROM (
SELECT maxOrNull(_ingested_at) AS t FROM inspection_events WHERE {AGENCY}
UNION ALL
SELECT maxOrNull(_ingested_at) AS t FROM service_events WHERE {AGENCY}
UNION ALL
SELECT maxOrNull(_ingested_at) AS t FROM offering_events WHERE {AGENCY}
)""",
            labels={"freshness_s": "Độ trễ"},
            unit="s",
            inverse_steps=((300.0, "orange"), (3600.0, "red")),
            w=8,
        ),
        Panel(
            key="totals",
            kind="stat",
            title="Trong khoảng thời gian",
            description=(
                "Sự kiện được nhận (mỗi event_id một lần), thư lỗi và bản trùng lặp đã bỏ qua, "
                "ghi từ $__fromTime đến $__toTime (theo giây)."
            ),
            sql=f"""SELECT
  (SELECT count() FROM inspection_events FINAL
   WHERE _ingested_at >= ($__fromTime) AND _ingested_at <= ($__toTime) AND {AGENCY})
  + (SELECT count() FROM service_events FINAL
   WHERE _ingested_at >= ($__fromTime) AND _ingested_at <= ($__toTime) AND {AGENCY})
  + (SELECT count() FROM offering_events FINAL
   WHERE _ingested_at >= ($__fromTime) AND _ingested_at <= ($__toTime) AND {AGENCY})
    AS accepted,
  (SELECT count() FROM dead_letters FINAL
   WHERE _refused_at >= ($__fromTime) AND _refused_at <= ($__toTime) AND {AGENCY})
    AS dead_letters,
  (SELECT count() FROM duplicates FINAL
   WHERE _detected_at >= ($__fromTime) AND _detected_at <= ($__toTime) AND {AGENCY})
    AS duplicates""",
            labels={
                "accepted": "Sự kiện nhận",
                "dead_letters": "Thư lỗi",
                "duplicates": "Trùng lặp bỏ qua",
            },
            unit="short",
            w=16,
        ),
        Panel(
            key="dead_letters_by_reason",
            kind="bargauge",
            title="Thư lỗi theo lý do",
            description=(
                "Thông điệp bị từ chối trong khoảng thời gian, theo lý do (malformed_json, "
                "unsupported_schema, pii_detected, invalid_event, unknown_agency, "
                "future_timestamp, bad_signature)."
            ),
            sql=f"""SELECT reason, count() AS dead_letters
FROM dead_letters FINAL
WHERE $__timeFilter_ms(_refused_at) AND {AGENCY}
GROUP BY reason
ORDER BY dead_letters DESC, reason""",
            labels={"reason": "Lý do", "dead_letters": "Thư lỗi"},
            unit="short",
            w=8,
            h=10,
        ),
        Panel(
            key="dead_letters_by_agency",
            kind="table",
            title="Thư lỗi theo lý do và cơ quan",
            description=(
                "Thông điệp bị từ chối theo lý do và cơ quan gửi ('—' khi không đọc được mã cơ "
                "quan, ví dụ JSON hỏng), nhiều nhất trước."
            ),
            sql=f"""SELECT reason, ifNull(toString(agency_code), '—') AS agency,
       count() AS dead_letters, max(_refused_at) AS last_refused_at
FROM dead_letters FINAL
WHERE $__timeFilter_ms(_refused_at) AND {AGENCY}
GROUP BY reason, agency
ORDER BY dead_letters DESC, reason, agency""",
            labels={
                "reason": "Lý do",
                "agency": "Cơ quan",
                "dead_letters": "Thư lỗi",
                "last_refused_at": "Lần gần nhất",
            },
            unit="short",
            w=16,
            h=10,
        ),
        Panel(
            key="duplicates_by_agency",
            kind="table",
            title="Bản trùng lặp đã bỏ qua theo cơ quan",
            description=(
                "Thông điệp mang event_id đã nhận trước đó (gửi lại), đã bỏ qua và không tính "
                "hai lần."
            ),
            sql=f"""SELECT toString(agency_code) AS agency, count() AS duplicates,
       max(_detected_at) AS last_detected_at
FROM duplicates FINAL
WHERE $__timeFilter_ms(_detected_at) AND {AGENCY}
GROUP BY agency
ORDER BY duplicates DESC, agency""",
            labels={
                "agency": "Cơ quan",
                "duplicates": "Trùng lặp",
                "last_detected_at": "Lần gần nhất",
            },
            unit="short",
            w=24,
        ),
    )


def _live_panels() -> tuple[Panel, ...]:
    """The workers' own metrics, from Prometheus (``streams/worker/metrics.py``): what the
    warehouse cannot show when it is the part that is down."""
    live = {"unit": "short", "sql": "", "labels": {}, "time_series": True}
    return (
        Panel(
            key="live_messages",
            kind="timeseries",
            w=12,
            **live,
            title="Trực tiếp: sự kiện mỗi giây theo kết quả",
            description=(
                "Số sự kiện mỗi giây mà các worker xử lý (nhận, trùng lặp, từ chối, gửi lại), "
                "từ Prometheus, cửa sổ 5 phút."
            ),
            promql=(("{{result}}", "sum by (result) (rate(parwatch_messages_total[5m]))"),),
        ),
        Panel(
            key="live_lag",
            kind="timeseries",
            w=12,
            **live,
            title="Trực tiếp: độ trễ tiêu thụ (thông điệp chưa xử lý)",
            description=(
                "Tổng số thông điệp còn chờ trên Kafka, theo chủ đề (offset cuối trừ offset "
                "đã xác nhận). Broker nhúng (Tansu) báo offset cuối thấp hơn thực tế."
            ),
            promql=(("{{topic}}", "sum by (topic) (parwatch_consumer_lag)"),),
        ),
        Panel(
            key="live_warehouse_down",
            kind="stat",
            w=6,
            h=6,
            unit="short",
            sql="",
            labels={},
            inverse_steps=((1, "red"),),
            title="Trực tiếp: kho dữ liệu không phản hồi",
            description=(
                "1 khi ít nhất một worker không ghi được vào ClickHouse; 0 khi bình thường."
            ),
            promql=(("kho dữ liệu", "max(parwatch_warehouse_down)"),),
        ),
        Panel(
            key="live_workers",
            kind="stat",
            w=6,
            h=6,
            unit="short",
            sql="",
            labels={},
            title="Trực tiếp: worker đang chạy",
            description="Số worker mà Prometheus đọc được số liệu (job parwatch-worker).",
            promql=(("worker", 'count(up{job="parwatch-worker"} == 1)'),),
        ),
        Panel(
            key="live_flush_p95",
            kind="timeseries",
            w=12,
            h=6,
            unit="s",
            sql="",
            labels={},
            time_series=True,
            title="Trực tiếp: thời gian ghi một lô (p95)",
            description="Phân vị 95 của thời gian ghi một lô vào ClickHouse, cửa sổ 5 phút.",
            promql=(
                (
                    "p95",
                    "histogram_quantile(0.95, sum by (le) "
                    "(rate(parwatch_flush_duration_seconds_bucket[5m])))",
                ),
            ),  # fmt: skip
        ),
        Panel(
            key="live_refused_share",
            kind="bargauge",
            w=24,
            h=8,
            unit="percentunit",
            sql="",
            labels={},
            inverse_steps=((0.1, "red"),),
            title="Trực tiếp: tỷ lệ sự kiện bị từ chối theo cơ quan (30 phút)",
            description=(
                "Sự kiện bị từ chối chia cho sự kiện nhận được của từng cơ quan trong 30 phút "
                "gần nhất; trên 10% là cảnh báo ParwatchRefusedShareHigh."
            ),
            promql=(
                (
                    "{{agency}}",
                    "sum by (agency) (rate(parwatch_agency_refused_total[30m])) "
                    "/ sum by (agency) (rate(parwatch_agency_messages_total[30m]))",
                ),
            ),  # fmt: skip
        ),
    )


def build_dashboards(targets: Targets) -> tuple[Dashboard, ...]:
    return (
        Dashboard(
            uid="parwatch-online-inspections",
            title="parwatch · Kiểm tra qua mạng và hệ thống thông tin",
            description=(
                "Mục tiêu 2024 của tỉnh Thanh Hóa: "
                f"{targets.online_inspection_share:.0%} cuộc kiểm tra thực hiện qua môi trường "
                "mạng và hệ thống thông tin."
            ),
            panels=_inspection_panels(targets),
            variables=("agency", "sector"),
        ),
        Dashboard(
            uid="parwatch-prefill-services",
            title="parwatch · Dữ liệu điền sẵn và dịch vụ công trực tuyến",
            description=(
                f"Mục tiêu: {targets.prefill_design_coverage:.0%} dịch vụ công trực tuyến được "
                "thiết kế điền sẵn dữ liệu người dân đã cung cấp; "
                f"{targets.full_process_offering_rate:.0%} thủ tục đủ điều kiện cung cấp "
                "toàn trình."
            ),
            panels=_service_panels(targets),
            variables=("agency",),
        ),
        Dashboard(
            uid="parwatch-pipeline-health",
            title="parwatch · Sức khỏe đường ống dữ liệu",
            description=(
                "Luồng sự kiện từ Kafka vào ClickHouse: tốc độ, độ trễ, thư lỗi, trùng lặp."
            ),
            panels=_pipeline_panels() + _live_panels(),
            variables=("agency",),
            time_from="now-6h",
            refresh="1m",
        ),
    )
