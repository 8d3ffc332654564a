"""Read a config file: YAML, JSON or TOML, with ``${ENV}`` expanded as go-zero's UseEnv does."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

from zeroqueue.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["read_document"]

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def read_document(path: str | os.PathLike[str], *, env: bool = True) -> Any:
    """The parsed contents of ``path``; ``${NAME}`` replaced by environment variables.

    The format follows the suffix: ``.json``, ``.toml``, else YAML (which also
    reads JSON). Error messages locate a syntax error by line and column and
    never quote the file's text: it may hold a password.

    Raises:
        ConfigError: the file cannot be read, an environment variable it names is
            not set, or it is not valid in its format.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read config file: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start})") from None
    if env:
        text = _expand(text, file)
    suffix = file.suffix.lower()
    problem: str | None = None
    try:
        if suffix == ".json":
            return json.loads(text)
        if suffix == ".toml":
            return tomllib.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        problem = f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    except tomllib.TOMLDecodeError as exc:
        problem = f"not valid TOML: {exc}"
    except yaml.MarkedYAMLError as exc:
        problem = f"not valid YAML: {yaml_problem(exc)}"
    except yaml.YAMLError:
        problem = "not valid YAML"
    # Raised out of the except block, so without the parser's error as context: it
    # may quote the offending line, a password with it.
    raise ConfigError(f"{file}: {problem}")


def yaml_problem(exc: yaml.MarkedYAMLError) -> str:
    """What PyYAML found wrong and where, without the lines it would quote."""
    parts = []
    for text, mark in ((exc.context, exc.context_mark), (exc.problem, exc.problem_mark)):
        if text:
            where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
            parts.append(f"{text}{where}")
    return ": ".join(parts) or "a syntax error"


def _expand(text: str, file: Path) -> str:
    """Replace each ``${NAME}``; an unset variable is an error (go-zero would use "")."""

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        value = os.environ.get(name)
        if value is None:
            line = text.count("\n", 0, match.start()) + 1
            raise ConfigError(
                f"{file}: line {line} uses ${{{name}}}, but environment variable {name} is"
                " not set; set it, or write the value in the file"
            )
        return value

    return _ENV.sub(value_of, text)
