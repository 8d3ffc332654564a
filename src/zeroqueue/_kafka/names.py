"""What Kafka accepts as a topic name, for names zeroqueue derives from a user's topic."""

from __future__ import annotations

import hashlib
import re

__all__ = ["MAX_TOPIC_NAME", "name_part"]

#: Kafka refuses longer topic names.
MAX_TOPIC_NAME = 249

# Topic names take letters, digits, '.', '_' and '-'; a part keeps no dot so the
# parts of a derived name stay apart.
_NOT_IN_PART = re.compile(r"[^A-Za-z0-9_-]")


def name_part(name: str) -> str:
    """``name`` as one dot-free part of a derived topic name (letters, digits, '_', '-').

    A name that had to change gets a short digest of the original, so two names
    that differ only in characters a part cannot hold ("billing team",
    "billing_team", "billing.team") never share a derived topic.
    """
    safe = _NOT_IN_PART.sub("_", name)
    if safe == name:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{safe}-{digest}"
