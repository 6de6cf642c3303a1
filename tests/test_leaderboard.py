"""`robustcv leaderboard`: the table from two real tiny audits, the "best" rule and mCE on
hand-made numbers, the rendered files, the suite hook contract, a suite registered at test time,
the cards, and the command line (bad input exits 2 before any work)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import math
import re
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_audit import TINY, photos_npz, results_of, run_tiny_audit, tiny_model, tiny_net
from torch import nn

from robustcv.audit.registry import SUITES, ordered_suites, register_suite
from robustcv.audit.suite import Metric, Suite, section_of
from robustcv.audit.suites.adversarial import curve_estimates
from robustcv.cli.main import main
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.stats import Estimate
from robustcv.leaderboard import (
    BEST_RULE,
    DOCS_BEGIN,
    DOCS_END,
    Leaderboard,
    best_row,
    build_table,
    card_mismatches,
    card_numbers,
    headline_robust_accuracy,
    leaderboard,
    load_leaderboard,
    render_html,
    render_markdown,
    update_docs,
    write_leaderboard,
)
from robustcv.leaderboard.render import SORT_SCRIPT
from robustcv.models.zoo import ZOO, zoo_card

ROOT = Path(__file__).resolve().parents[1]


def _est(value: float, low: float | None, high: float | None, n: int = 1000) -> dict[str, Any]:
    return {"value": value, "low": low, "high": high, "n": n}


def _res(spec: str = "m", **suites: Any) -> dict[str, Any]:
    return {"schema": "robustcv.audit/1", "model": {"spec": spec}, "suites": suites}


def _headline(value: float, low: float, high: float, n: int = 1000) -> dict[str, Any]:
    return {
        "norm": "linf",
        "eps": 0.1,
        "attacks": "default",
        "complete": True,
        "robust_accuracy": _est(value, low, high, n),
    }


# ------------------------------------------------------------------ two real tiny audits


@pytest.fixture(scope="module")
def two_audits(tiny_audit: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The session's tiny audit (seed 0) and a second tiny model (seed 2)."""
    other = run_tiny_audit(tmp_path_factory.mktemp("lb-b"), seed=2)
    assert other.path is not None
    return [tiny_audit, other.path]


def test_table_from_two_tiny_audits(two_audits: list[Path], tmp_path: Path) -> None:
    ra, rb = (results_of(p) for p in two_audits)
    heads = [_headline(0.30, 0.27, 0.33), _headline(0.10, 0.08, 0.12)]
    board = build_table([("tiny-a", ra, heads[0]), ("tiny-b", rb, heads[1])])
    keys = [c.key for c in board.columns]
    assert keys[0] == "headline/linf/acc@0.1"
    for key in (
        "clean/accuracy",
        "corruption/mean_accuracy",
        "corruption/mce_vs_baseline",
        "calibration/ece_before",
        "calibration/ece_after",
        "ood/energy/auroc",
    ):
        assert key in keys, key
    assert len(keys) == len(set(keys))
    # suite order: every suite's columns come after the previous suite's
    order = {s.name: i for i, s in enumerate(ordered_suites())}
    ranks = [order[c.source] for c in board.columns if c.source in order]
    assert ranks == sorted(ranks)
    a, b = board.rows
    # cells are the audits' own estimates
    for row, res in ((a, ra), (b, rb)):
        acc = res["suites"]["clean"]["accuracy"]
        cell = row.cells["clean/accuracy"]
        assert (cell.value, cell.low, cell.high, cell.n) == (
            acc["value"],
            acc["low"],
            acc["high"],
            acc["n"],
        )
        assert row.cells["calibration/ece_after"].value == pytest.approx(
            res["suites"]["calibration"]["after"]["ece"]["value"]
        )
        adv = res["suites"]["adversarial"]["norms"]
        shared = 0
        for c in board.columns:
            if c.key.startswith("adversarial/") and c.key in row.cells:
                norm, point = c.key.split("/")[1], c.key.split("@")[1]
                curve = {f"{e:g}": a.value for e, a in curve_estimates(adv[norm])}
                assert row.cells[c.key].value == curve[point], c.key
                shared += 1
        # the standard points every audit of the same data records are columns
        standard = [e for nr in adv.values() for e in nr.get("standard_eps") or []]
        assert shared >= len(standard)
        energy = [
            s["methods"]["energy"]["auroc"]["value"]
            for s in res["suites"]["ood"]["sets"].values()
            if s.get("derived")
        ]
        assert row.cells["ood/energy/auroc"].value == pytest.approx(sum(energy) / len(energy))
    # no fmnist-cnn row: the first row is the baseline, with an mCE of exactly 100
    assert board.baseline == "tiny-a" and "first row" in board.baseline_reason
    assert a.cells["corruption/mce_vs_baseline"].value == 100.0
    assert any("baseline" in n and "tiny-a" in n for n in board.notes)
    # the headline robust accuracies are apart: best; other columns follow the rule
    assert board.column("headline/linf/acc@0.1").best == "tiny-a"
    for col in board.columns:
        cells = {r.name: r.cells[col.key].estimate for r in board.rows if col.key in r.cells}
        assert col.best == best_row(cells, col.higher_is_better)
        for r in board.rows:
            if col.key in r.cells:
                assert r.cells[col.key].best == (col.best == r.name)
    # it renders
    paths = write_leaderboard(board, tmp_path / "lb")
    md = paths["md"].read_text()
    assert "| tiny-a |" in md and "**0.300 [0.270, 0.330]**" in md
    assert load_leaderboard(paths["json"]).to_dict() == board.to_dict()
    assert '<table id="leaderboard">' in paths["html"].read_text()


# ------------------------------------------------------------------ the "best" rule


@pytest.mark.parametrize(
    ("cells", "higher", "want"),
    [
        # apart: the best row is outside the other's interval
        ({"a": (0.90, 0.88, 0.92), "b": (0.80, 0.78, 0.82)}, True, "a"),
        ({"a": (0.90, 0.88, 0.92), "b": (0.80, 0.78, 0.82)}, False, "b"),
        # overlapping intervals: within the noise, nothing marked
        ({"a": (0.90, 0.85, 0.95), "b": (0.88, 0.83, 0.93)}, True, None),
        # touching intervals count as overlapping
        ({"a": (0.90, 0.85, 0.95), "b": (0.80, 0.75, 0.85)}, True, None),
        # the best overlaps the third row (not the second): nothing marked
        (
            {"a": (0.90, 0.88, 0.92), "b": (0.50, 0.48, 0.52), "c": (0.87, 0.84, 0.89)},
            True,
            None,
        ),
        # a row without an interval: not judged
        ({"a": (0.90, 0.88, 0.92), "b": (0.50, None, None)}, True, None),
        # a tie
        ({"a": (0.90, 0.89, 0.91), "b": (0.90, 0.89, 0.91)}, True, None),
        # no direction
        ({"a": (0.90, 0.88, 0.92), "b": (0.80, 0.78, 0.82)}, None, None),
        # one row
        ({"a": (0.90, 0.88, 0.92)}, True, None),
    ],
)
def test_best_only_outside_the_noise(
    cells: dict[str, tuple[float, float | None, float | None]],
    higher: bool | None,
    want: str | None,
) -> None:
    ests = {k: Estimate.parse(_est(*v)) for k, v in cells.items()}
    assert best_row({k: e for k, e in ests.items() if e is not None}, higher) == want


def test_best_marked_in_table_and_outputs() -> None:
    rows = [
        # clean accuracy apart (a best), ECE after overlapping (nothing), ECE before apart and
        # lower is better (b best)
        (
            "a",
            _res(
                clean={"accuracy": _est(0.92, 0.90, 0.94)},
                calibration={
                    "before": {"ece": _est(0.10, 0.08, 0.12)},
                    "after": {"ece": _est(0.030, 0.020, 0.040)},
                },
            ),
            None,
        ),
        (
            "b",
            _res(
                clean={"accuracy": _est(0.80, 0.77, 0.83)},
                calibration={
                    "before": {"ece": _est(0.05, 0.04, 0.06)},
                    "after": {"ece": _est(0.025, 0.015, 0.035)},
                },
            ),
            None,
        ),
    ]
    board = build_table(rows)
    assert board.column("clean/accuracy").best == "a"
    assert board.column("calibration/ece_before").best == "b"
    assert board.column("calibration/ece_after").best is None
    assert board.rule == BEST_RULE and "overlaps no other row" in BEST_RULE
    md = render_markdown(board)
    assert md.count("**") == 4  # two bold cells
    assert "**0.920 [0.900, 0.940]**" in md and "**0.050 [0.040, 0.060]**" in md
    assert "0.030 [0.020, 0.040]" in md and "**0.030" not in md
    html = render_html(board)
    assert html.count('class="best"') == 2


# ------------------------------------------------------------------ mCE against a baseline


def _corr(errors: dict[str, dict[int, float]], n: int = 200) -> dict[str, Any]:
    table = {
        c: {str(s): _est(1 - e, None, None, n) for s, e in row.items()} for c, row in errors.items()
    }
    return {"n": n, "table": table}


def test_mce_against_the_baseline_by_hand() -> None:
    base = {"fog": {1: 0.2, 2: 0.4}, "snow": {1: 0.5, 2: 0.5}}
    better = {"fog": {1: 0.1, 2: 0.3}, "snow": {1: 0.25, 2: 0.5}}
    worse = {"fog": {1: 0.3, 2: 0.5}, "snow": {1: 0.6, 2: 0.7}}
    rows = [
        ("better", _res(corruption=_corr(better)), None),
        ("zoo:fmnist-cnn", _res("zoo:fmnist-cnn", corruption=_corr(base)), None),
        ("worse", _res(corruption=_corr(worse)), None),
    ]
    board = build_table(rows)
    # the default baseline is picked wherever it is
    assert board.baseline == "zoo:fmnist-cnn" and "default" in board.baseline_reason
    cells = {r.name: r.cells["corruption/mce_vs_baseline"] for r in board.rows}
    # CE_c = 100 * sum_s E_model / sum_s E_base; mCE = mean over corruptions
    ce_fog, ce_snow = 100 * (0.1 + 0.3) / (0.2 + 0.4), 100 * (0.25 + 0.5) / (0.5 + 0.5)
    assert cells["better"].value == pytest.approx((ce_fog + ce_snow) / 2)
    assert cells["worse"].value == pytest.approx((100 * 0.8 / 0.6 + 100 * 1.3 / 1.0) / 2)
    assert cells["zoo:fmnist-cnn"].value == 100.0
    assert (cells["zoo:fmnist-cnn"].low, cells["zoo:fmnist-cnn"].high) == (100.0, 100.0)

    # the interval: delta method per corruption, mean of the standard deviations
    def sd(model: dict[int, float], ref: dict[int, float], n: int = 200) -> float:
        sm, sb = sum(model.values()), sum(ref.values())
        vm = sum(e * (1 - e) / n for e in model.values())
        vb = sum(e * (1 - e) / n for e in ref.values())
        ce = 100 * sm / sb
        return math.sqrt((100 / sb) ** 2 * vm + (ce / sb) ** 2 * vb)

    half = 1.96 * (sd(better["fog"], base["fog"]) + sd(better["snow"], base["snow"])) / 2
    assert cells["better"].low == pytest.approx(cells["better"].value - half)
    assert cells["better"].high == pytest.approx(cells["better"].value + half)
    assert board.column("corruption/mce_vs_baseline").higher_is_better is False
    # a baseline given by name (bare zoo name or spec) changes the reference
    other = build_table(rows, baseline="worse")
    assert other.rows[2].cells["corruption/mce_vs_baseline"].value == 100.0
    assert build_table(rows, baseline="fmnist-cnn").baseline == "zoo:fmnist-cnn"
    with pytest.raises(InputError, match="no leaderboard row for model 'nope'"):
        build_table(rows, baseline="nope")


# ------------------------------------------------------------------ rendering


def test_html_is_self_contained_escaped_and_sortable(tmp_path: Path) -> None:
    hostile = '<script>alert(1)</script>"'
    rows = [
        (hostile, _res(clean={"accuracy": _est(0.5, 0.4, 0.6, 100)}), None),
        ("b", _res(clean={"accuracy": _est(0.9, 0.8, 0.95, 100)}), None),
    ]
    html = render_html(build_table(rows))
    assert "http://" not in html and "https://" not in html and "src=" not in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)" in html
    # exactly one script, the sorter, allowed by its hash in the CSP and nothing else
    scripts = re.findall(r"<script>(.*?)</script>", html, re.DOTALL)
    assert scripts == [SORT_SCRIPT]
    digest = base64.b64encode(hashlib.sha256(SORT_SCRIPT.encode()).digest()).decode()
    assert f"script-src &#39;sha256-{digest}&#39;" in html
    assert "default-src &#39;none&#39;" in html
    # sortable: a button per header, the sort key on every cell
    assert html.count('<button type="button">') == 2
    assert 'data-key="clean/accuracy"' in html and 'data-v="0.9"' in html
    assert 'addEventListener("click"' in SORT_SCRIPT and "#sort=" in SORT_SCRIPT


def test_markdown_json_written_and_docs_updated(tmp_path: Path) -> None:
    rows = [
        ("zoo:m", _res("zoo:m", clean={"accuracy": _est(0.5, 0.4, 0.6, 100)}), None),
        ("x|y", _res(clean={"accuracy": _est(0.9, 0.8, 0.95, 120)}), None),
    ]
    board = build_table(rows)
    board.command = "robustcv leaderboard zoo:m --out lb"
    paths = write_leaderboard(board, tmp_path)
    assert sorted(p.name for p in paths.values()) == [
        "leaderboard.html",
        "leaderboard.json",
        "leaderboard.md",
    ]
    md = paths["md"].read_text()
    assert md.startswith("Regenerate: `robustcv leaderboard zoo:m --out lb`")
    assert "| x\\|y |" in md  # the pipe is escaped
    # N differs between rows: stated in each cell, not in the header
    assert "N=100" in md and "N=120" in md and "(N=" not in md
    data = json.loads(paths["json"].read_text())
    assert data["schema"] == "robustcv.leaderboard/1" and data["rule"] == BEST_RULE
    doc = tmp_path / "doc.md"
    doc.write_text(f"# Leaderboard\n\nintro\n{DOCS_BEGIN}\nplaceholder\n{DOCS_END}\n\nmore\n")
    update_docs(doc, md)
    text = doc.read_text()
    assert "placeholder" not in text and md in text and text.endswith(f"{DOCS_END}\n\nmore\n")
    update_docs(doc, md)  # idempotent
    assert doc.read_text() == text
    (tmp_path / "plain.md").write_text("# no markers\n")
    with pytest.raises(InputError, match="no '<!-- table:begin -->'"):
        update_docs(tmp_path / "plain.md", md)


def test_shipped_docs_page_has_the_markers() -> None:
    text = (ROOT / "docs" / "leaderboard.md").read_text()
    assert text.index(DOCS_BEGIN) < text.index(DOCS_END)
    assert "robustcv leaderboard" in text


# ------------------------------------------------------------------ the suite hooks


def _every_section(tiny: Mapping[str, Any]) -> dict[str, Any]:
    """The real tiny audit's sections plus hand-made probes and explanations sections."""
    suites = dict(tiny["suites"])
    suites.setdefault(
        "probes",
        {
            "background_reliance": _est(0.2, 0.1, 0.3, 50),
            "shape_bias": _est(0.6, 0.5, 0.7, 50),
            "top_cue_flip_rate": _est(0.1, 0.05, 0.2, 50),
        },
    )
    suites.setdefault(
        "explanations",
        {
            "eps": 0.02,
            "worst_topk": _est(0.4, 0.3, 0.5, 32),
            "sanity_passed": ["saliency"],
            "sanity_failed": ["guided-backprop"],
        },
    )
    return {**tiny, "suites": suites}


def test_every_suite_declares_metrics_with_unique_keys(tiny_audit: Path) -> None:
    results = _every_section(results_of(tiny_audit))
    keys: list[str] = []
    declared: dict[str, list[str]] = {}
    for suite in ordered_suites():
        section = section_of(results, suite.name)
        if suite.results_key:
            section = results.get(suite.results_key)
        if section is None:
            continue
        found = suite.leaderboard_columns(results, section)
        found += suite.leaderboard_baseline_columns(results, section, results, section)
        for m in found:
            assert isinstance(m, Metric), (suite.name, m)
            assert m.key.startswith(f"{suite.name}/"), m.key
            assert m.higher_is_better in (True, False, None)
            assert math.isfinite(m.estimate.value)
        declared[suite.name] = [m.key for m in found]
        keys += declared[suite.name]
    assert len(keys) == len(set(keys)), keys
    for name in ("clean", "corruption", "calibration", "ood", "probes", "explanations"):
        assert declared.get(name), name
    assert declared["probes"] == [
        "probes/background_reliance",
        "probes/shape_bias",
        "probes/top_cue_flip_rate",
    ]
    assert "explanations/worst_topk" in declared["explanations"]


def test_adversarial_columns_are_the_shared_points() -> None:
    nr = {
        "eps": [0.03, 0.05, 0.1, 0.37],
        "standard_eps": [0.05, 0.1],
        "accuracy": [
            _est(0.8, 0.7, 0.9),
            _est(0.6, 0.5, 0.7),
            _est(0.3, 0.2, 0.4),
            _est(0, 0, 0.1),
        ],
    }
    results = _res(adversarial={"norms": {"linf": nr}})
    results["config"] = {"eps": {"linf": [0.03]}}
    cols = SUITES.get("adversarial").leaderboard_columns(results, results["suites"]["adversarial"])
    # the pilot-scaled 0.37 is left out; the standard and the requested points are in
    assert [m.key for m in cols] == [
        "adversarial/linf/acc@0.03",
        "adversarial/linf/acc@0.05",
        "adversarial/linf/acc@0.1",
    ]


class _ToySuite(Suite):
    name = "lbtoy"
    default = False

    def leaderboard_columns(self, results: Mapping[str, Any], section: Any) -> list[Metric]:
        est = Estimate.parse(section.get("score"))
        return [] if est is None else [Metric("lbtoy/score", "toy score", est, True)]

    def leaderboard_baseline_columns(
        self, results: Any, section: Any, baseline_results: Any, baseline_section: Any
    ) -> list[Metric]:
        ratio = section["score"]["value"] / baseline_section["score"]["value"]
        return [Metric("lbtoy/ratio", "score / baseline's", Estimate(ratio), True)]


def test_a_suite_registered_later_adds_its_columns() -> None:
    register_suite(_ToySuite())
    try:
        rows = [
            ("a", _res(lbtoy={"score": _est(0.9, 0.85, 0.95)}), None),
            ("b", _res(lbtoy={"score": _est(0.45, 0.40, 0.50)}), None),
        ]
        board = build_table(rows)
        assert [c.key for c in board.columns] == ["lbtoy/score", "lbtoy/ratio"]
        assert board.column("lbtoy/score").source == "lbtoy"
        assert board.column("lbtoy/score").best == "a"
        assert board.rows[1].cells["lbtoy/ratio"].value == pytest.approx(0.5)
        assert board.column("lbtoy/ratio").best is None  # no interval
        assert "toy score" in render_markdown(board)
    finally:
        SUITES.remove("lbtoy")
    assert build_table(rows).columns == []


# ------------------------------------------------------------------ cards


def _board_with_headline() -> Leaderboard:
    board = build_table(
        [
            (
                "zoo:fmnist-cnn",
                _res("zoo:fmnist-cnn", clean={"accuracy": _est(0.92, 0.91, 0.93, 10000)}),
                _headline(0.05, 0.04, 0.07),
            ),
            (
                "zoo:fmnist-cnn-at",
                _res("zoo:fmnist-cnn-at", clean={"accuracy": _est(0.85, 0.84, 0.86, 10000)}),
                _headline(0.68, 0.65, 0.71),
            ),
        ]
    )
    board.settings = {"data": "fashion-mnist", "headline": {"attacks": "default"}}
    board.command = "robustcv leaderboard --out lb"
    return board


def test_card_numbers_equal_the_row(tmp_path: Path) -> None:
    board = _board_with_headline()
    path = write_leaderboard(board, tmp_path)["json"]
    nums = card_numbers(path, "fmnist-cnn-at")
    row = board.rows[1]
    assert nums["model"] == "zoo:fmnist-cnn-at" and nums["data"] == "fashion-mnist"
    assert nums["robust_accuracy"] == {
        "value": 0.68,
        "low": 0.65,
        "high": 0.71,
        "n": 1000,
        "norm": "linf",
        "eps": 0.1,
        "attacks": "default",
    }
    assert nums["clean_accuracy"]["value"] == row.cells["clean/accuracy"].value
    assert set(nums["columns"]) == set(row.cells)
    assert card_numbers(path, "zoo:fmnist-cnn-at") == nums
    card = {"leaderboard": json.loads(json.dumps(nums))}
    assert card_mismatches(card, path, "fmnist-cnn-at") == []
    card["leaderboard"]["robust_accuracy"]["value"] = 0.7
    assert card_mismatches(card, path, "fmnist-cnn-at") == [
        "leaderboard.robust_accuracy.value: card 0.7, leaderboard 0.68"
    ]
    assert card_mismatches({}, path, "fmnist-cnn-at") == []
    with pytest.raises(InputError, match="no leaderboard row"):
        card_numbers(path, "fmnist-bagnet")


def test_zoo_cards_equal_the_shipped_leaderboard() -> None:
    """Every zoo card with a ``leaderboard`` section states the shipped table's numbers."""
    shipped = ROOT / "docs" / "leaderboard.json"
    with_section = [n for n in ZOO.names() if "leaderboard" in zoo_card(n)]
    if not shipped.exists():
        assert not with_section, f"{with_section} cite a leaderboard but {shipped} is missing"
        pytest.skip("no shipped leaderboard yet (docs/leaderboard.json)")
    for name in with_section:
        assert card_mismatches(zoo_card(name), shipped, name) == [], name


# ------------------------------------------------------------------ headline and end to end


@pytest.mark.slow
def test_headline_in_chunks_equals_one_call_and_is_cached(tmp_path: Path) -> None:
    from robustcv.attacks import robust_accuracy

    lin = nn.Linear(4, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1.0, 1.0, -1.0, -1.0], [-1.0, -1.0, 1.0, 1.0]]))
        lin.bias.zero_()
    model = Model(nn.Sequential(nn.Flatten(), lin))
    x = torch.rand(6, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    y = (x.flatten(1)[:, :2].sum(1) < x.flatten(1)[:, 2:].sum(1)).long()
    cache = tmp_path / "headline.json"
    h = headline_robust_accuracy(model, x, y, eps=0.1, chunk=4, sanity=False, cache=cache)
    whole = robust_accuracy(model, x, y, eps=0.1, norm="linf", attacks="default", sanity=False)
    # the linear model's exact answer: image i survives iff its margin |d_i| exceeds 4 eps
    d = x.flatten(1)[:, :2].sum(1) - x.flatten(1)[:, 2:].sum(1)
    exact = int((d.abs() > 0.4).sum())
    assert exact == 4
    assert h["robust_accuracy"]["value"] == pytest.approx(exact / 6)
    assert whole.accuracy[0] == pytest.approx(exact / 6)
    assert h["n"] == 6 and h["complete"] and len(h["chunks"]) == 2
    # cached: same key, same dict, no attack runs
    stored = json.loads(cache.read_text())
    assert headline_robust_accuracy(model, x, y, eps=0.1, chunk=4, sanity=False, cache=cache) == (
        stored
    )
    # an interrupted run (one chunk stored) finishes the other chunk only
    partial = {"key": stored["key"], "chunks": {"0": stored["chunks"]["0"]}}
    cache.write_text(json.dumps(partial))
    again = headline_robust_accuracy(model, x, y, eps=0.1, chunk=4, sanity=False, cache=cache)
    assert again["robust_accuracy"] == h["robust_accuracy"]
    assert again["chunks"]["0"] == stored["chunks"]["0"]  # reused, not re-run
    # other weights: another key, recomputed
    with torch.no_grad():
        lin.bias.fill_(0.01)
    other = headline_robust_accuracy(model, x, y, eps=0.1, chunk=4, sanity=False, cache=cache)
    assert other["key"]["model"] != stored["key"]["model"]


@pytest.mark.slow
def test_leaderboard_end_to_end_resumes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = photos_npz(tmp_path / "photos.npz")
    cfg = copy.deepcopy(TINY)
    models = [tiny_model(seed=0, name="tiny-a"), tiny_model(seed=2, name="tiny-b")]
    kwargs: dict[str, Any] = dict(
        out=tmp_path / "lb", config=cfg, suites="clean,corruption", robust_n=6, progress=False
    )
    res = leaderboard(models, f"npz:{data}", docs=None, **kwargs)
    assert [r.name for r in res.rows] == ["tiny-a", "tiny-b"]
    assert res.columns[0].key == "headline/linf/acc@0.1" and res.columns[0].n == 6
    for name, folder in res.audits.items():
        audit = results_of(Path(folder))
        assert audit["config"]["eps"] == {"linf": [0.05, 0.1], "l2": [1.0]}, name
        assert (Path(folder) / "headline.json").is_file()
    assert res.settings["eps"] == {"linf": [0.05, 0.1], "l2": [1.0]}
    assert res.settings["corruption"]["corruptions"] == ["mvh-contrast", "mvh-uniform-noise"]
    assert "(models given as Python objects)" in res.command
    # a second run reuses every audit unit and the cached headline
    again = leaderboard(models, f"npz:{data}", **kwargs)
    for folder in again.audits.values():
        assert results_of(Path(folder))["run"]["units_run"] == 0
    assert again.to_dict()["rows"] == res.to_dict()["rows"]
    page = (tmp_path / "lb" / "leaderboard.html").read_text()
    assert "tiny-a" in page and "https:" not in page


@pytest.mark.slow
def test_cli_leaderboard_writes_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = photos_npz(tmp_path / "photos.npz")
    doc = tmp_path / "doc.md"
    doc.write_text(f"{DOCS_BEGIN}\n{DOCS_END}\n")
    net = tmp_path / "net.pt"
    torch.jit.trace(tiny_net().eval(), torch.rand(1, 3, 32, 32)).save(str(net))
    cfg = tmp_path / "cfg.json"
    cfg.write_text(json.dumps(TINY))
    argv = ["leaderboard", str(net), "--data", f"npz:{data}", "--out", str(tmp_path / "lb")]
    argv += ["--suites", "clean", "--robust-n", "0", "--config", str(cfg), "--docs", str(doc)]
    assert main([*argv, "--json", "--quiet"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["rows"][0]["name"] == str(net)
    assert (
        payload["command"].startswith("robustcv leaderboard ")
        and "--json" not in payload["command"]
    )
    assert "| " in doc.read_text() and (tmp_path / "doc.json").is_file()


# ------------------------------------------------------------------ bad input: exit 2, no work


def test_cli_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lb"
    assert main(["leaderboard", "zoo:no-such-model", "--out", str(out)]) == 2
    assert "no-such-model" in capsys.readouterr().err
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main(["leaderboard", "zoo:fmnist-cnn", "--out", str(a_file)]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["leaderboard", "zoo:fmnist-cnn", "--out", str(out), "--robust-n", "-1"]) == 2
    assert main(["leaderboard", "zoo:fmnist-cnn", "zoo:fmnist-cnn", "--out", str(out)]) == 2
    assert "more than once" in capsys.readouterr().err
    assert main(["leaderboard", "zoo:fmnist-cnn", "--out", str(out), "--baseline", "zoo:nope"]) == 2
    assert main(["leaderboard", "zoo:fmnist-cnn", "--out", str(out), "--suites", "clen"]) == 2
    assert main(["leaderboard", "zoo:fmnist-cnn", "--out", str(out), "--docs", str(a_file)]) == 2
    assert "table:begin" in capsys.readouterr().err
    assert not (out / "audits").exists()  # every error came before any work
    with pytest.raises(InputError, match="no models given"):
        leaderboard([], out=out)


@pytest.mark.browser
def test_html_sorts_in_a_browser(tmp_path: Path) -> None:
    """The CSP hash lets the script run: a ``#sort=`` fragment reorders the rows on load."""
    rows = [
        ("a", _res(clean={"accuracy": _est(0.5, 0.4, 0.6, 100)}), None),
        ("b", _res(clean={"accuracy": _est(0.9, 0.8, 0.95, 100)}), None),
        ("c", _res(clean={"accuracy": _est(0.7, 0.6, 0.8, 100)}), None),
    ]
    page = write_leaderboard(build_table(rows), tmp_path)["html"]
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium is not None
    url = page.resolve().as_uri() + "#sort=clean/accuracy:desc"
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    order = re.findall(r'<td data-v="([abc])" class="mono">', dom)
    assert order == ["b", "c", "a"], order
    assert 'data-sorted="clean/accuracy:desc"' in dom
