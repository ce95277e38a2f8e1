"""`index.html` of `smug eval` and `smug sanity`: sections rendered from plain data.

The summary table (sortable), the head-to-head matrix, and a gallery of every input: the input
and each method's map with its best box, its LSC and its LSC curve (image models), or the
sentence with each method's highlighted words (text models). The gallery's data is one JSON
element; a small script shows it a page at a time, filtered by label and by the method that
won, so 1,000 inputs stay fast (thumbnails are files beside the page, loaded lazily, or data:
URIs in a notebook). This module knows no smugir type: `smugir.evaluation.gallery` builds its
input, so the same sections serve the files and Jupyter's `_repr_html_`.
"""

from __future__ import annotations

from typing import Any, Sequence

from smugir.exporters.html_page import esc, json_script, table

PAGE_SIZE = 12

GALLERY_SCRIPT = """
(function () {
  var root = document.currentScript.parentNode;
  var data = JSON.parse(root.querySelector("#gallery-data").textContent);
  var cards = root.querySelector(".cards"), label = root.querySelector(".by-label"), winner = root.querySelector(".by-winner");
  var status = root.querySelector(".page-status"), page = 0, size = data.page_size;
  function option(select, value, text) { var o = document.createElement("option"); o.value = value; o.textContent = text; select.appendChild(o); }
  option(label, "", "all labels"); data.labels.forEach(function (l) { option(label, String(l), "label " + l); });
  option(winner, "", "any winner"); data.methods.forEach(function (m) { option(winner, m.key, m.name); });
  function chosen() {
    return data.inputs.filter(function (input) {
      return (label.value === "" || String(input.label) === label.value) && (winner.value === "" || input.winners.indexOf(winner.value) >= 0);
    });
  }
  function element(tag, cls, text) { var e = document.createElement(tag); if (cls) e.className = cls; if (text !== undefined) e.textContent = text; return e; }
  function curve(points, best) {
    var ns = "http://www.w3.org/2000/svg", svg = document.createElementNS(ns, "svg"), w = data.thumb, h = 48;
    svg.setAttribute("width", w); svg.setAttribute("height", h); svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    function x(a) { return 2 + a * (w - 4); } function y(s) { return h - 2 - (Math.min(3, Math.max(-3, s)) + 3) / 6 * (h - 4); }
    var axis = document.createElementNS(ns, "line");
    axis.setAttribute("x1", 0); axis.setAttribute("x2", w); axis.setAttribute("y1", y(0)); axis.setAttribute("y2", y(0)); axis.setAttribute("stroke", "#ccc");
    svg.appendChild(axis);
    var line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", points.map(function (p) { return x(p[0]) + "," + y(p[1]); }).join(" "));
    line.setAttribute("fill", "none"); line.setAttribute("stroke", "#3465a4"); svg.appendChild(line);
    if (best) { var dot = document.createElementNS(ns, "circle"); dot.setAttribute("cx", x(best[0])); dot.setAttribute("cy", y(best[1])); dot.setAttribute("r", 3); dot.setAttribute("fill", "#0a7d2c"); svg.appendChild(dot); }
    var title = document.createElementNS(ns, "title"); title.textContent = "LSC (y, -3..3, lower is better) of each box tried against its area (x, 0..1)"; svg.appendChild(title);
    return svg;
  }
  function picture(src, alt) { var i = element("img"); i.src = src; i.alt = alt; i.width = data.thumb; i.loading = "lazy"; return i; }
  function render() {
    var shown = chosen(), pages = Math.max(1, Math.ceil(shown.length / size));
    page = Math.min(page, pages - 1);
    cards.textContent = "";
    shown.slice(page * size, (page + 1) * size).forEach(function (input) {
      var card = element("div", "card");
      card.appendChild(element("div", "", input.id + " - label " + input.label + (input.winners.length ? " - best: " + input.winners.map(function (k) { return data.names[k]; }).join(", ") : "")));
      var row = element("div", "cards");
      if (input.image) { var f = element("figure"); f.appendChild(picture(input.image, "input " + input.id)); f.appendChild(element("figcaption", "", "input")); row.appendChild(f); }
      input.maps.forEach(function (m) {
        var f = element("figure");
        if (m.src) f.appendChild(picture(m.src, data.names[m.method] + " map of " + input.id));
        if (m.words) {
          var p = element("p", "words");
          m.words.forEach(function (w) { var s = element(w[1] ? "mark" : "span", "", w[0]); if (w[1]) s.style.background = "rgba(255, 170, 0, " + w[1] + ")"; else s.style.color = "#888"; p.appendChild(s); p.appendChild(document.createTextNode(" ")); });
          f.appendChild(p);
        }
        if (m.curve && m.curve.length) f.appendChild(curve(m.curve, m.best));
        var win = input.winners.indexOf(m.method) >= 0 ? " (best)" : "";
        f.appendChild(element("figcaption", win ? "good" : "", data.names[m.method] + ": LSC " + m.lsc + win));
        row.appendChild(f);
      });
      card.appendChild(row); cards.appendChild(card);
    });
    status.textContent = shown.length + " inputs, page " + (page + 1) + " of " + pages;
  }
  label.addEventListener("change", function () { page = 0; render(); });
  winner.addEventListener("change", function () { page = 0; render(); });
  root.querySelector(".previous").addEventListener("click", function () { page = Math.max(0, page - 1); render(); });
  root.querySelector(".next").addEventListener("click", function () { page += 1; render(); });
  render();
})();
"""


def summary_section(header: Sequence[str], cells: Sequence[Sequence[str]]) -> str:
    sortable = [[(cell, _leading_number(cell)) for cell in row] for row in cells]
    return "<h2>Summary</h2><p class=\"muted\">Click a column to sort. LSC: lower is better.</p>" + table(header, sortable, sortable=True)


def _leading_number(cell: str) -> float | None:
    try:
        return float(cell.split()[0])
    except (ValueError, IndexError):
        return None


def matrix_section(names: Sequence[str], matrix: Sequence[Sequence[float | None]], inputs: int) -> str:
    """matrix[a][b]: the fraction of inputs on which method a's LSC is lower than method b's."""
    rows = [[name, *("-" if value is None else f"{100 * value:.0f} %" for value in line)] for name, line in zip(names, matrix)]
    return (f"<h2>Head to head</h2><p class=\"muted\">Row beats column: the share of the {inputs} inputs on which the row's "
            "LSC is lower than the column's (ties count for neither).</p>" + table(["", *names], rows))


def gallery_section(data: dict[str, Any], text: bool = False) -> str:
    """`data`: methods [{key, name}], names {key: name}, labels, thumb (pixels), and inputs, each
    {id, label, winners [keys], image (src, image models), maps [{method, src or words ([word, shade]), lsc, curve, best}]}."""
    data = {"page_size": PAGE_SIZE, **data}
    shown = ("each method's kept words (shaded by score; the metric keeps the words above each threshold)" if text
             else "each method's map (green: its best LSC box)")
    tried = "word set" if text else "box"
    return (
        f"<h2>Gallery</h2><p class=\"muted\">Every input with {shown} and its LSC curve "
        f"(the score of each {tried} tried, against its area; the dot is the best). {len(data['inputs'])} inputs.</p>"
        '<div class="gallery"><div class="controls"><label>Label <select class="by-label"></select></label>'
        '<label>Won by <select class="by-winner"></select></label>'
        '<button class="previous" type="button">previous</button> <button class="next" type="button">next</button> '
        '<span class="page-status"></span></div><div class="cards"></div>'
        "<noscript>The gallery needs JavaScript.</noscript>"
        f"{json_script('gallery-data', data)}<script>{GALLERY_SCRIPT}</script></div>"
    )


def sanity_section(modes: dict[str, dict[str, Any]], curves_src: str | None) -> str:
    """Per mode: a table, rows = the randomisation steps (the layer changed), columns = methods,
    cells = the mean Spearman rank correlation of |map| with the original map."""
    parts = ["<h2>Randomisation steps</h2><p class=\"muted\">Mean Spearman rank correlation of |map| with the map of "
             "the original model (1 = unchanged: a method that explains the model falls towards 0).</p>"]
    if curves_src:
        parts.append(f'<img src="{esc(curves_src)}" alt="randomisation curves" style="max-width: 100%">')
    for mode, content in modes.items():
        parts.append(f"<h3>{esc(mode)}</h3>")
        parts.append(f'<div class="steps">{table(["step", "layer changed", *content["methods"]], content["rows"])}</div>')
    return "".join(parts)
