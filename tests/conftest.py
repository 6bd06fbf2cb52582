import numpy as np
import pytest

try:  # torch is the test oracle; keep it from competing for the 2 cores
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover
    pass


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def pytest_report_header(config):
    from convnet import backends

    return f"convnet kernel backend: {backends.name()} (CONVNET_BACKEND=numpy|numba chooses)"
