"""The derived image's one build step, run as root by `/opt/venv/bin/python -I -S` (no site-packages, no .pth,
no environment: nothing the install adds can run in this process), from the staged build context.

  1. records the venv as it is (mode, owner, size, mtime, ctime and link target of every path), the files Python
     runs at start in every folder `site` reads (.pth, sitecustomize, usercustomize) and the installer's sys.path,
     and pins every distribution of the image as a pip constraint at its version (reprocheck's direct URL too);
  2. runs pip as an unprivileged uid: only site-packages and bin/ are sticky-writable for it, so it can add
     packages and scripts there but not change, replace or remove any of the image's (they stay root's), and
     nothing anywhere else in the venv (data files into share/, headers, a `local/` folder Debian's site reads);
     then kills whatever pip left running;
  3. compares: any changed or removed path of the venv, a path added inside one of the image's package folders, a
     new file in bin/ that is not a script run by the venv's python, a new `._pth` / pyvenv.cfg / pybuilddir.txt,
     a new .pth, sitecustomize or usercustomize where Python looks for them, a new distribution declaring a
     plugin something imports on its own (pydantic, torch.backends, triton.backends), or a sys.path the
     installer's python no longer starts with fails the build, naming the distribution and file. Errors end with
     one marker line the host reads (MARK + JSON).

Standard library only, and no reprocheck import: it runs in the image, outside the package."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys

if __package__:
    from . import derived_venv as venv
else:  # staged in the image beside this file, run as a script with -I (no script folder on sys.path)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import derived_venv as venv  # type: ignore[import-not-found, no-redef]

VENV = venv.VENV

CTX = "/tmp/reprocheck-derive"
UID = 10002  # the installer: no passwd entry, no group beyond its own
MARK = "reprocheck-derive-error: "
PROBE = "import sys,json; print(json.dumps([sys.path, sys.flags.isolated]))"


def fail(message: str, step: str = "", tail: list[str] | None = None) -> None:
    print(MARK + json.dumps({"message": message, "step": step, "tail": tail or []}), flush=True)
    sys.exit(1)


def site_packages() -> str:
    lib = os.path.join(VENV, "lib")
    found = [os.path.join(lib, d, "site-packages") for d in os.listdir(lib) if d.startswith("python")]
    if len(found) != 1:
        fail(f"the image's venv has {len(found)} site-packages folders, not one")
    return found[0]


def run_pip(args: list[str], env: dict[str, str], cwd: str) -> tuple[int, list[str]]:
    """pip as the installer: its exit code and last lines (and the first path of the venv it was denied)."""
    tail: collections.deque[str] = collections.deque(maxlen=12)
    denied = ""
    cmd = [os.path.join(VENV, "bin", "python"), "-m", "pip", *args]
    proc = subprocess.Popen(
        cmd, cwd=cwd, env=env, user=UID, group=UID, extra_groups=[], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    assert proc.stdout is not None
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip()
        print(line, flush=True)
        if line.strip():
            tail.append(line)
        denied = denied or next(iter(re.findall(rf"Permission denied: '({VENV}/[^']+)'", line)), "")
    return proc.wait(), [*tail, denied]


def python_start(env: dict[str, str], cwd: str) -> str:
    """The installer's python as every later start sees it (site and all): sys.path and the isolated flag."""
    argv = [os.path.join(VENV, "bin", "python"), "-c", PROBE]
    try:
        proc = subprocess.run(
            argv, cwd=cwd, env=env, user=UID, group=UID, extra_groups=[], capture_output=True, timeout=120
        )
    except subprocess.TimeoutExpired:
        return "(timed out)"
    return proc.stdout.decode(errors="replace").strip() if proc.returncode == 0 else f"(exit {proc.returncode})"


def reap() -> None:
    """Kill whatever the installer left running (every process but this one, PID 1) and reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signal.SIGKILL)
    while True:  # orphans are this process's children: none left means none running
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break


def main() -> None:
    os.umask(0o022)
    site = site_packages()
    before = venv.snapshot()
    files, versions = venv.owners(site)
    with open(os.path.join(CTX, "pins.txt"), "w") as f:
        f.writelines(f"{name}=={version}\n" for name, version in sorted(versions.items()))
    work = os.path.join(CTX, "work")
    os.mkdir(work, 0o700)
    os.chown(work, UID, UID)
    # Requirement files first, then install folders, each in the order given.
    found = [m for n in os.listdir(CTX) if (m := re.fullmatch(r"(req|install)-(\d+)(\.txt)?", n))]
    steps = [m.group(0) for m in sorted(found, key=lambda m: (m.group(1) != "req", int(m.group(2))))]
    for step in steps:
        if step.startswith("install-"):  # pip builds a folder in place
            for dirpath, dirnames, filenames in os.walk(os.path.join(CTX, step)):
                for name in ["", *dirnames, *filenames]:
                    os.lchown(os.path.join(dirpath, name), UID, UID)
    env = {
        "PATH": f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": work,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
    }
    start = python_start(env, work)
    if not start.startswith("["):
        fail(f"the image's python does not start for the installer {start}")
    dirs = venv.site_dirs(json.loads(start)[0])
    startup = venv.startup_files(dirs)
    opened = {d: os.lstat(d).st_mode & 0o7777 for d in venv.writable(site)}
    for d in opened:
        os.chmod(d, 0o1777)  # add, never replace: the sticky bit keeps root's entries root's
    env.update({k: v for k, v in os.environ.items() if k.lower() in ("http_proxy", "https_proxy", "no_proxy")})
    ca = os.path.join(CTX, "ca.pem")
    if os.path.isfile(ca) and os.path.getsize(ca):
        env["PIP_CERT"] = ca
    failed: tuple[str, list[str]] | None = None  # (step, pip's last lines + the path it was denied)
    for step in steps:
        target = ["-r", os.path.join(CTX, step)] if step.endswith(".txt") else [os.path.join(CTX, step)]
        rc, tail = run_pip(["install", "-c", os.path.join(CTX, "pins.txt"), *target], env, work)
        if rc != 0:
            failed = (step, tail)
            break
    if failed is None:
        rc, tail = run_pip(["check"], env, work)
        failed = ("check", tail) if rc != 0 else None
    reap()
    for d, mode in opened.items():
        os.chmod(d, mode)
    # The last belt: Python as it will start in the image, site and all (run as the installer, then reaped).
    restarted = python_start(env, work)
    reap()
    after = venv.snapshot()
    for path in set(after) - set(before):
        if os.lstat(path).st_uid == UID:
            os.lchown(path, 0, 0)
    for tmp in ("/tmp", "/var/tmp"):  # what the installer left elsewhere does not stay in the image
        for entry in os.listdir(tmp):
            if os.lstat(os.path.join(tmp, entry)).st_uid == UID:
                shutil.rmtree(os.path.join(tmp, entry), ignore_errors=True)
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(tmp, entry))
    after = venv.snapshot()
    problems = venv.violations(before, after, site, files, tuple(sorted(venv.startup_files(dirs) - startup)))
    if restarted != start:
        problems.append(f"Python starts differently after the install (sys.path was {start}, is {restarted[:300]})")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        fail("; ".join(problems[:3]) + more + "; your packages may add to the image, never change what it has")
    if failed:
        step, tail = failed
        if tail[-1]:
            fail(f"the install {venv.denied(tail[-1], before, files, site)}", step)
        fail("pip check failed" if step == "check" else "pip failed", step, tail[:-1])
    shutil.rmtree(CTX, ignore_errors=True)


if __name__ == "__main__":
    main()
