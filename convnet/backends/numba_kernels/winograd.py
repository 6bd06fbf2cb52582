"""Winograd F(2x2, 3x3) forward for dense stride-1 3x3 convolutions: a study, not wired into
the conv path (not in the backend's ``__all__``).

Each output is cut into 2x2 tiles; tile ``(n, ty, tx)`` reads the 4x4 input patch ``d`` at
rows ``2 ty .. 2 ty + 3`` and columns ``2 tx .. 2 tx + 3`` of the zero-padded input (patches
overlap by 2) and, per input channel c and output channel k (Lavin & Gray, 2016)::

    Y = A^T [ sum_c (G g_kc G^T) * (B^T d_c B) ] A        (* elementwise, 4x4)

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

which is the cross-correlation ``y[n, k, i, j] = sum_{c, a, b < 3} w[k, c, a, b] x_pad[n, c, i + a,
j + b]`` with 16 multiplies per tile and (k, c) pair instead of 36. Stages:

1. weight transform ``U[xi, k, c] = (G w[k, c] G^T)[xi]``, ``xi = 4 i + j`` -> (16, K, C);
2. input transform fused with padding: ``V[xi, c, t] = (B^T d_{c,t} B)[xi]`` -> (16, C, T),
   ``T = N * th * tw`` tiles numbered ``t = (n th + ty) tw + tx`` (each plane's tiles contiguous);
3. 16 GEMMs ``M[xi] = U[xi] @ V[xi]`` (``np.matmul``, BLAS) -> (16, K, T);
4. output transform ``Y = A^T m A`` scattered into y (N, K, H', W'); odd H' or W' drop the last
   tile row/column's second half.

Rounding: the transforms add and subtract inputs (and halve weights), so float32 results differ
from the exact convolution by a few ulps of the largest terms: on ResNet-20-like data max |error|
/ max |y| = 1.9e-7..3.5e-7 against a float64 reference (torch's float32 conv: 3.0e-7..4.0e-7);
the tests assert 5e-6. NaN inputs
reach exactly the outputs whose 3x3 window holds them (B^T's and A^T's zero patterns match the
window); an infinite input makes exactly those outputs non-finite, but possibly NaN where a
direct conv gives +-inf (``inf - inf`` inside the transform).

Measured (``python -m benchmarks.backend_winograd``, AMD EPYC, float32, batch 128, 1 thread, ms,
U / V / GEMMs / Y / whole vs torch, convnet im2col): 16->16 @32x32 0.07 / 6.6 / 8.7 / 4.9 / 20.5
vs 5.8, 13.7; 32->32 @16x16 0.19 / 3.9 / 5.7 / 3.2 / 13.5 vs 3.6, 11.3; 64->64 @8x8 0.72 / 2.7 /
4.3 / 1.7 / 9.9 vs 3.1, 10.5. The GEMMs alone (inner dimension C = 16..64, 4x the input read
and written) exceed torch's whole conv; this layout does not reach torch on these shapes.
"""
from __future__ import annotations

import numba
import numpy as np

__all__: list[str] = []  # a study: the lead decides whether it becomes the conv path

_G = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])


def weight_transform(w: np.ndarray) -> np.ndarray:
    """``U[4 i + j, k, c] = (G w[k, c] G^T)[i, j]``: (K, C, 3, 3) -> (16, K, C), contiguous,
    in w's dtype (computed in float64, then rounded once)."""
    k, c = w.shape[:2]
    u = np.einsum("ai,kcij,bj->abkc", _G, w.astype(np.float64, copy=False), _G)
    return np.ascontiguousarray(u.reshape(16, k, c), dtype=w.dtype)


@numba.njit(parallel=True, cache=True)
def _input_transform(x, p, th, tw, v, n_chunks):  # pragma: no cover - compiled
    """``V[4 i + j, c, (n th + ty) tw + tx] = (B^T d B)[i, j]`` with ``d = x_pad[n, c, 2 ty:2 ty
    + 4, 2 tx:2 tx + 4]`` (zero padding p before, zeros after up to the last full tile).

    Each (n, c) plane is copied once into two zero-framed buffers holding its even and odd padded
    columns, so that both passes run over contiguous rows: the row pass ``B^T d`` (4 rows from 4)
    and the column pass ``(.) B``, where column ``2 tx + q`` is ``even[tx + q // 2]`` or
    ``odd[tx + q // 2]``. Blocks of planes run in parallel (``n_chunks`` blocks)."""
    N, C, H, W = x.shape
    Hp = 2 * th + 2
    Wh = tw + 1                       # even (odd) padded columns per row
    tiles = th * tw
    for t in numba.prange(n_chunks):
        # zeroed once per block: every plane writes the same interior, the frame stays zero
        be = np.zeros((Hp, Wh), dtype=x.dtype)
        bo = np.zeros((Hp, Wh), dtype=x.dtype)
        for q in range(t * N * C // n_chunks, (t + 1) * N * C // n_chunks):
            n = q // C
            c = q - n * C
            for r in range(H):
                xr = x[n, c, r]
                # padded column m + p goes to (m + p) % 2 at (m + p) // 2: pairs of columns
                d0 = be[r + p, p // 2:] if p % 2 == 0 else bo[r + p, p // 2:]
                d1 = bo[r + p, p // 2:] if p % 2 == 0 else be[r + p, (p + 1) // 2:]
                for m in range(W // 2):
                    d0[m] = xr[2 * m]
                    d1[m] = xr[2 * m + 1]
                if W % 2:
                    d0[W // 2] = xr[W - 1]
            for ty in range(th):
                r = 2 * ty
                e0, e1, e2, e3 = be[r], be[r + 1], be[r + 2], be[r + 3]
                o0, o1, o2, o3 = bo[r], bo[r + 1], bo[r + 2], bo[r + 3]
                s = n * tiles + ty * tw
                # one pass per row of tiles (short rows: fewer, fuller loops beat more passes);
                # a_q = padded column 2 tx + q: a0, a1, a2, a3 = even[tx], odd[tx], even[tx+1],
                # odd[tx+1]; rows of B^T d: d0 - d2, d1 + d2, d2 - d1, d1 - d3; then the same
                # combinations of the columns: a0 - a2, a1 + a2, a2 - a1, a1 - a3
                for m in range(tw):
                    p0 = e0[m] - e2[m]
                    p1 = o0[m] - o2[m]
                    p2 = e0[m + 1] - e2[m + 1]
                    p3 = o0[m + 1] - o2[m + 1]
                    v[0, c, s + m] = p0 - p2
                    v[1, c, s + m] = p1 + p2
                    v[2, c, s + m] = p2 - p1
                    v[3, c, s + m] = p1 - p3
                    p0 = e1[m] + e2[m]
                    p1 = o1[m] + o2[m]
                    p2 = e1[m + 1] + e2[m + 1]
                    p3 = o1[m + 1] + o2[m + 1]
                    v[4, c, s + m] = p0 - p2
                    v[5, c, s + m] = p1 + p2
                    v[6, c, s + m] = p2 - p1
                    v[7, c, s + m] = p1 - p3
                    p0 = e2[m] - e1[m]
                    p1 = o2[m] - o1[m]
                    p2 = e2[m + 1] - e1[m + 1]
                    p3 = o2[m + 1] - o1[m + 1]
                    v[8, c, s + m] = p0 - p2
                    v[9, c, s + m] = p1 + p2
                    v[10, c, s + m] = p2 - p1
                    v[11, c, s + m] = p1 - p3
                    p0 = e1[m] - e3[m]
                    p1 = o1[m] - o3[m]
                    p2 = e1[m + 1] - e3[m + 1]
                    p3 = o1[m + 1] - o3[m + 1]
                    v[12, c, s + m] = p0 - p2
                    v[13, c, s + m] = p1 + p2
                    v[14, c, s + m] = p2 - p1
                    v[15, c, s + m] = p1 - p3


@numba.njit(parallel=True, cache=True)
def _output_transform(mm, th, tw, y, n_chunks):  # pragma: no cover - compiled
    """``y[n, k, 2 ty + r, 2 tx + s] = (A^T m A)[r, s]`` with ``m[i, j] = M[4 i + j, k, (n th +
    ty) tw + tx]``, for the (r, s) inside y (odd H' or W' cut the last tiles). Blocks of (n, k)
    planes run in parallel."""
    N, K, Ho, Wo = y.shape
    tiles = th * tw
    for t in numba.prange(n_chunks):
        spare = np.empty(Wo, dtype=y.dtype)
        for q in range(t * N * K // n_chunks, (t + 1) * N * K // n_chunks):
            n = q // K
            k = q - n * K
            for ty in range(th):
                s = n * tiles + ty * tw
                y0 = y[n, k, 2 * ty]
                # the last tile row of an odd H' has no second row: write it into a scratch row
                y1 = y[n, k, 2 * ty + 1] if 2 * ty + 1 < Ho else spare
                # one pass per row of tiles: rows of A^T m (t0 = m0 + m1 + m2, t1 = m1 - m2 - m3
                # per column j), then the same combinations of the columns
                for m in range(Wo // 2):
                    a0 = mm[0, k, s + m] + mm[4, k, s + m] + mm[8, k, s + m]
                    a1 = mm[1, k, s + m] + mm[5, k, s + m] + mm[9, k, s + m]
                    a2 = mm[2, k, s + m] + mm[6, k, s + m] + mm[10, k, s + m]
                    a3 = mm[3, k, s + m] + mm[7, k, s + m] + mm[11, k, s + m]
                    y0[2 * m], y0[2 * m + 1] = a0 + a1 + a2, a1 - a2 - a3
                    a0 = mm[4, k, s + m] - mm[8, k, s + m] - mm[12, k, s + m]
                    a1 = mm[5, k, s + m] - mm[9, k, s + m] - mm[13, k, s + m]
                    a2 = mm[6, k, s + m] - mm[10, k, s + m] - mm[14, k, s + m]
                    a3 = mm[7, k, s + m] - mm[11, k, s + m] - mm[15, k, s + m]
                    y1[2 * m], y1[2 * m + 1] = a0 + a1 + a2, a1 - a2 - a3
                if Wo % 2:  # odd W': the last tile column has no second column
                    m = Wo // 2
                    a0 = mm[0, k, s + m] + mm[4, k, s + m] + mm[8, k, s + m]
                    a1 = mm[1, k, s + m] + mm[5, k, s + m] + mm[9, k, s + m]
                    a2 = mm[2, k, s + m] + mm[6, k, s + m] + mm[10, k, s + m]
                    y0[2 * m] = a0 + a1 + a2
                    a0 = mm[4, k, s + m] - mm[8, k, s + m] - mm[12, k, s + m]
                    a1 = mm[5, k, s + m] - mm[9, k, s + m] - mm[13, k, s + m]
                    a2 = mm[6, k, s + m] - mm[10, k, s + m] - mm[14, k, s + m]
                    y1[2 * m] = a0 + a1 + a2


def _check(x: np.ndarray, w: np.ndarray, padding: int) -> tuple[int, int]:
    if x.ndim != 4 or w.ndim != 4 or w.shape[2:] != (3, 3) or w.shape[1] != x.shape[1]:
        raise ValueError(f"winograd3x3_forward: expected x (N, C, H, W) and w (K, C, 3, 3), got "
                         f"{x.shape} and {w.shape}")
    ho, wo = x.shape[2] + 2 * padding - 2, x.shape[3] + 2 * padding - 2
    if padding < 0 or ho < 1 or wo < 1:
        raise ValueError(f"winograd3x3_forward: padding {padding} leaves no output for input "
                         f"{x.shape[2:]}")
    return ho, wo


# The 16 slices of V and M are written (read) together; a power-of-two distance between them maps
# all 16 streams onto the same cache sets, so each slice starts this many values after the last.
_STAGGER = 80


def _staggered(rows: int, cols: int, dtype) -> np.ndarray:
    """An empty (16, rows, cols) array whose 16 slices are C-contiguous but ``_STAGGER`` values
    apart (BLAS takes each slice as is)."""
    flat = np.empty((16, rows * cols + _STAGGER), dtype=dtype)
    return flat[:, :rows * cols].reshape(16, rows, cols)


def input_transform(x: np.ndarray, padding: int, n_chunks: int | None = None) -> np.ndarray:
    """Stage 2: (N, C, H, W) -> V (16, C, N th tw), ``th, tw = ceil(H' / 2), ceil(W' / 2)``."""
    n, c, h, wd = x.shape
    ho, wo = h + 2 * padding - 2, wd + 2 * padding - 2
    th, tw = (ho + 1) // 2, (wo + 1) // 2
    v = _staggered(c, n * th * tw, x.dtype)
    chunks = n_chunks or min(n * c, 4 * numba.get_num_threads())
    _input_transform(np.ascontiguousarray(x), padding, th, tw, v, chunks)
    return v


def output_transform(m: np.ndarray, n: int, ho: int, wo: int,
                     n_chunks: int | None = None) -> np.ndarray:
    """Stage 4: M (16, K, N th tw) -> y (N, K, H', W')."""
    k = m.shape[1]
    y = np.empty((n, k, ho, wo), dtype=m.dtype)
    chunks = n_chunks or min(n * k, 4 * numba.get_num_threads())
    _output_transform(m, (ho + 1) // 2, (wo + 1) // 2, y, chunks)
    return y


def winograd3x3_forward(x: np.ndarray, w: np.ndarray, padding: int = 1) -> np.ndarray:
    """Dense 3x3 cross-correlation, stride 1, dilation 1, groups 1, zero padding ``padding`` on
    every side, by Winograd F(2x2, 3x3) (module docstring): x (N, C, H, W), w (K, C, 3, 3), same
    float dtype -> y (N, K, H + 2p - 2, W + 2p - 2), no bias.

    Memory: V and M hold ``16 C T`` and ``16 K T`` values (T ~ N H' W' / 4), i.e. 4x the input
    and 4x the output."""
    ho, wo = _check(x, w, padding)
    u = weight_transform(w)
    v = input_transform(x, padding)
    m = np.matmul(u, v, out=_staggered(w.shape[0], v.shape[2], v.dtype))  # 16 GEMMs
    return output_transform(m, x.shape[0], ho, wo)
