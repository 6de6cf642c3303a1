"""`robustcv compare` (noise rule on hand-made numbers, CLI and HTML on two real tiny audits) and
`robustcv check` (exit codes on hand-made numbers, and on a real tiny audit)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
from scipy.stats import chi2_contingency
from tiny_audit import results_of, run_tiny_audit

from robustcv.cli.main import main
from robustcv.core.errors import InputError
from robustcv.core.stats import mann_whitney
from robustcv.report.check import check, parse_threshold, required_eps
from robustcv.report.compare import (
    RANK_TEST,
    compare,
    comparison_table,
    two_proportion_p,
    write_comparison_html,
)


def _acc(value: float, n: int, lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    return {"value": value, "n": n, "low": lo, "high": hi}


def _results(**suites: Any) -> dict[str, Any]:
    return {"schema": "robustcv.audit/1", "model": {"spec": "m"}, "suites": suites}


def _write(folder: Path, results: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "results.json").write_text(json.dumps(results), encoding="utf-8")
    return folder


# ------------------------------------------------------------------------------------- compare


@pytest.mark.parametrize(
    ("k1", "n1", "k2", "n2"), [(900, 1000, 920, 1000), (45, 100, 60, 120), (10, 10, 9, 10)]
)
def test_two_proportion_p_matches_scipy(k1: int, n1: int, k2: int, n2: int) -> None:
    # the pooled z-test is the uncorrected chi-square test on the 2x2 table
    _, p_ref, _, _ = chi2_contingency([[k1, n1 - k1], [k2, n2 - k2]], correction=False)
    assert two_proportion_p(k1 / n1, n1, k2 / n2, n2) == pytest.approx(p_ref, rel=1e-9)


def test_compare_marks_noise_on_hand_made_numbers() -> None:
    a = _results(
        clean={"accuracy": _acc(0.90, 1000)},
        corruption={"mean_accuracy": _acc(0.70, 1000), "mce": 1.0},
        calibration={
            "before": {"ece": _acc(0.05, 1000, 0.04, 0.06)},
            "after": {"ece": _acc(0.02, 1000, 0.01, 0.03)},
            "temperature": 1.5,
        },
        ood={
            "sets": {
                "noise": {"methods": {"msp": {"auroc": _acc(0.80, 2000, 0.78, 0.82)}}},
                "flip": {"methods": {"msp": {"auroc": _acc(0.80, 2000, 0.78, 0.82)}}},
            }
        },
        adversarial={
            "norms": {"linf": {"eps": [0.05, 0.1], "accuracy": [_acc(0.5, 500), _acc(0.3, 500)]}}
        },
    )
    b = _results(
        clean={"accuracy": _acc(0.92, 1000)},  # z = 1.563, p = 0.118: within
        corruption={"mean_accuracy": _acc(0.75, 1000), "mce": 0.8},  # p = 0.012: B better
        calibration={
            "before": {"ece": _acc(0.03, 1000, 0.02, 0.035)},  # intervals apart: B better
            "after": {"ece": _acc(0.025, 1000, 0.015, 0.035)},  # overlap: within noise
            "temperature": 1.1,
        },
        ood={
            "sets": {
                "noise": {"methods": {"msp": {"auroc": _acc(0.75, 2000, 0.73, 0.77)}}},  # A
                "flip": {"methods": {"msp": {"auroc": _acc(0.81, 2000, 0.79, 0.83)}}},  # noise
            }
        },
        adversarial={
            "norms": {"linf": {"eps": [0.1, 0.2], "accuracy": [_acc(0.4, 500), _acc(0.2, 500)]}}
        },
    )
    res = compare(a, b)
    rows = {r.key: r for r in res.rows}
    assert rows["clean/accuracy"].within_noise is True
    assert rows["clean/accuracy"].p_value == pytest.approx(0.1181, abs=1e-4)
    assert rows["clean/accuracy"].delta == pytest.approx(0.02)
    assert rows["clean/accuracy"].better is None
    assert rows["corruption/mean_accuracy"].within_noise is False
    assert rows["corruption/mean_accuracy"].better == "b"
    assert rows["corruption/mce"].within_noise is None  # no interval: not judged
    assert rows["corruption/mce"].better == "b"  # lower mCE is better
    assert rows["calibration/ece_before"].test == "interval overlap"
    assert rows["calibration/ece_before"].within_noise is False
    assert rows["calibration/ece_before"].better == "b"  # lower ECE is better
    assert rows["calibration/ece_after"].within_noise is True
    assert rows["calibration/temperature"].better is None  # no direction
    assert rows["ood/noise/msp/auroc"].within_noise is False
    assert rows["ood/noise/msp/auroc"].better == "a"
    assert rows["ood/flip/msp/auroc"].within_noise is True
    # A 0.3 vs B 0.4 of 500 at the shared eps 0.1: z = 3.31, p = 0.0009
    assert rows["adversarial/linf/acc@0.1"].within_noise is False
    assert rows["adversarial/linf/acc@0.1"].p_value == pytest.approx(0.00093, abs=2e-5)
    assert rows["adversarial/linf/acc@0.1"].better == "b"
    assert "adversarial/linf/acc@0.05" in res.only_a
    assert "adversarial/linf/acc@0.2" in res.only_b
    assert "p >= 0.05" in res.rule and "intervals overlap" in res.rule
    assert {r.key for r in res.significant} >= {"corruption/mean_accuracy", "ood/noise/msp/auroc"}
    assert res.a_label == "m (A)" and res.b_label == "m (B)"  # same spec: told apart


def test_compare_cli_and_html(
    tiny_audit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two real tiny audits of two models (random weights from seeds 0 and 2)."""
    a = tmp_path / "a"
    shutil.copytree(tiny_audit, a)
    res_a = results_of(a)
    res_a["model"]["spec"] = "zoo:<b>a</b>"
    _write(a, res_a)
    real_b = run_tiny_audit(tmp_path / "bb", seed=2)
    assert real_b.path is not None
    b = real_b.path
    res_b = results_of(b)
    out = tmp_path / "cmp.html"
    assert main(["compare", str(a), str(b), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "A: zoo:<b>a</b>" in text and f"B: {res_b['model']['spec']}" in text
    assert "clean accuracy" in text and "delta (B-A)" in text and "within the noise" in text
    result = compare(a, b)
    rows = {r.key: r for r in result.rows}
    # clean accuracy: the two-proportion test on the counts of the two results
    acc_a = res_a["suites"]["clean"]["accuracy"]
    acc_b = res_b["suites"]["clean"]["accuracy"]
    p = two_proportion_p(acc_a["value"], acc_a["n"], acc_b["value"], acc_b["n"])
    assert rows["clean/accuracy"].p_value == pytest.approx(p)
    assert rows["clean/accuracy"].within_noise is (p >= 0.05)
    assert rows["clean/accuracy"].delta == pytest.approx(acc_b["value"] - acc_a["value"])
    # each model's pilot sets its own eps grid: points at other eps are in one audit only
    grid_a = res_a["suites"]["adversarial"]["norms"]["linf"]["eps"]
    grid_b = res_b["suites"]["adversarial"]["norms"]["linf"]["eps"]
    assert grid_a != grid_b
    for e in grid_a:
        key = f"adversarial/linf/acc@{e:g}"
        assert key in (rows if e in grid_b else result.only_a), key
    # ...but both evaluate the standard points of 32x32 data (L-inf 8/255, L2 0.5): robust
    # accuracy there gets the two-proportion verdict, not n/a
    for norm, eps in (("linf", 8 / 255), ("l2", 0.5)):
        for res in (res_a, res_b):
            assert res["suites"]["adversarial"]["norms"][norm]["standard_eps"] == [eps]
        row = rows[f"adversarial/{norm}/acc@{eps:g}"]
        assert row.test == "two-proportion z-test" and row.within_noise is not None
    # the minimal-perturbation distributions: the rank test on the correctly classified pilot
    # images (none found = inf), with each model's median shown
    med = rows["adversarial/linf/median_min_norm"]
    norms = [r["suites"]["adversarial"]["norms"]["linf"]["min_norms"] for r in (res_a, res_b)]
    samples = [[math.inf if v is None else v for v in m if v != 0] for m in norms]
    assert med.test == RANK_TEST
    assert med.p_value == pytest.approx(mann_whitney(*samples).p_value)
    assert med.a is not None and med.a["n"] == len(samples[0])
    assert med.a["value"] == res_a["suites"]["adversarial"]["norms"]["linf"]["median_min_norm"]
    assert "adversarial/linf/median_min_norm" not in result.only_a
    assert "in one audit only: A" in text
    # the verdict of every row is printed; these two models differ beyond the noise somewhere
    assert result.significant
    lines = text.splitlines()
    for label, _, _, _, verdict in comparison_table(result)[1]:
        assert any(line.startswith(label + " ") and verdict in line for line in lines), label
    assert "A better" in text or "B better" in text
    assert f"linf median minimal perturbation: {RANK_TEST}" in text and "Mann-Whitney" in text
    html = out.read_text()
    assert "<b>a</b>" not in html and "&lt;b&gt;a&lt;/b&gt;" in html
    assert (
        "<script" not in html
        and "http:" not in html
        and "https:" not in html
        and "data:image/png;base64," in html  # both robust-accuracy curves
    )
    assert f"({len(result.only_a)} in A, {len(result.only_b)} in B)" in html
    assert f"{RANK_TEST} (p = " in html and "two-proportion z-test (p = " in html
    assert main(["compare", str(a), str(b), "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["rows"][0]["key"] == "clean/accuracy" and "Mann-Whitney" in payload["rule"]
    assert {r["test"] for r in payload["rows"]} >= {RANK_TEST, "two-proportion z-test"}
    assert len(payload["rows"]) == len(result.rows)
    assert main(["compare", str(a), str(tmp_path / "missing")]) == 2


def test_write_comparison_html_without_curves(tmp_path: Path) -> None:
    a = _results(clean={"accuracy": _acc(0.9, 100)})
    html = write_comparison_html(compare(a, a), tmp_path / "c.html").read_text()
    assert "within noise" in html and "<img" not in html


# --------------------------------------------------------------------------------------- check


@pytest.fixture()
def audit(tmp_path: Path) -> Path:
    res = _results(
        clean={"accuracy": _acc(0.91, 1000, 0.89, 0.93)},
        corruption={
            "mean_accuracy": _acc(0.80, 5000),
            "per_corruption_mean": {"fog": _acc(0.6, 1000), "blur": _acc(0.85, 1000)},
            "mce": 0.9,
        },
        adversarial={
            "norms": {
                "linf": {"eps": [0.05, 0.1], "accuracy": [_acc(0.6, 500), _acc(0.45, 500)]},
                "l2": {"eps": [0.5, 1.0], "accuracy": [_acc(0.7, 500), _acc(0.5, 500)]},
            }
        },
        calibration={"before": {"ece": _acc(0.06, 1000)}, "after": {"ece": _acc(0.02, 1000)}},
        ood={
            "sets": {
                "noise": {"methods": {"msp": {"auroc": 0.95}, "energy": {"auroc": 0.97}}},
                "inverted": {"methods": {"msp": {"auroc": 0.7}, "energy": {"auroc": 0.65}}},
            }
        },
    )
    return _write(tmp_path / "audit", res)


def test_check_passes_exit_0(audit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["check", str(audit), "--min-acc", "0.9", "--min-robust-acc", "0.4@linf:0.1"]
    argv += ["--min-robust-acc", "0.5@l2:1", "--max-mce", "1.0", "--max-ece", "0.03@after"]
    argv += ["--min-auroc", "0.9@noise", "--max-corruption-drop", "0.12"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("PASS") == 8 and "all 8 checks passed" in out


def test_check_fails_exit_1_naming_each_violation(
    audit: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["check", str(audit), "--min-acc", "0.95", "--min-robust-acc", "0.5@linf:0.1"]
    argv += ["--max-ece", "0.05", "--min-auroc", "0.9@msp", "--max-corruption-drop", "0.2@fog"]
    argv += ["--min-robust-acc", "0.5@linf:0.05"]  # this one passes
    assert main(argv) == 1
    out = capsys.readouterr().out
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 5
    assert "clean accuracy: 0.9100" in out and "is not >= 0.95 (--min-acc 0.95)" in out
    assert (
        "linf robust accuracy at eps 0.1: 0.4500" in out
        and "(--min-robust-acc 0.5@linf:0.1)" in out
    )
    assert "ECE before temperature scaling: 0.0600" in out and "<= 0.05" in out
    assert "AUROC inverted (msp): 0.7000" in out
    assert "accuracy drop under fog" in out and "0.3100" in out  # 0.91 - 0.60 by hand
    assert "5 of 7 checks failed" in out
    assert main(["check", str(audit), "--min-acc", "0.95", "--quiet"]) == 1
    assert "PASS" not in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--min-acc", "abc"], "needs a number"),
        (["--min-acc", "1.5"], "fraction in [0, 1]"),
        (["--min-acc", "0.9@linf"], "plain number"),
        (["--min-robust-acc", "0.5"], "V@NORM:EPS"),
        (["--min-robust-acc", "0.5@linf3:0.1"], "unknown norm"),
        (["--min-robust-acc", "0.5@linf:abc"], "V@NORM:EPS"),
        (["--min-robust-acc", "0.5@linf:0.3"], "re-run 'robustcv audit' with --eps linf:0.3"),
        (["--max-ece", "0.05@later"], "'before' or 'after'"),
        (["--min-auroc", "0.9@nosuch"], "no OOD set 'nosuch'"),
        (["--min-auroc", "0.9@noise/nosuch"], "no OOD score 'nosuch'"),
        (["--max-corruption-drop", "0.1@snow"], "no corruption 'snow'"),
        ([], "no thresholds given"),
    ],
)
def test_check_bad_thresholds_exit_2(
    audit: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["check", str(audit), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_check_bad_input_exit_2(
    audit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", str(tmp_path / "missing"), "--min-acc", "0.9"]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["check", str(tmp_path / "empty"), "--min-acc", "0.9"]) == 2
    assert "no results.json" in capsys.readouterr().err
    only_clean = _write(tmp_path / "c", _results(clean={"accuracy": _acc(0.9, 10)}))
    assert main(["check", str(only_clean), "--max-ece", "0.1"]) == 2
    assert "no 'calibration' suite" in capsys.readouterr().err
    no_mce = _write(tmp_path / "d", _results(corruption={"mean_accuracy": _acc(0.9, 10)}))
    assert main(["check", str(no_mce), "--max-mce", "1"]) == 2
    assert "baseline" in capsys.readouterr().err
    # an unknown flag is an argparse usage error: main() returns 2 (no SystemExit)
    assert main(["check", str(audit), "--min-accuracy-typo", "0.9"]) == 2
    assert "--min-accuracy-typo" in capsys.readouterr().err


def test_check_python_api(audit: Path) -> None:
    res = check(audit, {"min_acc": 0.9, "min_auroc": ["0.6"], "max_ece": [0.1, "0.01@after"]})
    assert [o.passed for o in res.outcomes] == [True, True, True, True, True, True, False]
    assert not res.passed and res.failures[0].threshold == "--max-ece 0.01@after"
    assert res.failures[0].value == pytest.approx(0.02)
    with pytest.raises(InputError, match="unknown threshold"):
        check(audit, {"min_precision": 0.9})
    assert res.to_dict()["outcomes"][0]["metric"] == "clean accuracy"


def test_corruption_drop_uses_the_suites_own_clean_accuracy(tmp_path: Path) -> None:
    res = _results(
        clean={"accuracy": _acc(0.95, 1000)},
        corruption={"clean_accuracy": _acc(0.90, 500), "mean_accuracy": _acc(0.75, 2500)},
    )
    out = check(res, {"max_corruption_drop": 0.16})
    assert out.passed and out.outcomes[0].value == pytest.approx(0.15)  # 0.90 - 0.75, not 0.95
    res["suites"]["corruption"].pop("clean_accuracy")
    out = check(res, {"max_corruption_drop": 0.16})
    assert not out.passed and out.outcomes[0].value == pytest.approx(0.20)


def test_threshold_parsing_and_required_eps() -> None:
    t = parse_threshold("--min-robust-acc", " 0.5@l2:1.5 ")
    assert (t.metric, t.limit, t.norm_eps) == ("min-robust-acc", 0.5, ("l2", 1.5))
    assert parse_threshold("max_corruption_drop", "1e-1@fog").limit == pytest.approx(0.1)
    assert required_eps({"min_robust_acc": ["0.5@linf:0.1", "0.2@l2:1"], "min_acc": 0.9}) == {
        "linf": [0.1],
        "l2": [1.0],
    }
    assert parse_threshold("min-robust-acc", "0.5@Linf:0.1").flag == "--min-robust-acc 0.5@linf:0.1"
    assert parse_threshold("min-robust-acc", "0.5@2:0.5").norm_eps == ("l2", 0.5)
    with pytest.raises(InputError, match="empty qualifier"):
        parse_threshold("max-ece", "0.1@")
    with pytest.raises(InputError, match="eps must be a positive number"):
        parse_threshold("min-robust-acc", "0.1@linf:0")


def test_check_on_a_real_audit(tiny_audit: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Thresholds just below / above the numbers of a real tiny audit pass / fail."""
    res = results_of(tiny_audit)
    suites = res["suites"]

    def below(v: float) -> str:
        return f"{math.floor(v * 1e4) / 1e4:.4f}"

    acc = suites["clean"]["accuracy"]["value"]
    linf = suites["adversarial"]["norms"]["linf"]
    eps, robust = linf["eps"][0], linf["accuracy"][0]["value"]
    assert robust > 0  # a threshold above 0 can pass
    ece = suites["calibration"]["after"]["ece"]["value"]
    sets = suites["ood"]["sets"]
    auroc = sets["pixel-permuted"]["methods"]["mahalanobis"]["auroc"]["value"]
    corr = suites["corruption"]
    worst = corr["corruptions"][0]
    drop = corr["clean_accuracy"]["value"] - corr["per_corruption_mean"][worst]["value"]
    argv = ["check", str(tiny_audit), "--min-acc", below(acc)]
    argv += ["--min-robust-acc", f"{below(robust)}@linf:{eps:g}"]
    argv += [
        "--max-ece",
        f"{ece + 1e-4:.4f}@after",
        "--min-auroc",
        f"{below(auroc)}@pixel-permuted/mahalanobis",
    ]
    argv += [f"--max-corruption-drop={drop + 1e-4:.4f}@{worst}"]  # may be negative
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("PASS") == 5 and "all 5 checks passed" in out
    assert f"clean accuracy: {acc:.4f}" in out
    assert f"linf robust accuracy at eps {eps:g}: {robust:.4f}" in out
    # just above the clean accuracy, and the best AUROC for every (set, score) pair: all but
    # the best pair fail, each named
    aurocs = {
        (set_name, m): r["auroc"]["value"]
        for set_name, s in sets.items()
        for m, r in s["methods"].items()
    }
    limit = math.floor(max(aurocs.values()) * 1e6) / 1e6
    argv = ["check", str(tiny_audit), "--min-acc", f"{acc + 1e-3:.4f}"]
    argv += ["--min-auroc", f"{limit:.6f}"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    below_limit = [k for k, v in aurocs.items() if v < limit]
    assert 0 < len(below_limit) < len(aurocs)
    assert len(fails) == 1 + len(below_limit)
    for set_name, m in below_limit:
        assert any(f"AUROC {set_name} ({m}): " in line for line in fails), (set_name, m)
    assert f"{len(fails)} of {1 + len(aurocs)} checks failed" in out
    # an eps that is not in the pilot-derived grid names the fix
    assert main(["check", str(tiny_audit), "--min-robust-acc", "0.1@linf:0.3"]) == 2
    assert "re-run 'robustcv audit' with --eps linf:0.3" in capsys.readouterr().err
