"""The derived image's venv before and after the install (derived_inside.py): what it holds (the metadata of every
path, which distribution owns it, the files Python runs at start), and what an install changed that it may not.
Standard library only, and no reprocheck import: it runs in the image, staged beside derived_inside.py."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import stat
import sys

VENV = "/opt/venv"
# Files that change how Python starts wherever they appear (next to the interpreter, in the venv's root).
STARTUP_NAMES = ("pyvenv.cfg", "pybuilddir.txt")
# Entry-point groups something imports on its own (pydantic in reprocheck's process, `import torch`, triton).
AUTOLOADED = {
    "pydantic": "a pydantic plugin, which would run in reprocheck's own process",
    "torch.backends": "a torch.backends entry point, which `import torch` runs",
    "triton.backends": "a triton.backends entry point, which importing triton runs",
}
OUTSIDE = "packages may add only to site-packages and bin/, not data files into share/, include/ or elsewhere"
NOT_SCRIPT = "bin/ takes only scripts whose first line runs the venv's python (console scripts)"
Signature = tuple[object, ...]


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


def denied(path: str, before: dict[str, Signature], files: dict[str, str], site: str) -> str:
    """What the installer was refused, in words."""
    if path in before:
        what = f"{shown(path, site)} of {owner(path, files, site)}"
        return f"tried to change {what}; your packages may add to the image, never change it"
    if inside(path, site) or inside(path, os.path.join(VENV, "bin")):
        parent = owner(os.path.dirname(path), files, site)
        return f"tried to add {shown(path, site)} into {parent}'s folder; your packages may add to the image"
    return f"tried to add {path}: {OUTSIDE}; install a package without them"
