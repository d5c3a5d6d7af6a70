"""The house: the parent never imports torch, the JSON report's declared shape, lint and types."""

import json
import subprocess
import sys
from pathlib import Path

from helpers import EXAMPLES, ROOT, in_process, planted_spec, reprocheck, write_spec


def test_run_validate_matrix_schema_never_import_torch_here(spec_dir, tmp_path):
    spec = planted_spec(spec_dir, "os_entropy")
    tv = write_spec(
        spec_dir, "version: 1\nmodel: {torchvision: resnet19}\ninput: {random: {shape: [1, 3, 8, 8]}}\n", "tv.yaml"
    )
    out = in_process(
        ["run", "-q", str(spec), "--report", str(tmp_path / "r.json")],  # compared in the worker: exit 1
        ["run", "-q", str(spec), "--isolation", "spawn"],
        ["run", str(tv)],  # the name check is answered by the zygote: exit 2
        ["validate", "--deep", str(tv)],  # ... or by a helper process
        ["validate", str(EXAMPLES / "suite.yaml")],
        ["matrix", str(EXAMPLES / "suite.yaml")],
        ["schema"],
        ["schema", "--report"],
        ["env", "--json"],  # read by a helper process
        ["diagnose", str(spec)],  # its comparisons and traces are read by one helper process
    )
    assert out["codes"] == [1, 1, 2, 2, 0, 0, 0, 0, 0, 1]
    assert out["torch"] is False and out["numpy"] is False
    assert json.loads((tmp_path / "r.json").read_text())["checks"][0]["outputs"][0]["status"] == "values"


def test_the_report_schema_describes_the_reports(spec_dir, tmp_path):
    import jsonschema

    r = reprocheck("schema", "--report", "-o", str(tmp_path / "schema.json"))
    assert r.code == 0, r
    schema = json.loads((tmp_path / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    spec = write_spec(
        spec_dir,
        """version: 1
input: {random: {shape: [4, 8]}}
checks:
  - {name: ok, model: {factory: "planted:seeded_init"}}
  - {name: flaky, model: {factory: "planted:os_entropy"}}
  - {name: broken, model: {factory: "planted:raises"}}
""",
    )
    golden = ("--baseline", "bl", "--update-baseline")
    reprocheck("run", str(spec), "--report", str(tmp_path / "r.json"), *golden, cwd=spec_dir)
    report = json.loads((tmp_path / "r.json").read_text())
    jsonschema.validate(report, schema)
    statuses = {c["name"]: (c["status"], (c["baseline"] or {}).get("status")) for c in report["checks"]}
    assert statuses == {"ok": ("pass", "updated"), "flaky": ("fail", "not-updated"), "broken": ("error", None)}


def test_reprocheck_docker_works_from_a_venv_without_torch(tmp_path):
    # What a laptop user does: a fresh venv, `pip install 'reprocheck[docker]'`. No torch comes along,
    # and the launcher works (a stand-in docker records the container it would start).
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", f"{ROOT}[docker]"], capture_output=True, text=True
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    py = venv / "bin" / "python"
    has_torch = subprocess.run(
        [str(py), "-c", "import importlib.util; print(importlib.util.find_spec('torch'))"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert has_torch == "None"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text('#!/bin/sh\n[ "$1" = run ] && echo "container ran: $*"\nexit 0\n')
    docker.chmod(0o755)
    ws = tmp_path / "ws"
    ws.mkdir()
    write_spec(ws, "version: 1\nmodel: {factory: 'm:f'}\ninput: {random: {shape: [2]}}\n", "s.yaml")
    env = {"PATH": f"{bin_dir}:{venv / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}
    r = subprocess.run(
        ["reprocheck", "docker", "s.yaml", "--image", "i:t", "--report", "out/r.json"],
        cwd=ws,
        env=env,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "container ran: run --rm" in r.stdout and (ws / "out").is_dir()
    r = subprocess.run(["reprocheck", "run", "s.yaml"], cwd=ws, env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "torch is not installed" in r.stderr  # and `run` says what to do


def test_the_module_map_names_every_module():
    # The map cannot drift: every module of the package appears in it (sub-packages by folder or file name).
    text = (ROOT / "DEVELOPMENT.md").read_text()
    table = text.split("**Where things are**", 1)[1].split("\n\n", 2)[1]
    package = ROOT / "runner" / "reprocheck"
    missing = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package)
        if rel.name == "__init__.py":
            continue
        if f"`{rel.name}`" not in table and f"`{rel}`" not in table:
            missing.append(str(rel))
    assert missing == [], f"modules missing from the module map (DEVELOPMENT.md): {missing}"


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_uses_another_modules_private_names():
    # A leading underscore means "this module's own": imported or reached as module._name elsewhere, it is an
    # interface in disguise. Make it public where it is shared, or move it to the module that needs it.
    import ast

    package = ROOT / "runner" / "reprocheck"
    graph_names = {p: _module_name(p) for p in package.rglob("*.py")}
    modules = set(graph_names.values())
    broken = []
    for path, module in sorted(graph_names.items()):
        tree = ast.parse(path.read_text())
        base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        aliases = {}
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            target = (
                ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
                if node.level
                else node.module or ""
            )
            if not target.startswith("reprocheck"):
                continue
            for a in node.names:
                if f"{target}.{a.name}" in modules:
                    aliases[a.asname or a.name] = f"{target}.{a.name}"
                elif _private(a.name):
                    broken.append(f"{path.relative_to(package)}:{node.lineno} imports {a.name} from {target}")
        for node in ast.walk(tree):
            reached = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
            if reached and _private(node.attr):
                broken.append(f"{path.relative_to(package)}:{node.lineno} uses {aliases[node.value.id]}.{node.attr}")
    assert broken == []


def test_no_function_is_longer_than_80_lines():
    # A function reads in one screen; a longer one is several steps that want names of their own.
    import ast

    package = ROOT / "runner" / "reprocheck"
    long = {
        f"{path.relative_to(package)}:{node.lineno} {node.name}": node.end_lineno - node.lineno + 1
        for path in sorted(package.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 80
    }
    assert long == {}, f"split these functions (over 80 lines): {long}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT / "runner").with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Every reprocheck module -> the reprocheck modules it imports: function-local and TYPE_CHECKING imports too."""
    import ast

    package = ROOT / "runner" / "reprocheck"

    def name(path: Path) -> str:
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)

    modules = {name(p): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        tree = ast.parse(path.read_text())
        base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        deps: set[str] = set()
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or not node.level:
                continue
            target = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            subs = [f"{target}.{a.name}" for a in node.names if f"{target}.{a.name}" in modules]
            for dep in subs or ([target] if target in modules else []):
                if dep != module and not module.startswith(dep + "."):  # a package's own __init__ is no edge
                    deps.add(dep)
        graph[module] = deps
    return graph


HEAVY = ("torch", "numpy", "safetensors", "torchvision", "timm", "transformers", "PIL", "matplotlib")


def _imports(path: Path) -> list[tuple[int, int, str]]:
    """(line, indentation, absolute name) of every import in a module: function-local and TYPE_CHECKING ones too."""
    import ast

    package = ROOT / "runner"
    parts = list(path.relative_to(package).with_suffix("").parts)
    base = parts if parts[-1] == "__init__" else parts[:-1]
    if parts[-1] == "__init__":
        base = parts[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, node.col_offset, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if not node.level:
                found.append((node.lineno, node.col_offset, node.module or ""))
                continue
            target = ".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
            found += [(node.lineno, node.col_offset, f"{target}.{a.name}") for a in node.names]
    return found


def _side(path: Path) -> str:
    rel = path.relative_to(ROOT / "runner" / "reprocheck").parts
    return rel[0] if len(rel) > 1 and rel[0] in ("host", "worker") else "shared"


def test_the_layout_is_the_architecture():
    # host/ is reprocheck's own process: no torch, NumPy or safetensors, at import time or lazily, and nothing of
    # the torch side (worker/). The shared modules at the top (spec/, results, the tree, files, ...) import neither
    # side. worker/ may import torch and the shared modules, never host/.
    broken = []
    for path in sorted((ROOT / "runner" / "reprocheck").rglob("*.py")):
        rel, side = path.relative_to(ROOT / "runner"), _side(path)
        for line, indent, name in _imports(path):
            top = name.split(".")[0]
            inner = name.split(".")[1] if top == "reprocheck" and "." in name else ""
            if side != "worker" and top in HEAVY:
                broken.append(f"{rel}:{line} imports {name} ({side} side)")
            if side == "host" and inner == "worker":
                broken.append(f"{rel}:{line} imports {name}: the host side reaches the worker by process only")
            if side == "worker" and inner == "host":
                broken.append(f"{rel}:{line} imports {name}: the worker never imports the host side")
            if side == "shared" and inner in ("host", "worker"):
                # The entry point runs the host; the public seeding helpers load the worker's recipe on first use.
                entry = rel.name == "__main__.py" and inner == "host"
                helpers = rel.name == "__init__.py" and rel.parent.name == "reprocheck" and indent > 0
                if not (entry or helpers):
                    broken.append(f"{rel}:{line} imports {name}: a shared module imports neither side")
    assert broken == []


def test_the_package_has_no_import_circles():
    graph = _import_graph()
    circles = []

    def visit(module: str, path: list[str], done: set[str]) -> None:
        for dep in sorted(graph[module]):
            if dep in path:
                circles.append(path[path.index(dep) :] + [dep])
            elif dep not in done:
                visit(dep, [*path, dep], done)
        done.add(module)

    done: set[str] = set()
    for module in sorted(graph):
        if module not in done:
            visit(module, [module], done)
    assert circles == [], "import circles: " + "; ".join(" -> ".join(c) for c in circles[:5])


def test_host_is_grouped_by_job():
    # A few shared modules directly in host/; everything else in a sub-package that says its job in one docstring.
    import ast

    host = ROOT / "runner" / "reprocheck" / "host"
    loose = sorted(p.name for p in host.glob("*.py") if p.name != "__init__.py")
    assert len(loose) <= 8, f"host/ holds {len(loose)} modules directly: {loose}"
    for package in sorted(p.parent for p in host.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text()))
        assert doc, f"host/{package.name}/__init__.py says nothing of the sub-package's job"


def test_the_launcher_is_standard_library_only():
    # The Action's step runs it from a checkout, on a runner where reprocheck and its dependencies are not
    # installed: the standard library, and nothing of the package outside the launcher, github.py and exitcodes.py.
    host = ROOT / "runner" / "reprocheck" / "host"
    allowed = ("reprocheck.host.launcher", "reprocheck.host.github", "reprocheck.host.exitcodes")
    broken = []
    for path in [*sorted((host / "launcher").glob("*.py")), host / "github.py", host / "exitcodes.py"]:
        for line, _, name in _imports(path):
            top = name.split(".")[0]
            # As a file the step imports `host` from the checkout; the build step imports its sibling derived_venv.
            as_file = name in ("host", "derived_venv") or ("reprocheck." + name).startswith(allowed)
            inside = top == "reprocheck" and name.startswith(allowed)
            ok = inside or as_file or (top not in ("reprocheck", "host") and top in sys.stdlib_module_names)
            if not ok:
                broken.append(f"{path.relative_to(host)}:{line} imports {name}")
    assert broken == []


def test_only_the_workers_package_names_the_worker():
    # Every start of the torch side goes through host/workers/ (its command, its session, what it leaves behind),
    # whichever stack it runs on: no other host module spells the worker's module name.
    import ast

    host = ROOT / "runner" / "reprocheck" / "host"
    spelled = []
    for path in sorted(host.rglob("*.py")):
        if "workers" in path.relative_to(host).parts:
            continue
        tree = ast.parse(path.read_text())
        said = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}  # docstrings may speak of it
        spelled += [
            f"{path.relative_to(host)}:{node.lineno}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in said
            if "reprocheck.worker" in node.value
        ]
    assert spelled == []


def test_no_stream_is_bound_at_import():
    # A default argument of sys.stdout or sys.stderr is the stream seen at import: under --github that is not
    # the neutralising one, and model text printed through it could act as a workflow command.
    import ast

    package = ROOT / "runner" / "reprocheck"
    bound = [
        f"{path.relative_to(package)}:{node.lineno}"
        for path in sorted(package.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.arguments)
        for default in [*node.defaults, *(d for d in node.kw_defaults if d is not None)]
        if isinstance(default, ast.Attribute) and isinstance(default.value, ast.Name) and default.value.id == "sys"
        if default.attr in ("stdout", "stderr")
    ]
    assert bound == []


def test_the_command_line_starts_light():
    # Every start (even `-V`) imports the parser and what it names, not the reports or the analyses: those load
    # when a command needs them.
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import reprocheck.host.commands.main; "
        "print(sorted(m for m in sys.modules if m.startswith(('reprocheck.host.report', 'reprocheck.host.analyses'))))"
    )
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "runner")], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out


def test_the_readme_action_inputs_table_is_action_yml():
    import yaml

    inputs = yaml.safe_load((ROOT / "action.yml").read_text())["inputs"]
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| input | default | meaning |") :].split("\n\n")[0]
    rows = [line.split("|")[1:3] for line in table.splitlines()[2:]]
    assert [name.strip().strip("`") for name, _ in rows] == list(inputs)
    for name, default in rows:
        written = str(inputs[name.strip().strip("`")].get("default", ""))
        if written:  # an empty default is said in words (none, all, the spec's, the release image)
            assert default.strip() == f"`{written}`", (name, default, written)
