"""Training loop (being written)."""


class StopTraining(Exception):  # noqa: N818 - the name is the public contract
    """Raise inside ``on_epoch`` to stop training (outcome "stopped")."""


class TrainConfig:
    pass


class History:
    pass


class TrainState:
    pass


def train(*args, **kwargs):
    raise NotImplementedError
