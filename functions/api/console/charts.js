// Stacked bar charts of calls by status class, drawn as SVG (no library),
// each with a table of the same numbers for screen readers and keyboards.

import { h, table, fmtNumber } from './ui.js';

export const CLASSES = ['2xx', '3xx', '4xx', '5xx'];
const NS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

// The counts of one period by class; 429s are in 4xx already.
export function byClass(tally) {
  const s = (tally && tally.status) || {};
  const out = {};
  for (const c of CLASSES) out[c] = Number(s[c] || 0);
  return out;
}

// points: [{label, counts: {2xx,..}}]; returns a <figure>.
export function stackedBars(title, points, { tick = (i) => i % 6 === 0 } = {}) {
  const width = 720;
  const height = 200;
  const pad = { left: 44, right: 8, top: 10, bottom: 28 };
  const totals = points.map((p) => CLASSES.reduce((a, c) => a + p.counts[c], 0));
  const max = Math.max(1, ...totals);
  const sum = totals.reduce((a, b) => a + b, 0);
  const inner = width - pad.left - pad.right;
  const bw = inner / Math.max(1, points.length);
  const y = (v) => pad.top + (height - pad.top - pad.bottom) * (1 - v / max);
  const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart', role: 'img', 'aria-label': `${title}: ${fmtNumber(sum)} calls in all, at most ${fmtNumber(max)} in one period` });
  chart.append(svg('title', {}, title));
  for (const frac of [0, 0.5, 1]) {
    const v = Math.round(max * frac);
    chart.append(svg('line', { x1: pad.left, x2: width - pad.right, y1: y(v), y2: y(v), class: 'grid' }));
    chart.append(svg('text', { x: pad.left - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, fmtNumber(v)));
  }
  points.forEach((p, i) => {
    let acc = 0;
    const x = pad.left + i * bw;
    for (const c of CLASSES) {
      const v = p.counts[c];
      if (!v) continue;
      const rect = svg('rect', { x: x + 1, width: Math.max(1, bw - 2), y: y(acc + v), height: y(acc) - y(acc + v), class: 'bar s' + c });
      rect.append(svg('title', {}, `${p.label}: ${v} × ${c}`));
      chart.append(rect);
      acc += v;
    }
    if (tick(i, points.length)) {
      chart.append(svg('text', { x: x + bw / 2, y: height - 8, class: 'axis', 'text-anchor': 'middle' }, p.short || p.label));
    }
  });
  const legend = h('ul', { class: 'legend' }, CLASSES.map((c) => h('li', {}, h('span', { class: 'swatch s' + c, 'aria-hidden': 'true' }), c)));
  const rows = points.filter((_, i) => totals[i] > 0).map((p) => [p.label, ...CLASSES.map((c) => fmtNumber(p.counts[c]))]);
  const data = h('details', { class: 'chart-data' },
    h('summary', {}, 'Show the numbers'),
    rows.length ? table(title, ['Period', ...CLASSES], rows) : h('p', {}, 'No calls in this range.'));
  return h('figure', { class: 'chart-box', dataset: { total: String(sum) } },
    h('figcaption', {}, title, h('span', { class: 'muted total' }, ` — ${fmtNumber(sum)} calls`)),
    chart, legend, data);
}

// A usage series of the API (`series` of a key's /usage or of
// /dashboard/usage) as chart points.
export function points(series, granularity) {
  return series.map((s) => {
    const d = new Date(s.start);
    return {
      start: s.start,
      label: granularity === 'hour' ? d.toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' }) : d.toLocaleDateString(),
      short: granularity === 'hour' ? d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : d.toLocaleDateString([], { month: 'short', day: 'numeric' }),
      counts: byClass(s),
    };
  });
}
