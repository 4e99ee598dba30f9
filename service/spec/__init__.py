"""Sweep specs: load a YAML/JSON file, validate all of it, expand it into runs.

    spec = load_spec("examples/xor.yaml")      # raises SpecError: "<file>: <field>: <message>"
    spec.count_runs(), spec.estimate_epochs()  # cheap, for `bplab sweep plan`
    for run in spec.expand():                  # RunSpec(config, seed, config_index)
        ...

Nothing here writes anything; the caller stores spec.spec_dict and the runs.
"""

from .errors import SpecError
from .loader import DEFAULT_MAX_RUNS, load_spec, parse_spec
from .parameters import DEFAULTS, PARAMETERS, Parameter, defaults_table
from .sweep import RunSpec, SweepSpec

__all__ = [
    "DEFAULTS",
    "DEFAULT_MAX_RUNS",
    "PARAMETERS",
    "Parameter",
    "RunSpec",
    "SpecError",
    "SweepSpec",
    "defaults_table",
    "load_spec",
    "parse_spec",
]
