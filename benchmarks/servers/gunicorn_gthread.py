"""``gunicorn-gthread``: gunicorn ``-k gthread --workers P --threads N``, access log off.

``P`` is ``--processes`` (default 1); ``--loop`` is accepted and ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gunicorn.app.base import BaseApplication

from benchmarks.flask_app import app as flask_app
from benchmarks.servers._common import parse_args


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    """Embedded gunicorn application with options set in code."""

    def __init__(self, application: Any, options: dict[str, Any]) -> None:
        self.application = application
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.application


def main(argv: Sequence[str] | None = None) -> None:
    """Run gunicorn with ``--processes`` gthread workers (default one)."""
    args = parse_args(__doc__ or "", argv)
    options = {
        "bind": f"{args.host}:{args.port}",
        "workers": args.processes,
        "worker_class": "gthread",
        "threads": args.threads,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "timeout": 120,
    }
    _Gunicorn(flask_app, options).run()


if __name__ == "__main__":
    main()
