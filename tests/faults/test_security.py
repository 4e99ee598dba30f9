"""Passwords never reach a worker's output: banner, connection lines, reconciler and task logs."""

from __future__ import annotations

import time

import pytest
from sqlalchemy.engine import make_url

from tests.faults.harness import FaultStack, check_sweep, make_sweep, say, wait_all_terminal

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def test_worker_output_masks_every_password(stack: FaultStack) -> None:
    # Trust authentication on the test servers accepts (and ignores) these passwords, so the
    # worker really runs with them in its URLs.
    stack.worker_database_url = (
        make_url(stack.database_url).set(password="pg-s3cret").render_as_string(False)
    )
    stack.extra_env["BPLAB_BROKER_URL"] = stack.broker_url.replace(
        "redis://", "redis://:rd-s3cret@"
    )
    worker = stack.start_bplab_worker()
    sweep_id, _ = make_sweep(stack, seeds=2, epochs=503)
    wait_all_terminal(stack, sweep_id, timeout=60)
    check_sweep(stack, sweep_id)
    time.sleep(1.0)  # a few reconciler passes
    text = worker.text()
    assert "pg-s3cret" not in text and "rd-s3cret" not in text, text
    assert "redis://:**@" in text  # Celery's banner, masked by Celery
    assert ":***@" in text  # bplab's own start line
    say("worker output (banner, connections, reconciler, tasks) shows no password")
