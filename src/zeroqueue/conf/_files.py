"""Read a config file: YAML, JSON or TOML, with ``${ENV}`` expanded in its values.

go-zero's ``conf.UseEnv()`` expands ``${NAME}`` in the file's text before parsing
it, so a ``${NAME}`` in a comment must be set too, and a value holding `` #`` or
``: `` is reparsed (``s3cr3t #2024`` loses its end as a comment). zeroqueue
expands the parsed values instead: comments are never expanded, and a variable's
value is taken verbatim, as a string (a model's ``int`` field still reads
``"8080"``). ``${NAME}`` may still sit where YAML would not take ``{``, as in
``Brokers: [${KAFKA_BROKERS}]``: before parsing, each one is swapped for a marker
that YAML takes as plain text, and the markers in the parsed values are replaced.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from zeroqueue.conf._keys import KeyPath, at
from zeroqueue.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["read_document"]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NO_MARKER = re.compile(r"(?!)")  # env=False: no marker, matches nothing
# Where tomllib says the problem is, at the end of its message.
_TOML_PLACE = re.compile(r"\(at line (\d+), column (\d+)\)$")


def read_document(path: str | os.PathLike[str], *, env: bool = True) -> Any:
    """The parsed contents of ``path``, with ``${NAME}`` expanded in its values.

    Environment variables replace ``${NAME}`` in string values and keys, never in
    comments (see the module's docstring).

    The format follows the suffix: ``.json``, ``.toml``, else YAML (which also
    reads JSON). Error messages locate a syntax error by line and column and
    never quote the file's text: it may hold a password.

    Raises:
        ConfigError: the file cannot be read, an environment variable a value uses
            is not set (named with the value's key path), or it is not valid in its
            format.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    names: list[str] = []
    marker = _NO_MARKER
    if env:
        text, names, marker = _mark(text)
    suffix = file.suffix.lower()
    problem: str | None = None
    try:
        if suffix == ".json":
            document = json.loads(text)
        elif suffix == ".toml":
            document = tomllib.loads(text)
        else:
            document = yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        where = _place(text, marker, exc.lineno, exc.colno)
        problem = f"not valid JSON: {exc.msg} ({where})"
    except tomllib.TOMLDecodeError as exc:
        located = _TOML_PLACE.search(str(exc))
        if located is None:
            problem = f"not valid TOML: {exc}"
        else:
            where = _place(text, marker, int(located.group(1)), int(located.group(2)))
            problem = f"not valid TOML: {str(exc)[: located.start()]}({where})"
    except yaml.MarkedYAMLError as exc:
        found = yaml_problem(exc, lambda line, column: _place(text, marker, line, column))
        problem = f"not valid YAML: {found}"
    except yaml.YAMLError:
        problem = "not valid YAML"
    if problem is not None:
        # Raised out of the except block, so without the parser's error as context: it
        # may quote the offending line, a password with it.
        raise ConfigError(f"{file}: {problem}")
    return _expand(document, file, names, marker) if names else document


def yaml_problem(exc: yaml.MarkedYAMLError, place: Callable[[int, int], str] | None = None) -> str:
    """What PyYAML found wrong and where, without the lines it would quote.

    ``place(line, column)`` (1-based) words a position; by default "line L, column C".
    """
    parts = []
    for text, mark in ((exc.context, exc.context_mark), (exc.problem, exc.problem_mark)):
        if text:
            where = ""
            if mark:
                line, column = mark.line + 1, mark.column + 1
                where = f" ({place(line, column) if place else f'line {line}, column {column}'})"
            parts.append(f"{text}{where}")
    return ": ".join(parts) or "a syntax error"


def _place(text: str, marker: re.Pattern[str], line: int, column: int) -> str:
    """Where a parser's line and column are in the file.

    The column is left out when a marker before it on its line moved it.
    """
    lines = text.splitlines()
    before = lines[line - 1][: column - 1] if 0 < line <= len(lines) else ""
    return f"line {line}" if marker.search(before) else f"line {line}, column {column}"


def _mark(text: str) -> tuple[str, list[str], re.Pattern[str]]:
    """Swap each ``${NAME}`` in ``text`` for a marker.

    Returns the text, the names by marker number, and the pattern of a marker.

    A marker is letters and digits (YAML, JSON and TOML strings take it as it is),
    with a random part not in the file, so it cannot meet the file's own text.
    """
    while True:
        nonce = secrets.token_hex(6)
        if nonce not in text:
            break
    names: list[str] = []

    def marker(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return f"zqenv{nonce}x{len(names) - 1}x"

    return _ENV.sub(marker, text), names, re.compile(f"zqenv{nonce}x([0-9]+)x")


def _expand(document: Any, file: Path, names: list[str], marker: re.Pattern[str]) -> Any:
    """``document`` with the markers in its strings (keys too) replaced.

    Each by the environment variable it stands for; an unset one is an error
    (go-zero would use "").
    """

    def variable(found: re.Match[str], where: KeyPath) -> str:
        name = names[int(found.group(1))]
        value = os.environ.get(name)
        if value is None:
            raise ConfigError(
                f"{at(str(file), where)} uses ${{{name}}}, but environment variable {name}"
                " is not set; set it, or write the value in the file"
            )
        return value

    def as_written(found: re.Match[str]) -> str:
        return f"${{{names[int(found.group(1))]}}}"

    def expand(value: Any, where: KeyPath) -> Any:
        if isinstance(value, str):
            return marker.sub(lambda found: variable(found, where), value)
        if isinstance(value, list):
            return [expand(item, (*where, i)) for i, item in enumerate(value)]
        if isinstance(value, dict):
            expanded = {}
            for key, item in value.items():
                # An error names a key with a variable as the file spells it.
                here = (*where, marker.sub(as_written, key) if isinstance(key, str) else str(key))
                expanded[expand(key, here)] = expand(item, here)
            return expanded
        return value

    return expand(document, ())
