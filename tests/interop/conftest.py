"""The Go program of ``goqueue/`` (go-queue itself), built once per session, and how to run it.

Also brings tests/dq's beanstalkd fixtures here, for the delay queue's interop tests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REQUIRE_SERVERS
from tests.dq.conftest import beanstalkd_nodes, dq_conf
from zeroqueue._locks import exclusive

__all__ = ["GO_TIMEOUT", "TEST_TIMEOUT", "beanstalkd_nodes", "dq_conf", "goqueue", "run_go"]

GO_MODULE = Path(__file__).parent / "goqueue"
# A first build compiles go-zero, kafka-go, go-redis and OpenTelemetry: over a minute on 2 cores.
BUILD_TIMEOUT = 600.0
# How long the Go program may run; the subprocess gets a little more, so that the
# program's own timeout, which says how far it got, is what normally fires.
GO_TIMEOUT = 90.0
# pytest-timeout counts the first test's fixtures too, and so the build.
TEST_TIMEOUT = BUILD_TIMEOUT + 2 * GO_TIMEOUT


@pytest.fixture(scope="session")
def goqueue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go program of ``goqueue/``, built once per session with the committed go.sum."""
    go = shutil.which("go")
    if go is None:
        message = "go is not installed (https://go.dev/dl/; the interop tests build go-queue)"
        if REQUIRE_SERVERS:
            pytest.fail(message)
        pytest.skip(message)
    binary = tmp_path_factory.mktemp("goqueue") / "goqueue"
    # -mod=readonly: go.mod and go.sum are used as committed, never rewritten;
    # -buildvcs=false: no git calls (the module sits inside this repository);
    # GOWORK=off: a go.work file further up must not pull the module into a workspace.
    command = [go, "build", "-mod=readonly", "-buildvcs=false", "-o", str(binary), "."]
    # One build at a time (each test worker builds its own): the second one finds
    # the packages in Go's build cache instead of compiling them beside the first.
    try:
        with exclusive(tmp_path_factory.getbasetemp().parent / "goqueue-build.lock"):
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
        pytest.fail(f"go build of {GO_MODULE} took more than {BUILD_TIMEOUT:.0f}s")
    if built.returncode != 0:
        pytest.fail(f"go build of {GO_MODULE} failed:\n{built.stderr}")
    return binary


def run_go(binary: Path, *args: str, timeout: float = GO_TIMEOUT) -> list[dict[str, Any]]:
    """Run the Go program to the end and return its JSON lines; fail on a non-zero exit."""
    command = [str(binary), *args, "-timeout", f"{timeout:.0f}s"]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout + 30, check=False
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{' '.join(command)} hung (killed after {exc.timeout:.0f}s)")
    if done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited with {done.returncode}:\n{done.stderr}")
    try:
        return [json.loads(line) for line in done.stdout.splitlines()]
    except json.JSONDecodeError:
        pytest.fail(f"{' '.join(command)} printed more than JSON lines:\n{done.stdout}")
