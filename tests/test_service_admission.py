"""The service's bridge honours ``MAX_QUEUE``: a saturated service answers 503 (issue 16).

``server/build.py`` passes ``MAX_QUEUE`` to the bridge as ``max_queue``; the bridge's
hard cap of requests in flight is then ``max_workers + max_queue``, with
``max_workers = THREADS - RESERVED_THREADS``.  With that many Flask views held by an
Event, the next request gets ``503`` + ``Retry-After`` at once.  Without the setting the
bridge's default (64 per worker) applies and the request would wait.  Real sockets, the
real service, Events; ``QUEUE_TARGET`` is set out of reach so only the cap can refuse.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.support.routes import HOLD_TIMEOUT, holding_views
from tests.support.server import ServerFactory
from wsgi_bridge.testing import wait_for


def test_a_saturated_service_answers_503_at_max_workers_plus_max_queue(
    live_server: ServerFactory,
) -> None:
    release = threading.Event()
    server = live_server(
        holding_views(release), threads=3, reserved_threads=1, max_queue=2, queue_target=60
    )
    container = server.hybrid.container
    # The bridge's threads (3 - 1, less a feature's own, e.g. a job's thread) + MAX_QUEUE.
    assert 1 <= container.max_workers <= 2 and container.max_queue == 2
    limit = container.max_workers + container.max_queue
    with ThreadPoolExecutor(limit) as clients:
        held = [
            clients.submit(httpx.get, f"{server.url}/_test/hold", timeout=HOLD_TIMEOUT + 10)
            for _ in range(limit)
        ]
        try:
            assert wait_for(lambda: container.in_flight == limit, 10)
            # At once: a request that waited for a thread instead would time out here.
            refused = httpx.get(f"{server.url}/_test/hold", timeout=5)
            assert refused.status_code == 503
            assert refused.headers["Retry-After"]
            assert not any(future.done() for future in held)
        finally:
            release.set()
        responses = [future.result() for future in held]
    assert [(r.status_code, r.text) for r in responses] == [(200, "released")] * limit
