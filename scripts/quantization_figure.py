"""Draw the two quantization pictures of docs/compression_and_export.md.

    python scripts/quantization_figure.py [--run runs/fm-simple] [--out docs/images/quantization.png]

Left: the rounding error ``x - dequantize(quantize(x))`` of the worked example (range
[-1.2, 3.1] in quint8: scale 0.016863, zero point 71) near the top of the range: a sawtooth
within +-scale/2 inside it, growing without bound past it (clipping). Right: for the first convolution of a
trained run, folded with its batch norm (``fuse_conv_bn_eval``), the RMS quantization error of
each output channel's weights relative to that channel's RMS, with one int8 scale for the
whole tensor against one scale per channel (``PerChannelMinMaxObserver``). Without ``--run``,
a random conv with channel scales spread over two decades stands in.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import convnet as cn  # noqa: E402
import convnet.quantization as cq  # noqa: E402


def first_folded_conv(run: Path | None) -> tuple[np.ndarray, str]:
    """``(C_out, C_in, kH, kW)`` weights of the run's first conv with its BN folded in."""
    if run is None:
        rng = np.random.default_rng(0)
        w = rng.standard_normal((32, 1, 3, 3)) * np.logspace(-2, 0, 32)[:, None, None, None]
        return w, "random conv, channel scales 0.01..1"
    from convnet.cli.evaluate import load_run
    from convnet.nn import BatchNorm2d, Conv2d

    cfg, _, model = load_run(run)
    layers = [m for m in model.modules() if isinstance(m, (Conv2d, BatchNorm2d))]
    conv, bn = layers[0], layers[1]
    folded = cq.fuse_conv_bn_eval(conv.eval(), bn.eval())
    return folded.weight.numpy(), f"{cfg['model']} first conv + BN folded ({run.name})"


def per_channel_error(w: np.ndarray, per_channel: bool) -> np.ndarray:
    t = cn.tensor(w.astype(np.float32))
    if per_channel:
        obs = cq.PerChannelMinMaxObserver(ch_axis=0, dtype=cq.qint8,
                                          qscheme=cq.per_channel_symmetric)
        obs(t)
        s, z = obs.calculate_qparams()
        q = cq.quantize_per_channel(t, s, z, 0, cq.qint8)
    else:
        obs = cq.MinMaxObserver(dtype=cq.qint8, qscheme=cq.per_tensor_symmetric)
        obs(t)
        s, z = obs.calculate_qparams()
        q = cq.quantize_per_tensor(t, s.item(), int(z.item()), cq.qint8)
    err = (q.dequantize().numpy() - w).reshape(len(w), -1)
    rms = np.sqrt((w.reshape(len(w), -1) ** 2).mean(1))
    return np.sqrt((err ** 2).mean(1)) / np.maximum(rms, 1e-12)


def draw(run: Path | None, out: Path) -> None:
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8))
    scale, zero = 4.3 / 255, 71
    x = np.linspace(2.85, 3.3, 4001)   # the top of the range: ~15 steps, then clipping
    q = np.clip(np.round(x / scale) + zero, 0, 255)
    a.plot(x, x - (q - zero) * scale, lw=0.8, color="#4363d8")
    a.axhspan(-scale / 2, scale / 2, color="#3cb44b", alpha=0.15, label="±scale/2")
    a.axvline((255 - zero) * scale, color="grey", ls="--", lw=0.8)
    a.text((255 - zero) * scale + 0.01, -0.04, "largest value:\n(255 - 71) · scale", fontsize=8)
    a.set_ylim(-0.05, 0.05)
    a.set_xlabel("x")
    a.set_ylabel("x − dequantize(quantize(x))")
    a.set_title("quint8, scale 0.016863, zero point 71 (top of the range):\nrounding error inside, clipping outside")
    a.legend(loc="upper center")

    w, what = first_folded_conv(run)
    order = np.argsort(np.abs(w).reshape(len(w), -1).max(1))
    pt, pc = per_channel_error(w, False)[order], per_channel_error(w, True)[order]
    idx = np.arange(len(w))
    b.semilogy(idx, pt, "o-", ms=3, color="#e6194b", label=f"one scale (median {np.median(pt):.3f})")
    b.semilogy(idx, pc, "o-", ms=3, color="#4363d8",
               label=f"scale per channel (median {np.median(pc):.3f})")
    b.set_xlabel("output channel, by its largest |weight|")
    b.set_ylabel("RMS error / RMS weight")
    b.set_title(f"int8 weights: {what}", fontsize=9)
    b.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, help="a trained run whose first conv+BN is shown")
    p.add_argument("--out", type=Path, default=Path("docs/images/quantization.png"))
    args = p.parse_args()
    draw(args.run, args.out)


if __name__ == "__main__":
    main()
