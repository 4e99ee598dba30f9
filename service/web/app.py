"""The dashboard's Starlette application: pages, a JSON API, static files; GET only.

Every request reads through session_scope(readonly=True): a SQLite connection opened with
mode=ro and query_only, or a PostgreSQL transaction declared READ ONLY, so the dashboard
cannot write even through a bug. Endpoints are plain functions, which Starlette runs in its
thread pool, so a slow query never blocks the event loop.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from service.config import mask_url
from service.db.session import DatabaseMissing, SchemaNotReady, session_scope
from service.web.errors import BadRequest, WebError

HERE = Path(__file__).parent
log = logging.getLogger("bplab.dashboard")
# Seconds between a live page's polls (the issue allows 2 at most).
POLL_SECONDS = 2
SECURITY_HEADERS = [
    # Scripts only from this server (no inline script, no CDN); the inline style attributes
    # are the heat maps' cell colours.
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        b"img-src 'self' data:; object-src 'none'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


def jsonable(value: Any) -> Any:
    """Plain JSON: non-finite floats as the strings "inf"/"-inf"/"nan" (JSON has no NaN),
    datetimes in ISO 8601, NumPy scalars as Python numbers."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


class DashboardJSON(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(jsonable(content), separators=(",", ":")).encode()


class SecurityHeaders:
    """ASGI middleware adding the headers above to every HTTP response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(database_url: str) -> Starlette:
    """The dashboard over ``database_url`` (read-only)."""
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.globals.update(database=mask_url(database_url), poll_seconds=POLL_SECONDS)
    templates.env.filters["num"] = format_number
    templates.env.filters["tojson_safe"] = lambda v: json.dumps(jsonable(v))

    def read(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        with session_scope(database_url, readonly=True) as session:
            return fn(session, *args, **kwargs)

    def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        return templates.TemplateResponse(request, name, context, status_code=status)

    from service.web import routes

    app = Starlette(
        routes=[
            *routes.build(read, page),
            Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
        ],
        exception_handlers=_handlers(templates),
    )
    app.add_middleware(SecurityHeaders)
    return app


def _handlers(templates: Jinja2Templates) -> dict[Any, Callable[..., Any]]:
    def answer(request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return DashboardJSON({"error": message, "status": status}, status_code=status)
        return templates.TemplateResponse(
            request, "error.html", {"status": status, "message": message}, status_code=status
        )

    def web_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, WebError)
        return answer(request, exc.status, exc.message)

    def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        messages = {404: "no such page", 405: "the dashboard is read-only: GET requests only"}
        return answer(request, exc.status_code, messages.get(exc.status_code, str(exc.detail)))

    def database_error(request: Request, exc: Exception) -> Response:
        return answer(request, 503, str(exc))

    def unexpected(request: Request, exc: Exception) -> Response:
        # The traceback goes to the server's log, never to the browser.
        log.exception("dashboard request %s failed", request.url.path)
        return answer(request, 500, f"internal error ({type(exc).__name__}); see the server log")

    return {
        WebError: web_error,
        HTTPException: http_error,
        DatabaseMissing: database_error,
        SchemaNotReady: database_error,
        Exception: unexpected,
    }


def format_number(value: Any, digits: int = 4) -> str:
    """A cell as the terminal table shows it: 4 significant digits, "-" for nothing."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.{digits}g}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


__all__ = ["BadRequest", "create_app", "format_number", "jsonable"]
