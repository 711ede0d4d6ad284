// wirebench report: draws the heat maps, charts and the table of all
// cells from the JSON embedded in the page. No libraries, no requests.
(function () {
  'use strict';

  var STARTED = performance.now();
  var SVG_NS = 'http://www.w3.org/2000/svg';
  var D = JSON.parse(document.getElementById('data').textContent);
  var CELLS = D.cells || [];
  var MAX_X = 4.6; // where "max" sits on the nines axis
  var NINES_TICKS = [
    { v: Math.log10(2), label: '50%' },
    { v: 1, label: '90%' },
    { v: 2, label: '99%' },
    { v: 3, label: '99.9%' },
    { v: 4, label: '99.99%' },
    { v: MAX_X, label: 'max' }
  ];
  var DASHES = ['', '7 4', '2 3', '10 3 2 3', '4 2', '12 4', '1 2', '6 2 1 2'];

  // ------------------------------------------------------------------
  // Index.

  var byCoords = new Map();
  var byKey = new Map();
  CELLS.forEach(function (c) {
    byCoords.set(c.workload + '\u0000' + c.format + '\u0000' + c.transport + '\u0000' + c.load, c);
    byKey.set(c.key, c);
  });
  function at(w, f, t, l) { return byCoords.get(w + '\u0000' + f + '\u0000' + t + '\u0000' + l); }
  function ok(c) { return !!(c && c.status === 'ok' && c.metrics); }
  function loadsOf(w) {
    return D.loads.filter(function (l) {
      return CELLS.some(function (c) { return c.workload === w && c.load === l.label; });
    });
  }
  function transportsOf(w) {
    return D.transports.filter(function (t) {
      return CELLS.some(function (c) { return c.workload === w && c.transport === t; });
    });
  }
  // The links cells crossed, in run order; [null] on loopback.
  var LINKS = (D.links || []).map(function (l) { return l.name; });
  function linkNames() { return LINKS.length ? LINKS : [null]; }
  function linkOf(l) { return l.link || null; }
  var LINK_COLORS = ['#2f5ea8', '#e07b00', '#c62828', '#6a3d9a', '#1a7f37', '#8c6d31', '#17a2a8', '#555555'];
  function colorOf(f) { return D.colors[f] || '#777'; }
  function tColorOf(t) { return D.transport_colors[t] || '#777'; }
  function tDash(t) { var i = D.transports.indexOf(t); return DASHES[(i < 0 ? 0 : i) % DASHES.length]; }

  // ------------------------------------------------------------------
  // Numbers for people.

  function trim(x, digits) {
    var s = x.toFixed(digits);
    if (s.indexOf('.') >= 0) s = s.replace(/0+$/, '').replace(/\.$/, '');
    return s;
  }
  function sig(x) { return x >= 100 ? trim(x, 0) : x >= 10 ? trim(x, 1) : trim(x, 2); }
  function fmtNs(ns) {
    if (ns == null || !isFinite(ns)) return '–';
    if (ns < 1e3) return Math.round(ns) + 'ns';
    if (ns < 1e6) return sig(ns / 1e3) + 'µs';
    if (ns < 1e9) return sig(ns / 1e6) + 'ms';
    return sig(ns / 1e9) + 's';
  }
  function fmtRate(r) {
    if (r == null || !isFinite(r)) return '–';
    if (r < 1e4) return trim(r, r < 10 ? 1 : 0);
    if (r < 1e6) return sig(r / 1e3) + 'k';
    return sig(r / 1e6) + 'M';
  }
  function fmtBytes(b) {
    if (b == null || !isFinite(b)) return '–';
    if (b < 1e4) return Math.round(b) + ' B';
    if (b < 1048576) return sig(b / 1024) + ' KiB';
    return sig(b / 1048576) + ' MiB';
  }
  function fmtSize(b) { // payload sizes as the workloads name them
    if (b >= 1048576 && b % 1048576 === 0) return b / 1048576 + 'MiB';
    if (b >= 1024 && b % 1024 === 0) return b / 1024 + 'KiB';
    return b + 'B';
  }
  function fmtBytesTick(b) { // axis ticks: decimal units, round numbers
    if (b >= 1e6) return trim(b / 1e6, 2) + ' MB';
    if (b >= 1e3) return trim(b / 1e3, 2) + ' kB';
    return trim(b, 1) + ' B';
  }
  function fmtUs(us) {
    if (us == null || !isFinite(us)) return '–';
    if (us < 1000) return sig(us) + 'µs';
    return sig(us / 1000) + 'ms';
  }
  function fmtRatio(r) {
    if (r == null || !isFinite(r)) return '–';
    return fmtR(r) + '×';
  }
  function fmtR(r) { // two significant digits below 0.1, else two decimals
    if (r > 0 && r < 0.001) return r.toExponential(1);
    if (r > 0 && r < 0.1) return r.toPrecision(2);
    return r < 10 ? r.toFixed(2) : r < 100 ? r.toFixed(1) : r.toFixed(0);
  }
  function pct(x) { return x < 0.1 ? (100 * x).toFixed(1) + '%' : Math.round(100 * x) + '%'; }
  function fmtNum(x) { return x == null || !isFinite(x) ? '–' : fmtRate(x); }
  function cpuUs(m) {
    return m.client_user_us_per_call + m.client_system_us_per_call +
      (m.server_user_us_per_call || 0) + (m.server_system_us_per_call || 0);
  }
  function serverUs(m) {
    if (m.server_user_us_per_call == null && m.server_system_us_per_call == null) return null;
    return (m.server_user_us_per_call || 0) + (m.server_system_us_per_call || 0);
  }
  function wireBytes(m) {
    if (m.wire_sent_per_call == null && m.wire_received_per_call == null) return null;
    return (m.wire_sent_per_call || 0) + (m.wire_received_per_call || 0);
  }
  function whyNot(c) {
    if (!c) return 'not run';
    if (c.status === 'ok') return c.metrics ? '' : 'no measurements';
    return c.status + (c.error ? ': ' + c.error : '');
  }

  // ------------------------------------------------------------------
  // DOM helpers.

  function $(sel) { return document.querySelector(sel); }
  function h(tag, attrs) {
    var e = document.createElement(tag);
    setAll(e, attrs);
    for (var i = 2; i < arguments.length; i++) add(e, arguments[i]);
    return e;
  }
  function add(e, child) {
    if (child == null || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { add(e, c); }); return; }
    e.appendChild(typeof child === 'string' || typeof child === 'number' ? document.createTextNode(String(child)) : child);
  }
  function setAll(e, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v == null || v === false) return;
      if (k === 'text') e.textContent = v;
      else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    });
  }
  function s(parent, tag, attrs, text) {
    var e = document.createElementNS(SVG_NS, tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { if (attrs[k] != null) e.setAttribute(k, attrs[k]); });
    if (text != null) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function tip(e, text) { if (text) s(e, 'title', null, text); return e; }
  function select(label, options, value, onchange) {
    var sel = h('select', { onchange: function () { onchange(sel.value); } });
    options.forEach(function (o) {
      var opt = h('option', { value: o.value }, o.text);
      if (o.value === value) opt.selected = true;
      sel.appendChild(opt);
    });
    return h('label', null, label, sel);
  }
  function pick(list, preferred) {
    for (var i = 0; i < preferred.length; i++) if (list.indexOf(preferred[i]) >= 0) return preferred[i];
    return list[0];
  }
  var TIMES = {};
  function guard(targetSel, fn) {
    var t0 = performance.now();
    try { fn(); } catch (e) {
      console.error('wirebench report: ' + targetSel + ': ' + (e && e.stack || e));
      var t = $(targetSel);
      if (t) t.appendChild(h('div', { class: 'error-box' }, 'This part of the report could not be drawn: ' + e));
    }
    TIMES[targetSel] = Math.round(performance.now() - t0);
  }

  // ------------------------------------------------------------------
  // Scales and axes.

  function niceLogDomain(lo, hi) {
    var steps = [1, 2, 5, 10];
    var down = function (v) {
      var p = Math.pow(10, Math.floor(Math.log10(v)));
      for (var i = steps.length - 1; i >= 0; i--) if (steps[i] * p <= v * (1 + 1e-9)) return steps[i] * p;
      return p;
    };
    var up = function (v) {
      var p = Math.pow(10, Math.floor(Math.log10(v)));
      for (var i = 0; i < steps.length; i++) if (steps[i] * p >= v * (1 - 1e-9)) return steps[i] * p;
      return 10 * p;
    };
    var a = down(lo), b = up(hi);
    if (b <= a) { a = down(a / 2); b = up(b * 2); }
    return [a, b];
  }
  function logTicks(a, b) {
    var ticks = [];
    var decades = Math.log10(b / a);
    var mult = decades <= 1.2 ? [1, 2, 3, 5] : decades <= 2.5 ? [1, 2, 5] : [1];
    var every = decades > 7 ? 2 : 1;
    for (var e = Math.floor(Math.log10(a)); e <= Math.ceil(Math.log10(b)); e++) {
      if (mult.length === 1 && e % every !== 0) continue;
      mult.forEach(function (m) {
        var v = m * Math.pow(10, e);
        if (v >= a * (1 - 1e-9) && v <= b * (1 + 1e-9)) ticks.push(v);
      });
    }
    return ticks;
  }
  function niceStep(span, count) {
    var raw = span / count, p = Math.pow(10, Math.floor(Math.log10(raw)));
    var m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * p;
  }
  function linTicks(a, b) {
    var step = niceStep(b - a || 1, 5), ticks = [];
    for (var v = Math.ceil(a / step) * step; v <= b + step * 1e-9; v += step) ticks.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    return ticks;
  }
  // An axis: {type, domain, ticks, map(v) -> px}.
  function makeAxis(type, values, r0, r1, opts) {
    opts = opts || {};
    var vals = values.filter(function (v) { return v != null && isFinite(v) && (type !== 'log' || v > 0); });
    if (type === 'auto') {
      var mn = Math.min.apply(null, vals), mx = Math.max.apply(null, vals);
      type = vals.length && mn > 0 && mx / mn >= 20 ? 'log' : 'linear';
      if (type === 'log') vals = vals.filter(function (v) { return v > 0; });
    }
    var lo, hi, ticks;
    if (!vals.length) vals = type === 'log' ? [1, 10] : [0, 1];
    lo = Math.min.apply(null, vals); hi = Math.max.apply(null, vals);
    if (opts.domain) { lo = opts.domain[0]; hi = opts.domain[1]; }
    if (type === 'log') {
      if (!opts.domain) { var d = niceLogDomain(opts.pad ? lo / 1.8 : lo, hi); lo = d[0]; hi = d[1]; }
      ticks = opts.ticks || logTicks(lo, hi);
      if (!opts.ticks && ticks.length && ticks[ticks.length - 1] < hi / 1.5) ticks.push(hi); // label the top
      var l0 = Math.log10(lo), l1 = Math.log10(hi);
      return { type: type, lo: lo, hi: hi, ticks: ticks, map: function (v) { return r0 + (Math.log10(v) - l0) / (l1 - l0) * (r1 - r0); } };
    }
    if (!opts.domain) {
      if (opts.zero !== false) lo = Math.min(0, lo);
      if (hi === lo) hi = lo + (Math.abs(lo) || 1);
      var step = niceStep(hi - lo, 5);
      hi = Math.ceil(hi / step - 1e-9) * step;
      lo = Math.floor(lo / step + 1e-9) * step;
    }
    ticks = opts.ticks || linTicks(lo, hi);
    return { type: type, lo: lo, hi: hi, ticks: ticks, map: function (v) { return r0 + (v - lo) / (hi - lo) * (r1 - r0); } };
  }

  // A frame: title, plot area, grid, axes and labels. Returns {svg, plot}.
  function frame(o, xa, ya, box) {
    var svg = s(null, 'svg', { viewBox: '0 0 ' + box.w + ' ' + box.h, width: box.w, height: box.h, role: 'img', 'aria-label': o.title });
    s(svg, 'rect', { x: 0, y: 0, width: box.w, height: box.h, fill: '#fff' });
    s(svg, 'text', { x: box.l, y: 17, class: 'title' }, o.title);
    var g = s(svg, 'g');
    ya.ticks.forEach(function (t) {
      var y = ya.map(t);
      s(g, 'line', { x1: box.l, x2: box.w - box.r, y1: y, y2: y, class: 'grid' });
      s(g, 'text', { x: box.l - 6, y: y + 4, 'text-anchor': 'end', class: 'tick' }, (o.yFmt || String)(t));
    });
    if (xa) {
      (xa.tickList || xa.ticks.map(function (t) { return { v: t, label: (o.xFmt || String)(t) }; })).forEach(function (t) {
        var x = xa.map(t.v);
        s(g, 'line', { x1: x, x2: x, y1: box.t, y2: box.h - box.b, class: 'grid' });
        s(g, 'text', { x: x, y: box.h - box.b + 15, 'text-anchor': 'middle', class: 'tick' }, t.label);
      });
    }
    s(g, 'line', { x1: box.l, x2: box.l, y1: box.t, y2: box.h - box.b, class: 'axis' });
    s(g, 'line', { x1: box.l, x2: box.w - box.r, y1: box.h - box.b, y2: box.h - box.b, class: 'axis' });
    var midY = (box.t + box.h - box.b) / 2;
    s(svg, 'text', { x: 14, y: midY, transform: 'rotate(-90 14 ' + midY + ')', 'text-anchor': 'middle', class: 'axis-label' }, o.yLabel);
    if (o.xLabel) s(svg, 'text', { x: (box.l + box.w - box.r) / 2, y: box.h - 8, 'text-anchor': 'middle', class: 'axis-label' }, o.xLabel);
    return svg;
  }

  function legend(svg, items, x, y, maxY) {
    var g = s(svg, 'g', { class: 'legend-box' });
    var step = items.length * 17 > maxY - y ? Math.max(12, (maxY - y) / items.length) : 17;
    items.forEach(function (it, i) {
      var yy = y + i * step;
      var row = s(g, 'g');
      if (it.bar) s(row, 'rect', { x: x, y: yy - 8, width: 14, height: 10, fill: it.color, 'fill-opacity': it.opacity || 1 });
      else {
        s(row, 'line', { x1: x, x2: x + 22, y1: yy - 3, y2: yy - 3, stroke: it.color, 'stroke-width': 2.5, 'stroke-dasharray': it.dash || null });
      }
      s(row, 'text', { x: x + 28, y: yy + 1, class: 'legend', 'font-size': step < 16 ? 11 : null }, it.name);
      tip(row, it.tip || it.name);
    });
  }

  function chartBox(svg, note) {
    var div = h('div', { class: 'chart' });
    div.appendChild(svg);
    if (note) div.appendChild(h('p', { class: 'note' }, note));
    return div;
  }

  function emptyText(svg, box, text) {
    s(svg, 'text', { x: (box.l + box.w - box.r) / 2, y: (box.t + box.h - box.b) / 2, 'text-anchor': 'middle', class: 'empty' }, text);
  }

  // Lines: o = {title, xLabel, yLabel, x: {type, ticks?, domain?, fmt?}, y: {type, fmt}, series: [{name, color, dash, points: [[x, y, tip]]}], note, width, height}
  function lineChart(o) {
    var series = o.series.filter(function (sr) { return sr.points.length; });
    var legendW = Math.min(220, 40 + 7 * Math.max.apply(null, [8].concat(series.map(function (sr) { return sr.name.length; }))));
    var box = { w: o.width || 640, h: o.height || 340, l: 66, r: legendW + 10, t: 28, b: 46 };
    var xs = [], ys = [];
    series.forEach(function (sr) { sr.points.forEach(function (p) { xs.push(p[0]); ys.push(p[1]); }); });
    var xa = makeAxis(o.x.type, xs, box.l + 8, box.w - box.r - 10, { domain: o.x.domain, ticks: o.x.ticks && o.x.ticks.map(function (t) { return t.v; }) });
    if (o.x.ticks) xa.tickList = o.x.ticks;
    var ya = makeAxis(o.y.type, ys, box.h - box.b, box.t + 4, { zero: o.y.zero });
    var svg = frame({ title: o.title, yLabel: o.yLabel, xLabel: o.xLabel, yFmt: o.y.fmt, xFmt: o.x.fmt }, xa, ya, box);
    if (!series.length) { emptyText(svg, box, o.empty || 'No measured cells for this selection'); return chartBox(svg, o.note); }
    var g = s(svg, 'g');
    series.forEach(function (sr) {
      var pts = sr.points.filter(function (p) { return ya.type !== 'log' || p[1] > 0; });
      var d = pts.map(function (p, i) { return (i ? 'L' : 'M') + xa.map(p[0]).toFixed(1) + ' ' + ya.map(p[1]).toFixed(1); }).join('');
      var line = s(g, 'path', { d: d, fill: 'none', stroke: sr.color, 'stroke-width': sr.width || 2.2, 'stroke-dasharray': sr.dash || null, 'stroke-linejoin': 'round', opacity: sr.opacity || null });
      tip(line, sr.name);
      pts.forEach(function (p) {
        if (!sr.markers && !p[3]) return;
        tip(s(g, 'circle', { cx: xa.map(p[0]).toFixed(1), cy: ya.map(p[1]).toFixed(1), r: p[3] ? 3.5 : 3, fill: sr.color, class: 'point' }), p[2]);
      });
    });
    legend(svg, series.map(function (sr) { return { name: sr.name, color: sr.color, dash: sr.dash, tip: sr.tip }; }),
      box.w - box.r + 14, box.t + 10, box.h - box.b);
    return chartBox(svg, o.note);
  }

  // Grouped bars: o = {title, yLabel, groups: [label], series: [{name, color}], get(gi, si) -> {v, v2, tip} | {missing: text}, y: {type, fmt}, ref, note}
  function barChart(o) {
    var legendW = Math.min(200, 40 + 7 * Math.max.apply(null, [8].concat(o.series.map(function (sr) { return sr.name.length; }))));
    var box = { w: o.width || 640, h: o.height || 320, l: 66, r: legendW + 10, t: 28, b: 46 };
    var vals = [], cells = [];
    o.groups.forEach(function (g, gi) {
      o.series.forEach(function (sr, si) {
        var c = o.get(gi, si);
        cells.push({ gi: gi, si: si, c: c });
        if (c && c.v != null) vals.push(c.v);
        if (c && c.v2 != null) vals.push(c.v2);
      });
    });
    if (o.ref != null) vals.push(o.ref);
    var ya = makeAxis(o.y.type, vals, box.h - box.b, box.t + 4, { pad: true });
    var svg = frame({ title: o.title, yLabel: o.yLabel, yFmt: o.y.fmt }, null, ya, box);
    var plotW = box.w - box.l - box.r, gw = plotW / Math.max(1, o.groups.length);
    var bw = Math.min(26, gw * 0.82 / Math.max(1, o.series.length));
    var base = box.h - box.b;
    var g = s(svg, 'g');
    o.groups.forEach(function (label, gi) {
      var cx = box.l + gw * (gi + 0.5);
      s(svg, 'text', { x: cx, y: base + 15, 'text-anchor': 'middle', class: 'tick' }, label);
    });
    if (o.xLabel) s(svg, 'text', { x: (box.l + box.w - box.r) / 2, y: box.h - 8, 'text-anchor': 'middle', class: 'axis-label' }, o.xLabel);
    var any = false;
    cells.forEach(function (it) {
      var x = box.l + gw * (it.gi + 0.5) + (it.si - o.series.length / 2) * bw;
      var c = it.c, color = o.series[it.si].color;
      if (!c) return;
      if (c.missing) {
        tip(s(g, 'text', { x: x + bw / 2, y: base - 4, 'text-anchor': 'middle', class: 'tick', fill: c.failed ? '#c62828' : '#8a93a3' }, c.failed ? '✗' : '–'), c.missing);
        return;
      }
      if (c.v == null) return;
      any = true;
      var y = ya.map(Math.max(c.v, ya.lo));
      tip(s(g, 'rect', { x: x + 0.5, y: Math.min(y, base), width: Math.max(1, bw - 1), height: Math.max(1, Math.abs(base - y)), fill: color, class: 'bar' }), c.tip);
      if (c.v2 != null) {
        var y2 = ya.map(Math.max(c.v2, ya.lo));
        tip(s(g, 'rect', { x: x + bw * 0.3, y: Math.min(y2, base), width: Math.max(1, bw * 0.4), height: Math.max(1, Math.abs(base - y2)), fill: '#1d2330', 'fill-opacity': 0.72, class: 'bar' }), c.tip);
      }
    });
    if (o.ref != null) {
      var yr = ya.map(o.ref);
      s(g, 'line', { x1: box.l, x2: box.w - box.r, y1: yr, y2: yr, stroke: '#1d2330', 'stroke-dasharray': '5 3', 'stroke-width': 1.2 });
    }
    if (!any) emptyText(svg, box, o.empty || 'No measured cells for this selection');
    var items = o.series.map(function (sr) { return { name: sr.name, color: sr.color, bar: true }; });
    if (o.ref != null && o.refLabel) items.push({ name: o.refLabel, color: '#1d2330', dash: '5 3' });
    if (o.extraLegend) items = items.concat(o.extraLegend);
    legend(svg, items, box.w - box.r + 14, box.t + 10, box.h - box.b);
    return chartBox(svg, o.note);
  }

  // ------------------------------------------------------------------
  // Winners: computed by the report's Rust side (replicates::fastest),
  // never here, so the page, summary.md and the terminal agree.

  var WINNERS = new Map();
  (D.winners || []).forEach(function (x) { WINNERS.set(x.workload + '\u0000' + x.load + '\u0000' + x.metric, x); });
  function winnerOf(w, l, metricId) { return WINNERS.get(w + '\u0000' + l + '\u0000' + metricId) || null; }

  // ------------------------------------------------------------------
  // 2. Summary heat maps.

  var METRICS = [
    { id: 'p50', label: 'p50 latency', better: 'low', get: function (m) { return m.latency.p50; }, fmt: fmtNs, rep: 'p50' },
    { id: 'p99', label: 'p99 latency', better: 'low', get: function (m) { return m.latency.p99; }, fmt: fmtNs, rep: 'p99' },
    { id: 'rate', label: 'calls/s', better: 'high', get: function (m) { return m.calls_per_sec; }, fmt: fmtRate, rep: 'rate' },
    { id: 'wire', label: 'bytes on the wire per call', better: 'low', get: wireBytes, fmt: fmtBytes, note: 'sent + received, framing included' },
    { id: 'cpu', label: 'CPU per call', better: 'low', get: cpuUs, fmt: fmtUs, note: 'client + server user and system time; "srv" = the server\u2019s part where it is known' }
  ];

  function heatColor(t) {
    // t = 0 (best) .. 1 (worst): green, yellow, red, light enough for text.
    var hue = 130 - 130 * Math.max(0, Math.min(1, t));
    return 'hsl(' + hue.toFixed(0) + ', 62%, ' + (t < 0.5 ? 84 : 86) + '%)';
  }

  function referenceOptions() {
    var pairs = [], seen = new Set();
    CELLS.forEach(function (c) {
      if (!ok(c)) return;
      var p = c.format + '/' + c.transport;
      if (!seen.has(p)) { seen.add(p); pairs.push({ f: c.format, t: c.transport }); }
    });
    var fo = D.formats.concat(['raw']);
    pairs.sort(function (a, b) {
      return (fo.indexOf(a.f) - fo.indexOf(b.f)) || (D.transports.indexOf(a.t) - D.transports.indexOf(b.t));
    });
    return pairs.map(function (p) {
      var v = p.f + '/' + p.t;
      var text = v === D.reference ? v + ' (stock gRPC reference)' : p.f === 'raw' ? v + ' (raw floor)' : v;
      return { value: v, text: text };
    });
  }

  function renderSummary() {
    var target = $('#heatmaps'), ctrl = $('#summary-controls');
    if (!CELLS.length) return;
    var refs = referenceOptions();
    var state = { metric: 'p50', ref: refs.some(function (r) { return r.value === D.reference; }) ? D.reference : (refs[0] || { value: '' }).value };
    var tabs = h('span', { class: 'tabs', role: 'tablist' });
    METRICS.forEach(function (m) {
      tabs.appendChild(h('button', { type: 'button', 'data-metric': m.id, class: m.id === state.metric ? 'on' : null, onclick: function () {
        state.metric = m.id;
        Array.prototype.forEach.call(tabs.children, function (b) { b.className = b.getAttribute('data-metric') === m.id ? 'on' : ''; });
        draw();
      } }, m.label));
    });
    ctrl.appendChild(h('label', null, 'Metric ', tabs));
    ctrl.appendChild(select('Ratio to ', refs, state.ref, function (v) { state.ref = v; draw(); }));
    function draw() {
      target.textContent = '';
      var metric = METRICS.filter(function (m) { return m.id === state.metric; })[0];
      var rp = state.ref.split('/');
      var refF = rp[0], refT = rp.slice(1).join('/');
      D.workloads.forEach(function (w) {
        // One row of heat maps per link: the link is an axis of the summary.
        linkNames().forEach(function (ln) {
          var loads = loadsOf(w.id).filter(function (l) { return linkOf(l) === ln; });
          if (!loads.length) return;
          var block = h('div', { class: 'hm-workload' }, h('h3', null, w.id + (ln ? ' over ' + ln : '')));
          var row = h('div', { class: 'hm-row' });
          loads.forEach(function (l) { row.appendChild(heatmap(w.id, l, metric, refF, refT)); });
          block.appendChild(row);
          target.appendChild(block);
        });
      });
    }
    draw();
  }

  function heatmap(w, l, metric, refF, refT) {
    var ts = transportsOf(w);
    var ref = at(w, refF, refT, l.label);
    var refV = ok(ref) ? metric.get(ref.metrics) : null;
    var values = [];
    D.formats.forEach(function (f) {
      ts.forEach(function (t) {
        var c = at(w, f, t, l.label);
        if (ok(c)) { var v = metric.get(c.metrics); if (v != null && isFinite(v) && v > 0) values.push({ c: c, v: v }); }
      });
    });
    var low = metric.better === 'low';
    var net = values.filter(function (x) { return x.c.transport !== 'inproc'; });
    var best = metric.rep ? winnerOf(w, l.label, metric.id) : null;
    var vs = (net.length ? net : values).map(function (x) { return x.v; });
    var vmin = Math.min.apply(null, vs), vmax = Math.max.apply(null, vs);
    var good = low ? vmin : vmax, bad = low ? vmax : vmin;
    var span = Math.log(bad / good);
    var caption = h('caption', null, l.label + ' · ' + metric.label + ' ',
      h('span', { class: 'muted' }, (low ? '(lower is better)' : '(higher is better)') +
        (refV != null ? ' · ratio to ' + refF + '/' + refT : ' · reference ' + refF + '/' + refT + ' ' + whyNot(ref))));
    var table = h('table', { class: 'hm' }, caption);
    var head = h('tr', null, h('th'));
    ts.forEach(function (t) { head.appendChild(h('th', { scope: 'col' }, t)); });
    table.appendChild(h('thead', null, head));
    var body = h('tbody');
    D.formats.forEach(function (f) {
      if (!CELLS.some(function (c) { return c.workload === w && c.format === f; })) return;
      var tr = h('tr', null, h('th', { scope: 'row' }, h('span', { class: 'swatch', style: 'background:' + colorOf(f) }), f));
      ts.forEach(function (t) { tr.appendChild(heatCell(w, f, t, l, metric, ref, refV, best, good, span)); });
      body.appendChild(tr);
    });
    table.appendChild(body);
    return table;
  }

  function heatCell(w, f, t, l, metric, ref, refV, best, good, span) {
    var c = at(w, f, t, l.label);
    var key = w + '/' + f + '/' + t + '/' + l.label;
    if (!c && D.missing.indexOf(key) < 0) return h('td', { class: 'outside', title: key + '\nnot part of this matrix' }, '·');
    if (!c) return h('td', { class: 'missing', title: key + '\nnot run' + (D.interrupted ? ': the run was interrupted before this cell' : ': not in the results file') }, '∅ not run');
    if (c.status === 'unsupported') return h('td', { class: 'unsupported', title: key + '\nunsupported: ' + (c.error || 'no reason given') }, '– n/a');
    if (c.status === 'failed') return h('td', { class: 'failed', title: key + '\nFAILED: ' + (c.error || 'no reason given') }, '✗ failed');
    if (!c.metrics) return h('td', { class: 'nodata', title: key + '\nno measurements recorded' }, 'no data');
    var m = c.metrics, v = metric.get(m);
    if (v == null) {
      var why = metric.id === 'wire' ? 'no bytes on a wire (' + t + ')' : 'not measured';
      return h('td', { class: 'nodata', title: key + '\n' + why }, metric.id === 'wire' ? 'no wire' : 'n/a');
    }
    var named = best && best.cells.indexOf(c.key) >= 0;
    var isBest = named && !best.tied, isTied = named && best.tied, isRef = ref && ref === c;
    var td = h('td', { class: (isBest ? 'best' : isTied ? 'tied' : '') + (isRef ? ' ref' : '') });
    if (t === 'inproc') td.className += ' inproc';
    else if (v > 0 && span > 0) td.style.background = heatColor(Math.abs(Math.log(v / good)) / span);
    else td.style.background = heatColor(0);
    td.appendChild(h('div', { class: 'v' }, (isBest ? '★ ' : isTied ? '☆ ' : '') + metric.fmt(v)));
    var lines = [key, metric.label + ': ' + metric.fmt(v)];
    var reps = metric.rep && c.reps ? c.reps[metric.rep] : null;
    if (reps) {
      lines.push('across ' + reps.v.length + ' replicates: ' + reps.v.map(metric.fmt).join(', ') +
        ' (95% interval of their geometric mean ' + metric.fmt(reps.lo) + '–' + metric.fmt(reps.hi) + ')');
    } else if (metric.rep) {
      lines.push(c.nrep === 1 ? 'one replicate: no spread across passes is known (run with --passes 4 or more)' : 'no replicate with calls');
    }
    if (metric.id === 'cpu') {
      var srv = serverUs(m);
      td.appendChild(h('div', { class: 'r' }, srv != null ? 'srv ' + fmtUs(srv) : 'client only'));
      lines.push('client ' + fmtUs(m.client_user_us_per_call + m.client_system_us_per_call) + ' (user ' + fmtUs(m.client_user_us_per_call) + ', system ' + fmtUs(m.client_system_us_per_call) + ')');
      lines.push('server ' + (srv != null ? fmtUs(srv) : 'unknown') + ' · ' + m.server_cpu);
      if (m.broker_cpu) {
        var brk = m.broker_user_us_per_call != null ? m.broker_user_us_per_call + m.broker_system_us_per_call : null;
        lines.push('broker ' + (brk != null ? fmtUs(brk) + ' (user ' + fmtUs(m.broker_user_us_per_call) + ', system ' + fmtUs(m.broker_system_us_per_call) + ')' : 'unknown') + ' · ' + m.broker_cpu);
      }
    }
    if (metric.id === 'wire') {
      lines.push('sent ' + fmtBytes(m.wire_sent_per_call) + ', received ' + fmtBytes(m.wire_received_per_call) + ' per call (average over the window)');
      lines.push('messages: request ' + m.request_bytes + ' B + reply ' + m.reply_bytes + ' B');
      if (m.wire_probe_bytes != null) lines.push('one call alone: ' + m.wire_probe_bytes + ' B on the wire' + (m.wire_exact ? ' (exact)' : ' (varies with protocol chatter)'));
    }
    if (isRef) {
      td.appendChild(h('div', { class: 'r' }, 'reference'));
    } else if (refV != null && refV > 0) {
      var r = v / refV;
      // The interval is symmetric on the log scale around the replicates'
      // geometric mean: its half-width is sqrt(hi / lo).
      var spread = reps && t !== 'inproc' && reps.lo > 0 ? Math.sqrt(reps.hi / reps.lo) - 1 : null;
      var ratioLine = h('div', { class: 'r' }, fmtRatio(r));
      if (spread != null && isFinite(spread) && spread >= 0) ratioLine.appendChild(h('span', { class: 'ci' }, ' ±' + pct(spread)));
      if (metric.id !== 'cpu') td.appendChild(ratioLine);
      else td.lastChild.textContent += ' · ' + fmtRatio(r);
      lines.push('vs ' + ref.format + '/' + ref.transport + ': ' + fmtRatio(r));
    }
    if (isBest) lines.push('★ fastest networked cell at this workload and load: its interval is apart from every other cell\u2019s (' + best.how + ')');
    if (isTied) lines.push('☆ tied for fastest within noise with ' + (best.cells.length - 1) + ' other cell' + (best.cells.length === 2 ? '' : 's') + ' (' + best.how + ')');
    if (t === 'inproc') lines.push('in-process: no network; not coloured or ranked with the networked cells');
    if (m.latency_kind === 'corrected') lines.push('open loop: latency corrected for coordinated omission');
    td.title = lines.join('\n');
    return td;
  }

  // ------------------------------------------------------------------
  // 3. Latency spectra.

  function nines(q) { return -Math.log10(1 - q); }
  function spectrumPoints(c, which) {
    var sp = which === 'u' ? c.spectrum_uncorrected : c.spectrum;
    var lat = which === 'u' ? c.metrics.latency_uncorrected : c.metrics.latency;
    if (!sp || !lat) return [];
    var label = c.key + (which === 'u' ? ' (uncorrected)' : c.metrics.latency_kind === 'corrected' ? ' (corrected)' : '');
    var pts = sp.map(function (v, i) {
      var q = D.quantiles[i];
      return [nines(q), v, label + '\np' + trim(q * 100, 4) + ': ' + fmtNs(v)];
    });
    pts.push([MAX_X, lat.max, label + '\nmax: ' + fmtNs(lat.max), true]);
    return pts;
  }
  function spectrumSeries(c, name, color, dash) {
    var out = [];
    var corrected = c.metrics.latency_kind === 'corrected';
    out.push({ name: corrected ? name + ' (corrected)' : name, color: color, dash: dash, points: spectrumPoints(c, 'c') });
    if (c.spectrum_uncorrected) out.push({ name: name + ' (uncorrected)', color: color, dash: '6 4', width: 1.6, points: spectrumPoints(c, 'u') });
    return out;
  }

  function renderLatency() {
    var target = $('#spectra'), ctrl = $('#latency-controls');
    if (!CELLS.length) return;
    var state = {
      load: D.loads.length ? D.loads[0].label : '',
      transport: pick(D.transports, ['tcp', 'unix', 'http2']),
      format: pick(D.formats, ['protobuf', 'json'])
    };
    ctrl.appendChild(select('Load ', D.loads.map(function (l) { return { value: l.label, text: loadText(l) }; }), state.load, function (v) { state.load = v; draw(); }));
    ctrl.appendChild(select('Formats on transport ', D.transports.map(function (t) { return { value: t, text: t }; }), state.transport, function (v) { state.transport = v; draw(); }));
    ctrl.appendChild(select('Transports for format ', D.formats.map(function (f) { return { value: f, text: f }; }), state.format, function (v) { state.format = v; draw(); }));
    function draw() {
      target.textContent = '';
      D.workloads.forEach(function (w) {
        var grid = h('div', { class: 'charts' });
        // Formats on one transport, with the transport's raw floor.
        var series = [], gaps = [], baseline = null;
        D.formats.forEach(function (f) {
          var c = at(w.id, f, state.transport, state.load);
          if (ok(c) && c.spectrum) {
            series = series.concat(spectrumSeries(c, f, colorOf(f), ''));
            if (!baseline && c.baseline) baseline = byKey.get(c.baseline);
          } else if (c || CELLS.some(function (x) { return x.workload === w.id && x.format === f; })) gaps.push(f + ' (' + whyNot(c) + ')');
        });
        if (ok(baseline) && baseline.spectrum) series = series.concat(spectrumSeries(baseline, 'raw ' + baseline.transport, colorOf('raw'), '2 3'));
        grid.appendChild(lineChart({
          title: w.id + ': formats over ' + state.transport + ' at ' + state.load,
          xLabel: 'percentile (log scale of nines)', yLabel: 'latency (log scale)',
          x: { type: 'linear', domain: [Math.log10(2) - 0.05, MAX_X + 0.1], ticks: NINES_TICKS },
          y: { type: 'log', fmt: fmtNs }, series: series,
          note: gaps.length ? 'Not shown: ' + gaps.join('; ') : null
        }));
        // One format on every transport.
        var tseries = [], tgaps = [];
        transportsOf(w.id).forEach(function (t) {
          var c = at(w.id, state.format, t, state.load);
          if (ok(c) && c.spectrum) tseries = tseries.concat(spectrumSeries(c, t, tColorOf(t), tDash(t)));
          else tgaps.push(t + ' (' + whyNot(c) + ')');
        });
        grid.appendChild(lineChart({
          title: w.id + ': ' + state.format + ' over each transport at ' + state.load,
          xLabel: 'percentile (log scale of nines)', yLabel: 'latency (log scale)',
          x: { type: 'linear', domain: [Math.log10(2) - 0.05, MAX_X + 0.1], ticks: NINES_TICKS },
          y: { type: 'log', fmt: fmtNs }, series: tseries,
          note: (tgaps.length ? 'Not shown: ' + tgaps.join('; ') + '. ' : '') + 'Lines are transports here (their own colours and dashes).'
        }));
        target.appendChild(grid);
      });
    }
    draw();
  }

  function loadText(l) {
    var t = l.label + ': ';
    if (l.model === 'closed') t += l.in_flight + ' in flight';
    else t += (l.model === 'open-poisson' ? 'Poisson ' : 'constant ') + (l.rate || '?') + ' calls/s, ≤' + l.in_flight + ' in flight';
    if (l.connections > 1) t += ' over ' + l.connections + ' connections';
    if (l.link) t += ', link ' + l.link;
    return t;
  }

  // ------------------------------------------------------------------
  // 4. Payload sizes.

  function firstMetrics(w, f) {
    for (var i = 0; i < CELLS.length; i++) {
      var c = CELLS[i];
      if (c.workload === w && c.format === f && c.metrics) return c.metrics;
    }
    return null;
  }
  function renderPayload() {
    var target = $('#payload-charts');
    if (!CELLS.length) return;
    var grid = h('div', { class: 'charts one' });
    [['request', 'request_bytes', 'request_zstd_bytes'], ['reply', 'reply_bytes', 'reply_zstd_bytes']].forEach(function (dir) {
      grid.appendChild(barChart({
        title: dir[0].charAt(0).toUpperCase() + dir[0].slice(1) + ' size per format and workload',
        yLabel: 'bytes per message', width: 1320, height: 330,
        groups: D.workloads.map(function (w) { return w.id; }),
        series: D.formats.map(function (f) { return { name: f, color: colorOf(f) }; }),
        y: { type: 'auto', fmt: fmtBytesTick },
        extraLegend: [{ name: 'zstd (narrow)', color: '#1d2330', opacity: 0.72, bar: true }],
        get: function (gi, si) {
          var w = D.workloads[gi].id, f = D.formats[si];
          var m = firstMetrics(w, f);
          if (!m) return { missing: f + ' ' + w + ': no cell measured the size' };
          var v = m[dir[1]], z = m[dir[2]];
          return { v: v, v2: z, tip: f + ' · ' + w + ' ' + dir[0] + '\nencoded ' + v + ' B' + (z != null ? '\nzstd ' + z + ' B (' + Math.round(100 * z / Math.max(1, v)) + '%)' : '') };
        }
      }));
    });
    target.appendChild(grid);
  }

  // ------------------------------------------------------------------
  // 5. Scaling.

  function renderScaling() {
    var target = $('#scaling-charts'), ctrl = $('#scaling-controls');
    if (!CELLS.length) return;
    var kinds = [];
    D.workloads.forEach(function (w) { if (w.size != null && kinds.indexOf(w.kind) < 0) kinds.push(w.kind); });
    var state = {
      link: linkNames()[0],
      transport: pick(D.transports, ['tcp', 'unix', 'http2']),
      workload: D.workloads.length ? D.workloads[0].id : '',
      kind: pick(kinds, ['echo']),
      load: D.loads.length ? D.loads[0].label : ''
    };
    if (LINKS.length > 1) ctrl.appendChild(select('Link ', LINKS.map(function (n) { return { value: n, text: n }; }), state.link, function (v) { state.link = v; draw(); }));
    ctrl.appendChild(select('Transport ', D.transports.map(function (t) { return { value: t, text: t }; }), state.transport, function (v) { state.transport = v; draw(); }));
    ctrl.appendChild(select('Concurrency: workload ', D.workloads.map(function (w) { return { value: w.id, text: w.id }; }), state.workload, function (v) { state.workload = v; draw(); }));
    if (kinds.length) ctrl.appendChild(select('Payload size: workload kind ', kinds.map(function (k) { return { value: k, text: k === 'echo' ? 'echo (payload bytes)' : k === 'digest' ? 'digest (records)' : k }; }), state.kind, function (v) { state.kind = v; draw(); }));
    ctrl.appendChild(select('at load ', D.loads.map(function (l) { return { value: l.label, text: loadText(l) }; }), state.load, function (v) { state.load = v; draw(); }));
    function draw() {
      target.textContent = '';
      var grid = h('div', { class: 'charts' });
      // Points on one link only: the same load on two links is two points.
      var closed = D.loads.filter(function (l) { return l.model === 'closed' && linkOf(l) === state.link; });
      var conns = [];
      closed.forEach(function (l) { if (conns.indexOf(l.connections) < 0) conns.push(l.connections); });
      function concurrencySeries(get) {
        var out = [];
        D.formats.forEach(function (f) {
          conns.forEach(function (n) {
            var pts = [];
            closed.filter(function (l) { return l.connections === n; }).forEach(function (l) {
              var c = at(state.workload, f, state.transport, l.label);
              if (ok(c)) pts.push([l.in_flight, get(c.metrics), c.key + '\n' + l.in_flight + ' in flight: ' + (get === rate ? fmtRate(get(c.metrics)) + ' calls/s' : 'p99 ' + fmtNs(get(c.metrics)))]);
            });
            pts.sort(function (a, b) { return a[0] - b[0]; });
            out.push({ name: f + (conns.length > 1 ? ' ×' + n + ' conn' : ''), color: colorOf(f), dash: DASHES[conns.indexOf(n) % DASHES.length], markers: true, points: pts });
          });
        });
        return out;
      }
      var rate = function (m) { return m.calls_per_sec; };
      var p99 = function (m) { return m.latency.p99; };
      var inFlight = closed.map(function (l) { return l.in_flight; });
      var cx = { type: 'log', fmt: fmtRate, ticks: uniq(inFlight).map(function (v) { return { v: v, label: String(v) }; }) };
      if (uniq(inFlight).length < 2) cx.domain = [Math.max(0.5, (inFlight[0] || 1) / 2), (inFlight[0] || 1) * 2];
      grid.appendChild(lineChart({ title: state.workload + ' over ' + state.transport + ': throughput vs calls in flight', xLabel: 'calls in flight (log scale)', yLabel: 'calls/s', x: cx, y: { type: 'auto', fmt: fmtRate }, series: concurrencySeries(rate) }));
      grid.appendChild(lineChart({ title: state.workload + ' over ' + state.transport + ': p99 vs calls in flight', xLabel: 'calls in flight (log scale)', yLabel: 'p99 latency', x: cx, y: { type: 'log', fmt: fmtNs }, series: concurrencySeries(p99) }));
      var sized = D.workloads.filter(function (w) { return w.kind === state.kind && w.size != null; });
      var sizes = sized.map(function (w) { return w.size; });
      var sfmt = state.kind === 'echo' ? fmtSize : function (v) { return v + (v === 1 ? ' record' : ' records'); };
      function sizeSeries(get, what) {
        return D.formats.map(function (f) {
          var pts = [];
          sized.forEach(function (w) {
            var c = at(w.id, f, state.transport, state.load);
            if (ok(c)) pts.push([w.size, get(c.metrics), c.key + '\n' + what(get(c.metrics))]);
          });
          return { name: f, color: colorOf(f), markers: true, points: pts };
        });
      }
      var sx = { type: 'log', ticks: sizes.map(function (v) { return { v: v, label: sfmt(v) }; }) };
      if (uniq(sizes).length < 2) sx.domain = [Math.max(0.5, (sizes[0] || 1) / 2), (sizes[0] || 1) * 2];
      var note = sizes.length < 2 ? 'This run has ' + (sizes.length ? 'one ' + state.kind + ' size' : 'no sized workload') + ': the full matrix (without --quick) measures several.' : null;
      var label = state.kind === 'echo' ? 'payload bytes (log scale)' : 'records per request (log scale)';
      grid.appendChild(lineChart({ title: state.kind + ' over ' + state.transport + ' at ' + state.load + ': throughput vs size', xLabel: label, yLabel: 'calls/s', x: sx, y: { type: 'auto', fmt: fmtRate }, series: sizeSeries(rate, function (v) { return fmtRate(v) + ' calls/s'; }), note: note }));
      grid.appendChild(lineChart({ title: state.kind + ' over ' + state.transport + ' at ' + state.load + ': p99 vs size', xLabel: label, yLabel: 'p99 latency', x: sx, y: { type: 'log', fmt: fmtNs }, series: sizeSeries(p99, function (v) { return 'p99 ' + fmtNs(v); }), note: note }));
      target.appendChild(grid);
    }
    draw();
  }
  function uniq(a) { return a.filter(function (v, i) { return a.indexOf(v) === i; }); }

  // ------------------------------------------------------------------
  // 6. Overhead over the raw floor.

  function renderOverhead() {
    var target = $('#overhead-charts'), ctrl = $('#overhead-controls');
    if (!CELLS.length) return;
    var state = { load: D.loads.length ? D.loads[0].label : '' };
    ctrl.appendChild(select('Load ', D.loads.map(function (l) { return { value: l.label, text: loadText(l) }; }), state.load, function (v) { state.load = v; draw(); }));
    function draw() {
      target.textContent = '';
      var grid = h('div', { class: 'charts' });
      D.workloads.forEach(function (w) {
        var ts = transportsOf(w.id);
        grid.appendChild(barChart({
          title: w.id + ' at ' + state.load + ': p50 over the raw floor',
          yLabel: 'overhead (× raw p50)', xLabel: 'transport',
          groups: ts, series: D.formats.map(function (f) { return { name: f, color: colorOf(f) }; }),
          y: { type: 'auto', fmt: function (v) { return trim(v, 2) + '×'; } }, ref: 1, refLabel: 'raw floor (1×)',
          get: function (gi, si) {
            var c = at(w.id, D.formats[si], ts[gi], state.load);
            if (!ok(c)) {
              if (!c && !CELLS.some(function (x) { return x.workload === w.id && x.format === D.formats[si]; })) return null;
              return { missing: w.id + '/' + D.formats[si] + '/' + ts[gi] + '/' + state.load + ': ' + whyNot(c), failed: c && c.status === 'failed' };
            }
            var o = c.metrics.overhead_p50;
            if (o == null) return { missing: c.key + ': no raw baseline measured' + (c.baseline ? ' (' + c.baseline + ' ' + whyNot(byKey.get(c.baseline)) + ')' : '') };
            var base = byKey.get(c.baseline);
            return { v: o, tip: c.key + '\noverhead ' + fmtRatio(o) + ': p50 ' + fmtNs(c.metrics.latency.p50) + (ok(base) ? ' vs raw ' + fmtNs(base.metrics.latency.p50) + ' (' + base.key + ')' : '') };
          }
        }));
      });
      target.appendChild(grid);
    }
    draw();
  }

  // ------------------------------------------------------------------
  // 7. Links: one format's cells on every transport, side by side per link.

  function baseLabel(l) { var i = l.label.indexOf('@'); return i < 0 ? l.label : l.label.slice(0, i); }
  function renderLinks() {
    var target = $('#links-charts'), ctrl = $('#links-controls');
    if (!CELLS.length) return;
    var bases = uniq(D.loads.map(baseLabel));
    var state = {
      metric: 'p50',
      workload: D.workloads.length ? D.workloads[0].id : '',
      format: pick(D.formats, ['protobuf', 'bincode', 'json']),
      base: bases.length ? bases[bases.length - 1] : ''
    };
    var metrics = METRICS.filter(function (m) { return m.id === 'p50' || m.id === 'p99' || m.id === 'rate'; });
    ctrl.appendChild(select('Metric ', metrics.map(function (m) { return { value: m.id, text: m.label }; }), state.metric, function (v) { state.metric = v; draw(); }));
    ctrl.appendChild(select('Workload ', D.workloads.map(function (w) { return { value: w.id, text: w.id }; }), state.workload, function (v) { state.workload = v; draw(); }));
    ctrl.appendChild(select('Format ', D.formats.map(function (f) { return { value: f, text: f }; }), state.format, function (v) { state.format = v; draw(); }));
    ctrl.appendChild(select('Load ', bases.map(function (b) { return { value: b, text: b }; }), state.base, function (v) { state.base = v; draw(); }));
    function draw() {
      target.textContent = '';
      var metric = metrics.filter(function (m) { return m.id === state.metric; })[0];
      var ts = transportsOf(state.workload).filter(function (t) {
        return LINKS.some(function (ln) { return !!at(state.workload, state.format, t, state.base + '@' + ln); });
      });
      var grid = h('div', { class: 'charts one' });
      grid.appendChild(barChart({
        title: state.workload + ' in ' + state.format + ' at ' + state.base + ': ' + metric.label + ' per transport on each link',
        yLabel: metric.label + (metric.better === 'low' ? ' (lower is better)' : ' (higher is better)'), xLabel: 'transport',
        width: 1320, height: 340,
        groups: ts,
        series: LINKS.map(function (ln, i) { return { name: ln, color: LINK_COLORS[i % LINK_COLORS.length] }; }),
        y: { type: 'log', fmt: metric.fmt },
        empty: 'No cell of this format on a link at this load',
        get: function (gi, si) {
          var key = state.workload + '/' + state.format + '/' + ts[gi] + '/' + state.base + '@' + LINKS[si];
          var c = at(state.workload, state.format, ts[gi], state.base + '@' + LINKS[si]);
          if (!ok(c)) return c ? { missing: key + ': ' + whyNot(c), failed: c.status === 'failed' } : { missing: key + ': not run' };
          var v = metric.get(c.metrics);
          return { v: v, tip: c.key + '\n' + metric.label + ' ' + metric.fmt(v) + '\np50 ' + fmtNs(c.metrics.latency.p50) + ' · ' + fmtRate(c.metrics.calls_per_sec) + ' calls/s · ' + (c.metrics.timeouts || 0) + ' timeouts' };
        },
        note: 'Bars are links here (their own colours). A failed cell (✗) kept its measurements: see All cells; over a lossy link udp calls time out by design.'
      }));
      target.appendChild(grid);
    }
    draw();
  }

  // ------------------------------------------------------------------
  // 10. All cells.

  function lat(k) { return function (c) { return c.metrics ? c.metrics.latency[k] : null; }; }
  function met(k) { return function (c) { return c.metrics ? c.metrics[k] : null; }; }
  // The spread across replicates: lowest to highest, and the 95%
  // interval's half-width relative to the value.
  function across(c, id, fmt) {
    var r = c.reps && c.reps[id];
    if (!r) return '';
    var lo = Math.min.apply(null, r.v), hi = Math.max.apply(null, r.v);
    return fmt(lo) + '–' + fmt(hi) + (r.lo > 0 ? ' (±' + pct(Math.sqrt(r.hi / r.lo) - 1) + ')' : '');
  }
  var COLUMNS = [
    { label: 'cell', text: true, get: function (c) { return c.key; } },
    { label: 'status', text: true, get: function (c) { return c.status; } },
    { label: 'workload', text: true, get: function (c) { return c.workload; } },
    { label: 'format', text: true, get: function (c) { return c.format; } },
    { label: 'transport', text: true, get: function (c) { return c.transport; } },
    { label: 'load', text: true, get: function (c) { return c.load; } },
    { label: 'link', text: true, get: function (c) { return c.link || ''; } },
    { label: 'clients', get: function (c) { return c.clients || 1; }, fmt: String },
    { label: 'replicates', get: function (c) { return c.nrep; }, fmt: String },
    { label: 'p50', get: lat('p50'), fmt: fmtNs },
    { label: 'p50 across replicates', text: true, get: function (c) { return across(c, 'p50', fmtNs); } },
    { label: 'p90', get: lat('p90'), fmt: fmtNs },
    { label: 'p99', get: lat('p99'), fmt: fmtNs },
    { label: 'p99.9', get: lat('p999'), fmt: fmtNs },
    { label: 'p99.99', get: lat('p9999'), fmt: fmtNs },
    { label: 'max', get: lat('max'), fmt: fmtNs },
    { label: 'mean', get: lat('mean'), fmt: fmtNs },
    { label: 'min', get: lat('min'), fmt: fmtNs },
    { label: 'latency', text: true, get: function (c) { return c.metrics ? c.metrics.latency_kind : ''; } },
    { label: 'p99 uncorr.', get: function (c) { return c.metrics && c.metrics.latency_uncorrected ? c.metrics.latency_uncorrected.p99 : null; }, fmt: fmtNs },
    { label: 'calls/s', get: met('calls_per_sec'), fmt: fmtRate },
    { label: 'calls/s across replicates', text: true, get: function (c) { return across(c, 'rate', fmtRate); } },
    { label: 'calls', get: met('calls'), fmt: function (v) { return String(v); } },
    { label: 'MB/s', get: met('mb_per_sec'), fmt: function (v) { return sig(v); } },
    { label: 'request B', get: met('request_bytes'), fmt: String },
    { label: 'reply B', get: met('reply_bytes'), fmt: String },
    { label: 'request zstd B', get: met('request_zstd_bytes'), fmt: String },
    { label: 'reply zstd B', get: met('reply_zstd_bytes'), fmt: String },
    { label: 'wire sent/call', get: met('wire_sent_per_call'), fmt: fmtBytes },
    { label: 'wire recv/call', get: met('wire_received_per_call'), fmt: fmtBytes },
    { label: 'wire probe B', get: met('wire_probe_bytes'), fmt: function (v) { return String(v); } },
    { label: 'client CPU/call', get: function (c) { return c.metrics ? c.metrics.client_user_us_per_call + c.metrics.client_system_us_per_call : null; }, fmt: fmtUs },
    { label: 'server CPU/call', get: function (c) { return c.metrics ? serverUs(c.metrics) : null; }, fmt: fmtUs },
    { label: 'overhead p50', get: met('overhead_p50'), fmt: fmtRatio },
    { label: 'errors', get: met('errors'), fmt: String },
    { label: 'timeouts', get: met('timeouts'), fmt: String },
    { label: 'wrong', get: met('wrong_replies'), fmt: String },
    { label: 'late', get: met('late_replies'), fmt: String },
    { label: 'send lag p99', get: met('send_lag_p99_ns'), fmt: fmtNs },
    { label: 'samples', get: function (c) { return c.nsamples; }, fmt: String },
    { label: 'reason', text: true, reason: true, get: function (c) { return c.error || ''; } }
  ];

  function renderTable() {
    var table = $('#cells');
    var thead = table.tHead, tbody = table.tBodies[0];
    var filter = $('#filter'), statusSel = $('#status-filter'), count = $('#cells-count');
    var headRow = h('tr');
    var sort = { col: -1, dir: 1 };
    COLUMNS.forEach(function (col, i) {
      headRow.appendChild(h('th', { class: col.text ? 'text' : null, scope: 'col', title: 'Sort by ' + col.label, onclick: function () { sortBy(i); } }, col.label));
    });
    thead.appendChild(headRow);
    var rows = CELLS.map(function (c, idx) {
      var vals = COLUMNS.map(function (col) { return col.get(c); });
      var tr = h('tr', { class: c.status !== 'ok' ? c.status : null, 'data-key': c.key, 'data-status': c.status });
      COLUMNS.forEach(function (col, i) {
        var v = vals[i];
        var txt = v == null || v === '' ? (col.text ? '' : '–') : col.fmt ? col.fmt(v) : String(v);
        tr.appendChild(h('td', { class: col.reason ? 'reason' : col.text ? 'text' : null, title: col.reason && v ? v : null }, txt));
      });
      return { tr: tr, vals: vals, idx: idx, key: c.key.toLowerCase(), status: c.status };
    });
    var frag = document.createDocumentFragment();
    rows.forEach(function (r) { frag.appendChild(r.tr); });
    tbody.appendChild(frag);
    function sortBy(i) {
      sort.dir = sort.col === i ? -sort.dir : 1;
      sort.col = i;
      var text = COLUMNS[i].text;
      rows.sort(function (a, b) {
        var x = a.vals[i], y = b.vals[i];
        var xe = x == null || x === '', ye = y == null || y === '';
        if (xe || ye) return xe === ye ? a.idx - b.idx : xe ? 1 : -1; // blanks last either way
        var r = text ? String(x).localeCompare(String(y)) : x - y;
        return r * sort.dir || a.idx - b.idx;
      });
      var f = document.createDocumentFragment();
      rows.forEach(function (r) { f.appendChild(r.tr); });
      tbody.appendChild(f);
      Array.prototype.forEach.call(headRow.children, function (th, j) {
        th.classList.toggle('sorted-asc', j === i && sort.dir > 0);
        th.classList.toggle('sorted-desc', j === i && sort.dir < 0);
      });
    }
    function apply() {
      var q = filter.value.trim().toLowerCase(), st = statusSel.value, shown = 0;
      rows.forEach(function (r) {
        var show = (!q || r.key.indexOf(q) >= 0) && (!st || (st === 'not-ok' ? r.status !== 'ok' : r.status === st));
        r.tr.hidden = !show;
        if (show) shown++;
      });
      count.textContent = 'showing ' + shown + ' of ' + rows.length + ' cells';
    }
    filter.addEventListener('input', apply);
    statusSel.addEventListener('change', apply);
    apply();
  }

  guard('#heatmaps', renderSummary);
  guard('#spectra', renderLatency);
  guard('#payload-charts', renderPayload);
  guard('#scaling-charts', renderScaling);
  guard('#overhead-charts', renderOverhead);
  if (LINKS.length) guard('#links-charts', renderLinks);
  guard('#cells', renderTable);
  document.documentElement.setAttribute('data-rendered', 'true');
  document.documentElement.setAttribute('data-render-ms', String(Math.round(performance.now() - STARTED)));
  document.documentElement.setAttribute('data-render-times', JSON.stringify(TIMES));
})();
