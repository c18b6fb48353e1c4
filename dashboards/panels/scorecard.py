"""The 766 scorecard (Decision 766/QĐ-TTg): one row per agency, the province on top, one column
per indicator parwatch computes, for the period chosen with ``grain`` and ``period``; each
column coloured by its official threshold where a source gives one (``schemas/targets.py``)."""

from __future__ import annotations

from dashboards.spec import AGENCY, PERIOD, Dashboard, Panel, Targets

PROVINCE = "Toàn tỉnh"
# column -> (label, the 766 article or source)
COLUMNS: dict[str, tuple[str, str]] = {
    "on_time_rate": ("Đúng hạn (kể cả đang giải quyết)", "§2.1"),
    "average_resolution_days": ("Thời gian giải quyết TB (ngày)", "§2.2"),
    "full_process_offering_rate": ("Thủ tục toàn trình", "§3.1"),
    "online_dossier_rate": ("Hồ sơ trực tuyến", "§3.3"),
    "online_payment_rate": ("Thanh toán trực tuyến", "§3.6"),
    "electronic_result_rate": ("Kết quả điện tử", "§4.1"),
    "digitization_rate": ("Số hóa hồ sơ", "§4.2"),
    "data_reuse_rate": ("Tái sử dụng dữ liệu", "§4.3"),
    "prefill_design_coverage": ("Thiết kế điền sẵn", "QĐ 942"),
    "online_inspection_share": ("Kiểm tra trực tuyến", "kế hoạch tỉnh"),
}

RULES = (
    "Một dòng mỗi cơ quan có số liệu trong kỳ đã chọn (biến 'Loại kỳ', 'Kỳ'), dòng toàn tỉnh "
    "trên cùng (tính trên mọi cơ quan, không lấy trung bình). Chỉ số theo EVENTS.md phiên bản "
    "2: đúng hạn = (hoàn thành đúng hạn + đang giải quyết chưa quá hạn vào cuối kỳ) ÷ "
    "(hoàn thành + đang giải quyết), thời gian chờ bổ sung không tính (§2.1); thời gian giải "
    "quyết trung bình trừ thời gian tạm dừng (§2.2); hồ sơ trực tuyến ÷ mọi hồ sơ tiếp nhận "
    "(§3.3); thanh toán trực tuyến ÷ hồ sơ có thanh toán (§3.6); kết quả điện tử ÷ hồ sơ hoàn "
    "thành (§4.1); số hóa ÷ hồ sơ service/2 (§4.2); tái sử dụng = hồ sơ có thành phần dùng "
    "lại hoặc trường điền sẵn ÷ mọi hồ sơ (§4.3). Màu: đỏ dưới ngưỡng chính thức, xanh từ "
    "ngưỡng, chỉ ở cột có ngưỡng được công bố ({thresholds}). Bấm tiêu đề cột để sắp xếp; "
    "'—': không có mẫu số trong kỳ."
)


def _thresholds(t: Targets) -> dict[str, float]:
    return {c: v for c in COLUMNS if c != "average_resolution_days" and (v := t.get(c)) is not None}


def scorecard_panel(t: Targets) -> Panel:
    thresholds = _thresholds(t)
    listed = ", ".join(f"{COLUMNS[c][0]} {v:.0%}" for c, v in thresholds.items()) or "không có"
    cols = ",\n       ".join(f"k.{c} AS {c}" for c in COLUMNS)
    agency = AGENCY.replace("agency_code", "k.agency_code")
    return Panel(
        key="scorecard",
        kind="table",
        title="Bộ chỉ số 766 theo cơ quan",
        description=RULES.format(thresholds=listed),
        sql=f"""SELECT if(k.agency_code IS NULL, '{PROVINCE}',
          concat(k.agency_code, ' — ', a.name)) AS agency,
       {cols},
       k.dossiers_submitted AS dossiers_submitted
FROM kpi_${{grain}} AS k
LEFT JOIN (SELECT code, name FROM agencies FINAL) AS a ON a.code = k.agency_code
WHERE k.period = {PERIOD} AND (k.agency_code IS NULL OR {agency})
ORDER BY k.agency_code IS NOT NULL, k.agency_code""",
        labels={
            "agency": "Cơ quan",
            **{c: f"{label} ({src})" for c, (label, src) in COLUMNS.items()},
            "dossiers_submitted": "Hồ sơ tiếp nhận",
        },
        unit="percentunit",
        column_units={"average_resolution_days": "none", "dossiers_submitted": "short"},
        column_targets=thresholds,
        h=20,
        w=24,
    )


def dashboard(t: Targets) -> Dashboard:
    return Dashboard(
        uid="parwatch-scorecard-766",
        title="Bộ chỉ số 766",
        description=(
            "Bộ chỉ số chỉ đạo, điều hành và đánh giá chất lượng phục vụ người dân, doanh nghiệp "
            "(Quyết định 766/QĐ-TTg năm 2022): các chỉ số parwatch tính được, theo cơ quan, "
            "trong kỳ đã chọn."
        ),
        panels=(scorecard_panel(t),),
        variables=("grain", "period", "agency"),
    )
