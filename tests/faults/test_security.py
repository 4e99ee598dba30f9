"""Passwords never reach a worker's output: banner, connection lines, reconciler and task logs."""

from __future__ import annotations

import time

import pytest
from sqlalchemy.engine import make_url

from service.config import mask_url
from tests.faults.harness import FaultStack, check_sweep, make_sweep, say, wait_all_terminal

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.mark.parametrize("where", ["userinfo", "query"])
def test_worker_output_masks_every_password(stack: FaultStack, where: str) -> None:
    # Trust authentication on the test servers accepts (and ignores) these passwords, so the
    # worker really runs with them in its URLs. libpq also takes the password as a query
    # parameter (issue 24: that one was printed in clear).
    url = make_url(stack.database_url)
    if where == "userinfo":
        url = url.set(password="pg-s3cret")
    else:
        url = url.update_query_dict({"password": "pg-s3cret"})
    stack.worker_database_url = url.render_as_string(False)
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
    assert (":***@" if where == "userinfo" else "password=***") in text  # bplab's start line
    say("worker output (banner, connections, reconciler, tasks) shows no password")


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+psycopg://u:pw@h:5432/db", "postgresql+psycopg://u:***@h:5432/db"),
        (
            "postgresql://u@h/db?sslmode=require&password=pw&sslpassword=k",
            "postgresql://u@h/db?sslmode=require&password=***&sslpassword=***",
        ),
        ("redis://:pw@h:6379/0?password=pw", "redis://:***@h:6379/0?password=***"),
        ("rediss://h/0?Password=pw#x", "rediss://h/0?Password=***#x"),
        ("amqp://guest:pw@localhost//", "amqp://guest:***@localhost//"),
        ("unix:///tmp/r.sock?db=1&auth_token=pw", "unix:///tmp/r.sock?db=1&auth_token=***"),
        ("sqlite:///bplab.db", "sqlite:///bplab.db"),
        ("redis://h:6379/0?db=3", "redis://h:6379/0?db=3"),
    ],
)
def test_mask_url_hides_every_credential_a_url_can_carry(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert "pw" not in mask_url(url).replace("pwd", "")
