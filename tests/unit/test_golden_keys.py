"""Which golden a machine uses: its keys from where run 1 ran (device, GPU generation) and the most specific golden
that exists. The GPU is simulated: a recorded fingerprint of an H100 (compute capability 9.0) and of a pool of two
generations; on a real GPU the fingerprint comes from torch.cuda (tests/gpu/run_gpu_checks.sh)."""

from pathlib import Path

from reprocheck import goldens
from reprocheck.spec import load_spec

H100 = {"gpus": [{"name": "NVIDIA H100 80GB HBM3", "capability": "9.0", "memory_gib": 79.1}]}
POOL = {"gpus": [{"name": "NVIDIA A100", "capability": "8.0"}, {"name": "NVIDIA B200", "capability": "10.0"}]}


def test_each_kind_of_key_lists_this_machines_goldens_most_specific_first():
    assert goldens.machine_keys("none", "cuda", H100) == ("",)
    assert goldens.machine_keys("device", "cuda:0", H100) == ("cuda", "")
    assert goldens.machine_keys("gpu", "cuda", H100) == ("cuda-sm90", "cuda", "")
    assert goldens.machine_keys("gpu", "cuda:1", POOL) == ("cuda-sm100", "cuda", "")
    assert goldens.machine_keys("gpu", "cpu", H100) == ("cpu", "")
    # A fingerprint without the GPU (or an edited one) falls back to the device's key, never a made-up one.
    assert goldens.machine_keys("gpu", "cuda:3", POOL) == ("cuda", "")
    assert goldens.machine_keys("gpu", "cuda", {"gpus": [{"capability": "9.0/../x"}]}) == ("cuda", "")


def _check(tmp_path: Path, key: str, device: str):
    spec = tmp_path / "c.yaml"
    spec.write_text(
        f"version: 1\ndevice: {device}\nmodel: {{torchvision: resnet18}}\n"
        f"input: {{random: {{shape: [1, 3, 8, 8]}}}}\nbaseline: {{key: {key}}}\n"
    )
    return load_spec(spec)[0]


def test_keys_known_before_the_runs_and_those_only_the_gpu_can_tell(tmp_path):
    assert goldens.predicted_keys(_check(tmp_path, "gpu", "cpu")) == ("cpu", "")
    assert goldens.predicted_keys(_check(tmp_path, "device", "cuda:1")) == ("cuda", "")
    assert goldens.predicted_keys(_check(tmp_path, "gpu", "cuda")) is None
    assert goldens.predicted_keys(_check(tmp_path, "none", "cuda")) == ("",)


def test_the_most_specific_golden_that_exists_is_chosen(tmp_path):
    lc = _check(tmp_path, "gpu", "cuda")
    root = tmp_path / "bl"
    keys = goldens.machine_keys("gpu", "cuda", H100)
    assert goldens.choose(root, lc, tmp_path, keys).found is None
    place = goldens.golden_path(root, lc, tmp_path)
    place.parent.mkdir(parents=True)
    for name in ("c.safetensors", "c@cuda.safetensors", "c@cuda-sm80.safetensors", "c@cuda.obtained.safetensors"):
        (place.parent / name).write_bytes(b"")
    choice = goldens.choose(root, lc, tmp_path, keys)
    assert (choice.found_key, choice.fallback, choice.target.name) == ("cuda", True, "c@cuda-sm90.safetensors")
    (place.parent / "c@cuda-sm90.safetensors").write_bytes(b"")
    choice = goldens.choose(root, lc, tmp_path, keys)
    assert (choice.found_key, choice.fallback) == ("cuda-sm90", False)
    assert set(goldens.existing_goldens(root, lc, tmp_path)) == {"", "cuda", "cuda-sm80", "cuda-sm90"}
    assert goldens.describe_keys(keys) == " for key cuda-sm90 (nor cuda, nor keyless)"
