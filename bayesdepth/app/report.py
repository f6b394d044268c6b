"""A self-contained HTML page that shows a run's figures and tables, one line of text each."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

__all__ = ["write_index"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; color: #222; }
figure { margin: 1.5em 0; } img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #444; margin-top: .3em; } table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
"""


def write_index(
    out_dir: str | Path,
    title: str,
    figures: Sequence[tuple[str, str]],
    notes: Sequence[str] = (),
    tables: Sequence[tuple[str, str]] = (),
) -> Path:
    """Write ``out_dir/index.html``.

    Args:
        out_dir: the run folder; figure paths are relative to it.
        title: page heading.
        figures: ``(file name, one-line explanation)`` pairs, shown in order.
        notes: paragraphs shown under the heading.
        tables: ``(caption, csv file name)``; each CSV is rendered as an HTML table.
    """
    out_dir = Path(out_dir)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts += [f"<p>{html.escape(note)}</p>" for note in notes]
    for caption, name in tables:
        rows = (out_dir / name).read_text().strip().splitlines()
        cells = [row.split(",") for row in rows]
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cells[0])
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
            for row in cells[1:]
        )
        parts.append(f"<h2>{html.escape(caption)}</h2><p><a href='{html.escape(name)}'>"
                     f"{html.escape(name)}</a></p><table><tr>{head}</tr>{body}</table>")
    for name, caption in figures:
        parts.append(f"<figure><img src='{html.escape(name)}' alt='{html.escape(caption)}'>"
                     f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    path = out_dir / "index.html"
    path.write_text("\n".join(parts))
    return path
