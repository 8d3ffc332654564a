"""``zeroqueue run``: start a service from a module and a go-zero config file."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from zeroqueue.conf import ServiceConf, load, setup_logging
from zeroqueue.errors import ConfigError
from zeroqueue.service._group import ExitCode, ServiceGroup

__all__ = ["import_service", "prepare", "run_service"]


def import_service(spec: str) -> ModuleType:
    """Import a service module by name (``pkg.svc``) or path (``examples/login_log``).

    Raises:
        ConfigError: it cannot be imported, or lacks ``Config`` or ``setup``.
    """
    path = Path(spec)
    try:
        if path.exists():
            target = path.resolve()
            package = target if target.is_dir() else None
            name = target.name if package is not None else target.stem
            # Import it under its own name, from its parent directory, as Python
            # would a top-level package: its own relative imports then work.
            parent = str(target.parent)
            if parent not in sys.path:
                sys.path.insert(0, parent)
            module = importlib.import_module(name)
        else:
            module = importlib.import_module(spec)
    except ImportError as exc:
        raise ConfigError(f"service module {spec!r} cannot be imported: {exc}") from exc
    missing = [name for name in ("Config", "setup") if not hasattr(module, name)]
    if missing:
        raise ConfigError(
            f"service module {spec!r} has no {' and no '.join(missing)}; expected a Config"
            " model (a zeroqueue.conf.Conf, pydantic model or dataclass) and"
            " setup(conf, group) adding its services to a ServiceGroup"
        )
    return module


def prepare(module: ModuleType, config_path: str, group: ServiceGroup) -> tuple[Any, Any]:
    """Load the module's Config from ``config_path``, set up logging, call its setup()."""
    conf = load(config_path, module.Config)
    if isinstance(conf, ServiceConf):
        setup_logging(conf)
    return conf, module.setup(conf, group)


def run_service(spec: str, config_path: str, *, grace: float = 30.0) -> ExitCode:
    """Run the service until SIGINT/SIGTERM or a failure; return the group's exit code."""
    module = import_service(spec)
    group = ServiceGroup(grace=grace)
    prepare(module, config_path, group)
    return group.run()
