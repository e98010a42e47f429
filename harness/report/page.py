"""The HTML page shell shared by the run and trend reports: inline CSS and JS only.

The script (a) turns each chart element's SVG <title> into a styled tooltip, (b) links
hovering a table row to its point in the chart and back, (c) sorts tables by a click
on a column header, and (d) marks the document ``data-ready="1"`` when it has run, so
a headless browser test can tell that it ran without errors.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence

from harness.report.svg import esc

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1100px;
 padding:16px 24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 6px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd}
h3{font-size:15px;margin:18px 0 6px}
dl.facts,dl.env{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:0}
dt{color:#666}dd{margin:0;word-break:break-all}
figure{margin:10px 0;background:#fff;border:1px solid #e3e3e3;display:inline-block}
svg.chart{display:block}
.scroll{overflow-x:auto;max-width:100%;border:1px solid #e3e3e3}
tr.group th{background:#f6f6f6;color:#555;font-weight:normal;white-space:normal;cursor:default}
table{border-collapse:collapse;background:#fff;font-size:12.5px}
th,td{border:1px solid #e3e3e3;padding:3px 7px;text-align:left;white-space:nowrap}
td[data-v]{text-align:right;font-variant-numeric:tabular-nums}
td.reason{white-space:normal;min-width:220px;max-width:420px;color:#555}
th{background:#f0f0f0;cursor:pointer;user-select:none}
th[aria-sort=ascending]::after{content:' ▲'}th[aria-sort=descending]::after{content:' ▼'}
.st-ok{color:#176d2c}.st-partially{color:#a25b00}.st-unsupported{color:#777}.st-failed{color:#b00}
tr.hl td{background:#fff5cc}
.pt{cursor:default}.pt.hl circle,.pt.hl rect,.pt.hl polygon{stroke:#000;stroke-width:2.5}
.warnings{background:#fff7e6;border:1px solid #f0c36d;padding:4px 14px;margin-top:14px}
.warnings h2{border:0;margin:6px 0}
.slo tr.unmet td{background:#fde8e8}.slo tr.met td{background:#e9f7ec}
#tip{position:fixed;display:none;pointer-events:none;background:#222;color:#fff;
 padding:6px 9px;border-radius:4px;font-size:12px;white-space:pre;z-index:10;max-width:520px}
.note{color:#666}
details{margin:4px 0}
"""

JS = """
(function () {
  var tip = document.getElementById('tip');
  var els = document.querySelectorAll('svg.chart title');
  for (var i = 0; i < els.length; i++) {
    var t = els[i], g = t.parentNode;
    g.setAttribute('data-tip', t.textContent);
    g.removeChild(t);
  }
  function mark(cell, on) {
    if (!cell) return;
    var all = document.querySelectorAll('[data-cell="' + cell + '"]');
    for (var i = 0; i < all.length; i++) all[i].classList.toggle('hl', on);
  }
  function move(e) {
    var x = e.clientX + 14, y = e.clientY + 14;
    if (x + tip.offsetWidth > window.innerWidth) x = e.clientX - tip.offsetWidth - 10;
    if (y + tip.offsetHeight > window.innerHeight) y = e.clientY - tip.offsetHeight - 10;
    tip.style.left = x + 'px'; tip.style.top = y + 'px';
  }
  function show(e) {
    var g = e.currentTarget;
    tip.textContent = g.getAttribute('data-tip');
    tip.style.display = 'block';
    move(e);
    mark(g.getAttribute('data-cell'), true);
  }
  function hide(e) {
    tip.style.display = 'none';
    mark(e.currentTarget.getAttribute('data-cell'), false);
  }
  var tipped = document.querySelectorAll('[data-tip]');
  for (var j = 0; j < tipped.length; j++) {
    tipped[j].addEventListener('mouseenter', show);
    tipped[j].addEventListener('mousemove', move);
    tipped[j].addEventListener('mouseleave', hide);
  }
  function rowMark(e, on) { mark(e.currentTarget.getAttribute('data-cell'), on); }
  var rows = document.querySelectorAll('tr[data-cell]');
  for (var k = 0; k < rows.length; k++) {
    rows[k].addEventListener('mouseenter', function (e) { rowMark(e, true); });
    rows[k].addEventListener('mouseleave', function (e) { rowMark(e, false); });
  }
  function key(td) {
    var v = td.getAttribute('data-v');
    if (v !== null) return v === '' ? null : parseFloat(v);
    return td.textContent.trim().toLowerCase();
  }
  function sortBy(th) {
    var table = th.closest('table'), body = table.tBodies[0];
    var col = Array.prototype.indexOf.call(th.parentNode.children, th);
    var asc = th.getAttribute('aria-sort') !== 'ascending';
    var list = Array.prototype.slice.call(body.rows);
    list.sort(function (a, b) {
      var x = key(a.cells[col]), y = key(b.cells[col]);
      if (x === y) return 0;
      if (x === null || x === '') return 1;
      if (y === null || y === '') return -1;
      return (x < y ? -1 : 1) * (asc ? 1 : -1);
    });
    for (var i = 0; i < list.length; i++) body.appendChild(list[i]);
    var ths = th.parentNode.children;
    for (var m = 0; m < ths.length; m++) ths[m].removeAttribute('aria-sort');
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
  }
  var heads = document.querySelectorAll('table.sortable th');
  for (var h = 0; h < heads.length; h++) {
    heads[h].addEventListener('click', function (e) { sortBy(e.currentTarget); });
  }
  document.documentElement.setAttribute('data-ready', '1');
})();
"""


def _script_hash(js: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(js.encode()).digest()).decode()


# Only our own script (by hash) may run, and nothing may be fetched: even a string that
# slipped past escaping could neither execute nor phone home.
CSP = (
    f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src '{_script_hash(JS)}'"
)


def table_section(
    title: str, note: str, headings: Sequence[str], rows: Sequence[Sequence[str]], css: str
) -> str:
    """An <h3> titled section of the report: a note, then a plain table of text cells
    (escaped here), scrolling sideways on a narrow screen."""
    head = "".join(f'<th scope="col">{esc(h)}</th>' for h in headings)
    body = "".join("<tr>" + "".join(f"<td>{esc(x)}</td>" for x in r) + "</tr>" for r in rows)
    return (
        f'<h3>{esc(title)}</h3><p class="note">{esc(note)}</p><div class="scroll">'
        f'<table class="{esc(css)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
        "</table></div>"
    )


def page(title: str, body: str) -> str:
    """A complete, self-contained HTML document."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f'<body>{body}<div id="tip" role="tooltip"></div><script>{JS}</script></body></html>'
    )


def charts_page(charts: list[str], title: str = "harness charts") -> str:
    """Only the charts, stacked on a white page (what the PNG export screenshots)."""
    figures = "".join(f'<div style="margin:0 0 12px">{c}</div>' for c in charts)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}</title><style>body{{margin:12px;background:#fff}}</style>"
        f"</head><body>{figures}</body></html>"
    )
