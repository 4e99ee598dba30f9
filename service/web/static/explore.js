// Random and model-based sweeps: each swept parameter against an outcome (scatter), and all
// of them at once (parallel coordinates), one mark per configuration, drawn on canvases.
"use strict";

(function () {
  const LOWER_IS_BETTER = { final_loss_mean: true, best_loss: true, solved_epoch_median: true,
                            accuracy_mean: false, success_rate: false };

  function value(v) {
    if (v === "inf") return Infinity;
    if (v === null || v === undefined || v === "nan") return NaN;
    return v;
  }

  // A scale for one parameter: numbers (log when positive and spread over 20x), else categories.
  function axis(values) {
    const numeric = values.every((v) => typeof v === "number" || v === null);
    if (!numeric) {
      const cats = [...new Set(values.map(String))].sort();
      const pos = (v) => (cats.indexOf(String(v)) + 0.5) / cats.length;
      return { pos, ticks: cats.map((c) => [pos(c), c]) };
    }
    const finite = values.filter((v) => Number.isFinite(v));
    let lo = Math.min(...finite), hi = Math.max(...finite);
    const log = lo > 0 && hi / lo >= 20;
    const f = log ? Math.log10 : (x) => x;
    const a = f(lo), b = f(hi);
    const pos = (v) => (Number.isFinite(v) ? (b === a ? 0.5 : (f(v) - a) / (b - a)) : NaN);
    return { pos, ticks: [[0, bplab.fmt(lo)], [1, bplab.fmt(hi)]], log };
  }

  function shade(t) {  // 0 = best (blue) .. 1 = worst (red)
    return `rgb(${Math.round(40 + 200 * t)},${Math.round(90 + 40 * (1 - Math.abs(0.5 - t) * 2))},${Math.round(220 - 180 * t)})`;
  }

  function scatter(canvas, xs, ys, colors, name, outcome) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height, m = 28;
    ctx.clearRect(0, 0, w, h);
    ctx.strokeStyle = "#999";
    ctx.strokeRect(m, 8, w - m - 8, h - m - 8);
    const ax = axis(xs), ay = axis(ys);
    let drawn = 0;
    xs.forEach((x, i) => {
      const px = m + ax.pos(x) * (w - m - 8), py = h - m - ay.pos(ys[i]) * (h - m - 16);
      if (!Number.isFinite(px) || !Number.isFinite(py)) return;
      ctx.fillStyle = colors[i];
      ctx.beginPath(); ctx.arc(px, py, 3, 0, 2 * Math.PI); ctx.fill();
      drawn += 1;
    });
    ctx.fillStyle = "#333"; ctx.font = "11px sans-serif";
    for (const [t, label] of ax.ticks) {
      ctx.textAlign = t > 0.9 ? "right" : t < 0.1 ? "left" : "center";
      ctx.fillText(label, m + t * (w - m - 8), h - 12);
    }
    ctx.textAlign = "left";
    for (const [t, label] of ay.ticks) ctx.fillText(label, 2, h - m - t * (h - m - 16));
    canvas.dataset.drawn = String(drawn);
  }

  function parallel(canvas, dims, rows, colors) {
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height, top = 24, bottom = 24;
    ctx.clearRect(0, 0, w, h);
    const step = (w - 80) / Math.max(1, dims.length - 1);
    const axes = dims.map((d) => axis(rows.map((r) => value(d.get(r)))));
    ctx.globalAlpha = rows.length > 500 ? 0.25 : 0.6;
    let drawn = 0;
    rows.forEach((r, i) => {
      ctx.strokeStyle = colors[i];
      ctx.beginPath();
      let pen = false;
      dims.forEach((d, k) => {
        const y = h - bottom - axes[k].pos(value(d.get(r))) * (h - top - bottom);
        if (!Number.isFinite(y)) { pen = false; return; }
        if (pen) ctx.lineTo(40 + k * step, y); else ctx.moveTo(40 + k * step, y);
        pen = true;
      });
      ctx.stroke();
      drawn += 1;
    });
    ctx.globalAlpha = 1;
    ctx.fillStyle = "#222"; ctx.strokeStyle = "#444"; ctx.font = "12px sans-serif";
    dims.forEach((d, k) => {
      const x = 40 + k * step;
      ctx.beginPath(); ctx.moveTo(x, top); ctx.lineTo(x, h - bottom); ctx.stroke();
      ctx.fillText(d.name, x - 20, 14);
      for (const [t, label] of axes[k].ticks) ctx.fillText(label, x + 3, h - bottom - t * (h - top - bottom));
    });
    canvas.dataset.drawn = String(drawn);
  }

  function draw(state) {
    const select = document.getElementById("explore-metric");
    if (!select) return;
    const outcome = select.value;
    const rows = state.rows.filter((r) => Number.isFinite(value(r[outcome])));
    const ys = rows.map((r) => value(r[outcome]));
    const ay = axis(ys);
    const colors = ys.map((y) => shade(LOWER_IS_BETTER[outcome] ? ay.pos(y) : 1 - ay.pos(y)));
    const box = document.getElementById("scatter");
    box.replaceChildren();
    for (const name of state.sweep.swept) {
      const fig = bplab.el("figure");
      const canvas = bplab.el("canvas", null, { width: 300, height: 220, "data-param": name });
      fig.append(canvas, bplab.el("figcaption", `${name} against ${outcome}`));
      box.append(fig);
      scatter(canvas, rows.map((r) => r[name]), ys, colors, name, outcome);
    }
    const dims = state.sweep.swept.map((n) => ({ name: n, get: (r) => r[n] }));
    dims.push({ name: outcome, get: (r) => r[outcome] });
    parallel(document.getElementById("parcoords"), dims, rows, colors);
  }

  window.bplabExplore = { draw };
  document.addEventListener("DOMContentLoaded", () => {
    const select = document.getElementById("explore-metric");
    if (select) select.addEventListener("change", () => draw(state));
  });
})();
