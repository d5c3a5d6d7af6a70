"""`reprocheck calibrate`: each check run with bitwise tolerances, then the smallest tolerances that pass
everything observed, printed ready to paste (../analyses/calibrate.py works them out)."""

from __future__ import annotations

import sys

from ..checks.outcome import Status
from .common import checks_to_run, run_checks
from .options import Options


def cmd_calibrate(args: Options) -> int:
    """Exit 0 with a tolerance block per check, 1 when no tolerance can make a check pass, 3 when runs fail."""
    import dataclasses

    from ...files import atomic_write_text
    from ...spec import ToleranceSpec
    from ..analyses.calibrate import calibrate, render, report
    from ..checks import pipeline
    from ..report import shape
    from ..workers.isolated import Isolation

    checks = checks_to_run(args)
    bitwise = []  # observe every difference: bitwise tolerances everywhere
    for lc in checks:
        update: dict[str, object] = {"tolerance": ToleranceSpec()}
        if lc.check.invariance is not None:
            update["invariance"] = lc.check.invariance.model_copy(update={"tolerance": None})
        bitwise.append(dataclasses.replace(lc, check=lc.check.model_copy(update=update)))
    results, crash = run_checks(args, bitwise, pipeline.Session(Isolation(args.isolation)))
    if crash is not None:
        raise crash
    failed = [r for r in results if r.status is Status.ERROR]
    if failed:
        from ..report import print_console

        print_console(failed)
        return 3
    calibrations = [calibrate(r) for r in results]
    for c in calibrations:
        sys.stdout.write(render(c))
    if args.report:
        atomic_write_text(args.report, shape.written(report(calibrations)))
    return 0 if all(calibrations) else 1
