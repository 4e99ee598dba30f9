"""bplab's backpropagation engine (Rumelhart, Hinton & Williams 1986), NumPy only, no I/O.

Name tables (name -> description) list every valid choice; an unknown name
anywhere is a ValueError listing them.
"""

from .activations import ACTIVATIONS, OUTPUT_ACTIVATIONS
from .config import EPOCH_METRICS, TRAINING_DEFAULTS, TrainConfig
from .control import OUTCOMES, PopulationCallback, StopTraining
from .costs import COSTS
from .datasets import DATASETS, Dataset, load_dataset
from .dtypes import DTYPES
from .history import History
from .initializers import INITS
from .masks import group_mask
from .network import Network
from .optimizers import OPTIMIZERS
from .population import train_population
from .recurrent import RecurrentNetwork
from .state import TrainState
from .tied import TiedNetwork
from .training import train

__all__ = [
    "ACTIVATIONS",
    "COSTS",
    "DATASETS",
    "DTYPES",
    "EPOCH_METRICS",
    "TRAINING_DEFAULTS",
    "INITS",
    "OPTIMIZERS",
    "OUTCOMES",
    "OUTPUT_ACTIVATIONS",
    "Dataset",
    "History",
    "Network",
    "PopulationCallback",
    "RecurrentNetwork",
    "StopTraining",
    "TrainConfig",
    "TiedNetwork",
    "TrainState",
    "group_mask",
    "load_dataset",
    "train",
    "train_population",
]
