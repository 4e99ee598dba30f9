"""The T-C problem (Rumelhart, Hinton & Williams, PDP vol. 1 ch. 8): tell a T from a C
whatever its position and orientation on a retina.

Both letters are made of five blocks inside a 3x3 box, so no single block and no count of
blocks tells them apart; only their arrangement does:

    T: ###    C: ##
       .#.       #.
       .#.       ##

Each is shown in its four orientations (0, 90, 180 and 270 degrees) at every position of
the retina. The retina chosen here is a 6x6 torus: a shape that runs over an edge comes
back on the other side. On a torus every position is like every other one, so each of the
8 shapes appears at all 36 positions (144 T and 144 C patterns: balanced classes), and a
tied layer with wrap-around fields sees exactly the same thing at each of them; 6 is the
smallest side on which a 3x3 field never sees both ends of one shape at once (a 3-block
shape leaves 3 empty rows and columns between its copies around the torus).
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray

RETINA = 6
_T = ((0, 0), (0, 1), (0, 2), (1, 1), (2, 1))
_C = ((0, 0), (0, 1), (1, 0), (2, 0), (2, 1))


def _rotations(blocks: tuple[tuple[int, int], ...]) -> list[tuple[tuple[int, int], ...]]:
    """The shape turned by 0, 90, 180 and 270 degrees, each moved to the top-left corner."""
    out = []
    shape = list(blocks)
    for _ in range(4):
        rmin = min(r for r, _ in shape)
        cmin = min(c for _, c in shape)
        out.append(tuple(sorted((r - rmin, c - cmin) for r, c in shape)))
        shape = [(c, 2 - r) for r, c in shape]  # a quarter turn clockwise in the 3x3 box
    return out


def shapes() -> list[tuple[str, tuple[tuple[int, int], ...]]]:
    """(name, blocks) of the 8 shapes: T then C, each at 0, 90, 180, 270 degrees."""
    return [
        (f"{letter}{90 * k}", blocks)
        for letter, base in (("T", _T), ("C", _C))
        for k, blocks in enumerate(_rotations(base))
    ]


def tc(side: int = RETINA) -> tuple[Array, Array, list[str], list[str], list[str]]:
    """X (8 * side^2, side^2): retina pixels row by row; Y (n, 1): 1 for a T, 0 for a C.

    Also the input names (r1c1 ...), the output name and each pattern's name (shape and
    the retina position of its box's top-left corner, e.g. T90@(2,5)), in row order: the
    shapes as ``shapes()`` lists them, positions row by row.
    """
    rows, names = [], []
    for name, blocks in shapes():
        for r0 in range(side):
            for c0 in range(side):
                x = np.zeros((side, side))
                for r, c in blocks:
                    x[(r0 + r) % side, (c0 + c) % side] = 1.0
                rows.append(x.ravel())
                names.append(f"{name}@({r0 + 1},{c0 + 1})")
    X = np.array(rows)
    Y = np.array([[1.0 if n.startswith("T") else 0.0] for n in names])
    inputs = [f"r{r + 1}c{c + 1}" for r in range(side) for c in range(side)]
    return X, Y, inputs, ["T"], names
