"""The commands' table printer."""

from __future__ import annotations

from parwatch.table import table_lines


def test_columns_are_padded_to_the_widest_cell_and_numbers_align_right() -> None:
    lines = table_lines(("agency", "n", "name"), [("TH-S-TP", "7", "Sở Tư pháp"),
                                                  ("X", "1234", "-")], right=[1])  # fmt: skip
    assert lines == [
        "agency      n  name",
        "-------  ----  ----------",
        "TH-S-TP     7  Sở Tư pháp",
        "X        1234  -",
    ]


def test_without_a_rule_and_without_rows() -> None:
    assert table_lines(("a", "bb"), [], rule=False) == ["a  bb"]
