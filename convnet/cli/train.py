"""``convnet train``: train a model on a dataset, writing checkpoints, metrics and curves.

With no arguments it trains LeNet-5 on the MNIST digits bundled with convnet.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from ._setup import AUGMENTS, DATASET_NAMES

# Defaults, applied to options not given on the command line.
DEFAULTS = {
    "model": "lenet5", "dataset": "mnist-bundled", "data_dir": None, "download": False,
    "epochs": 10, "batch_size": 64, "optimizer": "adam", "lr": None, "momentum": 0.9,
    "weight_decay": 0.0, "scheduler": "cosine", "step_size": 10, "gamma": 0.1,
    "augment": "none", "seed": 0, "val_split": 0.1, "early_stopping": 0, "workers": 2,
    "dtype": "float32", "limit_train": None, "limit_test": None, "image_size": None,
    "grayscale": False, "label_smoothing": 0.0, "model_options": {}, "task": "auto",
    "restore_best": False,
    # --task detect only (filled from convnet.cli.detect.DETECT_DEFAULTS)
    "train_canvases": None, "test_canvases": None, "canvas_size": None, "warmup_steps": None,
    "clip_grad": None, "arch": None,
}
DEFAULT_LR = {"sgd": 0.05, "adam": 2e-3, "adamw": 2e-3, "rmsprop": 1e-3}
# Options that may differ when resuming (they do not change the numbers).
RESUME_OVERRIDABLE = ("epochs", "workers", "progress", "data_dir")


def _model_option(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise ValueError(f"--model-option must be KEY=VALUE, got {text!r}")
    k, v = text.split("=", 1)
    try:
        return k, json.loads(v)
    except json.JSONDecodeError:
        return k, v


def _existing_run_message(out: Path) -> str:
    """Why training into ``out`` is refused: it holds a run (finished or interrupted)."""
    done = total = None
    try:
        m = json.loads((out / "metrics.json").read_text())
        done, total = int(m.get("epochs_completed", 0)), int(m["config"]["epochs"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if done is not None and done >= total:
        what = f"a finished run ({done}/{total} epochs)"
        hint = (f"`--resume --epochs {total + 10}` trains it further, --overwrite replaces it, "
                "or choose another --out")
    elif done is not None:
        what = f"an interrupted run ({done}/{total} epochs)"
        hint = "--resume continues it, --overwrite replaces it, or choose another --out"
    else:
        what = "a run"
        hint = "--resume continues it, --overwrite replaces it, or choose another --out"
    return f"--out {out} already holds {what}; {hint}"


def add_optimization_options(p) -> None:
    """Epochs, batch, optimizer and schedule: the options `train` and `distill` share."""
    a = p.add_argument
    a("--epochs", type=int, help="default 10")
    a("--batch-size", type=int, help="default 64")
    a("--optimizer", choices=["sgd", "adam", "adamw", "rmsprop"], help="default adam")
    a("--lr", type=float, help="learning rate (default 0.05 for sgd, 0.002 for adam/adamw)")
    a("--momentum", type=float, help="SGD momentum (default 0.9)")
    a("--weight-decay", type=float, help="default 0 (adamw: decoupled)")
    a("--scheduler", choices=["none", "cosine", "step", "exponential", "onecycle"],
      help="default cosine")
    a("--step-size", type=int, help="epochs between decays for --scheduler step (default 10)")
    a("--gamma", type=float, help="decay factor for step/exponential (default 0.1)")


def add_run_folder_options(p) -> None:
    """--overwrite, --no-progress and --threads: what `train` and `distill` add after --resume."""
    from .main import add_threads_option

    a = p.add_argument
    a("--overwrite", action="store_true",
      help="replace the run already in --out (without it, an existing run is never replaced)")
    a("--no-progress", dest="progress", action="store_false", default=None,
      help="no progress bar (by default one is drawn only when stderr is a terminal)")
    add_threads_option(p)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("train", description=__doc__,
                              help="train a model (default: LeNet-5 on bundled MNIST digits)")
    a = p.add_argument
    a("--model", help="model name from `convnet models` (default lenet5)")
    a("--arch", metavar="FILE", help="train a searched architecture instead of --model: the "
                                     "best.json of `convnet search` (any convnet.nas.save_arch file)")
    a("--dataset", choices=DATASET_NAMES, help="default mnist-bundled (no download needed)")
    a("--data-dir", help="folder with the dataset files (for folder: ROOT/<class>/<image>)")
    a("--download", action="store_true", default=None,
      help="fetch missing MNIST/Fashion-MNIST files into --data-dir or ~/.cache/convnet "
           "(SHA-256 checked)")
    add_optimization_options(p)
    a("--augment", help=f"comma-separated training augmentations: {','.join(AUGMENTS)} (default "
                        "none)")
    a("--task", choices=["auto", "classify", "segment", "detect"],
      help="classify images, or segment them (per-pixel labels: the object's pixels get its "
           "class, the rest background; see convnet.data.datasets.ForegroundSegmentation), or "
           "detect objects (boxes and classes; detectors such as retinanet_tiny on "
           "--dataset mnist-detect). Default auto: segment for dense models (unet), detect "
           "for detectors, else classify")
    a("--train-canvases", type=int, help="--task detect: training canvases (default 10000; "
                                         "--val-split of them are held out)")
    a("--test-canvases", type=int, help="--task detect: test canvases (default 1000)")
    a("--canvas-size", type=int, help="--task detect: canvas side in pixels (default 64)")
    a("--warmup-steps", type=int, help="--task detect: linear learning-rate warm-up steps "
                                       "before the schedule (default 100)")
    a("--clip-grad", type=float, metavar="NORM",
      help="--task detect: clip the gradients' joint L2 norm (default 10; 0: off)")
    a("--label-smoothing", type=float, help="cross-entropy label smoothing (default 0)")
    a("--val-split", type=float, help="fraction of the training set held out (seeded) to "
                                      "validate on after every epoch (default 0.1; 0: no "
                                      "validation). The test set is evaluated once, at the end")
    a("--early-stopping", type=int, metavar="PATIENCE", help="stop after PATIENCE epochs without "
                                                             "val_loss improvement (default off)")
    a("--restore-best", action="store_true", default=None,
      help="when training ends, keep the weights of the epoch with the lowest val_loss (as "
           "Keras' restore_best_weights); the test set is then evaluated with them")
    a("--seed", type=int, help="default 0")
    a("--workers", type=int, help="data-loading threads (default 2)")
    a("--dtype", choices=["float32", "float64"], help="default float32")
    a("--image-size", type=int, help="folder datasets: resize images to this side (default 32)")
    a("--grayscale", action="store_true", default=None, help="folder datasets: load as 1 channel")
    a("--model-option", action="append", type=_model_option, metavar="KEY=VALUE",
      help="extra model option passed to convnet.models.create (repeatable), e.g. "
           "pooling=max for lenet5")
    a("--limit-train", type=int, help="use only the first N training images (quick tries)")
    a("--limit-test", type=int, help="use only the first N test images")
    a("--out", help="output folder (default runs/<model>-<dataset>)")
    a("--resume", action="store_true", help="continue the run in --out from its last checkpoint "
                                            "(its saved settings are used; --epochs may be raised)")
    a("--distributed", action="store_true",
      help="data-parallel training as one rank of an MPI job: `mpiexec -n K convnet train "
           "--distributed ...`; --batch-size stays the global batch (each rank takes 1/K of it), "
           "gradients are averaged, BatchNorm becomes SyncBatchNorm, only rank 0 writes "
           "(needs the `mpi` extra)")
    a("--launch", type=int, metavar="K",
      help="start K ranks with mpiexec and train with --distributed (one BLAS thread each)")
    add_run_folder_options(p)
    p.set_defaults(func=run)


def resolve_config(args) -> tuple[dict, Path]:
    given = {k: v for k, v in vars(args).items()
             if k in DEFAULTS and v is not None and k != "model_options"}
    if getattr(args, "model_option", None):
        given["model_options"] = dict(args.model_option)
    if given.get("arch") is not None:
        from ..nas.space import load_arch

        if "model" in given or "model_options" in given:
            raise ValueError("--arch builds the model from the architecture file; leave out "
                             "--model and --model-option")
        path = Path(given["arch"])
        if not path.is_file():
            raise FileNotFoundError(f"--arch {path}: no such file (give the best.json of a "
                                    "`convnet search --out DIR` run)")
        given["arch"] = load_arch(path)
        given["model"] = f"nas-{given['arch']['space']}"
    out = Path(args.out) if args.out else None
    if args.resume:
        from ._setup import read_config

        if out is None:
            out = Path("runs") / "{}-{}".format(given.get("model", DEFAULTS["model"]),
                                                given.get("dataset", DEFAULTS["dataset"]))
        if not (out / "checkpoint.safetensors").is_file():
            raise FileNotFoundError(f"--resume: no checkpoint at {out / 'checkpoint.safetensors'}")
        cfg = read_config(out)
        changed = [k for k, v in given.items() if k not in RESUME_OVERRIDABLE and cfg.get(k) != v]
        if changed:
            flags = ", ".join("--" + k.replace("_", "-") for k in changed)
            raise ValueError(f"--resume: {flags} differ from the saved run; resume with the same "
                             "settings (only --epochs, --workers and --data-dir may change)")
        args.saved_epochs = int(cfg["epochs"])
        cfg.update({k: v for k, v in given.items() if k in RESUME_OVERRIDABLE})
    else:
        cfg = {**DEFAULTS, **given}
        from ._setup import resolve_task

        cfg["task"] = resolve_task(cfg)
        if cfg["task"] == "detect":
            from .detect import apply_defaults

            apply_defaults(cfg, given)
        else:
            for k in DEFAULTS:
                if k in given and k in _DETECT_ONLY:
                    raise ValueError(f"--{k.replace('_', '-')} applies to --task detect only "
                                     f"({cfg['model']} is trained with --task {cfg['task']})")
        if cfg["lr"] is None:
            cfg["lr"] = DEFAULT_LR[cfg["optimizer"]]
        if out is None:
            out = Path("runs") / f"{cfg['model']}-{cfg['dataset']}"
    for k, lo in (("epochs", 1), ("batch_size", 1), ("workers", 0), ("limit_train", 1),
                  ("limit_test", 1), ("early_stopping", 0), ("image_size", 1)):
        if cfg.get(k) is not None and int(cfg[k]) < lo:
            raise ValueError(f"--{k.replace('_', '-')} must be >= {lo}, got {cfg[k]}")
    if not 0 <= float(cfg["val_split"]) < 1:
        raise ValueError(f"--val-split must be in [0, 1), got {cfg['val_split']}")
    if float(cfg["val_split"]) == 0 and (cfg["early_stopping"] or cfg.get("restore_best")):
        flag = "--early-stopping" if cfg["early_stopping"] else "--restore-best"
        raise ValueError(f"{flag} chooses an epoch by its validation loss, and --val-split 0 "
                         "leaves no validation set (choosing by the test set would make the "
                         "test result optimistic); use --val-split 0.1 (the default)")
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file; give a folder for the run's outputs")
    if not args.resume and (out / "config.json").is_file() and not args.overwrite:
        raise ValueError(_existing_run_message(out))
    if float(cfg["lr"]) <= 0:
        raise ValueError(f"--lr must be positive, got {cfg['lr']}")
    from ._setup import resolve_task

    cfg["task"] = resolve_task(cfg)
    return cfg, out


def make_optimizer(cfg: dict, params):
    from .. import optim

    name, lr, wd = cfg["optimizer"], float(cfg["lr"]), float(cfg["weight_decay"])
    if name == "sgd":
        return optim.SGD(params, lr=lr, momentum=float(cfg["momentum"]), weight_decay=wd,
                         nesterov=float(cfg["momentum"]) > 0)
    if name == "adam":
        return optim.Adam(params, lr=lr, weight_decay=wd)
    if name == "adamw":
        return optim.AdamW(params, lr=lr, weight_decay=wd or 1e-2)
    return optim.RMSprop(params, lr=lr, weight_decay=wd)


def make_scheduler(cfg: dict, opt, steps_per_epoch: int):
    from ..optim import lr_scheduler as S

    name, epochs = cfg["scheduler"], int(cfg["epochs"])
    if name == "none":
        return None, "epoch"
    if name == "cosine":
        return S.CosineAnnealingLR(opt, T_max=epochs), "epoch"
    if name == "step":
        return S.StepLR(opt, step_size=int(cfg["step_size"]), gamma=float(cfg["gamma"])), "epoch"
    if name == "exponential":
        return S.ExponentialLR(opt, gamma=float(cfg["gamma"])), "epoch"
    return S.OneCycleLR(opt, max_lr=float(cfg["lr"]), total_steps=epochs * steps_per_epoch), "batch"


def run(args) -> int:
    from . import _distributed

    if getattr(args, "launch", None) is not None:
        return _distributed.launch(args)
    if getattr(args, "distributed", False):
        _distributed.join(args)
    cfg, out = resolve_config(args)
    if cfg["task"] == "detect" and getattr(args, "distributed", False):
        raise ValueError("--distributed trains classifiers and segmenters; --task detect runs "
                         "in one process")
    if cfg["task"] == "detect":
        from .detect import run_train

        return run_train(args, cfg, out)
    return run_classifier(args, cfg, out)


def run_classifier(args, cfg: dict, out: Path, *, split_seed: int | None = None,
                   make_trainer=None, report=None, command: str = "train") -> int:
    """Train the classifier (or segmenter) of ``cfg`` into ``out``, then test it once.

    ``convnet distill`` reuses it with: ``split_seed`` (seeds the validation split instead
    of ``cfg['seed']``), ``make_trainer`` (called with the :class:`Trainer` arguments;
    default ``Trainer``), ``report(test_loader) -> dict`` (entries added to metrics.json
    after the test) and ``command`` (named in the resume hint after Ctrl-C).
    """
    import numpy as np

    from .. import manual_seed
    from ..data import DataLoader
    from ..data.dataset import Subset
    from ..functional import cross_entropy
    from ..training import EarlyStopping, RestoreBestWeights, Trainer
    from . import _distributed
    from ._setup import (build_model, dataset_info, make_dataset, make_transform,
                         model_options, task_info)

    distributed = bool(getattr(args, "distributed", False))
    rank, world = _distributed.rank(), _distributed.world_size()
    echo = print if rank == 0 else (lambda *a, **k: None)  # rank 0 speaks for the job

    split_seed = int(cfg["seed"]) if split_seed is None else int(split_seed)
    manual_seed(int(cfg["seed"]))
    info = task_info(cfg, dataset_info(cfg))
    model_options(cfg, info)  # size and option errors before any data is read
    train_set = make_dataset(cfg, info, True, make_transform(cfg, info, True))
    test_set = make_dataset(cfg, info, False, make_transform(cfg, info, False))
    val_set, val_split = None, float(cfg["val_split"])
    if val_split > 0:  # carve a validation set out of training, fixed by the seed
        if len(train_set) < 2:
            raise ValueError(f"--val-split {val_split}: the training set has {len(train_set)} "
                             "image(s), too few to hold any out; use --val-split 0")
        perm = np.random.default_rng([split_seed, 7]).permutation(len(train_set))
        n_val = max(1, int(len(train_set) * val_split))
        val_base = make_dataset(cfg, info, True, make_transform(cfg, info, False))
        val_set, train_set = Subset(val_base, perm[:n_val]), Subset(train_set, perm[n_val:])
    bs, workers = int(cfg["batch_size"]), int(cfg["workers"])
    if distributed:
        from .. import distributed as dist

        if bs % world:
            raise ValueError(f"--batch-size {bs} is the global batch and must split evenly over "
                             f"the {world} ranks; use a multiple of {world}, e.g. "
                             f"--batch-size {max(world, bs // world * world)}")
        # every epoch one seeded permutation of the training set, rank r taking every K-th
        # image of each global batch; evaluation: disjoint shards whose sums are added
        sampler = dist.DistributedSampler(train_set, num_replicas=world, rank=rank,
                                          shuffle=True, seed=int(cfg["seed"]))
        train_loader = DataLoader(train_set, bs // world, sampler=sampler, num_workers=workers,
                                  seed=int(cfg["seed"]))

        def shard(ds):
            return Subset(ds, np.arange(rank, len(ds), world))
    else:
        train_loader = DataLoader(train_set, bs, shuffle=True, num_workers=workers,
                                  seed=int(cfg["seed"]))

        def shard(ds):
            return ds
    val_loader = (DataLoader(shard(val_set), max(bs, 256), num_workers=min(workers, 1))
                  if val_set is not None else None)
    test_loader = DataLoader(shard(test_set), max(bs, 256), num_workers=min(workers, 1))

    model = build_model(cfg, info)  # after the datasets: the seeded draws stay in their order
    if distributed:
        model = dist.convert_sync_batchnorm(model)  # BatchNorm statistics of the global batch
        opt = dist.DistributedOptimizer(make_optimizer(cfg, model.parameters()))
    else:
        opt = make_optimizer(cfg, model.parameters())
    sched, sched_step = make_scheduler(cfg, opt, len(train_loader))
    ls = float(cfg.get("label_smoothing") or 0.0)
    loss_fn = cross_entropy
    if ls:
        def loss_fn(logits, y):
            return cross_entropy(logits, y, label_smoothing=ls)
    patience = int(cfg["early_stopping"] or 0)
    callbacks = [EarlyStopping("val_loss", patience)] if patience else []
    if cfg.get("restore_best"):
        callbacks.append(RestoreBestWeights("val_loss"))
    cfg["class_names"], cfg["in_channels"] = list(info.classes), info.channels
    cfg["image_size_used"] = info.size
    cfg["mean"], cfg["std"] = list(info.mean), list(info.std)
    n_params = sum(p._data.size for p in model.parameters())
    cfg["title"] = f"{cfg['model']} on {cfg['dataset']}" + (
        f" (validation: {val_split:.0%} of the training set)" if val_set is not None else "")
    progress = "auto" if args.progress is None else bool(args.progress)
    if distributed:
        from ..training import DistributedTrainer

        make_trainer = DistributedTrainer
        _distributed.started()  # every rank got this far: from here a failure stops the job
    trainer = (make_trainer or Trainer)(
        model, opt, train_loader, val_loader, loss_fn=loss_fn, scheduler=sched,
        scheduler_step=sched_step, epochs=int(cfg["epochs"]), out_dir=out, callbacks=callbacks,
        num_classes=len(info.classes), class_names=info.classes, progress=progress, config=cfg)
    prepare_run_folder(trainer, args, cfg, opt, out,
                       lambda: make_scheduler(cfg, opt, len(train_loader)), len(train_loader),
                       write=rank == 0, say=echo)
    n_epochs = int(cfg["epochs"])
    held = (f"{len(val_set):,} validation ({val_split:.0%} of the training set)"
            if val_set is not None else "no validation (--val-split 0)")
    ranks = (f" over {plural(world, 'MPI rank')} ({bs // world} images of each batch per rank)"
             if distributed else "")
    echo(f"training {cfg['model']} ({n_params:,} parameters) on {cfg['dataset']}: "
         f"{len(train_set):,} train / {held} images, {plural(n_epochs, 'epoch')}, "
         f"{cfg['optimizer']} lr {cfg['lr']}, batch {bs}{ranks}; the {len(test_set):,} test "
         "images are evaluated once, at the end", flush=True)
    start = time.perf_counter()
    try:
        trainer.fit()
        wall = time.perf_counter() - start
        test = trainer.evaluate(test_loader, confusion=True)
    except KeyboardInterrupt:
        if not distributed:
            print(interrupted_message(trainer, out, command), file=sys.stderr)
            return 130
        # the hint resumes with as many ranks (any other number works too)
        _distributed.interrupted(interrupted_message(trainer, out, f"{command} --launch {world}"))
        return 130
    test.pop("_confusion")
    extra = {k if k.startswith(("confusion", "per_class")) else "test_" + k: v
             for k, v in test.items()}
    if distributed:
        extra["world_size"] = world
    extra.update({"class_names": list(info.classes), "parameters": int(n_params),
                  "wall_time_s_last_session": wall,
                  "validation": {**validation_record(val_set, val_split, cfg, "training set"),
                                 "seed": split_seed}})
    if report is not None:
        extra.update(report(test_loader))
    if trainer.history and val_set is not None:
        best = min(trainer.history, key=lambda h: h["val_loss"])
        extra["best_epoch"] = best["epoch"]  # by validation loss, the criterion of --restore-best
    extra["weights_epoch"] = trainer.restored_epoch or trainer.epoch
    trainer.write_metrics(out, extra)
    top5 = test.get("top5_accuracy", float("nan"))
    which = (f"weights of epoch {trainer.restored_epoch}" if trainer.restored_epoch else
             f"after {plural(trainer.epoch, 'epoch')}")
    if rank != 0:
        return 0
    if cfg["task"] == "segment":
        print(f"test pixel accuracy {test['accuracy']:.4f}, mean IoU {test['mean_iou']:.4f} "
              f"(loss {test['loss']:.4f}) on {len(test_set):,} held-out images, {which}; "
              f"training time {trainer.train_time:.1f}s")
    else:
        print(f"test accuracy {test['accuracy']:.4f} (top-5 {top5:.4f}, "
              f"loss {test['loss']:.4f}) on {len(test_set):,} held-out images, {which}; "
              f"training time {trainer.train_time:.1f}s")
    print(f"checkpoint: {out / 'model.safetensors'} (resume state: "
          f"{out / 'checkpoint.safetensors'})")
    print(f"curves:     {out / 'curves.png'}")
    print(f"metrics:    {out / 'metrics.json'}")
    return 0


def resume_schedule(trainer, args, cfg: dict, opt, steps_per_epoch: int, build,
                    say=print) -> None:
    """After ``trainer.resume``: when --epochs changed, the schedule was planned for the old
    length; rebuild it (``build() -> (scheduler, 'epoch' | 'batch')``) for the new one and move
    it to where the run is (the same lr history for schedules that ignore the length).
    Schedulers step from the current lr (as torch's): replay from the initial one."""
    if trainer.scheduler is None or args.saved_epochs == int(cfg["epochs"]):
        return
    for group in opt.param_groups:
        group["lr"] = group.get("initial_lr", group["lr"])
    sched, step = build()
    for _ in range(trainer.epoch * (steps_per_epoch if step == "batch" else 1)):
        sched.step()
    trainer.scheduler = sched
    say(f"--epochs changed from {args.saved_epochs} to {cfg['epochs']}: the "
          f"{cfg['scheduler']} learning-rate schedule now spans the new length")


_DETECT_ONLY = ("train_canvases", "test_canvases", "canvas_size", "warmup_steps", "clip_grad")

# Files a run writes into its --out folder (removed by --overwrite before a new run starts).
RUN_FILES = ("config.json", "checkpoint.safetensors", "model.safetensors", "metrics.json",
             "curves.png", "best_model.safetensors")


def prepare_run_folder(trainer, args, cfg: dict, opt, out: Path, rebuild_schedule,
                       steps_per_epoch: int, write: bool = True, say=print) -> None:
    """Clear an overwritten run's results, or resume the trainer from the folder's checkpoint
    (rebuilding the schedule when --epochs changed); then write config.json. ``write=False``
    (ranks other than 0 of a distributed run) only resumes: one rank owns the folder."""
    from ..io.atomic import atomic_write_text

    if write and not args.resume and getattr(args, "overwrite", False):
        for name in RUN_FILES:  # a fresh run must not inherit the old one's results
            (out / name).unlink(missing_ok=True)
    if write:
        out.mkdir(parents=True, exist_ok=True)
    if args.resume:
        trainer.resume(out / "checkpoint.safetensors")
        say(f"resuming {out} after epoch {trainer.epoch}/{trainer.epochs}")
        resume_schedule(trainer, args, cfg, opt, steps_per_epoch, rebuild_schedule, say)
    if write:
        atomic_write_text(out / "config.json", json.dumps(cfg, indent=2) + "\n")


def validation_record(val_set, val_split: float, cfg: dict, source: str) -> dict:
    """``metrics.json``'s ``validation`` entry: where the held-out images came from."""
    return {"source": source if val_set is not None else "none", "fraction": val_split,
            "images": len(val_set) if val_set is not None else 0, "seed": int(cfg["seed"])}


def plural(n: int, word: str) -> str:
    """``plural(1, 'epoch')`` -> '1 epoch', ``plural(3, 'epoch')`` -> '3 epochs'."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def interrupted_message(trainer, out: Path, command: str = "train") -> str:
    """What Ctrl-C leaves behind: no checkpoint yet, or which epoch is saved and how to go on."""
    if trainer.saved_epoch == 0:
        return (f"\nconvnet {command}: interrupted during epoch {trainer.epoch + 1}, before the first "
                f"checkpoint (one is written when each epoch ends): nothing was saved in {out}; "
                "run the same command again to start over")
    if trainer.epoch >= trainer.epochs or trainer.stop_training:
        return (f"\nconvnet {command}: interrupted while evaluating on the test set; all "
                f"{plural(trainer.saved_epoch, 'epoch')} are saved in {out}. See the test "
                f"results with:\n  convnet evaluate {out}")
    return (f"\nconvnet {command}: interrupted during epoch {trainer.epoch + 1}/{trainer.epochs}; "
            f"the checkpoint of epoch {trainer.saved_epoch} is saved in {out}. Resume with:\n"
            f"  convnet {command} --out {out} --resume")
