"""--pictures and --html through the real CLI, on planted models: the pictures show both runs, the page is one
self-contained file that escapes whatever a model or a spec names."""

import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from helpers import (
    BOX_EXTRA,
    BOX_MATCHED,
    BOX_MISSING,
    near_colour,
    pictured_folder,
    planted_spec,
    png_colours,
    reprocheck,
    write_spec,
)

DETECTION = 'compare:\n  outputs:\n    "*": {as: detection}\n'
MISSING, EXTRA, MATCHED = BOX_MISSING, BOX_EXTRA, BOX_MATCHED
colours, near = png_colours, near_colour


@pytest.fixture
def pictured(tmp_path: Path) -> Path:
    return pictured_folder(tmp_path)


def detection_spec(folder: Path) -> Path:
    return folder / "detect.yaml"


def test_a_failing_detection_check_draws_both_runs_boxes_and_one_page(pictured):
    r = reprocheck(
        "run", str(detection_spec(pictured)), "--pictures", str(pictured / "pics"), "--html", str(pictured / "p.html"),
        "--report", str(pictured / "r.json"), "-q",
    )  # fmt: skip
    assert r.code == 1, r
    (picture,) = sorted((pictured / "pics").iterdir())
    assert picture.name == "001-detect-0-detection.png"
    (listed,) = json.loads((pictured / "r.json").read_text())["checks"][0]["pictures"]
    assert listed["file"] == picture.name and listed["output"] == "0" and listed["caption"]
    found = colours(picture)
    # run 1's box that run 2 lost (red, solid), run 2's box that run 1 lacks (blue, dashed), and the matched ones
    assert near(found, MISSING) and near(found, EXTRA) and near(found, MATCHED), picture
    # the input image is under the boxes (its own grey ramp), not a blank canvas
    assert sum(1 for c in found if c[0] == c[1] == c[2]) > 50
    page = (pictured / "p.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "Content-Security-Policy" in page
    assert "default-src 'none'; img-src data:; style-src 'unsafe-inline'" in page
    assert page.index("FAIL: 1 check") < page.index("<h2>detect<span") < page.index("data:image/png;base64,")
    assert "2 matched, 1 missing, 1 extra, 1 relabelled" in page
    assert not re.search(r"<script|<link|https?://|src=\"(?!data:)", page)


def test_hostile_names_are_escaped_and_differences_are_drawn_whatever_their_values(pictured):
    spec = planted_spec(pictured, "x", name="hostile.yaml").read_text().replace("planted:x", "pictured:hostile_outputs")
    spec_path = write_spec(pictured, spec, "hostile.yaml")
    pics, page = pictured / "pics", pictured / "page.html"
    r = reprocheck("run", str(spec_path), "--pictures", str(pics), "--html", str(page), "-q")
    assert r.code == 1, r
    names = sorted(p.name for p in pics.iterdir())
    assert names == [
        "001-hostile-big-difference.png",
        "001-hostile-image-difference.png",
        "001-hostile-style_script_alert_x_script_n_etc_x-difference.png",
        "001-hostile-vec-difference.png",
    ], names
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", n) and ".." not in n for n in names)
    assert not (pictured / "etc").exists() and not list(pictured.glob("**/x"))
    assert near(colours(pics / "001-hostile-image-difference.png"), (0x00, 0xE5, 0xFF), 8)  # the NaN, in cyan
    with Image.open(pics / "001-hostile-big-difference.png") as img:  # 2500 x 1800: pooled, not 4.5 Mpx
        assert img.width * img.height < 1600 * 1000
    text = page.read_text()
    assert "<script" not in text and "</style><" not in text
    assert "&lt;/style&gt;&lt;script&gt;alert(" in text


def test_classes_and_masks_are_drawn(pictured):
    cls = planted_spec(pictured, "cls_top1_flip", "compare:\n  outputs:\n    logits: {as: classification, top_k: 3}\n")
    seg = planted_spec(pictured, "seg_one_pixel", "compare:\n  outputs:\n    out: {as: segmentation}\n", name="s.yaml")
    for spec in (cls, seg):  # one at a time: each planted model's run 2 is the second run of the shared counter
        (pictured / ".planted-counter").unlink(missing_ok=True)
        r = reprocheck("run", str(spec), "--pictures", str(pictured / "pics"), "-q")
        assert r.code == 1, r
    names = sorted(p.name for p in (pictured / "pics").iterdir())
    assert names == ["001-s-out-segmentation.png", "001-spec-logits-classes.png"], names
    assert near(colours(pictured / "pics" / names[1]), MISSING) and near(colours(pictured / "pics" / names[1]), EXTRA)
    assert near(colours(pictured / "pics" / names[0]), (255, 0, 0), 4)  # the changed pixel, in red


def test_a_passing_check_draws_nothing_and_the_page_says_pass(pictured):
    spec = planted_spec(pictured, "dets_stable", DETECTION)
    r = reprocheck("run", str(spec), "--pictures", str(pictured / "pics"), "--html", str(pictured / "p.html"), "-q")
    assert r.code == 0, r
    assert list((pictured / "pics").iterdir()) == []
    assert '<p class="verdict pass">PASS: 1 check' in (pictured / "p.html").read_text()


def test_a_failed_variant_is_drawn_against_the_float64_reference(pictured):
    invariance = "invariance:\n  threads: [1]\n  reference: float64\n"
    spec = planted_spec(pictured, "thread_dependent", invariance, shape="[64, 512]")
    r = reprocheck("run", str(spec), "--pictures", str(pictured / "pics"), "-q")
    assert r.code == 1, r
    (picture,) = list((pictured / "pics").iterdir())
    assert picture.name == "001-spec-threads_1-total-reference.png"
    assert len(png_colours(picture)) > 4  # both sides' errors, drawn


@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_a_pictures_folder_that_is_a_symlink_or_a_file_is_refused_before_anything_runs(pictured, kind):
    target = pictured / "pics"
    if kind == "symlink":
        (pictured / "real").mkdir()
        os.symlink(pictured / "real", target)
    else:
        target.write_text("x")
    r = reprocheck("run", str(detection_spec(pictured)), "--pictures", str(target))
    assert r.code == 2, r
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reprocheck: error: --pictures ") and "not a folder" in lines[0]
    assert not (pictured / ".dets-counter").exists()  # nothing ran


def test_diagnose_draws_its_traced_runs_and_writes_its_page(pictured):
    pics, page = pictured / "pics", pictured / "d.html"
    report = pictured / "d.json"
    r = reprocheck(
        "diagnose", str(detection_spec(pictured)), "--pictures", str(pics), "--html", str(page), "--report", str(report)
    )  # fmt: skip
    assert r.code == 1, r
    (picture,) = list(pics.iterdir())
    assert [p["file"] for p in json.loads(report.read_text())["checks"][0]["pictures"]] == [picture.name]
    assert picture.name.startswith("diagnose-detect-") and picture.name.endswith("-0-detection.png")
    assert near(colours(picture), MISSING) and near(colours(picture), EXTRA)
    text = page.read_text()
    assert "NOT reproducible under the check&#x27;s recipe" in text and "data:image/png;base64," in text
