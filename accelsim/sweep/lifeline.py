"""Sweep worker processes die with the sweep that started them.

A sweep killed with SIGKILL cannot shut its pool down: its workers would live on as orphans, blocked on a
queue nobody writes, holding memory and the descriptors they inherited. On Linux the kernel kills them
when their parent dies (``prctl(PR_SET_PDEATHSIG)``); elsewhere a daemon thread in each worker notices
that its parent is gone (it is re-parented) and ends the process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
#: How often a worker without PR_SET_PDEATHSIG checks that its parent is alive.
POLL_SECONDS = 0.5


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when ``parent_pid`` (the process that started it) ends.

    Called first thing in a worker. If the parent already died before this ran, end now: the kernel
    signal would never come.
    """
    if not _kill_on_parent_death():
        threading.Thread(target=_watch, args=(parent_pid,), name="accelsim-lifeline", daemon=True).start()
    if os.getppid() != parent_pid:
        os._exit(1)


def _kill_on_parent_death() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0


def _watch(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_SECONDS)
    os._exit(1)
