"""Run one command as a child of this small process and write down that child's own usage.

    launch.py RESULT.json -- COMMAND [ARG ...]

common.Process starts every measured pipeline process through this (as /usr/bin/time would),
because Linux bills a child for its parent's memory: at exec, the kernel carries the peak RSS
of the address space being replaced (the parent's copy, after fork or vfork) into the new
program's ru_maxrss. A ``python -c pass`` spawned by a 200 MB benchmark process reports a
200 MB peak. Spawned from here instead, the floor is this process's ~10 MB, below anything
the pipeline uses, so the figure is the pipeline's own.

Writes ``RESULT.json.pid`` (the command's pid) as soon as it is spawned, and ``RESULT.json``
once it has ended: spawn time (epoch), wall seconds, user and system CPU seconds, peak RSS in
KiB and the exit status, all from os.wait4 on the command alone. SIGTERM and SIGINT are passed
on to the command; this process exits with the command's status.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time


def write(path: str, text: str) -> None:
    """Whole or not at all: the reader polls for the file."""
    with open(path + ".tmp", "w") as out:
        out.write(text)
    os.replace(path + ".tmp", path)


def main() -> int:
    if len(sys.argv) < 4 or sys.argv[2] != "--":
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    result, argv = sys.argv[1], sys.argv[3:]
    spawned_at, t0 = time.time(), time.perf_counter()
    pid = os.posix_spawn(argv[0], argv, os.environ)
    write(result + ".pid", str(pid))
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, _frame: os.kill(pid, number))
    _, status, usage = os.wait4(pid, 0)          # retried by Python when a signal interrupts it
    wall = time.perf_counter() - t0
    code = os.waitstatus_to_exitcode(status)
    write(result, json.dumps({"spawned_at": spawned_at, "wall": wall, "user": usage.ru_utime,
                              "system": usage.ru_stime, "maxrss_kb": usage.ru_maxrss,
                              "exit": code}))
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    sys.exit(main())
