"""The HTML audit report: content, escaping of user text, self-containment, missing suites."""

from __future__ import annotations

import base64
import copy
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from robustcv.cli.main import main
from robustcv.core.errors import InputError
from robustcv.report import html as report_html
from robustcv.report import plots, render_report, write_report
from robustcv.report._results import Estimate, curve_eps_half, eps_half, find_eps, load_results
from robustcv.report._sample import sample_results, write_sample_audit

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "T-shirt & top",
    "$\\alpha$ 'quote'",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "</style><script>alert(2)</script>",
]
HOSTILE_MODEL = 'zoo:x"><script>alert(3)</script>'


def _hostile_results() -> dict[str, Any]:
    res = sample_results(class_names=HOSTILE, model=HOSTILE_MODEL)
    corr = res["suites"]["corruption"]
    corr["table"]["<b onmouseover=alert(4)>fog</b>"] = corr["table"].pop("fog")
    corr["per_corruption_mean"]["<b onmouseover=alert(4)>fog</b>"] = corr[
        "per_corruption_mean"
    ].pop("fog")
    ood = res["suites"]["ood"]["sets"]
    ood["<svg onload=alert(5)>"] = ood.pop("inverted")
    res["skipped"]["ood/odin"] = "<iframe src=javascript:alert(6)>"
    res["config"]["data"] = "folder:/data/<script>alert(7)</script>"
    res["examples"][0]["condition"] = "<script>alert(8)</script>"
    return res


@pytest.fixture(scope="module")
def audit(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = write_sample_audit(tmp_path_factory.mktemp("audit"), class_names=HOSTILE)
    (folder / "results.json").write_text(json.dumps(_hostile_results()), encoding="utf-8")
    out = write_report(folder)
    return folder, out.read_text(encoding="utf-8")


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        for k, v in attrs:
            if k == "id" and v:
                self.ids.add(v)


def _parse(html: str) -> _Collector:
    c = _Collector()
    c.feed(html)
    return c


def test_report_written_next_to_results(audit: tuple[Path, str]) -> None:
    folder, html = audit
    assert (folder / "report.html").is_file()
    assert html.startswith("<!DOCTYPE html>")


def test_report_has_every_section(audit: tuple[Path, str]) -> None:
    _, html = audit
    ids = _parse(html).ids
    for section in ("summary", "warnings", "clean", "corruption", "adversarial", "calibration"):
        assert section in ids
    for section in ("ood", "examples", "config", "skipped"):
        assert section in ids
    for phrase in (
        "Where the model breaks",
        "Worst corruptions",
        "Eps at which accuracy halves",
        "Calibration gap",
        "Weakest OOD case",
        "black-box-beats-white-box",  # the fired sanity check, in the alert box
        "run --strength full",  # its action
        "apgd-ce",  # the ensemble
        "steps=100",  # its budgets
        "N = 300",  # attacked images
        "reliability diagrams",
        "Convention:",
        "FPR@95%TPR",
    ):
        assert phrase in html, phrase
    # every figure is there: confusion, heatmap, curves, histogram, reliability, shift, 3 OOD
    figures = [a for t, a in _parse(html).tags if t == "img" and ("class", "fig") in a]
    assert len(figures) == 9


def test_summary_names_the_worst_cases(audit: tuple[Path, str]) -> None:
    _, html = audit
    res = _hostile_results()
    means = res["suites"]["corruption"]["per_corruption_mean"]
    worst = min(means, key=lambda k: means[k]["value"])
    summary = html[html.index('id="summary"') : html.index('id="clean"')]
    shown = report_html._est(means[worst])
    assert shown is not None and shown["value"] in summary
    aurocs = [
        (m["auroc"]["value"], s, name)
        for s, sres in res["suites"]["ood"]["sets"].items()
        for name, m in sres["methods"].items()
    ]
    value, _, method = min(aurocs)
    assert f"{value:.3f}" in summary and method in summary
    half = eps_half(res, "linf")
    assert half is not None and f"{half:.4g}" in summary


def test_fired_warning_is_prominent(audit: tuple[Path, str]) -> None:
    _, html = audit
    alert = html.index('class="alert"')
    assert alert < html.index('id="clean"')
    assert "1 sanity check fired" in html


def test_hostile_text_is_escaped(audit: tuple[Path, str]) -> None:
    _, html = audit
    assert "<script" not in html.lower()
    assert "<img src=x" not in html and "<iframe" not in html and "<svg" not in html
    assert "<b onmouseover" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    allowed = {
        "html", "head", "meta", "title", "style", "body", "header", "nav", "a", "h1", "h2", "h3",
        "section", "div", "span", "p", "ul", "li", "b", "i", "table", "tr", "th", "td", "img",
        "details", "summary", "pre", "footer", "small",
    }  # fmt: skip
    for tag, attrs in _parse(html).tags:
        assert tag in allowed, tag
        for name, value in attrs:
            assert not name.startswith("on"), (tag, name)
            if name == "src":
                assert value is not None and re.match(r"data:image/(png|jpeg);base64,", value)
            if name == "href":
                assert value is not None and value.startswith("#")


def test_report_is_self_contained(audit: tuple[Path, str]) -> None:
    _, html = audit
    lower = html.lower()
    assert "http://" not in lower and "https://" not in lower and "file:" not in lower
    assert "<link" not in lower and "@import" not in lower and "url(" not in lower
    assert "<script" not in lower
    assert "default-src &#39;none&#39;; img-src data:" in html  # the CSP meta
    assert len(html.encode()) < 2_000_000


def test_embedded_images_decode(audit: tuple[Path, str]) -> None:
    _, html = audit
    uris = re.findall(r'src="data:image/(png|jpeg);base64,([^"]+)"', html)
    assert len(uris) == 9 + 18  # figures + example images
    for _, payload in uris:
        with Image.open(io.BytesIO(base64.b64decode(payload))) as img:
            img.load()
            assert img.size[0] > 10 and img.size[1] > 10


def test_every_estimate_shows_n_and_interval(audit: tuple[Path, str]) -> None:
    _, html = audit
    spans = re.findall(
        r'<span class="est">(.*?)</span></span>|<span class="est">([^<]*)</span>', html
    )
    assert len(spans) > 100
    with_ci = [s for s in spans if s[0]]
    assert all('class="ci"' in s[0] and "N=" in s[0] for s in with_ci)
    # accuracies of the clean suite carry the Clopper-Pearson interval of the results
    acc = _hostile_results()["suites"]["clean"]["accuracy"]
    assert f"[{acc['low']:.3f}, {acc['high']:.3f}]" in html and f"N={acc['n']}" in html


def test_missing_suites_render_as_not_run(tmp_path: Path) -> None:
    folder = write_sample_audit(tmp_path, suites=("clean",))
    html = write_report(folder).read_text(encoding="utf-8")
    for section in ("corruption", "adversarial", "calibration", "ood"):
        body = html[html.index(f'<section id="{section}">') :]
        body = body[: body.index("</section>")]
        assert "not run" in body, section
    assert "not requested (--suites)" in html
    assert "Worst corruptions" not in html and "No sanity check fired" in html


def test_empty_results_render() -> None:
    html = render_report({"suites": {}})
    assert html.count("not run") >= 5 and "no example images" in html


def test_missing_and_outside_examples_are_not_embedded(tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    Image.new("L", (8, 8), 255).save(secret)
    folder = tmp_path / "audit"
    res = sample_results(suites=("clean",))
    res["examples"] = [
        {"kind": "clean", "file": "../secret.png", "label": "a", "prediction": "a"},
        {"kind": "clean", "file": "examples/none.png", "label": "a", "prediction": "b"},
        {"kind": "clean", "file": str(secret), "label": "a", "prediction": "a"},
    ]
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(res))
    html = write_report(folder).read_text()
    assert html.count(">missing</div>") == 3
    assert html.count("data:image/png") == 1  # only the confusion matrix


def test_large_example_images_are_downscaled(tmp_path: Path) -> None:
    res = sample_results(suites=())
    res["examples"] = [{"kind": "clean", "file": "big.png", "label": "x", "prediction": "x"}]
    Image.effect_noise((1000, 800), 60).convert("RGB").save(tmp_path / "big.png")
    html = write_report(res, tmp_path / "r.html").read_text()
    payload = re.search(r'src="data:image/png;base64,([^"]+)"', html)
    assert payload is not None
    with Image.open(io.BytesIO(base64.b64decode(payload.group(1)))) as img:
        assert max(img.size) <= report_html._MAX_EXAMPLE_SIDE


def test_tolerates_partial_and_odd_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """Deleting any one key of any suite, or nulling it, never crashes the report."""
    for name in plots.__all__:
        monkeypatch.setattr(plots, name, lambda *a, **k: "data:image/png;base64,AAAA")
    base = sample_results(seed=3)
    cases = 0
    for suite_name, suite_res in base["suites"].items():
        for key in list(suite_res):
            for mode in ("drop", "null", "empty"):
                res = copy.deepcopy(base)
                target = res["suites"][suite_name]
                if mode == "drop":
                    del target[key]
                else:
                    target[key] = None if mode == "null" else type(target[key])()
                html = render_report(res)
                assert f'<section id="{suite_name}">' in html
                cases += 1
    assert cases > 40


def test_estimate_parse() -> None:
    e = Estimate.parse({"value": 0.5, "ci95": [0.4, 0.6], "n": 50})
    assert e == Estimate(0.5, 0.4, 0.6, 50, None)
    assert Estimate.parse({"value": None}) is None
    assert Estimate.parse(float("nan")) is None
    assert Estimate.parse("abc") is None
    assert Estimate.parse(True) is None
    assert Estimate.parse(3) == Estimate(3.0)


def test_eps_half_interpolation_by_hand() -> None:
    # reference 0.8 -> target 0.4; between (0.1, 0.6) and (0.2, 0.2): 0.1 + 0.1 * 0.2 / 0.4
    assert curve_eps_half([(0.1, 0.6), (0.2, 0.2)], 0.8) == pytest.approx(0.15)
    assert curve_eps_half([(0.0, 0.8), (0.1, 0.4)], 0.8) == pytest.approx(0.1)
    assert curve_eps_half([(0.1, 0.3)], 0.8) == pytest.approx(0.08)  # 0.1 * 0.4 / 0.5 from (0, 0.8)
    assert curve_eps_half([(0.1, 0.7), (0.2, 0.5)], 0.8) is None
    res: dict[str, Any] = {
        "suites": {
            "clean": {"accuracy": {"value": 0.8, "n": 100}},
            "adversarial": {"norms": {"l2": {"eps": [0.5, 1.0], "accuracy": [0.6, 0.2]}}},
        }
    }
    assert eps_half(res, "l2") == pytest.approx(0.75)
    res["suites"]["adversarial"]["norms"]["l2"]["eps_half"] = 0.7  # stored value wins
    assert eps_half(res, "l2") == 0.7
    assert find_eps(res["suites"]["adversarial"]["norms"]["l2"], 1.0 + 1e-9) is not None


def test_load_results_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        load_results(tmp_path / "nope")
    with pytest.raises(InputError, match=r"no results\.json"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text("{broken")
    with pytest.raises(InputError, match="cannot read"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="JSON object"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"schema": "robustcv.audit/9"}))
    with pytest.raises(InputError, match="newer"):
        load_results(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"schema": "other/1"}))
    with pytest.raises(InputError, match="not a robustcv audit"):
        load_results(tmp_path)
    with pytest.raises(InputError, match="out_path"):
        write_report({"suites": {}})


def test_cli_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_sample_audit(tmp_path / "a", suites=("clean",))
    assert main(["report", str(folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert Path(out["report"]) == folder / "report.html" and out["bytes"] > 1000
    assert main(["report", str(folder), "--out", str(tmp_path / "x" / "r.html")]) == 0
    assert (tmp_path / "x" / "r.html").is_file()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_mce_and_ce_are_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in plots.__all__:
        monkeypatch.setattr(plots, name, lambda *a, **k: "data:image/png;base64,AAAA")
    res = sample_results(suites=("corruption",))
    corr = res["suites"]["corruption"]
    corr.update(baseline="zoo:<i>base</i>", mce=85.25, relative_mce=101.5)
    corr["ce"] = {c: 80.0 + i for i, c in enumerate(corr["corruptions"])}
    html = render_report(res)
    assert "mCE 85.25%" in html and "relative mCE 101.5%" in html
    assert "&lt;i&gt;base&lt;/i&gt;" in html and "<th>CE %</th>" in html
    assert '<td class="num">80.0</td>' in html
