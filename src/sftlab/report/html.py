"""A small builder for self-contained HTML reports: no external assets, plots inlined as PNG.

>>> page = HtmlReport("Curation")
>>> page.section("Counts").table([{"step": "dedup", "in": 10, "out": 8}])
<sftlab.report.html.HtmlReport object at ...>
>>> "<table" in page.render()
True
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sftlab.utils.atomic import write_text

_CSS = """
:root{--fg:#1d2330;--muted:#5b6474;--line:#e3e6ec;--bg:#fafbfc;--accent:#2f6fde;--good:#1a7f37;--bad:#cf222e;--warn:#9a6700}
*{box-sizing:border-box}body{font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:var(--fg);background:var(--bg);margin:0}main{max-width:1100px;margin:0 auto;padding:24px 28px 64px}
h1{font-size:26px;margin:8px 0 4px}h2{font-size:19px;margin:34px 0 10px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:18px 0 6px}.sub{color:var(--muted);margin:0 0 18px}
table{border-collapse:collapse;margin:8px 0 14px;background:#fff;font-size:13px;width:auto;max-width:100%}
th,td{border:1px solid var(--line);padding:5px 9px;text-align:left;vertical-align:top}
th{background:#f1f3f6;font-weight:600}td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin:10px 0 8px}.card{background:#fff;border:1px solid var(--line);border-radius:8px;
padding:10px 14px;min-width:150px}.card .v{font-size:22px;font-weight:600}.card .k{color:var(--muted);font-size:12px}
.good{color:var(--good)}.bad{color:var(--bad)}.warn{color:var(--warn)}img{max-width:100%;background:#fff;border:1px solid var(--line);
border-radius:6px}pre{background:#fff;border:1px solid var(--line);border-radius:6px;padding:10px;overflow:auto;white-space:pre-wrap;
font-size:12.5px}.note{background:#fff8e6;border:1px solid #f0dca5;border-radius:6px;padding:8px 12px;margin:8px 0}
.ok{background:#eefbf1;border:1px solid #b7e4c3;border-radius:6px;padding:8px 12px;margin:8px 0}
.err{background:#fdeeee;border:1px solid #f2b8b8;border-radius:6px;padding:8px 12px;margin:8px 0}
nav{font-size:13px;margin:0 0 10px}nav a{color:var(--accent);margin-right:12px;text-decoration:none}
mark.t{background:#d6f5dd;border-radius:2px}mark.m{background:transparent;color:#8a93a3}
"""


def figure_to_data_uri(fig: Any, dpi: int = 110) -> str:
    """A matplotlib figure as a ``data:image/png;base64,...`` URI (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f'<td class="num">{value:.4g}</td>'
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value:,}</td>'
    return f"<td>{html.escape('' if value is None else str(value))}</td>"


class HtmlReport:
    """Append sections, tables, cards, figures and text; ``save`` writes one HTML file atomically."""

    def __init__(self, title: str, subtitle: str | None = None):
        self.title = title
        self.subtitle = subtitle
        self._parts: list[str] = []
        self._toc: list[tuple[str, str]] = []

    def section(self, title: str) -> HtmlReport:
        anchor = f"s{len(self._toc) + 1}"
        self._toc.append((anchor, title))
        self._parts.append(f'<h2 id="{anchor}">{html.escape(title)}</h2>')
        return self

    def heading(self, title: str) -> HtmlReport:
        self._parts.append(f"<h3>{html.escape(title)}</h3>")
        return self

    def text(self, text: str, css: str | None = None) -> HtmlReport:
        """A paragraph; ``css`` is one of note/ok/err for a coloured box."""
        body = html.escape(text)
        self._parts.append(f'<div class="{css}">{body}</div>' if css else f"<p>{body}</p>")
        return self

    def raw(self, markup: str) -> HtmlReport:
        """Trusted markup built by sftlab itself (e.g. a mask preview)."""
        self._parts.append(markup)
        return self

    def pre(self, text: str) -> HtmlReport:
        self._parts.append(f"<pre>{html.escape(text)}</pre>")
        return self

    def cards(self, items: Mapping[str, Any]) -> HtmlReport:
        """Big numbers with a caption, e.g. ``{"records kept": 812}``."""
        cells = []
        for key, value in items.items():
            shown = (
                f"{value:.4g}"
                if isinstance(value, float)
                else (f"{value:,}" if isinstance(value, int) else str(value))
            )
            cells.append(
                f'<div class="card"><div class="v">{html.escape(shown)}</div><div class="k">{html.escape(key)}</div></div>'
            )
        self._parts.append('<div class="cards">' + "".join(cells) + "</div>")
        return self

    def table(self, rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None) -> HtmlReport:
        rows = list(rows)
        if not rows:
            self._parts.append("<p><em>(none)</em></p>")
            return self
        columns = list(columns or dict.fromkeys(k for r in rows for k in r))
        head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
        body = "".join("<tr>" + "".join(_cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
        self._parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return self

    def figure(self, fig: Any, caption: str | None = None) -> HtmlReport:
        """Inline a matplotlib figure as PNG."""
        uri = figure_to_data_uri(fig)
        cap = f"<figcaption>{html.escape(caption)}</figcaption>" if caption else ""
        self._parts.append(f'<figure><img src="{uri}" alt="{html.escape(caption or "plot")}">{cap}</figure>')
        return self

    def render(self) -> str:
        nav = "".join(f'<a href="#{a}">{html.escape(t)}</a>' for a, t in self._toc)
        sub = f'<p class="sub">{html.escape(self.subtitle)}</p>' if self.subtitle else ""
        return (
            f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            f'content="width=device-width,initial-scale=1"><title>{html.escape(self.title)}</title>'
            f"<style>{_CSS}</style></head><body><main><h1>{html.escape(self.title)}</h1>{sub}"
            f"<nav>{nav}</nav>{''.join(self._parts)}</main></body></html>\n"
        )

    def save(self, path: str | Path) -> Path:
        return write_text(path, self.render())
