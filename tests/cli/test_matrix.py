"""Scaling across runners: `matrix --max-jobs N` (checks grouped into balanced jobs, `--timings` an earlier report),
`run --shard K/N` (the same grouping), `run --dry-run` (what would run), `--check SPEC:NAME` (one identity), all
through the real CLI; and matrix, dry runs and validate in a real environment without torch."""

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from helpers import FIXTURES, ROOT, reprocheck, write_spec
from stand_in import action, calls

TV = "version: 1\nmodel: {torchvision: resnet18}\ninput: {random: {shape: [1, 3, 8, 8]}}\n"


def many(folder: Path, count: int, name: str = "many.yaml", prefix: str = "c") -> list[str]:
    """A spec of `count` checks (never run: matrix and dry runs only name them); their identities, in order."""
    names = [f"{prefix}{i:03d}" for i in range(count)]
    write_spec(folder, TV + "checks:\n" + "".join(f"  - name: {n}\n" for n in names), name)
    return [f"{name}:{n}" for n in names]


def matrix(*args: str, cwd: Path) -> list[dict]:
    r = reprocheck("matrix", *args, cwd=cwd)
    assert r.code == 0, r
    return json.loads(r.out)["include"]


def dry_run(*args: str, cwd: Path) -> list[str]:
    r = reprocheck("run", *args, "--dry-run", cwd=cwd)
    assert r.code == 0 and "Traceback" not in r.err, r
    return [line.split("\t")[0] for line in r.out.splitlines()]


def test_300_checks_fit_githubs_256_jobs_each_once_in_order(tmp_path):
    ids = many(tmp_path, 300)
    include = matrix("many.yaml", cwd=tmp_path)
    assert len(include) == 256
    flat = [c for e in include for c in e["checks"]]
    assert sorted(flat) == sorted(ids) and len(set(flat)) == 300  # each check in exactly one job
    for e in include:
        assert e["checks"] == sorted(e["checks"], key=ids.index)  # a job's checks in the canonical order
        if len(e["checks"]) == 1:
            assert e["check"] == e["name"] == e["checks"][0].split(":")[1]
        else:
            assert e["check"] == ",".join(e["checks"]) and e["name"] == f"{e['checks'][0][10:]} +1 more"
        assert e["spec"] == "many.yaml" and e["device"] == "cpu" and e["runs"] == 2
    firsts = [ids.index(e["checks"][0]) for e in include]
    assert firsts == sorted(firsts)  # jobs ordered by their first check
    assert Counter(len(e["checks"]) for e in include) == {1: 212, 2: 44}


def test_a_small_matrix_keeps_one_job_per_check_as_before(tmp_path):
    write_spec(tmp_path, TV, "one.yaml")
    (tmp_path / "sub").mkdir()
    many(tmp_path / "sub", 2, "two.yaml")
    include = matrix("one.yaml", "sub", cwd=tmp_path)
    assert include == [
        {"name": "one", "check": "one", "spec": "one.yaml", "line": 1, "device": "cpu", "runs": 2,
         "checks": ["one.yaml:one"]},
        {"name": "c000", "check": "c000", "spec": "sub/two.yaml", "line": 5, "device": "cpu", "runs": 2,
         "checks": ["sub/two.yaml:c000"]},
        {"name": "c001", "check": "c001", "spec": "sub/two.yaml", "line": 6, "device": "cpu", "runs": 2,
         "checks": ["sub/two.yaml:c001"]},
    ]  # fmt: skip
    # The order is the specs' as named, then each file's: the dry run lists the same.
    assert dry_run("one.yaml", "sub", cwd=tmp_path) == [c for e in include for c in e["checks"]]
    assert dry_run("sub", "one.yaml", cwd=tmp_path) == ["sub/two.yaml:c000", "sub/two.yaml:c001", "one.yaml:one"]


def test_max_jobs_balances_the_count_without_timings(tmp_path):
    ids = many(tmp_path, 300)
    include = matrix("many.yaml", "--max-jobs", "7", cwd=tmp_path)
    sizes = [len(e["checks"]) for e in include]
    assert len(include) == 7 and max(sizes) - min(sizes) <= 1
    assert sorted(c for e in include for c in e["checks"]) == sorted(ids)
    one = matrix("many.yaml", "--max-jobs", "1", cwd=tmp_path)
    assert len(one) == 1 and one[0]["checks"] == ids and one[0]["name"] == "c000 +299 more"


def test_timings_spread_the_slow_checks_over_the_jobs(tmp_path):
    ids = many(tmp_path, 12)
    slow = {"many.yaml:c002": 100.0, "many.yaml:c003": 90.0, "many.yaml:c004": 80.0}
    checks = [
        # as a report holds them: the spec's path as it was named (here absolute: another cwd, the container)
        {"file": str(tmp_path / "many.yaml") if i % 2 else "many.yaml", "name": c.split(":")[1],
         "duration_s": slow.get(c, 1.0), "status": "pass"}
        for i, c in enumerate(ids[:-1])  # the last is not in the report: it costs the median
    ]  # fmt: skip
    (tmp_path / "r.json").write_text(json.dumps({"tool": "reprocheck", "checks": checks}))
    include = matrix("many.yaml", "--max-jobs", "3", "--timings", "r.json", cwd=tmp_path)
    holding = [next(i for i, e in enumerate(include) if s in e["checks"]) for s in slow]
    assert sorted(holding) == [0, 1, 2], include  # each slow check in a job of its own
    assert [len(e["checks"]) for e in include] != [4, 4, 4]  # not merely the count: the fast ones fill up
    assert sorted(c for e in include for c in e["checks"]) == sorted(ids)
    # Shards are the same groups, with the same report.
    shards = [dry_run("many.yaml", "--shard", f"{k}/3", "--timings", "r.json", cwd=tmp_path) for k in (1, 2, 3)]
    assert shards == [e["checks"] for e in include]
    # Written elsewhere: the spec's relative path at the end of the report's paths still finds them.
    for c in checks:
        c["file"] = f"/elsewhere/checkout/{c['file'].rsplit('/', 1)[-1]}"
    (tmp_path / "r.json").write_text(json.dumps({"checks": checks}))
    assert matrix("many.yaml", "--max-jobs", "3", "--timings", "r.json", cwd=tmp_path) == include


def test_shards_together_run_every_check_once(tmp_path):
    (tmp_path / "specs").mkdir()
    ids = many(tmp_path / "specs", 7, "b.yaml") + many(tmp_path / "specs", 4, "a.yaml", prefix="x")
    ids = [f"specs/{c}" for c in ids]
    shards = [dry_run("specs", "--shard", f"{k}/3", cwd=tmp_path) for k in (1, 2, 3)]
    flat = [c for s in shards for c in s]
    assert sorted(flat) == sorted(ids) and len(flat) == len(set(flat)) == 11  # disjoint, every check
    assert [len(s) for s in shards] in ([4, 4, 3], [4, 3, 4], [3, 4, 4])
    assert shards == [e["checks"] for e in matrix("specs", "--max-jobs", "3", cwd=tmp_path)]
    assert dry_run("specs", "--shard", "1/1", cwd=tmp_path) == sorted(ids, key=lambda c: (c[6], ids.index(c)))
    # --check first, then the shard: a selection is split the same way
    picked = dry_run("specs", "--check", "specs/a.yaml:x001", "--check", "c003", "--shard", "2/2", cwd=tmp_path)
    assert picked == ["specs/b.yaml:c003"]
    # More shards than checks: the extra ones are empty, and that is not an error (a fixed matrix still passes).
    r = reprocheck("run", "specs", "--shard", "12/12", "--report", "out/r.json", cwd=tmp_path)
    assert r.code == 0 and r.out == "" and "no check in shard 12/12" in r.err, r
    assert not (tmp_path / "out" / "r.json").exists()  # its folder checked as any run's, no report written
    r = reprocheck("run", "specs", "--dry-run", "--report", "dry/r.json", "--junit", "dry/j.xml", cwd=tmp_path)
    assert r.code == 0 and len(r.out.splitlines()) == 11 and not (tmp_path / "dry").exists(), r
    assert r.out.splitlines()[0] == "specs/a.yaml:x000\tspecs/a.yaml:5\t2 runs on cpu"


def test_spec_and_name_runs_only_that_spec_check(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(FIXTURES / "planted.py", tmp_path / folder / "planted.py")
        write_spec(tmp_path / folder, 'version: 1\nmodel: {factory: "planted:seeded_init"}\n'
                   "input: {random: {shape: [4, 8]}}\n", "model.yaml")  # fmt: skip
    r = reprocheck("run", "a", "b", "-q", "--check", "b/model.yaml:model", "--report", "r.json", "--junit", "j.xml",
                   cwd=tmp_path)  # fmt: skip
    assert r.code == 0, r
    report = json.loads((tmp_path / "r.json").read_text())
    assert [(c["file"], c["name"]) for c in report["checks"]] == [("b/model.yaml", "model")]
    junit = (tmp_path / "j.xml").read_text()
    assert junit.count("<testcase ") == 1 and 'classname="b/model.yaml" name="model"' in junit
    # The identity's spec is compared as a path; a spec not loaded is refused with what exists.
    assert dry_run("a", "b", "--check", "./b/../b/model.yaml:model", cwd=tmp_path) == ["b/model.yaml:model"]
    r = reprocheck("run", "a", "--check", "b/model.yaml:model", "--dry-run", cwd=tmp_path)
    assert r.code == 2 and "no check named 'b/model.yaml:model' (did you mean 'a/model.yaml:model'?)" in r.err, r
    # The real report is a timings file: the missing check costs the median, one job holds both.
    include = matrix("a", "b", "--timings", "r.json", "--max-jobs", "1", cwd=tmp_path)
    both = ["a/model.yaml:model", "b/model.yaml:model"]
    assert include == [
        {"name": "model +1 more", "check": ",".join(both), "spec": "a/model.yaml\nb/model.yaml", "line": 1,
         "device": "cpu", "runs": 2, "checks": both}
    ]  # fmt: skip


def test_a_grouped_entry_reaches_the_container_through_the_actions_inputs(fake):
    (fake.ws / "specs" / "model.yaml").write_text(TV + "checks:\n  - name: one\n  - name: two.v2\n")
    include = matrix("specs/model.yaml", "--max-jobs", "1", cwd=fake.ws)
    r = action(fake, spec=include[0]["spec"], checks=include[0]["check"])
    assert r.returncode == 0, r.stdout + r.stderr
    (argv,) = calls(fake)
    ws = os.path.realpath(fake.ws)
    given = [argv[i + 1] for i, a in enumerate(argv) if a == "--check"]
    assert given == [f"{ws}/specs/model.yaml:one", f"{ws}/specs/model.yaml:two.v2"]
    assert argv.index("--") < len(argv) - 1 and argv[-1] == f"{ws}/specs/model.yaml"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["run", "--shard", "0/3"], "--shard must be K/N"),
        (["run", "--shard", "4/3"], "--shard must be K/N"),
        (["run", "--shard", "1/0"], "--shard must be K/N"),
        (["run", "--shard", "2"], "--shard must be K/N"),
        (["run", "--shard", "1/2/3"], "--shard must be K/N"),
        (["run", "--shard=-1/3"], "--shard must be K/N"),
        (["run", "--shard", "١/٣"], "--shard must be K/N"),
        (["run", "--shard", "1/3\n::error::x"], "--shard must be K/N"),
        (["matrix", "--max-jobs", "0"], "--max-jobs must be a whole number"),
        (["matrix", "--max-jobs=-3"], "--max-jobs must be a whole number"),
        (["matrix", "--max-jobs", "2.5"], "--max-jobs must be a whole number"),
        (["matrix", "--max-jobs", "1e3"], "--max-jobs must be a whole number"),
        (["matrix", "--timings", "missing.json"], "--timings missing.json: cannot read it"),
        (["matrix", "--timings", "."], "--timings .: cannot read it"),
        (["matrix", "--timings", "/dev/zero"], "not a regular file"),
        (["matrix", "--timings", "fifo"], "--timings fifo: not a regular file"),
        (["matrix", "--timings", "bad/not-json"], "not valid JSON"),
        (["matrix", "--timings", "bad/nan"], "not valid JSON"),
        (["matrix", "--timings", "bad/deep"], "not valid JSON"),
        (["matrix", "--timings", "bad/latin1"], "not valid JSON"),
        (["matrix", "--timings", "bad/list"], "no list of checks"),
        (["matrix", "--timings", "bad/large"], "larger than 16 MiB; keep only what it reads: jq"),
        (["matrix", "--timings", "bad/checks-dict"], "no list of checks"),
        (["matrix", "--timings", "bad/entry"], "checks[1] has no file, name and duration_s"),
        (["matrix", "--timings", "bad/negative"], "checks[0] has no file, name and duration_s"),
        (["matrix", "--timings", "bad/huge"], "checks[0] has no file, name and duration_s"),
        (["matrix", "--timings", "bad/bool"], "checks[0] has no file, name and duration_s"),
        (["matrix", "--timings", "bad/string"], "checks[0] has no file, name and duration_s"),
        (["run", "--timings", "good.json", "--dry-run"], "--timings needs --shard K/N"),
        (["run", "--shard", "1/2", "--timings", "bad/list", "--dry-run"], "no list of checks"),
    ],
)
def test_bad_shards_jobs_and_timings_are_one_line_exit_2(tmp_path, args, says):
    many(tmp_path, 3)
    os.mkfifo(tmp_path / "fifo")
    bad = tmp_path / "bad"
    bad.mkdir()
    entry = {"file": "many.yaml", "name": "c000", "duration_s": 1.0}
    files = {
        "not-json": "{'checks': []}",
        "nan": json.dumps({"checks": [{**entry, "duration_s": float("nan")}]}),
        "deep": "[" * 200_000,
        "list": "[]",
        "checks-dict": '{"checks": {"many.yaml:c000": 1}}',
        "entry": json.dumps({"checks": [entry, ["many.yaml", "c001", 2]]}),
        "negative": json.dumps({"checks": [{**entry, "duration_s": -1}]}),
        "huge": '{"checks": [{"file": "many.yaml", "name": "c000", "duration_s": 1e999}]}',
        "bool": json.dumps({"checks": [{**entry, "duration_s": True}]}),
        "string": json.dumps({"checks": [{**entry, "duration_s": "1.0"}]}),
    }
    for name, text in files.items():
        (bad / name).write_text(text)
    with open(bad / "large", "w") as f:
        f.truncate(16 * 1024 * 1024 + 1)  # sparse: no time to write
    (bad / "latin1").write_bytes(b'{"checks": [{"file": "\xe9"}]}')
    (tmp_path / "good.json").write_text(json.dumps({"checks": [entry]}))
    r = reprocheck(args[0], "many.yaml", *args[1:], cwd=tmp_path, timeout=60)
    assert r.code == 2 and says in r.err, r
    assert len(r.err.splitlines()) == 1 and r.err.startswith("reprocheck: error: ") and "Traceback" not in r.err, r
    assert r.out == ""


# ---- where reprocheck is installed without torch


def _bare_env(tmp_path: Path) -> Path:
    """A real venv holding reprocheck's own dependencies only (linked from this one) and runner/ on its path."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (site,) = venv.glob("lib/python*/site-packages")
    ours = Path(next(p for p in sys.path if p.endswith("site-packages") and (Path(p) / "pydantic").is_dir()))
    needed = ["pydantic", "pydantic_core", "annotated_types", "typing_inspection", "yaml", "typing_extensions.py"]
    for name in needed + [p.name for p in ours.glob("_yaml*")]:
        (site / name).symlink_to(ours / name)
    (site / "reprocheck.pth").write_text(str(ROOT / "runner") + "\n")
    return venv / "bin" / "python"


def test_matrix_dry_runs_and_validate_need_no_torch(tmp_path):
    py = _bare_env(tmp_path)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NO_COLOR": "1"}

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(py), "-m", "reprocheck", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=120)  # fmt: skip

    no_torch = subprocess.run([str(py), "-c", "import torch"], env=env, capture_output=True, text=True)
    assert no_torch.returncode == 1 and "No module named 'torch'" in no_torch.stderr
    ids = many(tmp_path, 5)
    slow = [{"file": "many.yaml", "name": f"c00{i}", "duration_s": 100 if i == 0 else 1} for i in range(5)]
    (tmp_path / "r.json").write_text(json.dumps({"checks": slow}))
    r = cli("matrix", "many.yaml", "--max-jobs", "2", "--timings", "r.json")
    assert r.returncode == 0, r.stderr
    assert [e["checks"] for e in json.loads(r.stdout)["include"]] == [ids[:1], ids[1:]]
    r = cli("run", "many.yaml", "--dry-run", "--shard", "2/2", "--timings", "r.json")
    assert r.returncode == 0 and [line.split("\t")[0] for line in r.stdout.splitlines()] == ids[1:], r.stderr
    r = cli("run", "many.yaml", "--shard", "9/9")  # an empty shard needs nothing either
    assert r.returncode == 0 and "no check in shard 9/9" in r.stderr, r.stderr
    r = cli("validate", "many.yaml")
    assert r.returncode == 0 and r.stdout.count("ok  c0") == 5, r.stderr
    r = cli("run", "many.yaml", "--shard", "1/9")  # a real run says what it needs
    assert r.returncode == 2 and "torch is not installed" in r.stderr, r.stderr
