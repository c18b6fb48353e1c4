"""The commands' one table printer: columns padded to their widest cell, two spaces apart."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def table_lines(
    head: Sequence[str], rows: Iterable[Sequence[str]], *, right: Iterable[int] = (),
    rule: bool = True,
) -> list[str]:  # fmt: skip
    """The lines of a text table: ``head``, a rule of dashes under it when ``rule``, then the
    rows. Columns whose index is in ``right`` are right-aligned (numbers); trailing spaces are
    dropped, so the last column is never padded."""
    cells = [list(head), *(list(r) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    at_right = set(right)

    def line(cells_of_row: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in at_right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells_of_row, widths, strict=True))
        ).rstrip()

    out = [line(cells[0])]
    if rule:
        out.append("  ".join("-" * w for w in widths))
    out.extend(line(c) for c in cells[1:])
    return out
