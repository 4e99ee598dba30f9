"""Validating a spec (a dict, as read from YAML or JSON) into a SweepSpec.

Everything is checked here, before the caller writes anything: the first problem
found is raised as a SpecError naming the file and the field.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from .architecture import check_architecture
from .checks import int_check, integer, positive_int, seed_check
from .combinations import check_combinations
from .datasets import check_dataset, input_width
from .early_terminate import check_early_terminate
from .errors import Invalid, SpecError, show, suggest, unknown_name
from .parameters import ALIASES, PARAMETERS, Parameter
from .sweep import DISTRIBUTIONS, Axis, Distribution, SweepSpec, draw_configs, value_key

DEFAULT_MAX_RUNS = 10_000
TOP_LEVEL = (
    "name",
    "dataset",
    "method",
    "samples",
    "sampler_seed",
    "seeds",
    "parameters",
    "metric",
    "run_cap",
    "targets",  # a csv's target columns (service.targets)
)
TOP_LEVEL = (*TOP_LEVEL, "early_terminate")  # issue 15: service/spec/early_terminate.py
METHODS = ("grid", "random", "tpe", "gp", "cmaes")  # the last three: service.search


def parse_spec(
    data: Any,
    *,
    source: str = "<spec>",
    max_runs: int = DEFAULT_MAX_RUNS,
    base_dir: str | Path | None = None,
    default_name: str | None = None,
) -> SweepSpec:
    """Validate a spec given as a dict; `source` names it in errors."""
    try:
        return _parse(
            data, max_runs, Path(base_dir) if base_dir else Path.cwd(), default_name or "sweep"
        )
    except Invalid as exc:
        raise SpecError(source, exc.field, exc.message) from None


def _check_top_level(data: Any) -> None:
    if data is None:
        raise Invalid("document", "is empty: a spec needs at least `dataset:`")
    if not isinstance(data, dict):
        raise Invalid(
            "document", f"must be a mapping of {', '.join(TOP_LEVEL)}, got {type(data).__name__}"
        )
    for key in data:
        if key not in TOP_LEVEL:
            hint = (
                f"{key!r} is a parameter: put it under parameters:"
                if key in PARAMETERS
                else suggest(str(key), TOP_LEVEL, ALIASES)
            )
            raise Invalid(
                str(key), unknown_name("key", None, TOP_LEVEL, keep_order=True, hint=hint)
            )


def _method_keys(
    data: dict[str, Any],
) -> tuple[str, int | None, int, int | None, dict[str, Any] | None]:
    """(method, samples, sampler_seed, run_cap, metric): the keys that belong to the method."""
    method = data.get("method", "grid")
    if method not in METHODS:
        raise Invalid("method", f"must be one of {', '.join(METHODS)}, got {show(method)}")
    from service.search import spec as adaptive  # the model-based methods' own keys

    samples: int | None = None
    sampler_seed = 0
    run_cap: int | None = None
    if method in adaptive.ADAPTIVE_METHODS:
        adaptive.check_sampler_installed(method)
        if "samples" in data:
            raise Invalid("samples", f"a {method} search takes run_cap, not samples")
        run_cap = adaptive.parse_run_cap(data, method)
        sampler_seed = seed_check(data.get("sampler_seed", 0), "sampler_seed")
    elif "run_cap" in data:
        raise Invalid("run_cap", "only used with method: tpe, gp or cmaes")
    metric = adaptive.parse_metric(data["metric"]) if "metric" in data else None
    if method == "random":
        if "samples" not in data:
            raise Invalid(
                "samples", "missing: a random sweep needs samples (how many configs to draw, >= 1)"
            )
        samples = positive_int(data["samples"], "samples")
        sampler_seed = seed_check(data.get("sampler_seed", 0), "sampler_seed")
    elif run_cap is None:
        for key in ("samples", "sampler_seed"):
            if key in data:
                raise Invalid(key, "only used with method: random (this sweep is a grid)")
    return method, samples, sampler_seed, run_cap, metric


def _parameter_axes(raw: Any, method: str) -> dict[str, Axis]:
    """Every parameter's axis, in the spec's order (the first varies slowest), defaults last."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise Invalid(
            "parameters", f"must be a mapping of parameter names to values, got {show(raw)}"
        )
    for key in raw:
        if key not in PARAMETERS:
            hint = (
                f"{key!r} is a top-level key, not a parameter"
                if key in TOP_LEVEL
                else suggest(str(key), PARAMETERS, ALIASES)
            )
            message = unknown_name("parameter", None, PARAMETERS, keep_order=True, hint=hint)
            raise Invalid(f"parameters.{key}", message)
    axes = {key: _axis(PARAMETERS[key], raw[key], method) for key in raw}
    for name_, param in PARAMETERS.items():
        axes.setdefault(name_, Axis(name_, (param.check(param.default, f"parameters.{name_}"),)))
    if True in axes["stop_on_solve"].values and None in axes["stop_within"].values:
        raise Invalid(
            "parameters.stop_on_solve", "true needs stop_within (a tolerance > 0), which is null"
        )
    return axes


def _parse(data: Any, max_runs: int, base_dir: Path, default_name: str) -> SweepSpec:
    _check_top_level(data)
    # `name:` left empty (null) means the default, as if the key were absent.
    data = {key: value for key, value in data.items() if value is not None}
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name.strip():
        raise Invalid(
            "name",
            f"must be a non-empty string (quote it if it looks like a number), got {show(name)}",
        )
    dataset = check_dataset(data.get("dataset"), base_dir)
    from service.targets import apply_targets

    plain_dataset = dataset
    dataset, targets = apply_targets(data, dataset)

    method, samples, sampler_seed, run_cap, metric = _method_keys(data)
    seeds = _seeds(data.get("seeds", 1), max_runs)
    axes = _parameter_axes(data.get("parameters"), method)
    _check_groups(axes, dataset)
    check_combinations(axes, dataset)
    check_architecture(axes, dataset)
    if run_cap is not None:
        from service.search import spec as adaptive

        metric = metric or adaptive.default_metric()
        adaptive.check_metric_recorded(metric, axes)

    axes_t = tuple(axes.values())
    drawn = None
    if samples is not None:
        _check_count(samples, len(seeds), max_runs, "samples")
        drawn = draw_configs(dataset, axes_t, samples, sampler_seed)
    spec_dict: dict[str, Any] = {"name": name, "dataset": plain_dataset, "method": method}
    if targets is not None:
        spec_dict["targets"] = targets
    if samples is not None:
        spec_dict.update(samples=samples, sampler_seed=sampler_seed)
    if run_cap is not None:
        spec_dict.update(run_cap=run_cap, sampler_seed=sampler_seed)
    if metric is not None:
        spec_dict["metric"] = metric
    spec_dict["seeds"] = list(seeds)
    spec_dict["parameters"] = {axis.name: axis.spec_form() for axis in axes_t}
    if "early_terminate" in data:
        spec_dict["early_terminate"] = check_early_terminate(data["early_terminate"], axes)
    spec = SweepSpec(
        name=name,
        dataset=dataset,
        method=method,
        samples=samples,
        seeds=seeds,
        parameters=copy.deepcopy(spec_dict["parameters"]),
        swept=[axis.name for axis in axes_t if axis.varies],
        spec_dict=spec_dict,
        axes=axes_t,
        drawn=drawn,
        run_cap=run_cap,
    )
    _check_count(spec.count_configs(), len(seeds), max_runs, "configs")
    return spec


def _check_groups(axes: dict[str, Axis], dataset: str) -> None:
    """input_groups and group_hidden: set together, paired, fitting the data and hidden[0]."""
    (groups,) = axes["input_groups"].values
    (blocks,) = axes["group_hidden"].values
    if groups is None and blocks is None:
        return
    if groups is None or blocks is None:
        missing = "input_groups" if groups is None else "group_hidden"
        raise Invalid(
            f"parameters.{missing}",
            "missing: input_groups and group_hidden go together (e.g. input_groups: [24, 12] "
            "with group_hidden: [6, 6])",
        )
    if len(groups) != len(blocks):
        raise Invalid(
            "parameters.group_hidden",
            f"needs one block per input group: {len(groups)} input groups, got {len(blocks)} "
            f"blocks {blocks}",
        )
    width = input_width(dataset)
    if width is not None and sum(groups) != width:
        raise Invalid(
            "parameters.input_groups",
            f"{groups} add up to {sum(groups)}, but {dataset} has {width} inputs",
        )
    axis = axes["hidden"]
    for hidden in axis.values if axis.distribution is None else ():
        if not hidden or hidden[0] != sum(blocks):
            first = hidden[0] if hidden else "no hidden layer"
            raise Invalid(
                "parameters.group_hidden",
                f"{blocks} add up to {sum(blocks)}, but the first hidden layer is {first} "
                f"(hidden: {hidden}); they must be equal",
            )
    if axis.distribution is not None:
        raise Invalid(
            "parameters.hidden",
            "cannot be drawn from a distribution with group_hidden (hidden[0] must equal "
            "sum(group_hidden))",
        )


def _check_count(configs: int, seeds: int, max_runs: int, what: str) -> None:
    runs = configs * seeds
    if runs < 1:
        raise Invalid("runs", "the sweep expands to 0 runs")
    if runs > max_runs:
        raise Invalid(
            "runs",
            f"the sweep expands to {configs} {what} x {seeds} seeds = {runs} runs, more than the "
            f"limit of {max_runs}; sweep fewer values or raise the limit with --max-runs",
        )


def _seeds(value: Any, max_runs: int) -> list[int]:
    if isinstance(value, list):
        if not value:
            raise Invalid(
                "seeds", "empty list: give a count n >= 1 or a list of distinct ints >= 0"
            )
        seeds: list[int] = []
        for i, item in enumerate(value):
            seed = seed_check(item, f"seeds[{i}]")
            if seed in seeds:
                raise Invalid(f"seeds[{i}]", f"duplicate seed {seed}; seeds must be distinct")
            seeds.append(seed)
        return seeds
    if isinstance(value, int | float) and not isinstance(value, bool):
        # bounded before the range is built: `seeds: 1e12` must not fill the memory first
        return list(range(int_check(1, max_runs)(value, "seeds")))
    raise Invalid(
        "seeds",
        f"must be a count n >= 1 (seeds 0..n-1) or a list of distinct ints >= 0, got {show(value)}",
    )


def _axis(param: Parameter, raw: Any, method: str) -> Axis:
    field = f"parameters.{param.name}"
    if not param.sweepable:
        if isinstance(raw, dict) and raw.keys() & {"values", "distribution"}:
            raise Invalid(field, "is one fixed value and cannot be swept")
        return Axis(param.name, (param.check(raw, field),))
    if isinstance(raw, dict):
        if "values" in raw:
            extra = sorted(str(k) for k in raw if k != "values")
            if extra:
                raise Invalid(
                    f"{field}.{extra[0]}", "unknown key: {values: [...]} takes nothing else"
                )
            if not isinstance(raw["values"], list):
                raise Invalid(f"{field}.values", f"must be a list, got {show(raw['values'])}")
            return _choices(param, raw["values"], f"{field}.values")
        if "distribution" in raw:
            return Axis(param.name, distribution=_distribution(param, raw, method, field))
        key = str(next(iter(raw), ""))
        hint = suggest(key, ("values", "distribution")) if key else ""
        shapes = "{values: [...]} or {distribution: uniform|log_uniform|int_uniform, min, max}"
        head = ("unknown key" if key else "empty mapping") + (f"; {hint}" if hint else "")
        raise Invalid(f"{field}.{key}" if key else field, f"{head} (a mapping here is {shapes})")
    if isinstance(raw, list):
        return _choices(param, raw, field)
    return Axis(param.name, (param.check(raw, field),))


def _choices(param: Parameter, items: list[Any], field: str) -> Axis:
    if not items:
        hint = "; for no hidden layer write [[]]" if param.name == "hidden" else ""
        raise Invalid(field, f"empty list: give at least one value{hint}")
    values: dict[str, Any] = {}
    for i, item in enumerate(items):
        value = param.check(item, f"{field}[{i}]")
        values.setdefault(value_key(value), value)  # duplicates run once
    return Axis(param.name, tuple(values.values()))


def _distribution(param: Parameter, raw: dict[str, Any], method: str, field: str) -> Distribution:
    for key in raw:
        if key not in ("distribution", "min", "max"):
            raise Invalid(
                f"{field}.{key}",
                unknown_name("key", None, ("distribution", "min", "max"), keep_order=True),
            )
    if method == "grid":
        raise Invalid(
            field,
            "a distribution needs method: random, tpe, gp or cmaes (this sweep is a grid); "
            "use a list of values",
        )
    if param.numeric is None or param.bound_check is None:
        raise Invalid(
            field, "a distribution draws numbers; use a list of choices for this parameter"
        )
    kind = raw["distribution"]
    if kind not in DISTRIBUTIONS:
        message = (
            unknown_name("distribution", kind, DISTRIBUTIONS)
            if isinstance(kind, str)
            else (f"must be one of {', '.join(DISTRIBUTIONS)}, got {show(kind)}")
        )
        raise Invalid(f"{field}.distribution", message)
    bounds = []
    for key in ("min", "max"):
        if key not in raw:
            raise Invalid(f"{field}.{key}", f"missing: {kind} needs min and max")
        bound = param.bound_check(raw[key], f"{field}.{key}")
        if kind == "int_uniform" or param.numeric == "int":
            bound = integer(raw[key], f"{field}.{key}")
        bounds.append(bound)
    low, high = bounds
    if low > high:
        raise Invalid(field, f"min ({low:g}) must be <= max ({high:g})")
    if kind == "log_uniform" and low <= 0:
        raise Invalid(f"{field}.min", f"log_uniform needs min > 0, got {low:g}")
    return Distribution(kind, low, high)
