"""Sweep specs: load a YAML/JSON file, validate all of it, expand it into runs.

    spec = load_spec("examples/xor.yaml")      # raises SpecError: "<file>: <field>: <message>"
    spec.count_runs(), spec.estimate_epochs()  # cheap, for `bplab sweep plan`
    for run in spec.expand():                  # RunSpec(config, seed, config_index)
        ...

Nothing here writes anything; the caller stores spec.spec_dict and the runs.
"""

from .errors import SpecError
from .loader import load_spec
from .parameters import DEFAULTS, PARAMETERS, Parameter, defaults_table
from .sweep import RunSpec, SweepSpec
from .validate import DEFAULT_MAX_RUNS, parse_spec

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
