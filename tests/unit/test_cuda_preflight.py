"""The CUDA preflight's verdict from recorded facts (the GPU simulated: facts as `cuda_preflight.gather` reads them on
the machines named). It never refuses what torch can use; each cause comes with its fix."""

from reprocheck.worker.cuda_preflight import Facts, parse_smi, problems, verdict_lines

H100 = ["0: NVIDIA H100 80GB HBM3 (sm 9.0)"]


def test_a_usable_gpu_has_no_problem_even_on_a_driver_below_the_pinned_minimum():
    # torch's minor version compatibility runs CUDA 13 on it: the preflight explains failures, it does not add any.
    facts = Facts(torch="2.14.1", cuda_build="13.0", available=True, count=1, driver="575.51.03", smi="ok")
    assert problems(facts) == [] and verdict_lines(facts)[-1] == "cuda: usable"
    assert problems(facts, "cuda:1") == ["device cuda:1 does not exist: 1 GPU(s) are visible to this process"]


def test_a_torch_without_cuda_is_named_first():
    facts = Facts(torch="2.13.0+cpu", cuda_build=None, smi="ok", smi_gpus=H100, driver="580.95.05")
    (line,) = problems(facts)
    assert line.startswith("this torch (2.13.0+cpu) is built without CUDA: install a CUDA build of torch")
    (line,) = problems(Facts(torch="2.14.1+cpu", cuda_build=None, flavour="cpu"))
    assert "the image's cpu flavour: use a CUDA flavour" in line


def test_the_driver_each_cuda_major_needs_outside_the_image():
    old = Facts(torch="2.14.1", cuda_build="12.6", driver="470.256.02", smi="ok", smi_gpus=H100)
    assert problems(old) == [
        "the NVIDIA driver 470.256.02 is older than CUDA 12.6 needs (>= 525.60.13): update the host's driver"
    ]
    ok = Facts(
        torch="2.14.1", cuda_build="12.6", driver="535.183.01", smi="ok", smi_gpus=H100, why="CUDA unknown error"
    )
    assert problems(ok) == [
        "torch.cuda.is_available() is False although this machine shows 0: NVIDIA H100 80GB HBM3 (sm 9.0): "
        "CUDA unknown error"
    ]


def test_nvidia_smi_rows_are_read_and_anything_else_left_out():
    out = "0, NVIDIA H100 80GB HBM3, 9.0, 580.95.05\n1, NVIDIA A100-SXM4-40GB, 8.0, 580.95.05\nNo devices were found\n"
    assert parse_smi(out) == ["0: NVIDIA H100 80GB HBM3 (sm 9.0)", "1: NVIDIA A100-SXM4-40GB (sm 8.0)"]
