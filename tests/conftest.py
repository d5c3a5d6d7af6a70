"""Fixtures and the tiers. A test's tier is its folder (unit/, cli/, engine/); a test anywhere that needs the Docker
engine (the `image` fixture, or marked `docker`) is also an engine test. Docker tests never run side by side (they
build, list and prune images): they come first in the order, so that xdist's load scheduling hands them all to
one test worker in its first batch, and a lock holds the rule if it ever does not."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import FIXTURES, ROOT, TESTS, engine_up, exclusive
from stand_in import make_fake

TIERS = ("unit", "cli", "engine")
ENGINE_FIXTURES = {"image"}


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    """A folder holding the planted models, for specs that name `factory: "planted:..."`."""
    shutil.copy(FIXTURES / "planted.py", tmp_path / "planted.py")
    return tmp_path


@pytest.fixture(scope="session")
def image() -> str:
    """The pinned image, built from docker/Dockerfile on the local base (no registry here): once per test run, by
    whichever test worker gets there first. Skips without a Docker engine, except under CI=true where that fails."""
    if not engine_up():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but no Docker engine is running (.ci/start-docker.sh should have started one)")
        pytest.skip("no Docker engine on this machine (start dockerd to run the container tests)")
    # Once per test run: a rebuild gets a new image id (its creation label), which derived images are keyed on.
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    stamp = ROOT / ".cache" / "locks" / f"image-{run}"
    with exclusive("docker-engine"):
        if run and stamp.is_file():
            return stamp.read_text()
        proc = subprocess.run(["bash", "docker/build.sh", "--local"], cwd=ROOT, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-3000:]
        tag = proc.stdout.strip().splitlines()[-1]
        if run:
            stamp.write_text(tag)
    return tag


@pytest.fixture
def fake(tmp_path: Path):
    """A workspace with a spec, the runner's file-command files, and a stand-in docker first on PATH."""
    return make_fake(tmp_path)


def tier_of(item: pytest.Item) -> str:
    parts = Path(str(item.path)).relative_to(TESTS).parts
    if ENGINE_FIXTURES & set(getattr(item, "fixturenames", ())) or item.get_closest_marker("docker"):
        return "engine"
    if parts[0] in TIERS:
        return parts[0]
    if parts[0] == "hostile":
        return "cli"
    raise pytest.UsageError(f"{item.nodeid}: a test module belongs in one of tests/{{{','.join(TIERS)}}}/ or hostile/")


def _docker(item: pytest.Item) -> bool:
    return (
        bool(ENGINE_FIXTURES & set(getattr(item, "fixturenames", ()))) or item.get_closest_marker("docker") is not None
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(tier_of(item))
        if _docker(item):
            item.add_marker("docker")
    # The Docker tests first, then the unit tier: xdist's first batch for one worker (a quarter of its share of
    # consecutive tests) is then the serial Docker stretch plus quick tests, and the long engine tests (zoos, the
    # second stack) start at once on the others, the CLI tier filling in. The sort is stable: a module's tests stay
    # together (its module-scoped fixtures are built once).
    order = {"unit": 1, "engine": 2, "cli": 3}
    items.sort(key=lambda i: 0 if i.get_closest_marker("docker") else order[tier_of(i)])


@pytest.fixture(autouse=True)
def _engine_alone(request: pytest.FixtureRequest):
    if request.node.get_closest_marker("docker") is None:
        yield
        return
    with exclusive("docker-engine"):
        yield


_TIER_SECONDS: dict[str, list[float]] = {t: [0.0, 0] for t in TIERS}  # type: ignore[misc]


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    tier = next((t for t in TIERS if t in report.keywords), None)
    if tier is not None:
        _TIER_SECONDS[tier][0] += report.duration
        _TIER_SECONDS[tier][1] += report.when == "call"


def pytest_terminal_summary(terminalreporter) -> None:
    # Test time per tier, summed over test workers (it exceeds the wall time when they run side by side).
    parts = [f"{t} {int(s)} s ({int(n)} tests)" for t, (s, n) in _TIER_SECONDS.items() if n]
    if parts:
        terminalreporter.write_line("tiers: " + ", ".join(parts))
