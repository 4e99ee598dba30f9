"""CSV target columns in a dataset name (issue 19): ``csv:/data/x.csv;targets=["y1","y2"]``.

The spec's ``targets:`` names the CSV columns that are the outputs (default: the last one).
They travel inside the dataset name, as JSON after ``;targets=``, so that every place that
knows a run's data by its name (the runs' ``dataset`` column, the shape checks, the
executor's data cache, `inspect`, the dashboard) reads the same columns, and two sweeps on
one file with different targets are different datasets.
"""

from __future__ import annotations

import json
from typing import Any

from service.spec.errors import Invalid, show

MARK = ";targets="


def split_targets(name: str) -> tuple[str, list[str | int] | None]:
    """(the dataset name without targets, the target columns or None)."""
    head, mark, tail = name.partition(MARK)
    if not mark:
        return name, None
    return head, list(json.loads(tail))


def with_targets(name: str, targets: list[str | int] | None) -> str:
    return name if targets is None else f"{name}{MARK}{json.dumps(targets)}"


def check_targets(value: Any, dataset: str) -> list[str | int]:
    """The spec's ``targets:``: a column name or index, or a non-empty list of distinct ones,
    for a csv: dataset only."""
    if not dataset.startswith("csv:"):
        raise Invalid("targets", f"names columns of a csv: dataset, and this one is {dataset}")
    items = value if isinstance(value, list) else [value]
    if not items:
        raise Invalid("targets", "empty list: name at least one target column")
    for i, item in enumerate(items):
        good = (
            isinstance(item, str)
            and item.strip()
            or (isinstance(item, int) and not isinstance(item, bool))
        )
        if not good:
            raise Invalid(
                f"targets[{i}]", f"must be a column name or a column index, got {show(item)}"
            )
    if len({json.dumps(i) for i in items}) != len(items):
        raise Invalid("targets", f"names a column twice: {items}")
    return [i.strip() if isinstance(i, str) else i for i in items]


def apply_targets(data: dict[str, Any], dataset: str) -> tuple[str, list[str | int] | None]:
    """The dataset name carrying the spec's ``targets:`` (checked against the file's
    columns now, so a wrong name is a spec error), and the targets; unchanged without."""
    if data.get("targets") is None:
        return dataset, None
    from pathlib import Path

    from service.spec.shapes import check_data_file

    targets = check_targets(data["targets"], dataset)
    check_data_file("csv", Path(dataset.partition(":")[2]), "targets", targets)
    return with_targets(dataset, targets), targets
