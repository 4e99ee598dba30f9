"""`bplab compare`: two configurations paired by seed, with a bootstrap CI and a Wilcoxon test.

Runs are selected by key=value filters on their configuration and paired by seed: the
same seed gives both configurations the same initial-weight draw (for equal shapes), so
the paired difference removes most of the seed-to-seed spread that an unpaired test would
have to see through.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml
from scipy import stats

from service.output import format_cell
from service.results import PENDING, param_value

FINISHED = ("succeeded", "diverged")
# metric -> (what it is called in a sentence, whether lower is better)
METRICS: dict[str, tuple[str, bool]] = {
    "final_loss": ("final loss", True),
    "solved_epoch": ("epochs to reach the criterion", True),
    "best_loss": ("best loss", True),
    "accuracy": ("final accuracy", False),
    "val_loss": ("validation loss", True),
    "val_accuracy": ("validation accuracy", False),
    "epochs_run": ("epochs run", True),
    "wall_time_s": ("wall time", True),
}
DEFAULT_METRICS = ("final_loss", "solved_epoch")
ALPHA = 0.05
N_RESAMPLES = 9999


class CompareError(ValueError):
    """A selection that cannot be compared: the message says why and what to change."""


# --- selecting runs ------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """A range filter, ``learning_rate<0.3``: the parameter's value compared with a number."""

    op: str  # <, <=, >, >=, !=
    value: Any


_COMPARE = {
    "<": lambda x, y: x < y,
    "<=": lambda x, y: x <= y,
    ">": lambda x, y: x > y,
    ">=": lambda x, y: x >= y,
}
_CONDITION = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|!=|==|=|<|>)(.*)$", re.DOTALL)


def parse_filters(text: str | None) -> dict[str, Any]:
    """'learning_rate=0.5,hidden=4-4' -> {"learning_rate": 0.5, "hidden": "4-4"}.

    Values are read as YAML scalars (0.5, 2, true, sse) and may be written as the tables print
    them (1.000e-04, 4-4, yes, -); commas inside [...] do not split. ``<``, ``<=``, ``>``,
    ``>=`` and ``!=`` instead of ``=`` give a Bound: 'learning_rate<0.3,hidden!=2'.
    """
    if not text:
        return {}
    out: dict[str, Any] = {}
    for part in re.split(r",(?![^\[]*\])", text):
        found = _CONDITION.match(part)
        if not found:
            raise CompareError(
                f"{part.strip()!r} is not key=value (e.g. learning_rate=0.5) nor a range"
                " (e.g. learning_rate<0.3)"
            )
        key, op, raw = found.group(1), found.group(2), found.group(3).strip()
        value = _scalar(raw)
        if op in _COMPARE and not isinstance(_normal(key, value), float):
            raise CompareError(f"{part.strip()!r}: {op} needs a number after it")
        out[key] = value if op in ("=", "==") else Bound(op, value)
    return out


def _scalar(raw: str) -> Any:
    if raw in ("-", "none", "null", "~"):  # how the tables print a missing value
        return None
    if not raw:
        return ""
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


def _normal(name: str, value: Any) -> Any:
    """A value in the form filters and configurations are compared in."""
    if name == "hidden":
        if isinstance(value, list):
            return "-".join(str(int(v)) for v in value) or "none"
        return "none" if value in (None, "") else str(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)  # YAML 1.1 reads 1e-3 as text
        except ValueError:
            return value
    return value


def _equal(name: str, have: Any, want: Any) -> bool:
    a, b = _normal(name, have), _normal(name, want)
    if a == b:
        return True
    # A number as a table printed it (0.1235 for 0.123456) names the value it was printed from.
    if isinstance(a, float) and isinstance(b, float):
        return format_cell(a) == format_cell(b)
    return False


def _holds(name: str, have: Any, want: Any) -> bool:
    if not isinstance(want, Bound):
        return _equal(name, have, want)
    if want.op == "!=":
        return not _equal(name, have, want.value)
    a, b = _normal(name, have), _normal(name, want.value)
    if not isinstance(a, float) or isinstance(a, bool) or not isinstance(b, float):
        return False
    return bool(_COMPARE[want.op](a, b))


def matches(config: Mapping[str, Any], filters: Mapping[str, Any]) -> bool:
    return all(_holds(k, config.get(k), v) for k, v in filters.items())


def select(
    runs: Sequence[dict[str, Any]], filters: Mapping[str, Any], side: str, text: str
) -> list[dict[str, Any]]:
    """The runs matching filters, with at most one configuration per seed (else CompareError)."""
    allowed = sorted({k for r in runs for k in r["config"]})
    unknown = [k for k in filters if k not in allowed]
    if unknown:
        raise CompareError(
            f"--{side.lower()}: unknown parameter {unknown[0]!r}; allowed: {', '.join(allowed)}"
        )
    chosen = [r for r in runs if matches(r["config"], filters)]
    if not chosen:
        raise CompareError(f"--{side.lower()} {text!r} matches no run")
    by_seed: dict[int, list[dict[str, Any]]] = {}
    for r in chosen:
        by_seed.setdefault(r["seed"], []).append(r)
    crowded = max(by_seed.values(), key=len)
    if len(crowded) > 1:
        differ = [
            k for k in allowed if len({str(param_value(r["config"], k)) for r in crowded}) > 1
        ]
        example = f"{differ[0]}={param_value(crowded[0]['config'], differ[0])}" if differ else ""
        example = f"{text},{example}" if text else example
        raise CompareError(
            f"--{side.lower()} {text!r} leaves {len(crowded)} configurations for seed"
            f" {crowded[0]['seed']} (they differ in {', '.join(differ)}); add a filter"
            f" such as {example!r} so that each seed has one run"
        )
    return chosen


# --- statistics ----------------------------------------------------------------------


def _bootstrap_ci(d: np.ndarray, seed: int) -> tuple[float | None, float | None]:
    """95% CI of the mean of paired differences: BCa, falling back to percentile."""
    if d.size < 2:
        return None, None
    if np.all(d == d[0]):
        return float(d[0]), float(d[0])  # every resample has the same mean
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap(
                (d,),
                np.mean,
                n_resamples=N_RESAMPLES,
                confidence_level=0.95,
                method=method,
                random_state=np.random.default_rng(seed),
            )
        low, high = res.confidence_interval
        if np.isfinite(low) and np.isfinite(high):
            return float(low), float(high)
    return None, None


def _wilcoxon(d: np.ndarray) -> tuple[float | None, float | None]:
    if d.size == 0:
        return None, None
    if np.all(d == 0):
        return 0.0, 1.0  # identical in every pair: no evidence of a difference
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.wilcoxon(d)
    return float(res.statistic), float(res.pvalue)


def _value(run: Mapping[str, Any], metric: str) -> float | None:
    v = run.get(metric)
    if v is None or (metric != "solved_epoch" and run["status"] not in FINISHED):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def compare_metric(
    pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]], metric: str, seed: int = 0
) -> dict[str, Any]:
    """Paired statistics of A - B for one metric over the pairs where both have a value."""
    values = [(_value(a, metric), _value(b, metric)) for a, b in pairs]
    used = [(x, y) for x, y in values if x is not None and y is not None]
    a = np.array([x for x, _ in used], dtype=float)
    b = np.array([y for _, y in used], dtype=float)
    d = a - b
    low, high = _bootstrap_ci(d, seed)
    statistic, p = _wilcoxon(d)
    label, lower_better = METRICS[metric]
    return {
        "metric": metric,
        "label": label,
        "lower_is_better": lower_better,
        "n_pairs": int(d.size),
        "left_out": len(pairs) - int(d.size),
        "a_median": float(np.median(a)) if a.size else None,
        "b_median": float(np.median(b)) if b.size else None,
        "a_mean": float(a.mean()) if a.size else None,
        "b_mean": float(b.mean()) if b.size else None,
        "mean_diff": float(d.mean()) if d.size else None,
        "ci_low": low,
        "ci_high": high,
        "wilcoxon_w": statistic,
        "p_value": p,
    }


def compare(
    a_runs: Sequence[dict[str, Any]],
    b_runs: Sequence[dict[str, Any]],
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    seed: int = 0,
) -> dict[str, Any]:
    """Pair A's and B's runs by seed and compare them on each metric."""
    a_by = {r["seed"]: r for r in a_runs}
    b_by = {r["seed"]: r for r in b_runs}
    if {r["id"] for r in a_runs} & {r["id"] for r in b_runs}:
        raise CompareError("A and B select the same runs; make the filters differ")
    seeds = sorted(a_by.keys() & b_by.keys())
    if not seeds:
        raise CompareError("A and B have no seed in common, so there is nothing to pair")
    pending = [s for s in seeds if a_by[s]["status"] in PENDING or b_by[s]["status"] in PENDING]
    pairs = [(a_by[s], b_by[s]) for s in seeds if s not in pending]
    solved_a = sum(1 for a, _ in pairs if a.get("solved_epoch") is not None)
    solved_b = sum(1 for _, b in pairs if b.get("solved_epoch") is not None)
    both = sum(
        1
        for a, b in pairs
        if a.get("solved_epoch") is not None and b.get("solved_epoch") is not None
    )
    rows = [compare_metric(pairs, m, seed) for m in metrics]
    result = {
        "pairs": len(pairs),
        "pending_pairs": len(pending),
        "a_only_seeds": sorted(a_by.keys() - b_by.keys()),
        "b_only_seeds": sorted(b_by.keys() - a_by.keys()),
        "solved": {"a": solved_a, "b": solved_b, "both": both, "of": len(pairs)},
        "metrics": rows,
    }
    result["summary"] = summary_lines(result)
    return result


# --- words ---------------------------------------------------------------------------


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4g}"


def _p(p: float) -> str:
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def sentence(row: Mapping[str, Any]) -> str:
    """The plain-language reading of one metric's comparison."""
    metric, label, n = row["metric"], row["label"], row["n_pairs"]
    if n == 0:
        return f"{label}: no pair of runs where both have a value, so no comparison."
    a_med, b_med, p = row["a_median"], row["b_median"], row["p_value"]
    ci = (
        f"95% CI of the mean difference {_num(row['ci_low'])} to {_num(row['ci_high'])}"
        if row["ci_low"] is not None
        else "no CI from a single pair"
    )
    detail = f"(median {_num(a_med)} vs {_num(b_med)}; {ci}; Wilcoxon {_p(p)}, n = {n} pairs)"
    if row["mean_diff"] == 0:
        return f"No difference in {label} between A and B {detail}"
    a_lower = row["mean_diff"] < 0
    pct = abs(a_med - b_med) / abs(b_med) * 100 if b_med and a_med != b_med else None
    amount = f"{pct:.0f}% " if pct is not None else ""
    if metric == "solved_epoch":
        claim = f"A reaches the criterion in {amount}{'fewer' if a_lower else 'more'} epochs than B"
    else:
        better = "better" if a_lower == row["lower_is_better"] else "worse"
        claim = f"A has a {amount}{'lower' if a_lower else 'higher'} {label} than B ({better})"
    if p < ALPHA:
        return f"{claim} {detail}"
    # The smallest two-sided p the exact test can give with n pairs is 2 / 2**n.
    too_few = f"; {n} pairs cannot reach p < {ALPHA}" if 2 / 2**n >= ALPHA else ""
    return f"{claim}, but the difference is not significant at the 5% level{too_few} {detail}"


def summary_lines(result: Mapping[str, Any]) -> list[str]:
    lines = [sentence(row) for row in result["metrics"]]
    s = result["solved"]
    if any(row["metric"] == "solved_epoch" for row in result["metrics"]):
        lines.append(
            f"Reached the criterion: A {s['a']} of {s['of']} seeds, B {s['b']} of {s['of']};"
            f" runs that never did are left out of the epoch comparison ({s['both']} pairs"
            " where both did)."
        )
    loss_rows = [r for r in result["metrics"] if r["metric"] != "solved_epoch" and r["left_out"]]
    for row in loss_rows:
        lines.append(
            f"{row['left_out']} pair(s) left out of the {row['label']} comparison: a run did not"
            " finish with a finite value (failed, cancelled, pruned or diverged)."
        )
    if result["pending_pairs"]:
        lines.append(
            f"{result['pending_pairs']} seed(s) left out: a run is still queued or running."
        )
    unpaired = len(result["a_only_seeds"]) + len(result["b_only_seeds"])
    if unpaired:
        lines.append(f"{unpaired} seed(s) have a run on one side only and are left out.")
    return lines
