"""``gunicorn-gthread``: gunicorn ``-k gthread --workers 1 --threads N``, access log off."""

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
    """Run gunicorn with one gthread worker."""
    args = parse_args(__doc__ or "", argv)
    options = {
        "bind": f"{args.host}:{args.port}",
        "workers": 1,
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
