"""--html opened in a real headless browser (Debian's chromium; .ci/install-chromium.sh puts it on CI): the page of a
failing detection check renders, is not blank, shows both runs' boxes, and breaks none of its own policy (no script,
nothing fetched: the console says nothing of a Content-Security-Policy)."""

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from helpers import BOX_EXTRA, BOX_MISSING, near_colour, pictured_folder, png_colours, reprocheck

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _browser() -> str:
    exe = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("no chromium: .ci/run installs it (bash .ci/install-chromium.sh)")
        pytest.skip("no chromium here (apt-get install chromium)")
    return exe


def _chromium(exe: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions"]
    flags += ["--enable-logging=stderr", "--v=0", f"--user-data-dir={profile}", "--window-size=1200,2000"]
    return subprocess.run([exe, *flags, *args], capture_output=True, text=True, timeout=120)


def test_the_page_of_a_failing_detection_check_renders_in_chromium(tmp_path):
    exe = _browser()
    spec = pictured_folder(tmp_path) / "detect.yaml"
    page, pics = tmp_path / "out" / "page.html", tmp_path / "out" / "pics"
    r = reprocheck("run", str(spec), "--pictures", str(pics), "--html", str(page), "-q")
    assert r.code == 1, r
    start = time.perf_counter()
    shot = tmp_path / "shot.png"
    seen = _chromium(exe, tmp_path / "profile", f"--screenshot={shot}", page.as_uri())
    dom = _chromium(exe, tmp_path / "profile2", "--dump-dom", page.as_uri())
    print(f"chromium: screenshot and DOM in {time.perf_counter() - start:.1f}s")
    assert shot.is_file(), seen.stderr[-2000:]
    logged = seen.stderr + dom.stderr
    refused = [line for line in logged.splitlines() if "Refused to" in line or "Content Security Policy" in line]
    assert refused == [], refused
    assert "Uncaught" not in logged and "Not allowed to load" not in logged
    with Image.open(shot) as img:
        assert len(img.convert("RGB").getcolors(maxcolors=1 << 22) or ()) > 16  # not one colour: it rendered
    rendered = png_colours(shot)
    assert near_colour(rendered, BOX_MISSING, 24) and near_colour(
        rendered, BOX_EXTRA, 24
    )  # both runs' boxes, on screen
    assert "FAIL: 1 check" in dom.stdout and '<img src="data:image/png;base64,' in dom.stdout
    assert "2 matched, 1 missing, 1 extra, 1 relabelled" in dom.stdout
