// Helpers shared by the dashboard's pages. Everything from the database is put into the
// page with textContent, never innerHTML, so a sweep named "<script>" stays text.
"use strict";

const bplab = {
  pollMs() {
    return 1000 * Number(document.body.dataset.pollSeconds || 2);
  },

  async getJSON(url) {
    const response = await fetch(url, { headers: { Accept: "application/json" } });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  },

  el(tag, text, attrs) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    return node;
  },

  // A number as the terminal table prints it: 4 significant digits.
  fmt(value) {
    if (value === null || value === undefined) return "-";
    if (typeof value === "number") {
      if (Number.isInteger(value)) return String(value);
      return String(Number(value.toPrecision(4)));
    }
    return String(value);
  },

  tick(v) {
    if (v === null || v === undefined) return "";
    const a = Math.abs(v);
    return a !== 0 && (a >= 1e5 || a < 1e-3) ? v.toExponential(0) : String(Number(v.toPrecision(3)));
  },

  statusSpans(container, counts) {
    container.replaceChildren();
    for (const [status, n] of Object.entries(counts)) {
      container.append(bplab.el("span", `${status} ${n}`, { class: `status status-${status}` }), " ");
    }
  },

  // Repeats fn every poll interval while it returns true; stops (and says so) on an error.
  poll(fn) {
    const tick = async () => {
      let again = false;
      try {
        again = await fn();
      } catch (err) {
        console.error("bplab poll:", err);
        again = true; // a restarting server should not end live updates for good
      }
      if (again) setTimeout(tick, bplab.pollMs());
    };
    setTimeout(tick, bplab.pollMs());
  },

  palette: ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
            "#e377c2", "#7f7f7f", "#bcbd22"],

  color(i, alpha) {
    const hex = bplab.palette[i % bplab.palette.length];
    if (alpha === undefined) return hex;
    const n = parseInt(hex.slice(1), 16);
    return `rgba(${n >> 16},${(n >> 8) & 255},${n & 255},${alpha})`;
  },
};
