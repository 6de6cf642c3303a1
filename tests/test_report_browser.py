"""The report of a real tiny audit (tests/tiny_audit.py) opens in headless Chromium: no console
errors, every image decodes, and the screenshot is not blank. Needs Chromium
(scripts/get-browser.sh): skipped locally without it, FAILS under CI=true (the ``browser`` marker,
see conftest.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat
from tiny_audit import run_tiny_audit

from robustcv.report import write_report

pytestmark = pytest.mark.browser

HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', "class 2", "class 3"]
FIGURES = 9  # confusion, heatmap, curves, histogram, reliability, shift, one per OOD set (3)
_BASE_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
]
# Inserted into a copy of the report only (the report itself has no script and its CSP forbids
# one): records error events (script errors and failed resource loads) and checks that every
# image decoded, then writes the verdict into the DOM that --dump-dom prints.
_HARNESS = """<script>
window.__errors = [];
window.addEventListener("error", function (e) {
  var t = e.target && e.target.tagName ? e.target.tagName + " failed to load" : e.message;
  window.__errors.push(String(t));
}, true);
window.addEventListener("load", function () {
  var imgs = [].slice.call(document.images);
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  var pre = document.createElement("pre");
  pre.id = "rcv-test";
  pre.textContent = JSON.stringify({images: imgs.length, broken: broken.length,
                                    errors: window.__errors});
  document.body.appendChild(pre);
});
</script>"""


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("no Chromium although the browser marker found one")


def _run(page: Path, tmp: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [_chromium(), *_BASE_FLAGS, f"--user-data-dir={profile}", *flags, page.as_uri()]
    return subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"HOME": str(tmp), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        check=False,
    )


def _console_problems(stderr: str) -> list[str]:
    """Console messages (JS errors, CSP violations for blocked loads) and failed loads."""
    marks = (":CONSOLE", "Failed to load resource", "net::ERR_", "Uncaught")
    return [line for line in stderr.splitlines() if any(m in line for m in marks)]


def _screenshot(page: Path, tmp: Path, name: str) -> tuple[Image.Image, list[str]]:
    shot = tmp / name
    proc = _run(
        page,
        tmp,
        "--enable-logging=stderr",
        "--v=0",
        f"--screenshot={shot}",
        "--window-size=1200,2000",
        "--hide-scrollbars",
    )
    assert shot.is_file(), f"Chromium wrote no screenshot (rc={proc.returncode}):\n{proc.stderr}"
    return Image.open(shot).convert("L"), _console_problems(proc.stderr)


def _harness(page: Path, tmp: Path) -> dict[str, object]:
    html = page.read_text(encoding="utf-8")
    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    probe = tmp / f"probe-{page.name}"
    probe.write_text(html.replace("<head>", "<head>" + _HARNESS, 1), encoding="utf-8")
    proc = _run(probe, tmp, "--virtual-time-budget=5000", "--dump-dom")
    m = re.search(r'<pre id="rcv-test">(.*?)</pre>', proc.stdout, re.S)
    assert m, f"the probe did not run (rc={proc.returncode}):\n{proc.stderr[-2000:]}"
    return dict(json.loads(m.group(1).replace("&quot;", '"')))


def _not_blank(img: Image.Image) -> tuple[float, float]:
    stddev = ImageStat.Stat(img).stddev[0]
    hist = img.histogram()
    non_white = 1.0 - sum(hist[245:]) / (img.width * img.height)
    return stddev, non_white


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # module fixtures run before conftest's autouse marker check: repeat it to skip early
    if not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("CI=true but Chromium not installed (run scripts/get-browser.sh)")
        pytest.skip("Chromium not installed (run scripts/get-browser.sh)")
    real = run_tiny_audit(tmp_path_factory.mktemp("browser-audit"), classes=HOSTILE)
    assert real.path is not None
    return write_report(real.path)


def test_report_opens_without_console_errors(report: Path, tmp_path: Path) -> None:
    img, problems = _screenshot(report, tmp_path, "report.png")
    assert problems == [], "\n".join(problems)
    assert img.size == (1200, 2000)
    stddev, non_white = _not_blank(img)
    assert stddev > 15 and non_white > 0.03, (stddev, non_white)


def test_every_image_decodes_in_the_browser(report: Path, tmp_path: Path) -> None:
    verdict = _harness(report, tmp_path)
    n_img = report.read_text(encoding="utf-8").count("<img ")
    assert verdict == {"images": n_img, "broken": 0, "errors": []}
    examples = json.loads((report.parent / "results.json").read_text(encoding="utf-8"))["examples"]
    assert len(examples) == 6  # clean, corrupted and adversarial, two each
    assert n_img == FIGURES + len(examples)


def test_the_checks_can_fail(tmp_path: Path) -> None:
    """Negative controls: a script error, a blocked external load, a broken image, a blank page."""
    csp = (
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:">'
    )
    bad = tmp_path / "bad.html"
    bad.write_text(
        f"<!DOCTYPE html><html><head>{csp}</head><body><p>x</p>"
        '<img src="https://example.invalid/x.png"></body></html>',
        encoding="utf-8",
    )
    _, problems = _screenshot(bad, tmp_path, "bad.png")
    assert any("example.invalid" in p for p in problems), problems
    js = tmp_path / "js.html"
    js.write_text("<html><head></head><body><script>nosuchfn();</script></body></html>")
    _, problems = _screenshot(js, tmp_path, "js.png")
    assert any("nosuchfn" in p for p in problems), problems
    broken = tmp_path / "broken.html"
    broken.write_text(
        '<html><head></head><body><img src="data:image/png;base64,AAAA"></body></html>'
    )
    verdict = _harness(broken, tmp_path)
    assert verdict["images"] == 1 and verdict["broken"] == 1 and verdict["errors"]
    blank = tmp_path / "blank.html"
    blank.write_text("<html><head></head><body></body></html>")
    img, _ = _screenshot(blank, tmp_path, "blank.png")
    stddev, non_white = _not_blank(img)
    assert stddev < 1 and non_white < 0.001
