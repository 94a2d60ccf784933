"""The tiny exec wrapper that starts a replica on its cores: `python -I exec_pinned.py CORES -- CMD...`.

It pins itself to CORES (`-`: not pinned), asks the kernel to SIGKILL it when the thread that started it dies (so a
supervisor killed with SIGKILL leaves no orphan engines), then execs CMD: the engine starts already pinned, before it
creates any thread. `pinning.pinned_cmd` builds its command line.

It runs as a script in isolated mode and imports only the standard library: no `paretoserve` import (about 1 s of
each replica's start on a busy 2-core machine), and no runpy warning about a module the package already imported.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        sys.exit("usage: python -I exec_pinned.py CORES|- -- CMD...")
    spec, cmd = argv[0], argv[2:]
    if spec != "-":
        os.sched_setaffinity(0, {int(c) for c in spec.split(",")})
    # Not Linux: the supervisor's own SIGTERM/SIGKILL still stops the replica.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    try:
        os.execvp(cmd[0], cmd)
    except OSError as exc:
        sys.exit(f"cannot run {cmd[0]}: {exc.strerror or exc}")


if __name__ == "__main__":
    main(sys.argv[1:])
