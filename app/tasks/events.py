"""Fan-out of task events (``{"type": "task", "task": {...}}``) to subscribers.

Two hubs behind the same two methods, ``publish(event)`` and
``subscribe(callable)``:

* :class:`TaskEvents` -- in-process (``TASK_BACKEND=inprocess``): worker threads
  publish, subscribers are called at once in the publishing thread.
* :class:`RedisTaskEvents` -- across processes (``TASK_BACKEND=queue``): tasks run
  in worker processes, browsers are connected to any of the web processes, so an
  event goes through one Redis pub/sub channel; each web process relays it to
  its own subscribers.

Subscribers are callables that must themselves be safe to call from any
thread. The native WebSocket handler subscribes with
``functools.partial(io_loop.add_callback, self.on_event)``, which is how a
change made on the Flask side reaches the IOLoop thread safely: Tornado's
``IOLoop.add_callback`` is the one IOLoop method documented as thread-safe.

Events are best-effort notifications: the task's state is in the database
(:class:`app.tasks.models.Task`), and a client that missed an event (a Redis
outage, a reconnecting WebSocket) reads the current state from the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.retry
from redis.backoff import NoBackoff
from redis.retry import Retry

Event = dict[str, Any]
Subscriber = Callable[[Event], object]

log = logging.getLogger(__name__)


class TaskEvents:
    """Publish/subscribe hub for task events (``{"type": "task", "task": {...}}``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add ``subscriber``; return a function that removes it (idempotent).

        :param subscriber: called with each event dict, from the publishing
            thread; it must not block.
        """
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def publish(self, event: Event) -> None:
        """Hand ``event`` to every subscriber; one failing subscriber is logged
        and does not stop the others."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            try:
                subscriber(event)
            except Exception:
                log.exception("task event subscriber %r failed", subscriber)


PUBLISH_WARNING_INTERVAL = 60.0
"""Seconds between two warnings about failing ``PUBLISH`` es during one Redis outage."""

RELAY_BACKOFF_INITIAL = 0.1
"""Seconds the relay waits before its first reconnection attempt after losing Redis."""

RELAY_BACKOFF_MAX = 5.0
"""The cap (seconds) of the relay's doubling wait between reconnection attempts."""


class RedisTaskEvents(TaskEvents):
    """Task events through one Redis pub/sub channel, for ``TASK_BACKEND=queue``.

    * :meth:`publish` (any thread, any process: queue workers, web threads) sends
      the event as JSON with ``PUBLISH`` on :attr:`channel`, through a
      synchronous, thread-safe :class:`redis.Redis` client whose socket
      operations give up after ``socket_timeout`` seconds. Local subscribers get
      no direct copy: they get the event once, through the channel, like every
      other process's subscribers.
    * :meth:`relay` runs on the IOLoop of each web process, for as long as the
      process serves: it subscribes with :mod:`redis.asyncio` and hands every
      message to this process's subscribers (the WebSocket connections).

    Why one subscription per process, not one per WebSocket or per thread: a
    pub/sub connection is a Redis client connection held open for ever, and a
    thread blocked reading it per subscriber would cost a thread per browser.
    One ``asyncio`` reader per process costs one connection and no thread,
    whatever the number of open WebSockets; the local fan-out is
    :class:`TaskEvents`'s, unchanged.

    Why failures are swallowed: the task's state is committed to the database
    before its event is published, and a client that misses an event reads
    the state from the API. So a Redis outage must not fail a task or a
    request: a failing ``PUBLISH`` is logged (a warning at most every
    :data:`PUBLISH_WARNING_INTERVAL` seconds, then one line when it works
    again) and dropped; the relay reconnects with a capped, doubling backoff
    (:data:`RELAY_BACKOFF_INITIAL` to :data:`RELAY_BACKOFF_MAX` seconds), logging
    the outage once and ``relaying task events again`` when back. Events
    published during an outage are lost (pub/sub keeps nothing).

    :param url: the Redis URL (``redis://``, ``rediss://`` or ``unix://``),
        ``REDIS_URL``.
    :param prefix: the prefix of this service's Redis keys and channels
        (``TASK_QUEUE_PREFIX``), so that services can share one Redis; the
        channel is ``f"{prefix}:events"``.
    :param socket_timeout: seconds a ``PUBLISH`` (connecting included) may
        take before it is given up; also the relay's connection timeout.
    """

    def __init__(self, url: str, prefix: str = "tasks", socket_timeout: float = 2.0) -> None:
        super().__init__()
        self.url = url
        self.channel = f"{prefix}:events"
        self.socket_timeout = socket_timeout
        # No retries: redis-py retries with a backoff of seconds by default, and a
        # worker publishing during an outage must not wait that long for nothing.
        self._client = redis.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._failure_lock = threading.Lock()
        self._failing_since: float | None = None
        self._last_warning = 0.0
        self._dropped = 0

    def publish(self, event: Event) -> None:
        """``PUBLISH`` ``event`` as JSON on :attr:`channel`; never raises.

        Safe from any thread. Returns once Redis has the message, or after at
        most about ``socket_timeout`` seconds (twice that when connecting and
        then sending time out) if Redis is unreachable; the event is then
        dropped and logged.

        :param event: a JSON-serialisable dict (``{"type": "task", "task": {...}}``).
        """
        try:
            payload = json.dumps(event)
        except (TypeError, ValueError):
            log.exception("task event not published: not JSON-serialisable: %r", event)
            return
        try:
            self._client.publish(self.channel, payload)
        except redis.RedisError as error:
            self._publish_failed(error)
        else:
            if self._failing_since is not None:
                self._publish_recovered()

    def _publish_failed(self, error: redis.RedisError) -> None:
        now = time.monotonic()
        with self._failure_lock:
            self._dropped += 1
            if self._failing_since is None:
                self._failing_since = now
            elif now - self._last_warning < PUBLISH_WARNING_INTERVAL:
                return
            self._last_warning = now
            dropped = self._dropped
        log.warning(
            "task events not published to Redis (%s): %s; %d dropped so far in this outage "
            "(task state is in the database; next warning in %.0f s at the earliest)",
            self.channel,
            error,
            dropped,
            PUBLISH_WARNING_INTERVAL,
        )

    def _publish_recovered(self) -> None:
        with self._failure_lock:
            if self._failing_since is None:
                return
            outage = time.monotonic() - self._failing_since
            dropped = self._dropped
            self._failing_since = None
            self._dropped = 0
        log.info(
            "publishing task events to Redis again (%s) after %.1f s; %d dropped",
            self.channel,
            outage,
            dropped,
        )

    def deliver(self, event: Event) -> None:
        """Hand ``event`` to this process's subscribers (what :meth:`relay` does
        with each message); :meth:`TaskEvents.publish`."""
        super().publish(event)

    def deliver_message(self, data: bytes | str) -> None:
        """Decode one message of the channel and :meth:`deliver` it; bad data is
        logged and skipped (anything may ``PUBLISH`` on a channel).

        :param data: the message's payload, a JSON object.
        """
        try:
            event = json.loads(data)
        except ValueError:  # not UTF-8 or not JSON (json.JSONDecodeError is a ValueError)
            log.warning("skipped a message on %s that is not JSON: %.200r", self.channel, data)
            return
        if not isinstance(event, dict):
            log.warning("skipped a message on %s that is not an object: %.200r", self.channel, data)
            return
        self.deliver(event)

    async def relay(self) -> None:
        """Relay the channel's events to this process's subscribers until cancelled.

        Run it as a task on the IOLoop of each web process (the tasks
        feature's ``start`` does; its ``stop`` cancels it). One ``redis.asyncio``
        connection, subscribed to :attr:`channel`; subscribers are called on the
        IOLoop thread and must not block. When Redis goes away the relay
        logs it once and reconnects, waiting :data:`RELAY_BACKOFF_INITIAL`
        seconds at first, doubling up to :data:`RELAY_BACKOFF_MAX`. Cancelling
        unsubscribes (best-effort) and closes the connection.

        :raises asyncio.CancelledError: when cancelled (the only way it ends).
        """
        backoff = RELAY_BACKOFF_INITIAL
        lost_at: float | None = None
        while True:
            client = redis.asyncio.Redis.from_url(
                self.url,
                socket_connect_timeout=self.socket_timeout,
                socket_keepalive=True,
                retry=redis.asyncio.retry.Retry(NoBackoff(), 0),
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if lost_at is None:
                    log.info("relaying task events from Redis (%s)", self.channel)
                else:
                    log.info(
                        "relaying task events again (%s) after %.1f s without Redis",
                        self.channel,
                        time.monotonic() - lost_at,
                    )
                    lost_at = None
                backoff = RELAY_BACKOFF_INITIAL
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self.deliver_message(message["data"])
            except (redis.RedisError, OSError) as error:
                if lost_at is None:
                    lost_at = time.monotonic()
                    log.warning(
                        "task events relay lost Redis (%s): %s; reconnecting "
                        "(WebSockets get no events meanwhile)",
                        self.channel,
                        error,
                    )
            finally:
                await self._close(client, pubsub)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RELAY_BACKOFF_MAX)

    async def _close(
        self, client: redis.asyncio.Redis, pubsub: redis.asyncio.client.PubSub
    ) -> None:
        """Unsubscribe (if still connected) and close; shielded, so that a
        cancelled relay still releases its connection."""

        async def close() -> None:
            connection = getattr(pubsub, "connection", None)  # None until subscribed
            if connection is not None and connection.is_connected:
                with contextlib.suppress(redis.RedisError, OSError, TimeoutError):  # closing anyway
                    await asyncio.wait_for(pubsub.unsubscribe(), self.socket_timeout)
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
            await client.aclose()

        await asyncio.shield(close())

    def close(self) -> None:
        """Close the publishing client's connections (the relay closes its own)."""
        self._client.close()
