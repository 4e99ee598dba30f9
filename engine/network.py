"""Feedforward network (being written)."""


class Network:
    pass
