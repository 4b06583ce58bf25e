"""Summarise a ``py-spy record -f raw`` profile of a benchmark server per thread group.

``python -m benchmarks.spy_summary PROFILE.raw [--top N]`` prints, for the groups
``loop`` (the main thread: the Tornado IOLoop), ``worker`` (executor threads running a
WSGI job) and ``idle`` (executor threads waiting for a job), the share of samples in
which each function appears (inclusive, counted once per sample) and the top
functions by self samples.  The sampler cannot tell a thread waiting for the GIL from
one running.  See docs/benchmarks.md, "profile all threads".
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

_LINE_NUMBER = re.compile(r":\d+\)")
_PREFIX = re.compile(r"\(/[^)]*/(?:site-packages|python3\.\d+|wt-[\w-]+|main)/")


def _name(frame: str) -> str:
    return _PREFIX.sub("(", _LINE_NUMBER.sub(")", frame))


def group_of(frames: Sequence[str]) -> str:
    """``loop``, ``worker`` or ``idle`` for one stack (outermost frame first).

    py-spy's ``--nonblocking`` stacks of coroutines may start mid-way (no thread
    entry frame); those run on the IOLoop thread, the only one running coroutines.
    """
    stack = ";".join(frames)
    if "Exchange.run" in stack or "run_application" in stack:
        return "worker"
    if frames and frames[0].startswith("Thread._bootstrap"):
        return "idle"
    return "loop"


def summarise(lines: Iterable[str], top: int = 45) -> str:
    """The per-group report of py-spy raw ``lines`` (``frame;frame;... count``)."""
    totals: Counter[str] = Counter()
    inclusive: dict[str, Counter[str]] = {}
    own: dict[str, Counter[str]] = {}
    for line in lines:
        stack, _, count = line.strip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        group = group_of(frames)
        totals[group] += n
        names = {_name(frame) for frame in frames}
        inclusive.setdefault(group, Counter()).update(dict.fromkeys(names, n))
        own.setdefault(group, Counter())[_name(frames[-1])] += n
    out = [str(dict(totals))]
    for group, total in totals.most_common():
        out.append(f"===== {group} {total}")
        for name, n in inclusive[group].most_common(top):
            out.append(f"{100 * n / total:5.1f}% {name}")
        out.append("--- self")
        for name, n in own[group].most_common(15):
            out.append(f"{100 * n / total:5.1f}% {name}")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> None:
    """Print the summary of a raw py-spy profile."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=45)
    args = parser.parse_args(argv)
    print(summarise(args.profile.read_text().splitlines(), args.top))


if __name__ == "__main__":
    main()
