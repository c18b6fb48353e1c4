"""Data quality: what makes the indicators less true than they look, by agency, over the
dashboard's time range: unclassified inspections, prefill design that the dossiers contradict,
dossiers from systems still on ``service/1``, agencies that stopped sending, refusals."""

from __future__ import annotations

from dashboards.spec import AGENCY, RANGE_END_MS, Dashboard, Panel

SILENT_DAYS = 30
_NAME = "LEFT JOIN (SELECT code, name FROM agencies FINAL) AS a ON a.code = x.agency_code"


def _unclassified() -> Panel:
    return Panel(
        key="unclassified_inspections",
        kind="table",
        title="Cuộc kiểm tra, thanh tra chưa phân loại",
        description=(
            "Cuộc kiểm tra và thanh tra (không tính cuộc đã hủy) kết thúc trong khoảng thời gian "
            "mà không gửi hoạt động nào (sự kiện activity): không biết thực hiện trực tuyến hay "
            "trực tiếp, nên không tính vào tỷ lệ. Nhiều nhất trước."
        ),
        sql=f"""SELECT x.agency_code AS agency_code, a.name AS agency_name,
       unclassified, concluded, unclassified / concluded AS unclassified_share
FROM (
SELECT toString(agency_code) AS agency_code, countIf(classification = 'unclassified')
         AS unclassified, count() AS concluded
FROM inspection_classifications FINAL
WHERE cancelled = 0 AND concluded_at IS NOT NULL AND $__timeFilter_ms(concluded_at)
  AND {AGENCY}
GROUP BY agency_code
HAVING unclassified > 0
) AS x
{_NAME}
ORDER BY unclassified DESC, agency_code""",
        labels={
            "agency_code": "Mã",
            "agency_name": "Cơ quan",
            "unclassified": "Chưa phân loại",
            "concluded": "Đã kết thúc",
            "unclassified_share": "Tỷ lệ",
        },
        unit="short",
        column_units={"unclassified_share": "percentunit"},
        w=12,
        h=10,
    )


def _prefill_mismatch() -> Panel:
    return Panel(
        key="prefill_mismatch",
        kind="table",
        title="Thiết kế điền sẵn không khớp với hồ sơ",
        description=(
            "Dịch vụ trực tuyến (trạng thái vào cuối khoảng thời gian) có hồ sơ trực tuyến "
            "trong khoảng thời gian, mà: khai báo thiết kế điền sẵn (prefill_designed) nhưng "
            "không hồ sơ nào có trường điền sẵn; hoặc ngược lại, chưa khai báo nhưng có hồ sơ "
            "được điền sẵn. Một trong hai, danh mục dịch vụ hoặc hệ thống một cửa, cần sửa."
        ),
        sql=f"""SELECT s.agency_code AS agency_code, s.procedure_code AS procedure_code,
       pr.name AS procedure_name,
       if(h.prefill_designed = 1, 'thiết kế điền sẵn, chưa hồ sơ nào điền sẵn',
          'có hồ sơ điền sẵn, chưa khai báo thiết kế') AS issue,
       s.online_submissions AS online_submissions, s.prefilled AS prefilled
FROM (
SELECT toString(agency_code) AS agency_code, toString(procedure_code) AS procedure_code,
       count() AS online_submissions, countIf(fields_prefilled > 0) AS prefilled
FROM service_submissions FINAL
WHERE channel = 'online' AND $__timeFilter_ms(occurred_at) AND {AGENCY}
GROUP BY agency_code, procedure_code
) AS s
INNER JOIN (
SELECT agency_code, procedure_code, prefill_designed
FROM service_offering_history
WHERE toUnixTimestamp64Milli(valid_from) <= {RANGE_END_MS}
  AND (valid_to IS NULL OR toUnixTimestamp64Milli(valid_to) > {RANGE_END_MS})
  AND level IN ('full_process', 'partial')
) AS h ON h.agency_code = s.agency_code AND h.procedure_code = s.procedure_code
LEFT JOIN (SELECT code, name FROM procedures FINAL) AS pr ON pr.code = s.procedure_code
WHERE (h.prefill_designed = 1 AND s.prefilled = 0) OR (h.prefill_designed = 0 AND s.prefilled > 0)
ORDER BY issue, agency_code, procedure_code""",
        labels={
            "agency_code": "Mã cơ quan",
            "procedure_code": "Mã thủ tục",
            "procedure_name": "Tên thủ tục",
            "issue": "Không khớp",
            "online_submissions": "Hồ sơ trực tuyến",
            "prefilled": "Hồ sơ điền sẵn",
        },
        unit="short",
        w=12,
        h=10,
    )


def _service_v1() -> Panel:
    return Panel(
        key="service_v1_dossiers",
        kind="table",
        title="Hồ sơ từ hệ thống còn dùng service/1",
        description=(
            "Hồ sơ tiếp nhận trong khoảng thời gian mà hệ thống của cơ quan còn gửi theo hợp "
            "đồng service/1: không có ngày hẹn trả (due_at), số hóa, thanh toán, kết quả điện "
            "tử, nên không vào các chỉ số §2.1 (khi đang giải quyết), §2.2, §4.1, §4.2."
        ),
        sql=f"""SELECT x.agency_code AS agency_code, a.name AS agency_name, v1, submissions,
       v1 / submissions AS v1_share, last_v1
FROM (
SELECT toString(agency_code) AS agency_code, countIf(schema = 'service/1') AS v1,
       count() AS submissions, maxIf(occurred_at, schema = 'service/1') AS last_v1
FROM service_submissions FINAL
WHERE $__timeFilter_ms(occurred_at) AND {AGENCY}
GROUP BY agency_code
HAVING v1 > 0
) AS x
{_NAME}
ORDER BY v1 DESC, agency_code""",
        labels={
            "agency_code": "Mã",
            "agency_name": "Cơ quan",
            "v1": "Hồ sơ service/1",
            "submissions": "Mọi hồ sơ",
            "v1_share": "Tỷ lệ",
            "last_v1": "Gần nhất",
        },
        unit="short",
        column_units={"v1_share": "percentunit"},
        w=12,
        h=10,
    )


def _silent() -> Panel:
    return Panel(
        key="silent_agencies",
        kind="table",
        title=f"Cơ quan ngừng gửi dữ liệu ({SILENT_DAYS} ngày)",
        description=(
            "Cơ quan có sự kiện kiểm tra hoặc dịch vụ công trong khoảng thời gian nhưng không có "
            f"sự kiện nào trong {SILENT_DAYS} ngày cuối của khoảng (theo occurred_at): hệ thống "
            "của cơ quan có thể đã ngừng gửi, và chỉ số của cơ quan thiếu những tháng gần đây."
        ),
        sql=f"""SELECT x.agency_code AS agency_code, a.name AS agency_name, last_event,
       intDiv({RANGE_END_MS} - toUnixTimestamp64Milli(last_event), 86400000) AS days_silent,
       events
FROM (
SELECT agency_code, max(t) AS last_event, count() AS events
FROM (
SELECT toString(agency_code) AS agency_code, occurred_at AS t FROM inspection_events FINAL
WHERE $__timeFilter_ms(occurred_at) AND {AGENCY}
UNION ALL
SELECT toString(agency_code) AS agency_code, occurred_at AS t FROM service_events FINAL
WHERE $__timeFilter_ms(occurred_at) AND {AGENCY}
)
GROUP BY agency_code
HAVING toUnixTimestamp64Milli(last_event) < {RANGE_END_MS} - {SILENT_DAYS} * 86400000
) AS x
{_NAME}
ORDER BY last_event, agency_code""",
        labels={
            "agency_code": "Mã",
            "agency_name": "Cơ quan",
            "last_event": "Sự kiện cuối",
            "days_silent": "Số ngày im lặng",
            "events": "Sự kiện trong khoảng",
        },
        unit="short",
        w=12,
        h=10,
    )


def _refusals() -> Panel:
    return Panel(
        key="refusals_by_agency",
        kind="table",
        title="Sự kiện bị từ chối theo cơ quan",
        description=(
            "Thông điệp bị từ chối (dead letters) trong khoảng thời gian, theo thời điểm từ chối, "
            "theo cơ quan gửi ('—' khi không đọc được mã cơ quan), với lý do thường gặp nhất."
        ),
        sql=f"""SELECT ifNull(toString(agency_code), '—') AS agency, count() AS refused,
       topK(1)(toString(reason))[1] AS main_reason, uniqExact(reason) AS reasons,
       max(_refused_at) AS last_refused_at
FROM dead_letters FINAL
WHERE $__timeFilter_ms(_refused_at) AND {AGENCY}
GROUP BY agency
ORDER BY refused DESC, agency""",
        labels={
            "agency": "Cơ quan",
            "refused": "Bị từ chối",
            "main_reason": "Lý do chính",
            "reasons": "Số lý do",
            "last_refused_at": "Lần gần nhất",
        },
        unit="short",
        writes=True,
        w=24,
        h=10,
    )


def dashboard() -> Dashboard:
    return Dashboard(
        uid="parwatch-data-quality",
        title="Chất lượng dữ liệu",
        description=(
            "Những gì làm các chỉ số kém tin cậy, theo cơ quan: kiểm tra chưa phân loại, thiết "
            "kế điền sẵn không khớp với hồ sơ, hệ thống còn dùng service/1, cơ quan ngừng gửi, "
            "sự kiện bị từ chối."
        ),
        panels=(_unclassified(), _prefill_mismatch(), _service_v1(), _silent(), _refusals()),
        variables=("agency",),
    )
