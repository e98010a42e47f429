"""Layout facts of a report page as real headless Chromium lays it out at a given width:
boxes, scroll widths, visible rows and the scatter's point positions."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .chromium import load

# Runs after the page's own script (appended last; on load): measures, then writes the
# facts as JSON into a <pre id="layout"> that --dump-dom brings back.
_MEASURE = """
window.addEventListener('load', function () { setTimeout(function () {
  function box(el) { var r = el.getBoundingClientRect();
    return {left: r.left, right: r.right, top: r.top, width: r.width, height: r.height}; }
  var doc = document.documentElement, out = {viewport: doc.clientWidth,
    page_scroll_width: doc.scrollWidth, tables: [], scatters: []};
  document.querySelectorAll('table.cells').forEach(function (t) {
    var holder = t.parentElement, heads = t.tHead.rows[0].cells, cols = [];
    for (var i = 0; i < heads.length; i++) cols.push([heads[i].textContent, box(heads[i])]);
    var rows = Array.prototype.slice.call(t.querySelectorAll('tbody tr'));
    out.tables.push({
      holder: box(holder), holder_client_width: holder.clientWidth,
      holder_scroll_width: holder.scrollWidth, overflow_x: getComputedStyle(holder).overflowX,
      table_width: t.scrollWidth, columns: cols,
      groups: rows.filter(function (r) { return r.classList.contains('group'); })
                  .map(function (r) { return r.textContent; }),
      visible_rows: rows.filter(function (r) {
        return !r.classList.contains('group') && r.offsetParent !== null; }).length,
      hidden_rows: rows.filter(function (r) { return r.hidden; }).length,
      // the classes of every visible row's cells, to check each sits under its heading
      row_classes: rows.filter(function (r) {
        return !r.classList.contains('group') && r.offsetParent !== null; })
        .map(function (r) { return Array.prototype.map.call(r.cells,
          function (c) { return c.className; }); })});
  });
  document.querySelectorAll('svg.scatter').forEach(function (s) {
    out.scatters.push(Array.prototype.map.call(s.querySelectorAll('g.pt'), function (g) {
      var b = box(g); return {cell: g.getAttribute('data-cell'),
        x: b.left + b.width / 2, y: b.top + b.height / 2}; }));
  });
  var pre = document.createElement('pre'); pre.id = 'layout';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
}, 0); });
"""


def measure(page: Path, tmp: Path, width: int = 1400, height: int = 1000) -> dict:
    """The layout facts of `page` at `width` px. A copy is measured: its CSP (which lets
    only the report's own script run, checked elsewhere) is dropped so the measuring
    script may run beside it."""
    html = page.read_text()
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html, count=1)
    html = html.replace("</body>", f"<script>{_MEASURE}</script></body>", 1)
    probe = tmp / f"{page.stem}-measured.html"
    probe.write_text(html)
    dom, console = load(
        probe, tmp, "--dump-dom", "--virtual-time-budget=3000", f"--window-size={width},{height}"
    )
    found = re.search(r'<pre id="layout">(.*?)</pre>', dom, re.S)
    assert found, f"the measuring script did not run: {console}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
