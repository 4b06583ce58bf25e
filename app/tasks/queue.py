"""The queue backend (``TASK_BACKEND=queue``): Dramatiq on Redis, run by ``manage.py worker``.

Why Dramatiq (over RQ and Celery): its workers are threads in a few
processes, like this service's own executor, so a kind written for the
in-process backend runs unchanged; its Redis broker acknowledges a message
only after the actor returned, and redelivers the messages of a worker that
stopped sending heartbeats (at-least-once); it has per-actor time limits
(``TimeLimit``) and delayed messages (the retries' back-off) built in; and it
is one small, typed, well-kept dependency with no separate result store or
scheduler. RQ forks a process per job (no threads; a kind's imports and
connections are paid for every job) and Celery, with Redis, needs
``acks_late`` plus a visibility timeout to get the same guarantee, with far
more to configure.

How this module uses it (``docs/tasks.md`` has the guarantees in one table):

* **The database is the source of truth**; a message is only a wake-up call
  carrying a task id. It is sent *inside* the unit of work that queues the
  task, before the commit: if Redis is down, the insert rolls back and the
  caller gets :class:`~app.tasks.client.TaskBackendUnavailable` (503), so a
  task is either stored *and* sent, or neither. A worker that receives a
  message before that commit is visible sends it again a moment later.
* **One actor per kind** (``task.<kind>``), on the kind's queue, with a hard
  time limit a few seconds past the kind's own (:data:`HARD_LIMIT_GRACE`): the
  cooperative limit in ``report()`` comes first; Dramatiq's ``TimeLimit``
  interrupts a kind that never reports. Retries are not Dramatiq's
  (``Retries`` is left out): :mod:`app.tasks.execution` counts attempts in the
  database, where a worker's death is counted too, and sends the retry with a
  delay.
* **The reconciler** (:meth:`QueueBackend.reconcile`, every
  ``TASK_HEARTBEAT_INTERVAL`` seconds in every worker) repairs what a message
  queue alone cannot: a task ``running`` under a lease nobody refreshes any
  more (its worker was killed) goes back to ``queued`` after a back-off, or
  ``failed`` once its attempts are spent; and when Redis lost its data (it
  restarted without persistence: the marker key :meth:`QueueBackend.epoch_key`
  is gone), every ``queued`` task is sent again. A duplicate message is
  harmless: the claim (:meth:`app.tasks.execution.Execution.claim`) drops it.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import TimeLimit
from flask import Flask
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.database import call_in_session
from app.tasks.client import TaskBackendUnavailable
from app.tasks.events import TaskEvents
from app.tasks.execution import (
    AfterCommit,
    Execution,
    died_error,
    failed,
    lease_expired,
    lease_expired_clause,
)
from app.tasks.kinds import KINDS, TaskKind
from app.tasks.models import Task, TaskStatus

log = logging.getLogger(__name__)

REDIS_TIMEOUT = 2.0
"""Seconds a Redis command (or connecting) may take before the queue counts as unavailable:
an enqueue during an outage answers 503 within this, never hangs."""

HARD_LIMIT_GRACE = 5.0
"""Seconds past a kind's ``time_limit`` after which Dramatiq interrupts an attempt that never
called ``report()``."""

NOT_YET_COMMITTED_GRACE = 30.0
"""Seconds during which a message for a task row not (yet) visible is sent again, in case the
enqueue's commit is still under way; after that the task is taken as rolled back."""

RESEND_DELAY = 0.25
"""Seconds before a message for a not-yet-visible task is looked at again."""

INFRA_RETRY_BACKOFF = 0.5
"""Seconds before a delivery that failed on the database is tried again (doubled each time)."""

INFRA_RETRY_MAX = 30.0
"""Longest wait, in seconds, between two tries of a delivery that keeps failing on the database."""


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs (``redis://:***@host:6379/0``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


class QueueBackend:
    """Tasks sent to Dramatiq actors over Redis; a :class:`app.tasks.execution.TaskBackend`.

    Built in every process (web and worker) by :func:`app.tasks.init_app`;
    only a worker :meth:`attach` es an :class:`~app.tasks.execution.Execution`
    and consumes. Nothing connects to Redis until the first command.

    :param redis_url: ``REDIS_URL``.
    :param prefix: ``TASK_QUEUE_PREFIX``: the namespace of every Redis key and
        channel, so several services can share one Redis.
    :param timeout: seconds per Redis command (:data:`REDIS_TIMEOUT`).
    :param worker_timeout: seconds without a heartbeat after which Dramatiq
        takes a worker for dead and redelivers its unacknowledged messages.
    """

    name = "queue"
    requeue_on_stop = True

    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str = "tasks",
        timeout: float = REDIS_TIMEOUT,
        worker_timeout: float = 60.0,
    ) -> None:
        self.redis_url = redis_url
        self.prefix = prefix
        # No retries inside redis-py (its default waits seconds between three): a
        # command either answers within ``timeout`` or the queue is unavailable now.
        self.client = redis.Redis.from_url(
            redis_url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            health_check_interval=30,
            retry=Retry(NoBackoff(), 0),
        )
        self.broker = RedisBroker(  # type: ignore[no-untyped-call]
            client=self.client,
            namespace=f"{prefix}:dramatiq",
            heartbeat_timeout=int(worker_timeout * 1000),
            middleware=[TimeLimit()],
        )
        self.actors: dict[str, dramatiq.Actor[Any, Any]] = {
            kind.name: self._actor(kind) for kind in KINDS.values()
        }
        self.execution: Execution | None = None

    @property
    def queues(self) -> frozenset[str]:
        """The queues of every kind (what a worker consumes by default)."""
        return frozenset(actor.queue_name for actor in self.actors.values())

    @property
    def epoch_key(self) -> str:
        """The marker key whose absence means Redis lost its data (see :meth:`reconcile`)."""
        return f"{self.prefix}:epoch"

    def _actor(self, kind: TaskKind) -> dramatiq.Actor[Any, Any]:
        def perform(task_id: int, sent_at: float, failures: int = 0) -> None:
            self.perform(kind.name, task_id, sent_at, failures)

        perform.__module__ = __name__
        return dramatiq.Actor(
            perform,
            broker=self.broker,
            actor_name=f"task.{kind.name}",
            queue_name=kind.queue,
            priority=0,
            options={"time_limit": int((kind.time_limit + HARD_LIMIT_GRACE) * 1000)},
        )

    # -- sending (any process) -------------------------------------------------------------

    def dispatch(self, task: Task, kind: TaskKind, delay: float = 0.0) -> AfterCommit | None:
        """Send task ``task.id`` to its kind's actor, inside the caller's unit of work.

        :param delay: seconds before a worker may start it (a retry's back-off).
        :raises TaskBackendUnavailable: Redis cannot be reached within the
            timeout; the caller's unit of work rolls back.
        """
        self.send(task.id, kind.name, delay)
        return None

    def send(self, task_id: int, kind_name: str, delay: float = 0.0) -> None:
        """Send one message for task ``task_id`` of kind ``kind_name``.

        :raises TaskBackendUnavailable: Redis cannot be reached within the timeout.
        """
        actor = self.actors[kind_name]
        delay_ms = int(delay * 1000) if delay > 0 else None
        try:
            actor.send_with_options(args=(task_id, time.time()), delay=delay_ms)
        except (redis.RedisError, dramatiq.errors.BrokerConnectionError) as error:
            raise self.unavailable(error) from None

    def unavailable(self, error: BaseException) -> TaskBackendUnavailable:
        """The 503 error for ``error`` from Redis, as API clients see it.

        It names Redis and the kind of failure, not where Redis is (the
        address is the operators' business: it is logged, without the
        password, as a warning).
        """
        log.warning(
            "the task queue is unavailable: Redis at %s: %s: %s",
            redact(self.redis_url),
            type(error).__name__,
            error,
        )
        return TaskBackendUnavailable(
            f"the task queue is unavailable (Redis: {type(error).__name__}); "
            "nothing was queued, try again shortly"
        )

    def unreachable(self, error: BaseException) -> TaskBackendUnavailable:
        """The error for operators (worker start-up, reconciler): where Redis is, and why."""
        return TaskBackendUnavailable(
            f"Redis at {redact(self.redis_url)} does not answer: {type(error).__name__}: {error}"
        )

    def ping(self) -> None:
        """Check that Redis answers.

        :raises TaskBackendUnavailable: it does not, within the timeout.
        """
        try:
            self.client.ping()
        except redis.RedisError as error:
            raise self.unreachable(error) from None

    def close(self) -> None:
        """Close the Redis connections (of this process)."""
        self.broker.close()

    # -- consuming (worker processes) ------------------------------------------------------

    def attach(self, execution: Execution) -> None:
        """Make this process a worker: received messages run attempts on ``execution``."""
        self.execution = execution

    def perform(self, kind_name: str, task_id: int, sent_at: float, failures: int = 0) -> None:
        """The body of every actor: run one attempt of task ``task_id``.

        A worker that is stopping starts no attempt: it sends the message again, for
        another worker. If the database fails (locked, restarting) before the
        attempt could be recorded, the message is sent again after a back-off
        (:data:`INFRA_RETRY_BACKOFF`, doubled per failure, at most
        :data:`INFRA_RETRY_MAX`) instead of failing the message: a failed
        Dramatiq message is dead-lettered, and a task still ``queued`` in the
        database would then wait for ever. A task left ``running`` by such a
        failure is taken over once its lease goes stale.

        :param kind_name: the actor's kind.
        :param task_id: the task.
        :param sent_at: when the message was first sent (UNIX time, seconds).
        :param failures: how many times this delivery failed on infrastructure so far.
        :raises RuntimeError: this process is not a worker (:meth:`attach`).
        """
        if self.execution is None:
            raise RuntimeError("this process has no task execution: run `manage.py worker`")
        if self.execution.stopping.is_set():
            # Dramatiq's idle threads still take messages while the worker stops (e.g. the
            # requeue of an attempt it just interrupted): hand them to another worker.
            self.actors[kind_name].send_with_options(
                args=(task_id, sent_at), delay=int(RESEND_DELAY * 1000)
            )
            return
        try:
            verdict = self.execution.run(task_id)
        except Exception:
            delay = min(INFRA_RETRY_BACKOFF * 2**failures, INFRA_RETRY_MAX)
            log.exception("task %s: the database failed; trying again in %g s", task_id, delay)
            self.actors[kind_name].send_with_options(
                args=(task_id, sent_at, failures + 1), delay=int(delay * 1000)
            )
            return
        if verdict != "missing":
            return
        if time.time() - sent_at < NOT_YET_COMMITTED_GRACE:
            self.actors[kind_name].send_with_options(
                args=(task_id, sent_at), delay=int(RESEND_DELAY * 1000)
            )
            return
        log.warning("task %s: no such task (its enqueue rolled back); message dropped", task_id)

    # -- repairs (worker processes) --------------------------------------------------------

    def reconcile(self, flask_app: Flask, events: TaskEvents, *, stale_after: float) -> int:
        """Repair what the queue alone cannot; run periodically by every worker.

        1. ``running`` tasks whose lease is older than ``stale_after`` seconds
           (their worker died): back to ``queued`` and sent again after the
           kind's back-off, or ``failed`` with the reason once their attempts
           are spent.
        2. If :meth:`epoch_key` is missing from Redis (it restarted without
           persistence, or was flushed), every ``queued`` task is sent again.

        Safe to run in several workers at once: each change is conditional on
        the row it read, under a row lock.

        :returns: how many tasks were requeued, failed or sent again.
        :raises TaskBackendUnavailable: Redis is down (nothing changed for the
            task that needed it; the next run tries again).
        """
        changed = self._reclaim_dead(flask_app, events, stale_after)
        epoch = uuid.uuid4().hex
        try:
            fresh = bool(self.client.set(self.epoch_key, epoch, nx=True))
        except redis.RedisError as error:
            raise self.unreachable(error) from None
        if fresh:
            changed += self._resend_queued(flask_app)
        return changed

    def _reclaim_dead(self, flask_app: Flask, events: TaskEvents, stale_after: float) -> int:
        def candidates(session: Session) -> list[int]:
            rows = session.scalars(
                select(Task.id).where(
                    Task.status == TaskStatus.RUNNING.value,
                    lease_expired_clause(stale_after),
                )
            )
            return list(rows)

        count = 0
        for task_id in call_in_session(flask_app, candidates):

            def change(session: Session, task_id: int = task_id) -> dict[str, Any] | None:
                task = session.get(Task, task_id, with_for_update=True)
                if (
                    task is None
                    or task.status != TaskStatus.RUNNING.value
                    or not lease_expired(task, stale_after)
                ):
                    return None
                kind = KINDS.get(task.kind)
                if kind is None or task.attempts >= task.max_attempts:
                    reason = (
                        died_error(task.attempts, task.max_attempts)
                        if kind is not None
                        else f"no such kind {task.kind!r}"
                    )
                    for name, value in failed(reason).items():
                        setattr(task, name, value)
                else:
                    delay = kind.backoff(task.attempts)
                    task.status = TaskStatus.QUEUED.value
                    task.error = (
                        f"its worker ({task.runner_id}) stopped responding during attempt "
                        f"{task.attempts} of {task.max_attempts}; retrying in {delay:g} s"
                    )
                    task.runner_id = None
                    session.flush()
                    self.send(task.id, kind.name, delay)
                session.flush()
                return task.to_dict()

            data = call_in_session(flask_app, change)
            if data is not None:
                log.warning("task %s: its worker stopped responding; %s", task_id, data["status"])
                events.publish({"type": "task", "task": data})
                count += 1
        return count

    def _resend_queued(self, flask_app: Flask) -> int:
        def queued(session: Session) -> list[tuple[int, str]]:
            rows = session.execute(
                select(Task.id, Task.kind)
                .where(Task.status == TaskStatus.QUEUED.value)
                .order_by(Task.id)
            )
            return [(int(task_id), str(kind)) for task_id, kind in rows]

        sent = 0
        for task_id, kind in call_in_session(flask_app, queued):
            if kind in self.actors:  # a kind removed from the code since: nothing to run it
                self.send(task_id, kind)
                sent += 1
        if sent:
            log.warning(
                "Redis lost its data (restarted or flushed): sent %d queued task(s) again", sent
            )
        return sent
