"""A local Redox-compatible sandbox server for tests, the demo and benchmarks.

`Sandbox` runs it in-process; `main(argv)` is the command line (`python -m pipeline.sandbox`).
It speaks Redox's auth, SEND, file upload and Platform log-lookup protocols on 127.0.0.1, with
faults (latency, forced statuses, rate limits, dropped connections, replies that only look
successful, trickled, huge or cut replies, ...) settable over a control API. See server.py for
the routes, faults.py for the fault names and docs/sandbox.md for what each one does.
"""

from .command import main
from .server import Sandbox

__all__ = ["Sandbox", "main"]
