"""Shared fixtures for the analysis tests: skips for layers that have not landed yet, and one
small trained LeNet-5 (cached for the whole session)."""
import numpy as np
import pytest

import convnet as cn
import convnet.nn as nn


def has(*names):
    return all(hasattr(nn, n) for n in names)


def needs(*names):
    return pytest.mark.skipif(not has(*names), reason=f"needs nn.{', nn.'.join(names)}")


def load_digits():
    d = np.load(__import__("os").path.join(
        __import__("os").path.dirname(cn.__file__), "data", "bundled", "mnist_digits.npz"))
    return d


MEAN, STD = 0.1307, 0.3081


def normalize(imgs_uint8):
    return ((imgs_uint8.astype(np.float32) / 255 - MEAN) / STD)[:, None]


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A LeNet-5 (max pooling) run folder made by ``convnet train``: 2 epochs on the bundled
    digits, fixed seed (a few seconds; the trainer also picks a sane BLAS thread count)."""
    if not has("MaxPool2d"):
        pytest.skip("needs nn.MaxPool2d")
    from convnet.cli.main import main

    out = tmp_path_factory.mktemp("run") / "lenet5"
    code = main(["train", "--model", "lenet5", "--model-option", "pooling=max", "--epochs", "2",
                 "--limit-test", "500", "--seed", "0", "--out", str(out), "--no-progress"])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def trained_lenet(trained_run):
    """``(model, test accuracy on 500 digits)`` of ``trained_run``, in eval mode."""
    import json

    from convnet.cli.evaluate import load_run

    _, _, model = load_run(trained_run)
    acc = json.loads((trained_run / "metrics.json").read_text())["test_accuracy"]
    return model, float(acc)
