"""What every smugir HTML page shares: the style, escaping, embedded pictures, tables, the page frame.

Pages are self-contained (no network, no external script, font or style): pictures are data: URIs
or files beside the page referenced relatively. Every text that comes from a model, an input or a
folder (names, labels, paths, the command line) goes through `esc`; data for scripts goes through
`json_script`, which cannot close its <script> element. The same fragments serve Jupyter's
`_repr_html_` (wrapped by `fragment`), so a notebook shows what the files show.
"""

from __future__ import annotations

import base64
import html
import json
import math
from typing import Any, Iterable, Sequence

STYLE = """
.smugir { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1b1b1b; line-height: 1.4; }
.smugir h1 { font-size: 1.4em; margin: 0.2em 0 0.4em; } .smugir h2 { font-size: 1.15em; margin: 1.2em 0 0.4em; }
.smugir table { border-collapse: collapse; margin: 0.4em 0; font-size: 0.9em; }
.smugir th, .smugir td { border: 1px solid #d0d0d0; padding: 0.2em 0.5em; text-align: right; vertical-align: top; }
.smugir th:first-child, .smugir td:first-child { text-align: left; }
.smugir th { background: #f2f2f2; } .smugir th.sortable { cursor: pointer; } .smugir th.sortable:after { content: " \\2195"; color: #999; }
.smugir .good { color: #0a7d2c; font-weight: 600; } .smugir .bad { color: #b00020; font-weight: 600; }
.smugir .muted { color: #666; } .smugir code, .smugir pre { background: #f5f5f5; padding: 0.1em 0.3em; border-radius: 3px; }
.smugir pre { padding: 0.5em; white-space: pre-wrap; word-break: break-all; }
.smugir figure { display: inline-block; margin: 0 0.8em 0.8em 0; vertical-align: top; }
.smugir figcaption { font-size: 0.85em; color: #444; max-width: 300px; }
.smugir .cards { display: flex; flex-wrap: wrap; gap: 0.8em; }
.smugir .card { border: 1px solid #d0d0d0; border-radius: 4px; padding: 0.5em; }
.smugir .card img { image-rendering: pixelated; } .smugir .card figcaption { max-width: 128px; } .smugir figure svg, .smugir figure img { display: block; }
.smugir .controls { margin: 0.5em 0; } .smugir .controls label { margin-right: 1em; }
.smugir mark { padding: 0 0.15em; border-radius: 2px; }
.smugir .keys td, .smugir .steps td:nth-child(2) { text-align: left; } .smugir figure img { image-rendering: pixelated; }
.smugir .words { font-size: 1.2em; line-height: 1.9; }
"""

SORT_SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (header, column) {
    header.classList.add("sortable");
    header.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var up = header.getAttribute("data-order") !== "up";
      header.setAttribute("data-order", up ? "up" : "down");
      function key(row) { var v = row.cells[column].getAttribute("data-value"); return v === null ? row.cells[column].textContent : v; }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
        var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
        return up ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def esc(value: Any) -> str:
    """Text for HTML, attributes included: <, >, &, quotes escaped; lone surrogates replaced."""
    text = str(value).encode("utf-8", errors="replace").decode("utf-8")
    return html.escape(text, quote=True)


def number(value: float | None, digits: int = 4) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}"


def png_uri(data: bytes, kind: str = "png") -> str:
    """A data: URI of a PNG (or with `kind` "jpeg", a JPEG) picture."""
    return f"data:image/{kind};base64," + base64.b64encode(data).decode("ascii")


def img(src: str, alt: str, width: int | None = None, lazy: bool = False) -> str:
    size = f' width="{int(width)}"' if width else ""
    loading = ' loading="lazy"' if lazy else ""
    return f'<img src="{esc(src)}" alt="{esc(alt)}"{size}{loading}>'


def figure(src: str, caption: str, width: int | None = None) -> str:
    return f"<figure>{img(src, caption, width)}<figcaption>{esc(caption)}</figcaption></figure>"


Cell = str | tuple[str, float | None]  # text, or (text, the value a sortable table sorts by)


def table(header: Sequence[str], rows: Iterable[Sequence[Cell]], sortable: bool = False, raw: bool = False) -> str:
    """An HTML table; cells are escaped unless `raw` (cells already HTML)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for cell in row:
            text, value = cell if isinstance(cell, tuple) else (cell, None)
            sort = f' data-value="{float(value)!r}"' if value is not None and math.isfinite(value) else ""
            cells.append(f"<td{sort}>{text if raw else esc(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    kind = ' class="sortable"' if sortable else ""
    return f"<table{kind}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def json_script(element_id: str, data: Any) -> str:
    """Data for a page's script, in a JSON <script> element that no string inside can close."""
    text = json.dumps(data, allow_nan=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'


def fragment(body: str, script: str = "") -> str:
    """`body` in a styled <div>: the page's content, also what a notebook cell shows."""
    scripts = f"<script>{script}</script>" if script else ""
    return f'<div class="smugir"><style>{STYLE}</style>{body}{scripts}</div>'


def page(title: str, body: str, script: str = "") -> str:
    """A complete, self-contained HTML document."""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data: 'self' file:; "
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">"
        f"<title>{esc(title)}</title></head>\n<body>\n{fragment(body, script)}\n</body></html>\n"
    )
