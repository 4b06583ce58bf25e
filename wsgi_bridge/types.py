"""Type aliases for the WSGI protocol (PEP 3333) used across :mod:`wsgi_bridge`.

Only aliases live here (no classes, no imports of the package), so every module can
import them without cycles.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TypeAlias

#: ``sys.exc_info()`` shape passed as the third argument of ``start_response``.
ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType | None]
#: The legacy ``write(data: bytes)`` callable returned by ``start_response``.
WriteCallable: TypeAlias = Callable[[bytes], None]
#: ``start_response(status, headers, exc_info=None) -> write``.
StartResponse: TypeAlias = Callable[..., WriteCallable]
#: The WSGI ``environ`` dictionary.
Environ: TypeAlias = dict[str, Any]
#: A WSGI application callable.
WSGIApp: TypeAlias = Callable[[Environ, StartResponse], Iterable[bytes]]
#: Response headers as PEP 3333 gives them: a list of ``(name, value)`` native strings.
HeaderList: TypeAlias = list[tuple[str, str]]
#: A job for a worker thread: runs one request's application, returns nothing.
Job: TypeAlias = Callable[[], None]
#: Runs a :data:`Job` on the worker pool (raises ``RuntimeError`` once it is shut down).
Dispatch: TypeAlias = Callable[[Job], object]
