"""``wsgi.file_wrapper`` (PEP 3333 "Optional Platform-Specific File Handling")."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

#: Default block size read from a wrapped file, in bytes.
DEFAULT_BLOCK_SIZE = 64 * 1024


class FileWrapper:
    """Iterate a binary file-like object in blocks; ``close()`` closes the file.

    :param filelike: an object with ``read(n) -> bytes`` (and optionally ``close()``).
    :param block_size: bytes per read, default 65536.

    The bridge streams it like any other iterable, so backpressure applies; it does
    not use ``sendfile`` (Tornado's IOStream has no such path).
    """

    def __init__(self, filelike: IO[bytes], block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Iterator[bytes]:
        read = self.filelike.read
        while True:
            block = read(self.block_size)
            if not block:
                return
            yield block

    def close(self) -> None:
        """Close the wrapped file if it has ``close()`` (PEP 3333 requires this)."""
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()
