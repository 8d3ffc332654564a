"""The fault suite's seed: from ``ZEROQUEUE_FAULT_SEED``, else a fresh one, always printed."""

from __future__ import annotations

import os
import random

import pytest


@pytest.fixture
def seed() -> int:
    """The seed of this scenario's random choices (pytest shows the print on a failure)."""
    given = os.environ.get("ZEROQUEUE_FAULT_SEED")
    value = int(given) if given else random.SystemRandom().randrange(2**32)
    print(f"ZEROQUEUE_FAULT_SEED={value}")
    return value
