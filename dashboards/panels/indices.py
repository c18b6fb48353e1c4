"""The province's annual index results (PAR INDEX, SIPAS, PAPI, PCI) from the reference table
``annual_indices`` (``schemas/reference/annual_indices.csv``), each with its publisher and source.
They do not depend on the dashboard's time range."""

from __future__ import annotations

from dashboards.spec import Dashboard, Panel

INDEX_NAMES = {
    "PAR_INDEX": "PAR INDEX (cải cách hành chính)",
    "SIPAS": "SIPAS (hài lòng của người dân)",
    "PAPI": "PAPI (quản trị và hành chính công)",
    "PCI": "PCI (năng lực cạnh tranh)",
}
_NAME_SQL = (
    "multiIf("
    + ", ".join(f"index_name = '{k}', '{v}'" for k, v in INDEX_NAMES.items())
    + ", toString(index_name))"
)


def _table() -> Panel:
    return Panel(
        key="annual_indices",
        kind="table",
        title="Kết quả các chỉ số hằng năm của tỉnh",
        description=(
            "Điểm và thứ hạng của tỉnh Thanh Hóa do các cơ quan công bố, từ bảng tham chiếu "
            "annual_indices (nạp lại cùng danh mục); 'Thang điểm' là điểm tối đa; thứ hạng trên "
            "số tỉnh, thành được xếp. Không phụ thuộc khoảng thời gian."
        ),
        sql=f"""SELECT {_NAME_SQL} AS index_title, year, score, scale,
       if(rank IS NULL, '—', concat(toString(rank), '/', toString(ranked_of))) AS rank_text,
       publisher, source
FROM annual_indices FINAL
ORDER BY index_name, year DESC""",
        labels={
            "index_title": "Chỉ số",
            "year": "Năm",
            "score": "Điểm",
            "scale": "Thang điểm",
            "rank_text": "Thứ hạng",
            "publisher": "Cơ quan công bố",
            "source": "Nguồn",
        },
        column_units={"year": "none", "score": "none", "scale": "none"},
        h=14,
        w=24,
    )


def _ranks() -> Panel:
    cols = ",\n       ".join(f"maxIf(rank, index_name = '{k}') AS {k.lower()}" for k in INDEX_NAMES)
    return Panel(
        key="annual_ranks",
        kind="timeseries",
        title="Thứ hạng của tỉnh theo năm",
        description=(
            "Thứ hạng của tỉnh trong cả nước theo từng chỉ số (1 là cao nhất; số nhỏ hơn là tốt "
            "hơn), theo năm công bố kết quả, từ bảng annual_indices."
        ),
        sql=f"""SELECT toDateTime(makeDate(year, 1, 1), 'Asia/Ho_Chi_Minh') AS time,
       {cols}
FROM annual_indices FINAL
GROUP BY year
ORDER BY time""",
        labels={k.lower(): k.replace("_", " ") for k in INDEX_NAMES},
        unit="short",
        time_series=True,
        w=24,
    )


def dashboard() -> Dashboard:
    return Dashboard(
        uid="parwatch-annual-indices",
        title="Chỉ số đánh giá hằng năm",
        description=(
            "PAR INDEX, SIPAS, PAPI và PCI của tỉnh Thanh Hóa theo năm, với nguồn công bố."
        ),
        panels=(_table(), _ranks()),
        variables=(),
        time_from="now-20y",
    )
