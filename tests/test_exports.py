"""The public API is what README documents, and every public name is documented."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import zeroqueue
from zeroqueue import errors

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_exports_are_sorted_and_importable() -> None:
    names = [name for name in zeroqueue.__all__ if name != "__version__"]
    assert names == sorted(names)
    for name in zeroqueue.__all__:
        assert hasattr(zeroqueue, name), name


def test_readme_tour_lists_every_export() -> None:
    tour = _section("A tour of the API")
    table = re.findall(r"^\| (`[^|]+`)", tour, flags=re.MULTILINE)
    documented = set(re.findall(r"`(\w+)`", " ".join(table)))
    tree = set(re.findall(r"^[│├└─ ]*(\w+Error)\b", _section("Errors"), flags=re.MULTILINE))
    exported = {name for name in zeroqueue.__all__ if name != "__version__"}
    errors_exported = {name for name in exported if name.endswith("Error")}
    assert tree == errors_exported == set(errors.__all__)
    assert documented | tree == exported


def _tree(text: str) -> dict[str, str]:
    """Each error of an exception tree drawn with box characters, and its parent."""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for match in re.finditer(r"^([│├└─ ]*)(\w+Error)\b", text, flags=re.MULTILINE):
        depth, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_the_error_trees_of_readme_and_errors_py_draw_the_class_hierarchy() -> None:
    for where, text in (("README", _section("Errors")), ("errors.py", errors.__doc__ or "")):
        parents = _tree(text)
        assert set(parents) | {"ZeroQueueError"} == set(errors.__all__), where
        for name, parent in parents.items():
            assert getattr(errors, parent) in getattr(errors, name).__bases__, (where, name)


def test_every_public_name_has_a_docstring() -> None:
    for name in zeroqueue.__all__:
        obj = getattr(zeroqueue, name)
        if inspect.isclass(obj):
            assert inspect.getdoc(obj), name
            for attr, member in vars(obj).items():
                if not attr.startswith("_") and callable(member):
                    assert inspect.getdoc(member), f"{name}.{attr}"
