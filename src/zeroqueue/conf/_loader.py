"""Load a config file into a user's model with go-zero's rules (see zeroqueue.conf)."""

from __future__ import annotations

import contextvars
import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, Union

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from zeroqueue.conf._files import read_document
from zeroqueue.conf._keys import KeyPath, at, canonical, near_miss
from zeroqueue.conf._redact import holds_secret, names_secret
from zeroqueue.errors import ConfigError

__all__ = ["at", "describe", "from_mapping", "load", "match_keys"]

T = TypeVar("T")

#: True while this loader validates: a model that turns its own errors into a
#: ConfigError (KqConf) lets them through instead, so they get the whole key path.
validating: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "zeroqueue_conf_validating", default=False
)


def load(
    path: str | os.PathLike[str], model: type[T], *, key: str | None = None, env: bool = True
) -> T:
    """Read ``path`` (YAML, JSON or TOML) into ``model``, a pydantic model or a dataclass.

    Args:
        path: The config file, e.g. ``etc/config.yaml``.
        model: The class to build; nested models, lists and dicts of them are matched
            too.
        key: The section holding the config (``"KqConsumerConf"``), matched without
            regard to case; None when the whole file is the config.
        env: Replace ``${NAME}`` with environment variables (go-zero's ``conf.UseEnv``).

    Raises:
        ConfigError: naming the file, the key path, the value and what is allowed.
    """
    document = read_document(path, env=env)
    source = str(path)
    root = ""
    if key is not None:
        if not isinstance(document, Mapping):
            raise ConfigError(f"{source}: expected a mapping with a {key!r} section")
        found = [k for k in document if isinstance(k, str) and canonical(k) == canonical(key)]
        if not found:
            sections = ", ".join(repr(k) for k in document) or "nothing"
            raise ConfigError(f"{source}: no {key!r} section; it has {sections}")
        document, root = document[found[0]], found[0]
    return from_mapping({} if document is None else document, model, source=source, root=root)


def from_mapping(data: Any, model: type[T], *, source: str = "config", root: str = "") -> T:
    """Build ``model`` from a mapping with go-zero (any case) or snake_case keys.

    Keys the model does not declare are ignored, as go-zero does, unless one looks
    like a typo of a declared key.

    Raises:
        ConfigError: as :func:`load`.
    """
    prefix: KeyPath = (root,) if root else ()
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{at(source, prefix)}: got a {type(data).__name__}; expected a mapping of keys"
        )
    spelled: dict[KeyPath, str] = {}
    typos: list[tuple[KeyPath, str]] = []
    matched = _match(data, model, (), spelled, typos)
    if typos:
        raise ConfigError(
            "\n".join(f"{at(source, (*prefix, *path))}: {problem}" for path, problem in typos)
        )
    message = ""
    token = validating.set(True)
    try:
        if isinstance(model, type) and issubclass(model, BaseModel):
            return typing.cast(T, model.model_validate(matched))
        return TypeAdapter(model).validate_python(matched)
    except ValidationError as exc:
        message = describe(
            exc.errors(include_url=False), source, spelled, prefix=prefix, model=model
        )
    finally:
        validating.reset(token)
    # Raised out of the except block: the ValidationError quotes every input.
    raise ConfigError(message)


def match_keys(data: Mapping[str, Any], model: Any, typos: list[tuple[KeyPath, str]]) -> Any:
    """``data`` with its keys matched to ``model``'s fields; typos are added to ``typos``."""
    return _match(data, model, (), {}, typos)


# -- matching keys to fields ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Field:
    key: str  # what the model is validated with: the field's alias, else its name
    spellings: frozenset[str]  # canonical spellings that match it
    shown: str  # how a suggestion names it
    annotation: Any


def _fields(target: type) -> list[_Field] | None:
    """The fields of a config class, or None for anything else."""
    if isinstance(target, type) and issubclass(target, BaseModel):
        found = []
        for name, info in target.model_fields.items():
            key = info.alias or name
            found.append(
                _Field(key, frozenset({canonical(name), canonical(key)}), key, info.annotation)
            )
        return found
    if dataclasses.is_dataclass(target) and isinstance(target, type):
        hints = typing.get_type_hints(target, include_extras=True)
        return [
            _Field(f.name, frozenset({canonical(f.name)}), f.name, hints.get(f.name, Any))
            for f in dataclasses.fields(target)
        ]
    return None


def _unwrap(annotation: Any) -> Any:
    """The type inside ``Annotated[...]`` and ``X | None``."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            others = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(others) != 1:
                return annotation
            annotation = others[0]
        else:
            return annotation


def _match(
    data: Any,
    annotation: Any,
    path: KeyPath,
    spelled: dict[KeyPath, str],
    typos: list[tuple[KeyPath, str]],
) -> Any:
    """``data`` with the keys of every config class in ``annotation`` matched to its fields."""
    target = _unwrap(annotation)
    origin = typing.get_origin(target)
    if isinstance(data, list) and origin in (list, tuple, set, frozenset):
        args = typing.get_args(target)
        item = args[0] if args else Any
        return [_match(value, item, (*path, i), spelled, typos) for i, value in enumerate(data)]
    if isinstance(data, Mapping) and origin in (dict, Mapping):
        args = typing.get_args(target)
        item = args[1] if len(args) == 2 else Any
        return {k: _match(v, item, (*path, str(k)), spelled, typos) for k, v in data.items()}
    if not isinstance(data, Mapping) or getattr(target, "__zeroqueue_matches_own_keys__", False):
        return data  # a value, or a class that matches its own keys (KqConf)
    fields = _fields(target)
    if fields is None:
        return data
    by_spelling = {spelling: field for field in fields for spelling in field.spellings}
    matched: dict[str, Any] = {}
    for raw_key, value in data.items():
        field = by_spelling.get(canonical(raw_key)) if isinstance(raw_key, str) else None
        if field is None:
            close = near_miss(str(raw_key), [f.shown for f in fields])
            if close is not None:
                typos.append(((*path, str(raw_key)), f"unknown key; did you mean {close!r}?"))
            continue  # not declared: ignored, as go-zero does
        if field.key in matched:
            known: KeyPath = (*path, field.key)
            first = spelled[known]
            typos.append(((*path, str(raw_key)), f"repeats {first!r}"))
            continue
        here: KeyPath = (*path, field.key)
        spelled[here] = str(raw_key)
        matched[field.key] = _match(value, field.annotation, here, spelled, typos)
    return matched


# -- errors -----------------------------------------------------------------------


def describe(
    errors: list[ErrorDetails],
    source: str,
    spelled: Mapping[KeyPath, str] | None = None,
    *,
    prefix: KeyPath = (),
    model: Any = None,
) -> str:
    """One line per problem: ``<source>: Key.Path: got <value>; expected <what>``.

    Keys are named as the file spells them; a value under a key that names a
    secret (a password, a token, an API key), or that looks like it holds one (a
    DSN or URL with a password), is named by its type only. With ``model``, a
    missing key is described by its field's description.
    """
    spelled = spelled or {}
    lines = []
    for error in errors:
        loc = tuple(error["loc"])
        path: list[str | int] = []
        for i, part in enumerate(loc):
            if isinstance(part, int):
                path.append(part)
            else:
                path.append(spelled.get(loc[: i + 1]) or _shown(model, loc[: i + 1]) or part)
        where = at(source, (*prefix, *path))
        message = str(error["msg"])
        for lead in ("Value error, ", "Input should be "):
            message = message.removeprefix(lead)
        if error["type"] == "missing":
            lines.append(f"{where}: missing; expected {_description(model, loc) or 'a value'}")
            continue
        if "input" not in error or (error["type"].startswith("value_error") and not loc):
            lines.append(f"{where}: {message}")
            continue
        got = error["input"]
        secret = holds_secret(got) or any(isinstance(p, str) and names_secret(p) for p in loc)
        shown = f"a value of type {type(got).__name__}" if secret else repr(got)
        lines.append(f"{where}: got {shown}; expected {message}")
    return "\n".join(lines)


def _field_at(model: Any, loc: tuple[str | int, ...]) -> tuple[Any, _Field] | None:
    """The config class holding the field at ``loc`` in ``model``, and that field."""
    owner: Any = None
    field: _Field | None = None
    current: Any = model
    for part in loc:
        target = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(target)
            current, field = (args[0] if args else Any), None
            continue
        fields = _fields(target)
        if fields is None:
            return None
        field = next((f for f in fields if canonical(part) in f.spellings), None)
        if field is None:
            return None
        owner, current = target, field.annotation
    return (owner, field) if field is not None else None


def _shown(model: Any, loc: tuple[str | int, ...]) -> str:
    """How the key at ``loc`` is spelled in go-zero's way (the field's alias), or ''."""
    found = _field_at(model, loc) if model is not None else None
    return found[1].shown if found is not None else ""


def _description(model: Any, loc: tuple[str | int, ...]) -> str:
    """The description of the field at ``loc`` in ``model``, or ''."""
    found = _field_at(model, loc) if model is not None else None
    if found is None:
        return ""
    owner, field = found
    if isinstance(owner, type) and issubclass(owner, BaseModel):
        for name, info in owner.model_fields.items():
            if (info.alias or name) == field.key:
                return info.description or ""
    return ""
