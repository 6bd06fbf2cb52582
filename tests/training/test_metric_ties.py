"""Accuracy follows the argmax / stable-topk convention: tied or NaN scores never count every
class as right (an untrained model must not report 100%)."""
import numpy as np
import pytest
import torch

import convnet as cn
import convnet.nn as nn
from convnet.data import DataLoader
from convnet.data.dataset import ArrayImageDataset
from convnet.training import MetricAccumulator, Trainer, evaluate, topk_correct


def torch_topk_hits(logits, targets, k):
    """Reference: the target among the first k of a stable descending sort (ties -> lower
    index, as torch.argmax picks the first maximum)."""
    idx = torch.sort(torch.tensor(logits), dim=1, descending=True, stable=True).indices[:, :k]
    return int((idx.numpy() == targets[:, None]).any(1).sum())


def test_all_equal_logits_are_chance_not_perfect():
    targets = np.arange(10).repeat(3)
    hits = topk_correct(np.zeros((30, 10)), targets, (1, 5))
    assert hits == {1: 3, 5: 15}  # only classes 0 (top-1) and 0..4 (top-5) are ranked in


@pytest.mark.parametrize("seed", range(5))
def test_ties_and_nans_match_torch_argmax_and_stable_sort(seed):
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n, k = rng.integers(1, 30), rng.integers(2, 12)
        logits = rng.integers(0, 3, (n, k)).astype(np.float64)  # many ties
        if seed % 2:
            logits[rng.random((n, k)) < 0.15] = np.nan
        targets = rng.integers(0, k, n)
        for kk in {1, 2, min(5, k)}:
            assert topk_correct(logits, targets, (kk,))[kk] == torch_topk_hits(logits, targets, kk)
        argmax = torch.tensor(logits).argmax(1).numpy()
        assert topk_correct(logits, targets, (1,))[1] == int((argmax == targets).sum())


def test_nan_logits_are_not_correct():
    logits = np.full((4, 3), np.nan)
    assert topk_correct(logits, np.array([1, 2, 1, 2]), (1,))[1] == 0


def test_dense_pixel_accuracy_with_ties():
    acc = MetricAccumulator(num_classes=3, topk=(1,))
    targets = np.array([[[0, 1], [2, 2]]])  # one image, 2x2 pixels
    acc.update(1.0, np.zeros((1, 3, 2, 2)), targets)
    assert acc.result()["accuracy"] == 0.25  # only the class-0 pixel


class ZeroHead(nn.Module):
    """An untrained model whose logits are all equal (like vit_tiny's zero-initialised head)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 10)
        nn.init.zeros_(self.fc.weight)
        nn.init.zeros_(self.fc.bias)

    def forward(self, x):
        return self.fc(x.reshape(x.shape[0], -1)[:, :4])


def _loader(labels):
    images = np.random.default_rng(0).integers(0, 255, (len(labels), 1, 2, 2), dtype=np.uint8)
    ds = ArrayImageDataset(images, np.asarray(labels), transform=lambda a: a.numpy().astype(np.float32))
    return DataLoader(ds, 8)


def test_evaluate_and_trainer_report_chance_for_tied_model():
    labels = np.arange(10).repeat(4)
    model = ZeroHead()
    res = evaluate(model, _loader(labels), num_classes=10)
    assert res["accuracy"] == pytest.approx(0.1)
    assert res["top5_accuracy"] == pytest.approx(0.5)
    assert res["per_class_accuracy"][0] == 1.0 and res["per_class_accuracy"][1] == 0.0
    opt = cn.optim.SGD(model.parameters(), lr=0.0)
    trainer = Trainer(model, opt, _loader(labels), _loader(labels), epochs=1, progress=False,
                      log=None)
    logs = trainer.fit()[0]
    assert logs["train_accuracy"] == pytest.approx(0.1)
    assert logs["val_accuracy"] == pytest.approx(0.1)


def test_untrained_vit_tiny_is_not_perfect():
    from convnet import models

    model = models.create("vit_tiny", num_classes=10, in_channels=1)
    labels = np.arange(10).repeat(2)
    images = np.random.default_rng(1).integers(0, 255, (20, 1, 28, 28), dtype=np.uint8)
    ds = ArrayImageDataset(images, labels, transform=lambda a: a.numpy().astype(np.float32) / 255)
    res = evaluate(model, DataLoader(ds, 20), num_classes=10)
    assert res["accuracy"] < 0.5
