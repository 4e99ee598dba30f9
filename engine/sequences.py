"""Sequence tasks for recurrent nets (PDP vol. 1 ch. 8, "learning to complete sequences").

The net sees the first two letters of a sequence and must go on with it on its own. The
alphabet is A..E (one unit per letter); a sequence is c1 c2 c1+1 c2+1 c1+2 c2+2 (letters
counted round A..E), so each letter after the second is fixed by the one two places
before it: the net has to keep both cue letters in its recurrent state and step them on.
The 25 pairs (c1, c2) give 25 sequences.

Each sequence is one row: at step t the input is the letter shown (the two cue letters at
steps 1 and 2, no letter after them), the target the sequence's letter at that step (the
cue letters echoed, then the completion). The timing variant ``timed_sequences:D`` puts D
silent steps between the cue and the completion, where the target is no letter at all:
the net has to hold the cue for D steps and then produce the completion at the right time.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray

LETTERS = "ABCDE"
COMPLETION = 4  # letters produced after the two cue letters
MAX_DELAY = 20


def sequence(first: int, second: int) -> list[int]:
    """The letters (0 = A) of the sequence that starts with ``first``, ``second``."""
    letters = [first, second]
    for _ in range(COMPLETION):
        letters.append((letters[-2] + 1) % len(LETTERS))
    return letters


def timed_sequences(delay: int = 0) -> tuple[Array, Array, dict[str, object]]:
    """X (25, T * 5), Y (25, T * 5) with T = 6 + ``delay`` steps, and the meta
    (steps, names of the inputs, outputs and sequences)."""
    if not 0 <= delay <= MAX_DELAY:
        raise ValueError(f"delay must be in 0..{MAX_DELAY}, got {delay}")
    n = len(LETTERS)
    steps = 2 + delay + COMPLETION
    X = np.zeros((n * n, steps * n))
    Y = np.zeros((n * n, steps * n))
    names = []
    for row, (a, b) in enumerate((a, b) for a in range(n) for b in range(n)):
        letters = sequence(a, b)
        X[row, a] = X[row, n + b] = 1.0
        for t, letter in enumerate(letters):
            at = t if t < 2 else t + delay  # completion steps come after the silent ones
            Y[row, at * n + letter] = 1.0
        shown = letters[:2] + [None] * delay + letters[2:]
        names.append("".join("." if k is None else LETTERS[k] for k in shown))
    unit_names = [f"t{t + 1}:{c}" for t in range(steps) for c in LETTERS]
    meta: dict[str, object] = {
        "steps": steps,
        "pattern_names": names,
        "input_names": unit_names,
        "output_names": unit_names,
    }
    return X, Y, meta
