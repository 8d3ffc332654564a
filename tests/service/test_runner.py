"""import_service loads the module `zeroqueue run` starts, by path or by name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from zeroqueue import ConfigError
from zeroqueue.service import import_service

SERVICE = """\
from zeroqueue.conf import Conf


class Config(Conf):
    name: str = ""


def setup(conf, group):
    return None
"""


def test_a_file_named_like_an_imported_module_is_loaded_from_that_file(tmp_path: Path) -> None:
    # given queue.py, while the standard library's queue is imported already
    import queue  # noqa: F401, PLC0415

    path = tmp_path / "queue.py"
    path.write_text(SERVICE)
    # when it is imported by path
    module = import_service(str(path))
    # then it is that file, under a name of its own: the stdlib's queue is untouched
    assert module.__file__ == str(path)
    assert module.__name__ != "queue"
    assert sys.modules["queue"].__file__ != str(path)
    assert module.Config.__module__ == module.__name__
    # and importing it again finds the same module
    assert import_service(str(path)) is module


def test_a_package_directory_keeps_its_relative_imports(tmp_path: Path) -> None:
    package = tmp_path / "zq_test_pkg_service"
    package.mkdir()
    (package / "__init__.py").write_text("from .app import Config, setup\n")
    (package / "app.py").write_text(SERVICE)
    module = import_service(str(package))
    assert module.Config.__name__ == "Config"
    assert callable(module.setup)


def test_a_dotted_module_name_is_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "zq_test_dotted").mkdir()
    (tmp_path / "zq_test_dotted" / "__init__.py").write_text("")
    (tmp_path / "zq_test_dotted" / "svc.py").write_text(SERVICE)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = import_service("zq_test_dotted.svc")
    assert module.__name__ == "zq_test_dotted.svc"


def test_a_syntax_error_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.py"
    path.write_text("x = 1\ndef setup(conf, group:\n    pass\n")
    with pytest.raises(ConfigError) as info:
        import_service(str(path))
    message = str(info.value)
    assert f"{path}, line 2: SyntaxError: " in message
    assert f"service module {str(path)!r} cannot be imported" in message


def test_a_failed_import_in_the_module_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "needs_more.py"
    path.write_text("import os\nimport zq_no_such_dependency\n")
    with pytest.raises(ConfigError) as info:
        import_service(str(path))
    assert f"{path}, line 2: ModuleNotFoundError: No module named 'zq_no_such_dependency'" in str(
        info.value
    )
    # it ran and failed: it is not left behind half imported
    assert not any(getattr(m, "__file__", None) == str(path) for m in list(sys.modules.values()))


def test_a_missing_path_or_module_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'nothere.py': no such file or directory"):
        import_service("nothere.py")
    with pytest.raises(ConfigError, match=r"No module named 'zq_no_such_service'"):
        import_service("zq_no_such_service")
