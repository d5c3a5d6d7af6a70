"""The one place that prepares a process to run model code, and cleans up after it.

Model code comes from the pull request under test. Whatever it does by accident must not reach the verdict: it gets
/dev/null as its standard input (never the zygote's command pipe), no descriptor beyond 0-2, no protocol detail or
CI file-command path in its environment, and no way to unpickle (`torch.load` is weights-only). Every process it
starts is killed when the run ends: the run is a child subreaper, so even a daemonised grandchild is reparented to it
and reaped. These are guards against accidents; SECURITY.md says what deliberate hostility can still do.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import time
from typing import Any

from ..environment import scrub_environment

_PR_SET_CHILD_SUBREAPER = 36


def seal() -> None:
    """Before model code runs in this process: stdin from /dev/null, descriptors beyond 2 closed, the environment
    scrubbed, orphans of this process reparented to it (so that `reap` finds them), torch.load weights-only."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    if devnull != 0:
        os.close(devnull)
    os.closerange(3, _max_fd())
    scrub_environment(os.environ)
    subreaper()
    force_weights_only()


def _max_fd() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (ValueError, OSError):
        return 65536


def subreaper() -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the run's process group is still killed


def force_weights_only() -> None:
    """torch.load with weights_only=True whatever the caller asks (torch.hub, torch.export's pickle fallback and
    libraries pass False): the environment variable does it where torch reads it, this wrapper everywhere."""
    import torch
    import torch.serialization

    original = torch.serialization.load
    if getattr(original, "__reprocheck_weights_only__", False):
        return

    @functools.wraps(original)
    def load(*args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        return original(*args, **kwargs)

    load.__reprocheck_weights_only__ = True  # type: ignore[attr-defined]
    torch.load = torch.serialization.load = load


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
