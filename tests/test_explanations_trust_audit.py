"""The ``explanations`` audit suite on the real tiny audit (tests/tiny_audit.py) with tiny sizes.

Checks the suite contract (pure JSON rows, aggregation from stored rows alone equals results.json,
the declared section type), the report section, ``check`` (``--require-sanity``,
``--max-fragility``) and ``compare``'s metrics.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from robustcv.audit.registry import SUITES, default_suites
from robustcv.audit.schema import section_problems
from robustcv.audit.store import Store
from robustcv.audit.suite import section_keys_match
from robustcv.core.errors import InputError
from robustcv.core.results import to_jsonable

TINY_EXPLANATIONS: dict[str, Any] = {
    "explanations": {
        "methods": ["saliency", "grad-cam"],
        "sanity_n": 4,
        "faithfulness_n": 6,
        "fragility_n": 3,
        "attack_steps": 3,
        "misleading_n": 2,
        "subsets_n": 3,
        "subset_threshold": 0.3,
    }
}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def audit(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_audit import run_tiny_audit

    base = tmp_path_factory.mktemp("explanations-audit")
    res = run_tiny_audit(base, suites="explanations", config=TINY_EXPLANATIONS)
    assert res.path is not None
    return Path(res.path)


def test_not_default_and_contract(audit: Path, tmp_path: Path) -> None:
    from tiny_audit import results_of, tiny_context

    assert "explanations" not in default_suites()
    suite = SUITES.get("explanations")
    results = results_of(audit)
    section = results["suites"]["explanations"]
    assert section_keys_match(section, suite.section_type) == []
    assert section_problems(section, suite.section_type, "suites.explanations") == []
    assert section["methods"] == ["saliency", "grad-cam"]
    assert set(section["sanity_passed"]) | set(section["sanity_failed"]) == {"saliency", "grad-cam"}
    sal = section["per_method"]["saliency"]
    assert sal["attack"]["label_kept"] == 1.0
    assert sal["faithfulness"]["random_deletion_area"]["value"] is not None
    assert section["per_method"]["grad-cam"]["attack"] is None
    assert "attack/grad-cam" in section["skipped"]

    prep = tiny_context(audit.parent, out=tmp_path / "out")
    ctx = prep.ctx
    units = suite.plan(ctx)
    store = Store(audit)
    try:
        stored = {s.key: s.row for s in store.units("explanations")}
    finally:
        store.close()
    assert set(stored) == {u.key for u in units}
    for row in stored.values():
        json.dumps(row, allow_nan=False)
    first = units[0]
    assert to_jsonable(suite.run(ctx, first, {})) == stored[first.key]
    for order in (sorted(stored), sorted(stored, reverse=True)):
        notes: dict[str, Any] = {"skipped": {}, "notes": []}
        again = suite.aggregate(ctx, {k: stored[k] for k in order}, notes)
        assert json.loads(json.dumps(to_jsonable(again))) == section


def test_report_check_and_compare(audit: Path) -> None:
    from tiny_audit import results_of

    from robustcv.report import check, render_report

    html = render_report(audit)
    assert "Explanations: how far to trust them" in html
    assert html.count('alt="grid of maps') == 1 and 'alt="sanity check' in html

    out = check(audit, {"require_sanity": "saliency", "max_fragility": 1.0})
    assert [o.threshold for o in out.outcomes] == [
        "--require-sanity saliency",
        "--max-fragility 1",
    ]
    assert out.outcomes[1].passed  # a drop is at most 1
    section = results_of(audit)["suites"]["explanations"]
    assert out.outcomes[0].passed == section["per_method"]["saliency"]["sanity"]["passed"]
    with pytest.raises(InputError, match=r"explanations\.methods including smoothgrad"):
        check(audit, {"require_sanity": "smoothgrad"})
    with pytest.raises(InputError, match="did you mean"):
        check(audit, {"require_sanity": "salency"})

    keys = [m.key for m in SUITES.get("explanations").metrics({}, section)]
    assert "explanations/saliency/deletion" in keys
    assert "explanations/saliency/topk_attack" in keys
    assert "explanations/grad-cam/sanity" in keys


def test_bad_config_names_the_fix() -> None:
    from robustcv.audit.suites.explanations import ExplanationsConfig

    with pytest.raises(InputError, match=r"explanations\.sanity_n must be an int >= 2"):
        ExplanationsConfig(sanity_n=1)
    with pytest.raises(InputError, match=r"explanations\.eps"):
        ExplanationsConfig(eps=2.0)
    suite = SUITES.get("explanations")

    class Cfg:
        explanations = ExplanationsConfig(methods=("salency",))

    with pytest.raises(InputError, match="did you mean 'saliency'"):
        suite.validate(Cfg(), (1, 1, 28, 28))


def test_subsets_are_split_inside_and_outside_the_object() -> None:
    import torch

    from robustcv.audit.suites.explanations import _foreground_split

    x = torch.zeros(3, 1, 12, 12)
    x[:, :, 3:9, 3:9] = 0.8  # the object on a black background
    subsets = torch.zeros(3, 1, 12, 12, dtype=torch.bool)
    subsets[0, :, 4:6, 4:6] = True  # all on the object
    subsets[1, :, 0:2, 0:2] = True  # all on the background
    subsets[2, :, 3:4, 0:6] = True  # half: columns 3-5 on the object, 0-2 off it
    out = _foreground_split(x, subsets)
    assert out["inside_foreground"] == [1.0, 0.0, 0.5]
    assert out["median_inside_foreground"] == 0.5 and "estimated" in out["foreground"]
    noise = torch.rand(3, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    skipped = _foreground_split(noise, subsets)
    assert (
        skipped["foreground"].startswith("skipped")
        and "uniform background" in skipped["foreground"]
    )
    assert "median_inside_foreground" not in skipped
