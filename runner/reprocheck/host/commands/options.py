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
    # run
    baseline: Path | None = None
    baseline_root: Path | None = None
    update_baseline: bool = False
    missing_baseline: str = "error"  # error | write
    invariance: tuple[str, ...] | None = None
    require_devices: bool = False
    keep: Path | None = None
    reference_float64: bool = False
    shard: str | None = None  # K/N, parsed by shards.shard (a bad form is one UsageError line)
    dry_run: bool = False
    timings: Path | None = None  # run --shard, matrix: an earlier report's durations
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
