// Line charts as inline SVG, drawn with a few dozen elements: no library, no canvas, so they
// scale with the page, follow the colour scheme through CSS classes, and pass the CSP.

import { h, s } from './dom.js';
import { compact } from './format.js';

const W = 640;
const H = 220;
const M = { top: 12, right: 14, bottom: 26 };

/** A "nice" upper bound for the y axis and its step, so ticks read 0, 5, 10, 15, 20. */
function niceScale(max, integer) {
  if (!(max > 0)) return integer ? { top: 1, step: 1 } : { top: 1, step: 0.25 };
  const rough = max / 4;
  const pow = 10 ** Math.floor(Math.log10(rough));
  let step = [1, 2, 2.5, 5, 10].map((m) => m * pow).find((v) => v >= rough);
  // Counts get whole-number ticks: no "0.25 requests".
  if (integer) step = Math.max(1, Math.ceil(step));
  return { top: step * Math.ceil(max / step), step };
}

/**
 * `buckets`: the x positions (ms since epoch, evenly spaced, ascending).
 * `series`: [{name, values: Map(ms → number)}]; a missing bucket is 0 when `zero` is set
 * (counts and sums), a gap otherwise (percentiles).
 * `xLabel(ms)` and `yLabel(n)` format the axes; `integer` keeps ticks whole; `describe` is the
 * accessible name.
 */
export function lineChart({ buckets, series, zero, integer, xLabel, yLabel = compact, describe }) {
  const valueAt = (ser, b) => (ser.values.has(b) ? ser.values.get(b) : zero ? 0 : null);
  let max = 0;
  for (const ser of series) for (const b of buckets) max = Math.max(max, valueAt(ser, b) ?? 0);
  const { top, step } = niceScale(max, integer);
  const ticks = [];
  for (let i = 0; i * step <= top + step / 2; i += 1) ticks.push(i * step);
  // The left margin fits the longest y label (about 6.5 px a character at 11 px).
  const left = Math.max(36, 10 + 6.5 * Math.max(...ticks.map((v) => yLabel(v).length)));
  const iw = W - left - M.right;
  const ih = H - M.top - M.bottom;
  const n = buckets.length;
  const x = (i) => left + (n <= 1 ? iw / 2 : (i * iw) / (n - 1));
  const y = (v) => M.top + ih - (v / top) * ih;

  const grid = s('g', { class: 'grid' });
  const axis = s('g', { class: 'axis' });
  for (const v of ticks) {
    grid.appendChild(s('line', { x1: left, x2: W - M.right, y1: y(v), y2: y(v) }));
    axis.appendChild(s('text', { x: left - 6, y: y(v) + 4, 'text-anchor': 'end' }, yLabel(v)));
  }
  const every = Math.max(1, Math.ceil(n / 6));
  for (let i = 0; i < n; i += every) {
    axis.appendChild(s('text', { x: x(i), y: H - 8, 'text-anchor': n <= 1 ? 'middle' : i === 0 ? 'start' : 'middle' }, xLabel(buckets[i])));
  }

  const layers = series.map((ser, k) => {
    const cls = `series k${(k % 8) + 1}`;
    let d = '';
    let pen = false;
    const dots = s('g', { class: 'dots' });
    buckets.forEach((b, i) => {
      const v = valueAt(ser, b);
      if (v === null || v === undefined) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)}`;
      pen = true;
      if (ser.values.has(b)) {
        dots.appendChild(s('circle', { cx: x(i), cy: y(v), r: n > 60 ? 1.5 : 3 },
          s('title', {}, `${ser.name} · ${xLabel(b)}: ${yLabel(v)}`)));
      }
    });
    const g = s('g', { class: cls }, s('path', { class: 'line', d }), dots);
    if (series.length === 1 && zero && n > 1) {
      const area = `${d}L${x(n - 1).toFixed(1)},${y(0)}L${x(0).toFixed(1)},${y(0)}Z`;
      g.insertBefore(s('path', { class: 'area', d: area }), g.firstChild);
    }
    return g;
  });

  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': describe },
    s('title', {}, describe), grid, axis, ...layers);
  const legend = series.length > 1 || (series[0] && series[0].name)
    ? h('div', { class: 'legend' }, series.map((ser, k) => h('span', { class: `k${(k % 8) + 1}` }, ser.name)))
    : null;
  return h('div', {}, svg, legend);
}
