"""Spec validation through the real CLI: bad specs are refused with exit 2, a located one-line message, no traceback."""

import json
import subprocess
import sys

import pytest

from helpers import EXAMPLES, ROOT, reprocheck, write_spec

GOOD = """version: 1
model:
  torchvision: resnet18
  kwargs: {weights: null}
input:
  random: {shape: [1, 3, 32, 32]}
"""

# (name, spec text, expected fragment of the message, expected line)
BAD = [
    ("unknown top key", GOOD + "sead: 1\n", "sead: unknown key (did you mean 'seed'?)", 7),
    ("unknown nested key", GOOD.replace("kwargs:", "kwarg:"), "model.kwarg: unknown key (did you mean 'kwargs'?)", 4),
    ("runs below two", GOOD + "runs: 1\n", "runs: Input should be greater than or equal to 2", 7),
    ("runs as string", GOOD + "runs: '3'\n", "runs: Input should be a valid integer", 7),
    ("negative timeout", GOOD + "timeout: -5\n", "timeout: Input should be greater than 0", 7),
    (
        "negative atol",
        GOOD + "tolerance: {atol: -1.0}\n",
        "tolerance.atol: Input should be greater than or equal to 0",
        7,
    ),
    ("bad device", GOOD + "device: gpu\n", 'device: "gpu" is not a device (use cpu, cuda, cuda:N or auto)', 7),
    (
        "two model sources",
        GOOD.replace("  torchvision: resnet18\n", "  torchvision: resnet18\n  factory: 'm:f'\n"),
        "model: several model sources (torchvision, factory); give exactly one",
        2,
    ),
    (
        "no input source",
        GOOD.replace("  random: {shape: [1, 3, 32, 32]}\n", "  format: auto\n"),
        "input: no input source",
        5,
    ),
    ("missing model", "version: 1\ninput:\n  random: {shape: [2]}\n", "model: missing (add this key)", 1),
    (
        "missing file",
        GOOD.replace("random: {shape: [1, 3, 32, 32]}", "image: nowhere.png"),
        "input.image: file not found",
        6,
    ),
    (
        "bad factory string",
        GOOD.replace("torchvision: resnet18", "factory: not-a-callable").replace("  kwargs: {weights: null}\n", ""),
        'model.factory: "not-a-callable" is not "module:callable"',
        3,
    ),
    (
        "unknown torchvision model",
        GOOD.replace("resnet18", "resnet19"),
        "unknown torchvision model 'resnet19' (did you mean",
        3,
    ),
    (
        "unknown weights",
        GOOD.replace("weights: null", "weights: IMAGENET"),
        "'IMAGENET' is not a weight of resnet18",
        4,
    ),
    (
        "wrong version",
        GOOD.replace("version: 1", "version: 2"),
        "version: 2 is not supported (write `version: 1` at the top)",
        1,
    ),
    ("no version", GOOD.replace("version: 1\n", ""), "version: missing", 1),
    ("duplicate key", GOOD + "seed: 1\nseed: 2\n", "seed: duplicate key", 8),
    ("yaml syntax", "version: 1\nmodel: [unclosed\n", "YAML syntax error", None),
    ("not a mapping", "- 1\n- 2\n", "a spec is a YAML mapping", 1),
    (
        "random zero dim",
        GOOD.replace("[1, 3, 32, 32]", "[1, 0]"),
        "input.random.shape: every dimension must be >= 1",
        6,
    ),
    (
        "bad dtype",
        GOOD.replace("shape: [1, 3, 32, 32]", "shape: [2], dtype: float128"),
        "input.random.dtype: Input should be",
        6,
    ),
    (
        "kwargs on torchscript",
        "version: 1\nmodel: {torchscript: spec.yaml, kwargs: {a: 1}}\ninput: {random: {shape: [1]}}\n",
        "kwargs apply to torchvision, timm, huggingface and factory models only",
        2,
    ),
    (
        "resize on random",
        GOOD.replace("random: {shape: [1, 3, 32, 32]}", "random: {shape: [1, 3, 32, 32]}\n  resize: [4, 4]"),
        "resize and normalize apply to image inputs only",
        5,
    ),
    (
        "unsupported tensor file",
        GOOD.replace("random: {shape: [1, 3, 32, 32]}", "tensor: spec.yaml"),
        "unsupported tensor file spec.yaml",
        6,
    ),
    ("deterministic typo", GOOD + "recipe: {deterministic_algorithms: maybe}\n", "recipe.deterministic_algorithms", 7),
    (
        "name in single-check file",
        GOOD + "name: x\n",
        "name: unknown key (a single-check file's check is named after the file",
        7,
    ),
    ("negative seed", GOOD + "seed: -1\n", "seed: Input should be greater than or equal to 0", 7),
]


@pytest.mark.parametrize("name,text,fragment,line", BAD, ids=[b[0] for b in BAD])
def test_bad_spec_is_refused_clearly(tmp_path, name, text, fragment, line):
    spec = write_spec(tmp_path, text)
    r = reprocheck("validate", "--deep", str(spec))  # --deep: the names too
    assert r.code == 2, r
    assert "Traceback" not in r.err and r.out == ""
    assert fragment in r.err, r.err
    first = r.err.splitlines()[0]
    assert first.startswith(f"reprocheck: error: {spec}")
    if line is not None:
        assert f"{spec}:{line}:" in r.err, r.err
    # `run` refuses the same spec without running anything
    assert reprocheck("run", str(spec)).code == 2


def test_multi_check_errors_point_at_the_entry(tmp_path):
    spec = write_spec(
        tmp_path,
        """version: 1
input: {random: {shape: [2, 8]}}
checks:
  - name: a
    model: {torchvision: resnet18}
  - name: b
    model: {torchvision: resnet18}
    runs: 0
  - name: a
    model: {torchvision: resnet18}
""",
    )
    r = reprocheck("validate", str(spec))
    assert r.code == 2
    assert f"{spec}:8: checks.1.runs: Input should be greater than or equal to 2" in r.err
    assert f"{spec}:9: checks.2.name: duplicate check name 'a' (first on line 4" in r.err


def test_defaults_merge_into_entries(tmp_path):
    write_spec(tmp_path, "", "planted.py")
    spec = write_spec(
        tmp_path,
        """version: 1
seed: 5
recipe: {threads: 1, tf32: false}
tolerance: {atol: 0.5, outputs: {"a*": {rtol: 0.1}}}
input: {random: {shape: [2, 8]}}
model: {factory: "planted:x"}
checks:
  - name: one
  - name: two
    seed: 6
    recipe: {deterministic_algorithms: warn}
    tolerance: {outputs: {"b*": {atol: 1.0}}}
""",
    )
    sys.path.insert(0, str(ROOT / "runner"))
    from reprocheck.spec import load_spec

    one, two = load_spec(spec)
    assert one.check.seed == 5 and two.check.seed == 6
    assert two.check.recipe.threads == 1 and two.check.recipe.deterministic_algorithms == "warn"
    assert two.check.tolerance.atol == 0.5 and set(two.check.tolerance.outputs) == {"a*", "b*"}
    assert two.line == 9


def test_examples_validate():
    r = reprocheck("validate", *map(str, sorted(EXAMPLES.glob("*.yaml"))))
    assert r.code == 0, r
    assert "ok  retinanet" in r.out


def test_schema_is_valid_and_accepts_the_examples(tmp_path):
    import jsonschema
    import yaml

    r = reprocheck("schema", "--output", str(tmp_path / "s.json"))
    assert r.code == 0, r
    schema = json.loads((tmp_path / "s.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    for example in EXAMPLES.glob("*.yaml"):
        jsonschema.validate(yaml.safe_load(example.read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"version": 1, "sead": 3}, schema)


def test_help_validate_and_schema_do_not_import_torch(tmp_path):
    bad = write_spec(tmp_path, "version: 1\nsead: 2\n")
    code = f"""
import contextlib, io, sys
from reprocheck.host.commands.main import main
codes = []
for argv in (["--help"], ["run", "--help"], ["schema", "-o", {str(tmp_path / "s.json")!r}], ["validate", {str(bad)!r}]):
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()):
        try:
            codes.append(main(argv))
        except SystemExit as exc:
            codes.append(exc.code)
    if argv[-1] == "--help":
        assert "usage: reprocheck" in out.getvalue(), out.getvalue()
assert codes == [0, 0, 0, 2], codes
assert "torch" not in sys.modules, "torch was imported"
print("no torch")
"""
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT / "runner"), "PATH": "/usr/bin:/bin"},
    )
    assert "no torch" in r.stdout, r.stderr


def test_usage_errors_are_exit_2():
    assert reprocheck("run").code == 2
    assert reprocheck("frobnicate").code == 2
    r = reprocheck("run", "does-not-exist.yaml")
    assert r.code == 2 and "no such spec file" in r.err
    # Missing folders are created; a folder that cannot exist is a usage error before anything runs.
    r = reprocheck("run", str(EXAMPLES / "nondeterministic.yaml"), "--report", str(EXAMPLES / "models.py" / "r.json"))
    assert r.code == 2 and "--report" in r.err and "is a file, not a folder" in r.err, r


def test_exponent_floats_without_a_dot_are_numbers(tmp_path):
    # PyYAML (YAML 1.1) reads `1e-4` as a string; a spec author means the number.
    write_spec(tmp_path, "", "planted.py")
    spec = write_spec(
        tmp_path,
        'version: 1\nmodel: {factory: "planted:x"}\ninput: {random: {shape: [2]}}\n'
        'timeout: 1e2\ntolerance: {atol: 1e-4, outputs: {"o*": {rtol: 2E-3}}}\n',
    )
    sys.path.insert(0, str(ROOT / "runner"))
    from reprocheck.spec import load_spec

    (c,) = load_spec(spec)
    assert c.check.tolerance.atol == 1e-4 and c.check.tolerance.outputs["o*"].rtol == 2e-3 and c.check.timeout == 100.0
    bad = write_spec(
        tmp_path,
        'version: 1\nmodel: {factory: "planted:x"}\ninput: {random: {shape: [2]}}\ntolerance: {atol: small}\n',
        "b.yaml",
    )
    r = reprocheck("validate", str(bad))
    assert r.code == 2 and 'tolerance.atol: Input should be a valid number, got "small"' in r.err


def test_an_entrys_patterns_come_before_the_defaults(tmp_path):
    write_spec(tmp_path, "", "planted.py")
    spec = write_spec(
        tmp_path,
        """version: 1
model: {factory: "planted:x"}
input: {random: {shape: [2]}}
tolerance: {outputs: {"*": {atol: 1.0}, "b": {atol: 3.0}}}
checks:
  - name: c
    tolerance: {outputs: {logits: {atol: 2.0}, b: {atol: 4.0}}}
""",
    )
    sys.path.insert(0, str(ROOT / "runner"))
    from reprocheck.spec import load_spec

    (c,) = load_spec(spec)
    assert list(c.check.tolerance.outputs) == ["logits", "b", "*"]
    assert c.check.tolerance.outputs["b"].atol == 4.0


# Bad specs that only the validator can refuse, and why: the schema sees data, not files, YAML text or torchvision.
VALIDATOR_ONLY = {
    "missing file": "file existence",
    "unknown torchvision model": "torchvision's model list",
    "unknown weights": "torchvision's weight names",
    "duplicate key": "YAML text (parsed data has one key)",
    "yaml syntax": "YAML text",
    "huge random input": "a product of the shape's dimensions",
    "high below low": "a comparison of two fields",
}
MORE_BAD = [
    ("invariance: zero threads", GOOD + "invariance: {threads: [0]}\n", "greater than or equal to 1", 7),
    ("invariance: unknown kind", GOOD + "invariance: {devices: cuda}\n", "invariance.devices: unknown key", 7),
    (
        "invariance: batch as a number",
        GOOD + "invariance: {batch: 8}\n",
        "invariance.batch: Input should be a valid list",
        7,
    ),
    (
        "multi: runs 1 in the defaults",
        'version: 1\nruns: 1\nmodel: {factory: "m:f"}\ninput: {random: {shape: [2]}}\n'
        "checks:\n  - {name: a, runs: 3}\n",
        "runs: Input should be greater than or equal to 2",
        2,
    ),
    (
        "multi: bad device in the defaults",
        'version: 1\ndevice: gpu\nmodel: {factory: "m:f"}\ninput: {random: {shape: [2]}}\n'
        "checks:\n  - {name: a, device: cpu}\n",
        'device: "gpu" is not a device',
        2,
    ),
    (
        "multi: entry without a model",
        "version: 1\ninput: {random: {shape: [2]}}\nchecks:\n  - {name: a}\n",
        "model: missing",
        4,
    ),
    ("multi: empty checks", "version: 1\nchecks: []\n", "must be a non-empty list", 2),
    (
        "multi: bad name",
        'version: 1\nmodel: {factory: "m:f"}\ninput: {random: {shape: [2]}}\nchecks:\n  - {name: "a b"}\n',
        "not a valid check name",
        5,
    ),
    ("null model", "version: 1\nmodel: null\ninput: {random: {shape: [2]}}\n", "model", 2),
    (
        "null source beside a source",
        'version: 1\nmodel: {factory: "m:f", torchvision: null, torchscript: spec.yaml}\n'
        "input: {random: {shape: [2]}}\n",
        "several model sources",
        2,
    ),
    ("infinite atol", GOOD + "tolerance: {atol: .inf}\n", "finite number", 7),
    ("compare rule without as", GOOD + "compare: {outputs: {logits: {top_k: 3}}}\n", "as: missing", 7),
    (
        "compare key of another task",
        GOOD + "compare: {outputs: {logits: {as: classification, iou: 0.5}}}\n",
        "`iou` applies to `as: detection`",
        7,
    ),
    ("compare unknown policy", GOOD + "compare: {fragile: sometimes}\n", "'warn', 'fail' or 'off'", 7),
    ("compare iou zero", GOOD + 'compare: {outputs: {"*": {as: detection, iou: 0}}}\n', "greater than 0", 7),
    ("compare empty pattern", GOOD + 'compare: {outputs: {"": {as: detection}}}\n', "at least 1 character", 7),
    ("rule atol negative", GOOD + "tolerance: {outputs: {x: {atol: -1.0}}}\n", "greater than or equal to 0", 7),
    ("huge random input", GOOD.replace("[1, 3, 32, 32]", "[100000, 100000, 100000]"), "elements", 6),
    (
        "high below low",
        GOOD.replace("shape: [1, 3, 32, 32]", "shape: [2], low: 2.0, high: 1.0"),
        "must be greater than low",
        6,
    ),
    ("normalize on random", GOOD + "  normalize: {mean: [0.5], std: [0.5]}\n", "apply to image inputs only", 5),
    (
        "kwargs on exported",
        "version: 1\nmodel: {exported: spec.yaml, kwargs: {a: 1}}\ninput: {random: {shape: [1]}}\n",
        "kwargs apply to torchvision, timm, huggingface and factory models only",
        2,
    ),
]


@pytest.mark.parametrize("name,text,fragment,line", BAD + MORE_BAD, ids=[b[0] for b in BAD + MORE_BAD])
def test_the_schema_refuses_what_the_validator_refuses(tmp_path, name, text, fragment, line):
    import jsonschema
    import yaml

    sys.path.insert(0, str(ROOT / "runner"))
    from reprocheck.spec import json_schema

    spec = write_spec(tmp_path, text)
    r = reprocheck("validate", "--deep", str(spec))
    assert r.code == 2 and fragment in r.err, r
    if name in VALIDATOR_ONLY:
        return
    errors = list(jsonschema.Draft7Validator(json_schema()).iter_errors(yaml.safe_load(text)))
    assert errors, f"the schema accepts a spec the validator refuses: {r.err}"


GOOD_MULTI = """version: 1
input: {random: {shape: [2], low: -1e-3, high: 1e-3}}
tolerance: {atol: 1e-4, outputs: {"o*": {rtol: 2.0e-3}}}
compare: {outputs: {"*": {as: classification, top_k: 2, margin: 1e-3}}, fragile: off}
checks:
  - {name: a, model: {torchvision: resnet18, kwargs: {weights: null}}}
  - name: b
    model: {factory: "m:f"}
    runs: 3
    recipe: {threads: 2, deterministic_algorithms: warn}
    compare: {outputs: {o: {as: segmentation, min_agreement: 0.9}}, fragile: fail}
"""


def test_the_schema_accepts_what_the_validator_accepts(tmp_path):
    import jsonschema
    import yaml

    sys.path.insert(0, str(ROOT / "runner"))
    from reprocheck.spec import json_schema

    schema = json_schema()
    specs = [
        write_spec(tmp_path, GOOD, "good.yaml"),
        write_spec(tmp_path, GOOD_MULTI, "multi.yaml"),
        *sorted(EXAMPLES.glob("*.yaml")),
    ]
    r = reprocheck("validate", *map(str, specs))
    assert r.code == 0, r
    for spec in specs:
        jsonschema.validate(yaml.safe_load(spec.read_text()), schema)
