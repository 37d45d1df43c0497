// The report's only script: zooming the timeline to a time range (drag
// across it, or type the range). It reads the embedded data and the
// elements' data-* attributes and moves elements; it creates text only
// through textContent, never by parsing markup. The page's
// Content-Security-Policy allows this script by its hash, and nothing else.
(function () {
  'use strict';
  var svg = document.getElementById('timeline-svg');
  var source = document.getElementById('credtrail-data');
  if (!svg || !source) { return; }
  var t = JSON.parse(source.textContent).timeline;
  var NS = 'http://www.w3.org/2000/svg';
  var X0 = Number(svg.getAttribute('data-x0'));
  var W = Number(svg.getAttribute('data-w'));
  var H = Number(svg.getAttribute('data-h'));
  var AXIS_H = Number(svg.getAttribute('data-axis-h'));
  var LANE_H = Number(svg.getAttribute('data-lane-h'));
  var maxN = 1;
  t.lanes.forEach(function (lane) {
    lane.cells.forEach(function (c) { maxN = Math.max(maxN, c[1]); });
  });
  var full = (LANE_H - 6) / Math.log(maxN + 1);
  var slice = t.span_us / t.buckets;
  var from = document.getElementById('zoom-from');
  var to = document.getElementById('zoom-to');
  var shown = document.getElementById('zoom-shown');
  var ticks = document.getElementById('ticks');
  var sel = document.getElementById('zoom-sel');
  var view = [0, t.span_us];

  function x(us) { return X0 + (us - view[0]) / (view[1] - view[0]) * W; }
  function us(px) { return view[0] + (px - X0) / W * (view[1] - view[0]); }
  function iso(u) { return new Date(t.start_ms + u / 1000).toISOString(); }
  function parse(text) {
    var ms = Date.parse(text.trim());
    return isNaN(ms) ? null : (ms - t.start_ms) * 1000;
  }

  // About eight ticks, 1, 2 or 5 times a power of ten µs apart.
  function step(span) {
    var raw = span / 8;
    var p = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
    var m = [1, 2, 5, 10].find(function (k) { return k * p >= raw; });
    return m * p;
  }

  function label(u, span) {
    var text = iso(u);
    if (span > 2 * 86400e6) { return text.slice(0, 16).replace('T', ' '); }
    if (span > 60e6) { return text.slice(11, 19); }
    if (span > 1e6) { return text.slice(11, 23); }
    return text.slice(11, 23) + String(Math.floor(u) % 1000).padStart(3, '0');
  }

  function drawTicks() {
    while (ticks.firstChild) { ticks.removeChild(ticks.firstChild); }
    var span = view[1] - view[0];
    var s = step(span);
    // Ticks fall on round times of day (the epoch in µs is too large to
    // be exact here; the day is enough).
    var base = (t.start_ms % 86400000) * 1000;
    var first = Math.ceil((view[0] + base) / s) * s - base;
    for (var u = first; u <= view[1]; u += s) {
      var px = x(u);
      var line = document.createElementNS(NS, 'line');
      line.setAttribute('class', 'tick');
      line.setAttribute('x1', px); line.setAttribute('x2', px);
      line.setAttribute('y1', 18); line.setAttribute('y2', H);
      ticks.appendChild(line);
      var text = document.createElementNS(NS, 'text');
      text.setAttribute('x', px + 2); text.setAttribute('y', 12);
      text.textContent = label(u, span);
      ticks.appendChild(text);
    }
  }

  function draw() {
    // Each lane's bars as one path, as the page drew them (html.rs, bars).
    t.lanes.forEach(function (lane, i) {
      var bottom = AXIS_H + LANE_H * i + LANE_H - 3;
      var all = '', refused = '';
      lane.cells.forEach(function (c) {
        var a = x(c[0] * slice), b = x((c[0] + 1) * slice);
        if (b < X0 || a > X0 + W) { return; }
        a = Math.max(a, X0); b = Math.min(b, X0 + W);
        var w = Math.max(b - a, 0.6).toFixed(1);
        var h = Math.max(Math.log(c[1] + 1) * full, 2);
        all += 'M' + a.toFixed(1) + ' ' + (bottom - h).toFixed(1) + 'h' + w + 'v' + h.toFixed(1) + 'h-' + w + 'Z';
        if (c[2] > 0) {
          var r = Math.max(h * c[2] / c[1], 1);
          refused += 'M' + a.toFixed(1) + ' ' + (bottom - r).toFixed(1) + 'h' + w + 'v' + r.toFixed(1) + 'h-' + w + 'Z';
        }
      });
      document.getElementById('bars-' + i).setAttribute('d', all);
      document.getElementById('refused-' + i).setAttribute('d', refused);
    });
    var marks = svg.querySelectorAll('[data-t]');
    for (var j = 0; j < marks.length; j++) {
      var m = marks[j];
      var u = Number(m.getAttribute('data-t'));
      m.setAttribute('transform', 'translate(' + x(u).toFixed(2) + ' ' + m.getAttribute('data-y') + ')');
      m.setAttribute('visibility', u >= view[0] && u <= view[1] ? 'visible' : 'hidden');
    }
    drawTicks();
    from.value = iso(view[0]);
    to.value = iso(view[1]);
    shown.textContent = view[0] === 0 && view[1] === t.span_us
      ? 'whole range' : 'zoomed: ' + ((view[1] - view[0]) / 1e6).toPrecision(4) + ' s';
  }

  function zoom(a, b) {
    a = Math.max(0, Math.min(a, b)); b = Math.min(t.span_us, Math.max(a, b));
    if (b - a < 1) { b = a + 1; }
    view = [a, b];
    draw();
  }

  function svgX(event) {
    var box = svg.getBoundingClientRect();
    return (event.clientX - box.left) * svg.viewBox.baseVal.width / box.width;
  }

  var dragFrom = null;
  svg.addEventListener('mousedown', function (e) {
    var px = svgX(e);
    if (px < X0) { return; }
    dragFrom = px;
    sel.setAttribute('x', px); sel.setAttribute('width', 0);
    sel.setAttribute('visibility', 'visible');
  });
  svg.addEventListener('mousemove', function (e) {
    if (dragFrom === null) { return; }
    var px = Math.max(X0, Math.min(svgX(e), X0 + W));
    sel.setAttribute('x', Math.min(px, dragFrom));
    sel.setAttribute('width', Math.abs(px - dragFrom));
  });
  window.addEventListener('mouseup', function (e) {
    if (dragFrom === null) { return; }
    var px = Math.max(X0, Math.min(svgX(e), X0 + W));
    sel.setAttribute('visibility', 'hidden');
    if (Math.abs(px - dragFrom) > 4) { zoom(us(Math.min(px, dragFrom)), us(Math.max(px, dragFrom))); }
    dragFrom = null;
  });
  svg.addEventListener('dblclick', function () { zoom(0, t.span_us); });
  document.getElementById('zoom-apply').addEventListener('click', function () {
    var a = parse(from.value), b = parse(to.value);
    if (a !== null && b !== null) { zoom(a, b); }
  });
  document.getElementById('zoom-reset').addEventListener('click', function () { zoom(0, t.span_us); });
  // A findings row's link to a mark outside the zoomed range shows it all.
  window.addEventListener('hashchange', function () {
    var target = document.getElementById(location.hash.slice(1));
    if (target && target.getAttribute('visibility') === 'hidden') { zoom(0, t.span_us); }
  });

  draw();
  svg.setAttribute('data-script', 'ran');
}());
