"""Errors a request can cause: each becomes a clear page (or JSON) with a 4xx status."""

from __future__ import annotations


class WebError(Exception):
    """Something wrong with the request itself; ``status`` is the HTTP status to answer."""

    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(WebError):
    """A query parameter the dashboard cannot use (the message says which and why)."""

    status = 400


class NotFoundError(WebError):
    """A sweep or run id in the URL that does not exist."""

    status = 404
