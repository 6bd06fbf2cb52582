"""The float arithmetic behind :class:`~convnet.quantization.HistogramObserver`.

``HistogramObserver`` chooses its range by a discrete search whose decisions (``cumsum <
alpha * total``, ``norm > norm_min``) flip on the last bit of a float32 value, so to give the
scales torch 2.13 gives these kernels repeat the *order* of torch's CPU float32 arithmetic:

* ``linspace_f32``: torch's linspace, ``start + step * i`` (first half) or
  ``end - step * (steps - 1 - i)`` (second half), each a fused multiply-add rounded once;
* ``histc``: torch.histc's bin index ``int((x - lo) * bins / (hi - lo))`` in the input's
  dtype; values outside ``[lo, hi]`` are dropped and ``x == hi`` goes to the last bin;
* ``sum_f32``: torch's float32 ``sum`` (8 lanes, 4 accumulators, cascaded levels);
* ``cumsum_f32``: accumulated in float64, each prefix rounded to float32 (as torch);
* ``upscale_histogram``, ``quantization_error`` and ``non_linear_param_search``: torch's
  ``HistogramObserver`` methods, one float32 operation per torch tensor operation.
"""
from __future__ import annotations

import math

import numpy as np

_F32 = np.float32
_LANES = 8        # width of torch's float vectors in its reduction kernels
_ILP = 4          # independent accumulators per row
_LEVELS = 4       # cascade levels of partial sums


# ------------------------------------------------------------------ elementary kernels
def linspace_f32(start: float, end: float, steps: int) -> np.ndarray:
    """``steps`` float32 points from ``start`` to ``end`` (both included), as torch builds them."""
    start, end = _F32(start), _F32(end)
    if steps == 1:
        return np.array([start], _F32)
    step = np.float64(_F32(_F32(end - start) / _F32(steps - 1)))
    i = np.arange(steps, dtype=np.float64)
    # a float32 product step*i is exact in float64, so one rounding = torch's fused multiply-add
    low = (step * i + np.float64(start)).astype(_F32)
    high = (-step * (steps - 1 - i) + np.float64(end)).astype(_F32)
    return np.where(np.arange(steps) < steps // 2, low, high)


def histc(x: np.ndarray, bins: int, lo: float, hi: float) -> np.ndarray:
    """``torch.histc(x, bins, min=lo, max=hi)`` with the result in ``x``'s dtype."""
    dt = x.dtype.type
    if lo == hi and x.size:
        lo, hi = float(x.min()), float(x.max())
    if lo == hi:
        lo, hi = lo - 1.0, hi + 1.0
    left, right = dt(lo), dt(hi)
    inside = x[(x >= left) & (x <= right)]
    pos = ((inside - left) * dt(bins) / (right - left)).astype(np.int64)
    pos[pos >= bins] = bins - 1  # the last bin includes its right edge
    return np.bincount(pos, minlength=bins).astype(x.dtype)


def sum_f32(a: np.ndarray) -> np.float32:
    """The float32 sum of ``a`` with torch's CPU reduction order (not pairwise, not sequential)."""
    a = np.ascontiguousarray(a, _F32).ravel()
    n = a.size
    if n < _LANES:
        return _row_sum(a.reshape(n, 1))[0]
    nvec = n // _LANES
    lanes = _row_sum(a[:nvec * _LANES].reshape(nvec, _LANES))
    total = _F32(0)
    for v in a[nvec * _LANES:]:   # the tail that does not fill a vector, then the lanes
        total = _F32(total + v)
    for v in lanes:
        total = _F32(total + v)
    return total


def _row_sum(vecs: np.ndarray) -> np.ndarray:
    """Sum of the rows of ``vecs`` (n, lanes): 4 interleaved accumulators, then combined."""
    n = vecs.shape[0]
    size_ilp = n // _ILP
    if size_ilp:
        partial = _multi_row_sum(vecs[:size_ilp * _ILP].reshape(size_ilp, _ILP, -1))
    else:
        partial = np.zeros((_ILP, vecs.shape[1]), _F32)
    for i in range(size_ilp * _ILP, n):
        partial[0] = partial[0] + vecs[i]
    for k in range(1, _ILP):
        partial[0] = partial[0] + partial[k]
    return partial[0]


def _multi_row_sum(rows: np.ndarray) -> np.ndarray:
    """Cascade sum of ``rows`` (size, ilp, lanes): blocks of ``2**level_power`` rows are summed
    in order, and finished blocks are carried up ``_LEVELS`` levels (torch's multi_row_sum)."""
    size = rows.shape[0]
    level_power = max(4, (math.ceil(math.log2(size)) if size > 2 else 1) // _LEVELS)
    step = 1 << level_power
    mask = step - 1
    acc = np.zeros((_LEVELS,) + rows.shape[1:], _F32)
    i = 0
    while i + step <= size:
        acc[0] = np.add.accumulate(rows[i:i + step], axis=0, dtype=_F32)[-1]  # acc[0] was 0
        i += step
        for j in range(1, _LEVELS):
            acc[j] = acc[j] + acc[j - 1]
            acc[j - 1] = 0
            if i & (mask << (j * level_power)):
                break
    if i < size:
        acc[0] = acc[0] + np.add.accumulate(rows[i:], axis=0, dtype=_F32)[-1]
    for j in range(1, _LEVELS):
        acc[0] = acc[0] + acc[j]
    return acc[0].copy()


def cumsum_f32(a: np.ndarray) -> np.ndarray:
    """torch.cumsum of float32 values: running sums in float64, each stored as float32."""
    return np.cumsum(a.astype(np.float64)).astype(_F32)


# ------------------------------------------------------------- HistogramObserver's steps
def upscale_histogram(hist: np.ndarray, orig_min, orig_max, new_min, new_max,
                      upsample_rate: int = 16) -> np.ndarray:
    """Re-bin ``hist`` (over ``[orig_min, orig_max]``) onto ``len(hist)`` bins over the wider
    ``[new_min, new_max]``: each bin is split into ``upsample_rate`` equal parts whose mass
    goes to the new bin that holds the part's midpoint."""
    bins = hist.size
    fine = np.repeat(hist.astype(_F32), upsample_rate) / _F32(upsample_rate)
    orig_min, orig_max = _F32(orig_min), _F32(orig_max)
    bin_size = _F32(_F32(orig_max - orig_min) / _F32(bins * upsample_rate))
    mids = linspace_f32(orig_min, orig_max, bins * upsample_rate + 1)[:-1] + _F32(_F32(0.5) * bin_size)
    edges = linspace_f32(float(new_min), float(new_max), bins + 1)
    bucket = np.clip(np.searchsorted(edges, mids, side="right") - 1, 0, bins - 1)
    out = np.zeros(bins, _F32)
    np.add.at(out, bucket, fine)  # in order, in float32, as torch.bincount with weights
    return out


def _l2_norm(begin, end, density: np.ndarray) -> np.ndarray:
    """``density * (end**3 - begin**3) / 3``: the integral of x^2 over [begin, end], times
    the density of values there (the squared quantization error of a uniform spread)."""
    return density * ((end * end * end - begin * begin * begin) / _F32(3))


def quantization_error(hist: np.ndarray, min_val: float, max_val: float, start_bin: int,
                       end_bin: int, dst_nbins: int) -> float:
    """L2 error of quantizing the histogram with ``dst_nbins`` levels spread over the source
    bins ``start_bin .. end_bin`` (values are assumed uniform inside each source bin)."""
    bins = hist.size
    bin_width = (float(max_val) - float(min_val)) / bins
    dst_bin_width = bin_width * (end_bin - start_bin + 1) / dst_nbins
    if dst_bin_width == 0.0:
        return 0.0
    bw, dw, half = _F32(bin_width), _F32(dst_bin_width), _F32(dst_bin_width / 2)
    src_begin = (np.arange(bins) - start_bin).astype(_F32) * bw
    src_end = src_begin + bw
    top = _F32(dst_nbins - 1)
    dst_of_begin = np.clip(np.floor_divide(src_begin, dw), _F32(0), top)
    dst_of_begin_center = (dst_of_begin + _F32(0.5)) * dw
    dst_of_end = np.clip(np.floor_divide(src_end, dw), _F32(0), top)
    density = hist / bw
    norm = _l2_norm(src_begin - dst_of_begin_center, np.full(bins, half, _F32), density)
    norm = norm + (dst_of_end - dst_of_begin - _F32(1)) * _l2_norm(-half, half, density)
    dst_of_end_center = dst_of_end * dw + half
    norm = norm + _l2_norm(-half, src_end - dst_of_end_center, density)
    return float(sum_f32(norm))


def non_linear_param_search(hist: np.ndarray, min_val, max_val, dst_nbins: int):
    """torch's ``_non_linear_param_search``: trim the histogram's tails, one quantile step
    (1e-5) at a time from whichever side moves more bins, while the L2 quantization error
    keeps falling. Returns the float32 ``(new_min, new_max)`` of the kept bins."""
    bins = hist.size
    min_val, max_val = _F32(min_val), _F32(max_val)
    bin_width = _F32(_F32(max_val - min_val) / _F32(bins))
    total = float(sum_f32(hist))
    csum = cumsum_f32(hist)
    stepsize, alpha, beta = 1e-5, 0.0, 1.0
    start_bin, end_bin = 0, bins - 1
    norm_min = float("inf")
    while alpha < beta:
        next_alpha, next_beta = alpha + stepsize, beta - stepsize
        # torch compares the float32 cumsum with the threshold rounded to float32
        lo = int(np.searchsorted(csum, _F32(next_alpha * total), side="left"))
        hi = int(np.searchsorted(csum, _F32(next_beta * total), side="right")) - 1
        left = min(max(lo, start_bin), end_bin)   # first bin whose cumsum reaches alpha
        right = min(max(hi, start_bin), end_bin)  # last bin whose cumsum stays within beta
        next_start, next_end = start_bin, end_bin
        if (left - start_bin) > (end_bin - right):
            next_start, alpha = left, next_alpha
        else:
            next_end, beta = right, next_beta
        if next_start == start_bin and next_end == end_bin:
            continue
        norm = quantization_error(hist, min_val, max_val, next_start, next_end, dst_nbins)
        if norm > norm_min:
            break
        norm_min, start_bin, end_bin = norm, next_start, next_end
    new_min = _F32(min_val + _F32(bin_width * _F32(start_bin)))
    new_max = _F32(min_val + _F32(bin_width * _F32(end_bin + 1)))
    return new_min, new_max
