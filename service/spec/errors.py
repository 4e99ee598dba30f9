"""The one error a spec can raise, and the did-you-mean helper its messages share."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SpecError(Exception):
    """A spec is invalid. ``str()`` is one line: ``<file>: <field>: <message>``.

    The CLI turns it into exit code 2; nothing has been written when it is raised.
    """

    def __init__(self, file: str, field: str, message: str) -> None:
        self.file = file
        self.field = field
        # One line, always: the CLI prints it as is and tests match it line by line.
        self.message = " ".join(message.split())
        super().__init__(f"{file}: {field}: {self.message}")

    def __reduce__(self) -> tuple[type[SpecError], tuple[str, str, str]]:
        # Exception's default pickling passes the formatted string back as the only argument.
        return (SpecError, (self.file, self.field, self.message))


class Invalid(Exception):
    """Raised inside the checkers, which do not know the file name; parse_spec adds it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.field = field
        self.message = message


def suggest(word: str, choices: Iterable[str], aliases: dict[str, str] | None = None) -> str:
    """``"did you mean 'x'?"`` for the closest choice (or a known alias), or ``""``."""
    choices = list(choices)
    if aliases and word.lower() in aliases:
        return f"did you mean {aliases[word.lower()]!r}?"
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6) or difflib.get_close_matches(
        word.lower(), choices, n=1, cutoff=0.6
    )
    return f"did you mean {match[0]!r}?" if match else ""


def unknown_name(
    kind: str,
    value: str | None,
    allowed: Iterable[str],
    *,
    keep_order: bool = False,
    aliases: dict[str, str] | None = None,
    hint: str = "",
) -> str:
    """``unknown <kind> 'value'; did you mean 'x'? (allowed: a, b)``; value None when the
    field already names it (an unknown key)."""
    names = [str(name) for name in allowed]
    if not keep_order:
        names.sort()
    hint = hint or (suggest(value, names, aliases) if value is not None else "")
    head = f"unknown {kind}" if value is None else f"unknown {kind} {value!r}"
    if hint:
        head += f"; {hint}"
    return f"{head} (allowed: {', '.join(names)})"


def show(value: object) -> str:
    """A value as the user wrote it, for messages: YAML-ish (true, null), short."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
