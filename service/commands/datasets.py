"""`bplab datasets`: the built-in datasets and their sizes."""

from __future__ import annotations

import click

from service.output import format_option, render


@click.command("datasets")
@format_option
def datasets(fmt: str) -> None:
    """List the built-in datasets with their sizes."""
    from engine import DATASETS, load_dataset

    rows = []
    for name, description in DATASETS.items():
        example = name.replace(":N", ":4") if name.endswith(":N") else name
        row = {
            "name": name,
            "example": example,
            "patterns": None,
            "inputs": None,
            "outputs": None,
            "description": description,
        }
        if not name.startswith(("csv:", "npz:")):
            try:
                data = load_dataset(example)
                row.update(
                    patterns=data.X.shape[0], inputs=data.X.shape[1], outputs=data.Y.shape[1]
                )
            except Exception as exc:  # e.g. digits without scikit-learn: still list it, say why
                row["description"] = f"{description} ({exc})"
        rows.append(row)
    render(rows, fmt)
