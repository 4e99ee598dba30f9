// The run page: one run's curve, updated with its new epochs while it trains.
"use strict";

document.addEventListener("DOMContentLoaded", async () => {
  const root = document.getElementById("run-root");
  const runId = root.dataset.run;
  const chart = new BandChart(document.getElementById("chart"), document.createElement("div"),
                              { log: true });
  const asGroup = (c) => ({ id: "run", label: `run ${runId}`, n_runs: 1, epochs: c.epochs,
                            mean: c.values, low: c.values, high: c.values });
  const url = (after) => {
    const metric = document.getElementById("metric").value;
    return `/api/runs/${runId}/curve?metric=${metric}&after=${after}`;
  };
  const showMax = () => { document.getElementById("chart-max-epoch").textContent = chart.lastEpoch(); };
  const load = async () => {
    chart.setGroups([asGroup(await bplab.getJSON(url(0)))]);
    showMax();
  };
  await load();
  document.getElementById("metric").addEventListener("change", load);
  document.getElementById("scale").addEventListener("change", (e) => {
    chart.log = e.target.value === "log";
    chart.render();
  });
  if (root.dataset.live !== "1") return;
  bplab.poll(async () => {
    const after = chart.lastEpoch();
    const fresh = await bplab.getJSON(url(after));
    chart.append([asGroup(fresh)], after);
    showMax();
    document.getElementById("run-status").textContent = fresh.status;
    return fresh.live;
  });
});
