"""bench.peer's report: the machine and versions, a markdown table, JSON and a PNG chart."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import confluent_kafka

from bench import _peer_go
from zeroqueue.embedded import KAFKA_VERSION, find_tansu_binary
from zeroqueue.kq import pusher as pusher_module

__all__ = ["Outcome", "Report", "environment", "write_report"]


@dataclass
class Outcome:
    """One contender's figures for one measure: one per round, or why there are none."""

    rounds: list[Any] = field(default_factory=list)
    error: str = ""


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _broker_version(kind: str) -> str:
    if kind == "kafka":
        return f"Apache Kafka {KAFKA_VERSION} (one KRaft node, zeroqueue.embedded.KafkaBroker)"
    try:
        done = subprocess.run(
            [find_tansu_binary(), "--version"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        version = done.stdout.strip() or "tansu"
    except (OSError, subprocess.SubprocessError):
        version = "tansu"
    return f"{version.replace('tansu', 'Tansu')} (embedded, memory storage)"


def environment(kind: str) -> dict[str, Any]:
    """The date, the machine, the broker and every library's version."""
    go = _peer_go.go_version()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpus": os.cpu_count(),
            "cpu_model": _cpu_model(),
            "platform": platform.platform(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
        },
        "broker": _broker_version(kind),
        "versions": {
            "python": platform.python_version(),
            "zeroqueue": _version("zeroqueue")
            + (" (C hot path)" if getattr(pusher_module, "_FastPush", None) else " (pure Python)"),
            "confluent-kafka": _version("confluent-kafka"),
            "librdkafka": confluent_kafka.libversion()[0],
            "aiokafka": _version("aiokafka"),
            "faststream": _version("faststream"),
            "go": go or "not installed",
            "go-queue": _peer_go.goqueue_version() if go else "not built",
        },
    }


@dataclass
class Report:
    """The outcomes of one run, and what they are measured against."""

    contenders: list[str]
    outcomes: dict[str, dict[str, Outcome]]
    broker: str
    plan: dict[str, Any]
    baseline: str
    seconds: float
    env: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.env:
            self.env = environment(self.broker)

    def figure(self, name: str, measure: str) -> float | None:
        """The median throughput of ``measure`` (push, consume), or None."""
        rounds = self.outcomes[name][measure].rounds
        return float(statistics.median(rounds)) if rounds else None

    def latency(self, name: str) -> tuple[float, float] | None:
        """Median p50 and median p99 over the rounds, in ms, or None."""
        rounds = self.outcomes[name]["latency"].rounds
        if not rounds:
            return None
        return (
            float(statistics.median(r[0] for r in rounds)),
            float(statistics.median(r[1] for r in rounds)),
        )

    def ratio(self, name: str, measure: str) -> float | None:
        """``name``'s figure over the baseline's."""
        ours, base = self.figure(name, measure), self.figure(self.baseline, measure)
        return ours / base if ours is not None and base else None

    # -- markdown -------------------------------------------------------------------

    def markdown(self) -> str:
        """The table, its notes (errors) and the run's conditions."""
        env, plan = self.env, self.plan
        notes: list[str] = []

        def failed(name: str, measure: str) -> str:
            error = self.outcomes[name][measure].error
            if error == "not run":
                return "not run"
            if error.startswith("not run: "):
                notes.append(f"{name}, {measure}: {error}")
                return f"not run [{len(notes)}]"
            notes.append(f"{name}, {measure}: {error}")
            return f"failed [{len(notes)}]"

        def later(name: str, measure: str) -> str:
            """A note mark where a round failed after others had figures."""
            error = self.outcomes[name][measure].error
            if not error:
                return ""
            notes.append(f"{name}, {measure}: a later round failed: {error}")
            return f" [{len(notes)}]"

        measures = plan["measures"]
        header = ["library (face)"]
        for measure in ("push", "consume"):
            if measure in measures:
                header += [f"{measure} msg/s", f"{measure} vs raw"]
        if "latency" in measures:
            header += ["latency p50 ms", "latency p99 ms"]
        rows = []
        for name in self.contenders:
            cells = [name]
            for measure in ("push", "consume"):
                if measure not in measures:
                    continue
                value, ratio = self.figure(name, measure), self.ratio(name, measure)
                if value is None:
                    cells += [failed(name, measure), ""]
                else:
                    cells += [f"{value:,.0f}" + later(name, measure), _ratio(ratio)]
            if "latency" in measures:
                figures = self.latency(name)
                if figures is None:
                    cells += [failed(name, "latency"), ""]
                else:
                    cells += [f"{figures[0]:,.1f}" + later(name, "latency"), f"{figures[1]:,.1f}"]
            rows.append(cells)
        lines = [
            "| " + " | ".join(header) + " |",
            "|---|" + "---:|" * (len(header) - 1),
            *("| " + " | ".join(row) + " |" for row in rows),
        ]
        if notes:
            lines += ["", *(f"[{i}] {note}" for i, note in enumerate(notes, 1))]
        machine, versions = env["machine"], env["versions"]
        parts = [
            f"{measure} {plan[f'{measure}_messages']:,} messages"
            for measure in ("push", "consume")
            if measure in measures
        ]
        if "latency" in measures:
            count = int(plan["rate"] * plan["latency_seconds"])
            parts.append(f"latency {count:,} messages at {plan['rate']:,.0f} msg/s")
        sizes = (
            ", ".join(parts) + f"; values of {plan['value_bytes']} B, {plan['keys']:,} keys,"
            f" {plan['partitions']} partitions"
        )
        rounds = "1 round" if plan["rounds"] == 1 else f"{plan['rounds']} alternating rounds"
        lines += [
            "",
            f"{env['date']}, {env['broker']}; {machine['cpus']} CPUs ({machine['cpu_model']}),"
            f" load average {machine['load_average'][0]} before the run and"
            f" {env.get('load_average_after', '?')} after it; the run took {self.seconds:.0f}s.",
            f"Medians of {rounds}: {sizes}.",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        ]
        return "\n".join(lines)

    def document(self) -> str:
        """peer.md: a title, how it was made, then :meth:`markdown`."""
        command = "python -m bench.peer" + ("" if self.broker == "tansu" else " --broker kafka")
        return (
            f"# Peer report ({'embedded broker' if self.broker == 'tansu' else 'Apache Kafka'})\n\n"
            f"Made by `{command}`; bench/README.md says how each library is set up.\n\n"
            + self.markdown()
            + "\n"
        )

    # -- json -----------------------------------------------------------------------

    def as_json(self) -> dict[str, Any]:
        """Everything: the conditions, every round, the medians and ratios."""
        rows = []
        for name in self.contenders:
            row: dict[str, Any] = {"name": name}
            for measure in ("push", "consume", "latency"):
                outcome = self.outcomes[name][measure]
                entry: dict[str, Any] = {"rounds": outcome.rounds, "error": outcome.error}
                if measure == "latency":
                    figures = self.latency(name)
                    entry |= {
                        "p50_ms": None if figures is None else figures[0],
                        "p99_ms": None if figures is None else figures[1],
                    }
                else:
                    entry |= {
                        "msg_per_s": self.figure(name, measure),
                        "ratio": self.ratio(name, measure),
                    }
                row[measure] = entry
            rows.append(row)
        return {
            **self.env,
            "plan": self.plan,
            "baseline": self.baseline,
            "seconds": round(self.seconds, 1),
            "contenders": rows,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        """A report back from :meth:`as_json`'s output (to redraw it)."""
        rows = data["contenders"]
        env = {k: data[k] for k in ("date", "machine", "broker", "versions", "load_average_after")}
        return cls(
            contenders=[row["name"] for row in rows],
            outcomes={
                row["name"]: {
                    m: Outcome(
                        [tuple(r) if m == "latency" else r for r in row[m]["rounds"]],
                        row[m]["error"],
                    )
                    for m in ("push", "consume", "latency")
                }
                for row in rows
            },
            broker="kafka" if data["broker"].startswith("Apache Kafka") else "tansu",
            plan=data["plan"],
            baseline=data["baseline"],
            seconds=data["seconds"],
            env=env,
        )


def _ratio(ratio: float | None) -> str:
    return "" if ratio is None else f"{ratio:.2f}"


def _missing(report: Report, name: str, measure: str) -> str:
    """What a chart shows where a figure is missing."""
    return "not run" if report.outcomes[name][measure].error.startswith("not run") else "failed"


def _chart(report: Report, path: Path) -> None:
    import matplotlib  # noqa: PLC0415 - an optional extra, and only here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = list(reversed(report.contenders))
    measures = [m for m in ("push", "consume", "latency") if m in report.plan["measures"]]
    figure, axes = plt.subplots(
        1, len(measures), figsize=(5 * len(measures), 0.5 * len(names) + 1.8), sharey=True
    )
    axes = [axes] if len(measures) == 1 else list(axes)
    for axis, measure in zip(axes, measures, strict=True):
        if measure == "latency":
            _latency_panel(report, axis, names)
            continue
        ratios = [report.ratio(name, measure) for name in names]
        colors = ["#2b6cb0" if name.startswith("zeroqueue") else "#a0aec0" for name in names]
        axis.barh(names, [r or 0 for r in ratios], color=colors)
        axis.axvline(1.0, color="#444", linewidth=0.8, linestyle="--")
        for y, (name, ratio) in enumerate(zip(names, ratios, strict=True)):
            value = report.figure(name, measure)
            label = (
                _missing(report, name, measure)
                if ratio is None or value is None
                else f"{ratio:.2f}x ({value:,.0f}/s)"
            )
            axis.text((ratio or 0) + 0.02, y, label, va="center", fontsize=8)
        axis.set_title(f"{measure} msg/s, ratio to raw confluent-kafka", fontsize=10)
        axis.set_xlim(0, max([r or 0 for r in ratios] + [1.0]) * 1.5)
    env = report.env
    figure.suptitle(
        f"zeroqueue and its peers, each at its defaults, one run on {env['broker']};"
        f" {env['machine']['cpus']} CPUs, {env['date']}",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _latency_panel(report: Report, axis: Any, names: list[str]) -> None:
    latencies = [report.latency(name) for name in names]
    shown = [f for f in latencies if f is not None]
    low = min([f[0] for f in shown] + [10.0]) / 3
    high = max([f[1] for f in shown] + [10.0]) * 20
    ys = range(len(names))
    p50 = [f[0] if f else 0 for f in latencies]
    p99 = [f[1] if f else 0 for f in latencies]
    axis.barh([y + 0.2 for y in ys], p50, height=0.4, color="#2b6cb0", label="p50")
    axis.barh([y - 0.2 for y in ys], p99, height=0.4, color="#90cdf4", label="p99")
    for y, (name, figures) in enumerate(zip(names, latencies, strict=True)):
        if figures is None:
            axis.text(low * 1.1, y, _missing(report, name, "latency"), va="center", fontsize=8)
        else:
            label = f"{figures[0]:,.1f} / {figures[1]:,.1f} ms"
            axis.text(figures[1] * 1.15, y, label, va="center", fontsize=8)
    axis.set_xscale("log")
    axis.set_xlim(low, high)
    axis.set_title(
        f"latency p50 / p99 at {report.plan['rate']:,.0f} msg/s, ms (log scale)", fontsize=10
    )
    axis.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, fontsize=8)


def write_report(report: Report, directory: Path, stem: str) -> list[Path]:
    """Write ``stem``.md, .json and .png to ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    md, data, png = (directory / f"{stem}{suffix}" for suffix in (".md", ".json", ".png"))
    md.write_text(report.document())
    data.write_text(json.dumps(report.as_json(), indent=2) + "\n")
    _chart(report, png)
    return [md, data, png]
