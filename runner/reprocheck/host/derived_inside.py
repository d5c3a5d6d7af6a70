"""The derived image's one build step, run as root by `/opt/venv/bin/python -I -S` (no site-packages, no .pth,
no environment: nothing the install adds can run in this process), from the staged build context.

  1. records the venv as it is (mode, owner, size, mtime, ctime and link target of every path) and pins every
     distribution of the image as a pip constraint at its version (reprocheck's direct URL too);
  2. runs pip as an unprivileged uid: the venv's folders are sticky-writable for it, so it can add files but not
     change, replace or remove any of the image's (they stay root's); then kills whatever pip left running;
  3. compares: any changed or removed path of the venv, a path added inside one of the image's package folders,
     a new .pth file, a sitecustomize/usercustomize module or a new pydantic plugin fails the build, naming the
     distribution and file. Errors end with one marker line the host reads (MARK + JSON).

Standard library only, and no reprocheck import: it runs in the image, outside the package."""

from __future__ import annotations

import collections
import contextlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys

VENV = "/opt/venv"
CTX = "/tmp/reprocheck-derive"
UID = 10002  # the installer: no passwd entry, no group beyond its own
MARK = "reprocheck-derive-error: "
Signature = tuple[object, ...]


def fail(message: str, step: str = "", tail: list[str] | None = None) -> None:
    print(MARK + json.dumps({"message": message, "step": step, "tail": tail or []}), flush=True)
    sys.exit(1)


def site_packages() -> str:
    lib = os.path.join(VENV, "lib")
    found = [os.path.join(lib, d, "site-packages") for d in os.listdir(lib) if d.startswith("python")]
    if len(found) != 1:
        fail(f"the image's venv has {len(found)} site-packages folders, not one")
    return found[0]


def snapshot() -> dict[str, Signature]:
    out: dict[str, Signature] = {}
    for dirpath, dirnames, filenames in os.walk(VENV):
        for name in dirnames + filenames + ([""] if dirpath == VENV else []):
            path = os.path.join(dirpath, name) if name else dirpath
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):  # a folder's times change when pip adds to it
                out[path] = (st.st_mode, st.st_uid, st.st_gid)
            else:
                link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else ""
                out[path] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, st.st_ctime_ns, link)
    return out


def owners(site: str) -> tuple[dict[str, str], dict[str, str]]:
    """(path -> distribution from every RECORD, name -> version of every distribution)."""
    files: dict[str, str] = {}
    versions: dict[str, str] = {}
    for entry in sorted(os.listdir(site)):
        if not entry.endswith(".dist-info"):
            continue
        name, _, version = entry[: -len(".dist-info")].rpartition("-")
        name = re.sub(r"[-_.]+", "-", name).lower()
        versions[name] = version
        files[os.path.join(site, entry)] = name
        try:
            with open(os.path.join(site, entry, "RECORD"), encoding="utf-8", errors="replace") as f:
                for line in f:
                    path = line.rsplit(",", 2)[0]
                    if path:
                        files[os.path.normpath(os.path.join(site, path))] = name
        except OSError:
            pass
    return files, versions


def owner(path: str, files: dict[str, str], site: str) -> str:
    probe = path
    while probe.startswith(VENV):
        if probe in files:
            return files[probe]
        probe = os.path.dirname(probe)
    return "the venv" if not path.startswith(site) else "site-packages"


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


def writable(site: str) -> list[str]:
    """The folders pip may add to (sticky: never replace what is there)."""
    return [d for d in (VENV, *(os.path.join(VENV, d) for d in ("bin", "include", "share")), site) if os.path.isdir(d)]


def import_name(entry: str) -> str:
    """The top-level module an entry of site-packages provides ('' for dist-info folders, .pth files, ...)."""
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(\.|$)", entry)
    return m.group(1) if m else ""


def violations(
    before: dict[str, Signature], after: dict[str, Signature], site: str, files: dict[str, str]
) -> list[str]:
    found = []
    for path, sig in before.items():
        if after.get(path) != sig:
            how = "removed" if path not in after else "changed"
            found.append(f"the install {how} {os.path.relpath(path, site)} of {owner(path, files, site)}")
    opened = set(writable(site))
    new_files, _ = owners(site)
    modules = {import_name(os.path.basename(p)) for p in before if os.path.dirname(p) == site} - {""}

    def who(path: str) -> str:
        return next((d for p, d in new_files.items() if p == path or p.startswith(path + "/")), "a new package")

    for path in sorted(set(after) - set(before)):
        parent, name = os.path.split(path)
        if parent in before and parent not in opened:
            found.append(f"the install added {os.path.relpath(path, site)} into {owner(parent, files, site)}'s folder")
        elif parent == site and name.endswith(".pth"):
            found.append(f"the install added {name} ({who(path)}): a .pth file runs code at every Python start")
        elif parent == site and import_name(name) in ("sitecustomize", "usercustomize"):
            found.append(f"the install added {name} ({who(path)}): a module Python runs at every start")
        elif parent == site and import_name(name) in modules:
            found.append(f"the install added {name} ({who(path)}), which would shadow the image's {import_name(name)}")
        elif parent.startswith(site) and name == "entry_points.txt":
            with open(path, encoding="utf-8", errors="replace") as f:
                if re.search(r"^\s*\[\s*pydantic\s*\]", f.read(), re.M):
                    found.append(f"{who(path)} declares a pydantic plugin, which would run in reprocheck's own process")
    return found


def main() -> None:
    os.umask(0o022)
    site = site_packages()
    before = snapshot()
    files, versions = owners(site)
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
    opened = {d: os.lstat(d).st_mode & 0o7777 for d in writable(site)}
    for d in opened:
        os.chmod(d, 0o1777)  # add, never replace: the sticky bit keeps root's entries root's
    env = {
        "PATH": f"{VENV}/bin:/usr/local/bin:/usr/bin:/bin",
        "HOME": work,
        "LANG": "C.UTF-8",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PIP_NO_CACHE_DIR": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_INPUT": "1",
    }
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
    try:
        os.kill(-1, signal.SIGKILL)  # whatever the install left running (every process but this one)
    except ProcessLookupError:
        pass
    while True:  # this is PID 1: orphans are its children; none left means none running
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            break
    for d, mode in opened.items():
        os.chmod(d, mode)
    after = snapshot()
    for path in set(after) - set(before):
        if os.lstat(path).st_uid == UID:
            os.lchown(path, 0, 0)
    for tmp in ("/tmp", "/var/tmp"):  # what the installer left elsewhere does not stay in the image
        for entry in os.listdir(tmp):
            if os.lstat(os.path.join(tmp, entry)).st_uid == UID:
                shutil.rmtree(os.path.join(tmp, entry), ignore_errors=True)
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(tmp, entry))
    after = snapshot()
    problems = violations(before, after, site, files)
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        fail("; ".join(problems[:3]) + more + "; your packages may add to the image, never change what it has")
    if failed:
        step, tail = failed
        if tail[-1]:
            what = f"{os.path.relpath(tail[-1], site)} of {owner(tail[-1], files, site)}"
            fail(f"the install tried to change {what}; your packages may add to the image, never change it", step)
        fail("pip check failed" if step == "check" else "pip failed", step, tail[:-1])
    shutil.rmtree(CTX, ignore_errors=True)


if __name__ == "__main__":
    main()
