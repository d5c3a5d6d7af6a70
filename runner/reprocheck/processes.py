"""Processes a run leaves behind, found and ended: the run (and the zygote, and reprocheck itself) is a child
subreaper, so an orphan anywhere below it, even a daemonised grandchild in its own session, is reparented to it
and ended by `reap`. Standard library only: both sides use it."""

from __future__ import annotations

import contextlib
import os
import signal
import time

_PR_SET_CHILD_SUBREAPER = 36


def subreaper() -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the run's process group is still killed


def children() -> list[int]:
    """The live children of this process (a scan of /proc where the kernel lists no children)."""
    pid, found = os.getpid(), set[int]()
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
        if not os.path.exists(f"/proc/{pid}/task/{pid}/children"):
            return _children_by_scan(pid)
        for tid in tasks:
            with contextlib.suppress(OSError), open(f"/proc/{pid}/task/{tid}/children") as f:
                found.update(int(c) for c in f.read().split())
    except OSError:
        return []
    return sorted(found)


def _children_by_scan(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError), open(f"/proc/{entry}/stat") as f:
                # the parent pid is the second field after the command name, which may hold spaces
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry))
    return sorted(found)


def reap(keep: tuple[int, ...] = (), rounds: int = 50) -> int:
    """Kill and reap every child of this process except `keep`, until none is left (a subreaper inherits the
    grandchildren of those it kills). Returns how many were killed."""
    killed = 0
    for _ in range(rounds):
        left = [c for c in children() if c not in keep]
        if not left:
            break
        for child in left:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(child, signal.SIGKILL)
            killed += 1
        for child in left:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(child, 0)
        time.sleep(0.01)  # grandchildren are reparented when their parent dies
    return killed
