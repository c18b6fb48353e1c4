"""Detail of the 40% target: checks (kiem_tra) through networks and information systems, with the
sector variable; the plan dashboard (``dashboards.panels.plan``) holds the gauge for whole
periods. Panels here read ``inspection_classifications`` over the dashboard's time range."""

from __future__ import annotations

from dashboards.spec import AGENCY, MONTH, SECTOR, Dashboard, Panel, Targets

_SETTING = (
    "(SELECT ifNull(anyOrNull(value), {default}) FROM kpi_settings FINAL WHERE name = '{name}')"
)
HYBRID = _SETTING.format(default=0, name="hybrid_counts_as_online")
TARGET_ONLINE = _SETTING.format(default=0.4, name="target_online_inspection_share")

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
    "kiểm tra (kiem_tra, của cơ quan quản lý nhà nước) đã kết thúc (sự kiện concluded mới "
    "nhất) trong khoảng thời gian, không tính cuộc đã hủy và cuộc thanh tra (thanh_tra). "
    "Trực tuyến = mọi hoạt động qua mạng và hệ thống thông tin (video_conference, "
    "remote_document_review, information_system, online_reporting); kết hợp = có cả hai; trực "
    "tiếp = mọi hoạt động tại chỗ. Chưa phân loại (kết thúc mà không có hoạt động nào) không "
    "tính vào mẫu số. Cuộc kết hợp chỉ tính vào tử số khi cài đặt "
    "PARWATCH_HYBRID_COUNTS_AS_ONLINE=true (bảng kpi_settings)."
)


def _panels(t: Targets) -> tuple[Panel, ...]:
    pct = t.pct("online_inspection_share")
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
            target=t.get("online_inspection_share"),
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
            target=t.get("online_inspection_share"),
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
            target=t.get("online_inspection_share"),
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
            target=t.get("online_inspection_share"),
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


def dashboard(t: Targets) -> Dashboard:
    return Dashboard(
        uid="parwatch-online-inspections",
        title="parwatch · Kiểm tra qua mạng và hệ thống thông tin",
        description=(
            f"Mục tiêu của tỉnh Thanh Hóa: {t.pct('online_inspection_share')} cuộc kiểm tra của "
            "cơ quan quản lý nhà nước thực hiện qua môi trường mạng và hệ thống thông tin; chi "
            "tiết theo lĩnh vực, tháng và cơ quan (không tính thanh tra)."
        ),
        panels=_panels(t),
        variables=("agency", "sector"),
    )
