// The sweep page: results table (sortable), curves with seed bands, live updates by polling.
"use strict";

const state = JSON.parse(document.getElementById("sweep-state").textContent);
const sweepId = state.sweep.id;
let sortKey = null;
let sortDesc = false;

function num(v) {
  if (v === "inf") return Infinity;
  if (v === "-inf") return -Infinity;
  if (v === "nan" || v === null || v === undefined) return NaN;
  return v;
}

// The columns `bplab results` prints, each with what it shows and what it sorts by.
function tableColumns() {
  const rows = state.rows;
  // Columns empty in every row are left out, as `bplab results` leaves them out.
  const extra = ["cancelled", "pruned", "pending"].filter((c) => rows.some((r) => r[c]));
  const has = (key) => rows.some((r) => r[key] !== null && r[key] !== undefined);
  const cols = state.sweep.swept.map((n) => ({ name: n, show: (r) => r[n], key: (r) => r[n] }));
  cols.push({ name: "seeds", show: (r) => r.seeds, key: (r) => r.seeds });
  cols.push({ name: "ok/div/fail", show: (r) => `${r.succeeded}/${r.diverged}/${r.failed}`, key: (r) => r.succeeded });
  for (const c of extra) cols.push({ name: c, show: (r) => r[c], key: (r) => r[c] });
  cols.push({ name: "final loss", key: (r) => num(r.final_loss_mean), show: (r) =>
    r.final_loss_mean === null ? "-" : bplab.fmt(r.final_loss_mean) +
      (r.final_loss_sd === null ? "" : ` ± ${typeof r.final_loss_sd === "string"
        ? r.final_loss_sd : Number(r.final_loss_sd.toPrecision(2))}`) });
  cols.push({ name: "best loss", show: (r) => bplab.fmt(r.best_loss), key: (r) => num(r.best_loss) });
  cols.push({ name: "accuracy", show: (r) => bplab.fmt(r.accuracy_mean), key: (r) => num(r.accuracy_mean) });
  if (has("val_loss_mean")) {
    cols.push({ name: "val loss", show: (r) => bplab.fmt(r.val_loss_mean), key: (r) => num(r.val_loss_mean) });
  }
  if (has("val_accuracy_mean")) {
    cols.push({ name: "val acc", show: (r) => bplab.fmt(r.val_accuracy_mean), key: (r) => num(r.val_accuracy_mean) });
  }
  if (has("success_rate")) {
    cols.push({ name: "solved", key: (r) => num(r.success_rate), show: (r) =>
      r.success_rate === null ? "-" : `${Math.round(100 * r.success_rate)}%` });
    cols.push({ name: "epochs to solve", key: (r) => num(r.solved_epoch_median), show: (r) =>
      r.solved_epoch_median === null ? "-" :
        `${r.solved_epoch_median} [${r.solved_epoch_q1}–${r.solved_epoch_q3}]` });
  }
  cols.push({ name: "wall s", show: (r) => bplab.fmt(r.wall_time_mean_s), key: (r) => num(r.wall_time_mean_s) });
  return cols;
}

function renderTable(chart) {
  const cols = tableColumns();
  const table = document.getElementById("results");
  const head = bplab.el("tr");
  head.append(bplab.el("th", "plot"));
  for (const c of cols) {
    const th = bplab.el("th", c.name);
    if (sortKey === c.name) th.className = sortDesc ? "sorted-desc" : "sorted-asc";
    th.addEventListener("click", () => {
      sortDesc = sortKey === c.name ? !sortDesc : false;
      sortKey = c.name;
      renderTable(chart);
    });
    head.append(th);
  }
  head.append(bplab.el("th", "runs"));
  table.tHead.replaceChildren(head);
  let rows = state.rows.slice();
  const col = cols.find((c) => c.name === sortKey);
  if (col) {
    const missing = (v) => v === null || v === undefined || Number.isNaN(v);
    rows.sort((a, b) => {
      const x = col.key(a), y = col.key(b);
      if (missing(x) || missing(y)) return missing(x) - missing(y);
      const order = x < y ? -1 : x > y ? 1 : 0;
      return sortDesc ? -order : order;
    });
  }
  const plotted = new Set(chart.groups.map((g) => g.id));
  const body = document.createDocumentFragment();
  for (const r of rows) {
    const tr = bplab.el("tr", null, { "data-group": r.group });
    const td = bplab.el("td");
    const box = bplab.el("input", null, { type: "checkbox", title: "plot this configuration" });
    box.checked = plotted.has(r.group);
    box.addEventListener("change", () => togglePlotted(chart, r.group, box.checked));
    td.append(box);
    tr.append(td, ...cols.map((c) => bplab.el("td", bplab.fmt(c.show(r)))));
    tr.append(runsCell(r));
    body.append(tr);
  }
  table.tBodies[0].replaceChildren(body);
  table.dataset.rows = String(rows.length);
}

// A configuration's runs, one link per seed, made when opened: 10,000 links up front
// would cost the first paint more than the rest of the table.
function runsCell(r) {
  const td = bplab.el("td");
  const details = bplab.el("details");
  details.append(bplab.el("summary", `${r.seeds} runs`));
  details.addEventListener("toggle", async () => {
    if (!details.open || details.dataset.filled) return;
    details.dataset.filled = "1";
    const data = await bplab.getJSON(`/api/sweeps/${sweepId}/runs?group=${r.group}`);
    for (const run of data.runs) {
      details.append(bplab.el("a", run.seed, { href: `/runs/${run.id}`, class: `status-${run.status}`,
                                                title: `run ${run.id}, seed ${run.seed}, ${run.status}` }), " ");
    }
  });
  td.append(details);
  return td;
}

// Ticks the plot box of the configurations on the chart (without rebuilding the table).
function markPlotted(chart) {
  const plotted = new Set(chart.groups.map((g) => g.id));
  for (const tr of document.querySelectorAll("#results tbody tr")) {
    tr.querySelector("input").checked = plotted.has(tr.dataset.group);
  }
}

function curvesUrl(groups, after) {
  const metric = document.getElementById("metric").value;
  // About one point per 3 pixels: finer than the eye can use on a curve, and fewer rows.
  const points = Math.max(100, Math.min(4000, Math.round((document.getElementById("chart").clientWidth || 900) / 3)));
  return `/api/sweeps/${sweepId}/curves?metric=${metric}&groups=${groups.join(",")}` +
         `&after=${after}&points=${points}`;
}

async function togglePlotted(chart, group, on) {
  if (!on) { chart.removeGroup(group); return; }
  const data = await bplab.getJSON(curvesUrl([group], 0));
  chart.addGroup(data.groups[0]);
  document.getElementById("chart-max-epoch").textContent = chart.lastEpoch();
}

function renderNotes(data) {
  const diverged = state.rows.filter((r) => r.only_diverged);
  const div = document.getElementById("diverged");
  div.textContent = diverged.length
    ? `Hidden because every finished run diverged (tick them in the table to plot): ${diverged.map((r) => r.label).join("; ")}`
    : "";
  const pruned = document.getElementById("pruned");
  pruned.textContent = data.pruned.length
    ? `Pruned: ${data.pruned.map((p) => `run ${p.run} at epoch ${p.epoch ?? "-"}`).join(", ")}`
    : "";
}

async function loadCurves(chart, first) {
  const ids = chart.groups.length ? chart.groups.map((g) => g.id) : state.default_groups;
  // The first load takes the preloaded URL (see sweep.html), whatever the chart's width.
  const url = first ? document.getElementById("first-curves").getAttribute("href") : curvesUrl(ids, 0);
  const data = await bplab.getJSON(url);
  chart.setGroups(data.groups);
  document.getElementById("chart-max-epoch").textContent = chart.lastEpoch();
  renderNotes(data);
}

function renderCounts(counts, pending) {
  bplab.statusSpans(document.getElementById("counts"), counts);
  const total = state.sweep.n_runs;
  document.getElementById("progress").value = total - pending;
  document.getElementById("progress-text").textContent = `${total - pending}/${total} finished`;
  document.getElementById("live-badge").hidden = !pending;
}

async function refreshTable(chart) {
  const status = state.status_filter ? `?status=${encodeURIComponent(state.status_filter)}` : "";
  const fresh = await bplab.getJSON(`/api/sweeps/${sweepId}${status}`);
  state.rows = fresh.rows;
  renderTable(chart);
  if (window.bplabExplore) window.bplabExplore.draw(state);
}

document.addEventListener("DOMContentLoaded", async () => {
  const chart = new BandChart(document.getElementById("chart"), document.getElementById("legend"),
                              { log: true, rule: state.sweep.early_terminate });
  performance.mark("bplab-start");
  // The curves are fetched while the table is built.
  const curves = loadCurves(chart, true);
  renderTable(chart);
  performance.mark("bplab-table");
  if (window.bplabExplore) window.bplabExplore.draw(state);
  await curves;
  performance.mark("bplab-chart");
  markPlotted(chart);
  // Table and chart are drawn: what the benchmark and the browser tests wait for.
  window.bplabReady = performance.now();
  document.body.dataset.ready = "1";
  document.getElementById("metric").addEventListener("change", () => loadCurves(chart));
  document.getElementById("scale").addEventListener("change", (e) => {
    chart.log = e.target.value === "log";
    chart.render();
  });
  let counts = JSON.stringify(state.sweep.counts);
  if (!state.sweep.pending) return;
  bplab.poll(async () => {
    const after = chart.liveAfter();
    const data = await bplab.getJSON(curvesUrl(chart.groups.map((g) => g.id), after));
    chart.append(data.groups, after);
    document.getElementById("chart-max-epoch").textContent = chart.lastEpoch();
    renderCounts(data.counts, data.pending);
    if (JSON.stringify(data.counts) !== counts) {
      counts = JSON.stringify(data.counts);
      await refreshTable(chart);
    }
    return data.pending > 0;
  });
});
