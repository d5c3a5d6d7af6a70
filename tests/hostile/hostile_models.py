"""Models that do, by accident or on purpose, what model code from a pull request may do: read stdin, look at their
descriptors and environment, leave processes behind, change the working folder. Each writes what it saw to the folder
named by the environment's HOSTILE_OUT (set by the test) or its `out` argument."""

import json
import os
import subprocess
import sys

import torch


class Linear(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(x)


class Conv(torch.nn.Module):
    """A small image model, for specs with an image input."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 2, 3)

    def forward(self, x):
        return self.conv(x)


def _out(out: str) -> str:
    os.makedirs(out, exist_ok=True)
    return out


class ReadsStdin(Linear):
    """Reads its standard input in forward, as a prompt or a library asking a question would."""

    def forward(self, x):
        data = sys.stdin.read()
        return self.fc(x) + len(data)


def reads_stdin():
    return ReadsStdin()


def child_reads_stdin(out: str):
    """Leaves a child behind that reads the inherited standard input (a helper process nobody waited for)."""
    child = subprocess.Popen(["sh", "-c", f"cat > {_out(out)}/swallowed.$$"])
    with open(os.path.join(out, f"child.{os.getpid()}"), "w") as f:
        f.write(str(child.pid))
    return Linear()


def forges_a_verdict():
    """Writes to the write side of its own standard input: were it the zygote's command pipe, the line would be read
    as a request. Its outputs are fresh entropy every run, so only a forged verdict could make it pass."""

    class Forger(torch.nn.Module):
        def forward(self, x):
            try:
                fd = os.open("/proc/self/fd/0", os.O_WRONLY | os.O_NONBLOCK)
                os.write(fd, b"\n")
                os.close(fd)
            except OSError:
                pass
            noise = torch.frombuffer(bytearray(os.urandom(4 * x.numel())), dtype=torch.int32).reshape(x.shape)
            return x + noise.float()

    return Forger()


def records_what_it_inherits(out: str):
    """Writes its descriptors (beyond 0-2, except the one listing them) and its environment's names."""
    fds = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
    stdin = os.readlink("/proc/self/fd/0")
    record = {
        "fds": {k: v for k, v in fds.items() if int(k) > 2 and not v.startswith("/proc/")},
        "stdin": stdin,
        "env": sorted(os.environ),
        "weights_only": os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD"),
        "cwd_on_path": [p for p in sys.path if p in ("", ".", os.getcwd())],
    }
    with open(os.path.join(_out(out), f"inherited.{os.getpid()}.json"), "w") as f:
        json.dump(record, f)
    return Linear()


def leaves_processes(out: str):
    """Starts a child in its own session and a double-forked daemon, and records their pids."""
    out = _out(out)
    child = subprocess.Popen(["sleep", "300"], start_new_session=True)
    daemon = subprocess.Popen(["sh", "-c", "sleep 300 >/dev/null 2>&1 & echo $!"], stdout=subprocess.PIPE, text=True)
    grandchild = daemon.communicate()[0].strip()
    with open(os.path.join(out, f"pids.{os.getpid()}"), "w") as f:
        f.write(f"{child.pid} {grandchild}")
    return Linear()


def changes_folder(elsewhere: str):
    """Changes the working folder while it is built (a library that chdirs to its data)."""
    os.chdir(_out(elsewhere))
    return Linear()


def does_all_of_it(out: str):
    """All of the above in one model: a child left reading stdin, a record of what it inherited, processes left
    running, the working folder changed, and stdin read in forward."""
    child_reads_stdin(out)
    records_what_it_inherits(out)
    leaves_processes(out)
    changes_folder(os.path.join(out, "elsewhere"))
    return ReadsStdin()


def dies_leaving_a_process(out: str, how: str):
    """Starts a child in its own session, records it, then dies without cleaning up: `exit` (os._exit) or `hang`
    (killed at the check's timeout)."""
    child = subprocess.Popen(["sleep", "300"], start_new_session=True)
    with open(os.path.join(_out(out), f"pids.{os.getpid()}"), "w") as f:
        f.write(str(child.pid))
    if how == "exit":
        os._exit(7)
    import time

    time.sleep(300)
    return Linear()
