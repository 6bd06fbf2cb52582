"""``convnet export RUN --format onnx|safetensors``: take a trained model out of convnet.

``onnx`` (needs ``pip install convnet[onnx]``): the run's model traced on its input shape
(``(batch, C, H, W)`` as `convnet predict` feeds it, with a dynamic batch unless
``--no-dynamic-batch``), checked with ``onnx.checker`` and, when onnxruntime is installed,
run on a batch of test images next to convnet (the largest difference is printed). A
quantized run (the ``--out`` of `convnet quantize`) exports as a QDQ graph:
QuantizeLinear/DequantizeLinear around float ops, int8 weights, int32 biases.
``--quantized`` on a float run exports its ``RUN-int8`` sibling, quantizing the run into it
first (`convnet quantize`'s defaults) when that folder does not exist yet.

``safetensors``: the weights with metadata another program needs to rebuild the model
(``model``, ``model_options``, ``num_classes``, ``in_channels``, ``input_shape``,
``class_names``, ``mean``/``std`` of the input normalisation, ``task``), each a string
(JSON for lists and dicts) under the file's ``__metadata__``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

CHECK_BATCH = 8  # test images run through convnet and onnxruntime after an ONNX export


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("export", help="write a run's model as ONNX or safetensors",
                              description=__doc__)
    p.add_argument("run_dir", help="the --out folder of a `convnet train` (or `convnet "
                                   "quantize`) run")
    p.add_argument("--format", required=True, choices=["onnx", "safetensors"],
                   help="onnx: a graph for onnxruntime and other runtimes; safetensors: the "
                        "weights with the metadata that rebuilds the model")
    p.add_argument("--out", default=None, metavar="FILE",
                   help="where to write (default RUN/model.onnx or RUN/weights.safetensors)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version (default 17)")
    p.add_argument("--no-dynamic-batch", action="store_true",
                   help="fix the batch size at 1 instead of a symbolic batch dim")
    p.add_argument("--quantized", action="store_true",
                   help="export the int8 (QDQ) model of a float run: its RUN-int8 folder, made "
                        "first with `convnet quantize`'s defaults when missing (a quantized "
                        "run exports as int8 without this flag)")
    from .main import add_threads_option

    add_threads_option(p)
    p.set_defaults(func=run)


def _size(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n} bytes"  # pragma: no cover


def weights_metadata(cfg: dict, info, model_opts: dict) -> dict[str, str]:
    """The safetensors ``__metadata__`` of an exported run (all values strings)."""
    c, s = int(info.channels), int(info.size)
    meta = {
        "format": "convnet-weights", "format_version": "1",
        "model": cfg["model"], "model_options": json.dumps(model_opts),
        "num_classes": str(len(info.classes)), "in_channels": str(c),
        "input_shape": json.dumps([1, c, s, s]), "class_names": json.dumps(list(info.classes)),
        "mean": json.dumps(list(info.mean)), "std": json.dumps(list(info.std)),
        "task": cfg.get("task") or "classify", "dtype": cfg.get("dtype", "float32"),
        "rebuild": "convnet.models.create(model, num_classes=num_classes, "
                   "in_channels=in_channels, **model_options) then load_state_dict",
    }
    return meta


def _test_batch(cfg: dict, info, n: int) -> tuple[np.ndarray, str]:
    """``n`` test images of the run (normalised as in training), or random ones when the
    dataset cannot be read here."""
    from ._setup import make_dataset, make_transform

    try:
        c = dict(cfg, download=False)
        ds = make_dataset(c, info, False, make_transform(c, info, False))
        xs = [np.asarray(ds[i][0].numpy() if hasattr(ds[i][0], "numpy") else ds[i][0])
              for i in range(min(n, len(ds)))]
        if xs:
            return np.stack(xs).astype(np.float32), "test image"
    except Exception:  # noqa: BLE001 - any failure: fall back to random inputs
        pass
    rs = np.random.default_rng(0)
    shape = (n, info.channels, info.size, info.size)
    return rs.standard_normal(shape, dtype=np.float32), "random input"


def _export_onnx(args, run_dir: Path, cfg: dict, info, model, out: Path, quantized: bool):
    from .. import Tensor, no_grad
    from .main import CLIError

    try:
        import onnx
    except ImportError:
        raise CLIError("--format onnx needs the onnx package: pip install convnet[onnx] "
                       "(or pip install onnx)") from None
    import convnet.onnx as cox

    if cfg.get("task") == "detect":
        raise CLIError(f"{run_dir} is a detection run: its boxes come from data-dependent "
                       "post-processing (NMS) that ONNX export does not trace; export the "
                       "backbone from Python with convnet.onnx.export(model.backbone, x, f) "
                       "or use --format safetensors")
    batch, where = _test_batch(cfg, info, CHECK_BATCH)
    example = Tensor._make(batch[:2] if not args.no_dynamic_batch else batch[:1])
    if cfg.get("dtype") == "float64" and not quantized:
        example = Tensor._make(example._data.astype(np.float64))
        batch = batch.astype(np.float64)
    try:
        proto = cox.export(model, example, out, input_names=["input"],
                           output_names=["output"], opset_version=args.opset,
                           dynamic_batch=not args.no_dynamic_batch)
    except cox.ExportError as e:
        raise CLIError(str(e).replace("convnet.onnx.export: ", "")) from None
    shape = ["batch" if d.dim_param else d.dim_value
             for d in proto.graph.input[0].type.tensor_type.shape.dim]
    oshape = ["batch" if d.dim_param else d.dim_value
              for d in proto.graph.output[0].type.tensor_type.shape.dim]
    kind = "int8 QDQ" if quantized else str(batch.dtype)
    print(f"wrote {out} ({_size(out.stat().st_size)}): {cfg['model']} {kind}, input "
          f"({', '.join(map(str, shape))}) -> output ({', '.join(map(str, oshape))}), "
          f"opset {args.opset}, {len(proto.graph.node)} nodes")
    onnx.checker.check_model(str(out), full_check=True)
    print("onnx.checker: ok (full check)")
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime is not installed: skipped running the model (pip install "
              "onnxruntime)")
        return
    xs = batch if not args.no_dynamic_batch else batch[:1]
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": xs})[0]
    with no_grad():
        want = model(Tensor._make(xs))
    want = (want.dequantize() if hasattr(want, "dequantize") else want).numpy()
    diff = float(np.abs(got.astype(np.float64) - want).max())
    line = (f"onnxruntime {ort.__version__}: max |onnxruntime - convnet| = {diff:.3g} on "
            f"{len(xs)} {where}{'s' if len(xs) > 1 else ''} "
            f"(max |output| {float(np.abs(want).max()):.3g})")
    if quantized:
        step = _output_step(proto)
        if step:
            line += f", {diff / step:.2f} output steps (scale {step:.3g})"
    print(line)


def _output_step(proto) -> float | None:
    """The scale of the last DequantizeLinear before the output (one integer step)."""
    from onnx import numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    for n in reversed(proto.graph.node):
        if n.op_type == "DequantizeLinear" and n.input[1] in inits:
            return float(numpy_helper.to_array(inits[n.input[1]]).reshape(-1)[0])
    return None


def _export_safetensors(cfg: dict, info, model, out: Path, quantized: bool) -> None:
    from ..io.safetensors import save_file
    from ._setup import model_options

    opts = model_options(dict(cfg), info)
    meta = weights_metadata(cfg, info, opts)
    if quantized:
        from ..quantization import save_quantized

        # the options include the classes and channels, so load_quantized(file) rebuilds it
        full = dict(opts, num_classes=len(info.classes), in_channels=int(info.channels))
        recipe = dict(cfg.get("quantization") or {}, model=cfg["model"], model_options=full,
                      export=meta)
        save_quantized(model, out, recipe=recipe)
        kind = "int8 weights (convnet.quantization.load_quantized(file) rebuilds the model)"
    else:
        save_file({k: v._data for k, v in model.state_dict().items()}, out, meta)
        kind = f"{len(model.state_dict())} tensors"
    print(f"wrote {out} ({_size(out.stat().st_size)}): {cfg['model']} weights, {kind}, with "
          f"metadata: model, model_options, num_classes {len(info.classes)}, input_shape "
          f"[1, {info.channels}, {info.size}, {info.size}], class_names, mean/std")


def run(args) -> int:
    from ._setup import read_config
    from .evaluate import load_run
    from .main import CLIError

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise CLIError(f"{run_dir} is not a folder; give the --out folder of a `convnet train` "
                       "run")
    if args.quantized and not read_config(run_dir).get("quantization"):
        run_dir = _quantized_sibling(run_dir)
    cfg, info, model = load_run(run_dir)
    quantized = bool(cfg.get("quantization"))
    suffix = ".onnx" if args.format == "onnx" else ".safetensors"
    out = Path(args.out) if args.out else run_dir / ("model" + suffix if args.format == "onnx"
                                                     else "weights" + suffix)
    if out.is_dir():
        raise CLIError(f"--out {out} is a folder; give a file name such as "
                       f"{out / ('model' + suffix)}")
    if args.format == "onnx":
        _export_onnx(args, run_dir, cfg, info, model, out, quantized)
    else:
        _export_safetensors(cfg, info, model, out, quantized)
    sys.stdout.flush()
    return 0


def _quantized_sibling(run_dir: Path) -> Path:
    """``--quantized`` on a float run: its ``RUN-int8`` folder, made now with `convnet
    quantize`'s defaults (1,000 calibration images, x86 qconfig) unless it exists already."""
    from ..quantization.pipeline import quantize_run
    from ._setup import read_config
    from .main import CLIError

    out = run_dir.parent / f"{run_dir.name}-int8"
    if out.is_dir() and any(out.iterdir()):
        cfg = read_config(out) if (out / "config.json").is_file() else {}
        source = (cfg.get("quantization") or {}).get("source_run")
        if source is None or Path(source).resolve() != run_dir.resolve():
            raise CLIError(f"--quantized: {out} exists and is not the quantized copy of "
                           f"{run_dir}; run `convnet quantize {run_dir} --out DIR` and export "
                           "DIR")
        print(f"using the quantized run {out} (made by `convnet quantize`)")
        return out
    print(f"quantizing {run_dir} into {out} first (as `convnet quantize {run_dir} --out "
          f"{out}`: 1,000 calibration images, x86 qconfig)")
    quantize_run(run_dir, out, log=lambda line: print("  " + line))
    return out
