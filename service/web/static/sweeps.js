// The sweeps page: the table is rendered by the server and refreshed every poll.
"use strict";

function sweepRow(s) {
  const tr = bplab.el("tr", null, { "data-sweep": s.id });
  const name = bplab.el("a", s.name, { href: `/sweeps/${s.id}` });
  const counts = bplab.el("td", null, { class: "counts" });
  bplab.statusSpans(counts, s.counts);
  const progress = bplab.el("td");
  progress.append(bplab.el("progress", null, { max: s.runs, value: s.done }), ` ${s.done}/${s.runs}`);
  const created = (s.created_at || "").replace("T", " ").slice(0, 19);
  const duration = s.duration_s === null ? "-" : `${bplab.fmt(s.duration_s)} s`;
  const cells = [bplab.el("td", s.id), bplab.el("td"), bplab.el("td", s.dataset),
                 bplab.el("td", s.method), counts, progress, bplab.el("td", created),
                 bplab.el("td", duration)];
  cells[1].append(name);
  tr.append(...cells);
  return tr;
}

document.addEventListener("DOMContentLoaded", () => {
  const tbody = document.querySelector("#sweeps tbody");
  bplab.poll(async () => {
    const data = await bplab.getJSON("/api/sweeps");
    tbody.replaceChildren(...data.sweeps.map(sweepRow));
    const empty = document.getElementById("no-sweeps");
    if (empty && data.sweeps.length) empty.remove();
    return true;
  });
});
