"""Services the go-zero way: a ServiceGroup that starts and stops them together.

* :class:`ServiceGroup` runs Queues, an HTTP server and your own services, and on
  SIGINT/SIGTERM (or one failing) stops them in reverse order, each within a
  grace period, then closes the Pushers so what they hold is delivered.
* :class:`AsgiServer` serves an ASGI app (FastAPI, Starlette) with uvicorn as
  one of those services (the ``service`` extra).
"""

from zeroqueue.service._asgi import AsgiServer
from zeroqueue.service._group import (
    AsyncService,
    Closer,
    ExitCode,
    Service,
    ServiceError,
    ServiceGroup,
)
from zeroqueue.service._runner import import_service, run_service

__all__ = [
    "AsgiServer",
    "AsyncService",
    "Closer",
    "ExitCode",
    "Service",
    "ServiceError",
    "ServiceGroup",
    "import_service",
    "run_service",
]
