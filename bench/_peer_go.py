"""go-queue itself in bench.peer: the Go program of ``bench/goqueue``, built when Go is there."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench._common import unique
from bench._peer_measure import READY_TIMEOUT, RUN_TIMEOUT, send_stamped
from bench._peers import Load

__all__ = ["GO_MODULE", "build", "consume", "go_version", "goqueue_version", "latency", "push"]

GO_MODULE = Path(__file__).parent / "goqueue"
# A first build compiles go-zero and kafka-go: over a minute on 2 cores.
BUILD_TIMEOUT = 600.0
# What the program may take for one run; the subprocess gets a little more, so the
# program's own timeout, which says how far it got, is what normally fires.
GO_TIMEOUT = 240.0


def go_version() -> str:
    """``go version``'s version, or "" without Go."""
    go = shutil.which("go")
    if go is None:
        return ""
    done = subprocess.run([go, "version"], capture_output=True, text=True, timeout=30, check=False)
    parts = done.stdout.split()
    return parts[2].removeprefix("go") if len(parts) > 2 else ""


def goqueue_version() -> str:
    """The go-queue version go.mod requires."""
    for line in (GO_MODULE / "go.mod").read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["github.com/zeromicro/go-queue"]:
            return parts[1]
    return "?"


def build() -> Path:
    """Build the program into a temporary directory; raise with the reason when it cannot be."""
    go = shutil.which("go")
    if go is None:
        raise FileNotFoundError("go is not on PATH (https://go.dev/dl/)")
    binary = Path(tempfile.mkdtemp(prefix="bench-goqueue-")) / "goqueue"
    # -mod=readonly: go.mod and go.sum as committed; GOWORK=off: no workspace above.
    command = [go, "build", "-mod=readonly", "-buildvcs=false", "-o", str(binary), "."]
    try:
        built = subprocess.run(
            command,
            cwd=GO_MODULE,
            env={**os.environ, "GOWORK": "off"},
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise TimeoutError(f"go build took more than {BUILD_TIMEOUT:.0f}s") from None
    if built.returncode != 0:
        raise RuntimeError(f"go build failed: {built.stderr.strip()[-500:]}")
    return binary


def _run(binary: Path, *args: str) -> dict[str, Any]:
    command = [str(binary), *args, "-timeout", f"{GO_TIMEOUT:.0f}s"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=GO_TIMEOUT + 30, check=False
        )
    except subprocess.TimeoutExpired:
        raise TimeoutError(
            f"goqueue {args[0]} hung (killed after {GO_TIMEOUT + 30:.0f}s)"
        ) from None
    if done.returncode != 0:
        raise RuntimeError(f"goqueue {args[0]} exited with {done.returncode}: {_last(done.stderr)}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def _last(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(nothing on stderr)"


def push(binary: Path, brokers: str, load: Load) -> float:
    """kq.NewPusher(brokers, topic) with no options: PushWithKey each, then Close."""
    figures = _run(
        binary,
        "push",
        "-brokers",
        brokers,
        "-topic",
        load.topic,
        "-count",
        str(load.count),
        "-keys",
        str(len(load.keys)),
        "-size",
        str(len(load.value)),
    )
    return float(figures["rate"])


def consume(binary: Path, brokers: str, topic: str, count: int) -> float:
    """kq.MustNewQueue at go-queue's defaults with a counting handler."""
    args = ("-brokers", brokers, "-topic", topic, "-group", unique("peer-go"), "-count", str(count))
    return float(_run(binary, "consume", *args)["rate"])


def latency(
    binary: Path, brokers: str, topic: str, *, rate: float, count: int, keys: Sequence[str]
) -> tuple[float, float]:
    """p50 and p99 in ms of go-queue's queue, fed by this process's stamped producer."""
    group = unique("peer-go")
    args = ["-brokers", brokers, "-topic", topic, "-group", group, "-count", str(count)]
    timeout = READY_TIMEOUT + RUN_TIMEOUT
    with tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(
            [str(binary), "latency", *args, "-timeout", f"{timeout:.0f}s"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
        lines: queue.Queue[str] = queue.Queue()

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                lines.put(line)

        threading.Thread(target=read, daemon=True).start()

        def failed() -> RuntimeError:
            stderr.seek(0)
            return RuntimeError(
                f"goqueue latency exited with {process.returncode}: {_last(stderr.read())}"
            )

        def ready() -> bool:
            if not lines.empty():
                return bool(json.loads(lines.get()).get("ready"))
            if process.poll() is not None:
                raise failed()
            return False

        try:
            send_stamped(brokers, topic, rate=rate, count=count, keys=keys, ready=ready)
            try:
                figures = json.loads(lines.get(timeout=RUN_TIMEOUT))
            except queue.Empty:
                if process.poll() is not None:
                    raise failed() from None
                raise TimeoutError(
                    f"goqueue latency: no figures within {RUN_TIMEOUT:.0f}s"
                ) from None
            process.wait(30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(10)
    return float(figures["p50_ms"]), float(figures["p99_ms"])
