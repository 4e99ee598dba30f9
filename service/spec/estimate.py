"""What a sweep will cost before it runs: memory per run and CPU time, roughly.

`sweep plan` prints the estimate; `plan`, `run` and `submit` refuse a sweep whose largest
run cannot fit in this machine's memory (a MemoryError minutes later, with the sweep half
recorded, is what this replaces). The figures are upper bounds in the spirit of
estimate_epochs: no run stops early, every epoch is recorded.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from .shapes import data_shape
from .sweep import SweepSpec

# Per epoch, per layer: the Python and NumPy call overhead of the engine's small-net path
# (XOR 2-2-1 trains at ~10-40 us an epoch on the machines the README measures).
LAYER_OVERHEAD_S = 15e-6
# Forward and backward pass: ~6 floating-point operations per weight and pattern, at a rate
# a single BLAS thread sustains on small matrices.
FLOPS_PER_S = 1e9
# Per recorded epoch: the metrics the history keeps (loss, accuracy, validation, max error,
# solved) as float64, plus the epoch row's share of a batched write.
BYTES_PER_EPOCH = 96


@dataclass(frozen=True)
class Estimate:
    largest_run_bytes: int  # the most memory one run needs
    cpu_seconds: float  # all runs, one core each, no early stop
    runs: int

    def wall_seconds(self, workers: int) -> float:
        return self.cpu_seconds / max(1, min(workers, self.runs))


def physical_memory() -> int | None:
    """This machine's RAM in bytes, where the OS says (Linux, macOS)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def estimate(spec: SweepSpec) -> Estimate | None:
    """The cost of spec's runs; None for a dataset whose shape is unknown."""
    shape = data_shape(spec.dataset)
    if shape is None:
        return None
    configs = spec.configs() or []
    if not configs:  # a search that picks its configurations as it goes: bound by the axes
        return None
    largest, cpu = 0, 0.0
    for config in configs:
        memory, seconds = _run_cost(config, shape.patterns, shape.inputs, shape.outputs)
        largest = max(largest, memory)
        cpu += seconds * len(spec.seeds)
    return Estimate(largest, cpu, len(configs) * len(spec.seeds))


def _run_cost(
    config: dict[str, Any], patterns: int, inputs: int, outputs: int
) -> tuple[int, float]:
    widths = [inputs, *config["hidden"], outputs]
    weights = 0
    for layer in range(1, len(widths)):
        fan_in = sum(widths[:layer]) if config["skip_connections"] else widths[layer - 1]
        weights += (fan_in + 1) * widths[layer]
    batch = config["batch_size"]
    rows = patterns if batch == "full" else min(int(batch), patterns)
    units = sum(widths[1:])
    # weights, gradients, momentum, best and checkpoint copies; activations, derivatives and
    # deltas of a batch; the data itself and the per-epoch history
    memory = 8 * (5 * weights + 3 * rows * units + patterns * (inputs + outputs))
    memory += BYTES_PER_EPOCH * int(config["epochs"])
    per_epoch = LAYER_OVERHEAD_S * (len(widths) - 1) + 6 * weights * patterns / FLOPS_PER_S
    return memory, per_epoch * int(config["epochs"])


def describe(cost: Estimate, workers: int) -> str:
    """One line for `sweep plan`."""
    return (
        f"estimate (rough, no early stop): up to {_bytes(cost.largest_run_bytes)} per run; "
        f"{_seconds(cost.cpu_seconds)} of CPU, about {_seconds(cost.wall_seconds(workers))} "
        f"on {workers} worker(s)"
    )


def too_big(cost: Estimate, workers: int) -> str | None:
    """Why the sweep cannot run here (one run exceeds the memory); None when it can."""
    memory = physical_memory()
    if memory is None or cost.largest_run_bytes <= memory:
        return None
    return (
        f"its largest run needs about {_bytes(cost.largest_run_bytes)}, more than this "
        f"machine's {_bytes(memory)} of memory; use fewer or smaller hidden layers, fewer "
        "epochs or a smaller batch_size"
    )


def crowded(cost: Estimate, workers: int) -> str | None:
    """A warning when the workers' runs together would not fit in memory at once."""
    memory = physical_memory()
    together = cost.largest_run_bytes * max(1, min(workers, cost.runs))
    if memory is None or together <= memory:
        return None
    return (
        f"warning: {workers} worker(s) x {_bytes(cost.largest_run_bytes)} per run is more "
        f"than this machine's {_bytes(memory)}; fewer --workers would avoid swapping"
    )


def _bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} TB"


def _seconds(s: float) -> str:
    if s < 60:
        return f"{s:.2g} s"
    if s < 3600:
        return f"{s / 60:.2g} min"
    if s < 86400:
        return f"{s / 3600:.2g} h"
    return f"{s / 86400:.3g} days"
