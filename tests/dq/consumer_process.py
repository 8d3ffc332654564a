"""A dq consumer in a process of its own, for tests that SIGKILL it mid-flight.

Usage: python -m tests.dq.consumer_process CONF_JSON OUT_FILE HANDLE_SECONDS

Each handled body is appended to OUT_FILE as one line once its handler began
("start <body>") and once it returned ("done <body>").
"""

from __future__ import annotations

import json
import sys
import time

from zeroqueue.dq import Consumer, DqConf


def main() -> None:
    conf = DqConf.model_validate(json.loads(sys.argv[1]))
    out, seconds = sys.argv[2], float(sys.argv[3])

    def handle(body: bytes) -> None:
        with open(out, "a") as log:
            log.write(f"start {body.decode()}\n")
        time.sleep(seconds)
        with open(out, "a") as log:
            log.write(f"done {body.decode()}\n")

    Consumer(conf, handle, processors=2, lease=2.0, retry_delay=0.0).start()


if __name__ == "__main__":
    main()
