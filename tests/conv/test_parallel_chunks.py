"""Batch chunks dealt to worker threads (convnet.kernels.conv._run_chunks) give the same
forward and backward results as torch, whatever the number of workers and chunks."""
from __future__ import annotations

import os
import signal
import threading

import numpy as np
import pytest
import torch
import torch.nn.functional as TF

import convnet.kernels.conv as K
import convnet.kernels.parallel as P

# (N, C_in, H, W, C_out, kernel, stride, padding, dilation, groups): every kernel branch
CASES = [
    (7, 4, 9, 8, 5, 3, 1, 1, 1, 1),  # general GEMM, input grad by col2im (C_in < 16)
    (5, 16, 7, 6, 6, 3, 1, 1, 1, 1),  # stride 1, C_in >= 16: input grad as a conv
    (6, 3, 11, 9, 4, 3, 2, 1, 1, 1),  # strided: phase-wise input gradient
    (5, 6, 9, 9, 6, 3, 1, 2, 2, 6),  # depthwise, dilated
    (6, 4, 8, 10, 6, 1, 1, 0, 1, 2),  # pointwise, grouped
    (5, 4, 9, 7, 3, 1, 2, 0, 1, 1),  # strided pointwise
    (4, 2, 14, 14, 3, 5, 1, 0, 1, 1),  # classic layout (wide kernel on a small image)
]


@pytest.fixture
def forced_workers(monkeypatch):
    """Tiny chunks (one image each) dealt to 2 or 3 workers even on a one-thread BLAS."""
    def use(k):
        monkeypatch.setattr(K, "CHUNK_BYTES", 1)
        monkeypatch.setattr(K, "_workers", lambda: k)  # the kernels' own checks
        monkeypatch.setattr(P, "_workers", lambda: k)  # run_chunks
    return use


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("case", CASES)
def test_parallel_chunks_match_torch(forced_workers, workers, case):
    n, c, h, w_, o, k, s, p, d, g = case
    forced_workers(workers)
    rng = np.random.default_rng(sum(case) + workers)
    x = rng.standard_normal((n, c, h, w_))
    w = rng.standard_normal((o, c // g, k, k))
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = TF.conv2d(xt, wt, None, s, p, d, g)
    gy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(gy))
    args = ((s, s), ((p, p), (p, p)), (d, d), g)
    y = K.conv_forward(x, w, None, *args)
    gx, gw = K.conv_backward(gy, x, w, x.shape, *args)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-10, atol=1e-10)
    # transposed conv forward = input gradient: same path with need_weight=False
    gx2 = K.conv_grad_input(gy, w, x.shape, *args)
    np.testing.assert_allclose(gx2, gx, rtol=1e-12, atol=1e-12)


def test_float32_stays_float32_in_parallel(forced_workers):
    forced_workers(2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 3, 8, 8)).astype(np.float32)
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    args = ((1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    y = K.conv_forward(x, w, None, *args)
    gx, gw = K.conv_backward(np.ones_like(y), x, w, x.shape, *args)
    assert y.dtype == gx.dtype == gw.dtype == np.float32


def test_worker_errors_propagate_and_blas_threads_are_restored(forced_workers):
    forced_workers(2)
    before = K._BLAS[0]() if K._BLAS is not None else None

    def boom(n0, m):
        if n0 == 1:
            raise RuntimeError("chunk failed")
        return n0

    with pytest.raises(RuntimeError, match="chunk failed"):
        K._run_chunks(boom, 4, 1)
    assert sorted(K._run_chunks(lambda n0, m: (n0, m), 5, 2)) == [(0, 2), (2, 2), (4, 1)]
    if before is not None:
        assert K._BLAS[0]() == before


def test_chunks_run_serially_inside_a_worker(forced_workers):
    forced_workers(2)
    seen = []

    def outer(n0, m):
        # a conv started from a worker thread must not wait on the (busy) pool
        return K._run_chunks(lambda a, b: seen.append(threading.get_ident()) or a, 3, 1)

    res = K._run_chunks(outer, 2, 1)
    assert sorted(res) == [[0, 1, 2], [0, 1, 2]]
    assert len(seen) == 6


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_gets_a_fresh_pool(forced_workers):
    forced_workers(2)
    K._run_chunks(lambda a, b: a, 4, 1)  # make sure the parent owns a pool
    pid = os.fork()
    if pid == 0:  # child: would hang on the parent's (thread-less) pool
        signal.alarm(30)  # a hang kills the child instead of the test run
        ok = sorted(K._run_chunks(lambda a, b: a, 4, 1)) == [0, 1, 2, 3]
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.WEXITSTATUS(status) == 0


def test_release_scratch_frees_worker_buffers_too(forced_workers):
    forced_workers(2)
    x = np.ones((4, 2, 6, 6))
    K.conv_forward(x, np.ones((3, 2, 3, 3)), None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    assert any(len(c) for c in list(P._CACHES))
    K.release_scratch()
    assert not any(len(c) for c in list(P._CACHES))
    y = K.conv_forward(x, np.ones((3, 2, 3, 3)), None, (1, 1), ((1, 1), (1, 1)), (1, 1), 1)
    assert y[0, 0, 2, 2] == 18.0  # buffers come back on the next call


@pytest.mark.parametrize("nd", [1, 3])
def test_parallel_strided_nd_matches_torch(forced_workers, nd):
    """1-D and 3-D strided convs: chunked packing and unpacking of the stride-phase layout."""
    forced_workers(2)
    rng = np.random.default_rng(40 + nd)
    size = {1: (13,), 3: (7, 6, 5)}[nd]
    x = rng.standard_normal((5, 3) + size)
    w = rng.standard_normal((4, 3) + (3,) * nd)
    conv = {1: TF.conv1d, 3: TF.conv3d}[nd]
    xt, wt = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    yt = conv(xt, wt, None, 2, 1)
    gy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(gy))
    args = ((2,) * nd, ((1, 1),) * nd, (1,) * nd, 1)
    np.testing.assert_allclose(K.conv_forward(x, w, None, *args), yt.detach().numpy(),
                               rtol=1e-10, atol=1e-10)
    gx, gw = K.conv_backward(gy, x, w, x.shape, *args)
    np.testing.assert_allclose(gx, xt.grad.numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-10, atol=1e-10)


def test_workers_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("CONVNET_CONV_WORKERS", "0")
    assert K._workers() == 1
    seen = set()
    K._run_chunks(lambda n0, m: seen.add(threading.get_ident()), 6, 1)
    assert seen == {threading.get_ident()}  # everything ran on the calling thread


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("case", [(5, 3, 11, 9, 4, 3, 2, 1, 1, 1),   # strided
                                  (5, 6, 10, 9, 6, 3, 2, 1, 1, 6),   # strided depthwise
                                  (5, 4, 13, 12, 3, 3, (2, 3), 0, 1, 1)])  # 6 phases
def test_strided_forward_packs_each_chunk(monkeypatch, workers, case):
    """A strided forward packs every chunk on its own; chunks of 2, 2 and 1 images (two chunk
    sizes, so two chunk plans) must tile the batch exactly."""
    n, c, h, w_, o, k, s, p, d, g = case
    monkeypatch.setattr(K, "_chunk", lambda n, per_item: min(n, 2))
    monkeypatch.setattr(K, "_workers", lambda: workers)
    monkeypatch.setattr(P, "_workers", lambda: workers)
    rng = np.random.default_rng(n + c + h)
    x = rng.standard_normal((n, c, h, w_))
    w = rng.standard_normal((o, c // g, k, k))
    stride = s if isinstance(s, tuple) else (s, s)
    y = K.conv_forward(x, w, None, stride, ((p, p), (p, p)), (d, d), g)
    yt = TF.conv2d(torch.tensor(x), torch.tensor(w), None, stride, p, d, g)
    np.testing.assert_allclose(y, yt.numpy(), rtol=1e-10, atol=1e-10)
