"""Subcommands of the ``bplab`` CLI, one module per group, imported only when used.

The tables below say where each command lives and what `bplab --help` says of it
(service.commands.lazy); this module imports nothing but click, so that listing the
commands costs no NumPy, SQLAlchemy or Celery.
"""

from __future__ import annotations

from service.commands.lazy import LazyCommand, LazyGroup

_SWEEP = "service.commands.sweep"
_REMOTE = "service.commands.remote"
_RECOVERY = "service.commands.recovery"
_MANAGE = "service.commands.manage"
_RESULTS = "service.commands.results"

SWEEP_COMMANDS = {
    "plan": LazyCommand(
        f"{_SWEEP}:plan",
        "Validate SPEC and print its expansion; writes nothing.",
        adaptive_route="sweep plan",
    ),
    "run": LazyCommand(
        f"{_SWEEP}:run_sweep",
        "Validate SPEC, record its runs, train them in a local process pool, print the results.",
        adaptive_route="sweep run",
    ),
    "resume": LazyCommand(
        f"{_SWEEP}:resume",
        "Finish the queued (and abandoned) runs of an interrupted sweep.",
        adaptive_route="sweep resume",
    ),
    "list": LazyCommand(
        f"{_SWEEP}:list_sweeps",
        "One line per sweep with its counts by status (filtered by name, dataset and tags).",
    ),
    "show": LazyCommand(f"{_SWEEP}:show", "A sweep's spec, counts by status and timing."),
    "submit": LazyCommand(
        f"{_REMOTE}:submit",
        "Record SPEC's runs and queue them for Celery workers; prints the sweep id.",
        adaptive_route="sweep submit",
    ),
    "watch": LazyCommand(
        f"{_REMOTE}:watch",
        "Follow a sweep until every run has finished, then print its results.",
        adaptive_route="sweep watch",
    ),
    "status": LazyCommand(f"{_REMOTE}:status", "A sweep's run counts by status, once."),
    "republish": LazyCommand(
        f"{_REMOTE}:republish",
        "Publish a task again for every queued run of SWEEP_ID (after a failed or lost publish).",
    ),
    "cancel": LazyCommand(f"{_RECOVERY}:cancel", "Cancel SWEEP_ID's unfinished runs."),
    "retry": LazyCommand(
        f"{_RECOVERY}:retry",
        "Train SWEEP_ID's failed, diverged and/or cancelled runs again (default: all three).",
    ),
    "recover": LazyCommand(
        f"{_RECOVERY}:recover", "Run the reconciler once, over SWEEP_ID or every sweep."
    ),
    "extend": LazyCommand(
        f"{_MANAGE}:extend",
        "Add seeds (--seeds) or configurations (--spec) to SWEEP_ID and train the new runs.",
    ),
    "delete": LazyCommand(
        f"{_MANAGE}:delete",
        "Delete SWEEP_ID with its runs, epoch rows, weights, checkpoints and tags "
        "(one transaction).",
    ),
    "rename": LazyCommand(f"{_MANAGE}:rename", "Give SWEEP_ID a new NAME."),
    "tag": LazyCommand(
        f"{_MANAGE}:tag",
        "Set tags (KEY=VALUE) of SWEEP_ID, remove some (--remove KEY), and print its tags.",
    ),
    "note": LazyCommand(
        f"{_MANAGE}:note",
        "Describe SWEEP_ID with TEXT (shown by `sweep show` and `sweep list`).",
    ),
    "drive": LazyCommand(  # model-based search (issue 16)
        "service.commands.search:drive_command",
        "Drive the search of SWEEP_ID to its run_cap, without a progress bar; one driver per "
        "sweep at a time (another waits, and takes over when this one stops).",
    ),
}

TOP_COMMANDS = {
    "db": LazyCommand(
        "service.commands.db:db", "Manage the results database schema (BPLAB_DATABASE_URL)."
    ),
    "runs": LazyCommand("service.commands.runs:runs", "One row per run of SWEEP_ID."),
    "run": LazyCommand(
        "service.commands.runs:run", "Inspect one run: its summary, its curve, its weights."
    ),
    "datasets": LazyCommand(
        "service.commands.datasets:datasets", "List the built-in datasets with their sizes."
    ),
    "worker": LazyCommand(
        "service.commands.worker:worker",
        "Train the runs that `bplab sweep submit` publishes (needs BPLAB_BROKER_URL).",
    ),
    "inspect": LazyCommand(
        "service.commands.inspect:inspect",
        "RUN_ID's final weights as one table per layer: rows are source units, columns targets.",
    ),
    "results": LazyCommand(
        f"{_RESULTS}:results",
        "One row per configuration of SWEEP_ID, best first, with statistics over its seeds.",
        adaptive_route="results",
    ),
    "compare": LazyCommand(
        f"{_RESULTS}:compare",
        "Compare configuration A with B, paired by seed: mean difference A - B with a bootstrap "
        "95% CI, and the Wilcoxon signed-rank test.",
    ),
    "export": LazyCommand(
        f"{_RESULTS}:export",
        "Write SWEEP_ID's runs (parameters and summaries) to a CSV or JSON file.",
    ),
    "sql": LazyCommand(
        f"{_RESULTS}:sql",
        "Run one read-only SQL statement on the results database and print its rows.",
    ),
    "plot": LazyCommand(
        "service.commands.plot:plot",
        "Curves of sweep ID: per configuration, the mean over seeds with a shaded band.",
    ),
    "dashboard": LazyCommand(
        "service.commands.dashboard:dashboard",
        "Serve the web dashboard: sweeps, results, live curves, comparisons, runs.",
    ),
    "best": LazyCommand(
        f"{_MANAGE}:best",
        "The best configuration of SWEEP by an objective over its seeds, its spread, and how it "
        "compares with the runner-up (paired by seed, as `bplab compare` does).",
    ),
}

sweep = LazyGroup("sweep", help="Plan, run and inspect sweeps.", lazy_commands=SWEEP_COMMANDS)
