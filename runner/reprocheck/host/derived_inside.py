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
import pwd
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
# Files that change how Python starts wherever they appear (next to the interpreter, in the venv's root).
STARTUP_NAMES = ("pyvenv.cfg", "pybuilddir.txt")
# Entry-point groups something imports on its own (pydantic in reprocheck's process, `import torch`, triton).
AUTOLOADED = {
    "pydantic": "a pydantic plugin, which would run in reprocheck's own process",
    "torch.backends": "a torch.backends entry point, which `import torch` runs",
    "triton.backends": "a triton.backends entry point, which importing triton runs",
}
PROBE = "import sys,json; print(json.dumps([sys.path, sys.flags.isolated]))"
OUTSIDE = "packages may add only to site-packages and bin/, not data files into share/, include/ or elsewhere"
NOT_SCRIPT = "bin/ takes only scripts whose first line runs the venv's python (console scripts)"
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


def inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


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


def shown(path: str, site: str) -> str:
    return os.path.relpath(path, site) if inside(path, site) else path


def import_name(entry: str) -> str:
    """The top-level module an entry of site-packages provides ('' for dist-info folders, .pth files, ...)."""
    m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(\.|$)", entry)
    return m.group(1) if m else ""


def site_dirs(python_path: list[str]) -> list[str]:
    """Every folder Python may run a .pth or sitecustomize from: what `site` reads in this image (Debian's adds
    `local/lib/.../dist-packages` even in a venv), every user's site folder, and the installer's sys.path."""
    import site  # -S: importing it runs nothing

    dirs = [*site.getsitepackages(), site.getusersitepackages()]
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    dirs += [os.path.join(u.pw_dir, ".local", "lib", version, "site-packages") for u in pwd.getpwall()]
    return sorted({os.path.normpath(d) for d in dirs + [p for p in python_path if p]})


def startup_files(dirs: list[str]) -> set[str]:
    """The .pth files and sitecustomize/usercustomize modules in `dirs`."""
    found = set()
    for d in dirs:
        with contextlib.suppress(OSError):
            for entry in os.listdir(d):
                if entry.endswith(".pth") or import_name(entry) in ("sitecustomize", "usercustomize"):
                    found.add(os.path.join(d, entry))
    return found


def entry_point_groups(text: str) -> set[str]:
    """The groups of an entry_points.txt, read as importlib.metadata does (a line `[...]`, brackets stripped)."""
    lines = (line.strip() for line in text.splitlines())
    return {line.strip("[]").strip().lower() for line in lines if line.startswith("[") and line.endswith("]")}


def is_script(path: str) -> bool:
    """A regular file whose first line runs it with the venv's python (pip's console scripts, `#!python`)."""
    if not stat.S_ISREG(os.lstat(path).st_mode):
        return False
    with open(path, "rb") as f:
        first = f.readline(512)
    return re.match(rb"#!" + re.escape(VENV.encode()) + rb"/bin/python[0-9.]*\s*$", first) is not None


def violations(
    before: dict[str, Signature],
    after: dict[str, Signature],
    site: str,
    files: dict[str, str],
    new_startup: tuple[str, ...] = (),
) -> list[str]:
    found = []
    for path, sig in before.items():
        if after.get(path) != sig:
            how = "removed" if path not in after else "changed"
            found.append(f"the install {how} {shown(path, site)} of {owner(path, files, site)}")
    opened = set(writable(site))
    bin_dir = os.path.join(VENV, "bin")
    new_files, _ = owners(site)
    modules = {import_name(os.path.basename(p)) for p in before if os.path.dirname(p) == site} - {""}

    def who(path: str) -> str:
        return next((d for p, d in new_files.items() if p == path or p.startswith(path + "/")), "a new package")

    for path in new_startup:
        name = os.path.basename(path)
        what = "a .pth file runs code" if name.endswith(".pth") else "a module Python imports"
        found.append(f"the install added {shown(path, site)} ({who(path)}): {what} at every Python start")
    for path in sorted(set(after) - set(before)):
        parent, name = os.path.split(path)
        top = parent in before  # the first new path on its way down
        if name.endswith("._pth") or name in STARTUP_NAMES:
            found.append(f"the install added {shown(path, site)} ({who(path)}): a file that changes how Python starts")
        elif not inside(path, site) and not inside(path, bin_dir):
            if top:
                found.append(f"the install added {shown(path, site)}: {OUTSIDE}")
        elif parent == bin_dir:
            if not is_script(path):
                found.append(f"the install added bin/{name} ({who(path)}): {NOT_SCRIPT}")
        elif top and parent not in opened:
            found.append(f"the install added {shown(path, site)} into {owner(parent, files, site)}'s folder")
        elif parent == site and import_name(name) in modules:
            found.append(f"the install added {name} ({who(path)}), which would shadow the image's {import_name(name)}")
        elif inside(parent, site) and name == "entry_points.txt":
            with open(path, encoding="utf-8", errors="replace") as f:
                groups = entry_point_groups(f.read())
            found += [f"{who(path)} declares {AUTOLOADED[g]}" for g in sorted(groups & set(AUTOLOADED))]
    return found


def writable(site: str) -> list[str]:
    """The folders pip may add to (sticky: never replace what is there). Nothing else of the venv: not its root,
    share/ or include/, where a package's data files could start Python differently."""
    return [d for d in (os.path.join(VENV, "bin"), site) if os.path.isdir(d)]


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


def denied(path: str, before: dict[str, Signature], files: dict[str, str], site: str) -> str:
    """What the installer was refused, in words."""
    if path in before:
        what = f"{shown(path, site)} of {owner(path, files, site)}"
        return f"tried to change {what}; your packages may add to the image, never change it"
    if inside(path, site) or inside(path, os.path.join(VENV, "bin")):
        parent = owner(os.path.dirname(path), files, site)
        return f"tried to add {shown(path, site)} into {parent}'s folder; your packages may add to the image"
    return f"tried to add {path}: {OUTSIDE}; install a package without them"


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
    dirs = site_dirs(json.loads(start)[0])
    startup = startup_files(dirs)
    opened = {d: os.lstat(d).st_mode & 0o7777 for d in writable(site)}
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
    problems = violations(before, after, site, files, tuple(sorted(startup_files(dirs) - startup)))
    if restarted != start:
        problems.append(f"Python starts differently after the install (sys.path was {start}, is {restarted[:300]})")
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        fail("; ".join(problems[:3]) + more + "; your packages may add to the image, never change what it has")
    if failed:
        step, tail = failed
        if tail[-1]:
            fail(f"the install {denied(tail[-1], before, files, site)}", step)
        fail("pip check failed" if step == "check" else "pip failed", step, tail[:-1])
    shutil.rmtree(CTX, ignore_errors=True)


if __name__ == "__main__":
    main()
