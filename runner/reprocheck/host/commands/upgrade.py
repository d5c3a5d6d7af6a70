"""`reprocheck upgrade SPEC... --from ENV --to ENV`: the command line's side of the upgrade canary: options checked,
the session run (upgrade.py), the reports written, the exit code (0 safe to bump, 1 changed or not reproducible)."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
from collections.abc import Callable
from pathlib import Path

from ..exitcodes import UsageError
from .options import Options, add_page_options


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    count: Callable[[str], int],
    seed: Callable[[str], int],
    isolations: list[str],
) -> None:
    p = sub.add_parser(
        "upgrade",
        help="run the checks on two stacks (python:PATH or image:TAG) and grade every output: safe to bump?",
        description="Each check runs reproducibly on both stacks; every output of --to is then graded against --from: "
        "identical, within noise (no farther from a float64 reference than --from is), task-equivalent (the "
        "compare: rules judge them the same) or changed. Exit 0: safe to bump; 1: changed or not reproducible.",
    )
    p.add_argument("specs", nargs="+", metavar="SPEC")
    p.add_argument(
        "--from", dest="source", required=True, metavar="ENV", help="the stack you have: image:TAG or python:PATH"
    )
    p.add_argument(
        "--to", dest="target", required=True, metavar="ENV", help="the stack you want: image:TAG or python:PATH"
    )
    p.add_argument("--check", action="append", default=[], metavar="NAME", help="only these checks (repeatable)")
    p.add_argument(
        "--require",
        choices=["identical", "noise", "task"],
        default="noise",
        help="the least grade that is safe: identical (bitwise), noise (default: identical or within noise), "
        "task (also task-equivalent)",
    )
    p.add_argument(
        "--noise-k",
        type=float,
        default=None,
        metavar="K",
        help="within noise: dist(new, ref) <= K * dist(old, ref) + eps (default 3)",
    )
    p.add_argument(
        "--noise-ulps",
        type=float,
        default=None,
        metavar="N",
        help="eps = N machine epsilons of the output's dtype x its largest |value| (default 4)",
    )
    p.add_argument("--runs", type=count, help="runs per check and stack (>= 2), overriding the spec")
    p.add_argument("--device", help="cpu | cuda | cuda:N | auto on both stacks, overriding the spec")
    p.add_argument("--seed", type=seed, metavar="N", help="the seed of every check on both stacks, overriding the spec")
    p.add_argument("--from-device", metavar="DEVICE", help="the device on the --from stack (default --device)")
    p.add_argument("--to-device", metavar="DEVICE", help="the device on the --to stack (default --device)")
    p.add_argument("--gpus", default="none", metavar="all|N|none", help="GPUs for image: stacks (default none)")
    p.add_argument("--model-cache", metavar="DIR", help="weights for the runs, read-only (as for run and docker)")
    p.add_argument("--isolation", choices=isolations, default="auto")
    p.add_argument("--report", type=Path, metavar="FILE", help="write the JSON report here")
    p.add_argument("--summary", type=Path, metavar="FILE", help="write the Markdown report here (fits a PR comment)")
    p.add_argument("--github", action="store_true", help="annotations at each changed check's line, the step summary")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    add_page_options(p)


def _positive(name: str, value: float | None, default: float) -> float:
    if value is None:
        return default
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"{name} must be a finite number >= 0, got {value}")
    return value


def cmd_upgrade(args: Options) -> int:
    from ..analyses.stacks import ULPS, K, Options, parse_stack
    from ..analyses.upgrade import run_upgrade
    from ..launcher.launch import DEVICE
    from ..report import upgrade as fmt
    from .common import checked_model_cache, selected_checks, write_files
    from .targets import check_output_flags

    check_output_flags(args)
    source, target = parse_stack("--from", args.source), parse_stack("--to", args.target)
    for flag, value in (
        ("--device", args.device),
        ("--from-device", args.from_device),
        ("--to-device", args.to_device),
    ):
        if value is not None and not DEVICE.match(value):
            raise UsageError(f"{flag} must be cpu, cuda, cuda:N or auto, got {value!r}")
    # Mounted into image: stacks: a home folder (keys, logins) never goes with it.
    cache = checked_model_cache(args.model_cache, homes=(os.path.expanduser("~"),)) if args.model_cache else None
    checks = selected_checks(args.specs, args.check, runs=args.runs, seed=args.seed)
    opts = Options(
        source=source,
        target=target,
        require=args.require,
        k=_positive("--noise-k", args.noise_k, K),
        ulps=_positive("--noise-ulps", args.noise_ulps, ULPS),
        runs=args.runs,
        seed=args.seed,
        from_device=args.from_device or args.device,
        to_device=args.to_device or args.device,
        isolation=args.isolation,
        quiet=args.quiet,
        model_cache=cache,
        gpus=args.gpus,
    )
    from ..report import html
    from .common import page_outputs, pictures_folder, write_page

    with pictures_folder(args) as drawn:
        result = run_upgrade(checks, dataclasses.replace(opts, pictures=drawn))
        print(fmt.render_console(result), end="", flush=True)
        write_files(args, lambda: fmt.render_json(result), lambda: fmt.render_markdown(result))
        write_page(args, lambda: html.render_upgrade(result, drawn))
    if args.github:
        from .. import github

        for line in github.error_annotations(fmt.failures(result)):
            github.emit(line)
        page, where = page_outputs(args, sum(len(c.pictures) for c in result.checks))
        github.append_summary(fmt.render_markdown(result) + where)
        verdict = {"result": "pass" if result.exit_code == 0 else "fail", "report": str(args.report or "")}
        github.write_outputs({**verdict, **page})
    return int(result.exit_code)
