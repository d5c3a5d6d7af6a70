"""The commands that tell, run nothing: matrix (the checks as a CI matrix), schema (the spec's or the report's JSON
Schema), env (the environment as a worker sees it)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from .common import need_torch, selected_checks
from .options import Options


def cmd_matrix(args: Options) -> int:
    """{"include": [{"name", "check", "spec", "line", "device", "runs", "checks"}]} for `strategy.matrix: ${{
    fromJSON(...) }}`: one entry per check, or with more checks than --max-jobs, per balanced group of them."""
    from .shards import matrix_include

    include = matrix_include(selected_checks(args.specs, args.check), args)
    text = json.dumps({"include": include}, separators=(",", ":"))
    print(text)
    if args.github_output:
        from ..github import write_outputs

        write_outputs({args.github_output: text})
    return 0


def cmd_schema(args: Options) -> int:
    if args.report_schema:
        from ..report.shape import json_schema
    else:
        from ...spec import json_schema

    text = json.dumps(json_schema(), indent=2) + "\n"
    if args.output:
        from ...files import atomic_write_text

        atomic_write_text(args.output, text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_env(args: Options) -> int:
    need_torch()
    from ...protocol import FingerprintAnswer, FingerprintRequest
    from ..workers.helper_client import helper, worker_environment

    # The environment as a worker sees it: read on the torch side, in a helper process.
    with tempfile.TemporaryDirectory(prefix="reprocheck-env-") as tmp:
        request = FingerprintRequest(cuda=args.cuda or None)
        answer = helper(Path(tmp), request, FingerprintAnswer, worker_environment(dict(os.environ)))
    fp = answer.fingerprint
    if args.json:
        extra = {"cuda_preflight": {"usable": answer.cuda_usable, "lines": answer.cuda}} if args.cuda else {}
        print(json.dumps({**fp, **extra}, indent=2))
    else:
        for key, value in fp.items():
            if isinstance(value, dict):
                for k, v in value.items():
                    print(f"{key}.{k}: {v}")
            else:
                print(f"{key}: {value}")
        for line in answer.cuda:
            print(line)
    # --cuda: a nightly's first step fails here, naming what is missing, before any check runs
    return 3 if args.cuda and not answer.cuda_usable else 0
