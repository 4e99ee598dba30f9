"""Fixed connectivity: boolean masks over a layer's weight matrix.

A mask has W's shape (fan_in, d_out); False entries are connections that do not
exist: they start at 0 and their gradient is zeroed, so they stay 0 under every
optimizer (Adam's update is m / (sqrt(v) + eps) with m = 0). This expresses nets
that are not fully layered, such as the family-trees net of Hinton (1986), whose
person and relation inputs feed separate hidden groups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def group_mask(input_groups: Sequence[int], hidden_groups: Sequence[int]) -> np.ndarray:
    """Block-diagonal mask: input group g connects only to hidden group g.

    ``group_mask([24, 12], [6, 6])`` is the (36, 12) mask of the family-trees net's
    first layer: 24 person units -> 6 units, 12 relation units -> the other 6.
    """
    if len(input_groups) != len(hidden_groups):
        raise ValueError(
            f"input_groups and hidden_groups must pair up; got {len(input_groups)} "
            f"and {len(hidden_groups)} groups"
        )
    if any(int(g) < 1 for g in [*input_groups, *hidden_groups]):
        raise ValueError("group sizes must be >= 1")
    mask = np.zeros((sum(input_groups), sum(hidden_groups)), dtype=bool)
    r = c = 0
    for gi, gh in zip(input_groups, hidden_groups, strict=True):
        mask[r : r + gi, c : c + gh] = True
        r += gi
        c += gh
    return mask


def normalise_masks(
    masks: Mapping[int, object] | Sequence[object] | None, shapes: Sequence[tuple[int, int]]
) -> list[np.ndarray | None]:
    """One bool array or None per layer, checked against the layers' W shapes.

    ``masks``: a dict {layer_index: mask} (layer 0 is the input's weights, as
    ``params[0]``) or a list aligned with the layers (None for a full layer).
    """
    out: list[np.ndarray | None] = [None] * len(shapes)
    if masks is None:
        return out
    if isinstance(masks, Mapping):
        items = list(masks.items())
    else:
        if len(masks) != len(shapes):
            raise ValueError(f"masks list has {len(masks)} entries for {len(shapes)} layers")
        items = list(enumerate(masks))
    for index, mask in items:
        if not isinstance(index, int | np.integer) or not 0 <= index < len(shapes):
            raise ValueError(f"mask layer index {index!r} out of range 0..{len(shapes) - 1}")
        if mask is None:
            continue
        arr = np.asarray(mask)
        if arr.shape != tuple(shapes[index]):
            raise ValueError(
                f"mask for layer {index} has shape {arr.shape}, expected {tuple(shapes[index])}"
            )
        if arr.dtype != bool:
            if not np.isin(arr, (0, 1)).all():
                raise ValueError(f"mask for layer {index} must be boolean (or 0/1)")
            arr = arr.astype(bool)
        out[int(index)] = arr.copy()
    return out
