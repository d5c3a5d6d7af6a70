"""The derived image's build context: a staged copy of exactly what will be installed, and its hash.

  * an install folder in a git work tree gives what `git ls-files --cached --others --exclude-standard` lists
    (tracked and untracked files, not ignored ones), else the whole folder; never `.git`, never the run's
    writable output folders or model cache (`exclude`); an untracked file named like credentials (`gha-creds-*.json`
    that google-github-actions/auth writes into the workspace, `.netrc`, `.env`, `*.pem`, anything in `.ssh/`, ...)
    is refused: it would reach a networked build and an image layer;
  * a symlink is copied as what it points to when that lies inside its install folder (a folder link is copied
    as that folder, a loop refused); one that points outside (a file elsewhere, /proc/self/environ), a dangling
    one, and FIFOs, sockets and devices are refused: nothing the build sees can come from outside the folder;
  * files are opened without following links and must be regular files when read (no swap after the check);
  * the hash covers every staged path, mode and content, each length-prefixed: the tag is exactly what is built.

Standard library only (the Action's step imports it)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

from .derived_requirements import DerivedError

MAX_FILES = 200_000  # a bound on what folder links can multiply
GIT_CONFIG = (
    "core.fsmonitor=false",  # a repository's config may name a command to run: never run it
    "core.untrackedCache=false",
    "safe.bareRepository=explicit",  # a bare repository planted in the folder is never taken for ours
    "core.quotePath=false",
)
# Untracked files refused as credentials: by name, or anywhere in one of CREDENTIAL_DIRS.
CREDENTIAL_FILES = re.compile(
    r"gha-creds-.*\.json|[._]netrc|\.pypirc|\.npmrc|\.git-credentials|\.env|\.env\..+|.+\.pem|.+\.key"
)
CREDENTIAL_DIRS = frozenset((".ssh", ".docker", ".aws", ".azure", ".kube", ".gnupg"))


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def git_files(folder: str) -> tuple[set[str] | None, set[str], str]:
    """The paths git lists in `folder` (relative to it) and those of them it does not track; None when it is not
    in a work tree, git is missing or cannot list it, with a note saying why git was not used."""
    top = next((p for p in (folder, *map(str, Path(folder).parents)) if os.path.lexists(os.path.join(p, ".git"))), None)
    if top is None:
        return None, set(), ""
    if shutil.which("git") is None:
        return None, set(), f"git is not installed: copying all of {folder}"
    listed = _ls_files(folder, top, "--cached", "--others")
    untracked = _ls_files(folder, top, "--others")
    if isinstance(listed, str) or isinstance(untracked, str):
        why = listed if isinstance(listed, str) else untracked
        return None, set(), f"git could not list {folder} ({why}): copying all of it"
    return listed, untracked, ""


def _ls_files(folder: str, top: str, *which: str) -> set[str] | str:
    """`git ls-files` of folder (relative paths), or why it failed."""
    # The repository is named explicitly (no discovery), and no GIT_* variable of ours redirects it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", GIT_PAGER="cat")
    argv = ["git"] + [a for c in GIT_CONFIG for a in ("-c", c)]
    argv += ["-C", folder, f"--git-dir={top}/.git", f"--work-tree={top}"]
    argv += ["ls-files", "-z", *which, "--exclude-standard", "--", "."]
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if proc.returncode != 0:
        return (proc.stderr.decode(errors="replace").strip().splitlines() or ["no message"])[-1][:200]
    return {p.rstrip("/") for p in proc.stdout.decode(errors="surrogateescape").split("\0") if p}


class Stager:
    """Copies one install folder into the context, refusing what could reach outside it."""

    def __init__(
        self, folder: Path, shown: str, exclude: tuple[Path, ...], listed: set[str] | None, untracked: set[str]
    ) -> None:
        self.root = os.path.realpath(folder)
        self.shown = shown
        self.exclude = [os.path.realpath(e) for e in exclude]
        self.listed = listed
        self.untracked = untracked
        self.parents: set[str] = set()  # folders holding a listed path
        for p in listed or ():
            parts = p.split("/")
            self.parents.update("/".join(parts[:i]) for i in range(1, len(parts)))
        self.count = 0

    def refuse(self, rel: str, why: str) -> DerivedError:
        return DerivedError(f"install {self.shown}: {rel} {why}")

    def _excluded(self, real: str) -> bool:
        return any(_inside(real, e) for e in self.exclude)

    def _credentials(self, rel: str) -> bool:
        """An untracked file (or one in an untracked folder git lists whole) named like credentials."""
        parts = rel.split("/")
        if not any("/".join(parts[:i]) in self.untracked for i in range(1, len(parts) + 1)):
            return False
        return CREDENTIAL_FILES.fullmatch(parts[-1]) is not None or not CREDENTIAL_DIRS.isdisjoint(parts[:-1])

    def _wanted(self, rel: str, folder: bool, whole: bool) -> bool:
        if whole or self.listed is None or rel in self.listed:
            return True
        return folder and rel in self.parents

    def stage(self, dest: Path) -> None:
        if any(_inside(self.root, e) for e in self.exclude):
            raise DerivedError(
                f"install {self.shown} is a writable output folder or the model cache (or inside one); "
                "install your package's own folder"
            )
        dest.mkdir(mode=0o755)
        self._walk(self.root, dest, [self.root], whole=False)

    def _walk(self, real_dir: str, dest: Path, chain: list[str], whole: bool) -> None:
        """Copy what is wanted of real_dir; `whole`: all of it (a folder git lists as one entry: a nested
        repository or a submodule)."""
        try:
            names = sorted(os.listdir(real_dir))
        except OSError as exc:
            raise self.refuse(os.path.relpath(real_dir, self.root), f"cannot be read ({exc.strerror})") from None
        for name in names:
            real = os.path.join(real_dir, name)
            rel = os.path.relpath(real, self.root)
            if name == ".git" or self._excluded(real):
                continue
            st = os.lstat(real)
            if stat.S_ISDIR(st.st_mode):
                if self._wanted(rel, True, whole):
                    (dest / name).mkdir(mode=0o755)
                    self._walk(real, dest / name, [*chain, real], whole or rel in (self.listed or ()))
                continue
            if not self._wanted(rel, False, whole):
                continue
            if self._credentials(rel):
                raise self.refuse(
                    rel,
                    "is not tracked by git and looks like credentials, which the build would copy into the "
                    "image; add it to .gitignore or remove it",
                )
            if stat.S_ISLNK(st.st_mode):
                self._link(real, rel, dest / name, chain, whole)
            elif stat.S_ISREG(st.st_mode):
                self._copy(real, rel, dest / name)
            else:
                raise self.refuse(rel, "is a FIFO, socket or device, which a package cannot hold; remove it")

    def _link(self, real: str, rel: str, dest: Path, chain: list[str], whole: bool) -> None:
        target = os.path.realpath(real)
        shown = f"{rel} -> {os.readlink(real)}"
        if not os.path.exists(target):
            raise self.refuse(shown, "is a dangling symlink; remove it or make it point to a file in the folder")
        if not _inside(target, self.root):
            raise self.refuse(shown, "points outside the folder, which the build never copies; copy the file in")
        if self._excluded(target):
            raise self.refuse(shown, "points into a writable output folder or the model cache; copy the file in")
        st = os.stat(target)
        if stat.S_ISDIR(st.st_mode):
            if target in chain:
                raise self.refuse(shown, "points to a folder that holds it (a loop); remove it")
            dest.mkdir(mode=0o755)
            # What the folder it points to holds in the listing (or all of it, as for any folder outside git).
            self._walk(target, dest, [*chain, target], whole)
        elif stat.S_ISREG(st.st_mode):
            self._copy(target, rel, dest)
        else:
            raise self.refuse(shown, "points to a FIFO, socket or device; remove it")

    def _copy(self, real: str, rel: str, dest: Path) -> None:
        self.count += 1
        if self.count > MAX_FILES:
            raise self.refuse(rel, f"is one file too many: more than {MAX_FILES} files to install; list fewer")
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            raise self.refuse(rel, f"cannot be read ({exc.strerror})") from None
        with os.fdopen(fd, "rb") as src:
            st = os.fstat(src.fileno())
            if not stat.S_ISREG(st.st_mode):  # swapped since it was looked at
                raise self.refuse(rel, "changed while it was copied; try again")
            mode = 0o755 if st.st_mode & 0o111 else 0o644
            with open(dest, "xb") as out:
                shutil.copyfileobj(src, out)
        os.chmod(dest, mode)


def stage_install(folder: Path, shown: str, dest: Path, exclude: tuple[Path, ...]) -> str:
    """Copy an install folder into `dest`; returns a note for the log ('' when none). Raises DerivedError."""
    real = os.path.realpath(folder)
    if not os.path.isdir(real):
        raise DerivedError(f"install {shown}: no such folder")
    listed, untracked, note = git_files(real)
    Stager(folder, shown, exclude, listed, untracked).stage(dest)
    if not (dest / "pyproject.toml").is_file() and not (dest / "setup.py").is_file():
        raise DerivedError(f"install {shown}: no pyproject.toml or setup.py there (give your package's folder)")
    return note


def tree_hash(root: Path, *prefix: bytes) -> str:
    """sha256 over `prefix` and every path (type, mode, content) under root, each length-prefixed."""
    h = hashlib.sha256()

    def put(data: bytes) -> None:
        h.update(len(data).to_bytes(8, "big") + data)

    for p in prefix:
        put(p)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            put(os.path.relpath(path, root).encode(errors="surrogateescape"))
            put(b"%o" % st.st_mode)
            if stat.S_ISREG(st.st_mode):
                h.update(st.st_size.to_bytes(8, "big"))
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
    return h.hexdigest()
