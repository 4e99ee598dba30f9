"""Reading a spec file, YAML or JSON, into plain data for validate.parse_spec."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from .errors import Invalid, SpecError
from .sweep import SweepSpec
from .validate import DEFAULT_MAX_RUNS, parse_spec


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads 1e-3 as a float and refuses duplicate keys.

    PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent, so
    `learning_rate: 1e-3` would be the string "1e-3"; and a key given twice silently
    keeps the last value, hiding a typo.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value != "<<":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping",
                        node.start_mark,
                        f"duplicate key {key_node.value!r}",
                        key_node.start_mark,
                    )
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise Invalid(key, "duplicate key")
        result[key] = value
    return result


def _read(path: Path, source: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(source, "file", "no such file") from None
    except IsADirectoryError:
        raise SpecError(source, "file", "is a directory, not a spec file") from None
    except UnicodeDecodeError:
        raise SpecError(source, "file", "is not UTF-8 text") from None
    except OSError as exc:
        raise SpecError(source, "file", f"cannot be read: {exc.strerror}") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as exc:
            raise SpecError(
                source, f"line {exc.lineno}", f"invalid JSON: {exc.msg} (column {exc.colno})"
            ) from None
        except Invalid as exc:
            raise SpecError(source, exc.field, exc.message) from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}" if mark else "document"
        column = f" (column {mark.column + 1})" if mark else ""
        problem = exc.problem or exc.context or "cannot be parsed"
        raise SpecError(source, where, f"invalid YAML: {problem}{column}") from None
    except yaml.YAMLError as exc:
        raise SpecError(source, "document", f"invalid YAML: {exc}") from None


def load_spec(path: str | Path, *, max_runs: int = DEFAULT_MAX_RUNS) -> SweepSpec:
    """Read, validate and resolve a spec file (.json as JSON, anything else as YAML).

    The name defaults to the file's stem; csv:/npz: paths are relative to its directory.
    """
    path = Path(path)
    data = _read(path, str(path))
    return parse_spec(
        data,
        source=str(path),
        max_runs=max_runs,
        base_dir=path.resolve().parent,
        default_name=path.stem,
    )
