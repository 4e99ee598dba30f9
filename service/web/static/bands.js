// Curves with a band per configuration, drawn by uPlot (vendored, see vendor/uplot/LICENSE).
// Groups carry their own epochs; uPlot wants one shared x array, so the groups' epochs are
// merged and each series has null where its group recorded nothing (spanGaps joins them).
"use strict";

class BandChart {
  constructor(container, legend, options) {
    this.container = container;
    this.legend = legend;
    this.groups = [];          // {id, label, epochs, mean, low, high, shown, color}
    this.log = options.log;
    this.rule = options.rule || null;  // the sweep's early_terminate, for the pruned marks
    this.plot = null;
  }

  // Replaces every group's points (a new metric, or the first load).
  setGroups(groups) {
    const shown = new Map(this.groups.map((g) => [g.id, g.shown]));
    this.groups = groups.map((g, i) => ({ ...g, shown: shown.get(g.id) ?? true, color: i }));
    this.render();
  }

  addGroup(g) {
    if (this.groups.some((h) => h.id === g.id)) return;
    this.groups.push({ ...g, shown: true, color: this.groups.length });
    this.render();
  }

  removeGroup(id) {
    this.groups = this.groups.filter((g) => g.id !== id);
    this.render();
  }

  // Live update: the server sent only epochs after `after`; keep ours up to it, append.
  append(groups, after) {
    let changed = false;
    for (const fresh of groups) {
      const g = this.groups.find((h) => h.id === fresh.id);
      if (!g) continue;
      // marks come whole on every poll: a run pruned since, or a mark's place moved
      if (JSON.stringify(g.pruned) !== JSON.stringify(fresh.pruned)) {
        g.pruned = fresh.pruned;
        changed = true;
      }
      if (!fresh.epochs.length) continue;
      const keep = g.epochs.filter((e) => e <= after).length;
      for (const key of ["epochs", "mean", "low", "high"]) {
        g[key] = g[key].slice(0, keep).concat(fresh[key]);
      }
      g.last_epoch = fresh.last_epoch;
      changed = true;
    }
    if (changed) this.render();
  }

  lastEpoch() {
    return Math.max(0, ...this.groups.map((g) => g.epochs.length ? g.epochs[g.epochs.length - 1] : 0));
  }

  // Epoch from which every group may still get points: the smallest last epoch.
  liveAfter() {
    if (!this.groups.length) return 0;
    return Math.min(...this.groups.map((g) => g.epochs.length ? g.epochs[g.epochs.length - 1] : 0));
  }

  // A value as the chart can draw it: none where the log scale cannot show it.
  clean(v) {
    return v === null || v === undefined || (this.log && v <= 0) ? null : Math.min(v, 1e12);
  }

  data() {
    const shown = this.groups.filter((g) => g.shown);
    const xs = [...new Set(shown.flatMap((g) => g.epochs))].sort((a, b) => a - b);
    const at = new Map(xs.map((x, i) => [x, i]));
    // A diverging run reaches 1e288 within a few epochs: held at a ceiling, the axis keeps
    // readable ticks (uPlot's log axis gives up over hundreds of decades).
    const clean = (v) => this.clean(v);
    const columns = [xs];
    for (const g of shown) {
      for (const key of ["mean", "low", "high"]) {
        const col = new Array(xs.length).fill(null);
        g.epochs.forEach((e, i) => { col[at.get(e)] = clean(g[key][i]); });
        columns.push(col);
      }
    }
    return { shown, columns };
  }

  render() {
    const { shown, columns } = this.data();
    const series = [{ label: "epoch" }];
    const bands = [];
    shown.forEach((g, i) => {
      const base = 1 + 3 * i;
      series.push({ label: g.label, stroke: bplab.color(g.color), width: 2, spanGaps: true,
                    points: { show: false } });
      series.push({ label: "low", stroke: "transparent", width: 0, spanGaps: true, points: { show: false } });
      series.push({ label: "high", stroke: "transparent", width: 0, spanGaps: true, points: { show: false } });
      bands.push({ series: [base + 2, base + 1], fill: bplab.color(g.color, 0.15) });
    });
    const width = Math.max(320, this.container.clientWidth || 900);
    const opts = {
      width, height: 360, series, bands,
      legend: { show: false },
      scales: { x: { time: false }, y: this.log ? { distr: 3 } : {} },
      // Short tick labels (1e+7, 0.001) in a fixed gutter: a diverged run's range would
      // otherwise push long ones off the canvas.
      axes: [{ label: "epoch" }, { size: 60, values: (u, ticks) => ticks.map(bplab.tick) }],
      cursor: { drag: { x: true, y: false } },
      hooks: { setCursor: [(u) => this.showValues(u, shown)], draw: [(u) => this.placeMarks(u, shown)] },
    };
    if (this.plot) this.plot.destroy();
    this.container.replaceChildren();
    this.plot = new uPlot(opts, columns, this.container);
    this.container.dataset.drawn = String(columns[0].length);
    this.container.dataset.series = String(shown.length);
    this.renderLegend(shown);
  }

  renderLegend() {
    this.legend.replaceChildren();
    this.values = new Map();
    for (const g of this.groups) {
      const label = bplab.el("label", null, { "data-group": g.id });
      const box = bplab.el("input", null, { type: "checkbox" });
      box.checked = g.shown;
      box.addEventListener("change", () => { g.shown = box.checked; this.render(); });
      const swatch = bplab.el("span", null, { class: "swatch" });
      swatch.style.background = bplab.color(g.color);
      const value = bplab.el("span", "", { class: "value" });
      this.values.set(g.id, value);
      label.append(box, swatch, `${g.label} (${g.n_runs})`, value);
      if (g.pruned && g.pruned.length) {
        label.append(bplab.el("span", this.prunedLegend(g), { class: "pruned-note" }));
      }
      this.legend.append(label);
    }
    if (this.groups.some((g) => g.pruned && g.pruned.length)) {
      const key = bplab.el("span", null, { class: "pruned-key" });
      key.append(bplab.el("span", null, { class: "pruned-mark" }),
                 this.rule && this.rule.unit === "run"
                   ? "seeds pruned there (the mean goes on over the others); hover for values"
                   : "pruned there: every seed stopped; hover for values");
      this.legend.append(key);
    }
  }

  // Pruned runs, marked where they stopped on their configuration's mean curve (one mark per
  // configuration and epoch, see service/web/pruned_marks.py). Elements over the plot rather
  // than canvas paint: each keeps its hover text, and the browser tests read them back.
  placeMarks(u, shown) {
    for (const old of u.over.querySelectorAll(".pruned-mark")) old.remove();
    let drawn = 0;
    for (const g of shown) {
      for (const mark of g.pruned || []) {
        const y = this.clean(mark.y);
        if (y === null) continue;
        const left = u.valToPos(mark.epoch, "x");
        const top = u.valToPos(y, "y");
        const inside = left >= 0 && left <= u.over.clientWidth && top >= 0 && top <= u.over.clientHeight;
        if (!inside) continue;  // zoomed away
        const text = this.markText(g, mark);
        const node = bplab.el("div", null, { class: "pruned-mark", title: text, "aria-label": text,
                                             "data-group": g.id, "data-epoch": mark.epoch,
                                             "data-y": y, "data-runs": mark.runs.length });
        node.style.left = `${left}px`;
        node.style.top = `${top}px`;
        node.style.borderColor = bplab.color(g.color);
        u.over.append(node);
        drawn += 1;
      }
    }
    this.container.dataset.prunedMarks = String(drawn);
  }

  // The hover text: when, which seeds, the value the rule read and the threshold it missed.
  markText(g, mark) {
    const rule = this.rule || {};
    const metric = rule.metric || "value";
    const how = rule.type ? `${rule.type}, unit: ${rule.unit}` : "early_terminate";
    const n = mark.runs.length;
    if (rule.unit === "config") {
      const r = mark.runs[0];
      return `${g.label}: pruned at epoch ${mark.epoch}, all ${n} seed${n === 1 ? "" : "s"} (${how}): ` +
             `${rule.aggregate || "mean"} ${metric} over seeds ${bplab.fmt(r.value)} missed the ` +
             `threshold ${bplab.fmt(r.threshold)}`;
    }
    const seeds = mark.runs.map((r) => `seed ${r.seed} (run ${r.run}): ${metric} ${bplab.fmt(r.value)} ` +
                                       `missed the threshold ${bplab.fmt(r.threshold)}`);
    return `${g.label}: ${n} of ${g.n_runs} seeds pruned at epoch ${mark.epoch} (${how}): ${seeds.join("; ")}`;
  }

  prunedLegend(g) {
    const epochs = g.pruned.map((m) => m.epoch);
    if (this.rule && this.rule.unit === "config") {
      const r = g.pruned[0].runs[0];
      return `pruned at epoch ${epochs[0]} (${this.rule.aggregate || "mean"} ${this.rule.metric} ${bplab.fmt(r.value)}, ` +
             `threshold ${bplab.fmt(r.threshold)})`;
    }
    const n = g.pruned.reduce((sum, m) => sum + m.runs.length, 0);
    return `${n} seed${n === 1 ? "" : "s"} pruned at epoch${epochs.length === 1 ? "" : "s"} ${epochs.join(", ")}`;
  }

  showValues(u, shown) {
    const idx = u.cursor.idx;
    shown.forEach((g, i) => {
      const span = this.values.get(g.id);
      if (!span) return;
      const v = idx === null || idx === undefined ? null : u.data[1 + 3 * i][idx];
      span.textContent = v === null || v === undefined ? "" : `epoch ${u.data[0][idx]}: ${bplab.fmt(v)}`;
    });
  }
}
