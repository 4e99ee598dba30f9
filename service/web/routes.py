"""The dashboard's URLs: four pages and the JSON they poll. Every route is GET only.

Pages:  /  /sweeps/{id}  /sweeps/{id}/compare  /runs/{id}
API:    /api/sweeps  /api/sweeps/{id}  /api/sweeps/{id}/curves  /api/sweeps/{id}/compare
        /api/sweeps/{id}/runs?group=
        /api/runs/{id}  /api/runs/{id}/curve
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.compare import DEFAULT_METRICS, METRICS
from service.db import dashboard_queries as dq
from service.web import run_data, sweep_data
from service.web.errors import BadRequest

Read = Callable[..., Any]
Page = Callable[..., Response]  # (request, template, context[, status])


def _json(content: Any) -> Response:
    from service.web.app import DashboardJSON

    return DashboardJSON(content)


def _sweep_list(session: Any) -> list[dict[str, Any]]:
    sweeps = dq.sweep_overview(session)
    for s in sweeps:
        s["counts"] = {k: s["counts"][k] for k in dq.status_order(list(s["counts"]))}
        s["done"] = sum(n for k, n in s["counts"].items() if k not in ("queued", "running"))
        first, last = s["first_started_at"], s["last_finished_at"]
        s["duration_s"] = (last - first).total_seconds() if first and last else None
    return sweeps


def _sweep_state(session: Any, sweep_id: int, status: str | None) -> dict[str, Any]:
    sweep = sweep_data.sweep_header(session, sweep_id)
    rows = sweep_data.results_table(session, sweep, sweep_data.parse_statuses(status))
    return {
        "sweep": sweep,
        "columns": sweep_data.table_columns(sweep),
        "rows": rows,
        "default_groups": sweep_data.default_groups(rows),
    }


def _groups(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [g for g in text.split(",") if g]


def _compare_args(request: Request) -> dict[str, Any]:
    q = request.query_params
    sweep_b = q.get("sweep_b") or None
    metrics = q.getlist("metric") or list(DEFAULT_METRICS)
    return {
        "a_text": q.get("a", ""),
        "b_text": q.get("b", ""),
        "sweep_b": None
        if sweep_b is None
        else sweep_data.parse_int(sweep_b, "sweep_b", 0, 0, 2**31),
        "metrics": metrics,
    }


def _curve_args(request: Request) -> tuple[str, int, int]:
    """(metric, after, points) from the query string; BadRequest if one is unusable."""
    q = request.query_params
    metric = sweep_data.parse_metric(q.get("metric"))
    after = sweep_data.parse_int(q.get("after"), "after", 0, 0, 10**9)
    points = sweep_data.parse_int(q.get("points"), "points", 600, 10, sweep_data.MAX_POINTS)
    return metric, after, points


def _curves(session: Any, sweep_id: int, request: Request) -> dict[str, Any]:
    metric, after, points = _curve_args(request)
    sweep = sweep_data.sweep_header(session, sweep_id)
    groups = _groups(request.query_params.get("groups"))
    bands = sweep_data.curve_bands(session, sweep, metric, groups, after=after, points=points)
    # A live page learns the progress from the same poll that brings the new epochs.
    bands["counts"] = sweep["counts"]
    bands["pending"] = sweep["pending"]
    return bands


def _group_runs(session: Any, sweep_id: int, group: str) -> dict[str, Any]:
    sweep = sweep_data.sweep_header(session, sweep_id)
    return {"group": group, "runs": sweep_data.group_runs(session, sweep, group)}


def _run(session: Any, run_id: int) -> dict[str, Any]:
    run = run_data.run_header(session, run_id)
    return {"run": run, "network": run_data.network_view(session, run)}


def _run_curve(session: Any, run_id: int, request: Request) -> dict[str, Any]:
    metric, after, points = _curve_args(request)
    run = run_data.run_header(session, run_id)
    return run_data.run_curve(session, run, metric, after=after, points=points)


class Endpoints:
    """One method per URL, reading through ``read(fn, *args)`` (a read-only session per
    request) and rendering through ``page(request, template, context[, status])``."""

    def __init__(self, read: Read, page: Page) -> None:
        self.read, self.page = read, page

    def sweeps_page(self, request: Request) -> Response:
        return self.page(request, "sweeps.html", {"sweeps": self.read(_sweep_list)})

    def sweeps_api(self, request: Request) -> Response:
        return _json({"sweeps": self.read(_sweep_list)})

    def sweep_page(self, request: Request) -> Response:
        status = request.query_params.get("status")
        state = self.read(_sweep_state, request.path_params["sweep_id"], status)
        return self.page(request, "sweep.html", {**state, "status_filter": status or ""})

    def sweep_api(self, request: Request) -> Response:
        status = request.query_params.get("status")
        return _json(self.read(_sweep_state, request.path_params["sweep_id"], status))

    def curves_api(self, request: Request) -> Response:
        return _json(self.read(_curves, request.path_params["sweep_id"], request))

    def group_runs_api(self, request: Request) -> Response:
        group = request.query_params.get("group", "")
        return _json(self.read(_group_runs, request.path_params["sweep_id"], group))

    def compare_page(self, request: Request) -> Response:
        sweep_id = request.path_params["sweep_id"]
        args = _compare_args(request)
        state = self.read(_sweep_state, sweep_id, None)
        context = {**state, **args, "all_metrics": list(METRICS), "result": None, "error": None}
        if args["a_text"] or args["b_text"]:
            try:
                context["result"] = self.read(sweep_data.compare_view, sweep_id, **args)
            except BadRequest as exc:
                # Shown on the page, next to the form, so the user can change the choice.
                context["error"] = exc.message
                return self.page(request, "compare.html", context, 400)
        return self.page(request, "compare.html", context)

    def compare_api(self, request: Request) -> Response:
        args = _compare_args(request)
        return _json(self.read(sweep_data.compare_view, request.path_params["sweep_id"], **args))

    def run_page(self, request: Request) -> Response:
        return self.page(request, "run.html", self.read(_run, request.path_params["run_id"]))

    def run_api(self, request: Request) -> Response:
        return _json(self.read(_run, request.path_params["run_id"]))

    def run_curve_api(self, request: Request) -> Response:
        return _json(self.read(_run_curve, request.path_params["run_id"], request))


def build(read: Read, page: Page) -> list[Route]:
    """The routes (Starlette answers any method but GET and HEAD with 405)."""
    e = Endpoints(read, page)
    return [
        Route("/", e.sweeps_page),
        Route("/sweeps/{sweep_id:int}", e.sweep_page),
        Route("/sweeps/{sweep_id:int}/compare", e.compare_page),
        Route("/runs/{run_id:int}", e.run_page),
        Route("/api/sweeps", e.sweeps_api),
        Route("/api/sweeps/{sweep_id:int}", e.sweep_api),
        Route("/api/sweeps/{sweep_id:int}/curves", e.curves_api),
        Route("/api/sweeps/{sweep_id:int}/compare", e.compare_api),
        Route("/api/sweeps/{sweep_id:int}/runs", e.group_runs_api),
        Route("/api/runs/{run_id:int}", e.run_api),
        Route("/api/runs/{run_id:int}/curve", e.run_curve_api),
    ]
