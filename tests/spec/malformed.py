"""Malformed sweep specs, shared by the spec tests and the CLI tests.

Each case is (id, spec, field): `spec` is YAML text (write it to a .yaml file) or a
dict (write it as JSON to a .json file); write_case() does either. Loading it must
raise SpecError whose field contains `field` (the CLI: exit 2, the message names the
field, nothing written). csv/npz paths are relative to the spec's directory and do
not exist there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Case = tuple[str, "str | dict[str, Any]", str]


def _grid(**params: Any) -> dict[str, Any]:
    return {"dataset": "xor", "parameters": params}


def _random(**params: Any) -> dict[str, Any]:
    return {"dataset": "xor", "method": "random", "samples": 4, "parameters": params}


CASES: list[Case] = [
    # The document itself.
    ("yaml_unclosed_list", "dataset: xor\nparameters:\n  learning_rate: [0.1, 0.5\n", "line 4"),
    (
        "yaml_bad_indent",
        "dataset: xor\nparameters:\n learning_rate: 0.1\n  momentum: 0.9\n",
        "line 4",
    ),
    ("yaml_tab_indent", "dataset: xor\nparameters:\n\tlearning_rate: 0.1\n", "line 3"),
    ("yaml_duplicate_key", "dataset: xor\nparameters:\n  epochs: 10\n  epochs: 20\n", "line 4"),
    ("yaml_python_tag", "dataset: !!python/object/apply:os.getcwd []\n", "line 1"),
    ("document_empty", "", "document"),
    ("document_list", "- dataset: xor\n- dataset: parity:2\n", "document"),
    ("document_scalar", "xor\n", "document"),
    # Top-level keys.
    ("unknown_top_level_key", "dataset: xor\nseed: 3\n", "seed"),
    ("parameter_at_top_level", "dataset: xor\nlearning_rate: 0.1\n", "learning_rate"),
    ("name_empty", 'name: ""\ndataset: xor\n', "name"),
    ("parameters_not_mapping", "dataset: xor\nparameters: [0.1, 0.5]\n", "parameters"),
    (
        "unknown_parameter",
        "dataset: xor\nparameters:\n  lerning_rate: 0.1\n",
        "parameters.lerning_rate",
    ),
    ("method_unknown", "dataset: xor\nmethod: bayes\n", "method"),
    # Datasets.
    ("dataset_missing", "parameters:\n  epochs: 10\n", "dataset"),
    ("dataset_unknown", "dataset: xnor\n", "dataset"),
    ("dataset_not_string", {"dataset": 3}, "dataset"),
    ("dataset_size_zero", "dataset: parity:0\n", "dataset"),
    ("dataset_size_not_int", "dataset: symmetry:six\n", "dataset"),
    ("dataset_symmetry_too_small", "dataset: symmetry:1\n", "dataset"),
    ("dataset_argument_on_plain", "dataset: xor:2\n", "dataset"),
    ("dataset_csv_missing", "dataset: csv:missing.csv\n", "dataset"),
    ("dataset_npz_missing", "dataset: npz:data/none.npz\n", "dataset"),
    ("dataset_csv_no_path", "dataset: 'csv:'\n", "dataset"),
    # Seeds and random-sweep keys.
    ("seeds_zero", "dataset: xor\nseeds: 0\n", "seeds"),
    ("seeds_bool", "dataset: xor\nseeds: true\n", "seeds"),
    ("seeds_string", {"dataset": "xor", "seeds": "five"}, "seeds"),
    ("seeds_empty_list", "dataset: xor\nseeds: []\n", "seeds"),
    ("seeds_negative", "dataset: xor\nseeds: [3, -1]\n", "seeds[1]"),
    ("seeds_duplicate", "dataset: xor\nseeds: [3, 17, 3]\n", "seeds[2]"),
    ("random_without_samples", "dataset: xor\nmethod: random\n", "samples"),
    ("random_samples_zero", "dataset: xor\nmethod: random\nsamples: 0\n", "samples"),
    ("samples_in_grid", "dataset: xor\nsamples: 10\n", "samples"),
    ("sampler_seed_negative", {**_random(), "sampler_seed": -1}, "sampler_seed"),
    # Parameter values.
    ("learning_rate_negative", _grid(learning_rate=-0.1), "parameters.learning_rate"),
    ("learning_rate_zero_in_list", _grid(learning_rate=[0.1, 0]), "parameters.learning_rate[1]"),
    ("learning_rate_string", _grid(learning_rate="fast"), "parameters.learning_rate"),
    (
        "learning_rate_bool",
        "dataset: xor\nparameters:\n  learning_rate: true\n",
        "parameters.learning_rate",
    ),
    (
        "learning_rate_nan",
        "dataset: xor\nparameters:\n  learning_rate: .nan\n",
        "parameters.learning_rate",
    ),
    ("epochs_zero", _grid(epochs=0), "parameters.epochs"),
    ("epochs_fraction", _grid(epochs=10.5), "parameters.epochs"),
    ("epochs_bool", _grid(epochs=True), "parameters.epochs"),
    ("momentum_one", _grid(momentum=1.0), "parameters.momentum"),
    ("momentum_negative", _grid(momentum=-0.1), "parameters.momentum"),
    ("hidden_zero", _grid(hidden=0), "parameters.hidden"),
    ("hidden_layer_zero", _grid(hidden=[[4, 0]]), "parameters.hidden[0][1]"),
    ("hidden_empty_list", _grid(hidden=[]), "parameters.hidden"),
    ("hidden_string", _grid(hidden="two"), "parameters.hidden"),
    ("cost_unknown", _grid(cost="hinge"), "parameters.cost"),
    ("activation_typo", _grid(activation="sigmod"), "parameters.activation"),
    ("output_activation_unknown", _grid(output_activation="relu"), "parameters.output_activation"),
    ("optimizer_unknown", _grid(optimizer="rmsprop"), "parameters.optimizer"),
    ("epoch_metrics_unknown", _grid(epoch_metrics="after"), "parameters.epoch_metrics"),
    # issue 22: the floating-point type
    ("dtype_unknown", _grid(dtype="float16"), "parameters.dtype"),
    ("dtype_number", _grid(dtype=32), "parameters.dtype"),
    ("dtype_in_list", _grid(dtype=["float32", "double"]), "parameters.dtype[1]"),
    ("init_negative", _grid(init=-0.3), "parameters.init"),
    ("init_unknown", _grid(init="glorot"), "parameters.init"),
    ("batch_size_zero", _grid(batch_size=0), "parameters.batch_size"),
    ("batch_size_word", _grid(batch_size="all"), "parameters.batch_size"),
    ("weight_decay_negative", _grid(weight_decay=-0.01), "parameters.weight_decay"),
    ("decay_one", _grid(decay=1.0), "parameters.decay"),
    ("decay_negative", _grid(decay=-0.002), "parameters.decay"),
    ("decay_percent_string", "dataset: xor\nparameters:\n  decay: 0.2%\n", "parameters.decay"),
    ("decay_in_list", _grid(decay=[0.0, 1.2]), "parameters.decay[1]"),
    ("decay_biases_string", _grid(decay_biases="weights only"), "parameters.decay_biases"),
    ("error_margin_negative", _grid(error_margin=-0.2), "parameters.error_margin"),
    ("error_margin_one", _grid(error_margin=1), "parameters.error_margin"),
    ("error_margin_bool", _grid(error_margin=True), "parameters.error_margin"),
    ("skip_connections_string", _grid(skip_connections="maybe"), "parameters.skip_connections"),
    ("stop_loss_negative", _grid(stop_loss=-1), "parameters.stop_loss"),
    ("stop_within_zero", _grid(stop_within=0), "parameters.stop_within"),
    (
        "stop_on_solve_without_tolerance",
        _grid(stop_on_solve=True, stop_within=None),
        "parameters.stop_on_solve",
    ),
    ("validation_split_one", _grid(validation_split=1.0), "parameters.validation_split"),
    ("log_every_zero", _grid(log_every=0), "parameters.log_every"),
    # Per-run early stopping (patience, min_delta, restore_best).
    ("patience_negative", _grid(patience=-1), "parameters.patience"),
    ("patience_fraction", _grid(patience=2.5), "parameters.patience"),
    ("patience_boolean", "dataset: xor\nparameters:\n  patience: true\n", "parameters.patience"),
    ("patience_in_list", _grid(patience=[5, -3]), "parameters.patience[1]"),
    ("patience_too_large", _grid(patience=10**7), "parameters.patience"),
    ("min_delta_negative", _grid(min_delta=-0.001), "parameters.min_delta"),
    ("min_delta_word", _grid(min_delta="small"), "parameters.min_delta"),
    ("restore_best_string", _grid(restore_best="yes"), "parameters.restore_best"),
    (
        "patience_distribution_below_zero",
        _random(patience={"distribution": "int_uniform", "min": -2, "max": 10}),
        "parameters.patience.min",
    ),
    # Distributions and choices.
    (
        "distribution_in_grid",
        _grid(learning_rate={"distribution": "uniform", "min": 0.1, "max": 1}),
        "parameters.learning_rate",
    ),
    (
        "distribution_min_above_max",
        _random(learning_rate={"distribution": "uniform", "min": 1, "max": 0.1}),
        "parameters.learning_rate",
    ),
    (
        "log_uniform_min_zero",
        _random(weight_decay={"distribution": "log_uniform", "min": 0, "max": 0.1}),
        "parameters.weight_decay.min",
    ),
    (
        "distribution_unknown",
        _random(learning_rate={"distribution": "normal", "min": 0.1, "max": 1}),
        "parameters.learning_rate.distribution",
    ),
    (
        "distribution_missing_max",
        _random(learning_rate={"distribution": "uniform", "min": 0.1}),
        "parameters.learning_rate.max",
    ),
    (
        "distribution_extra_key",
        _random(learning_rate={"distribution": "uniform", "min": 0.1, "max": 1, "step": 0.1}),
        "parameters.learning_rate.step",
    ),
    (
        "distribution_on_choice",
        _random(cost={"distribution": "uniform", "min": 0, "max": 1}),
        "parameters.cost",
    ),
    (
        "int_uniform_fractional_bound",
        _random(epochs={"distribution": "int_uniform", "min": 10.5, "max": 100}),
        "parameters.epochs.min",
    ),
    (
        "distribution_bound_out_of_range",
        _random(momentum={"distribution": "uniform", "min": 0.5, "max": 1.5}),
        "parameters.momentum.max",
    ),
    ("values_not_list", _random(cost={"values": "sse"}), "parameters.cost.values"),
    (
        "mapping_without_values",
        _grid(learning_rate={"vals": [0.1]}),
        "parameters.learning_rate.vals",
    ),
    # Schedules.
    ("schedule_not_list", _grid(schedule={"until": 20, "momentum": 0.5}), "parameters.schedule"),
    ("schedule_missing_until", _grid(schedule=[{"momentum": 0.5}]), "parameters.schedule[0].until"),
    (
        "schedule_until_decreasing",
        _grid(schedule=[{"until": 20, "momentum": 0.5}, {"until": 10, "momentum": 0.7}]),
        "parameters.schedule[1].until",
    ),
    (
        "schedule_unknown_key",
        _grid(schedule=[{"until": 20, "lr": 0.1}]),
        "parameters.schedule[0].lr",
    ),
    (
        "schedule_bad_momentum",
        _grid(schedule=[{"until": 20, "momentum": 1.5}]),
        "parameters.schedule[0].momentum",
    ),
    # Size of the expansion (the default limit is 10,000 runs).
    (
        "grid_too_many_runs",
        {**_grid(learning_rate=[0.01 * i for i in range(1, 102)]), "seeds": 100},
        "runs",
    ),
    ("random_too_many_runs", {**_random(), "samples": 5000, "seeds": 3}, "runs"),
]


def write_case(directory: Path, spec: str | dict[str, Any], stem: str = "spec") -> Path:
    """Write one case's spec into `directory`; returns the file to load."""
    if isinstance(spec, str):
        path = directory / f"{stem}.yaml"
        path.write_text(spec, encoding="utf-8")
    else:
        path = directory / f"{stem}.json"
        path.write_text(json.dumps(spec), encoding="utf-8")
    return path
