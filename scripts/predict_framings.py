"""Frame real MNIST test digits as users make them and measure `convnet predict` on them.

    python scripts/predict_framings.py RUN_DIR [--n 100] [--out DIR] [--seed 0]

RUN_DIR is a digits run (``make demo`` writes ``runs/lenet5-mnist-bundled``). Four framings of
the bundled test digits (``convnet/data/bundled/mnist_digits.npz``), each first enlarged to
100-300 px as real drawings and photos are larger than 28 px:

- ``mnist``: the MNIST convention itself, white on black 28x28;
- ``transparent``: a black digit on a transparent RGBA PNG (alpha = ink), as drawing apps export;
- ``canvas``: a small dark digit somewhere off-centre on a large white canvas (PNG);
- ``photo``: a photographed grey sheet as JPEG: paper grey 180-210 with a lighting gradient,
  noise and a few specks, dark ink, blur, JPEG quality 70-90.

The real CLI (``python -m convnet predict RUN_DIR --json --save-input ...``) classifies them and
the accuracy per framing is printed. The images go to ``--out`` (default a temporary folder),
with what the model saw under ``<out>/<framing>/seen``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

FRAMINGS = ("mnist", "transparent", "canvas", "photo")
BUNDLED = Path(__file__).resolve().parents[1] / "convnet" / "data" / "bundled" / "mnist_digits.npz"


def _enlarged(digit: np.ndarray, side: int) -> np.ndarray:
    """(28, 28) uint8 -> (side, side) float in [0, 1] (bicubic, clipped)."""
    big = Image.fromarray(digit.astype(np.float32) / 255, mode="F").resize((side, side), Image.BICUBIC)
    return np.clip(np.asarray(big), 0, 1)


def frame(digit: np.ndarray, how: str, rng: np.random.Generator) -> Image.Image:
    """One user-made picture of ``digit`` ((28, 28) uint8, white on black)."""
    if how == "mnist":
        return Image.fromarray(digit)
    if how == "transparent":
        side = int(rng.integers(100, 301))
        ink = _enlarged(digit, side)
        pad = [int(side * rng.uniform(0.05, 0.4)) for _ in range(4)]  # the drawing's margins
        alpha = np.pad(ink, ((pad[0], pad[1]), (pad[2], pad[3])))
        rgba = np.zeros(alpha.shape + (4,), np.uint8)  # black strokes, transparent elsewhere
        rgba[..., 3] = np.round(alpha * 255)
        return Image.fromarray(rgba, "RGBA")
    if how == "canvas":
        h, w = int(rng.integers(400, 801)), int(rng.integers(500, 1001))
        side = int(rng.integers(60, 161))
        ink = _enlarged(digit, side)
        y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
        canvas = np.ones((h, w))
        canvas[y:y + side, x:x + side] -= ink
        return Image.fromarray(np.round(canvas * 255).astype(np.uint8))
    if how == "photo":
        h, w = int(rng.integers(300, 481)), int(rng.integers(400, 641))
        side = int(rng.integers(150, min(h, w) - 20))
        ink = _enlarged(digit, side)
        y = int(rng.integers(0, h - side))
        x = int(rng.integers(0, w - side))
        full = np.zeros((h, w))
        full[y:y + side, x:x + side] = ink
        yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
        level = rng.uniform(180, 210)
        g = rng.uniform(-30, 30, size=2)  # uneven lighting across the sheet
        paper = level + g[0] * (yy - 0.5) + g[1] * (xx - 0.5) - 12 * ((yy - 0.5) ** 2 + (xx - 0.5) ** 2)
        for _ in range(int(rng.integers(0, 6))):  # dust and pen specks
            sy, sx = int(rng.integers(0, h - 3)), int(rng.integers(0, w - 3))
            full[sy:sy + 2, sx:sx + 2] = np.maximum(full[sy:sy + 2, sx:sx + 2], rng.uniform(0.3, 0.8))
        ink_level = rng.uniform(20, 70)
        img = paper * (1 - full) + ink_level * full + rng.normal(0, rng.uniform(3, 8), (h, w))
        im = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.6, 1.8)))
        return im.convert("RGB")  # phones save colour JPEGs
    raise ValueError(f"unknown framing {how!r}")


def write(images: list[Image.Image], how: str, folder: Path, rng: np.random.Generator) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, im in enumerate(images):
        if how == "photo":
            p = folder / f"{i:04d}.jpg"
            im.save(p, quality=int(rng.integers(70, 91)))
        else:
            p = folder / f"{i:04d}.png"
            im.save(p)
        paths.append(p)
    return paths


def predict_json(run_dir: str, paths: list[Path], save_input: Path | None = None,
                 in_process: bool = False) -> list[dict]:
    """``convnet predict RUN_DIR PATHS --json --topk 1`` (a subprocess, or ``main()`` in this
    process, which sees models registered here)."""
    args = ["predict", run_dir, *map(str, paths), "--json", "--topk", "1"]
    if save_input is not None:
        args += ["--save-input", str(save_input)]
    if in_process:
        import contextlib
        import io

        from convnet.cli.main import main as cli

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc = cli(args)
        out, err = buf.getvalue(), ""
    else:
        res = subprocess.run([sys.executable, "-m", "convnet", *args], capture_output=True,
                             text=True)
        rc, out, err = res.returncode, res.stdout, res.stderr
    if rc != 0:
        raise RuntimeError(f"predict failed ({rc}): {err.strip()}")
    return json.loads(out)


def measure(run_dir: str, n: int, out: Path, seed: int = 0,
            framings: tuple[str, ...] = FRAMINGS, in_process: bool = False) -> dict[str, float]:
    """Accuracy of ``convnet predict`` per framing on the first ``n`` bundled test digits."""
    data = np.load(BUNDLED)
    digits, labels = data["test_images"][:n], data["test_labels"][:n]
    rng = np.random.default_rng(seed)
    acc = {}
    for how in framings:
        paths = write([frame(d, how, rng) for d in digits], how, out / how, rng)
        res = predict_json(run_dir, paths, out / how / "seen", in_process)
        top = [int(r["top"][0]["class"]) for r in res]
        acc[how] = float(np.mean(np.asarray(top) == labels))
    return acc


TITLES = {"mnist": "MNIST convention", "transparent": "transparent PNG",
          "canvas": "small, on a big canvas", "photo": "photo of a sheet (JPEG)"}


def sheet(run_dir: str, out: Path, path: Path, index: int = 0, in_process: bool = False) -> None:
    """One picture: each framing of digit ``index`` (top) and what the model saw (bottom)."""
    from PIL import ImageDraw

    cell, pad, text = 200, 10, 16
    img = Image.new("RGB", (len(FRAMINGS) * (cell + pad) + pad, 2 * cell + 3 * pad + 2 * text),
                    "white")
    draw = ImageDraw.Draw(img)
    for k, how in enumerate(FRAMINGS):
        src = sorted((out / how).glob(f"{index:04d}.*"))[0]
        r = predict_json(run_dir, [src], out / how / "sheet", in_process)[0]
        user = Image.open(src).convert("RGBA")
        user.thumbnail((cell, cell), Image.LANCZOS)
        if user.width < cell // 2:  # the 28-px convention: enlarge it to be seen
            user = user.resize((cell // 2, cell // 2), Image.NEAREST)
        yy, xx = np.mgrid[0:user.height, 0:user.width] // 8
        checks = np.where((yy + xx) % 2 == 0, 205, 255).astype(np.uint8)  # shows transparency
        back = Image.fromarray(checks).convert("RGBA")
        x = pad + k * (cell + pad)
        ux, uy = x + (cell - user.width) // 2, text + pad + (cell - user.height) // 2
        img.paste(Image.alpha_composite(back, user).convert("RGB"), (ux, uy))
        draw.rectangle([ux - 1, uy - 1, ux + user.width, uy + user.height], outline=(150, 150, 150))
        draw.text((x, 2), TITLES[how], fill="black")
        seen = Image.open(r["saved_input"]).resize((cell, cell), Image.NEAREST)
        y = text + 2 * pad + cell
        img.paste(seen.convert("RGB"), (x, y + text))
        t = r["top"][0]
        draw.text((x, y), f"model input -> {t['class']} ({t['probability']:.2f})", fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("--n", type=int, default=100, help="digits per framing (default 100)")
    ap.add_argument("--out", default=None, help="where to write the images (default: temporary)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sheet", default=None, metavar="PNG",
                    help="also draw one digit in each framing beside what the model saw")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        acc = measure(args.run_dir, args.n, out, args.seed)
        if args.sheet:
            sheet(args.run_dir, out, Path(args.sheet))
        for how, a in acc.items():
            print(f"{how:<12} {a:.3f}  ({args.n} digits)")
        print(f"{'all':<12} {np.mean(list(acc.values())):.3f}")
        if args.out:
            print(f"images in {out}/<framing>, what the model saw in {out}/<framing>/seen")


if __name__ == "__main__":
    main()
