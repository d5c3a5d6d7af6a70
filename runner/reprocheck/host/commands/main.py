"""The command line: parse, call a command (one module each), map to exit codes. Every command goes through `main`'s
guard: usage errors exit 2, interruptions 130/143, anything unexpected 4 with a crash log; never a traceback."""

from __future__ import annotations

import argparse
import enum
import re
import signal
import sys
import threading
from pathlib import Path
from typing import Any, NoReturn

from ... import __version__
from ...files import OutputTargetError
from ..checks.invariance import KINDS as INVARIANCE_KINDS
from ..exitcodes import ExitCode, UsageError
from ..launcher.launch_checks import COUNT, COUNT_RULE, LaunchError, ascii_seed
from . import init, shards, upgrade
from .calibrate import cmd_calibrate
from .crash import Terminated, closed_stdout, internal_error, on_sigterm
from .diagnose import cmd_diagnose
from .docker import cmd_docker
from .info import cmd_env, cmd_matrix, cmd_schema
from .options import Options, add_page_options
from .run import cmd_run, cmd_validate


class Command(str, enum.Enum):
    RUN = "run"
    VALIDATE = "validate"
    SCHEMA = "schema"
    ENV = "env"
    DOCKER = "docker"
    MATRIX = "matrix"
    DIAGNOSE = "diagnose"
    CALIBRATE = "calibrate"
    UPGRADE = "upgrade"
    INIT = "init"


def _github_usage_error(exc: UsageError) -> None:
    from .. import github

    located = [
        (github.workspace_relative(e.file), e.line or 1, "reprocheck: invalid spec", str(e))
        for e in exc.errors
        if e.file != "command line"
    ]
    lines = (
        github.error_annotations(located)
        if located
        else [github.command("error", str(exc), title="reprocheck: invalid command")]
    )
    for line in lines:
        github.emit(line)
    github.write_outputs(github.ERROR_OUTPUTS)


EXIT_CODES = """exit codes (when several apply, the highest wins):
  0    every check reproducible within tolerance
  1    outputs differ between runs, or drifted from the baseline (nothing else)
  2    the spec or the command line is invalid, or a golden or package is missing: nothing was run
  3    a run failed (raised, crashed, killed, timed out, device missing) or nothing could be compared
  4    reprocheck itself failed: one line and the path of a crash log
  130  interrupted (Ctrl-C); 143 terminated (SIGTERM); 141 stdout closed by its reader"""


def _count(text: str) -> int:
    if not COUNT.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{COUNT_RULE}, got {text!r}")
    return int(text)


def _megabytes(text: str) -> int:
    if not re.fullmatch(r"[0-9]{1,7}", text) or not 1 <= int(text) <= 1_048_576:
        raise argparse.ArgumentTypeError(f"must be a whole number of megabytes from 1 to 1048576, got {text!r}")
    return int(text)


def _seed(text: str) -> int:
    try:
        return ascii_seed("", text)
    except LaunchError as exc:
        raise argparse.ArgumentTypeError(str(exc).strip()) from None


CHECK_HELP = "only this check: NAME (in every spec) or SPEC:NAME (that spec's); repeatable"


def die(message: str, code: int = ExitCode.USAGE) -> NoReturn:
    for line in message.splitlines():
        print(f"reprocheck: error: {line}", file=sys.stderr)
    raise SystemExit(code)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="reprocheck", description="A reproducibility gate for PyTorch inference.")
    p.add_argument("-V", "--version", action="version", version=f"reprocheck {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        Command.RUN.value,
        help="run checks and compare their runs (exit 0 pass, 1 differ, 2 bad spec, 3 run failed, 4 internal)",
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_run_options(run)
    run.add_argument("--keep", type=Path, metavar="DIR", help="keep each run's outputs and logs in DIR")
    # `upgrade`'s float64 reference: every run with the model and floating inputs in float64. Not for checks.
    run.add_argument("--reference-float64", action="store_true", help=argparse.SUPPRESS)
    # `upgrade`'s traces: every run records its modules' and ops' fingerprints (kept with --keep). Not for checks.
    run.add_argument("--trace-ops", action="store_true", help=argparse.SUPPRESS)
    shards.add_run_options(run)

    _add_docker(sub)
    val = sub.add_parser(
        Command.VALIDATE.value,
        help="check spec files without running anything (fast: keys, values, files; --deep: against the models)",
    )
    val.add_argument("specs", nargs="+", metavar="SPEC")
    val.add_argument(
        "--deep",
        action="store_true",
        help="also ask torch (a worker, some seconds): zoo and weight names, Hugging Face config keys, keyword "
        "inputs against the forward's parameters; `run` always does these before any run",
    )

    sch = sub.add_parser(
        Command.SCHEMA.value, help="print the JSON Schema of spec v1 (for editors), or of the JSON report"
    )
    sch.add_argument("--output", "-o", type=Path, metavar="FILE")
    sch.add_argument(
        "--report", dest="report_schema", action="store_true", help="the JSON report's schema instead of the spec's"
    )

    _add_analyses(sub)
    upgrade.add_parser(sub, _count, _seed, [i.value for i in _isolations()])

    init.add_parser(sub)

    env = sub.add_parser(Command.ENV.value, help="print the environment fingerprint")
    env.add_argument("--json", action="store_true")
    env.add_argument(
        "--cuda",
        action="store_true",
        help="also query the GPUs (initialises CUDA) and say whether CUDA is usable here, each missing part with its "
        "fix (exit 3 when it is not)",
    )
    return p


def _add_docker(sub: Any) -> None:
    dock = sub.add_parser(Command.DOCKER.value, help="run the same checks inside the pinned Docker image")
    _add_run_options(dock)
    dock.add_argument("--image", help="image to run (default: the pinned image for this version)")
    dock.add_argument(
        "--flavour",
        metavar="cu130|cu126|cpu",
        help="the pinned image's flavour: a CUDA build, or cpu (default cu130; not with --image; cpu not with --gpus)",
    )
    dock.add_argument(
        "--build", action="store_true", help="build the image from this source tree's docker/Dockerfile first"
    )
    dock.add_argument(
        "--requirements",
        action="append",
        default=[],
        metavar="FILE",
        help="install a requirements file into an image derived from the pinned one (its stack unchanged; built "
        "once, reused while the files are unchanged); repeatable",
    )
    dock.add_argument(
        "--install",
        action="append",
        default=[],
        metavar="PATH",
        help="install your own package (a folder with pyproject.toml) into the derived image; repeatable",
    )
    dock.add_argument("--gpus", default="none", metavar="all|N|none", help="GPUs for the container (default none)")
    dock.add_argument("--network", default="none", help="container network (default none: no network; host is refused)")
    dock.add_argument(
        "--workspace",
        type=Path,
        metavar="DIR",
        help="mounted read-only; specs and outputs must be inside it (default: the current folder)",
    )


def _add_analyses(sub: Any) -> None:
    """diagnose, calibrate and matrix."""
    diag = sub.add_parser(
        Command.DIAGNOSE.value,
        help="find why a check is irreproducible: first diverging module, seed sensitivity, recipe ablation",
    )
    diag.add_argument("specs", nargs="+", metavar="SPEC")
    diag.add_argument("--check", action="append", default=[], metavar="[SPEC:]NAME", help=CHECK_HELP)
    diag.add_argument("--device", help="cpu | cuda | cuda:N | auto, overriding the spec")
    diag.add_argument("--report", type=Path, metavar="FILE", help="write the JSON diagnosis here")
    diag.add_argument("--summary", type=Path, metavar="FILE", help="write the Markdown diagnosis here")
    diag.add_argument("--isolation", choices=[i.value for i in _isolations()], default="auto")
    diag.add_argument(
        "--max-trace-mb",
        type=_megabytes,
        default=256,
        metavar="MB",
        help="cap on each traced run's trace file (default 256): past it, tracing stops and says so",
    )
    _add_seed(diag)
    _add_model_cache(diag)
    add_page_options(diag)

    cal = sub.add_parser(
        Command.CALIBRATE.value,
        help="run each check N times (and its invariance variants) and print the smallest tolerances that pass",
    )
    cal.add_argument("specs", nargs="+", metavar="SPEC")
    cal.add_argument("--check", action="append", default=[], metavar="[SPEC:]NAME", help=CHECK_HELP)
    cal.add_argument("--runs", type=_count, default=20, help="runs per check (default 20)")
    cal.add_argument("--device", help="cpu | cuda | cuda:N | auto, overriding the spec")
    cal.add_argument("--report", type=Path, metavar="FILE", help="also write the suggestions as JSON")
    cal.add_argument("--isolation", choices=[i.value for i in _isolations()], default="auto")
    cal.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    _add_seed(cal)
    _add_model_cache(cal)

    mat = sub.add_parser(Command.MATRIX.value, help="print the checks as JSON for a GitHub Actions strategy.matrix")
    mat.add_argument("specs", nargs="+", metavar="SPEC")
    mat.add_argument("--check", action="append", default=[], metavar="[SPEC:]NAME", help=CHECK_HELP)
    mat.add_argument("--github-output", metavar="NAME", help="also write the JSON to $GITHUB_OUTPUT under this name")
    shards.add_matrix_options(mat)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("specs", nargs="+", metavar="SPEC", help="spec file(s)")
    p.add_argument("--check", action="append", default=[], metavar="[SPEC:]NAME", help=CHECK_HELP)
    p.add_argument("--runs", type=_count, help="runs per check (>= 2), overriding the spec")
    p.add_argument("--device", help="cpu | cuda | cuda:N | auto, overriding the spec")
    _add_seed(p)
    p.add_argument("--report", type=Path, metavar="FILE", help="write the JSON report here")
    p.add_argument(
        "--summary", type=Path, metavar="FILE", help="write the Markdown report here (e.g. $GITHUB_STEP_SUMMARY)"
    )
    p.add_argument(
        "--junit", type=Path, metavar="FILE", help="write JUnit XML here: a test case per check and per variant"
    )
    p.add_argument(
        "--isolation",
        choices=[i.value for i in _isolations()],
        default="auto",
        help="fork: one worker process imports torch once and each run is a fresh fork of it (default on Linux); "
        "spawn: a new interpreter per run",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    p.add_argument(
        "--strict",
        action="store_true",
        help="a check whose compared outputs are all constant (it cannot see a change) fails, as strict: true",
    )
    _add_model_cache(p)
    p.add_argument("--baseline", type=Path, metavar="DIR", help="also compare with the golden outputs stored in DIR")
    p.add_argument(
        "--baseline-root",
        type=Path,
        metavar="DIR",
        default=None,
        help="goldens are laid out by each spec's path relative to DIR (default: the current folder)",
    )
    p.add_argument("--update-baseline", action="store_true", help="write (or rewrite) the goldens in --baseline DIR")
    p.add_argument(
        "--missing-baseline",
        choices=("error", "write"),
        default="error",
        help="a check with no golden for this machine's key: error (default, exit 2), or write it (the first night; "
        "each written golden is a warning until committed) and compare every check that has one",
    )
    p.add_argument(
        "--github",
        action="store_true",
        help="also write GitHub Actions annotations, step outputs ($GITHUB_OUTPUT) and the step summary",
    )
    p.add_argument(
        "--invariance",
        action="append",
        choices=["all", "none", *INVARIANCE_KINDS],
        metavar="KIND",
        help=f"which invariance variants to run: all (default: every kind a check declares), none, or a kind "
        f"({', '.join(INVARIANCE_KINDS)}); repeatable",
    )
    _add_require_devices(p)
    add_page_options(p)


def _add_seed(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=_seed, metavar="N", help="the seed of every check, overriding the spec")


def _add_model_cache(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model-cache",
        metavar="DIR",
        help="weights for the runs, without a network: TORCH_HOME=DIR/torch, HF_HOME=DIR/huggingface, "
        "HF_HUB_OFFLINE=1 (read-only in the container; natively the model runs as you and could write there)",
    )


def _add_require_devices(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--require-devices",
        action="store_true",
        help="an invariance device that is not on this machine is an error (exit 3), not a skipped variant",
    )


def _isolations() -> list[enum.Enum]:
    from ..workers.isolated import Isolation

    return list(Isolation)


HANDLERS = {
    Command.RUN: cmd_run,
    Command.VALIDATE: cmd_validate,
    Command.SCHEMA: cmd_schema,
    Command.ENV: cmd_env,
    Command.DOCKER: cmd_docker,
    Command.MATRIX: cmd_matrix,
    Command.DIAGNOSE: cmd_diagnose,
    Command.CALIBRATE: cmd_calibrate,
    Command.UPGRADE: upgrade.cmd_upgrade,
    Command.INIT: init.cmd_init,
}


def main(argv: list[str] | None = None) -> int:
    """Every command goes through here: usage errors exit 2, interruptions 130/143, anything unexpected 4."""
    if argv is None:  # the program itself (not a caller in-process): orphans of its runs come back here, to be reaped
        from ...processes import subreaper

        subreaper()
    argv = sys.argv[1:] if argv is None else argv
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
    args = Options.parsed(_parser().parse_args(argv))
    github = args.github
    if github:
        from ..github import guard_streams

        guard_streams()  # model text printed from here on can never act as a workflow command
    handler = HANDLERS[Command(args.command)]
    try:
        return int(handler(args))
    except UsageError as exc:
        if github:
            _github_usage_error(exc)
        die(str(exc))
    except OutputTargetError as exc:
        if github:
            _github_usage_error(UsageError(str(exc)))
        die(str(exc))
    except BrokenPipeError:
        return closed_stdout()
    except KeyboardInterrupt:
        print("reprocheck: interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Terminated:
        print("reprocheck: terminated", file=sys.stderr)
        return int(ExitCode.TERMINATED)
    except Exception as exc:
        return internal_error(exc, argv, github)
