"""Model-based search: Optuna's samplers asked for configurations, recorded as runs.

- spec: the adaptive spec keys (method tpe | gp | cmaes, metric, run_cap), validated.
- space: the swept axes as Optuna distributions, and a sampler's params as a run config.
- objective: a configuration's value, aggregated over its seeds, from its runs.
- study: the samplers, and the in-memory study rebuilt from the database.
- driver: the ask / record / train / tell loop, one driver per sweep through a lease.
- backends: where the runs train (a local process pool, or Celery workers).
- history: the configurations in the order tried, best so far, the winner.
"""
