"""`reprocheck docker`: the same checks in the pinned image (or one derived from it with your dependencies),
launched by the one policy the Action uses too (../launcher/launch.py)."""

from __future__ import annotations

import os
from pathlib import Path

from ..exitcodes import UsageError
from .options import Options
from .targets import check_output_flags


def _spec_absolute(check: str) -> str:
    spec, colon, name = check.rpartition(":")
    return f"{os.path.abspath(spec)}:{name}" if colon and spec else check


def cmd_docker(args: Options) -> int:
    """The same check in the pinned image, launched by the one policy the Action uses too (launch.py)."""
    from ..launcher import container, launch

    if args.baseline_root is not None:
        raise UsageError("--baseline-root: in the container the goldens are laid out relative to --workspace")

    def absolute(path: object) -> str | None:  # command-line paths are relative to the current folder
        return os.path.abspath(str(path)) if path else None

    if args.image and args.flavour:
        raise UsageError("--image and --flavour: give one (--flavour picks the pinned image of that flavour)")
    try:  # chosen as the Action chooses (container.choose_flavour); None where --image names the image
        flavour = None if args.image else container.choose_flavour(container.read_versions(), args.flavour, args.gpus)
    except ValueError as exc:
        raise UsageError(f"--{exc}" if args.flavour else str(exc)) from None
    request = launch.Request(
        specs=tuple(os.path.abspath(s) for s in args.specs),
        image=args.image or container.default_image(flavour),
        workspace=args.workspace or Path.cwd(),
        # SPEC:NAME names its spec from here, as the specs are
        checks=tuple(_spec_absolute(c) for c in args.check),
        runs=args.runs,
        seed=args.seed,
        device=args.device,
        gpus=args.gpus,
        network=args.network,
        isolation=args.isolation,
        quiet=args.quiet,
        report=absolute(args.report),
        summary=absolute(args.summary),
        junit=absolute(args.junit),
        html=absolute(args.html),
        pictures=absolute(args.pictures),
        baseline=absolute(args.baseline),
        update_baseline=args.update_baseline,
        missing_baseline=args.missing_baseline,
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
    from ..launcher import derived

    derivation = derived.Derivation(
        request.image,
        tuple(Path(os.path.abspath(f)) for f in args.requirements),
        tuple(Path(os.path.abspath(f)) for f in args.install),
    )
    try:
        plan = launch.plan(request)
        check_output_flags(args)
        return container.run(plan, build=args.build, derivation=derivation, flavour=flavour)
    except (launch.LaunchError, container.ContainerError, derived.DerivedError) as exc:
        raise UsageError(str(exc)) from None
