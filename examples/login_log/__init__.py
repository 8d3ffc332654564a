"""go-zero's login-log service in Python: an HTTP API that pushes, a consumer that stores.

``zeroqueue run examples/login_log -f examples/login_log/etc/config.yaml`` starts it
(see README, "Services"); ``zeroqueue demo`` drives it on the embedded broker.
"""

from .service import Config, LoginLogConsumer, ServiceContext, make_app, setup

__all__ = ["Config", "LoginLogConsumer", "ServiceContext", "make_app", "setup"]
