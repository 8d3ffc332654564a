"""setup_logging points Python's logging where go-zero's Log section says."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from zeroqueue.conf import ServiceConf, from_mapping, setup_logging


@pytest.fixture(autouse=True)
def _restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)


def test_json_lines_at_the_configured_level(tmp_path: Path) -> None:
    conf = from_mapping(
        {"Name": "svc", "Log": {"Mode": "file", "Path": str(tmp_path), "Level": "error"}},
        ServiceConf,
    )
    handler = setup_logging(conf)
    logging.getLogger("app").info("not shown")
    logging.getLogger("app").error("shown %d", 42)
    handler.flush()
    [line] = (tmp_path / "svc.log").read_text().splitlines()
    record = json.loads(line)
    assert (record["level"], record["content"], record["service"]) == ("error", "shown 42", "svc")
    assert "@timestamp" in record


def test_plain_lines_and_a_second_call_replaces_the_first(tmp_path: Path) -> None:
    first = from_mapping({"Log": {"Mode": "file", "Path": str(tmp_path)}}, ServiceConf)
    setup_logging(first)
    plain = from_mapping(
        {"Log": {"Mode": "file", "Path": str(tmp_path), "Encoding": "plain"}}, ServiceConf
    )
    handler = setup_logging(plain)
    logging.getLogger("app").warning("hello")
    handler.flush()
    ours = [h for h in logging.getLogger().handlers if h.get_name() == "zeroqueue-service-log"]
    assert ours == [handler]
    assert (tmp_path / "service.log").read_text().rstrip().endswith("WARNING app hello")
