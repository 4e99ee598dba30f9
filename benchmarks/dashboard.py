"""The dashboard at scale (issue 17): a sweep of 10,000 runs x 1,000 epochs, first paint <= 1 s.

Builds (once, then reuses) a SQLite database holding one grid sweep of 500 configurations x
20 seeds, every run with 1,000 recorded epochs (10 million epoch rows), starts `bplab
dashboard` on it, and measures:

- the server: GET /sweeps/ID (the HTML with the results table's data) and the curves the
  page asks for (/api/sweeps/ID/curves, the 8 best configurations, 160 runs, 160,000
  epoch rows decimated in SQL to the chart's width), the median of 5 requests each;
- a real browser (Debian's headless Chromium, through Playwright): from navigation start
  to the first contentful paint, and to the moment the table's 500 rows and the chart are
  drawn (sweep.js records it), the median of 5 fresh page loads.

    python benchmarks/dashboard.py [--db PATH] [--rebuild]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

RUNS_CONFIGS = 500
SEEDS = 20
EPOCHS = 1000
CHROMIUM = "/usr/bin/chromium"
CHROME_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SPEC = f"""
name: dashboard-scale
dataset: xor
method: grid
seeds: {SEEDS}
parameters:
  learning_rate: [{", ".join(str(round(0.1 + 0.1 * i, 2)) for i in range(25))}]
  momentum: [0.0, 0.5, 0.8, 0.9, 0.95]
  hidden: [2, 3, 4, 5]
  epochs: {EPOCHS}
  log_every: 1
"""


def build(path: Path) -> int:
    """Create the database with the sweep's runs through bplab itself, then write the
    summaries and 10 million epoch rows with plain sqlite3 (a training run would take hours)."""
    import numpy as np

    from service.db.session import dispose_engines, session_scope
    from service.spec import loader
    from service.sweeps import create_sweep_from_spec

    url = f"sqlite:///{path}"
    with tempfile.TemporaryDirectory() as tmp:
        spec_file = Path(tmp) / "spec.yaml"
        spec_file.write_text(SPEC)
        spec = loader.load_spec(spec_file, max_runs=RUNS_CONFIGS * SEEDS)
        with session_scope(url) as session:
            sweep_id = create_sweep_from_spec(session, spec, backend="local")
    dispose_engines(url)
    con = sqlite3.connect(path)
    con.execute("PRAGMA synchronous = OFF")
    run_ids = [r for (r,) in con.execute("SELECT id FROM runs WHERE sweep_id = ?", (sweep_id,))]
    rng = np.random.default_rng(0)
    epochs = np.arange(1, EPOCHS + 1)
    summaries = []
    t0 = time.perf_counter()
    for i, run_id in enumerate(run_ids):
        # A plateau, then a drop at a run-specific epoch, as XOR nets do.
        drop = rng.uniform(50, 900)
        loss = 0.05 + 0.45 / (1 + np.exp((epochs - drop) / 25)) + rng.normal(0, 0.002, EPOCHS)
        acc = np.where(epochs > drop, 1.0, 0.5)
        con.executemany(
            "INSERT INTO epoch_metrics (run_id, epoch, loss, accuracy) VALUES (?, ?, ?, ?)",
            zip([run_id] * EPOCHS, epochs.tolist(), loss.tolist(), acc.tolist(), strict=True),
        )
        summaries.append(
            (float(loss[-1]), float(loss.min()), int(drop) + 20, 1.5 + rng.random(), run_id)
        )
        if i % 1000 == 999:
            con.commit()
            print(f"  {i + 1} runs written ({time.perf_counter() - t0:.0f} s)", flush=True)
    con.executemany(
        "UPDATE runs SET status = 'succeeded', epochs_run = 1000, final_loss = ?, best_loss = ?,"
        " accuracy = 1.0, solved_epoch = ?, wall_time_s = ?, attempt = 1 WHERE id = ?",
        summaries,
    )
    con.commit()
    con.execute("ANALYZE")
    con.close()
    return sweep_id


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed_get(url: str) -> float:
    t0 = time.perf_counter()
    with urllib.request.urlopen(url) as response:
        response.read()
    return time.perf_counter() - t0


def browser_loads(url: str, loads: int) -> list[dict[str, float]]:
    from playwright.sync_api import sync_playwright

    out = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for _ in range(loads):
            # As a user would open it: on an idle machine (a browser starting up a page's
            # processes competes with the server for this machine's 2 cores).
            page.goto("about:blank")
            time.sleep(1.0)
            page.goto(url)
            page.wait_for_selector("body[data-ready='1']", state="attached", timeout=60_000)
            out.append(
                page.evaluate(
                    """() => ({
                      fcp: performance.getEntriesByName('first-contentful-paint')[0].startTime,
                      ready: window.bplabReady,
                      html: performance.getEntriesByType('navigation')[0].responseEnd,
                      start: performance.getEntriesByName('bplab-start')[0].startTime,
                      table: performance.getEntriesByName('bplab-table')[0].startTime,
                      rows: document.querySelectorAll('#results tbody tr').length,
                      drawn: Number(document.getElementById('chart').dataset.drawn),
                    })"""
                )
            )
        browser.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default=str(Path(tempfile.gettempdir()) / "bplab-dashboard.db"))
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    path = Path(args.db)
    if args.rebuild and path.exists():
        path.unlink()
    if not path.exists():
        print(f"building {path}: {RUNS_CONFIGS * SEEDS} runs x {EPOCHS} epochs")
        build(path)
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    sweep_id, n_runs = con.execute(
        "SELECT id, n_runs FROM sweeps WHERE name = 'dashboard-scale' ORDER BY id DESC"
    ).fetchone()
    rows = con.execute("SELECT count(*) FROM epoch_metrics").fetchone()[0]
    con.close()
    print(f"sweep {sweep_id}: {n_runs} runs, {rows} epoch rows, {path.stat().st_size >> 20} MiB")

    port = free_port()
    env = {**os.environ, "BPLAB_DATABASE_URL": f"sqlite:///{path}"}
    cmd = [sys.executable, "-m", "service.cli", "dashboard", "--port", str(port)]
    server = subprocess.Popen(cmd, env=env, cwd=ROOT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60  # scipy's import alone can take seconds
        while True:
            try:
                timed_get(f"{base}/api/sweeps")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.1)
        page_s = [timed_get(f"{base}/sweeps/{sweep_id}") for _ in range(5)]
        state = json.loads(urllib.request.urlopen(f"{base}/api/sweeps/{sweep_id}").read())
        groups = ",".join(state["default_groups"])
        curves = f"{base}/api/sweeps/{sweep_id}/curves?metric=loss&groups={groups}&points=400"
        curve_s = [timed_get(curves) for _ in range(5)]
        loads = browser_loads(f"{base}/sweeps/{sweep_id}", 5)
    finally:
        server.terminate()
        server.wait(timeout=10)
    result = {
        "runs": n_runs,
        "epoch_rows": rows,
        "configurations": len(state["rows"]),
        "page_html_s": statistics.median(page_s),
        "curves_api_s": statistics.median(curve_s),
        "browser_first_contentful_paint_s": statistics.median(x["fcp"] for x in loads) / 1000,
        "browser_table_and_chart_s": statistics.median(x["ready"] for x in loads) / 1000,
        "browser_html_received_s": statistics.median(x["html"] for x in loads) / 1000,
        "browser_scripts_start_s": statistics.median(x["start"] for x in loads) / 1000,
        "browser_table_drawn_s": statistics.median(x["table"] for x in loads) / 1000,
        "table_rows": loads[-1]["rows"],
        "chart_points": loads[-1]["drawn"],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
