"""Publishing training tasks to Celery workers, by task name.

``service`` never imports ``worker``: the worker registers the tasks, this module only knows their
names and keyword arguments. The Celery settings both sides must agree on (JSON only, the queue, the
Redis visibility timeout) are in service.celery_config.

A message carries run ids, never a run's data: the worker re-reads the run from the database, which
is the source of truth (a lost or duplicated message costs nothing the reconciler cannot repair).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from kombu import Connection

from service.celery_config import base_celery_config
from service.config import mask_url

TRAIN_RUN = "bplab.train_run"
# Issue 8's population tasks: one message trains a group of same-shape runs.
TRAIN_RUNS = "bplab.train_runs"

# How many messages one pass of the publishing loop sends before it checks the connection again;
# large enough that per-chunk costs vanish, small enough that a failure mid-way says how far it got.
PUBLISH_CHUNK = 1000


class BrokerUnavailable(RuntimeError):
    """The broker cannot be reached; the message names the masked URL."""


def producer_app(broker_url: str) -> Celery:
    """A Celery app that only publishes (it registers no task)."""
    app = Celery("bplab-producer", set_as_current=False)
    app.conf.update(base_celery_config(broker_url))
    return app


@dataclass(frozen=True)
class TaskMessage:
    """One message: a task name and its JSON keyword arguments."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)

    def kwargs_repr(self) -> str:
        """What the worker logs for the arguments; a long id list is cut short."""
        text = repr(self.kwargs)
        return text if len(text) <= 200 else text[:197] + "..."


def train_run_messages(run_ids: Iterable[int]) -> Iterator[TaskMessage]:
    """One ``bplab.train_run`` message per run id."""
    for run_id in run_ids:
        yield TaskMessage(TRAIN_RUN, {"run_id": int(run_id)})


def train_runs_messages(groups: Iterable[Sequence[int]]) -> Iterator[TaskMessage]:
    """One ``bplab.train_runs`` message per group of run ids (population training, issue 8)."""
    for group in groups:
        yield TaskMessage(TRAIN_RUNS, {"run_ids": [int(r) for r in group]})


def check_broker(broker_url: str, timeout: float = 3.0) -> None:
    """Connect once and fail fast: ``BrokerUnavailable`` naming the masked URL if that fails."""
    conn = Connection(
        broker_url, connect_timeout=timeout, transport_options=_fast_fail_options(timeout)
    )
    try:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
    except Exception as exc:
        raise BrokerUnavailable(
            f"cannot reach the broker at {mask_url(broker_url)}: {_reason(exc)}"
        ) from None
    finally:
        conn.release()


def publish(messages: Iterable[TaskMessage], broker_url: str, *, queue: str | None = None) -> int:
    """Send every message over one connection and one producer; returns how many were sent.

    On failure raises ``BrokerUnavailable`` saying how many messages went out before it.
    """
    app = producer_app(broker_url)
    sent = 0
    try:
        with app.producer_or_acquire() as producer:
            producer.connection.ensure_connection(max_retries=3)
            # Declared once here, not once per message (kombu's per-message check costs as much
            # as the rest of the publish).
            target = app.amqp.queues[queue or app.conf.task_default_queue]
            producer.maybe_declare(target)
            for chunk in _chunks(messages, PUBLISH_CHUNK):
                # One pipelined round trip per chunk instead of one per message, where kombu can.
                with _batch(producer, len(chunk)):
                    for message in chunk:
                        app.send_task(
                            message.name,
                            kwargs=message.kwargs,
                            queue=target,
                            declare=[],
                            producer=producer,
                            ignore_result=True,
                            # A failure aborts the whole publish and says how far it got; the
                            # runs stay queued in the database for `republish` or the reconciler.
                            retry=False,
                            # Given, so Celery does not build a safe repr of every message.
                            argsrepr="()",
                            kwargsrepr=message.kwargs_repr(),
                        )
                sent += len(chunk)
    except Exception as exc:
        raise BrokerUnavailable(
            f"publishing to {mask_url(broker_url)} failed after {sent} message(s): {_reason(exc)}"
        ) from None
    finally:
        app.close()
    return sent


def publish_runs(run_ids: Iterable[int], broker_url: str, *, queue: str | None = None) -> int:
    """Publish one ``bplab.train_run`` per run id; returns how many were sent."""
    return publish(train_run_messages(run_ids), broker_url, queue=queue)


def _batch(producer: Any, size: int) -> AbstractContextManager[Any]:
    """kombu's pipelined publish batch (kombu >= 5.6 on Redis), else plain one-by-one publishing."""
    batch = getattr(producer, "batch", None)
    return batch(max_size=max(size, 1)) if batch is not None else nullcontext()


def _chunks(items: Iterable[TaskMessage], size: int) -> Iterator[list[TaskMessage]]:
    chunk: list[TaskMessage] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _fast_fail_options(timeout: float) -> dict[str, Any]:
    return {"socket_connect_timeout": timeout, "socket_timeout": timeout, "max_retries": 0}


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# --- what the broker still holds (the reconciler's lost-message check) ----------------------

# kombu's Redis transport: a queue with priorities is several lists, "<queue>" for priority 0
# and "<queue>\x06\x16<n>" for the others; messages delivered but not yet acknowledged sit in
# the "unacked" hash as JSON [message, exchange, routing_key].
_REDIS_PRIORITY_SEP = "\x06\x16"
_REDIS_PRIORITIES = (3, 6, 9)
_REDIS_UNACKED = "unacked"
_REDIS_UNACKED_INDEX = "unacked_index"
_SCAN_PAGE = 1000


class BrokerNotInspectable(RuntimeError):
    """The broker is not Redis: bplab cannot see which runs its queue still holds."""


def run_ids_in_broker(
    broker_url: str, queue: str, timeout: float = 5.0, *, unacked_max_age_s: float | None = None
) -> set[int]:
    """Run ids of every bplab message still waiting in ``queue`` or delivered and unacknowledged.

    ``unacked_max_age_s``: a delivered, unacknowledged message counts only while it was
    delivered at most that many seconds ago. A worker claims its runs a moment after delivery;
    one killed in between leaves its message in Redis' unacked set until the visibility timeout
    (hours) restores it, and counting it as present kept its runs queued, unpublished, for that
    long (issue 24). Past the bound its consumer is taken for gone; if it was only slow (say,
    retrying its claim through a database outage), the second message finds the runs claimed
    and does nothing. None: every unacked message counts.

    Raises BrokerUnavailable when Redis cannot be reached, BrokerNotInspectable for another
    broker. A message taken off the list at the moment of the scan may be missed; that costs
    at most one duplicate message, which the worker's claim makes harmless.
    """
    import redis

    if not broker_url.startswith(("redis://", "rediss://", "unix://")):
        raise BrokerNotInspectable(f"cannot inspect the queue of {mask_url(broker_url)}")
    client = redis.Redis.from_url(
        broker_url, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    try:
        ids = _waiting_run_ids(client, queue)
        ids |= _unacked_run_ids(client, queue, unacked_max_age_s)
    except redis.RedisError as exc:
        raise BrokerUnavailable(
            f"cannot inspect the queue on {mask_url(broker_url)}: {_reason(exc)}"
        ) from None
    finally:
        client.close()
    return ids


def _waiting_run_ids(client: Any, queue: str) -> set[int]:
    ids: set[int] = set()
    keys = [queue, *(f"{queue}{_REDIS_PRIORITY_SEP}{p}" for p in _REDIS_PRIORITIES)]
    for key in keys:
        start = 0
        while True:
            page = client.lrange(key, start, start + _SCAN_PAGE - 1)
            for raw in page:
                ids.update(_message_run_ids(raw))
            if len(page) < _SCAN_PAGE:
                break
            start += _SCAN_PAGE
    return ids


def _unacked_run_ids(client: Any, queue: str, max_age_s: float | None) -> set[int]:
    # kombu files each delivered message under its delivery tag in the "unacked" hash and the
    # time of delivery (the consumer's clock) as the tag's score in "unacked_index".
    ids: set[int] = set()
    delivered = {}
    if max_age_s is not None:
        delivered = dict(client.zrange(_REDIS_UNACKED_INDEX, 0, -1, withscores=True))
    now = time.time()
    for tag, raw in client.hgetall(_REDIS_UNACKED).items():
        if max_age_s is not None and now - delivered.get(tag, 0.0) > max_age_s:
            continue  # delivered long ago and never claimed: its consumer is gone
        try:
            message, exchange, routing_key = json.loads(raw)
        except (ValueError, TypeError):
            continue
        if queue in (exchange, routing_key):
            ids.update(_message_run_ids(message))
    return ids


def _message_run_ids(raw: Any) -> list[int]:
    """The run ids a kombu message (raw JSON text or its dict) carries; [] if it is not ours."""
    try:
        message = json.loads(raw) if isinstance(raw, (bytes, str)) else raw
        if message.get("headers", {}).get("task") not in (TRAIN_RUN, TRAIN_RUNS):
            return []
        body = message["body"]
        if message.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        if message.get("content-type") != "application/json":
            return []  # bplab only ever publishes JSON; anything else is refused by the worker
        _args, kwargs, _embed = json.loads(body)
        if "run_id" in kwargs:
            return [int(kwargs["run_id"])]
        return [int(r) for r in kwargs.get("run_ids", [])]
    except (ValueError, TypeError, KeyError, AttributeError):
        return []
