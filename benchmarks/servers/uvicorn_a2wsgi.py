"""``uvicorn-a2wsgi``: uvicorn (one worker) serving ``a2wsgi.WSGIMiddleware(app, workers=N)``."""

from __future__ import annotations

from collections.abc import Sequence

import uvicorn
from a2wsgi import WSGIMiddleware

from benchmarks.flask_app import app as flask_app
from benchmarks.servers._common import parse_args


def main(argv: Sequence[str] | None = None) -> None:
    """Run uvicorn with access logs off."""
    args = parse_args(__doc__ or "", argv)
    uvicorn.run(
        WSGIMiddleware(flask_app, workers=args.threads),  # type: ignore[arg-type]
        host=args.host,
        port=args.port,
        workers=1,
        access_log=False,
        log_level="warning",
        lifespan="off",
    )


if __name__ == "__main__":
    main()
