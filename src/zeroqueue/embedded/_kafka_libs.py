"""Find Java and a directory of Apache Kafka's jars, or fetch the jars with Maven.

The jars come from, in this order: ``$ZEROQUEUE_KAFKA_LIBS``, the ``libs/`` of
the Apache Kafka distribution in ``$KAFKA_HOME``, or zeroqueue's cache, which
:func:`fetch_kafka_libs` fills from Maven Central with the pom shipped beside
this module. A filled cache is never downloaded again.
"""

from __future__ import annotations

import importlib.resources
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from zeroqueue._locks import exclusive
from zeroqueue.errors import EmbeddedBrokerError

__all__ = [
    "KAFKA_LIBS_ENV_VAR",
    "KAFKA_VERSION",
    "fetch_kafka_libs",
    "find_java",
    "find_kafka_libs",
    "kafka_libs_cache",
]

#: The Apache Kafka release the shipped pom fetches.
KAFKA_VERSION = "4.4.0"
#: Set this to a directory of Kafka jars to use it instead of the others.
KAFKA_LIBS_ENV_VAR = "ZEROQUEUE_KAFKA_LIBS"
# Kafka 4 brokers need Java 17.
_MIN_JAVA = 17
_POM = "kafka-libs.pom.xml"
_HOW_TO_GET_JARS = (
    "Set KAFKA_HOME to an Apache Kafka 4.x distribution (https://kafka.apache.org/downloads), "
    f"set {KAFKA_LIBS_ENV_VAR} to a directory of its jars, or run `zeroqueue kafka-libs` "
    "(needs Maven and Java 17) to fetch them from Maven Central into {cache}"
)


def kafka_libs_cache(version: str = KAFKA_VERSION) -> Path:
    """Where :func:`fetch_kafka_libs` keeps the jars of ``version``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "zeroqueue" / f"kafka-{version}" / "libs"


def _has_kafka_jars(directory: Path) -> bool:
    return directory.is_dir() and any(directory.glob("kafka_2.13-*.jar"))


def find_kafka_libs(libs: str | os.PathLike[str] | None = None) -> Path:
    """Return a directory holding Apache Kafka's broker jars.

    Looks at ``libs``, then ``$ZEROQUEUE_KAFKA_LIBS``, ``$KAFKA_HOME/libs`` and
    zeroqueue's cache.

    Raises:
        EmbeddedBrokerError: none holds them; the message says how to get them.

    """
    hint = _HOW_TO_GET_JARS.format(cache=kafka_libs_cache())
    explicit = [
        (what, value)
        for what, value in (
            ("libs", os.fspath(libs) if libs is not None else ""),
            (KAFKA_LIBS_ENV_VAR, os.environ.get(KAFKA_LIBS_ENV_VAR, "")),
        )
        if value
    ]
    for what, value in explicit:
        if not _has_kafka_jars(Path(value)):
            raise EmbeddedBrokerError(
                f"{what}={value!r} holds no Apache Kafka broker jars (kafka_2.13-*.jar). {hint}"
            )
        return Path(value)
    home = os.environ.get("KAFKA_HOME")
    if home:
        if not _has_kafka_jars(Path(home) / "libs"):
            raise EmbeddedBrokerError(
                f"KAFKA_HOME={home!r} has no libs/kafka_2.13-*.jar: "
                f"is it an Apache Kafka distribution? {hint}"
            )
        return Path(home) / "libs"
    cache = kafka_libs_cache()
    if _has_kafka_jars(cache):
        return cache
    raise EmbeddedBrokerError(f"No Apache Kafka jars found. {hint}")


def fetch_kafka_libs(version: str = KAFKA_VERSION, *, quiet: bool = True) -> Path:
    """Download Apache Kafka ``version``'s broker jars with Maven, once; return their directory.

    A cache that already holds them is returned as it is, without running Maven.

    Raises:
        EmbeddedBrokerError: Maven is missing or could not fetch the jars.

    """
    target = kafka_libs_cache(version)
    if _has_kafka_jars(target):
        return target
    mvn = shutil.which("mvn")
    if mvn is None:
        raise EmbeddedBrokerError(
            "Maven (mvn) is not installed, so Kafka's jars cannot be fetched; install Maven "
            "(apt-get install -y maven), or set KAFKA_HOME to an Apache Kafka distribution"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    # Two Mavens at once would share ~/.m2, which Maven does not lock.
    with exclusive(target.parent / ".lock"):
        if _has_kafka_jars(target):
            return target  # fetched by another process while this one waited
        _fetch_into(target, mvn, version, quiet=quiet)
    return target


def _fetch_into(target: Path, mvn: str, version: str, *, quiet: bool) -> None:
    pom = importlib.resources.files("zeroqueue.embedded").joinpath(_POM)
    with (
        importlib.resources.as_file(pom) as pom_path,
        tempfile.TemporaryDirectory(dir=target.parent) as staging,
    ):
        command = [
            mvn,
            "-B",
            *(["-q"] if quiet else []),
            "-f",
            str(pom_path),
            f"-Dkafka.version={version}",
            "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}/libs",
            "-DincludeScope=runtime",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not _has_kafka_jars(Path(staging) / "libs"):
            output = (result.stdout + result.stderr).strip().splitlines()[-15:]
            raise EmbeddedBrokerError(
                f"Maven could not fetch Apache Kafka {version} (exit status "
                f"{result.returncode}):\n" + "\n".join(output)
            )
        try:
            # Whatever holds the cache's place without the jars (a fetch cut short
            # outside this function, a stray file) is not a cache: replace it.
            if target.is_dir() and not _has_kafka_jars(target):
                shutil.rmtree(target)
            elif target.exists() and not target.is_dir():
                target.unlink()
            # Whole or not at all: a half-filled cache would be taken for a full one.
            os.replace(Path(staging) / "libs", target)
        except OSError as exc:
            # Where there is no lock, another process may have filled it meanwhile.
            if not _has_kafka_jars(target):
                raise EmbeddedBrokerError(
                    f"cannot put Apache Kafka's jars in {target}: {exc}"
                ) from exc


def find_java(java: str | os.PathLike[str] | None = None) -> str:
    """Return a ``java`` executable of version 17 or later.

    Looks at ``java``, then ``$JAVA_HOME/bin/java``, then ``java`` on PATH.

    Raises:
        EmbeddedBrokerError: none is found, or it is older than Java 17.

    """
    java_home = os.environ.get("JAVA_HOME")
    candidate = (
        os.fspath(java)
        if java is not None
        else (os.path.join(java_home, "bin", "java") if java_home else shutil.which("java"))
    )
    if not candidate or not os.access(candidate, os.X_OK):
        raise EmbeddedBrokerError(
            f"Java {_MIN_JAVA} or later is needed to run Apache Kafka and none was found "
            f"(JAVA_HOME={java_home!r}, nothing called java on PATH): install a JDK, e.g. "
            "apt-get install -y openjdk-17-jre-headless"
        )
    try:
        result = subprocess.run(
            [candidate, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EmbeddedBrokerError(f"{candidate} -version failed: {exc}") from exc
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if match is None:
        raise EmbeddedBrokerError(f"cannot tell the version of {candidate}: {result.stderr!r}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0" is Java 8
        major = int(match.group(2))
    if major < _MIN_JAVA:
        raise EmbeddedBrokerError(
            f"{candidate} is Java {major}; Apache Kafka 4 needs Java {_MIN_JAVA} or later "
            "(set JAVA_HOME to a newer JDK)"
        )
    return candidate
