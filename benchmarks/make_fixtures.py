"""Reference fixtures for the corruption fidelity tests, from imagecorruptions 1.1.2.

Usage (needs the bench extra, see pyproject.toml, and scikit-image from the dev extra)::

    OMP_NUM_THREADS=1 python benchmarks/make_fixtures.py          # about 20 min on 1 core
    OMP_NUM_THREADS=1 python benchmarks/make_fixtures.py --check  # recompute and compare only

Writes ``tests/fixtures/corruptions/``:

* ``input_<photo>.png``: the test photos, 224x224 RGB uint8, from scikit-image's bundled sample
  photos (centre square crop, Pillow LANCZOS resize to 224).
* ``<corruption>_<photo>.png``: for each deterministic corruption, the reference outputs at
  severities 1..5 stacked vertically (1120x224 RGB uint8). Each is the corruption function's
  float output (clipped to [0, 255] by the reference) **rounded** to uint8; the reference's own
  ``corrupt()`` truncates instead, which biases every pixel by half a grey level.
* ``reference.json``: versions, seeds and definitions; for every corruption, photo and severity
  the mean absolute change ``mean |y - x|`` (x, y in [0, 1]); for the random corruptions the
  mean (and standard deviation) over seeds of the mean absolute change and of the octave power of
  the change (definitions in ``tests/corruption_stats.py``), plus a split-half estimate of how
  much these means move between two disjoint halves of the seeds.

Random corruptions are seeded with ``np.random.seed(s)`` before each call, s = 0..N-1 (every
photo and severity uses the same seeds). Everything is computed from the float output before any
rounding. Re-running gives byte-identical files for the same library versions.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

import corruption_stats as cs  # noqa: E402
import ic_shims  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "corruptions"
SIZE = 224
PHOTOS = ("astronaut", "chelsea")
DETERMINISTIC = (
    "contrast",
    "brightness",
    "saturate",
    "pixelate",
    "jpeg_compression",
    "defocus_blur",
    "gaussian_blur",
    "zoom_blur",
)
RANDOM = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "speckle_noise",
    "glass_blur",
    "motion_blur",
    "snow",
    "frost",
    "fog",
    "spatter",
    "elastic_transform",
)
#: Seeds per (photo, severity) for the random corruptions. Glass blur is a per-pixel Python loop
#: (slow, and its statistics vary little between seeds); frost (5 photos, random crops), fog (its
#: lowest octave holds a handful of random Fourier components), spatter (rare splashes at low
#: severity), elastic, snow and motion blur get more seeds, so that the reference means move by
#: only a few percent between two halves of the seeds (recorded as split_half_* in the JSON).
N_SEEDS = 48
N_SEEDS_SLOW = {
    "glass_blur": 24,
    "frost": 400,
    "fog": 400,
    "spatter": 400,
    "elastic_transform": 200,
    "snow": 200,
    "motion_blur": 96,
}


def load_photo(name: str) -> np.ndarray:
    """A scikit-image sample photo, centre-cropped to a square and resized to 224x224 RGB uint8."""
    import skimage.data

    img = np.asarray(getattr(skimage.data, name)())[..., :3]
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    crop = Image.fromarray(img[top : top + s, left : left + s])
    return np.asarray(crop.resize((SIZE, SIZE), Image.Resampling.LANCZOS), dtype=np.uint8)


def reference_float(ic: Any, img: np.ndarray, name: str, severity: int) -> np.ndarray:
    """The reference corruption's output in [0, 1] (float64), before any uint8 conversion.

    Same call path as ``imagecorruptions.corrupt`` (a PIL RGB image in, severity), minus its final
    truncating ``np.uint8``.
    """
    out = ic.corruption_dict[name](Image.fromarray(img), severity)
    return np.clip(np.asarray(out, dtype=np.float64) / 255.0, 0.0, 1.0)


def to_uint8(y: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(y * 255.0), 0, 255).astype(np.uint8)


def save_png(path: Path, arr: np.ndarray) -> None:
    # No timestamps or text chunks: the bytes depend only on the pixels and the zlib build.
    Image.fromarray(arr).save(path, format="PNG", optimize=True)


def rounded(v: Any, digits: int = 7) -> Any:
    if isinstance(v, np.ndarray):
        return [rounded(t, digits) for t in v.tolist()]
    if isinstance(v, list):
        return [rounded(t, digits) for t in v]
    if isinstance(v, float):
        return float(f"{v:.{digits}g}")
    return v


def random_stats(ic: Any, x: np.ndarray, name: str, severity: int, n: int) -> dict[str, Any]:
    xf = x.astype(np.float64) / 255.0
    mac, bands = [], []
    for s in range(n):
        np.random.seed(s)
        y = reference_float(ic, x, name, severity)
        mac.append(float(cs.mean_abs_change(xf, y)))
        bands.append(cs.octave_power(xf, y))
    m = np.asarray(mac)
    b = np.stack(bands)
    half = n // 2
    m1, m2 = m[:half].mean(), m[half : 2 * half].mean()
    b1, b2 = b[:half].mean(0), b[half : 2 * half].mean(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        band_split = np.where(b.mean(0) > 0, np.abs(b1 - b2) / b.mean(0), 0.0)
    return {
        "n_seeds": n,
        "mean_abs_change": float(m.mean()),
        "mean_abs_change_std": float(m.std(ddof=1)),
        "octave_power": b.mean(0),
        "octave_power_std": b.std(0, ddof=1),
        # |mean(first half) - mean(second half)| / mean: how far two n/2-seed means drift apart.
        "split_half_rel_mean_abs_change": float(abs(m1 - m2) / m.mean()),
        "split_half_rel_octave_power": band_split,
    }


def build(ic: Any, quiet: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Compute everything; return (reference.json content, {png file name: array})."""
    photos = {p: load_photo(p) for p in PHOTOS}
    pngs = {f"input_{p}.png": img for p, img in photos.items()}
    mac: dict[str, dict[str, list[float]]] = {}
    rand: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in DETERMINISTIC:
        t0 = time.perf_counter()
        mac[name] = {}
        for p, x in photos.items():
            xf = x.astype(np.float64) / 255.0
            outs = [reference_float(ic, x, name, s) for s in range(1, 6)]
            mac[name][p] = [float(cs.mean_abs_change(xf, y)) for y in outs]
            pngs[f"{name}_{p}.png"] = np.concatenate([to_uint8(y) for y in outs], axis=0)
        if not quiet:
            print(f"{name:18s} {time.perf_counter() - t0:6.1f} s", flush=True)
    for name in RANDOM:
        t0 = time.perf_counter()
        n = N_SEEDS_SLOW.get(name, N_SEEDS)
        mac[name], rand[name] = {}, {}
        for p, x in photos.items():
            rows = [random_stats(ic, x, name, s, n) for s in range(1, 6)]
            rand[name][p] = rows
            mac[name][p] = [r["mean_abs_change"] for r in rows]
        if not quiet:
            print(f"{name:18s} {time.perf_counter() - t0:6.1f} s  ({n} seeds)", flush=True)
    ref = {
        "generator": "benchmarks/make_fixtures.py",
        "reference": "imagecorruptions 1.1.2 with benchmarks/ic_shims.py",
        "versions": ic_shims.versions(),
        "size": SIZE,
        "photos": {
            p: f"skimage.data.{p}(): centre square crop, Pillow LANCZOS resize to {SIZE}x{SIZE}"
            for p in PHOTOS
        },
        "seeding": "np.random.seed(s) before each call, s = 0..n_seeds-1, same for every "
        "photo and severity",
        "n_seeds": {name: N_SEEDS_SLOW.get(name, N_SEEDS) for name in RANDOM},
        "deterministic": list(DETERMINISTIC),
        "random": list(RANDOM),
        "deterministic_png": "<corruption>_<photo>.png: severities 1..5 stacked vertically, "
        "each rint(255 * float output)",
        "octave_bands_cycles_per_image": [list(b) for b in cs.BANDS],
        "definitions": "tests/corruption_stats.py",
        "mean_abs_change": mac,
        "random_stats": rand,
    }
    return rounded(_plain(ref)), pngs


def _plain(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _plain(t) for k, t in v.items()}
    if isinstance(v, list | tuple):
        return [_plain(t) for t in v]
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.floating):
        return float(v)
    return v


def dumps(ref: dict[str, Any]) -> str:
    """JSON with one list of numbers per line (diffable, and a third of the indented size)."""
    text = json.dumps(ref, indent=1)
    # Collapse every innermost list (no nested brackets or braces inside) onto one line.
    text = re.sub(r"\[[^\[\]{}]*\]", lambda m: re.sub(r"\s+", " ", m.group(0)), text)
    return text + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="recompute and compare only")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    ic = ic_shims.load()
    ref, pngs = build(ic, quiet=args.quiet)
    text = dumps(ref)
    if args.check:
        old = json.loads((OUT / "reference.json").read_text())
        same = old == json.loads(text)
        for fname, arr in pngs.items():
            stored = np.asarray(Image.open(OUT / fname))
            same &= bool(np.array_equal(stored, arr))
            if not np.array_equal(stored, arr):
                print(f"differs: {fname}")
        print("fixtures are up to date" if same else "fixtures DIFFER from a fresh run")
        raise SystemExit(0 if same else 1)
    OUT.mkdir(parents=True, exist_ok=True)
    for fname, arr in pngs.items():
        save_png(OUT / fname, arr)
    (OUT / "reference.json").write_text(text)
    total = sum(f.stat().st_size for f in OUT.iterdir())
    print(f"wrote {len(pngs) + 1} files to {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
