"""The province's annual index results: the bundled figures, validation (one error per bad
line), ``parwatch indices add``, and the load into the warehouse beside the catalogs."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from parwatch.cli import main
from schemas.catalog import (
    AnnualIndex,
    CatalogError,
    bundled_dir,
    load_catalog,
    read_annual_indices,
)
from streams.warehouse.reference import load_catalog_tables

HEADER = "index_name,year,score,scale,rank,ranked_of,publisher,source\n"


def test_the_bundled_figures_are_the_published_ones() -> None:
    results = {(r.index_name, r.year): r for r in load_catalog().annual_indices}
    assert results[("PCI", 2023)] == AnnualIndex(
        "PCI", 2023, 66.79, 100.0, 30, 63, "VCCI", "https://pcivietnam.vn/en/provinces/thanh-hoa"
    )
    assert (results[("PCI", 2024)].score, results[("PCI", 2024)].rank) == (68.74, 21)
    assert (results[("PAPI", 2021)].score, results[("PAPI", 2021)].rank) == (47.102, 3)
    assert (results[("PAPI", 2022)].score, results[("PAPI", 2022)].scale) == (46.015, 80.0)
    assert (results[("PAR_INDEX", 2021)].score, results[("PAR_INDEX", 2021)].rank) == (87.83, 14)
    # SIPAS 2022 (5th) has no published score found: the table needs one, so it is left out
    assert not any(name == "SIPAS" for name, _ in results)
    assert all(r.source and r.publisher for r in results.values())


def test_each_bad_line_is_one_error() -> None:
    text = HEADER + (
        "PCI,2023,66.79,100,30,63,VCCI,https://pcivietnam.vn\n"  # 2: good
        "PCII,2023,66.79,100,30,63,VCCI,x\n"  # 3
        "PCI,2022,166.79,100,30,63,VCCI,x\n"  # 4
        "SIPAS,2022,,100,5,63,Bộ Nội vụ,x\n"  # 5
        "PCI,2021,63.21,100,64,63,VCCI,x\n"  # 6
        "PCI,2023,66.79,100,30,63,VCCI,again\n"  # 7
        "PCI,20x0,66.79,100,30,63,VCCI,x\n"  # 8
        "PCI,2019,65.64,100,24,63,VCCI,\n"  # 9
        "PCI,2018,63.94,100,25,63,VCCI\n"  # 10
        "PAPI,2021,47.102,80,,,UNDP,x\n"  # 11: good (rank unknown)
    )
    good, bad = read_annual_indices(text)
    assert [(g.index_name, g.year, g.rank) for g in good] == [
        ("PCI", 2023, 30),
        ("PAPI", 2021, None),
    ]
    assert [e.line for e in bad] == [3, 4, 5, 6, 7, 8, 9, 10]
    words = ["index_name must be one of", "outside 0..100", "score is empty",
             "rank must be between 1 and 63", "duplicate PCI 2023 (line 2)",
             "year must be a whole number", "source is empty", "expected 8 columns"]  # fmt: skip
    for error, w in zip(bad, words, strict=True):
        assert w in error.message, error
    assert read_annual_indices("year,index_name\n") == ([], [read_annual_indices("")[1][0]])


def _catalog_dir(tmp_path: Path) -> Path:
    d = tmp_path / "catalog"
    d.mkdir()
    for name in ("agencies.csv", "procedures.csv", "annual_indices.csv"):
        shutil.copy(bundled_dir() / name, d / name)
    return d


def test_a_bad_file_stops_the_catalog_and_a_missing_one_is_empty(tmp_path: Path) -> None:
    d = _catalog_dir(tmp_path)
    (d / "annual_indices.csv").write_text(HEADER + "PCI,2023,abc,100,,,VCCI,x\n", "utf-8")
    with pytest.raises(CatalogError, match=r"annual_indices.csv:2: score must be a number"):
        load_catalog(d)
    (d / "annual_indices.csv").unlink()
    assert load_catalog(d).annual_indices == ()


def _add(*args: str) -> int:
    return main(["indices", "add", "--index", "PCI", "--year", "2025", "--scale", "100",
                 "--publisher", "VCCI", "--source", "https://pcivietnam.vn", *args])  # fmt: skip


def test_indices_add_appends_a_validated_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PARWATCH_CATALOG_DIR", raising=False)
    assert _add("--score", "70.1") == 2  # no catalog folder: the bundled one is never edited
    d = _catalog_dir(tmp_path)
    monkeypatch.setenv("PARWATCH_CATALOG_DIR", str(d))
    before = (d / "annual_indices.csv").read_text("utf-8")
    assert _add("--score", "70.1", "--rank", "12", "--ranked-of", "63") == 0
    after = (d / "annual_indices.csv").read_text("utf-8")
    assert after == before + "PCI,2025,70.1,100,12,63,VCCI,https://pcivietnam.vn\n"
    assert load_catalog(d).annual_indices[-1] == AnnualIndex(
        "PCI", 2025, 70.1, 100.0, 12, 63, "VCCI", "https://pcivietnam.vn"
    )
    capsys.readouterr()
    assert _add("--score", "71") == 2  # the year is there already
    assert "already holds PCI 2025 (score 70.1" in capsys.readouterr().err
    assert _add("--score", "171") == 2  # above the scale
    assert "outside 0..100" in capsys.readouterr().err
    assert _add("--score", "71", "--rank", "70", "--ranked-of", "63") == 2
    assert (d / "annual_indices.csv").read_text("utf-8") == after  # refusals change nothing
    assert _add("--score", "71", "--replace") == 0
    rows = [r for r in load_catalog(d).annual_indices if (r.index_name, r.year) == ("PCI", 2025)]
    assert [(r.score, r.rank) for r in rows] == [(71.0, None)]
    assert main(["indices", "list", "--index", "PCI"]) == 0
    assert "2025     71/100" in capsys.readouterr().out


@pytest.mark.clickhouse
def test_the_results_are_loaded_with_the_catalogs(warehouse: Any) -> None:
    catalog = load_catalog()
    assert load_catalog_tables(warehouse, catalog) == (
        len(catalog.agencies),
        len(catalog.procedures),
    )
    rows = warehouse.query(
        "SELECT index_name, year, score, scale, rank, ranked_of, publisher FROM annual_indices "
        "ORDER BY index_name, year"
    ).result_rows
    assert len(rows) == len(catalog.annual_indices) == 17
    assert ("PAPI", 2021, 47.102, 80.0, 3, 63, "UNDP, CECODES, VFF-CTC, RTA") in rows
    assert ("PCI", 2023, 66.79, 100.0, 30, 63, "VCCI") in rows
    load_catalog_tables(warehouse, catalog)  # a reload replaces, never doubles
    assert warehouse.command("SELECT count() FROM annual_indices") == 17
