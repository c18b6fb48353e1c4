"""Pipeline health: the flow of events from Kafka into ClickHouse (from the warehouse) and the
workers' own metrics (from Prometheus, ``live`` panels the report leaves to Grafana)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from dashboards.spec import AGENCY, Dashboard, Panel


def _panels() -> tuple[Panel, ...]:
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
    live: dict[str, Any] = {"unit": "short", "sql": "", "labels": {}, "time_series": True}
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


def dashboard() -> Dashboard:
    return Dashboard(
        uid="parwatch-pipeline-health",
        title="parwatch · Sức khỏe đường ống dữ liệu",
        description="Luồng sự kiện từ Kafka vào ClickHouse: tốc độ, độ trễ, thư lỗi, trùng lặp.",
        panels=tuple(replace(p, writes=True) for p in _panels() + _live_panels()),
        variables=("agency",),
        time_from="now-6h",
        refresh="1m",
    )
