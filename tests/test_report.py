"""The HTML audit report on the output of a real tiny audit (tests/tiny_audit.py): content,
escaping of user text, self-containment, missing suites, odd results."""

from __future__ import annotations

import base64
import copy
import io
import json
import math
import re
import shutil
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from markupsafe import escape
from PIL import Image
from tiny_audit import TINY, results_of, run_tiny_audit

from robustcv.audit import plots
from robustcv.audit.schema import load_results
from robustcv.audit.suite import est_view, fmt
from robustcv.audit.suites import examples as examples_suite
from robustcv.audit.suites.adversarial import eps_half, find_eps
from robustcv.cli.main import main
from robustcv.core.errors import InputError
from robustcv.core.stats import Estimate
from robustcv.report import render_report, write_report
from robustcv.report.compare import headline_metrics

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "T-shirt & top",
    "$\\alpha$ 'quote'",
]  # the tiny audit's data has four classes (four photos)
HOSTILE_MODEL = 'zoo:x"><script>alert(3)</script>'
HOSTILE_CORRUPTION = "<b onmouseover=alert(4)>fog</b>"
HOSTILE_OOD_SET = "<svg onload=alert(5)>"
FIGURES = 9  # confusion, heatmap, curves, histogram, reliability, shift, one per OOD set (3)


def _write_results(folder: Path, res: dict[str, Any]) -> None:
    (folder / "results.json").write_text(json.dumps(res), encoding="utf-8")


def _hostile_text(res: dict[str, Any]) -> dict[str, Any]:
    """Put hostile text where the audit copies names it does not control (on a copy)."""
    res = copy.deepcopy(res)
    corr = res["suites"]["corruption"]
    old = corr["corruptions"][0]
    for key in ("table", "per_corruption_mean"):
        corr[key] = {HOSTILE_CORRUPTION if k == old else k: v for k, v in corr[key].items()}
    for key in ("corruptions", "worst"):
        corr[key] = [HOSTILE_CORRUPTION if k == old else k for k in corr[key]]
    sets = res["suites"]["ood"]["sets"]
    res["suites"]["ood"]["sets"] = {
        HOSTILE_OOD_SET if k == "inverted" else k: v for k, v in sets.items()
    }
    res["skipped"]["ood/odin"] = "<iframe src=javascript:alert(6)>"
    res["config"]["data"] = "folder:/data/<script>alert(7)</script>"
    res["examples"][0]["condition"] = "<script>alert(8)</script>"
    res["notes"] = ["</style><script>alert(2)</script>"]
    return res


@dataclass
class Audit:
    folder: Path
    results: dict[str, Any]
    html: str


@pytest.fixture(scope="module")
def audit(tmp_path_factory: pytest.TempPathFactory) -> Audit:
    """A real tiny audit with hostile class and model names, plus hostile text injected."""
    real = run_tiny_audit(
        tmp_path_factory.mktemp("hostile"), classes=HOSTILE, model_name=HOSTILE_MODEL
    )
    assert real.path is not None
    folder = real.path
    res = _hostile_text(results_of(folder))
    _write_results(folder, res)
    out = write_report(folder)
    return Audit(folder, res, out.read_text(encoding="utf-8"))


@pytest.fixture()
def fake_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace every plot by a tiny fake image (the tests of structure do not need them)."""
    for name in plots.__all__:
        monkeypatch.setattr(plots, name, lambda *a, **k: "data:image/png;base64,AAAA")


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


def _section(html: str, name: str) -> str:
    body = html[html.index(f'<section id="{name}">') :]
    return body[: body.index("</section>")]


def _fired(res: dict[str, Any]) -> list[dict[str, Any]]:
    adv = res["suites"].get("adversarial") or {}
    found = [f for f in adv.get("sanity") or [] if f.get("fired")]
    for nr in (adv.get("norms") or {}).values():
        found += [f for f in nr.get("sanity") or [] if f.get("fired")]
    return found


def test_the_hostile_names_reached_the_results(audit: Audit) -> None:
    # the hostile class and model names went through the real audit, not an edit afterwards
    assert audit.results["data"]["class_names"] == HOSTILE
    assert audit.results["model"]["spec"] == HOSTILE_MODEL
    assert list(audit.results["suites"]["clean"]["per_class"]) == HOSTILE
    assert {ex["label"] for ex in audit.results["examples"]} <= set(HOSTILE)


def test_report_written_next_to_results(audit: Audit) -> None:
    assert (audit.folder / "report.html").is_file()
    assert audit.html.startswith("<!DOCTYPE html>")


def test_report_has_every_section(audit: Audit) -> None:
    html = audit.html
    ids = _parse(html).ids
    for section in ("summary", "warnings", "clean", "corruption", "adversarial", "calibration"):
        assert section in ids
    for section in ("ood", "examples", "config", "skipped"):
        assert section in ids
    adv = audit.results["suites"]["adversarial"]
    budgets = adv["norms"]["linf"]["budgets"]
    for phrase in (
        "Where the model breaks",
        "Worst corruptions",
        "Eps at which accuracy halves",
        "Calibration gap",
        "Weakest OOD case",
        "black-box-beats-white-box",  # a sanity check, in the per-norm table
        "apgd-ce",  # the ensemble
        f"steps={TINY['adversarial']['apgd_steps']}",  # its budgets
        f"n_targets={budgets['apgd-t']['n_targets']}",
        f"N = {adv['n']} images attacked",
        f"fmn(steps={TINY['adversarial']['pilot_steps']}) on N = {adv['n_pilot']}",  # the pilot
        "reliability diagrams",
        "Calibration under shift",
        "Convention:",
        "FPR@95%TPR",
    ):
        assert phrase in html, phrase
    for section in ("clean", "corruption", "adversarial", "calibration", "ood"):
        assert "not run" not in _section(html, section), section
    # every figure is there: confusion, heatmap, curves, histogram, reliability, shift, 3 OOD
    figures = [a for t, a in _parse(html).tags if t == "img" and ("class", "fig") in a]
    assert len(figures) == FIGURES == 6 + len(audit.results["suites"]["ood"]["sets"])


def test_summary_names_the_worst_cases(audit: Audit) -> None:
    res, html = audit.results, audit.html
    summary = html[html.index('id="summary"') : html.index('<section id="clean">')]
    clean = est_view(res["suites"]["clean"]["accuracy"])
    assert clean is not None and f'{clean["value"]}<span class="ci">{clean["ci"]}' in summary
    # worst corruptions, worst first, and the worst single cell
    corr = res["suites"]["corruption"]
    means = corr["per_corruption_mean"]
    ranked = sorted(means, key=lambda k: means[k]["value"])
    positions = [summary.index(f"<tr><td>{escape(name)}") for name in ranked[:3]]
    assert positions == sorted(positions)
    for name in ranked[:3]:
        shown = est_view(means[name])
        assert shown is not None and shown["ci"] in summary
    cells = [
        (est["value"], name, sev)
        for name, row in corr["table"].items()
        for sev, est in sorted(row.items(), key=lambda kv: int(kv[0]))
    ]
    worst = min(cells, key=lambda c: c[0])
    assert f"worst single cell: {escape(worst[1])} at severity {worst[2]}" in summary
    # the weakest OOD case
    aurocs = [
        (m["auroc"]["value"], s, name)
        for s, sres in res["suites"]["ood"]["sets"].items()
        for name, m in sres["methods"].items()
    ]
    value, set_name, method = min(aurocs)
    assert f"{escape(set_name)} with {method}" in summary and f"{value:.3f}" in summary
    # eps at half accuracy: the stored value is the interpolation of the stored curve
    for nr in res["suites"]["adversarial"]["norms"].values():
        half = eps_half(
            nr["eps"], [a["value"] for a in nr["accuracy"]], nr["clean_accuracy"]["value"]
        )
        if half is None:
            assert nr["eps_half"] is None and "not reached" in summary
        else:
            assert half == pytest.approx(nr["eps_half"]) and f"{half:.4g}" in summary
    # calibration: ECE before and after
    cal = res["suites"]["calibration"]
    for when in ("before", "after"):
        shown = est_view(cal[when]["ece"])
        assert shown is not None and f'{shown["value"]}<span class="ci">{shown["ci"]}' in summary
    assert f"T = {fmt(cal['temperature'], 3)}" in summary


def test_quiet_sanity_checks_and_a_fired_one(audit: Audit, fake_plots: None) -> None:
    # the real audit: what its sanity checks found is what the summary says
    fired = _fired(audit.results)
    if fired:
        assert f"{len(fired)} sanity check" in audit.html
    else:
        assert (
            "No sanity check fired (gradient masking" in audit.html
            and 'class="alert"' not in audit.html
        )
    # a fired check (the tiny audit fires none) is shown above everything, with its action
    res = copy.deepcopy(audit.results)
    linf = res["suites"]["adversarial"]["norms"]["linf"]
    check = next(f for f in linf["sanity"] if f["check"] == "black-box-beats-white-box")
    check.update(
        fired=True,
        message="noise broke 3 samples the ensemble missed",
        action="run --strength full and inspect the gradients",
    )
    html = render_report(res, folder=audit.folder)
    alert = html.index('class="alert"')
    assert alert < html.index('<div class="cards">') < html.index('<section id="clean">')
    box = html[alert : html.index("</div>", alert)]
    assert f"{len(fired) + 1} sanity check{'s' if fired else ''} fired" in box
    assert "black-box-beats-white-box" in box and "(adversarial linf)" in box
    assert "noise broke 3 samples" in box
    assert "What to do: run --strength full and inspect the gradients" in box
    n_fired = sum(bool(f["fired"]) for f in linf["sanity"])
    per_norm = f"sanity checks ({n_fired} of {len(linf['sanity'])} fired)"
    assert per_norm in _section(html, "adversarial")


def test_hostile_text_is_escaped(audit: Audit) -> None:
    html = audit.html
    assert "<script" not in html.lower()
    assert "<img src=x" not in html and "<iframe" not in html and "<svg" not in html
    assert "<b onmouseover" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "T-shirt &amp; top" in html and "$\\alpha$ &#39;quote&#39;" in html
    for text in (
        HOSTILE_MODEL,
        HOSTILE_CORRUPTION,
        HOSTILE_OOD_SET,
        "<iframe src=javascript:alert(6)>",
        "<script>alert(8)</script>",
        "</style><script>alert(2)</script>",
    ):
        assert str(escape(text)) in html, text  # shown, escaped
    assert "folder:/data/&lt;script&gt;alert(7)&lt;/script&gt;" in html  # in the config JSON
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


def test_report_is_self_contained(audit: Audit) -> None:
    html = audit.html
    lower = html.lower()
    assert "http://" not in lower and "https://" not in lower and "file:" not in lower
    assert "<link" not in lower and "@import" not in lower and "url(" not in lower
    assert "<script" not in lower
    assert "default-src &#39;none&#39;; img-src data:" in html  # the CSP meta
    assert len(html.encode()) < 2_000_000


def test_embedded_images_decode(audit: Audit) -> None:
    uris = re.findall(r'src="data:image/(png|jpeg);base64,([^"]+)"', audit.html)
    n_examples = len(audit.results["examples"])
    assert n_examples == 3 * TINY["examples"]["n"]  # clean, corrupted, adversarial
    assert len(uris) == FIGURES + n_examples
    for _, payload in uris:
        with Image.open(io.BytesIO(base64.b64decode(payload))) as img:
            img.load()
            assert img.size[0] > 10 and img.size[1] > 10
    # each example file of the audit is embedded as it was written
    for ex in audit.results["examples"]:
        data = base64.b64encode((audit.folder / ex["file"]).read_bytes()).decode("ascii")
        assert f'src="data:image/png;base64,{data}"' in audit.html, ex["file"]


def test_every_estimate_shows_n_and_interval(audit: Audit) -> None:
    html = audit.html
    spans = re.findall(
        r'<span class="est">(.*?)</span></span>|<span class="est">([^<]*)</span>', html
    )
    assert len(spans) > 50
    with_ci = [s for s in spans if s[0]]
    assert len(with_ci) > 50
    assert all('class="ci"' in s[0] and "N=" in s[0] for s in with_ci)
    # accuracies of the clean suite carry the Clopper-Pearson interval of the results
    acc = audit.results["suites"]["clean"]["accuracy"]
    assert f"[{acc['low']:.3f}, {acc['high']:.3f}]" in html and f"N={acc['n']}" in html
    # so does every robust-accuracy point
    for norm, nr in audit.results["suites"]["adversarial"]["norms"].items():
        section = _section(html, "adversarial")
        section = section[section.index(f"<h3>{norm}</h3>") :]
        for e, a in zip(nr["eps"], nr["accuracy"], strict=True):
            shown = est_view(a)
            assert shown is not None
            row = (
                f'<tr><td class="num">{e:g}</td><td><span class="est">{shown["value"]}'
                f'<span class="ci">{shown["ci"]}</span><span class="n">N={a["n"]}</span>'
            )
            assert row in section, (norm, e)
        # the standard points (shared by every audit of the data) are marked in the eps table
        table = section[: section.index("</table>")]
        assert nr["standard_eps"]
        assert table.count("standard point</span>") == len(nr["standard_eps"])


def test_missing_suites_render_as_not_run(tmp_path: Path) -> None:
    real = run_tiny_audit(tmp_path, suites=("clean",))
    assert real.path is not None
    assert sorted(results_of(real.path)["suites"]) == ["clean"]
    html = write_report(real.path).read_text(encoding="utf-8")
    assert "not run" not in _section(html, "clean")
    from robustcv.audit.registry import selectable_suites

    others = [name for name in selectable_suites() if name != "clean"]
    assert {"corruption", "adversarial", "calibration", "ood"} <= set(others)
    for section in others:
        assert "not run" in _section(html, section), section
    assert html.count("not requested (--suites)") == len(others)
    assert "Worst corruptions" not in html and "Calibration gap" not in html
    assert "Eps at which accuracy halves" not in html and "Weakest OOD case" not in html
    assert "Clean accuracy</h3>" in html and "No sanity check fired" in html
    # no adversarial suite: only clean and corrupted example images
    examples = _section(html, "examples")
    assert "<h3>clean</h3>" in examples and "<h3>corrupted</h3>" in examples
    assert "<h3>adversarial</h3>" not in examples


def test_empty_results_render() -> None:
    html = render_report({"suites": {}})
    assert html.count("not run") >= 5 and "no example images" in html


def test_missing_and_outside_examples_are_not_embedded(tiny_audit: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.png"
    Image.new("L", (8, 8), 255).save(secret)
    folder = tmp_path / "audit"
    shutil.copytree(tiny_audit, folder)
    res = results_of(folder)
    res["suites"] = {"clean": res["suites"]["clean"]}
    real_file = res["examples"][0]["file"]
    assert (folder / real_file).is_file()
    res["examples"] = [
        {"kind": "clean", "file": "../secret.png", "label": "a", "prediction": "a"},
        {"kind": "clean", "file": "examples/none.png", "label": "a", "prediction": "b"},
        {"kind": "clean", "file": str(secret), "label": "a", "prediction": "a"},
        {"kind": "clean", "file": real_file, "label": "a", "prediction": "a"},
    ]
    _write_results(folder, res)
    html = write_report(folder).read_text()
    assert html.count(">missing</div>") == 3
    assert html.count("data:image/png") == 2  # the confusion matrix and the real example
    assert base64.b64encode(secret.read_bytes()).decode("ascii") not in html


def test_large_example_images_are_downscaled(tiny_audit: Path, tmp_path: Path) -> None:
    res = results_of(tiny_audit)
    res["suites"] = {}
    res["examples"] = [{"kind": "clean", "file": "big.png", "label": "x", "prediction": "x"}]
    Image.effect_noise((1000, 800), 60).convert("RGB").save(tmp_path / "big.png")
    html = write_report(res, tmp_path / "r.html").read_text()
    payload = re.search(r'src="data:image/png;base64,([^"]+)"', html)
    assert payload is not None
    with Image.open(io.BytesIO(base64.b64decode(payload.group(1)))) as img:
        assert max(img.size) <= examples_suite._MAX_EXAMPLE_SIDE
        assert max(img.size) == examples_suite._MAX_EXAMPLE_SIDE  # scaled down, not cropped


def test_tolerates_partial_and_odd_results(tiny_audit: Path, fake_plots: None) -> None:
    """Deleting any one key of any suite (or of a norm's results), or nulling or emptying it,
    never crashes the report."""
    base = results_of(tiny_audit)
    assert sorted(base["suites"]) == ["adversarial", "calibration", "clean", "corruption", "ood"]
    targets: list[tuple[str, ...]] = [(name,) for name in base["suites"]]
    targets += [("adversarial", "norms", norm) for norm in base["suites"]["adversarial"]["norms"]]
    targets += [("calibration", when) for when in ("before", "after")]
    cases = 0
    for path in targets:
        keys = list(_dig(base["suites"], path))
        for key in keys:
            for mode in ("drop", "null", "empty"):
                res = copy.deepcopy(base)
                target = _dig(res["suites"], path)
                if mode == "drop":
                    del target[key]
                else:
                    target[key] = None if mode == "null" else type(target[key])()
                html = render_report(res)
                assert f'<section id="{path[0]}">' in html, (path, key, mode)
                cases += 1
    assert cases > 200
    for examples in (None, [], [None, 3, "x", {}], [{"kind": None, "file": 5}]):
        res = copy.deepcopy(base)
        res["examples"] = examples
        assert '<section id="examples">' in render_report(res)


def test_malformed_plot_data_is_a_user_error_or_drawn_without_it(
    tiny_audit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hand-edited histogram, ROC and reliability values (real plots): a clean InputError
    naming the section when a value has the wrong type, a drawn report when lengths disagree;
    never a crash (exit 3)."""
    base = results_of(tiny_audit)
    ood_set = next(iter(base["suites"]["ood"]["sets"].values()))
    method = next(iter(ood_set["methods"]))

    def ood_method(res: dict[str, Any]) -> dict[str, Any]:
        ood = res["suites"]["ood"]["sets"]
        return next(iter(ood.values()))["methods"][method]  # type: ignore[no-any-return]

    def before(res: dict[str, Any]) -> dict[str, Any]:
        return res["suites"]["calibration"]["before"]  # type: ignore[no-any-return]

    bad_types = [
        (before, "reliability", {"edges": "abc", "confidence": [], "accuracy": [], "count": []}),
        (before, "reliability", {"edges": [0, 1], "confidence": ["x"], "accuracy": [1],
                                 "count": [1]}),
        (ood_method, "roc", {"fpr": [[0, 1]], "tpr": [[0, 1]]}),
        (ood_method, "hist", {"edges": [0, 0.5, 1], "in": ["a", "b"], "out": [1, 2]}),
        (ood_method, "roc", "not a curve"),
    ]  # fmt: skip
    refused = 0
    for where, key, value in bad_types:
        res = copy.deepcopy(base)
        where(res)[key] = value
        try:  # drawn without the bad values, or refused naming them; nothing else
            assert "<section" in render_report(res)
        except InputError as err:
            assert "is malformed" in str(err) and key in str(err), err
            refused += 1
    assert refused >= 2  # values the plots cannot draw (they raised TypeError, exit 3, before)
    odd_lengths = [
        (before, "reliability", {"edges": [0, 0.5, 1], "confidence": [0.2], "accuracy": [0.1, 0.9],
                                 "count": [3]}),
        (ood_method, "roc", {"fpr": [0, 0.5, 1], "tpr": [0, 1]}),
        (ood_method, "hist", {"edges": [0, 1], "in": [1, 2, 3], "out": []}),
    ]  # fmt: skip
    for where, key, value in odd_lengths:
        res = copy.deepcopy(base)
        where(res)[key] = value
        assert '<section id="calibration">' in render_report(res)
    # and through the CLI: exit 2 with one line, no traceback
    folder = tmp_path / "edited"
    shutil.copytree(tiny_audit, folder)
    res = copy.deepcopy(base)
    rel = {"edges": [0, 1], "confidence": ["x"], "accuracy": [1], "count": [1]}
    before(res)["reliability"] = rel
    (folder / "results.json").write_text(json.dumps(res))
    assert main(["report", str(folder), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "suites.calibration" in err and "Traceback" not in err


def _dig(tree: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path:
        tree = tree[key]
    return tree


def test_estimate_parse() -> None:
    e = Estimate.parse({"value": 0.5, "ci95": [0.4, 0.6], "n": 50})
    assert e is not None and (e.value, e.low, e.high, e.n, e.method) == (0.5, 0.4, 0.6, 50, "")
    assert e.has_interval and e.text() == "0.500 [0.400, 0.600] N=50"
    half = Estimate.parse({"value": 0.5, "low": 0.4, "high": None})
    assert half is not None and math.isnan(half.high) and not half.has_interval
    assert half.interval_text() == "" and half.text() == "0.500"
    assert Estimate.parse({"value": None}) is None
    assert Estimate.parse(float("nan")) is None
    assert Estimate.parse("abc") is None
    assert Estimate.parse(True) is None
    bare = Estimate.parse(3)
    assert bare is not None and bare.value == 3.0 and bare.n is None
    assert math.isnan(bare.low) and math.isnan(bare.high) and not bare.has_interval


def test_eps_half_interpolation_by_hand(fake_plots: None) -> None:
    # reference 0.8 -> target 0.4; between (0.1, 0.6) and (0.2, 0.2): 0.1 + 0.1 * 0.2 / 0.4
    assert eps_half([0.1, 0.2], [0.6, 0.2], 0.8) == pytest.approx(0.15)
    assert eps_half([0.0, 0.1], [0.8, 0.4], 0.8) == pytest.approx(0.1)
    assert eps_half([0.1], [0.3], 0.8) == pytest.approx(0.08)  # 0.1 * 0.4 / 0.5 from (0, 0.8)
    assert eps_half([0.1, 0.2], [0.7, 0.5], 0.8) is None  # never falls to half on the grid
    assert eps_half([0.2, 0.1], [0.2, 0.6], 0.8) == pytest.approx(0.15)  # order does not matter
    res: dict[str, Any] = {
        "suites": {
            "clean": {"accuracy": {"value": 0.8, "n": 100}},
            "adversarial": {"norms": {"l2": {"eps": [0.5, 1.0], "accuracy": [0.6, 0.2]}}},
        }
    }

    def shown_half() -> float:
        metrics = {m.key: m.estimate.value for m in headline_metrics(res)}
        return metrics["adversarial/l2/eps_half"]

    # no stored value (old results): interpolated against the clean suite's accuracy
    assert shown_half() == pytest.approx(0.75)
    card = render_report(res)
    assert '<td class="big">0.75</td>' in card[: card.index('<section id="clean">')]
    res["suites"]["adversarial"]["norms"]["l2"]["eps_half"] = 0.7  # stored value wins
    assert shown_half() == 0.7
    card = render_report(res)
    assert '<td class="big">0.7</td>' in card[: card.index('<section id="clean">')]
    nr = res["suites"]["adversarial"]["norms"]["l2"]
    found = find_eps(nr, 1.0 + 1e-9)
    assert found is not None and found.value == 0.2
    assert find_eps(nr, 0.75) is None


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


def test_cli_report(tiny_audit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "a"
    shutil.copytree(tiny_audit, folder)
    assert main(["report", str(folder), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert Path(out["report"]) == folder / "report.html" and out["bytes"] > 1000
    assert out["bytes"] == (folder / "report.html").stat().st_size
    assert main(["report", str(folder), "--out", str(tmp_path / "x" / "r.html")]) == 0
    assert (tmp_path / "x" / "r.html").is_file()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_mce_and_ce_are_shown(tiny_audit: Path, tmp_path: Path, fake_plots: None) -> None:
    """A real audit with the tiny audit (under a hostile model name) as its mCE baseline."""
    base = tmp_path / "baseline"
    shutil.copytree(tiny_audit, base)
    res = results_of(base)
    res["model"]["spec"] = "zoo:<i>base</i>"
    _write_results(base, res)
    config = {"corruption": {**TINY["corruption"], "baseline": str(base)}}
    real = run_tiny_audit(tmp_path / "b", seed=1, suites=("corruption",), config=config)
    assert real.path is not None
    res = results_of(real.path)
    corr = res["suites"]["corruption"]
    assert corr["mce"] is not None and corr["ce"]
    html = write_report(real.path).read_text(encoding="utf-8")
    section = _section(html, "corruption")
    assert f"mCE {fmt(corr['mce'])}%" in section
    assert "audit of zoo:&lt;i&gt;base&lt;/i&gt;" in section and "<i>base" not in html
    assert "<th>CE %</th>" in section
    for name, ce in corr["ce"].items():
        assert f"<tr><td>{name}</td>" in section
        assert f'<td class="num">{ce:.1f}</td>' in section, name
    # the tiny baseline is more accurate on corrupted images than on clean ones, so the
    # relative mCE is undefined: the report says why instead of showing a number
    assert corr["relative_mce"] is None and "(relative mCE" not in section
    assert "no relative mCE: relative_ce: the baseline&#39;s error" in section
    corr["relative_mce"] = 101.5
    section = _section(render_report(res), "corruption")
    assert f"mCE {fmt(corr['mce'])}% (relative mCE 101.5%)" in section
