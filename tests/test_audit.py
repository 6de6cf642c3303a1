"""The audit engine: config parsing, bad input before work, fingerprints, a gradient-free (ONNX)
model, and an RGB end-to-end run through every suite."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_audit import PHOTOS, photos_npz, tiny_model, tiny_net
from tiny_audit import TINY as TINY_CONFIG

from robustcv.audit import AuditConfig, AuditResults, Store, parse_eps, run_audit
from robustcv.audit.config import load_config_file, parse_suites
from robustcv.audit.context import AuditContext
from robustcv.audit.plan import Unit, pack, unpack
from robustcv.audit.schema import SCHEMA_VERSION, read_results
from robustcv.audit.suites.adversarial import eps_half
from robustcv.cli.main import main
from robustcv.core.errors import InputError
from robustcv.core.model import Model
from robustcv.core.stats import binomial_ci
from robustcv.models.architectures import SmallCNN

TINY = TINY_CONFIG


# ---------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def rgb_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32x32 RGB crops of four scikit-image sample photos; the label is the photo."""
    return photos_npz(tmp_path_factory.mktemp("rgb") / "photos.npz")


def _rgb_net(num_classes: int = 4, seed: int = 0) -> SmallCNN:
    return tiny_net(num_classes, seed)


def _rgb_model(num_classes: int = 4, seed: int = 0) -> Model:
    return tiny_model(num_classes, seed)


def _write(tmp_path: Path, cfg: dict) -> Path:
    p = tmp_path / "audit.json"
    p.write_text(json.dumps(cfg))
    return p


# ---------------------------------------------------------------------------- config
def test_config_parsing_and_errors(tmp_path: Path) -> None:
    assert parse_suites("ood , clean") == ("clean", "ood")
    with pytest.raises(InputError, match=r"did you mean 'adversarial'"):
        parse_suites("adversarail")
    assert parse_eps("linf:0.1,0.2,l2:0.5") == {"linf": (0.1, 0.2), "l2": (0.5,)}
    with pytest.raises(InputError, match=r"name the norm first"):
        parse_eps("0.1")
    with pytest.raises(InputError, match=r"unknown norm 'l3'"):
        parse_eps("l3:0.1")
    cfg = AuditConfig.from_dict(
        {
            "model": "m",
            "data": "d",
            "eps": {"linf": [0.2]},
            "check": {"min_robust_acc": ["0.5@linf:0.1", "0.3@l2:1.5"]},
        }
    )
    assert cfg.eps == {"linf": (0.1, 0.2), "l2": (1.5,)}
    # aggregation-only settings are not fingerprinted; work settings are
    a = AuditConfig.from_dict({"model": "m", "data": "d", "calibration": {"n_bins": 10}})
    b = AuditConfig.from_dict({"model": "m", "data": "d", "calibration": {"n_bins": 20}})
    c = AuditConfig.from_dict({"model": "m", "data": "d", "calibration": {"fit_n": 20}})
    assert a.work_dict() == b.work_dict() != c.work_dict()
    with pytest.raises(InputError, match=r"unknown audit config key 'sutes'.*'suites'"):
        AuditConfig.from_dict({"model": "m", "data": "d", "sutes": ["clean"]})
    with pytest.raises(InputError, match=r"unknown key 'adversarial.step'.*pilot_steps|apgd"):
        AuditConfig.from_dict({"model": "m", "data": "d", "adversarial": {"step": 3}})
    with pytest.raises(InputError, match=r"strength"):
        AuditConfig.from_dict({"model": "m", "data": "d", "strength": "quick"})
    with pytest.raises(InputError, match=r"adversarial.n must be an int >= 1"):
        AuditConfig.from_dict({"model": "m", "data": "d", "adversarial": {"n": 0}})
    yml = tmp_path / "audit.yaml"
    yml.write_text("limit: 50\nadversarial:\n  n: 20\n  norms: [linf]\n")
    assert load_config_file(yml) == {"limit": 50, "adversarial": {"n": 20, "norms": ["linf"]}}
    bad = tmp_path / "audit.cfg"
    bad.write_text("limit: 5")
    with pytest.raises(InputError, match=r"as JSON.*\.yaml"):
        load_config_file(bad)


def test_pack_roundtrip_seeds_and_eps_half() -> None:
    z = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    assert np.array_equal(unpack(pack(z)), z)
    u = Unit("corruption", "fog/3", 2)
    assert u.key == "corruption:fog/3#2"
    # the seed depends on (seed, suite, condition), never on the shard
    assert u.seed(0) == Unit("corruption", "fog/3", 7).seed(0) != u.seed(1)
    # eps_half interpolates linearly from (0, clean); values by hand
    assert eps_half([0.1, 0.2, 0.3], [0.7, 0.5, 0.1], 0.8) == pytest.approx(0.225)
    assert eps_half([0.1], [0.3], 0.8) == pytest.approx(0.08)
    assert eps_half([0.1, 0.2], [0.7, 0.6], 0.8) is None


# ---------------------------------------------------------------------------- bad input
def _assert_no_work(folder: Path) -> None:
    db = folder / "audit.sqlite"
    if db.exists():
        assert sqlite3.connect(db).execute("SELECT COUNT(*) FROM units").fetchone()[0] == 0


def test_bad_input_is_refused_before_any_work(tmp_path: Path, rgb_npz: Path) -> None:
    data = f"npz:{rgb_npz}"
    out = tmp_path / "a"
    with pytest.raises(InputError, match=r"unknown suite 'clen'; did you mean 'clean'"):
        run_audit(_rgb_model(), data, out, suites="clean,clen", progress=False)
    with pytest.raises(InputError, match=r"unknown derived OOD set 'unifrom-noise'.*uniform-noise"):
        run_audit(
            _rgb_model(),
            data,
            out,
            suites="ood",
            ood_data=["derived:unifrom-noise"],
            progress=False,
        )
    with pytest.raises(InputError, match=r"OOD set 'fashion-mnst'.*fashion-mnist"):
        run_audit(_rgb_model(), data, out, suites="ood", ood_data=["fashion-mnst"], progress=False)
    with pytest.raises(InputError, match=r"unknown OOD score 'odn'.*'odin'"):
        run_audit(
            _rgb_model(),
            data,
            out,
            suites="ood",
            config={"ood": {"methods": ["odn"]}},
            progress=False,
        )
    with pytest.raises(InputError, match=r"unknown corruption 'fgo'"):
        run_audit(
            _rgb_model(),
            data,
            out,
            suites="corruption",
            config={"corruption": {"corruptions": ["fgo"]}},
            progress=False,
        )
    # model/data mismatch: a greyscale 28x28 model on 32x32 RGB images
    grey = Model(SmallCNN(in_channels=1, width=4, hidden=8))
    with pytest.raises(InputError, match=r"model takes 1-channel .* has 3-channel 32x32 images"):
        run_audit(grey, data, out, suites="clean", progress=False)
    # class-count mismatch: 3 outputs, labels up to 3
    with pytest.raises(InputError, match=r"labels up to 3 .* outputs 3 classes"):
        run_audit(_rgb_model(num_classes=3), data, out, suites="clean", progress=False)
    _assert_no_work(out)
    # an unwritable folder (its parent is a file) and a folder holding something else
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match=r"cannot write to --out|is a file"):
        run_audit(_rgb_model(), data, blocker / "sub", suites="clean", progress=False)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match=r"not empty and holds no audit .*notes.txt"):
        run_audit(_rgb_model(), data, foreign, suites="clean", progress=False)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "audit.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(InputError, match=r"audit.sqlite.* audit store.*choose a new --out"):
        run_audit(_rgb_model(), data, fake, suites="clean", progress=False)
    # fit data that is the evaluated data (an npz with a single split)
    single = tmp_path / "single.npz"
    with np.load(rgb_npz) as z:
        np.savez(single, x=z["x_test"], y=z["y_test"])
    with pytest.raises(InputError, match=r"fit data .* contains the evaluated images.*--fit-data"):
        run_audit(
            _rgb_model(), f"npz:{single}", tmp_path / "b", suites="calibration", progress=False
        )
    _assert_no_work(tmp_path / "b")
    # the CLI turns all of this into exit code 2
    code = main(
        [
            "audit",
            "--model",
            "zoo:fmnist-cnn",
            "--data",
            data,
            "--out",
            str(tmp_path / "c"),
            "--suites",
            "clen",
            "--quiet",
        ]
    )
    assert code == 2


def test_fingerprint_refuses_to_mix_and_force_resets(tmp_path: Path, rgb_npz: Path) -> None:
    data = f"npz:{rgb_npz}"
    out = tmp_path / "audit"
    first = run_audit(_rgb_model(), data, out, suites="clean", limit=40, progress=False)
    assert first.suites["clean"]["accuracy"]["n"] == 40
    # same config: resumes (nothing to do)
    again = run_audit(_rgb_model(), data, out, suites="clean", limit=40, progress=False)
    assert again.run["units_run"] == 0
    assert again.run["units_skipped"] == again.run["units_total"] == 2  # clean + examples
    # aggregation-only change: accepted, no recomputation
    again = run_audit(
        _rgb_model(), data, out, suites="clean", limit=40, progress=False, config={"batch_size": 7}
    )
    assert again.run["units_run"] == 0
    with pytest.raises(InputError, match=r"different model, data or config .*limit.*--force"):
        run_audit(_rgb_model(), data, out, suites="clean", limit=30, progress=False)
    with pytest.raises(InputError, match=r"differs in: .*model\.hash"):
        run_audit(_rgb_model(seed=1), data, out, suites="clean", limit=40, progress=False)
    with pytest.raises(InputError, match=r"differs in: .*config\.suites"):
        run_audit(_rgb_model(), data, out, suites="clean,ood", limit=40, progress=False)
    forced = run_audit(
        _rgb_model(), data, out, suites="clean", limit=30, force=True, progress=False
    )
    assert forced.suites["clean"]["accuracy"]["n"] == 30
    with Store(out) as store:
        assert len(store.runs()) == 1  # the old runs were discarded with their units
    assert "--force: discarded" in (out / "audit.log").read_text()


# ---------------------------------------------------------------------------- clean numbers
def test_clean_suite_matches_direct_computation(tmp_path: Path, rgb_npz: Path) -> None:
    from robustcv.data import load_dataset

    model = _rgb_model()
    res = run_audit(
        model,
        f"npz:{rgb_npz}",
        tmp_path / "a",
        suites="clean",
        progress=False,
        config={"shard_size": 25},
    )
    ds = load_dataset(f"npz:{rgb_npz}", split="test")
    pred = model.predict(ds.x)
    k = int((pred == ds.y).sum())
    acc = res.suites["clean"]["accuracy"]
    assert acc["value"] == k / len(ds) and acc["n"] == len(ds)
    assert (acc["low"], acc["high"]) == pytest.approx(binomial_ci(k, len(ds)))
    conf = np.zeros((4, 4), dtype=int)
    np.add.at(conf, (ds.y.numpy(), pred.numpy()), 1)
    assert res.suites["clean"]["confusion"] == conf.tolist()
    per = res.suites["clean"]["per_class"]
    assert per["coffee"]["value"] == conf[1, 1] / conf[1].sum()
    assert read_results(tmp_path / "a")["schema"] == SCHEMA_VERSION


# ---------------------------------------------------------------------------- gradient-free
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_onnx_model_skips_gradient_methods_with_reasons(tmp_path: Path, rgb_npz: Path) -> None:
    pytest.importorskip("onnxruntime")
    onnx_path = tmp_path / "tiny.onnx"
    net = _rgb_net().eval()
    torch.onnx.export(
        net,
        (torch.zeros(1, 3, 32, 32),),
        str(onnx_path),
        input_names=["x"],
        output_names=["logits"],
        dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
        dynamo=False,
    )
    res = run_audit(
        str(onnx_path),
        f"npz:{rgb_npz}",
        tmp_path / "audit",
        suites="clean,adversarial,ood",
        config={**TINY, "adversarial": {**TINY["adversarial"], "norms": ["l2"]}},
        progress=False,
    )
    assert res.model["differentiable"] is False
    skipped = res.skipped
    assert "gradient" in skipped["ood/odin"]
    assert "features" in skipped["ood/mahalanobis"]
    assert "white-box" in skipped["adversarial/white-box"]
    assert "gradient-free" in skipped["adversarial/white-box"]
    adv = res.suites["adversarial"]
    assert adv["gradient_free"] is True
    l2 = adv["norms"]["l2"]
    assert l2["ensemble"] == ["hsj", "square"] and l2["pilot"]["attack"] == "hsj"
    assert any("gradient-free" in n for n in adv["notes"])
    assert res.suites["ood"]["methods"] == ["msp", "max-logit", "energy"]
    # the ONNX model gives the same clean accuracy as the PyTorch network it came from
    direct = run_audit(
        Model(net), f"npz:{rgb_npz}", tmp_path / "torch", suites="clean", progress=False
    )
    assert res.suites["clean"]["accuracy"] == direct.suites["clean"]["accuracy"]


# ---------------------------------------------------------------------------- RGB end to end
def test_rgb_end_to_end_every_suite(tmp_path: Path, rgb_npz: Path, capsys) -> None:
    out = tmp_path / "audit"
    cfg = _write(tmp_path, {**TINY, "check": {"min_robust_acc": ["0.1@linf:0.01"]}})
    res = run_audit(_rgb_model(), f"npz:{rgb_npz}", out, config=str(cfg), eps="l2:0.3")
    err = capsys.readouterr().err
    assert "subsampled:" in err and "corruption 24 of 72 images" in err
    assert isinstance(res, AuditResults)
    assert set(res.suites) == {"clean", "corruption", "adversarial", "calibration", "ood"}
    data = json.loads((out / "results.json").read_text())
    assert data == json.loads(json.dumps(res.to_dict()))
    assert data["schema"] == SCHEMA_VERSION and data["data"]["class_names"] == list(PHOTOS)
    assert data["model"]["input_shape"] == [3, 32, 32]

    corr = data["suites"]["corruption"]
    assert set(corr["table"]) == {"mvh-contrast", "mvh-uniform-noise"}
    assert set(corr["table"]["mvh-contrast"]) == {"1", "3"}
    assert corr["table"]["mvh-contrast"]["3"]["n"] == 24
    assert corr["mean_accuracy"]["n"] == 24 * 4

    adv = data["suites"]["adversarial"]
    for norm in ("linf", "l2"):
        r = adv["norms"][norm]
        assert len(r["eps"]) == len(r["accuracy"]) == len(r["min_norm_accuracy"])
        assert r["eps"] == sorted(r["eps"])
        values = [a["value"] for a in r["accuracy"]]
        assert values == sorted(values, reverse=True)  # robust accuracy never rises with eps
        assert all(
            a["value"] <= m["value"] + 1e-9 or m["n"] != a["n"]
            for a, m in zip(r["accuracy"], r["min_norm_accuracy"], strict=True)
        )
        assert r["ensemble"] == ["fmn", "apgd-ce", "apgd-t"] and r["n"] == 8
        assert len(r["min_norms"]) == 12
        assert math.isclose(sum(r["broken_by"].values()), 1.0)
        assert {f["check"] for f in r["sanity"]} >= {"stochastic-forward", "large-budget"}
    assert 0.01 in adv["norms"]["linf"]["eps"] and 0.3 in adv["norms"]["l2"]["eps"]

    cal = data["suites"]["calibration"]
    assert cal["fit_n"] == 60 and cal["n"] == 72 and cal["temperature"] > 0
    assert [s["severity"] for s in cal["under_shift"]] == [0, 2, 4]
    assert cal["under_shift"][1]["n"] == 2 * 16  # two corruptions pooled
    for part in ("before", "after"):
        for key in ("ece", "ece_equal_mass", "accuracy"):
            est = cal[part][key]
            assert est["low"] <= est["high"] and est["n"] == 72
        # exact intervals contain the value; percentile-bootstrap ones of the (upward-biased)
        # ECE need not, so only the accuracy is checked for containment
        acc = cal[part]["accuracy"]
        assert acc["low"] <= acc["value"] <= acc["high"]
    assert sum(cal["before"]["reliability"]["count"]) == 72

    ood = data["suites"]["ood"]
    assert set(ood["sets"]) == {"uniform-noise", "pixel-permuted", "inverted"}
    assert all(s["derived"] for s in ood["sets"].values())
    assert ood["methods"] == ["msp", "max-logit", "energy", "odin", "mahalanobis"]
    m = ood["sets"]["inverted"]["methods"]["mahalanobis"]
    assert 0.0 <= m["auroc"]["value"] <= 1.0 and m["auroc"]["n"] == 48
    assert "higher = more in-distribution" in ood["convention"]

    kinds = [e["kind"] for e in data["examples"]]
    assert kinds.count("clean") == kinds.count("corrupted") == 2
    for e in data["examples"]:
        assert (out / e["file"]).is_file() and e["label"] in PHOTOS
    assert set(data["timings"]) >= {"clean", "corruption", "adversarial", "calibration", "ood"}
    assert (out / "audit.log").read_text().count("done ") == data["run"]["units_run"]


def test_ood_scores_match_direct_calls(tmp_path: Path, rgb_npz: Path) -> None:
    """The suite's MSP AUROC equals ood_metrics on scores computed directly."""
    from robustcv.core.seeding import derive_seed
    from robustcv.data import load_dataset
    from robustcv.diagnostics.ood import derived_ood_sets, msp, ood_metrics

    model = _rgb_model()
    res = run_audit(
        model,
        f"npz:{rgb_npz}",
        tmp_path / "a",
        suites="ood",
        ood_data=["derived:inverted"],
        config={"ood": {"n": 1000, "methods": ["msp"]}},
        progress=False,
    )
    x = load_dataset(f"npz:{rgb_npz}", split="test").x
    inv = derived_ood_sets(x, seed=derive_seed(0, "audit", "ood", "derived"), kinds=("inverted",))
    ref = ood_metrics(msp(model.predict_logits(x)), msp(model.predict_logits(inv["inverted"])))
    got = res.suites["ood"]["sets"]["inverted"]["methods"]["msp"]
    assert got["auroc"]["value"] == pytest.approx(ref.auroc)
    assert got["fpr95"] == pytest.approx(ref.fpr_at_95_tpr)


def test_context_subsets_are_seeded_and_sorted(rgb_npz: Path) -> None:
    from robustcv.data import load_dataset

    cfg = AuditConfig.from_dict({"model": "m", "data": "d", "seed": 3})
    ctx = AuditContext(cfg, _rgb_model(), load_dataset(f"npz:{rgb_npz}"), Path("."))
    a = ctx.subset("ood", 10)
    assert np.array_equal(a, ctx.subset("ood", 10)) and np.all(np.diff(a) > 0)
    assert not np.array_equal(a, ctx.subset("corruption", 10))
    assert len(ctx.subset("ood", None)) == 72


def test_mce_against_a_baseline_audit_is_aggregation_only(tmp_path: Path, rgb_npz: Path) -> None:
    data = f"npz:{rgb_npz}"
    corr = {"n": 30, "corruptions": ["mvh-contrast", "mvh-uniform-noise"], "severities": [1, 3]}
    base = run_audit(
        _rgb_model(seed=1),
        data,
        tmp_path / "base",
        suites="corruption",
        config={"corruption": corr},
        progress=False,
    )
    out = tmp_path / "model"
    plain = run_audit(
        _rgb_model(), data, out, suites="corruption", config={"corruption": corr}, progress=False
    )
    assert plain.suites["corruption"]["mce"] is None
    res = run_audit(
        _rgb_model(),
        data,
        out,
        suites="corruption",
        progress=False,
        config={"corruption": {**corr, "baseline": str(tmp_path / "base")}},
    )
    assert res.run["units_run"] == 0  # a new baseline only re-aggregates stored rows
    tb, tm = base.suites["corruption"]["table"], res.suites["corruption"]["table"]
    ce = {
        c: 100
        * sum(1 - tm[c][s]["value"] for s in tm[c])
        / sum(1 - tb[c][s]["value"] for s in tb[c])
        for c in tm
    }
    got = res.suites["corruption"]
    assert got["ce"] == pytest.approx(ce)
    assert got["mce"] == pytest.approx(sum(ce.values()) / len(ce))
    assert got["mce_corruptions"] == list(ce) and "not ImageNet-C" in " ".join(got["notes"])
    with pytest.raises(InputError, match=r"baseline .* does not exist"):
        run_audit(
            _rgb_model(),
            data,
            out,
            suites="corruption",
            progress=False,
            config={"corruption": {**corr, "baseline": str(tmp_path / "nope")}},
        )


def test_cli_audit_json_and_report(tmp_path: Path, rgb_npz: Path, capsys) -> None:
    net_file = tmp_path / "net.py"
    net_file.write_text(
        "import torch\n"
        "from robustcv.models.architectures import SmallCNN\n"
        "def build():\n"
        "    net = SmallCNN(in_channels=3, num_classes=4, width=8, hidden=16, image_size=32)\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    with torch.no_grad():\n"
        "        for p in net.parameters():\n"
        "            p.copy_(torch.randn(p.shape, generator=g) * 0.2)\n"
        "    return net\n"
    )
    cfg = _write(tmp_path, {"suites": ["clean", "ood"], "ood": {"n": 20, "fit_n": 40}})
    out = tmp_path / "audit"
    argv = [
        "audit",
        "--model",
        f"{net_file}:build",
        "--data",
        f"npz:{rgb_npz}",
        "--out",
        str(out),
        "--config",
        str(cfg),
        "--ood-data",
        "derived:constant",
        "--json",
        "--quiet",
    ]
    assert main(argv) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["config"]["suites"] == ["clean", "ood"]  # from the config file
    assert list(payload["suites"]["ood"]["sets"]) == ["constant"]
    assert payload["suites"]["ood"]["methods"] == ["msp", "max-logit", "energy", "odin"]
    assert "features" in payload["skipped"]["ood/mahalanobis"]
    assert (out / "results.json").is_file() and (out / "report.html").is_file()
    # the same command again resumes and recomputes nothing
    assert main(argv) == 0
    assert json.loads(capsys.readouterr().out)["run"]["units_run"] == 0
