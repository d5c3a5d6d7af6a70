"""`reprocheck init`: a commented spec for a model named by its source, that runs as written. A worker says which
input fits the model (this process never imports torch); the spec is validated before it is written, and an
existing file is never overwritten without --force."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from ..exitcodes import UsageError
from .options import Options


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "init",
        help="write a commented spec for a model that runs as written (the input fitted to the model)",
        description="Write a spec for one model: `reprocheck init --torchvision resnet50 -o resnet50.yaml`, then "
        "`reprocheck run resnet50.yaml`. Random init, so nothing is downloaded.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--torchvision", dest="init_torchvision", metavar="NAME", help="a torchvision.models name, e.g. resnet50"
    )
    source.add_argument("--timm", dest="init_timm", metavar="NAME", help="a timm model name, e.g. convnext_atto")
    source.add_argument(
        "--huggingface", dest="init_huggingface", metavar="CLASS", help="a transformers class, with --config or --path"
    )
    source.add_argument(
        "--factory", dest="init_factory", metavar="MODULE:CALLABLE", help="your function returning an nn.Module"
    )
    p.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="--huggingface: a config field (model_type=gpt2 first; values read as YAML); repeatable",
    )
    p.add_argument("--path", metavar="DIR", help="--huggingface: a local model folder instead of a config")
    p.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the spec here (default: print it)")
    p.add_argument("--force", action="store_true", help="overwrite --output if it exists")


def _config(pairs: tuple[str, ...]) -> dict[str, Any] | None:
    import yaml

    if not pairs:
        return None
    config: dict[str, Any] = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.strip():
            raise UsageError(f"--config {pair!r}: write KEY=VALUE (e.g. n_embd=32)")
        try:
            config[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UsageError(f"--config {pair!r}: the value is not YAML") from None
    if "model_type" not in config:
        raise UsageError("--config needs model_type=... (e.g. --config model_type=gpt2)")
    return config


def _request(args: Options, base: Path) -> Any:
    from ...protocol import ScaffoldRequest

    given = {
        "torchvision": args.init_torchvision,
        "timm": args.init_timm,
        "huggingface": args.init_huggingface,
        "factory": args.init_factory,
    }
    source, name = next((s, n) for s, n in given.items() if n)  # argparse: exactly one
    if source != "huggingface" and (args.config or args.path):
        raise UsageError("--config and --path go with --huggingface only")
    config = _config(args.config)
    if source == "huggingface" and (config is None) == (args.path is None):
        raise UsageError("--huggingface needs exactly one of --config KEY=VALUE... or --path DIR")
    path = os.path.abspath(args.path) if args.path else None
    if path and not os.path.isdir(path):
        raise UsageError(f"--path {args.path}: no such folder")
    return ScaffoldRequest(source=source, name=name, config=config, path=path, base_dir=str(base))


def _y(value: Any) -> str:
    """One flow-style YAML line."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=10**6, sort_keys=False).strip()
    return text.removesuffix("...").strip()


RECIPE = """recipe:                    # the full recipe, every part on: turn one off only to see what it changes
  hash_seed: true          # PYTHONHASHSEED=<seed> before the worker starts
  cublas_workspace: true   # CUBLAS_WORKSPACE_CONFIG=:4096:8 (deterministic cuBLAS)
  seed_rngs: true          # random, numpy, torch (all devices) seeded before the model is built
  deterministic_algorithms: true   # torch.use_deterministic_algorithms: true | warn | false
  cudnn_deterministic: true
  cudnn_benchmark: false
  tf32: false
  threads: null            # intra-op threads; null: the CPUs available, the same for every run
  eval_mode: true          # model.eval()
  inference_mode: true     # torch.inference_mode()
tolerance: {atol: 0.0, rtol: 0.0}   # bitwise; `reprocheck calibrate FILE` suggests tolerances from many runs
"""


def spec_text(request: Any, answer: Any, command: str) -> str:
    lines = [
        f"# Written by `{command}`. It runs as written:",
        "#   reprocheck run THIS_FILE     exit 0 reproducible, 1 the runs differ, 2 bad spec, 3 a run failed",
        *[f"# {n}" for n in answer.notes],
        "version: 1",
        "seed: 3407                 # every run's seed (--seed N overrides it)",
        "runs: 2                    # isolated runs, each compared with run 1 (2..1000)",
        "device: cpu                # cpu | cuda | cuda:N | auto",
        "timeout: 600               # seconds allowed for each run",
        "model:",
    ]
    if request.source == "huggingface":
        lines += ["  huggingface:", f"    class: {request.name}"]
        where = os.path.relpath(request.path, request.base_dir) if request.path else ""
        lines.append(f"    path: {_y(where)}" if request.path else f"    config: {_y(request.config)}")
    else:
        lines.append(f"  {request.source}: {_y(request.name)}")
    if answer.kwargs:
        lines.append(f"  kwargs: {_y(answer.kwargs)}")
    lines.append("input:")
    for key, value in answer.input.items():  # keyword inputs one per line
        if key == "kwargs":
            lines += ["  kwargs:", *[f"    {name}: {_y(source)}" for name, source in value.items()]]
        else:
            lines.append(f"  {key}: {_y(value)}")
    return "\n".join(lines) + "\n" + RECIPE


def cmd_init(args: Options) -> int:
    from ...files import atomic_write_text
    from ...spec import SpecErrors, load_spec
    from ..workers.helper_client import helper, worker_environment
    from .common import need_torch

    out = args.output
    if out is not None and out.exists() and not args.force:
        raise UsageError(f"--output {out} exists; choose another name or pass --force")
    base = (out.parent if out is not None else Path(".")).resolve()
    request = _request(args, base)
    need_torch()
    from ...protocol import ScaffoldAnswer

    with tempfile.TemporaryDirectory(prefix="reprocheck-init-") as tmp:
        answer = helper(Path(tmp), request, ScaffoldAnswer, worker_environment(dict(os.environ)), timeout=600)
    if answer.problem:
        raise UsageError(answer.problem)
    flag = f"--{request.source} {request.name}"
    text = spec_text(request, answer, f"reprocheck init {flag}")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=base, delete=False) as f:
        f.write(text)
    try:
        load_spec(f.name)  # what is written is a valid spec, or nothing is
    except SpecErrors as exc:
        raise UsageError(f"the spec for {flag} would not be valid: {exc}") from None
    finally:
        os.unlink(f.name)
    if out is None:
        print(text, end="")
    else:
        atomic_write_text(out, text)
        print(f"wrote {out}: run it with `reprocheck run {out}`")
    return 0
