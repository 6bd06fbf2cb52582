"""Training curves (loss and accuracy per epoch) as a PNG."""
from __future__ import annotations

import io
import os

from ..io.atomic import atomic_write_bytes

__all__ = ["plot_curves"]


def plot_curves(history: list[dict], path: str | os.PathLike, title: str = "",
                train_loss_label: str = "train", loss_ylabel: str = "cross-entropy loss") -> None:
    """Plot train/validation loss and accuracy from ``history`` (one dict per epoch) to ``path``.

    ``train_loss_label``/``loss_ylabel`` name the losses when training optimises something
    other than the validation's cross-entropy (distillation)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train_loss", train_loss_label), ("val_loss", "validation")):
        if any(key in h for h in history):
            ax_loss.plot(epochs, [h.get(key) for h in history], marker="o", label=label)
    for key, label in (("train_accuracy", "train"), ("val_accuracy", "validation"),
                       ("val_top5_accuracy", "validation top-5")):
        if any(key in h for h in history):
            ax_acc.plot(epochs, [h.get(key) for h in history], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel=loss_ylabel, title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
