"""Keeping the ranks' model replicas equal: one broadcast at start, one gradient mean a step.

Data-parallel SGD on ``K`` ranks, each with a local batch ``b`` of the global batch ``B = K b``:
every rank computes ``g_r``, the gradient of its mean loss, and all apply the same update with

    g = (g_0 + g_1 + ... + g_{K-1}) / K,

which is the gradient of the mean loss over the global batch. Starting from equal
parameters (:func:`broadcast_parameters`), the replicas then stay equal without ever sending
the parameters again.

Gradients travel in *buckets*: the ``.grad`` arrays of one dtype are copied into a few
contiguous buffers of at most ``bucket_size_mb`` MiB each (a tensor larger than that gets a
bucket of its own), and each buffer is reduced by one MPI call. One large message costs
about one latency plus its bytes over the bandwidth; a message per tensor (59 for ResNet-20)
would pay the latency 62 times. The layout depends only on the parameters' order, shapes
and dtypes, so it is the same on every rank.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from ..tensor import Tensor
from . import comm

__all__ = ["broadcast_parameters", "allreduce_gradients", "bucket_layout"]

_MIB = 1 << 20


def _tensors(obj, name: str) -> list:
    """The tensors (or arrays) of a Module (parameters, then buffers), a state dict or an
    iterable."""
    from ..nn.modules.module import Module

    if isinstance(obj, Module):
        return list(obj.parameters()) + [b for b in obj.buffers() if b is not None]
    if isinstance(obj, dict):
        items = list(obj.values())
    elif isinstance(obj, (Tensor, np.ndarray)):
        raise TypeError(f"{name}: expected a Module, a state dict or an iterable of tensors, "
                        f"got a single {type(obj).__name__} (wrap it in a list)")
    else:
        items = list(obj)
    for t in items:
        if not isinstance(t, (Tensor, np.ndarray)):
            raise TypeError(f"{name}: expected Tensors or NumPy arrays, got "
                            f"{type(t).__name__}")
    return items


def bucket_layout(shapes_dtypes: Iterable[tuple[tuple, np.dtype]],
                  bucket_size_mb: float = 25) -> list[tuple[np.dtype, list[int]]]:
    """Group tensors into buckets: ``[(dtype, [index, ...]), ...]``.

    Tensors are taken in order; each dtype fills its own buckets, and a bucket is closed
    when adding the next tensor would take it past ``bucket_size_mb`` MiB (a tensor larger
    than that is a bucket alone). ``bucket_size_mb=0`` gives one tensor per bucket.
    """
    if bucket_size_mb < 0:
        raise ValueError(f"bucket_size_mb must be >= 0, got {bucket_size_mb}")
    limit = bucket_size_mb * _MIB
    open_: dict[np.dtype, tuple[list[int], int]] = {}
    done: list[tuple[int, np.dtype, list[int]]] = []  # (first index, dtype, members)
    for i, (shape, dtype) in enumerate(shapes_dtypes):
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        members, size = open_.get(dtype, ([], 0))
        if members and size + nbytes > limit:
            done.append((members[0], dtype, members))
            members, size = [], 0
        members.append(i)
        open_[dtype] = (members, size + nbytes)
    done.extend((m[0], d, m) for d, (m, _) in open_.items() if m)
    done.sort(key=lambda t: t[0])  # buckets in the order of their first tensor
    return [(d, m) for _, d, m in done]


def _data(t) -> np.ndarray:
    return t._data if isinstance(t, Tensor) else t


def broadcast_parameters(model, root: int = 0) -> None:
    """Overwrite every rank's parameters and buffers with rank ``root``'s, in place.

    ``model`` is a Module (its parameters, then its buffers, such as BatchNorm's running
    statistics), a state dict, or an iterable of Tensors/arrays, listed in the same order on
    every rank. The tensors keep their identity (an optimizer built on them stays valid).
    Call it once after building the model on every rank (before the first forward pass), or
    let :class:`DistributedOptimizer` or ``nn.parallel.DistributedDataParallel`` do it.

    Raises:
        ValueError: the ranks' tensor lists differ in count, shape or dtype (on every rank).
    """
    name = "broadcast_parameters"
    tensors = _tensors(model, name)
    if comm.get_world_size() == 1:
        return
    signature = [(tuple(_data(t).shape), _data(t).dtype.str) for t in tensors]
    _check_same_everywhere(name, signature)
    _broadcast_tensors(tensors, root)


def _broadcast_tensors(tensors: list, root: int) -> None:
    """:func:`broadcast_parameters` without the layout check (one MPI call per bucket)."""
    if comm.get_world_size() == 1:
        return
    layout = bucket_layout(((_data(t).shape, _data(t).dtype) for t in tensors))
    for dtype, members in layout:
        arrays = [_data(tensors[i]) for i in members]
        buf = np.concatenate([a.ravel() for a in arrays]) if len(arrays) > 1 \
            else np.array(arrays[0].ravel(), dtype=dtype)
        comm.broadcast(buf, root)
        offset = 0
        for i, a in zip(members, arrays):
            part = buf[offset:offset + a.size].reshape(a.shape)
            offset += a.size
            if a.flags.writeable:
                a[...] = part
            elif isinstance(tensors[i], Tensor):  # read-only data (e.g. from a file): a copy
                tensors[i]._data = part.copy()
            else:
                raise ValueError(f"broadcast_parameters: tensor {i} is a read-only NumPy "
                                 f"array of shape {a.shape}; it cannot be overwritten")


def _check_same_everywhere(name: str, signature: list) -> None:
    """Raise on every rank when some rank's ``signature`` (``[(shape, dtype), ...]``) differs
    from rank 0's."""
    everyone = comm.all_gather_object(signature)
    ours = everyone[0]

    def show(sig, i):
        return "nothing" if i >= len(sig) else f"shape {sig[i][0]} {np.dtype(sig[i][1])}"

    for r, theirs in enumerate(everyone):
        if theirs != ours:
            i = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b),
                     min(len(theirs), len(ours)))
            raise ValueError(
                f"{name}: the ranks' tensors differ (rank 0: {len(ours)} tensors, rank {r}: "
                f"{len(theirs)}); first at tensor {i}: {show(ours, i)} on rank 0, "
                f"{show(theirs, i)} on rank {r}. Build the same model on every rank.")


def allreduce_gradients(model_or_params, bucket_size_mb: float = 25) -> None:
    """Set every parameter's ``.grad`` to its mean over the ranks (a new Tensor on a slice of
    the bucket, so a gradient array that backward shared between leaves is never written).

    ``model_or_params`` is a Module or an iterable of parameters, in the same order on every
    rank; parameters with ``requires_grad=False`` are skipped. Call it after ``backward()``
    and before ``optimizer.step()`` (or let :class:`DistributedOptimizer` call it).

    A parameter whose ``.grad`` is None on some ranks (it took no part in their loss) counts
    as a zero gradient there, so the buckets line up and the mean is still the gradient of
    the global mean loss; it stays None only where it is None on every rank (so an optimizer
    skips it everywhere, as in a single process). Each bucket carries one extra element per
    tensor that counts the ranks holding a gradient, so this costs no extra MPI call.
    Without :func:`init` or with one rank this does nothing.
    """
    if comm.get_world_size() == 1:
        return
    from ..nn.modules.module import Module

    if isinstance(model_or_params, Module):
        params = list(model_or_params.parameters())
    else:
        params = _tensors(model_or_params, "allreduce_gradients")
    params = [p for p in params if not isinstance(p, Tensor) or p.requires_grad]
    for p in params:
        if not isinstance(p, Tensor):
            raise TypeError("allreduce_gradients: expected parameters (Tensors), got a "
                            f"{type(p).__name__}")
    scale = 1.0 / comm.get_world_size()
    layout = bucket_layout(((p.shape, p.dtype) for p in params), bucket_size_mb)
    for dtype, members in layout:
        sizes = [params[i]._data.size for i in members]
        total = sum(sizes)
        buf = np.empty(total + len(members), dtype)
        flags = buf[total:]  # 1 where this rank has a gradient; summed to a rank count
        offset = 0
        for j, (i, n) in enumerate(zip(members, sizes)):
            g = params[i].grad
            if g is None:
                buf[offset:offset + n] = 0
                flags[j] = 0
            else:
                buf[offset:offset + n] = g._data.reshape(-1)
                flags[j] = 1
            offset += n
        comm.allreduce(buf, "sum", inplace=True)
        buf[:total] *= dtype.type(scale)
        offset = 0
        for j, (i, n) in enumerate(zip(members, sizes)):
            p = params[i]
            mean = buf[offset:offset + n].reshape(p.shape)
            offset += n
            if flags[j] > 0:  # else no rank has a gradient: leave None
                p.grad = Tensor._make(mean)
