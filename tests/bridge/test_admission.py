"""Admission by queueing delay, the per-request deadline and the client-gone event.

The controller is tested as pure logic with a fake clock; the container over real
sockets.  Socket tests never race the wall clock: requests wait on Events the test
releases, and where the policy's time is the subject the margins are generous.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, request

from tests.bridge.kinds import BOTH
from wsgi_bridge import CLIENT_DISCONNECTED_KEY, DEADLINE_KEY, Deadline, DisconnectEvent
from wsgi_bridge.admission import (
    DEFAULT_QUEUE_INTERVAL,
    DEFAULT_QUEUE_TARGET,
    QueueDelayController,
)
from wsgi_bridge.pump import poster_for
from wsgi_bridge.testing import (
    BridgeServer,
    capture_logs,
    header_value,
    read_response_head,
    read_until_close,
    status_of,
    wait_for,
)


def raw_get(sock: socket.socket, path: str = "/") -> None:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode("latin-1"))


def read_response(sock: socket.socket) -> tuple[int, bytes, bytes]:
    """Read one Content-Length-framed response: (status, head, body)."""
    head, rest = read_response_head(sock)
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    sock.settimeout(10)
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            break
        rest += data
    return status_of(head), head, rest[:length]


# ------------------------------------------------------------ the controller, pure
def controller(**kw: Any) -> QueueDelayController:
    options: dict[str, Any] = {"target": 0.1, "interval": 0.5, "workers": 4, "limit": 100}
    options.update(kw)
    return QueueDelayController(**options)


def test_controller_admits_a_burst_up_to_the_hard_cap() -> None:
    c = controller(limit=10)
    # 10 arrivals at the same instant: nothing has waited yet, so all are admitted...
    assert all(c.admit(0.0, in_flight=i, waiting=max(0, i - 4), oldest_wait=0.0) for i in range(10))
    # ...and the 11th meets the hard cap in requests.
    assert not c.admit(0.0, in_flight=10, waiting=6, oldest_wait=0.0)
    assert c.shed_count == 1


def test_controller_sheds_once_delay_stayed_above_target_for_an_interval() -> None:
    c = controller()
    c.started(delay=0.2, now=1.0)  # above target since 0.9
    assert not c.shedding(1.3)
    assert c.admit(1.3, in_flight=9, waiting=5, oldest_wait=0.25)  # not an interval yet
    assert c.shedding(1.5)
    assert not c.admit(1.5, in_flight=9, waiting=5, oldest_wait=0.45)  # standing queue: 503
    # While shedding, less than one wave waiting is still admitted: the pool never idles.
    assert c.admit(1.5, in_flight=7, waiting=3, oldest_wait=0.45)


def test_controller_stops_shedding_an_interval_after_the_queue_stood() -> None:
    c = controller()
    c.started(delay=0.3, now=1.0)
    assert not c.admit(2.0, in_flight=50, waiting=40, oldest_wait=0.3)  # standing
    c.started(delay=0.05, now=2.0)  # the queue drained: a good queue again...
    assert not c.standing(2.0)
    # ...but for one interval the controller still holds the queue to one wave,
    assert not c.admit(2.2, in_flight=50, waiting=40, oldest_wait=0.01)
    assert c.admit(2.2, in_flight=10, waiting=3, oldest_wait=0.01)
    # then admits bursts again.
    assert not c.shedding(2.6)
    assert c.admit(2.6, in_flight=50, waiting=40, oldest_wait=0.01)


def test_controller_sees_a_standing_queue_from_the_oldest_waiting_request() -> None:
    # No request starts (every thread is stuck), but the head of the queue has waited
    # target + interval: that alone proves the delay stayed above target that long.
    c = controller()
    assert c.admit(5.0, in_flight=8, waiting=4, oldest_wait=0.55)
    assert not c.admit(5.1, in_flight=8, waiting=4, oldest_wait=0.65)


def test_controller_forgets_when_the_queue_is_empty() -> None:
    c = controller()
    c.started(delay=1.0, now=10.0)
    assert c.shedding(10.0)
    assert c.admit(10.0, in_flight=4, waiting=0, oldest_wait=None)
    assert not c.shedding(10.0)


def test_controller_refuses_late_only_a_request_that_outwaited_the_grace() -> None:
    c = controller()
    assert not c.above_target
    c.started(delay=0.2, now=1.0)  # above target since 0.9: admissions now are on probation
    assert c.above_target
    assert not c.late(delay=0.7, now=1.3)  # not shedding yet
    assert not c.late(delay=0.55, now=1.5)  # shedding, but waited < target + interval
    assert c.late(delay=0.65, now=1.5)


def test_controller_sheds_for_exactly_one_interval_after_the_queue_last_stood() -> None:
    """Shedding holds for ``interval`` seconds after an arrival last found the queue
    standing, that bound excluded (binary fractions, so the times are exact)."""
    c = controller(target=0.25, interval=0.5)
    c.started(delay=0.5, now=1.0)  # above target since 0.75, standing from 1.25
    assert c.admit(1.5, in_flight=2, waiting=1, oldest_wait=0.5)  # finds it standing
    c.started(delay=0.0, now=1.5)  # a request started at once: the queue is good again
    assert not c.standing(1.5)
    assert c.shedding(1.75)
    assert not c.shedding(2.0)


def test_controller_refuses_late_a_request_that_waited_exactly_target_plus_interval() -> None:
    """ "After waiting ``target + interval`` or more": the bound itself is late
    (binary fractions, so the sum is exact)."""
    c = controller(target=0.25, interval=0.5)
    c.started(delay=0.5, now=1.0)  # above target since 0.75, standing from 1.25
    assert c.shedding(1.5)
    assert not c.late(delay=0.5, now=1.5)
    assert c.late(delay=0.75, now=1.5)


def test_controller_bounds_are_inclusive_where_the_docs_say_at_or_above() -> None:
    """A delay *at* ``target`` is above target, a queue above target for exactly
    ``interval`` stands (binary fractions, so the times are exact)."""
    c = controller(target=0.25, interval=0.5)
    c.started(delay=0.25, now=1.0)  # waited exactly target: above target since 1.0
    assert c.above_target
    assert not c.standing(1.25)
    assert c.standing(1.5)
    d = controller(target=0.25, interval=0.5)
    assert d.admit(1.0, in_flight=2, waiting=1, oldest_wait=0.25)  # oldest waited target
    assert d.above_target


def test_controller_an_empty_queue_is_good_and_refusals_are_counted() -> None:
    c = controller(target=0.25, interval=0.5, workers=1, limit=2)
    c.started(delay=0.5, now=1.0)
    above = [c.above_target]
    assert c.admit(1.1, in_flight=1, waiting=0, oldest_wait=0.0)  # nobody waits
    above.append(c.above_target)
    assert above == [True, False]
    assert not c.admit(1.2, in_flight=2, waiting=1, oldest_wait=0.0)  # the hard cap
    assert not c.admit(1.3, in_flight=2, waiting=1, oldest_wait=0.0)
    assert c.shed_count == 2


def test_controller_accepts_its_smallest_settings() -> None:
    """``interval`` 0 and one worker with a cap of one request are valid settings."""
    c = controller(interval=0, workers=1, limit=1)
    assert (c.interval, c.workers, c.limit) == (0.0, 1, 1)
    assert c.admit(0.0, in_flight=0, waiting=0, oldest_wait=None)
    assert not c.admit(0.0, in_flight=1, waiting=1, oldest_wait=0.0)


def test_controller_validates_its_settings() -> None:
    with pytest.raises(ValueError, match="queue_target"):
        controller(target=0)
    with pytest.raises(ValueError, match="queue_interval"):
        controller(interval=-1)
    with pytest.raises(ValueError, match="limit"):
        controller(limit=0)
    assert (DEFAULT_QUEUE_TARGET, DEFAULT_QUEUE_INTERVAL) == (0.1, 0.5)


# ------------------------------------------------------------ admission over sockets
def gated(gate: threading.Event, running: list[int] | None = None) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if running is not None:
            running.append(1)
        gate.wait(30)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def running_blocks_on(gate: threading.Event, paths: list[str]) -> Any:
    """An app recording each ``PATH_INFO`` in ``paths``; ``/running`` waits for ``gate``
    (up to 30 s), so it holds the only worker while others queue."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        paths.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/running":
            gate.wait(30)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    return app


def test_burst_beyond_the_old_count_limit_is_served_completely_in_waves() -> None:
    """128 requests at once on 16 threads: the old limit (16 + 4 x 16) refused 48."""
    gate = threading.Event()
    running: list[int] = []
    # A generous interval: sending 128 requests on a loaded machine must not look like
    # a standing queue.  The subject is that no count below the hard cap refuses.
    with BridgeServer(
        gated(gate, running), workers=16, queue_target=DEFAULT_QUEUE_TARGET, queue_interval=30
    ) as server:
        socks = [
            socket.create_connection(("127.0.0.1", server.port), timeout=20) for _ in range(128)
        ]
        try:
            for sock in socks:
                raw_get(sock, "/burst")
            assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 128, 20)
            assert server.call(lambda: server.container.waiting) == 128 - 16
            assert len(running) == 16
            gate.set()
            statuses = [read_response(sock)[0] for sock in socks]
        finally:
            gate.set()
            for sock in socks:
                sock.close()
    assert statuses == [200] * 128


def test_standing_queue_sheds_with_503_retry_after_and_recovers(caplog: Any) -> None:
    """Delay above target for an interval: new requests get 503 at once; afterwards
    an empty queue admits again."""
    gate = threading.Event()
    with BridgeServer(
        gated(gate), workers=1, queue_target=0.05, queue_interval=0.2, retry_after=3
    ) as server:
        first, second = server.http(), server.http()
        try:
            first.request("GET", "/running")
            assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 1)
            second.request("GET", "/waiting")
            assert wait_for(lambda: server.call(lambda: server.container.waiting) == 1)
            # The waiting request's delay passes target + interval (0.25 s): a standing
            # queue.  (A margin of 4x; the old count limit, 1 + 4, would admit.)
            time.sleep(1.0)
            t0 = time.monotonic()
            status, headers, body = server.request("GET", "/shed")
            assert (status, headers["Retry-After"], body) == (503, "3", b"Service Unavailable\n")
            assert time.monotonic() - t0 < 5
            assert server.request("GET", "/native")[2] == b"native"
            assert server.call(lambda: server.container.admission.shed_count) == 1
            gate.set()
            assert first.getresponse().read() == b"ok"
            assert second.getresponse().read() == b"ok"
            assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 0)
            # Queue empty again: admitted.
            assert server.request("GET", "/after")[0] == 200
        finally:
            gate.set()
            first.close()
            second.close()


def test_backlog_admitted_during_the_interval_is_refused_when_it_reaches_a_thread() -> None:
    """Under sustained overload the requests admitted while the delay was already above
    target (CoDel's grace interval) get 503 when a thread reaches them, without running
    the app; the request that arrived into a good queue is served however long it
    waited."""
    gate = threading.Event()
    paths: list[str] = []
    app = running_blocks_on(gate, paths)

    # target 0.2 s, interval 2 s: "/probation" must arrive while "/good" has waited
    # between 0.2 and 2.2 s (a wide window), and start after it outwaited 2.2 s.
    with BridgeServer(
        app, workers=1, queue_target=0.2, queue_interval=2.0, retry_after=5
    ) as server:
        conns = [server.http(timeout=30) for _ in range(3)]
        try:
            conns[0].request("GET", "/running")
            assert wait_for(lambda: paths == ["/running"])
            conns[1].request("GET", "/good")  # into an empty queue: a good queue
            assert wait_for(lambda: server.call(lambda: server.container.waiting) == 1)
            time.sleep(0.6)
            conns[2].request("GET", "/probation")  # the delay is above target by now
            assert wait_for(lambda: server.call(lambda: server.container.waiting) == 2)
            assert server.call(lambda: server.container.admission.above_target)
            time.sleep(2.6)  # "/probation" outwaits target + interval; shedding holds
            gate.set()
            responses = [conn.getresponse() for conn in conns]
            got = [
                (
                    r.status,
                    r.reason,
                    r.getheader("Content-Type"),
                    r.getheader("Retry-After"),
                    r.read(),
                )
                for r in responses
            ]
        finally:
            gate.set()
            for conn in conns:
                conn.close()
    assert got[:2] == [(200, "OK", "text/plain", None, b"ok")] * 2
    # The same 503 as a refusal at arrival: status line, plain-text type, Retry-After.
    refused = (
        503,
        "Service Unavailable",
        "text/plain; charset=utf-8",
        "5",
        b"Service Unavailable\n",
    )
    assert got[2] == refused
    assert paths == ["/running", "/good"]  # the app never ran for the late one


def test_a_request_on_probation_is_judged_by_its_own_queueing_delay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At its start a request admitted on probation hands the controller its queueing
    delay: the seconds from its hand-over to the pool to that start."""
    delays: list[float] = []
    real_late = QueueDelayController.late

    def late(controller: QueueDelayController, delay: float, now: float) -> bool:
        delays.append(delay)
        return real_late(controller, delay, now)

    monkeypatch.setattr(QueueDelayController, "late", late)
    gate = threading.Event()
    paths: list[str] = []
    app = running_blocks_on(gate, paths)

    # target 0.05 s, interval 60 s: "/probation" arrives above target, nobody is shed.
    with BridgeServer(app, workers=1, queue_target=0.05, queue_interval=60.0) as server:
        conns = [server.http(timeout=30) for _ in range(3)]
        try:
            conns[0].request("GET", "/running")
            assert wait_for(lambda: paths == ["/running"])
            conns[1].request("GET", "/waiting")
            assert wait_for(lambda: server.call(lambda: server.container.waiting) == 1)
            time.sleep(0.2)  # "/waiting" is now above target: the next one is on probation
            conns[2].request("GET", "/probation")
            assert wait_for(lambda: server.call(lambda: server.container.waiting) == 2)
            gate.set()
            statuses = [conn.getresponse().status for conn in conns]
        finally:
            gate.set()
            for conn in conns:
                conn.close()
    assert statuses == [200, 200, 200]
    assert len(delays) == 1 and 0.0 < delays[0] < 30.0, delays


# ------------------------------------------------------------ deadline (REQUEST_TIMEOUT)
class Abandoned:
    """An app that ignores its deadline until told, recording what it saw."""

    def __init__(self) -> None:
        self.expired_seen = threading.Event()
        self.release = threading.Event()
        self.closed = 0
        self.deadline: Deadline | None = None

    def app(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["PATH_INFO"] != "/slow":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"next"]
        deadline = environ[DEADLINE_KEY]
        self.deadline = deadline
        assert deadline.wait(20)  # woken at expiry
        self.expired_seen.set()
        self.release.wait(20)  # the thread keeps running after the 504
        start_response("200 OK", [("Content-Type", "text/plain")])
        tracker = self

        class Body:
            def __iter__(self) -> Iterator[bytes]:
                yield b"too late"

            def close(self) -> None:
                tracker.closed += 1

        return Body()


@BOTH
def test_deadline_answers_504_and_abandons_the_worker(kind: str) -> None:
    app = Abandoned()
    with (
        capture_logs("tornado.access") as access,
        capture_logs("wsgi_bridge") as bridge_log,
        BridgeServer(app.app, kind=kind, workers=2, request_timeout=0.3) as server,
        server.raw() as sock,
    ):
        raw_get(sock, "/slow")
        status, head, body = read_response(sock)
        assert (status, body) == (504, b"Gateway Timeout\n")
        assert head.startswith(b"HTTP/1.1 504 Gateway Timeout\r\n")
        assert app.expired_seen.wait(10)
        assert app.deadline is not None and app.deadline.expired()
        assert app.deadline.remaining() == 0.0
        assert server.call(lambda: server.container.abandoned) == 1
        assert server.call(lambda: server.container.in_flight) == 1  # the thread is busy
        # The connection serves the next request; the abandoned output never shows.
        raw_get(sock, "/next")
        assert read_response(sock)[0::2] == (200, b"next")
        app.release.set()
        assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 0)
        assert server.call(lambda: server.container.abandoned) == 0
        assert app.closed == 1
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # nothing more arrived: "too late" was discarded
    assert any(" 504 " in line and "/slow" in line for line in access.messages())
    # The warning names the request: method, target and request id.
    (warning,) = [m for m in bridge_log.messages(logging.WARNING) if "worker abandoned" in m]
    assert "GET /slow " in warning and f"id={header_value(head, 'X-Request-ID')}" in warning


@pytest.mark.parametrize("late", ["raises", "returns-a-list"])
def test_abandoned_worker_adds_nothing_after_the_504(late: str) -> None:
    """After the 504 the response belongs to the IOLoop: an abandoned app that then
    raises gets no 500 written after it, one that returns a whole body gets nothing
    written; the connection serves the next request."""
    release = threading.Event()
    returned = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] != "/slow":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"next"]
        try:
            assert environ[DEADLINE_KEY].wait(20)
            release.wait(20)
            if late == "raises":
                raise RuntimeError("too late to fail")
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"too late"]
        finally:
            returned.set()

    with (
        capture_logs("wsgi_bridge"),
        BridgeServer(app, workers=2, request_timeout=0.3) as server,
        server.raw() as sock,
    ):
        raw_get(sock, "/slow")
        assert read_response(sock)[0::2] == (504, b"Gateway Timeout\n")
        release.set()
        assert returned.wait(10)
        assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 0)
        raw_get(sock, "/next")
        assert read_response(sock)[0::2] == (200, b"next")
        sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            sock.recv(1)  # nothing more: no 500 after the 504


@pytest.mark.parametrize(("late", "expected"), [("returns", 200), ("raises", 500)])
def test_answer_handed_over_just_before_the_504_timer_runs_wins(late: str, expected: int) -> None:
    """The app hands over its whole answer (or fails, so a 500) after its deadline
    passed but before the IOLoop ran the 504 timer, and the timer runs before the
    posted write: the response was claimed, so the client gets that answer, not 504.
    The IOLoop is held so that the order is forced: the timer waits behind a callback
    that lets the app answer and waits for its post."""
    go = threading.Event()
    server: BridgeServer

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        deadline = environ[DEADLINE_KEY]
        loop = server.loop
        assert loop is not None
        poster = poster_for(loop)

        def answer_then_let_the_timer_run() -> None:
            go.set()
            assert wait_for(lambda: poster.pending >= 1)  # the answer is posted

        def hold_past_the_deadline() -> None:
            while deadline.remaining() > 0:
                time.sleep(0.01)
            time.sleep(0.1)  # the timer is due too: it runs right after the next callback
            loop.add_callback(answer_then_let_the_timer_run)

        loop.add_callback(hold_past_the_deadline)
        assert go.wait(10)
        if late == "raises":
            raise RuntimeError("failed after the deadline")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    with (
        capture_logs("wsgi_bridge"),
        BridgeServer(app, request_timeout=0.3) as server,
        server.raw() as sock,
    ):
        raw_get(sock, "/late")
        assert read_response(sock)[0] == expected
        assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 0)


def test_deadline_passed_while_waiting_for_a_thread_never_runs_the_app() -> None:
    gate = threading.Event()
    paths: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        paths.append(environ["PATH_INFO"])
        gate.wait(30)
        start_response("200 OK", [])
        return [b"late"]

    with BridgeServer(app, workers=1, request_timeout=0.5) as server:
        with server.raw() as running, server.raw() as queued:
            raw_get(running, "/running")
            assert wait_for(lambda: paths == ["/running"])
            raw_get(queued, "/queued")
            assert read_response(running)[0] == 504
            assert read_response(queued)[0] == 504
            assert server.call(lambda: server.container.abandoned) == 2
            gate.set()
            assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 0, 10)
        assert server.call(lambda: server.container.abandoned) == 0
    assert paths == ["/running"]


def test_deadline_frees_a_worker_blocked_on_a_stalled_upload() -> None:
    """The client stops sending its body: at the deadline it gets 504 and the app's
    pending ``wsgi.input`` read fails, so the thread comes back."""
    errors: list[BaseException] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except OSError as exc:
            errors.append(exc)
        start_response("200 OK", [])
        return [b"never sent"]

    with BridgeServer(app, request_timeout=0.5) as server, server.raw() as sock:
        sock.sendall(b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n")
        sock.sendall(b"x" * 200_000)  # more than request_buffer_size: the app starts
        status, _, body = read_response(sock)
        assert (status, body) == (504, b"Gateway Timeout\n")
        assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 0, 10)
        assert server.call(lambda: server.container.abandoned) == 0
    assert len(errors) == 1


def test_an_abandoned_iterable_is_not_iterated_past_its_first_item() -> None:
    """After the 504 nothing the app produces can be sent: the bridge stops at the
    first item (as after a disconnect) and calls ``close()`` once, so the thread is
    back as soon as the app returns."""
    pulled: list[int] = []
    closes: list[int] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            for index in range(100):
                pulled.append(index)
                yield b"too late"

        def close(self) -> None:
            closes.append(1)

    def app(environ: dict[str, Any], start_response: Any) -> Body:
        assert environ[DEADLINE_KEY].wait(20)  # woken after the 504 was claimed
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Body()

    with BridgeServer(app, request_timeout=0.3) as server, capture_logs("wsgi_bridge") as logs:
        status, _, body = server.request("GET", "/slow")
        assert (status, body) == (504, b"Gateway Timeout\n")
        assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 0, 10)
    assert pulled == [0], f"pulled {len(pulled)} items of an abandoned response"
    assert closes == [1]
    # Discarding it is no application error (the 504 named the request at WARNING).
    assert logs.messages(logging.ERROR) == []


def test_deadline_does_not_touch_a_response_that_started() -> None:
    seen: list[bool] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        deadline = environ[DEADLINE_KEY]
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first "
        assert deadline.wait(20)
        seen.append(deadline.expired())
        yield b"second"

    with (
        capture_logs("wsgi_bridge") as logs,
        BridgeServer(app, request_timeout=0.2) as server,
    ):
        status, _, body = server.request("GET", "/")
    assert (status, body, seen) == (200, b"first second", [True])
    assert logs.messages(logging.WARNING) == []  # no "504 sent, worker abandoned"


def test_no_deadline_by_default_and_flask_sees_both_keys() -> None:
    flask_app = Flask(__name__)

    @flask_app.get("/keys")
    def keys() -> dict[str, Any]:
        deadline = request.environ[DEADLINE_KEY]
        gone = request.environ[CLIENT_DISCONNECTED_KEY]
        return {
            "remaining": deadline.remaining(),
            "expired": deadline.expired(),
            "waited": deadline.wait(0.01),
            "gone": gone.is_set(),
        }

    with BridgeServer(flask_app) as server:
        assert server.call(lambda: server.container.request_timeout) is None
        status, _, body = server.request("GET", "/keys")
    assert status == 200
    assert body == b'{"expired":false,"gone":false,"remaining":null,"waited":false}\n'


def test_flask_view_stops_early_on_its_deadline() -> None:
    flask_app = Flask(__name__)
    stopped = threading.Event()

    @flask_app.get("/poll")
    def poll() -> str:
        deadline = request.environ[DEADLINE_KEY]
        remaining = deadline.remaining()
        while not deadline.wait(0.05):  # one poll of some backend per wake-up
            pass
        stopped.set()
        return f"gave up with {remaining is not None}"

    with BridgeServer(flask_app, request_timeout=0.3) as server:
        status, _, body = server.request("GET", "/poll")
        assert (status, body) == (504, b"Gateway Timeout\n")
        assert stopped.wait(10)
        assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 0)


def test_request_timeout_is_validated() -> None:
    from wsgi_bridge import WSGIContainer

    with pytest.raises(ValueError, match="request_timeout"):
        WSGIContainer(lambda e, s: [], max_workers=1, request_timeout=0)
    with pytest.raises(ValueError, match="queue_target"):
        WSGIContainer(lambda e, s: [], max_workers=1, queue_target=0)


# ------------------------------------------------------------ client gone
def test_disconnect_event_behaves_like_threading_event() -> None:
    event = DisconnectEvent()
    assert not event.is_set()
    assert event.wait(0.01) is False
    waiting = threading.Event()
    woken: list[bool] = []

    def waiter() -> None:
        waiting.set()
        woken.append(event.wait(30))

    thread = threading.Thread(target=waiter)
    thread.start()
    assert waiting.wait(10)
    event.set()  # wakes the waiter whether or not it already blocks
    thread.join(30)
    assert woken == [True]
    assert event.is_set() and event.wait(0) is True
    late = DisconnectEvent()
    late.set()  # set before anyone waited: no threading.Event needed, wait() sees it
    assert late.wait(0) is True


def test_disconnect_event_set_wakes_every_thread_already_blocked_in_wait() -> None:
    """``set()`` wakes each waiter that already blocks, the first as well as a later
    one: they share the one lazily made ``threading.Event``."""
    event = DisconnectEvent()
    assert event.is_set() is False  # a bool, as threading.Event's
    woken: list[bool] = []
    waiters = [
        threading.Thread(target=lambda: woken.append(event.wait(30)), daemon=True) for _ in range(2)
    ]
    waiters[0].start()
    # The first waiter made the threading.Event: from now on only set() wakes it.
    assert wait_for(lambda: event._event is not None)
    shared = event._event
    assert shared is not None
    waiters[1].start()
    # Both block on that same Event (its Condition counts them; CPython's _waiters).
    assert wait_for(lambda: len(shared._cond._waiters) == 2)  # type: ignore[attr-defined]
    event.set()
    for waiter in waiters:
        waiter.join(5)
    assert woken == [True, True], "set() did not wake every blocked waiter"


@BOTH
def test_client_disconnected_event_lets_a_long_view_stop(kind: str) -> None:
    started = threading.Event()
    stopped = threading.Event()
    closes: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        gone = environ[CLIENT_DISCONNECTED_KEY]
        assert not gone.is_set()
        started.set()
        if gone.wait(20):  # a long computation, checking now and then
            stopped.set()
        start_response("200 OK", [])

        class Body:
            def __iter__(self) -> Iterator[bytes]:
                yield b"unused"

            def close(self) -> None:
                closes.append(1)

        return Body()

    with BridgeServer(app, kind=kind) as server:
        with server.raw() as sock:
            raw_get(sock, "/long")
            assert started.wait(10)
        t0 = time.monotonic()
        assert stopped.wait(10)
        assert time.monotonic() - t0 < 5
        assert wait_for(lambda: server.call(lambda: server.container.in_flight) == 0)
    assert closes == [1]


def test_client_disconnected_stays_clear_for_a_completed_response() -> None:
    events: list[DisconnectEvent] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        events.append(environ[CLIENT_DISCONNECTED_KEY])
        start_response("200 OK", [])
        return [b"ok"]

    with BridgeServer(app) as server:
        with server.raw() as sock:
            raw_get(sock)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            data, _ = read_until_close(sock)
        assert data.count(b"200 OK") == 2
    assert len(events) == 2 and events[0] is not events[1]
    assert not any(event.is_set() for event in events)
    assert all(isinstance(event, DisconnectEvent) for event in events)


@pytest.mark.parametrize("kind", ["bridge", "bridge-fast", "bridge-plain", "bridge-server"])
def test_a_refused_request_never_reaches_the_app(kind: str) -> None:
    """Over the hard cap (one thread, ``max_queue=0``) and while draining, the request
    gets ``503 Service Unavailable`` and the app is never called for it, whatever the
    mount (Tornado's ``FallbackHandler`` and ``HTTPServer(container)`` included)."""
    gate = threading.Event()
    paths: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        paths.append(environ["PATH_INFO"])
        gate.wait(10)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    with (
        BridgeServer(app, kind, workers=1, max_queue=0) as server,
        server.raw() as busy,
    ):
        raw_get(busy, "/busy")
        assert wait_for(lambda: paths == ["/busy"])
        with server.raw() as over:
            raw_get(over, "/over")
            head, _ = read_response_head(over, 5)
        assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        draining: list[bool] = []
        waiter = threading.Thread(
            target=lambda: draining.append(server.call(lambda: server.container.drain(10)))
        )
        waiter.start()
        assert wait_for(lambda: server.call(lambda: server.container.is_draining()))
        with server.raw() as late:
            raw_get(late, "/late")
            head, _ = read_response_head(late, 5)
        assert head.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
        gate.set()
        assert status_of(read_response_head(busy, 5)[0]) == 200
        waiter.join(10)
        assert draining == [True]
    assert paths == ["/busy"]


def test_the_apps_deadline_is_request_timeout_after_arrival() -> None:
    """With ``request_timeout``, the app's deadline lies that far ahead of the request's
    arrival: not expired while the app runs at once, remaining time about the timeout."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        deadline = environ[DEADLINE_KEY]
        remaining = deadline.remaining()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{deadline.expired()} {0 < remaining <= 30}".encode()]

    with BridgeServer(app, request_timeout=30) as server:
        assert server.request("GET", "/")[::2] == (200, b"False True")


def test_admission_is_fed_each_requests_wait_for_a_thread() -> None:
    """The controller learns each request's queueing delay (hand-over to start): one
    that started at once leaves it below ``queue_target``, one that waited longer than
    ``queue_target`` for the only thread puts it above."""
    gate = threading.Event()
    started: list[str] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        started.append(environ["PATH_INFO"])
        if environ["PATH_INFO"] == "/hold":
            gate.wait(10)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    def state(server: BridgeServer) -> tuple[int, bool]:
        container = server.container
        return server.call(lambda: (container.waiting, container.admission.above_target))

    with BridgeServer(app, workers=1, queue_target=0.5, queue_interval=30) as server:
        assert server.request("GET", "/quick")[0] == 200
        assert state(server) == (0, False)
        with server.raw() as hold, server.raw() as queued:
            raw_get(hold, "/hold")
            assert wait_for(lambda: started == ["/quick", "/hold"])
            raw_get(queued, "/queued")
            assert wait_for(lambda: server.call(lambda: server.container.waiting) == 1)
            time.sleep(0.6)  # /queued waits at least this long: past queue_target
            gate.set()
            assert status_of(read_response_head(hold, 5)[0]) == 200
            assert status_of(read_response_head(queued, 5)[0]) == 200
        assert state(server) == (0, True)
