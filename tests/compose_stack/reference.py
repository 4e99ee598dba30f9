"""Clean, uninterrupted runs trained inside the bplab image: what the stack's results must equal.

The same code as tests/faults/harness.py's reference(), run by the image's own Python and NumPy
(`docker run -i bplab:latest python -c SCRIPT`, the runs on stdin, the results on stdout):
bit-identity is promised between runs on one software stack, and this host's Python and libm
are not the image's. Metrics come back as float.hex() of the recorded epochs only; weights as
the sha256 of each array's bytes.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

SCRIPT = r"""
import hashlib, json, sys
import numpy as np
from engine import TrainConfig, train
from service.datasets import training_data
from service.networks import network_from_config

def hexed(v):
    return None if v is None else float(v).hex()

out = {}
for job in json.load(sys.stdin):
    config, seed = job["config"], job["seed"]
    every, last = config["log_every"], config["epochs"]
    X, Y, validation = training_data(config, seed)
    rng = np.random.default_rng(seed)
    net = network_from_config(config, X.shape[1], Y.shape[1], rng)
    kept = {}
    def on_epoch(epoch, m):
        if epoch % every == 0 or epoch == last:
            kept[epoch] = [hexed(m["loss"]), hexed(m["accuracy"]), hexed(m["max_error"])]
    train(net, X, Y, TrainConfig.from_dict(config), rng=rng, validation=validation,
          on_epoch=on_epoch)
    out[job["id"]] = {
        "metrics": kept,
        "weights": [hashlib.sha256(np.ascontiguousarray(p).tobytes()).hexdigest()
                    for p in net.params],
    }
json.dump(out, sys.stdout)
"""


def hexed(value: Any) -> str | None:
    return None if value is None else float(value).hex()


def weights_digest(params: list[np.ndarray]) -> list[str]:
    return [hashlib.sha256(np.ascontiguousarray(p).tobytes()).hexdigest() for p in params]


def jobs_json(runs: list[dict[str, Any]]) -> str:
    return json.dumps(
        [
            {
                "id": str(r["id"]),
                "seed": int(r["seed"]),
                "config": r["config"] if isinstance(r["config"], dict) else json.loads(r["config"]),
            }
            for r in runs
        ]
    )
