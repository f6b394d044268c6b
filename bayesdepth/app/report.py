"""A self-contained HTML page that shows a run's figures and tables, one line of text each."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

__all__ = ["chains_page", "convergence_banner", "write_index"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; color: #222; }
figure { margin: 1.5em 0; } img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #444; margin-top: .3em; } table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
.banner { padding: .8em 1em; margin: 1em 0; font-weight: 600; border-left: 6px solid; }
.banner.bad { background: #fde2e1; border-color: #c0392b; }
.banner.ok { background: #e3f6e8; border-color: #2e7d32; }
"""


def write_index(
    out_dir: str | Path,
    title: str,
    figures: Sequence[tuple[str, str]],
    notes: Sequence[str] = (),
    tables: Sequence[tuple[str, str]] = (),
    banners: Sequence[tuple[bool, str]] = (),
) -> Path:
    """Write ``out_dir/index.html``.

    Args:
        out_dir: the run folder; figure paths are relative to it.
        title: page heading.
        figures: ``(file name, one-line explanation)`` pairs, shown in order.
        notes: paragraphs shown under the heading.
        tables: ``(caption, csv file name)``; each CSV is rendered as an HTML table.
        banners: ``(ok, text)`` boxes shown first, green when ``ok`` and red otherwise (e.g.
            whether the chains converged).
    """
    out_dir = Path(out_dir)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    parts += [f"<div class='banner {'ok' if ok else 'bad'}' role='status'>{html.escape(text)}"
              "</div>" for ok, text in banners]
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


def convergence_banner(verdict, names: Sequence[str], what: str = "chains") -> tuple[bool, str]:
    """``(converged, sentence)`` for :func:`write_index`'s banners: whether the ``what`` converged
    on the quantities ``names``, and if not which quantities missed the thresholds."""
    quantities = ", ".join(names)
    if verdict.converged:
        return True, f"The {what} converged on {quantities}: {verdict.details()}."
    return False, (f"The {what} have NOT converged on {quantities}, so their summaries are not "
                   f"to be trusted: {verdict.details()}. Run longer chains (more warm-up steps "
                   "and draws), or more of them, before using the results.")


def chains_page(out_dir: str | Path, title: str, verdict, headline: Sequence[str],
                notes: Sequence[str] = ()) -> Path:
    """The report of a sampling run: the convergence banner, the function-space summary (the
    headline), the trace and rank plots, and the weight-space summary as an appendix."""
    out_dir = Path(out_dir)
    names = ", ".join(headline)
    tables = [(f"Headline: function space ({names}, the network's output at probe inputs)",
               "summary.csv")]
    if (out_dir / "summary_appendix.csv").exists():
        tables.append(("Appendix: weight space (not identifiable: hidden units permute, so a "
                       "large R-hat here is expected even when the function has converged)",
                       "summary_appendix.csv"))
    figures = [("trace.png", f"ArviZ trace plots of {names}, one line per chain."),
               ("rank.png", f"ArviZ rank plots of {names}: flat histograms when the chains "
                "agree, uneven ones when they sample different regions.")]
    return write_index(out_dir, title, figures, notes, tables,
                       banners=[convergence_banner(verdict, headline)])
