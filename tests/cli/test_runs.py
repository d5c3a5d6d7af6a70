"""End to end through the real CLI, real worker processes and real torch models: the planted corpus."""

import json
import time

import pytest

from helpers import EXAMPLES, planted_spec, reprocheck, write_spec

FIXED_BY_RECIPE = ["seeded_init", "dropout_forward", "numpy_forward", "python_random_forward", "hash_order"]
NONDETERMINISTIC = ["os_entropy", "racy_sum", "varying_keys"]


@pytest.mark.parametrize("factory", FIXED_BY_RECIPE)
def test_randomness_the_recipe_removes_passes(spec_dir, factory):
    r = reprocheck("run", str(planted_spec(spec_dir, factory, "runs: 3\n", shape="[16, 8]")))
    assert r.code == 0, r
    assert "PASS" in r.out


@pytest.mark.parametrize("factory", NONDETERMINISTIC)
def test_genuine_nondeterminism_fails(spec_dir, factory):
    r = reprocheck("run", str(planted_spec(spec_dir, factory, shape="[16, 8]")))
    assert r.code == 1, r
    assert "FAIL" in r.out and "remedy:" in r.out


def test_hash_order_needs_the_hash_seed_before_start(spec_dir):
    # The same model with only the hash seed turned off must fail: proof the knob matters.
    spec = planted_spec(spec_dir, "hash_order", "runs: 3\nrecipe: {hash_seed: false}\n")
    r = reprocheck("run", str(spec))
    assert r.code == 1, r
    # The order-dependent sum follows the set's order (the first word, 1 in 26, may stay the same by chance).
    assert "acc: differs" in r.out, r


def test_setting_pythonhashseed_inside_the_script_does_nothing(spec_dir):
    spec = planted_spec(spec_dir, "hash_order_env_in_script", "runs: 3\nrecipe: {hash_seed: false}\n")
    assert reprocheck("run", str(spec)).code == 1


def test_unseeded_init_fails_and_seeded_passes(spec_dir):
    assert reprocheck("run", str(planted_spec(spec_dir, "seeded_init", "recipe: {seed_rngs: false}\n"))).code == 1
    assert reprocheck("run", str(planted_spec(spec_dir, "seeded_init"))).code == 0


def test_count_mismatch_is_reported_as_structure_not_a_crash(spec_dir):
    spec = planted_spec(spec_dir, "varying_count", "runs: 6\n", shape="[3, 8, 8]")
    r = reprocheck("run", str(spec), "--report", str(spec_dir / "r.json"))
    assert r.code == 1, r
    assert "count mismatch" in r.out
    report = json.loads((spec_dir / "r.json").read_text())
    statuses = {o["path"]: o["status"] for o in report["checks"][0]["outputs"]}
    assert statuses["0.boxes"] == "structure"


def test_raise_is_exit_3_with_the_exception(spec_dir):
    r = reprocheck("run", str(planted_spec(spec_dir, "raises")))
    assert r.code == 3, r
    assert "run 1 of 2 raised while running the model: ValueError: planted failure in forward" in r.out
    assert "Traceback" not in r.err


def test_build_failure_names_the_stage(spec_dir):
    r = reprocheck("run", str(planted_spec(spec_dir, "broken_build")))
    assert r.code == 3, r
    assert "raised while building the model: ImportError: planted" in r.out


@pytest.mark.parametrize("factory,signal", [("aborts", "SIGABRT"), ("segfaults", "SIGSEGV")])
def test_crash_is_exit_3_naming_the_signal(spec_dir, factory, signal):
    r = reprocheck("run", str(planted_spec(spec_dir, factory)))
    assert r.code == 3, r
    assert f"killed by {signal}" in r.out


def test_exit_without_result_is_exit_3(spec_dir):
    r = reprocheck("run", str(planted_spec(spec_dir, "exits")))
    assert r.code == 3, r
    assert "exited with code 7" in r.out


def test_unsupported_output_type_is_exit_3(spec_dir):
    r = reprocheck("run", str(planted_spec(spec_dir, "bad_output")))
    assert r.code == 3, r
    assert "saving the outputs" in r.out and "object" in r.out


@pytest.mark.parametrize("isolation", ["fork", "spawn"])
def test_hang_is_killed_at_the_timeout(spec_dir, isolation):
    spec = planted_spec(spec_dir, "hangs", "timeout: 3\n")
    start = time.monotonic()
    r = reprocheck("run", str(spec), "--isolation", isolation)
    elapsed = time.monotonic() - start
    assert r.code == 3, r
    assert "timed out after 3s" in r.out
    assert elapsed < 60  # one run's timeout plus start-up, not the hour the model asked for


def test_other_checks_still_run_after_a_failure(spec_dir):
    spec = write_spec(
        spec_dir,
        """version: 1
input: {random: {shape: [4, 8]}}
checks:
  - name: broken
    model: {factory: "planted:raises"}
  - name: fine
    model: {factory: "planted:seeded_init"}
  - name: flaky
    model: {factory: "planted:os_entropy"}
""",
    )
    r = reprocheck("run", str(spec))
    assert r.code == 3, r  # the highest code wins
    assert "ERROR broken" in r.out and "PASS  fine" in r.out and "FAIL  flaky" in r.out


def test_spawn_and_fork_are_observably_equivalent(spec_dir):
    spec = planted_spec(spec_dir, "hash_order", "runs: 2\n")
    outs = {}
    for mode in ("fork", "spawn"):
        r = reprocheck(
            "run",
            str(spec),
            "--isolation",
            mode,
            "--report",
            str(spec_dir / f"{mode}.json"),
            "--keep",
            str(spec_dir / mode),
        )
        assert r.code == 0, r
        import torch

        outs[mode] = torch.load(spec_dir / mode / "001-spec" / "run1" / "outputs.pt", weights_only=True)
        fp = json.loads((spec_dir / f"{mode}.json").read_text())["checks"][0]["fingerprint"]
        assert fp["env"]["PYTHONHASHSEED"] == "3407"
    assert outs["fork"]["tree"] == outs["spawn"]["tree"]
    assert outs["fork"]["tensors"]["acc"].item() == outs["spawn"]["tensors"]["acc"].item()


def test_check_selection_and_overrides(spec_dir):
    spec = write_spec(
        spec_dir,
        """version: 1
input: {random: {shape: [4, 8]}}
checks:
  - name: a
    model: {factory: "planted:seeded_init"}
  - name: b
    model: {factory: "planted:raises"}
""",
    )
    r = reprocheck("run", str(spec), "--check", "a", "--runs", "3", "--report", str(spec_dir / "r.json"))
    assert r.code == 0, r
    report = json.loads((spec_dir / "r.json").read_text())
    assert [c["name"] for c in report["checks"]] == ["a"]
    assert len(report["checks"][0]["runs"]) == 3
    bad = reprocheck("run", str(spec), "--check", "c")
    assert bad.code == 2 and "--check: no check named 'c'" in bad.err
    bad = reprocheck("run", str(spec), "--runs", "1")
    assert bad.code == 2 and "--runs" in bad.err


def test_json_report_holds_the_contracted_fields(spec_dir):
    r = reprocheck(
        "run",
        str(
            planted_spec(
                spec_dir, "os_entropy", "seed: 11\nthreads: 1\n".replace("threads: 1\n", "recipe: {threads: 1}\n")
            )
        ),
        "--report",
        str(spec_dir / "r.json"),
        "--summary",
        str(spec_dir / "s.md"),
    )
    assert r.code == 1, r
    report = json.loads((spec_dir / "r.json").read_text())
    assert report["exit_code"] == 1 and report["summary"]["fail"] == 1
    check = report["checks"][0]
    assert check["seed"] == 11 and check["device"] == "cpu" and check["status"] == "fail"
    assert check["recipe"]["threads"] == 1 and check["fingerprint"]["threads"] == 1
    o = check["outputs"][0]
    for key in (
        "shape",
        "dtype",
        "max_abs_diff",
        "max_rel_diff",
        "mismatched",
        "total",
        "first_index",
        "passing_tolerance",
    ):
        assert key in o
    assert o["mismatched"] > 0 and o["passing_tolerance"]["atol"] >= o["max_abs_diff"] - 1e-12
    assert all(run["timings"]["forward"] >= 0 for run in check["runs"])
    md = (spec_dir / "s.md").read_text()
    assert "| `spec` | :x: fail |" in md and "**Remedy:**" in md


def test_unused_tolerance_pattern_is_noted(spec_dir):
    spec = planted_spec(spec_dir, "seeded_init", "tolerance:\n  outputs:\n    'logits*': {atol: 0.1}\n")
    r = reprocheck("run", str(spec))
    assert r.code == 0, r
    assert "tolerance pattern 'logits*' matches no output" in r.out


def test_tolerance_lets_small_differences_pass(spec_dir):
    spec = planted_spec(spec_dir, "racy_sum", "tolerance: {atol: 1.0e-3, rtol: 1.0e-5}\n", shape="[16, 8]")
    assert reprocheck("run", str(spec)).code == 0


def test_nondeterministic_example_fails():
    r = reprocheck("run", str(EXAMPLES / "nondeterministic.yaml"))
    assert r.code == 1, r


def test_retinanet_example_passes(tmp_path):
    r = reprocheck("run", str(EXAMPLES / "retinanet.yaml"), "--report", str(tmp_path / "r.json"))
    assert r.code == 0, r
    outputs = {o["path"]: o for o in json.loads((tmp_path / "r.json").read_text())["checks"][0]["outputs"]}
    assert set(outputs) == {"0"}  # one image's detections, compared as detections (compare:)
    stats = outputs["0"]["task"]["stats"]
    assert stats["expected"] > 0 and stats["matched"] == stats["expected"]  # there are detections, all matched


def test_suite_example_passes():
    r = reprocheck("run", str(EXAMPLES / "suite.yaml"))
    assert r.code == 0, r
    assert r.out.count("PASS") == 3


def test_later_runs_are_folded_as_they_end_so_the_disk_holds_two_output_sets(spec_dir, tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    spec = planted_spec(spec_dir, "counts_outputs_on_disk", "runs: 6\n")
    r = reprocheck("run", str(spec), "--report", str(tmp_path / "r.json"), env={"TMPDIR": str(tmp)})
    assert r.code == 1, r
    seen = [int(n) for n in (spec_dir / "on-disk.txt").read_text().split()]
    assert len(seen) == 6 and max(seen) <= 1, seen  # at each run's start: run 1's outputs at most
    c = json.loads((tmp_path / "r.json").read_text())["checks"][0]
    assert c["flake"]["runs_differing"] == 5 and c["flake"]["distinct_results"] == 6
    assert c["outputs"][0]["runs_differing"] == 5 and c["outputs"][0]["distinct_results"] == 6


def test_a_long_stretch_gets_a_progress_line_but_never_with_quiet(spec_dir, tmp_path):
    from reprocheck.host.checks import progress

    spec = planted_spec(spec_dir, "hangs", "timeout: 14\n")  # sleeps until killed: a long silent stretch
    r = reprocheck("run", str(spec))
    assert r.code == 3, r
    lines = [line for line in r.err.splitlines() if "... spec: run 1/2:" in line]
    assert lines and lines[0].strip().endswith("s"), r.err  # what is running, and for how long
    assert len(lines) <= 14 / progress.INTERVAL + 1  # a line every INTERVAL seconds in a log, not every second
    r = reprocheck("run", "-q", str(spec))
    assert r.code == 3 and "..." not in r.err, r
