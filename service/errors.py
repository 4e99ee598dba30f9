"""Errors the CLI reports as one line."""

from __future__ import annotations

import click


class BadInput(click.ClickException):
    """Invalid user input (a spec, an id, an option): one line, exit code 2, nothing written."""

    exit_code = 2


class NotFound(click.ClickException):
    """A sweep or run id that does not exist."""

    exit_code = 2
