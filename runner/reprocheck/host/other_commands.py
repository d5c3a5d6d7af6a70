"""The commands that run no check in this process: matrix (the checks as a CI matrix), schema (the spec's or the
report's JSON Schema), env (the environment as a worker sees it) and docker (the check in the pinned image)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from ..spec import SpecErrors
from .commands import load_checks, need_torch
from .exitcodes import UsageError
from .targets import check_output_flags


def cmd_matrix(args: argparse.Namespace) -> int:
    """{"include": [{"check", "spec", "line", "device", "runs"}]} for `strategy.matrix: ${{ fromJSON(...) }}`."""
    from ..spec import select

    try:
        checks = select(load_checks(args.specs), args.check)
    except SpecErrors as exc:
        raise UsageError(str(exc)) from None
    include = [
        {"check": lc.name, "spec": str(lc.file), "line": lc.line, "device": lc.check.device, "runs": lc.check.runs}
        for lc in checks
    ]
    text = json.dumps({"include": include}, separators=(",", ":"))
    print(text)
    if args.github_output:
        from .github import write_outputs

        write_outputs({args.github_output: text})
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    if args.report:
        from .report.schema import json_schema
    else:
        from ..spec import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.output:
        from ..files import atomic_write_text

        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    need_torch()
    from ..protocol import FingerprintAnswer, FingerprintRequest
    from .helpers import helper, worker_environment

    # The environment as a worker sees it: read on the torch side, in a helper process.
    with tempfile.TemporaryDirectory(prefix="reprocheck-env-") as tmp:
        request = FingerprintRequest(cuda=args.cuda or None)
        fp = helper(Path(tmp), request, FingerprintAnswer, worker_environment(dict(os.environ))).fingerprint
    if args.json:
        print(json.dumps(fp, indent=2))
    else:
        for key, value in fp.items():
            if isinstance(value, dict):
                for k, v in value.items():
                    print(f"{key}.{k}: {v}")
            else:
                print(f"{key}: {value}")
    return 0


def cmd_docker(args: argparse.Namespace) -> int:
    """The same check in the pinned image, launched by the one policy the Action uses too (launch.py)."""
    from . import container, launch

    if args.baseline_root is not None:
        raise UsageError("--baseline-root: in the container the goldens are laid out relative to --workspace")

    def absolute(path: object) -> str | None:  # command-line paths are relative to the current folder
        return os.path.abspath(str(path)) if path else None

    request = launch.Request(
        specs=tuple(os.path.abspath(s) for s in args.specs),
        image=args.image or container.default_image(),
        workspace=args.workspace or Path.cwd(),
        checks=tuple(args.check),
        runs=args.runs,
        device=args.device,
        gpus=args.gpus,
        network=args.network,
        isolation=args.isolation,
        quiet=args.quiet,
        report=absolute(args.report),
        summary=absolute(args.summary),
        baseline=absolute(args.baseline),
        update_baseline=args.update_baseline,
        invariance=tuple(args.invariance or ()),
        require_devices=args.require_devices,
        strict=args.strict,
        github=args.github,
        model_cache=absolute(args.model_cache),
        allow_outside_cache=True,  # your own machine: any folder you name that holds nothing of the host
        homes=(os.path.expanduser("~"),),
        github_output=os.environ.get("GITHUB_OUTPUT"),
        github_summary=os.environ.get("GITHUB_STEP_SUMMARY"),
    )
    from . import derived

    derivation = derived.Derivation(
        request.image,
        tuple(Path(os.path.abspath(f)) for f in args.requirements),
        tuple(Path(os.path.abspath(f)) for f in args.install),
    )
    try:
        plan = launch.plan(request)
        check_output_flags(args)
        return container.run(plan, build=args.build, derivation=derivation)
    except (launch.LaunchError, container.ContainerError, derived.DerivedError) as exc:
        raise UsageError(str(exc)) from None
