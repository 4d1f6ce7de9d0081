"""HTML building blocks of a report: escaping by default, number formatting, tables, embedded images and the
page shell with its inline CSS. Everything not wrapped in `Markup` is escaped: the pages show LLM-written
hypotheses and code, which are untrusted."""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from pathlib import Path


class Markup(str):
    """HTML that was built here from escaped parts, and may be inserted as it is. Adding text to it escapes
    the text, so concatenation stays safe (and stays Markup)."""

    def __add__(self, other: object) -> Markup:
        return Markup(str.__add__(self, esc(other)))

    def __radd__(self, other: object) -> Markup:
        return Markup(str.__add__(esc(other), self))


def esc(value: object) -> Markup:
    """Escaped text, or the value itself when it is already Markup."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def join(parts: Iterable[object], separator: str = "") -> Markup:
    return Markup(esc(separator).join(esc(p) for p in parts))


def tag(name: str, content: object = "", *, cls: str | None = None, **attributes: object) -> Markup:
    """<name class=... attr=...>content</name>, attributes and content escaped (attribute names are ours)."""
    attrs = "".join(f' {key.rstrip("_").replace("_", "-")}="{esc(value)}"' for key, value in attributes.items()
                    if value is not None)
    if cls:
        attrs = f' class="{esc(cls)}"' + attrs
    return Markup(f"<{name}{attrs}>{esc(content)}</{name}>")


def number(value: float | None, digits: int = 4, *, sign: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def p_value(value: float | None) -> str:
    if value is None:
        return "–"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def interval(low: float | None, high: float | None, digits: int = 4) -> str:
    if low is None or high is None:
        return "undefined"
    return f"[{low:+.{digits}f}, {high:+.{digits}f}]"


Cell = object  # text (escaped) or Markup, optionally as (content, css class)


def table(headers: Sequence[str], rows: Iterable[Sequence[Cell]], *, row_classes: Sequence[str | None] | None = None,
          cls: str = "data", numeric: Sequence[int] = ()) -> Markup:
    """A table; `numeric` columns are right-aligned with tabular figures. A cell given as (content, class) gets
    that class."""
    head = join(tag("th", h, cls="num" if i in numeric else None) for i, h in enumerate(headers))
    body = []
    for position, row in enumerate(rows):
        cells = []
        for column, cell in enumerate(row):
            content, extra = cell if isinstance(cell, tuple) else (cell, None)
            classes = " ".join(c for c in ("num" if column in numeric else None, extra) if c)
            cells.append(tag("td", content, cls=classes or None))
        row_cls = row_classes[position] if row_classes and position < len(row_classes) else None
        body.append(tag("tr", join(cells), cls=row_cls))
    return tag("div", tag("table", tag("thead", tag("tr", head)) + tag("tbody", join(body)), cls=cls), cls="scroll")


def badge(text: str, kind: str) -> Markup:
    return tag("span", text, cls=f"badge {kind}")


def figure(png: Path, alt: str, caption: str = "") -> Markup:
    """The PNG embedded as a data URI, so the page needs no other file."""
    data = base64.b64encode(png.read_bytes()).decode("ascii")
    image = Markup(f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}">')
    return tag("figure", image + (tag("figcaption", caption) if caption else Markup("")))


def details(summary: object, content: object, *, element_id: str | None = None, cls: str | None = None) -> Markup:
    return tag("details", tag("summary", summary) + esc(content), cls=cls, id=element_id)


def code_block(source: str, *, element_id: str | None = None) -> Markup:
    return tag("pre", tag("code", source), id=element_id)


def section(title: str, *content: object, element_id: str | None = None) -> Markup:
    return tag("section", tag("h2", title) + join(content), id=element_id)


def cards(items: Sequence[tuple[str, str, str | None]]) -> Markup:
    """Key figures as a row of cards: (label, value, optional detail)."""
    return tag("div", join(tag("div", tag("div", label, cls="label") + tag("div", value, cls="value")
                                       + (tag("div", note, cls="note") if note else Markup("")), cls="card")
                           for label, value, note in items), cls="cards")


def page(title: str, subtitle: object, body: object) -> str:
    """A whole HTML document: inline CSS, no script, no external resource."""
    header = tag("header", tag("h1", title) + tag("p", subtitle, cls="subtitle"))
    return ("<!DOCTYPE html>\n" + '<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            # No script may run even if some escaping were missed: the page needs none.
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
            "style-src 'unsafe-inline'\">"
            f"{tag('title', title)}<style>{CSS}</style></head>"
            f"<body><main>{header}{esc(body)}</main></body></html>\n")


CSS = """
:root { --ink:#1b1f24; --muted:#5b6570; --line:#d9dee3; --soft:#f5f7f9; --better:#0b6e4f; --better-bg:#dff3ea;
  --worse:#a33a00; --worse-bg:#fbe5d6; --neutral:#5b6570; --neutral-bg:#eceff2; --kept-bg:#e8f1fa; --accent:#0072B2;
  --stopped:#7a4f00; --stopped-bg:#fcebc4; }
* { box-sizing:border-box; }
body { margin:0; background:#fff; color:var(--ink); font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,
  "DejaVu Sans",sans-serif; }
main { max-width:1240px; margin:0 auto; padding:28px 32px 64px; }
header { border-bottom:2px solid var(--ink); margin-bottom:20px; }
h1 { font-size:26px; margin:0 0 4px; }
h2 { font-size:19px; margin:34px 0 10px; padding-bottom:4px; border-bottom:1px solid var(--line); }
h3 { font-size:16px; margin:20px 0 8px; }
.subtitle { color:var(--muted); margin:0 0 14px; }
p { margin:6px 0 10px; max-width:78em; }
code, pre { font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace; font-size:12.5px; }
pre { background:var(--soft); border:1px solid var(--line); border-radius:6px; padding:10px 12px; overflow:auto;
  max-height:520px; margin:6px 0 12px; white-space:pre; }
.cards { display:flex; flex-wrap:wrap; gap:10px; margin:12px 0 6px; }
.card { border:1px solid var(--line); border-radius:8px; padding:8px 14px; min-width:140px; background:var(--soft); }
.card .label { font-size:12px; color:var(--muted); text-transform:uppercase; letter-spacing:.04em; }
.card .value { font-size:21px; font-weight:600; font-variant-numeric:tabular-nums; }
.card .note { font-size:12px; color:var(--muted); }
figure { margin:12px 0 18px; }
figure img { max-width:100%; height:auto; border:1px solid var(--line); border-radius:6px; }
figcaption { font-size:13px; color:var(--muted); margin-top:4px; }
.scroll { overflow-x:auto; margin:8px 0 14px; }
table.data { border-collapse:collapse; font-size:13.5px; min-width:60%; }
table.data th, table.data td { border-bottom:1px solid var(--line); padding:5px 8px; text-align:left;
  vertical-align:top; }
table.data th { background:var(--soft); font-weight:600; vertical-align:bottom; }
table.data th.num { text-align:right; }
table.data td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
table.data tr.kept td { background:var(--kept-bg); }
table.data tr.kept td:first-child { box-shadow:inset 4px 0 0 var(--accent); }
table.data tr.problem td { color:var(--worse); }
table.data tr.untried td { color:var(--muted); }
td.small, .small { font-size:12.5px; color:var(--muted); }
td.changes code { white-space:nowrap; }
.badge { display:inline-block; padding:1px 8px; border-radius:10px; font-size:12.5px; font-weight:600;
  white-space:nowrap; }
.badge.better, .badge.live, .badge.finished { color:var(--better); background:var(--better-bg); }
.badge.worse, .badge.quarantined, .badge.failed, .badge.missing, .badge.crash, .badge.timeout
  { color:var(--worse); background:var(--worse-bg); }
.badge.stopped { color:var(--stopped); background:var(--stopped-bg); }
.badge.reference { color:#fff; background:var(--ink); font-size:11px; }
.badge.inconclusive, .badge.inert, .badge.never-called, .badge.incomplete, .badge.invalid, .badge.ok
  { color:var(--neutral); background:var(--neutral-bg); }
.verdicts { list-style:none; padding:0; margin:8px 0; }
.verdicts li { margin:4px 0; }
.caveats { border-left:4px solid #E69F00; background:#fdf6e7; padding:8px 14px; margin:14px 0; border-radius:0 6px 6px 0; }
.caveats ul { margin:4px 0; padding-left:20px; }
details { margin:6px 0; }
details > summary { cursor:pointer; color:var(--accent); }
details.source > summary { font-family:ui-monospace,"DejaVu Sans Mono",monospace; font-size:13px; }
details.error pre { max-height:200px; }
details.error > summary { white-space:nowrap; }
td.why { min-width:240px; }
td.note { min-width:150px; }
td.nowrap { white-space:nowrap; }
a { color:var(--accent); }
"""
