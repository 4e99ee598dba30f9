"""What the bplab program may do because it owns its process, and how it ends.

``service.cli.main`` calls ``claim()`` first. From then on its local pools may fork (they
inherit what it has imported: service.local.pool_context), it pauses the cyclic collector
while it imports a command and freezes what the import made (service.commands.lazy), and it
ends without Python's teardown (``end_program``). A notebook, a test or a program embedding
bplab claims nothing and keeps Python's defaults: it has loaded and started what bplab cannot
know about (a forked child of a test process that had used Celery hung in kombu's after-fork
hook; gc.freeze would keep its garbage forever).

Python's own exit tears down every module and object it loaded: with NumPy, SQLAlchemy and the
models loaded that took 0.11 s of a 0.55 s command here (measured: the same imports, then a
normal exit against ``os._exit``), time a user waits for after the command has done its work.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
import threading
from typing import NoReturn

_claimed = False


def claim() -> None:
    """Called by the bplab program at start: this process is its own (see the module)."""
    global _claimed
    _claimed = True


def owns_process() -> bool:
    return _claimed


def exit_now(code: int) -> NoReturn:
    """Flush the output streams and end the process at once: no atexit handler, no teardown."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing more can be said
            stream.flush()
    os._exit(code)


def end_program(request: SystemExit) -> NoReturn:
    """End the program as ``request`` (the command's sys.exit) asks, skipping the teardown.

    What an exit must still do is done first: the atexit handlers run (temporary files,
    logging, multiprocessing's finalizers). A thread still running gets the normal exit, which
    waits for it (os._exit would cut it off).
    """
    if threading.active_count() > 1:
        raise request
    atexit._run_exitfuncs()  # CPython's own exit calls it; public in all but name since 3.0
    code = request.code
    if code is None:
        exit_now(0)
    if not isinstance(code, int):  # sys.exit("message"): printed, status 1, as Python does
        print(code, file=sys.stderr)
        exit_now(1)
    exit_now(code)
