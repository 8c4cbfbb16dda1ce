"""Plain-text and Markdown tables for the benchmark scripts."""

from __future__ import annotations


def format_rows(header: list[str], rows: list[list[str]], markdown: bool = False) -> str:
    """A table of string cells: the first column left-aligned, the others right-aligned."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|:---|" + "---:|" * (len(header) - 1)]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]

    def fmt(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows])
