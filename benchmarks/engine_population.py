"""The population rows of benchmarks/engine.py (issue 8): K networks at once against the
same networks one after another; see that module's docstring."""

from __future__ import annotations

import contextlib
import statistics
import time

import numpy as np

from engine import Network, TrainConfig, load_dataset, train, train_population

POPULATION = [
    dict(name="P1 xor 2-2-1 full", data="xor", sizes=[2, 2, 1], lr=0.5, epochs=2000),
    dict(name="P2 symmetry 6-2-1 full", data="symmetry:6", sizes=[6, 2, 1], lr=0.1, epochs=1000),
]


def _members(p: dict, K: int, offset: int = 0) -> tuple[list, list, list]:
    nets, rngs, cfgs = [], [], []
    for k in range(offset, offset + K):
        rng = np.random.default_rng(k)
        nets.append(Network(p["sizes"], rng=rng))
        rngs.append(rng)
        cfgs.append(
            TrainConfig(learning_rate=p["lr"] * (0.5 + k / 256), momentum=0.9, epochs=p["epochs"])
        )
    return nets, rngs, cfgs


def population_row(p: dict, K: int, singles: int, repeats: int, layouts: bool = False) -> dict:
    """Per-network epochs/s: ``singles`` nets one by one vs K at once, alternating.

    The ratio is of the best rates (as timeit takes the minimum): this VM's speed moves by up
    to 3x within minutes (one multiply of 16,384 numbers: 4.6 us, then 13 us a minute later),
    so a median of one side taken at other moments than the other's swings the ratio by a
    fifth. The best of alternating repeats is each side at the machine's quiet moments. The
    medians and their ratio are reported too. ``layouts``: the population is also timed with
    the member-major layout forced, in the same alternation (``layout_ratio``: default /
    member-major).
    """
    d = load_dataset(p["data"])
    single_rates, pop_rates, major_rates = [], [], []
    for _ in range(repeats):
        nets, rngs, cfgs = _members(p, singles)
        t = time.perf_counter()
        for net, rng, cfg in zip(nets, rngs, cfgs, strict=True):
            train(net, d.X, d.Y, cfg, rng=rng)
        single_rates.append(singles * p["epochs"] / (time.perf_counter() - t))
        pnets, prngs, pcfgs = _members(p, K)
        t = time.perf_counter()
        train_population(pnets, d.X, d.Y, pcfgs, rngs=prngs)
        pop_rates.append(K * p["epochs"] / (time.perf_counter() - t))
        if layouts:
            with _member_major():
                mnets, mrngs, mcfgs = _members(p, K)
                t = time.perf_counter()
                train_population(mnets, d.X, d.Y, mcfgs, rngs=mrngs)
                major_rates.append(K * p["epochs"] / (time.perf_counter() - t))
    identical = all(np.array_equal(a.theta, b.theta) for a, b in zip(nets, pnets, strict=False))
    single, pop = max(single_rates), max(pop_rates)
    single_med, pop_med = statistics.median(single_rates), statistics.median(pop_rates)
    return {
        "workload": p["name"],
        "members": K,
        "epochs": p["epochs"],
        "single_net_epochs_per_s": single,
        "population_net_epochs_per_s": pop,
        "ratio": pop / single,
        "median_single_net_epochs_per_s": single_med,
        "median_population_net_epochs_per_s": pop_med,
        "ratio_of_medians": pop_med / single_med,
        "identical_to_single": identical,
        **_layout_figures(pop_rates, major_rates),
    }


@contextlib.contextmanager
def _member_major():
    """Force the member-major layout (``engine.stacked``) where the population would pick
    another one (``engine.minor``'s ``fits``), for the --layouts comparison."""
    import engine.population as population

    fits = getattr(population, "fits", None)
    if fits is None:  # only one layout: nothing to force
        yield
        return
    population.fits = lambda *args: None
    try:
        yield
    finally:
        population.fits = fits


def _layout_figures(pop_rates: list[float], major_rates: list[float]) -> dict:
    """The default layout against member-major forced, best and median rates."""
    if not major_rates:
        return {}
    best, med = max(pop_rates), statistics.median(pop_rates)
    return {
        "member_major_net_epochs_per_s": max(major_rates),
        "median_member_major_net_epochs_per_s": statistics.median(major_rates),
        "layout_ratio": best / max(major_rates),
        "layout_ratio_of_medians": med / statistics.median(major_rates),
    }
