"""Aggregate benchmark samples and write Markdown, JSON and PNG reports."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.scenarios import SCENARIOS, Metric


def write_results(
    out_dir: Path, name: str, data: Mapping[str, Any], markdown: Callable[[Any], str]
) -> None:
    """Write a run's results as ``<out_dir>/<name>.json`` and ``<name>.md``; print both paths.

    :param out_dir: the results folder (created if missing).
    :param name: the file stem, e.g. ``"issue-15-native-lane"``.
    :param data: the run's data, already JSON-safe (:func:`json_safe`).
    :param markdown: renders ``data`` as the Markdown report.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / f"{name}.json"
    md_path = out_dir / f"{name}.md"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    md_path.write_text(markdown(data))
    print(f"wrote json: {json_path}\nwrote md: {md_path}")


#: samples[scenario][server][metric] -> one value per round
Samples = dict[str, dict[str, dict[str, list[float]]]]
Stats = dict[str, float]

NOT_RATIOED = {
    "errors",
    "blocked_in_flight",
    "blocked_done",
    "served",
    "shed",
    "offered_rps",
    "shed_share",
    "unfinished_share",
    "native_idle_p99_ms",
    "rss_start_mib",
    "rss_end_mib",
}


def summarize(values: Sequence[float]) -> Stats:
    """Median, min, max, quartiles and count of the finite ``values``."""
    vals = sorted(v for v in values if isinstance(v, int | float) and math.isfinite(v))
    if not vals:
        nan = float("nan")
        return {"median": nan, "min": nan, "max": nan, "q1": nan, "q3": nan, "n": 0}
    if len(vals) >= 2:
        q1, _, q3 = statistics.quantiles(vals, n=4, method="inclusive")
    else:
        q1 = q3 = vals[0]
    return {
        "median": statistics.median(vals),
        "min": vals[0],
        "max": vals[-1],
        "q1": q1,
        "q3": q3,
        "n": len(vals),
    }


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by ``None`` (in nested dicts and lists),
    so the JSON written is standard."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def summarize_all(samples: Samples) -> dict[str, dict[str, dict[str, Stats]]]:
    """Apply :func:`summarize` to every scenario/server/metric."""
    return {
        scen: {
            server: {metric: summarize(vals) for metric, vals in metrics.items()}
            for server, metrics in by_server.items()
        }
        for scen, by_server in samples.items()
    }


def _median(summary: Mapping[str, Any], scen: str, server: str, metric: str) -> float:
    try:
        return float(summary[scen][server][metric]["median"])
    except KeyError:
        return float("nan")


def ratios(summary: Mapping[str, Any], reference: str) -> dict[str, dict[str, dict[str, float]]]:
    """Ratio reference/peer of the medians, for every scenario, peer and metric."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for scen, by_server in summary.items():
        if reference not in by_server:
            continue
        for peer in by_server:
            if peer == reference:
                continue
            row: dict[str, float] = {}
            for metric in by_server[reference]:
                if metric in NOT_RATIOED:
                    continue
                ref = _median(summary, scen, reference, metric)
                other = _median(summary, scen, peer, metric)
                row[metric] = ref / other if other and math.isfinite(other) else float("nan")
            out.setdefault(scen, {})[peer] = row
    return out


@dataclass(frozen=True)
class Target:
    """A goal for the reference server: an absolute bound or a ratio against a peer."""

    id: str
    text: str
    scenario: str
    metric: str
    op: str  # ">=" or "<="
    threshold: float
    peer: str | None = None
    aim: bool = False

    def evaluate(self, summary: Mapping[str, Any], reference: str) -> dict[str, Any]:
        """Return the target's value and status (met / not met / n/a) for ``reference``."""
        base = {"id": self.id, "target": self.text, "aim": self.aim}
        by_server = summary.get(self.scenario, {})
        if reference not in by_server:
            return {**base, "value": None, "status": f"n/a ({reference} not run)"}
        ref = _median(summary, self.scenario, reference, self.metric)
        if self.peer is not None:
            if self.peer == reference:
                return {**base, "value": None, "status": "n/a (reference is the peer)"}
            if self.peer not in by_server:
                return {**base, "value": None, "status": f"n/a ({self.peer} not run)"}
            peer = _median(summary, self.scenario, self.peer, self.metric)
            value = ref / peer if peer else float("nan")
        else:
            value = ref
        if not math.isfinite(value):
            return {**base, "value": None, "status": "n/a (no data)"}
        met = value >= self.threshold if self.op == ">=" else value <= self.threshold
        status = "met" if met else ("not met (aim)" if self.aim else "not met")
        return {**base, "value": value, "status": status}


def default_targets(reference: str = "hybrid") -> list[Target]:
    """The issue's targets, phrased for ``reference`` (normally ``hybrid``)."""
    r = reference
    out: list[Target] = []
    for scen in ("S1", "S2"):
        out += [
            Target(
                f"{scen}a",
                f"{scen} req/s {r} ≥ 1.5x tornado-wsgi",
                scen,
                "rps",
                ">=",
                1.5,
                "tornado-wsgi",
            ),
            Target(
                f"{scen}b",
                f"{scen} req/s {r} ≥ 1.0x gunicorn-gthread",
                scen,
                "rps",
                ">=",
                1.0,
                "gunicorn-gthread",
            ),
            Target(
                f"{scen}c",
                f"{scen} req/s {r} ≥ 1.0x waitress (aim)",
                scen,
                "rps",
                ">=",
                1.0,
                "waitress",
                aim=True,
            ),
            Target(
                f"{scen}d",
                f"{scen} p99 {r} ≤ gunicorn-gthread's",
                scen,
                "p99_ms",
                "<=",
                1.0,
                "gunicorn-gthread",
            ),
        ]
    out += [
        Target(
            "SN",
            f"native route req/s {r} ≥ 0.9x tornado-bare",
            "SN",
            "rps",
            ">=",
            0.9,
            "tornado-bare",
        ),
        Target("S3", "burst wall time ≤ 1.1x ideal", "S3", "x_ideal", "<=", 1.1),
        Target("S4", "native p99 loaded ≤ 2x idle", "S4", "p99_ratio", "<=", 2.0),
        Target("S7", "burst cleared in ~1 s: no 503", "S7", "shed", "<=", 0.0),
        Target("S8a", "10x overload: ≥ 50% shed with 503", "S8", "shed_share", ">=", 0.5),
        Target("S8b", "10x overload: native p99 ≤ 2x idle", "S8", "native_p99_ratio", "<=", 2.0),
        Target("S8c", "10x overload: peak RSS growth ≤ 32 MiB", "S8", "rss_growth_mib", "<=", 32.0),
        Target("S5a", "stream first byte ≤ 5 ms", "S5", "ttfb_ms", "<=", 5.0),
        Target("S5b", "stream peak RSS growth ≤ 32 MiB", "S5", "rss_growth_mib", "<=", 32.0),
        Target("S5c", f"stream rate {r} ≥ waitress's", "S5", "mib_s", ">=", 1.0, "waitress"),
        Target("S6a", "upload peak RSS growth ≤ 32 MiB", "S6", "rss_growth_mib", "<=", 32.0),
        Target(
            "S6b",
            f"upload time {r} ≤ gunicorn-gthread's",
            "S6",
            "seconds",
            "<=",
            1.0,
            "gunicorn-gthread",
        ),
    ]
    return out


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    if value == 0:
        return "0"
    mag = abs(value)
    if mag >= 1000:
        return f"{value:,.0f}"
    if mag >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}g}"


def md_ratio(value: float | None) -> str:
    """A ratio for a Markdown cell: ``1.25x``, or ``-`` when unknown."""
    shown = _fmt(value)
    return shown if shown == "-" else shown + "x"


def md_cell(stats: Mapping[str, float] | None) -> str:
    """A Markdown cell of :func:`summarize` stats: ``median [min-max]`` (``-`` when empty)."""
    if not stats or not stats.get("n"):
        return "-"
    med, lo, hi = stats["median"], stats["min"], stats["max"]
    if stats["n"] == 1 or lo == hi:
        return _fmt(med)
    return f"{_fmt(med)} [{_fmt(lo)}-{_fmt(hi)}]"


def metric_header(metric: Metric) -> str:
    """A column header for ``metric``: its label and unit."""
    if not metric.unit or metric.unit == metric.label:
        return metric.label
    return f"{metric.label} ({metric.unit})"


def md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def md_closing_sections(
    meta: Mapping[str, Any], errors: Sequence[Mapping[str, Any]], unit: str
) -> list[str]:
    """The last sections of a report: Machine, Versions and, when any, Errors.

    :param meta: the run's ``meta`` (``machine`` and ``versions`` mappings).
    :param errors: ``{"round": n, unit: name, "error": text}`` per failed run.
    :param unit: what a run measured (``"side"``, ``"backend"``): the Errors column.
    """
    lines = ["", "## Machine", ""]
    lines += md_table(["item", "value"], [[k, str(v)] for k, v in meta["machine"].items()])
    lines += ["", "## Versions", ""]
    lines += md_table(["component", "version"], [[k, str(v)] for k, v in meta["versions"].items()])
    if errors:
        lines += ["", "## Errors", ""]
        lines += md_table(
            ["round", unit, "error"],
            [[str(e["round"]), e[unit], e["error"].replace("\n", " ")[:300]] for e in errors],
        )
    return lines


def render_markdown(data: Mapping[str, Any]) -> str:
    """Render the full results document from the JSON-shaped ``data``."""
    meta = data["meta"]
    summary = data["summary"]
    reference = meta["reference"]
    lines = ["# Benchmark results", ""]
    if meta["mode"] != "full":
        lines += [
            "> **QUICK RUN** — the settings differ from the full-run defaults (fewer rounds,",
            "> shorter measurements, smaller transfers, or unpinned). These numbers are",
            "> indicative only and are not the final results.",
            "",
        ]
    cfg = meta["config"]
    processes = cfg.get("processes", 1)
    pin = (
        f"servers on CPU {cfg['server_cpu']}, load generators on CPU {cfg['client_cpu']}"
        if cfg["pinned"] and processes == 1
        else f"{processes} server processes on every CPU, load generators on CPU "
        f"{cfg['client_cpu']} (they compete with the servers for it)"
        if cfg["pinned"]
        else "unpinned"
    )
    lines += [
        f"- Mode: **{meta['mode']}**; started {meta['started']}, took {meta['elapsed_s']:.0f} s",
        f"- Command: `{meta['command']}`",
        f"- Rounds: {cfg['rounds']} (servers interleaved, order rotated every round); "
        f"wrk {cfg['duration']:g} s per measurement after {cfg['warmup']:g} s warm-up, "
        f"-c{cfg['connections']} -t{cfg['wrk_threads']}",
        f"- WSGI threads: {cfg['threads']}; burst {cfg['burst']} x /block?ms={cfg['block_ms']} "
        f"(ideal {meta['ideal_burst_s']:g} s); S4 {cfg['s4_blockers']} blockers x "
        f"/block?ms={cfg['s4_block_ms']}, wrk -c{cfg['s4_connections']}; "
        f"S7 {cfg.get('s7_burst', '-')} x /block?ms={cfg.get('s7_block_ms', '-')}; "
        f"S8 {cfg.get('overload_factor', '-')}x the pool's /block capacity, open loop; "
        f"stream {cfg['stream_mb']:g} MiB; upload {cfg['upload_mb']:g} MiB",
        f"- Pinning: {pin}",
        f"- Servers: {', '.join(meta['servers'])}",
        "- Cells: median over rounds [min-max]. Ratios: "
        f"{reference}/peer of the medians (for req/s and MiB/s higher is better, "
        "for times and latencies lower is better).",
        "",
        "## Machine",
        "",
    ]
    lines += md_table(["item", "value"], [[k, str(v)] for k, v in meta["machine"].items()])
    lines += ["", "## Versions", ""]
    lines += md_table(["component", "version"], [[k, str(v)] for k, v in meta["versions"].items()])
    lines += ["", f"## Targets (reference: {reference})", ""]
    rows = []
    for t in data["targets"]:
        value = t["value"]
        shown = "-" if value is None else _fmt(value)
        rows.append([t["id"], t["target"], shown, f"**{t['status']}**"])
    lines += md_table(["id", "target", "value", "status"], rows)
    lines += [
        "",
        "Ratio targets show reference/peer of the medians; S3 shows wall/ideal; S4 shows "
        "the median of the per-round loaded/idle p99 ratios.",
    ]
    for scen_id, scen in SCENARIOS.items():
        by_server = summary.get(scen_id)
        if not by_server:
            continue
        lines += ["", f"## {scen_id} — {scen.title}", ""]
        header = ["server", *(metric_header(m) for m in scen.metrics)]
        rows = [
            [server, *(md_cell(by_server[server].get(m.key)) for m in scen.metrics)]
            for server in by_server
        ]
        lines += md_table(header, rows)
        scen_ratios = data["ratios"].get(scen_id, {})
        if scen_ratios:
            ratio_metrics = [m for m in scen.metrics if m.key not in NOT_RATIOED]
            lines += ["", f"Ratios {reference}/peer:", ""]
            header = ["peer", *(m.label for m in ratio_metrics)]
            rows = [
                [peer, *(md_ratio(vals.get(m.key)) for m in ratio_metrics)]
                for peer, vals in scen_ratios.items()
            ]
            lines += md_table(header, rows)
    if data["errors"]:
        lines += ["", "## Errors", ""]
        lines += md_table(
            ["round", "server", "scenario", "error"],
            [
                [str(e["round"]), e["server"], e["scenario"], e["error"].replace("\n", " ")[:300]]
                for e in data["errors"]
            ],
        )
    if meta.get("skipped"):
        lines += ["", "## Skipped", ""]
        lines += [f"- {name}: {why}" for name, why in meta["skipped"].items()]
    return "\n".join(lines) + "\n"


def render_png(data: Mapping[str, Any], path: Path) -> None:
    """Draw one bar chart per scenario (primary metric, median with min-max whiskers)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = data["summary"]
    panels: list[tuple[str, str, Metric]] = []
    for scen_id, scen in SCENARIOS.items():
        if scen_id not in summary:
            continue
        metric = next(m for m in scen.metrics if m.key == scen.primary)
        panels.append((scen_id, scen.title, metric))
        if scen_id in ("S5", "S6"):
            rss = next(m for m in scen.metrics if m.key == "rss_growth_mib")
            panels.append((scen_id, scen.title, rss))
    if not panels:
        return
    cols = min(3, len(panels))
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5.2 * cols, 3.6 * nrows), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    servers = data["meta"]["servers"]
    for ax, (scen_id, _title, metric) in zip(axes.flat, panels, strict=False):
        by_server = summary[scen_id]
        names = [s for s in servers if s in by_server]
        stats = [by_server[s].get(metric.key, {}) for s in names]
        med = [st.get("median", float("nan")) for st in stats]
        lo = [
            max(m - st.get("min", m), 0) if math.isfinite(m) else 0
            for m, st in zip(med, stats, strict=True)
        ]
        hi = [
            max(st.get("max", m) - m, 0) if math.isfinite(m) else 0
            for m, st in zip(med, stats, strict=True)
        ]
        ax.bar(
            range(len(names)),
            [m if math.isfinite(m) else 0 for m in med],
            yerr=[lo, hi],
            color=[colors[servers.index(n) % len(colors)] for n in names],
            capsize=3,
        )
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        better = "higher" if metric.higher_is_better else "lower"
        ax.set_title(f"{scen_id}: {metric.label} ({better} is better)", fontsize=9)
        ax.set_ylabel(metric.unit or metric.label, fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    label = "QUICK RUN — " if data["meta"]["mode"] != "full" else ""
    fig.suptitle(f"{label}median over rounds, whiskers min-max", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_reports(data: dict[str, Any], out_dir: Path, png: bool = True) -> dict[str, Path]:
    """Write ``latest.json``, ``latest.md`` and (optionally) ``latest.png`` to ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "latest.json", "md": out_dir / "latest.md"}
    paths["json"].write_text(json.dumps(data, indent=2, allow_nan=True, default=str) + "\n")
    paths["md"].write_text(render_markdown(data))
    if png:
        paths["png"] = out_dir / "latest.png"
        render_png(data, paths["png"])
    return paths


BEGIN_MARK = "<!-- BEGIN BENCHMARK RESULTS (generated by python -m benchmarks.run) -->"
END_MARK = "<!-- END BENCHMARK RESULTS -->"


def update_doc(doc: Path, markdown: str) -> None:
    """Replace the generated results section of ``doc`` (between the markers)."""
    text = doc.read_text()
    start, end = text.find(BEGIN_MARK), text.find(END_MARK)
    if start < 0 or end < start:
        raise ValueError(f"{doc} lacks the results markers")
    body = markdown.replace("# Benchmark results", "### Latest full run", 1)
    body = body.replace("\n## ", "\n#### ")
    text = text[: start + len(BEGIN_MARK)] + "\n\n" + body + "\n" + text[end:]
    doc.write_text(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Re-render ``latest.md`` and ``latest.png`` next to a results JSON file."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.report",
        description="Re-render the Markdown and PNG reports from a results JSON file.",
    )
    default = Path(__file__).resolve().parent / "results" / "latest.json"
    parser.add_argument("json_path", nargs="?", type=Path, default=default)
    parser.add_argument("--no-png", action="store_true")
    args = parser.parse_args(argv)
    data = json.loads(args.json_path.read_text())
    out_dir = args.json_path.parent
    (out_dir / "latest.md").write_text(render_markdown(data))
    if not args.no_png:
        render_png(data, out_dir / "latest.png")
    print(f"re-rendered reports in {out_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
