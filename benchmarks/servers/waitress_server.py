"""``waitress``: waitress with ``threads=N`` (waitress has no access log)."""

from __future__ import annotations

from collections.abc import Sequence

import waitress

from benchmarks.flask_app import app as flask_app
from benchmarks.servers._common import parse_args, quiet_logging


def main(argv: Sequence[str] | None = None) -> None:
    """Run waitress."""
    args = parse_args(__doc__ or "", argv)
    quiet_logging()
    waitress.serve(flask_app, host=args.host, port=args.port, threads=args.threads, _quiet=True)


if __name__ == "__main__":
    main()
