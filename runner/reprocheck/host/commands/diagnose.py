"""`reprocheck diagnose`: the checks loaded and their names checked, each diagnosed, the diagnosis written."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from ..exitcodes import UsageError
from .common import need_torch, pictures_folder, selected_checks, use_model_cache, write_files, write_page
from .options import Options
from .targets import check_output_flags


def cmd_diagnose(args: Options) -> int:
    """Exit 0 when the check is reproducible under its recipe, 1 when not, 3 when its runs fail."""
    check_output_flags(args)
    checks = selected_checks(args.specs, args.check, device=args.device, seed=args.seed)
    use_model_cache(args.model_cache)
    need_torch()
    from .. import report
    from ..analyses.diagnose import diagnose
    from ..checks.names import name_errors, name_requests
    from ..workers.helper_client import name_problems

    with tempfile.TemporaryDirectory(prefix="reprocheck-names-") as tmp:
        errors = name_errors(checks, name_problems(name_requests(checks), Path(tmp)))
    if errors:
        raise UsageError("\n".join(str(e) for e in errors), errors)
    from ..report import html
    from ..workers.isolated import Isolation

    results = []
    with pictures_folder(args) as drawn:
        for lc in checks:
            print(f"diagnosing {lc.name} ({lc.file})", file=sys.stderr, flush=True)
            results.append(
                diagnose(
                    lc,
                    Isolation(args.isolation),
                    lambda text: print(f"  {text}", file=sys.stderr, flush=True),
                    max_trace_mb=args.max_trace_mb,
                    pictures=drawn,
                )
            )
        renderers = report.DIAGNOSIS_RENDERERS
        sys.stdout.write(renderers[report.Format.CONSOLE](results))
        write_files(
            args, lambda: renderers[report.Format.JSON](results), lambda: renderers[report.Format.MARKDOWN](results)
        )
        write_page(args, lambda: html.render_diagnosis(results, drawn))
    return max((d.exit_code for d in results), default=0)
