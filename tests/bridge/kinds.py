"""Which mounts a bridge test runs on (``BridgeServer`` kinds), named once."""

from __future__ import annotations

import pytest

#: Every mount of the container: WSGIFallbackHandler, the fast WSGIFallback router,
#: and Tornado's plain FallbackHandler (body read by Tornado first).
BOTH = pytest.mark.parametrize("kind", ["bridge", "bridge-fast", "bridge-plain"])
#: The two streaming mounts: WSGIFallbackHandler and the fast WSGIFallback router.
MOUNTS = pytest.mark.parametrize("kind", ["bridge", "bridge-fast"])
