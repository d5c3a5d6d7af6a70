"""The command line's options, typed: built once from what argparse parsed (`Options.parsed`), then read as
attributes the type checker knows. A command reads the options it has; those of other commands keep their
defaults."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Options:
    command: str = ""
    specs: tuple[str, ...] = ()
    check: tuple[str, ...] = ()  # --check NAME, repeatable: only these checks
    runs: int | None = None
    seed: int | None = None
    device: str | None = None
    report: Path | None = None
    summary: Path | None = None
    junit: Path | None = None
    isolation: str = "auto"
    quiet: bool = False
    strict: bool = False
    model_cache: str | None = None
    github: bool = False
    pictures: Path | None = None  # run, diagnose, upgrade: what differs, drawn into this folder
    html: Path | None = None  # run, diagnose, upgrade: one self-contained page
    # run
    baseline: Path | None = None
    baseline_root: Path | None = None
    update_baseline: bool = False
    missing_baseline: str = "error"  # error | write
    invariance: tuple[str, ...] | None = None
    require_devices: bool = False
    keep: Path | None = None
    reference_float64: bool = False
    trace_ops: bool = False  # upgrade's traced side runs
    shard: str | None = None  # K/N, parsed by shards.shard (a bad form is one UsageError line)
    dry_run: bool = False
    timings: Path | None = None  # run --shard, matrix: an earlier report's durations
    # diagnose
    max_trace_mb: int = 256
    # docker
    image: str | None = None
    flavour: str | None = None  # checked against docker/versions.env's FLAVOURS by container.choose_flavour
    build: bool = False
    requirements: tuple[str, ...] = ()
    install: tuple[str, ...] = ()
    gpus: str = "none"
    network: str = "none"
    workspace: Path | None = None
    # upgrade
    source: str = ""
    target: str = ""
    require: str = "noise"
    noise_k: float | None = None
    noise_ulps: float | None = None
    from_device: str | None = None
    to_device: str | None = None
    # matrix, schema, env
    github_output: str | None = None
    max_jobs: str | None = None  # parsed by shards.max_jobs
    output: Path | None = None
    report_schema: bool = False
    json: bool = False
    cuda: bool = False
    deep: bool = False
    # init
    init_torchvision: str | None = None
    init_timm: str | None = None
    init_huggingface: str | None = None
    init_factory: str | None = None
    config: tuple[str, ...] = ()
    path: str | None = None
    force: bool = False

    @classmethod
    def parsed(cls, ns: argparse.Namespace) -> Options:
        given = vars(ns)
        unknown = set(given) - {f.name for f in dataclasses.fields(cls)}
        assert not unknown, f"options the parser gives but Options lacks: {sorted(unknown)}"
        lists = {k: tuple(v) for k, v in given.items() if isinstance(v, list)}
        return cls(**{**given, **lists})


def add_page_options(p: argparse.ArgumentParser) -> None:
    """--pictures and --html (run, docker, diagnose, upgrade)."""
    p.add_argument(
        "--pictures",
        type=Path,
        metavar="DIR",
        help="draw what differs into DIR as PNG files (boxes of both runs, masks, |difference| heatmaps, top-k "
        "bars, the error against a float64 reference), from the outputs the runs saved",
    )
    p.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="write one self-contained HTML page: the verdict, each check's outputs and its pictures (inlined)",
    )
