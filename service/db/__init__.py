"""The results database: models, engines/sessions, and the repository of queries.

Typical use at an edge (a CLI command, a task)::

    from service.db import session_scope, repository as repo

    with session_scope() as s:          # commits on success
        sweep_id = repo.create_sweep(s, ...)
"""

from service.db import repository
from service.db.blobs import BlobError
from service.db.models import (
    RUN_STATUSES,
    TERMINAL_STATUSES,
    Base,
    Checkpoint,
    EpochMetric,
    Run,
    RunWeights,
    Sweep,
)
from service.db.repository import NotFound, StaleAttempt
from service.db.session import (
    SchemaNotReady,
    dispose_engines,
    get_engine,
    session_scope,
)

__all__ = [
    "RUN_STATUSES",
    "TERMINAL_STATUSES",
    "Base",
    "BlobError",
    "Checkpoint",
    "EpochMetric",
    "NotFound",
    "Run",
    "RunWeights",
    "SchemaNotReady",
    "StaleAttempt",
    "Sweep",
    "dispose_engines",
    "get_engine",
    "repository",
    "session_scope",
]
