"""Where the package finds its own parts, wherever its modules sit in it: the workers import this very package,
an upgrade stack gets it whole, and the image's pins ship beside the launcher."""

import os
from pathlib import Path

import reprocheck
from helpers import ROOT
from reprocheck.host.analyses.stacks import copy_code
from reprocheck.host.launcher.container import VERSIONS, read_versions
from reprocheck.host.workers.helper_client import worker_environment


def test_workers_import_this_very_package():
    first = Path(worker_environment({})["PYTHONPATH"].split(os.pathsep)[0])
    assert (first / "reprocheck" / "__init__.py").resolve() == Path(reprocheck.__file__).resolve()


def test_an_upgrade_stack_gets_the_whole_package(tmp_path):
    copy_code(tmp_path)
    for part in ("__init__.py", "worker/__main__.py", "host/launcher/launch.py", "protocol/__init__.py"):
        assert (tmp_path / "reprocheck" / part).is_file(), part


def test_the_image_pins_ship_beside_the_launcher():
    assert VERSIONS.is_file()
    assert read_versions() == read_versions(ROOT / "docker" / "versions.env")
