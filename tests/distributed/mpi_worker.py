"""Scenarios for tests/distributed/test_mpi.py, run as ``mpiexec -n 2 python mpi_worker.py``
(every rank) or as ``python mpi_worker.py`` (the single-process reference).

``python mpi_worker.py SCENARIO OUT_DIR``; results go to ``OUT_DIR/SCENARIO_rank{r}.npz``
under MPI and ``OUT_DIR/SCENARIO_ref.npz`` without it. Scenarios:

* ``train``: LeNet-5 in float64 and float32 (DistributedOptimizer around SGD with momentum
  and a StepLR on the wrapper) and ResNet-20 with SyncBatchNorm (DistributedDataParallel
  and its ``allreduce_gradients()``, plain SGD), global batch 16, from per-rank different initial
  weights (broadcast must fix them); the reference trains the same with batch 16 in one
  process;
* ``collectives``: one SyncBatchNorm forward/backward on uneven local batches (3 and 5 rows
  of one 8-row batch), each collective, gradients missing on some ranks, and mismatched
  models;
* ``raise`` / ``exit`` / ``kill``: rank 1 raises / calls ``sys.exit(3)`` / SIGKILLs itself
  at step 3 while rank 0 waits in a collective.
"""
from __future__ import annotations

import os
import signal
import sys
import time

import numpy as np

import convnet as cn
import convnet.distributed as dist
import convnet.functional as F
from convnet import nn, optim
from convnet.data import DataLoader, TensorDataset
from convnet.models import lenet5, resnet20

GLOBAL_BATCH = 16


def _loader(x, y, world, rank):
    sampler = dist.DistributedSampler(TensorDataset(x, y), num_replicas=world, rank=rank,
                                      seed=3)
    sampler.set_epoch(1)
    return DataLoader(TensorDataset(x, y), batch_size=GLOBAL_BATCH // world, sampler=sampler,
                      seed=0)


def train_lenet(dtype, steps, world, rank) -> dict:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((steps * GLOBAL_BATCH, 1, 28, 28)).astype(dtype)
    y = rng.integers(0, 10, steps * GLOBAL_BATCH)
    cn.manual_seed(rank)  # different replicas: the first broadcast must make them equal
    model = lenet5()
    if dtype == np.float64:
        model = model.double()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    if world > 1:
        opt = dist.DistributedOptimizer(opt)
    sched = optim.lr_scheduler.StepLR(opt, step_size=10, gamma=0.5)  # per step
    for xb, yb in _loader(x, y, world, rank):
        opt.zero_grad()
        F.cross_entropy(model(xb), yb).backward()
        opt.step()
        sched.step()
    return {k: v.numpy() for k, v in model.state_dict().items()}


def train_resnet(steps, world, rank) -> dict:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((steps * GLOBAL_BATCH, 3, 16, 16))
    y = rng.integers(0, 10, steps * GLOBAL_BATCH)
    cn.manual_seed(rank)
    model = resnet20(in_channels=3).double()
    net = model
    if world > 1:
        model = dist.convert_sync_batchnorm(model)
        net = nn.parallel.DistributedDataParallel(model)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    for xb, yb in _loader(x, y, world, rank):
        opt.zero_grad()
        F.cross_entropy(net(xb), yb).backward()
        if world > 1:
            net.allreduce_gradients()
        opt.step()
    return {k: v.numpy() for k, v in model.state_dict().items()}


def syncbn(rank) -> dict:
    rng = np.random.default_rng(2)
    x_all = rng.standard_normal((8, 4, 5, 5)) * 3 + 1
    ct_all = rng.standard_normal(x_all.shape)
    rows = slice(0, 3) if rank == 0 else slice(3, 8)
    bn = nn.SyncBatchNorm(4, momentum=0.3).double()
    bn.weight._data[...] = rng.standard_normal(4)
    bn.bias._data[...] = rng.standard_normal(4)
    x = cn.tensor(x_all[rows], requires_grad=True)
    out = bn(x)
    (out * cn.tensor(ct_all[rows])).sum().backward()
    bn.eval()
    return {"y": out.numpy(), "gx": x.grad.numpy(), "gw": bn.weight.grad.numpy(),
            "gb": bn.bias.grad.numpy(), "running_mean": bn.running_mean.numpy(),
            "running_var": bn.running_var.numpy(), "y_eval": bn(cn.tensor(x_all[rows])).numpy()}


def collectives(rank) -> dict:
    out = {f"bn/{k}": v for k, v in syncbn(rank).items()}
    a = np.array([1.0, 2.0]) * (rank + 1)
    for op in ("sum", "mean", "max"):
        out[op] = dist.allreduce(a, op)
    b = np.full(3, rank, np.int64)
    dist.broadcast(b, root=1)
    out["broadcast"] = b
    out["gather"] = dist.all_gather(np.array([rank, 10 + rank]))
    out["gather_object"] = np.array([d["r"] for d in dist.all_gather_object({"r": rank})])
    out["broadcast_object"] = np.array(dist.broadcast_object(f"from {rank}", root=1))
    # w takes part in both ranks' losses, u in rank 0's only, v in neither
    w, u, v = (cn.tensor(np.ones(2), requires_grad=True) for _ in range(3))
    loss = (w * (rank + 1)).sum()
    if rank == 0:
        loss = loss + (u * 3).sum()
    loss.backward()
    dist.allreduce_gradients([w, u, v], bucket_size_mb=0)  # a bucket each
    out["grad_w"], out["grad_u"] = w.grad.numpy(), u.grad.numpy()
    out["grad_v_is_none"] = np.array(v.grad is None)
    cn.manual_seed(rank)  # different replicas: DistributedDataParallel broadcasts rank 0's
    net = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2, momentum=0.0))
    ddp = nn.parallel.DistributedDataParallel(net)
    out["ddp_weight"] = net[0].weight.numpy().copy()
    net[1].running_var._data[...] = 7 + rank  # buffers drift apart: forward re-broadcasts them
    out["ddp_output"] = ddp(cn.ones(4, 3)).numpy()
    out["ddp_running_var"] = net[1].running_var.numpy()  # momentum 0: forward keeps rank 0's
    out["ddp_keys"] = np.array(list(ddp.state_dict()))
    try:  # a different model on rank 1: every rank raises
        dist.broadcast_parameters([cn.zeros(2), cn.zeros(2 + rank)])
    except ValueError as e:
        out["mismatch"] = np.array(str(e))
    return out


def fail(how, rank) -> None:
    model = lenet5()
    opt = dist.DistributedOptimizer(optim.SGD(model.parameters(), lr=0.01))
    x = cn.randn(4, 1, 28, 28)
    with dist.abort_on_exit():
        for step in range(10):
            if rank == 1 and step == 3:
                if how == "raise":
                    raise RuntimeError("boom at step 3")
                if how == "exit":
                    sys.exit(3)
                os.kill(os.getpid(), signal.SIGKILL)
            opt.zero_grad()
            model(x).sum().backward()
            opt.step()  # rank 0 blocks here at step 3, waiting for rank 1
    time.sleep(60)  # not reached when the job is aborted


def main() -> None:
    scenario, out = sys.argv[1], sys.argv[2]
    if dist.launched_by_mpi():
        dist.init()
    world, rank = dist.get_world_size(), dist.get_rank()
    tag = f"rank{rank}" if world > 1 else "ref"
    t0 = time.perf_counter()
    if scenario == "train":
        results = {}
        for name, part in (("lenet64", train_lenet(np.float64, 20, world, rank)),
                           ("lenet32", train_lenet(np.float32, 20, world, rank)),
                           ("resnet", train_resnet(4, world, rank))):
            results.update({f"{name}/{k}": v for k, v in part.items()})
        results["comm_seconds"] = np.float64(dist.comm_seconds())
        results["seconds"] = np.float64(time.perf_counter() - t0)
    elif scenario == "collectives":
        results = collectives(rank)
    else:
        fail(scenario, rank)
        return
    np.savez(os.path.join(out, f"{scenario}_{tag}.npz"), **results)


if __name__ == "__main__":
    main()
