"""Corruption engine vs imagecorruptions 1.1.2: time per image for the 19 corruptions.

Usage (needs the bench extra, see pyproject.toml, and scikit-image from the dev extra)::

    python benchmarks/corruptions_vs_imagecorruptions.py             # writes docs/benchmarks.md
    python benchmarks/corruptions_vs_imagecorruptions.py --quick     # smoke test, writes nothing
    python benchmarks/corruptions_vs_imagecorruptions.py --device cuda   # adds a CUDA column
    python benchmarks/corruptions_vs_imagecorruptions.py --batch-sizes 1,4,16,64
        # pixelate and JPEG side by side at each batch size (prints only, writes nothing)

64 natural RGB images (seeded random 224x224 crops of scikit-image's sample photos) at severity
3, CPU with 2 threads. imagecorruptions (with benchmarks/ic_shims.py) runs its public
``corrupt()`` one uint8 image at a time, as it must; robustcv corrupts the whole float32 batch in
one call and its time per image is the batch time / 64. Each timing is the median of
``--repeats`` runs after one warm-up call. Run it on an otherwise idle machine: the ratios are
what to compare across machines.

``--batch-sizes B1,B2,...`` measures the fixed per-call costs instead: for each batch size B,
robustcv corrupts the same ``--n`` images in calls of B images (time per image = total /
``--n``) and imagecorruptions runs them one at a time, interleaved in the same repeat so that
both see the same machine load; the table gives each side's median and the ratio robustcv /
imagecorruptions (the goal: at most 1.25x at every batch size).
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import ic_shims  # noqa: E402

DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- corruptions:begin -->", "<!-- corruptions:end -->"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
SIZE = 224
SLOWER_LIMIT = 1.25


def natural_images(n: int, seed: int = 0) -> np.ndarray:
    """``n`` random 224x224 RGB uint8 crops of scikit-image's sample photos, (n, 224, 224, 3)."""
    import skimage.data

    photos = [np.asarray(getattr(skimage.data, p)())[..., :3] for p in PHOTOS]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        img = photos[int(rng.integers(len(photos)))]
        top = int(rng.integers(img.shape[0] - SIZE + 1))
        left = int(rng.integers(img.shape[1] - SIZE + 1))
        out.append(img[top : top + SIZE, left : left + SIZE])
    return np.ascontiguousarray(np.stack(out))


def median_time(
    fn: Callable[[], object],
    repeats: int,
    sync: Callable[[], None],
    warmup: Callable[[], object] | None = None,
) -> float:
    (warmup or fn)()  # warm-up (caches, kernels, lazy imports)
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def registered() -> set[str]:
    import robustcv.corruptions  # noqa: F401  (registers what the package wires)

    for mod in ("noise", "blur", "weather", "digital"):
        try:
            importlib.import_module(f"robustcv.corruptions.{mod}")
        except ModuleNotFoundError as err:
            if err.name != f"robustcv.corruptions.{mod}":
                raise
    from robustcv.corruptions import CORRUPTIONS

    return set(CORRUPTIONS.names())


def fmt_ms(v: float | None) -> str:
    return "-" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.1f}")


def fmt_ratio(ic: float, ours: float | None) -> str:
    if ours is None:
        return "-"
    r = ic / ours
    return f"{r:.1f}x" if r >= 1 else f"**{r:.2g}x**"


def batch_size_table(
    ic: object,
    imgs: np.ndarray,
    x: torch.Tensor,
    names: list[str],
    sizes: list[int],
    severity: int,
    repeats: int,
) -> list[tuple[str, int, float, float]]:
    """(corruption, batch size, imagecorruptions ms/img, robustcv ms/img) per case.

    Per repeat, imagecorruptions corrupts the ``n`` images one at a time and robustcv corrupts
    them in consecutive calls of ``size`` images, one right after the other (same load).
    """
    from robustcv.corruptions import corrupt

    n = len(imgs)
    rows = []
    for size in sizes:
        batches = [x[i : i + size] for i in range(0, n, size)]
        for name in names:

            def run_ic(name: str = name) -> None:
                np.random.seed(0)
                for img in imgs:
                    ic.corrupt(img, corruption_name=name, severity=severity)  # type: ignore[attr-defined]

            def run_rc(name: str = name, batches: list[torch.Tensor] = batches) -> None:
                for b in batches:
                    corrupt(b, name, severity, seed=0, spec="imagenet-c")

            run_ic()  # warm-up
            run_rc()
            t_ic, t_rc = [], []
            for _ in range(repeats):
                start = time.perf_counter()
                run_ic()
                t_ic.append(time.perf_counter() - start)
                start = time.perf_counter()
                run_rc()
                t_rc.append(time.perf_counter() - start)
            a = statistics.median(t_ic) / n * 1e3
            b = statistics.median(t_rc) / n * 1e3
            rows.append((name, size, a, b))
            print(
                f"batch {size:3d}  {name:18s} imagecorruptions {fmt_ms(a):>7s} ms/img  robustcv "
                f"{fmt_ms(b):>7s} ms/img  robustcv/ic {b / a:.2f}x",
                flush=True,
            )
    return rows


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=64, help="images (default 64)")
    parser.add_argument("--severity", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch and OpenCV threads")
    parser.add_argument("--device", default="cpu", help="add a column for this device (cuda)")
    parser.add_argument("--corruptions", nargs="*", help="subset (default: all 19)")
    parser.add_argument("--quick", action="store_true", help="8 images, 1 repeat, no doc write")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/benchmarks.md")
    parser.add_argument(
        "--batch-sizes",
        default=None,
        help="comma-separated batch sizes (e.g. 1,4,16,64): time pixelate and JPEG (or "
        "--corruptions) at each batch size side by side with imagecorruptions; prints a table, "
        "writes nothing",
    )
    args = parser.parse_args()
    if args.quick:
        args.n, args.repeats, args.no_write = min(args.n, 8), 1, True

    ic = ic_shims.load()
    import cv2

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    from robustcv.corruptions import corrupt

    names = args.corruptions or ic.get_corruption_names("all")
    have = registered()
    imgs = natural_images(args.n)
    x_cpu = torch.from_numpy(imgs).permute(0, 3, 1, 2).float().div(255.0).contiguous()
    if args.batch_sizes:
        sizes = sorted({int(v) for v in args.batch_sizes.split(",") if v.strip()})
        if not sizes or sizes[0] < 1:
            parser.error("--batch-sizes needs positive ints, e.g. 1,4,16,64")
        picked = args.corruptions or ["pixelate", "jpeg_compression"]
        rows = batch_size_table(ic, imgs, x_cpu, picked, sizes, args.severity, args.repeats)
        print()
        print(
            f"{args.n} natural RGB 224x224 images, severity {args.severity}, "
            f"{args.threads} threads, medians of {args.repeats} interleaved repeats"
        )
        print("| corruption | batch size | imagecorruptions ms/img | robustcv ms/img | "
              "robustcv / imagecorruptions |")  # fmt: skip
        print("| --- | ---: | ---: | ---: | ---: |")
        for name, size, a, b in sorted(rows):
            flag = " **over 1.25x**" if b / a > SLOWER_LIMIT else ""
            print(f"| {name} | {size} | {fmt_ms(a)} | {fmt_ms(b)} | {b / a:.2f}x{flag} |")
        return
    devices = ["cpu"]
    if args.device != "cpu":
        if args.device.startswith("cuda") and not torch.cuda.is_available():
            print(f"{args.device} not available; CPU only", flush=True)
        else:
            devices.append(args.device)

    def no_sync() -> None:
        return None

    def cuda_sync() -> None:
        torch.cuda.synchronize()

    sev = args.severity
    rows: list[tuple[str, float, dict[str, float | None]]] = []
    for name in names:

        def run_ic(name: str = name) -> None:
            np.random.seed(0)
            for img in imgs:
                ic.corrupt(img, corruption_name=name, severity=sev)

        def warm_ic(name: str = name) -> None:
            np.random.seed(0)
            ic.corrupt(imgs[0], corruption_name=name, severity=sev)

        t_ic = median_time(run_ic, args.repeats, no_sync, warm_ic) / args.n * 1e3
        ours: dict[str, float | None] = {}
        for dev in devices:
            if name not in have:
                ours[dev] = None
                continue
            x = x_cpu.to(dev)
            sync = cuda_sync if dev.startswith("cuda") else no_sync

            def run_rc(name: str = name, x: torch.Tensor = x) -> None:
                corrupt(x, name, sev, seed=0, spec="imagenet-c")

            ours[dev] = median_time(run_rc, args.repeats, sync) / args.n * 1e3
        rows.append((name, t_ic, ours))
        cells = "  ".join(f"{d}: {fmt_ms(ours[d]):>7s} ms" for d in devices)
        print(f"{name:18s} imagecorruptions {fmt_ms(t_ic):>7s} ms  robustcv {cells}", flush=True)

    # ------------------------------------------------------------------ table
    head = "| corruption | imagecorruptions ms/img | robustcv CPU ms/img | speed-up |"
    sep = "| --- | ---: | ---: | ---: |"
    for dev in devices[1:]:
        head += f" robustcv {dev} ms/img | speed-up ({dev}) |"
        sep += " ---: | ---: |"
    lines = [head, sep]
    for name, t_ic, ours in rows:
        line = (
            f"| {name} | {fmt_ms(t_ic)} | {fmt_ms(ours['cpu'])} | {fmt_ratio(t_ic, ours['cpu'])} |"
        )
        for dev in devices[1:]:
            line += f" {fmt_ms(ours[dev])} | {fmt_ratio(t_ic, ours[dev])} |"
        lines.append(line)
    done = [r for r in rows if r[2]["cpu"] is not None]
    total_ic = sum(r[1] for r in done)
    summary = []
    if done:
        total = f"| **all {len(done)}** | {fmt_ms(total_ic)} |"
        for dev in devices:
            t = sum(r[2][dev] or 0.0 for r in done)
            total += f" {fmt_ms(t)} | {fmt_ratio(total_ic, t)} |"
            summary.append(
                f"Overall on {dev}: {total_ic / t:.2f}x (imagecorruptions time per image / "
                f"robustcv time per image, summed over the {len(done)} corruptions)"
            )
        lines.append(total)
    missing = [r[0] for r in rows if r[2]["cpu"] is None]
    slower = [
        (n, ours["cpu"] / t) for n, t, ours in done if ours["cpu"] is not None and ours["cpu"] > t
    ]
    flagged = [n for n, r in slower if r > SLOWER_LIMIT]
    notes = []
    if missing:
        notes.append(f"Not implemented yet (left out of the totals): {', '.join(missing)}.")
    if slower:
        notes.append(
            "Slower than imagecorruptions on CPU: "
            + ", ".join(f"{n} ({r:.2f}x slower)" for n, r in slower)
            + "."
        )
    if flagged:
        notes.append(f"**Over the {SLOWER_LIMIT}x limit: {', '.join(flagged)}.**")

    print()
    print("\n".join(lines))
    print("\n".join(summary + notes))

    if args.no_write:
        return
    import cv2 as _cv2

    versions = ic_shims.versions()
    machine = (
        f"{platform.machine()}, {cpu_name()} ({os.cpu_count()} cores), {args.threads} threads, "
        f"torch {torch.__version__}, numpy {versions['numpy']}, imagecorruptions "
        f"{versions['imagecorruptions']} (with benchmarks/ic_shims.py), scikit-image "
        f"{versions['scikit-image']}, scipy {versions['scipy']}, OpenCV {_cv2.__version__}, "
        f"Pillow {versions['pillow']}"
    )
    if len(devices) > 1:
        machine += f", {torch.cuda.get_device_name(devices[1])}"
    cmd = "python benchmarks/corruptions_vs_imagecorruptions.py"
    if args.n != 64:
        cmd += f" --n {args.n}"
    if args.severity != 3:
        cmd += f" --severity {args.severity}"
    if args.device != "cpu":
        cmd += f" --device {args.device}"
    if args.corruptions:
        cmd += " --corruptions " + " ".join(args.corruptions)
    section = "\n".join(
        [
            BEGIN,
            f"## Corruptions vs imagecorruptions 1.1.2 ({args.n} natural RGB images, 224x224, "
            f"severity {sev})",
            "",
            f"Reproduce: `{cmd}`  ",
            f"Machine: {machine}",
            "",
            "imagecorruptions runs its `corrupt()` on one uint8 image at a time; robustcv "
            f"corrupts the float32 batch of {args.n} in one call (time per image = batch time / "
            f"{args.n}). Medians of {args.repeats} repeats after a warm-up. Speed-up = "
            "imagecorruptions time / robustcv time; below 1x (bold) robustcv is slower.",
            "",
            *lines,
            "",
            *(f"{s}." for s in summary),
            *notes,
            END,
        ]
    )
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if BEGIN in text and END in text:
        before, rest = text.split(BEGIN, 1)
        after = rest.split(END, 1)[1]
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    DOC.write_text(text)
    print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
