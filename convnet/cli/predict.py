"""``convnet predict DIR IMAGE|FOLDER...``: top-k classes for your own images.

Any image Pillow reads works (a folder means the image files in it, sorted). Images are framed
as the run's training images were (convnet/data/user_images.py): transparency becomes
white; for MNIST runs the ink is found, inverted to light-on-dark when it is dark, cropped,
scaled to 20 px and centred by its centre of mass in 28x28, even on a photographed sheet; for
Fashion-MNIST the object's box is scaled to 28 px; other runs resize the shorter side and crop
the centre. ``--save-input DIR`` writes what the model saw. For a segmentation run (U-Net) a
colour-coded mask and an overlay are written per image (next to it, or in ``--out``); for a
detection run, NAME_boxes.png with each box, class and score, and one printed line per box.
A file that cannot be read is reported and the others are still predicted (exit status 2).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

BATCH = 256  # images per forward pass
# segmentation masks: background black, then matplotlib's tab10 with its grey made yellow
# (a grey class would vanish over the grey input in the overlay)
PALETTE = [(0, 0, 0), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40),
           (148, 103, 189), (140, 86, 75), (227, 119, 194), (255, 221, 0), (188, 189, 34),
           (23, 190, 207)]


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("predict", help="classify image files with a trained run",
                              description=__doc__)
    p.add_argument("run_dir", help="the --out folder of a `convnet train` run")
    p.add_argument("images", nargs="+", help="image files (png, jpg, ...) or folders of them")
    p.add_argument("--topk", type=int, default=3, help="how many classes to show (default 3)")
    p.add_argument("--invert", choices=["auto", "yes", "no"], default="auto",
                   help="invert colours first (default auto: for MNIST-like runs, when the ink "
                        "is darker than the background)")
    p.add_argument("--save-input", default=None, metavar="DIR",
                   help="write what the model saw as NAME.png in DIR (its input size, 8-bit)")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="segmentation runs: where NAME_mask.png and NAME_overlay.png go "
                        "(default: next to each image)")
    p.add_argument("--scale", type=int, default=None,
                   help="segmentation runs: enlarge mask and overlay by this factor (default 8); "
                        "detection runs: the picture with boxes (default: up to 8, about 512 px)")
    p.add_argument("--score-threshold", type=float, default=None,
                   help="detection runs: draw and print boxes with at least this score "
                        "(default 0.5)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    from .main import add_threads_option

    add_threads_option(p)
    p.set_defaults(func=run)


def prepare_input(path: Path, cfg: dict, size: int, channels: int, invert: str):
    """Image file -> (normalised ``(C, size, size)`` float32, :class:`Prepared` facts)."""
    from ..data.user_images import prepare_image, style_for_dataset

    p = prepare_image(path, size, channels, style_for_dataset(cfg["dataset"]), invert)
    mean = np.asarray(cfg["mean"], dtype=np.float32).reshape(-1, 1, 1)
    std = np.asarray(cfg["std"], dtype=np.float32).reshape(-1, 1, 1)
    return ((p.pixels - mean) / std).astype(np.float32), p


def prepare(path: Path, cfg: dict, size: int, channels: int, invert: str) -> np.ndarray:
    """Image file -> normalised ``(C, size, size)`` float32, framed as the training images."""
    return prepare_input(Path(path), cfg, size, channels, invert)[0]


def expand(args: list[str]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Files named on the command line, with each folder replaced by its image files (sorted,
    hidden files and other extensions skipped); returns (paths, [(folder, error)])."""
    from ..data.datasets.folder import IMG_EXTENSIONS

    paths, errors = [], []
    for a in args:
        p = Path(a)
        if not p.is_dir():
            paths.append(p)
            continue
        found = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith(".")
                       and f.suffix.lower() in IMG_EXTENSIONS)
        if not found:
            errors.append((p, f"{p}: no image files in this folder ({', '.join(IMG_EXTENSIONS)})"))
        paths.extend(found)
    return paths, errors


def unique_stems(paths: list[Path]) -> list[str]:
    """Output names for ``paths``: the stem, or stem_ext / stem-N when stems repeat."""
    count: dict[str, int] = {}
    for p in paths:
        count[p.stem] = count.get(p.stem, 0) + 1
    names, used = [], set()
    for p in paths:
        name = p.stem if count[p.stem] == 1 else f"{p.stem}_{p.suffix.lstrip('.')}"
        base, n = name, 2
        while name in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        names.append(name)
    return names


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` in [0, 1] -> ``(H, W)`` or ``(H, W, 3)`` uint8."""
    a = np.clip(pixels, 0, 1) * 255 + 0.5
    a = a[0] if a.shape[0] == 1 else a.transpose(1, 2, 0)
    return a.astype(np.uint8)


def run(args) -> int:
    from PIL import Image

    from .. import no_grad
    from ..tensor import Tensor
    from .evaluate import load_run
    from .main import CLIError

    if args.topk < 1:
        raise CLIError(f"--topk: expected a positive number of classes, got {args.topk}")
    if args.scale is not None and args.scale < 1:
        raise CLIError(f"--scale: expected a positive integer, got {args.scale}")
    for opt, d in (("--save-input", args.save_input), ("--out", args.out)):
        if d and Path(d).exists() and not Path(d).is_dir():
            raise CLIError(f"{opt}: {d} is a file; give a folder")
    cfg, info, model = load_run(Path(args.run_dir))
    if cfg.get("task") == "detect":
        from .detect import predict_run

        return predict_run(args, cfg, info, model)
    if args.score_threshold is not None:
        raise CLIError(f"--score-threshold: {args.run_dir} is not a detection run")
    segment = cfg.get("task") == "segment"
    args.scale = args.scale or 8
    if args.out and not segment:
        raise CLIError(f"--out: {args.run_dir} is a classifier; --out is where segmentation "
                       "runs write their masks")
    paths, empty = expand(args.images)
    results, inputs, errors = [], [], []
    for folder, e in empty:
        errors.append(e)
        print(f"convnet predict: error: {e}", file=sys.stderr)
        results.append({"image": str(folder), "error": e})
    names = unique_stems(paths)
    for path, name in zip(paths, names):
        try:
            x, prep = prepare_input(path, cfg, info.size, info.channels, args.invert)
        except (FileNotFoundError, ValueError) as e:  # one bad file does not stop the batch
            errors.append(str(e))
            print(f"convnet predict: error: {e}", file=sys.stderr)
            results.append({"image": str(path), "error": str(e)})
            continue
        for note in prep.notes:
            print(f"convnet predict: warning: {path}: {note}", file=sys.stderr)
        r = {"image": str(path), **prep.facts()}
        if args.save_input:
            out = Path(args.save_input) / f"{name}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(to_uint8(prep.pixels)).save(out)
            r["saved_input"] = str(out)
        results.append(r)
        inputs.append((r, x, prep, name))
    first = next(iter(model.parameters()), None)  # an int8 run has no parameters
    dtype = first._data.dtype if first is not None else np.dtype(np.float32)
    for i in range(0, len(inputs), BATCH):
        chunk = inputs[i:i + BATCH]
        with no_grad():
            out = model(Tensor._make(np.stack([c[1] for c in chunk]).astype(dtype)))._data
        for (r, _, prep, name), o in zip(chunk, out.astype(np.float64)):
            if segment:
                r.update(_write_mask(o, prep, Path(r["image"]), name, info.classes, args))
            else:
                r["top"] = _top(o, info.classes, args.topk)
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        for r in results:
            if "error" not in r:
                print(_line(r))
    return 2 if errors else 0


def _top(logits: np.ndarray, classes: list, k: int) -> list[dict]:
    """Softmax of one image's logits -> the k most likely classes (ties: lower index first)."""
    z = np.exp(logits - logits.max())
    pr = z / z.sum()
    top = np.argsort(-pr, kind="stable")[:min(k, len(classes))]
    return [{"class": classes[i], "index": int(i), "probability": float(pr[i])} for i in top]


def _write_mask(logits: np.ndarray, prep, image: Path, name: str, classes: list, args) -> dict:
    """Per-pixel classes of one image (``logits`` (K, H, W)) -> mask and overlay PNGs.

    The mask is a palette PNG whose pixel values are the class indices (``np.asarray`` of it
    gives the labels); the overlay blends the class colours (50%) over the model's input.
    """
    from PIL import Image

    labels = logits.argmax(axis=0).astype(np.uint8)
    k = len(classes)
    palette = _palette(k)
    folder = Path(args.out) if args.out else image.parent
    folder.mkdir(parents=True, exist_ok=True)
    s = args.scale
    big = labels.repeat(s, 0).repeat(s, 1)
    mask = Image.fromarray(big, "P")
    mask.putpalette(np.asarray(palette, np.uint8).ravel().tolist())
    mask_path, overlay_path = folder / f"{name}_mask.png", folder / f"{name}_overlay.png"
    mask.save(mask_path)
    seen = np.clip(prep.pixels, 0, 1)
    seen = np.repeat(seen, 3, axis=0) if seen.shape[0] == 1 else seen
    rgb = seen.transpose(1, 2, 0).repeat(s, 0).repeat(s, 1) * 255
    colour = np.asarray(palette, np.float64)[big]
    fg = (big > 0)[..., None]
    blend = np.where(fg, 0.5 * rgb + 0.5 * colour, rgb)
    counts = np.bincount(labels.ravel(), minlength=k)
    found = [{"class": classes[i], "index": int(i), "fraction": float(counts[i] / labels.size)}
             for i in np.argsort(-counts, kind="stable") if counts[i] > 0]
    _with_legend(Image.fromarray((blend + 0.5).astype(np.uint8)), found, palette).save(overlay_path)
    return {"mask": str(mask_path), "overlay": str(overlay_path), "classes": found}


def _with_legend(img, found: list[dict], palette: list):
    """``img`` above one line per class found: its colour, name and share of the pixels."""
    from PIL import Image, ImageDraw

    line = 14
    out = Image.new("RGB", (max(img.width, 160), img.height + line * len(found) + 4), "white")
    out.paste(img, (0, 0))
    draw = ImageDraw.Draw(out)
    for j, c in enumerate(found):
        y = img.height + 2 + j * line
        draw.rectangle([4, y + 1, 14, y + line - 3], fill=tuple(palette[c["index"]]),
                       outline=(90, 90, 90))
        draw.text((20, y), f"{c['class']}  {100 * c['fraction']:.1f}%", fill="black")
    return out


def _palette(k: int) -> list[tuple[int, int, int]]:
    """``k`` fixed colours: :data:`PALETTE`, then PASCAL VOC's bit-interleaved colours."""
    out = list(PALETTE[:k])
    i = len(out)
    while len(out) < k:
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        out.append((r, g, b))
        i += 1
    return out


def _line(r: dict) -> str:
    """One printed line per image: the answer, then how the image was framed."""
    how = ["inverted"] if r["inverted"] else []
    if r["cropped"]:
        left, top, right, bottom = r["box"]
        how.append(f"cropped to {right - left}x{bottom - top} px")
    how.append(f"scaled {r['scale']:.3g}x")
    if "saved_input" in r:
        how.append(f"input saved as {r['saved_input']}")
    if "top" in r:
        answer = ", ".join(f"{t['class']} ({t['probability']:.3f})" for t in r["top"])
    else:
        found = ", ".join(f"{c['class']} {100 * c['fraction']:.1f}%" for c in r["classes"])
        answer = f"{found} -> {r['mask']}, {r['overlay']}"
    return f"{r['image']}: {answer}   [{', '.join(how)}]"
