import signal

import numpy as np
import pytest

# A shell starts background jobs (`make test &`, nohup) with SIGINT ignored, and children inherit
# that, so the tests that press Ctrl-C on a convnet process would wait for nothing. Python turns
# SIGINT into KeyboardInterrupt only when it is not ignored at start: restore it for children.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

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
