"""diagnose down to the op, through the real CLI on planted models: the module and the aten op that first differ,
which call of a module, where the op sequences part, a trace cap that stops tracing, and the CUDA-only recipe
parts left alone on a CPU."""

import json

from helpers import planted_spec, reprocheck


def diagnose(spec, tmp_path, *flags):
    report = tmp_path / "d.json"
    r = reprocheck("diagnose", str(spec), "--report", str(report), "--summary", str(tmp_path / "d.md"), *flags)
    return r, json.loads(report.read_text())["checks"][0]


def test_the_op_that_draws_entropy_is_named_with_its_module_and_line(spec_dir):
    r, d = diagnose(planted_spec(spec_dir, "noisy_middle"), spec_dir)
    assert r.code == 1, r
    v = d["first_divergence"]
    assert (v["found"], v["module"], v["type"], v["module_call"]) == (True, "1", "_OsNoise", 1)
    op = v["op"]
    assert op["op"].startswith("aten::rand") and op["module"] == "1" and op["index"] == 1 and not op["parted"]
    assert op["location"].endswith(".py:" + op["location"].rsplit(":", 1)[1]) and "planted.py:" in op["location"]
    # The numbers come from the targeted re-run: both the module's output and the op's differ, truthfully counted.
    assert 0 < v["output"]["mismatched"] <= v["output"]["total"] == 32
    assert 0 < op["output"]["mismatched"] <= op["output"]["total"] == 32 and op["output"]["max_abs_diff"] > 0
    assert "a targeted re-run keeping the tensors of module 1, call 1 and op" in r.err
    assert "first differing op: aten::rand" in r.out and "in module 1's 1st call, its 1st op" in r.out
    assert "first differing op: aten::rand" in (spec_dir / "d.md").read_text()


def test_a_module_called_twice_is_named_by_its_call_and_the_op_before_it(spec_dir):
    r, d = diagnose(planted_spec(spec_dir, "noise_between_calls"), spec_dir)
    assert r.code == 1, r
    v = d["first_divergence"]
    assert (v["module"], v["module_call"]) == ("shared", 2)  # its first call agrees
    assert "module shared (Linear), in its 2nd call in the forward" in r.out
    op = v["op"]
    assert op["op"].startswith("aten::rand") and op["module"] == "" and op["output"]["mismatched"] > 0
    assert "before module shared ran: its input already differed" in r.out


def test_where_the_op_sequences_part_is_the_finding(spec_dir):
    extra = f"  kwargs: {{counter: {json.dumps(str(spec_dir / 'count'))}}}\n"
    spec = planted_spec(spec_dir, "alternates").read_text().replace('  factory: "planted:alternates"\n', "")
    spec = spec.replace("model:\n", f'model:\n  factory: "planted:alternates"\n{extra}')
    (spec_dir / "alt.yaml").write_text(spec)
    r, d = diagnose(spec_dir / "alt.yaml", spec_dir)
    assert r.code == 1, r
    op = d["first_divergence"]["op"]
    assert op["parted"] is True and {op["op"], op["other"].split(" ")[0]} == {"aten::relu", "aten::sigmoid"}
    assert "the op sequences part at op 1 of the forward" in r.out and "run 2 ran aten::" in r.out


def test_a_trace_past_its_cap_stops_and_says_so_with_the_checks_own_verdict(spec_dir):
    r, d = diagnose(planted_spec(spec_dir, "long_then_noisy"), spec_dir, "--max-trace-mb", "1")
    assert r.code == 1, r  # the runs differ: the verdict stands, whatever the trace held
    assert d["reproducible"] is False
    v = d["first_divergence"]
    assert v["found"] is False and v["op"] is None
    assert "cap of 1 MB" in v["stopped"]
    assert (
        "tracing stopped: the trace reached its cap of 1 MB (diagnose --max-trace-mb); no difference in what it held"
        in r.out
    )


def test_on_a_cpu_cudnn_and_tf32_are_not_varied_and_a_fix_is_said_once(spec_dir):
    r, d = diagnose(planted_spec(spec_dir, "dropout_forward"), spec_dir)
    assert r.code == 0, r
    knobs = {a["knob"] for a in d["ablations"]}
    assert not knobs & {"cudnn_benchmark", "tf32"} and "seed_rngs" in knobs
    assert any("cudnn_benchmark" in x and "CPU" in x for x in d["not_varied"])
    spec = planted_spec(spec_dir, "hash_order", "runs: 2\nrecipe: {hash_seed: false}\n")
    r, d = diagnose(spec, spec_dir)
    assert r.code == 1, r
    assert r.out.count("hash_seed back on") == 1 and "FIXES" not in r.out
