"""Inference time of one model four ways (not a test): convnet float32, convnet int8,
onnxruntime float32 and onnxruntime int8 (the QDQ export), on one batch of test images.

    python benchmarks/onnx_inference.py RUN RUN-int8 [--batch 256] [--repeats 15]
    python benchmarks/onnx_inference.py          # a small LeNet-5 run made here first

``RUN`` is a ``convnet train`` folder, ``RUN-int8`` its ``convnet quantize`` copy (default:
``RUN-int8`` next to it, made with `convnet quantize`'s defaults when missing). Without
``RUN``, a LeNet-5 is trained for one epoch on 2,000 bundled digits (``--out``, reused when
it is there) and quantized. The four are timed in turn within each repeat (the order rotates,
so a busy moment hits all of them); medians are printed as a Markdown table with the
agreement of each onnxruntime model with its convnet twin. onnxruntime runs on the CPU with
the threads it chooses (``--ort-threads`` sets them).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from convnet.cli.main import main as cli  # noqa: E402


def _default_run(base: Path) -> Path:
    run = base / "lenet5-digits"
    if not (run / "model.safetensors").is_file():
        argv = ["train", "--epochs", "1", "--limit-train", "2000", "--no-progress", "--out",
                str(run), "--overwrite"]
        if cli(argv) != 0:
            raise SystemExit("onnx_inference: training the default run failed")
    return run


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", nargs="?", help="a float classification run (default: made here)")
    p.add_argument("int8", nargs="?", help="its quantized copy (default RUN-int8)")
    p.add_argument("--batch", type=int, default=256, help="images per forward (default 256)")
    p.add_argument("--repeats", type=int, default=15, help="timed rounds (default 15)")
    p.add_argument("--ort-threads", type=int, default=0, help="onnxruntime intra-op threads "
                                                             "(default 0: its choice)")
    p.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "convnet-onnx-bench"),
                   help="where the default run and the .onnx files go")
    args = p.parse_args(argv)

    import onnxruntime as ort

    import convnet
    import convnet.onnx
    from convnet.cli.evaluate import load_run
    from convnet.cli.export_cmd import _quantized_sibling, _test_batch

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run = Path(args.run) if args.run else _default_run(out)
    int8 = Path(args.int8) if args.int8 else _quantized_sibling(run)
    cfg, info, fmodel = load_run(run)
    _, _, qmodel = load_run(int8)
    x, what = _test_batch(cfg, info, args.batch)
    xt = convnet.tensor(x)

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.ort_threads
    sessions = {}
    for name, model in (("float32", fmodel), ("int8", qmodel)):
        path = out / f"{run.name}-{name}.onnx"
        convnet.onnx.export(model, xt[:2], path)
        sessions[name] = ort.InferenceSession(str(path), opts,
                                              providers=["CPUExecutionProvider"])

    with convnet.no_grad():
        ref = {"float32": fmodel(xt).numpy(), "int8": qmodel(xt).numpy()}
    step = [m.scale for m in qmodel.modules() if "scale" in m._buffers][-1]
    agree = {}
    for name, sess in sessions.items():
        got = sess.run(None, {"input": x})[0]
        diff = np.abs(got.astype(np.float64) - ref[name])
        agree[name] = (f"max diff {diff.max():.2g}" if name == "float32" else
                       f"{(np.rint(diff / step) == 0).mean():.2%} bit-exact")

    def convnet_fn(model):
        def call():
            with convnet.no_grad():
                model(xt)
        return call

    cases = {"convnet float32": convnet_fn(fmodel), "convnet int8": convnet_fn(qmodel),
             "onnxruntime float32": lambda: sessions["float32"].run(None, {"input": x}),
             "onnxruntime int8 (QDQ)": lambda: sessions["int8"].run(None, {"input": x})}
    names = list(cases)
    for fn in cases.values():  # warm-up
        fn()
    times = {n: [] for n in names}
    for r in range(args.repeats):
        for n in names[r % 4:] + names[:r % 4]:
            start = time.perf_counter()
            cases[n]()
            times[n].append(time.perf_counter() - start)

    print(f"\n### {cfg['model']} inference, batch {len(x)} ({what}s), median of "
          f"{args.repeats}, onnxruntime {ort.__version__}\n")
    print("| engine | ms per batch | ms per image | vs convnet float32 | agreement |")
    print("|---|---:|---:|---:|---|")
    base = statistics.median(times["convnet float32"])
    for n in names:
        t = statistics.median(times[n])
        note = agree["int8" if "int8" in n else "float32"] if n.startswith("onnx") else \
            "reference"
        print(f"| {n} | {t * 1e3:.2f} | {t * 1e3 / len(x):.4f} | {base / t:.2f}x | {note} |")
    print(f"\nruns: {run} and {int8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
