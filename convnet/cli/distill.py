"""``convnet distill --teacher RUN --model M``: train a student network on a trained teacher's
soft targets and the labels (knowledge distillation, Hinton et al. 2015).

The student learns from ``alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) *
cross-entropy`` on the teacher run's dataset, with its transforms and its validation split
(the same held-out images, unseen by both, unless --limit-train changes the training set).
The teacher runs in eval mode on the student's augmented batches (without augmentation,
once over the training set: its logits are looked up after that). The output folder is a normal training run
(`convnet evaluate`, `predict`, `summary` work on it, `--resume` continues it exactly);
metrics.json adds the teacher's test accuracy on the same test images.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..data.datasets.download import sha256_of
from .train import DEFAULTS, _model_option, add_optimization_options, add_run_folder_options

DISTILL_DEFAULTS = {"temperature": 4.0, "alpha": 0.9}
# Taken from the teacher's run: the student sees the same images, transforms and split.
# (--limit-train/--limit-test/--data-dir may be given to override them.)
FROM_TEACHER = ("dataset", "data_dir", "download", "augment", "val_split", "image_size",
                "grayscale", "dtype", "limit_train", "limit_test", "task")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "distill", description=__doc__,
        help="train a student from a trained teacher run (knowledge distillation)")
    a = p.add_argument
    a("--teacher", metavar="RUN", help="the --out folder of a `convnet train` classification "
                                       "run (required, except with --resume)")
    a("--model", help="the student's model name from `convnet models` (required, except with "
                      "--resume)")
    a("--temperature", type=float, help="softmax temperature T of the soft targets (default 4)")
    a("--alpha", type=float, help="weight of the teacher's soft targets in [0, 1] (default 0.9; "
                                  "0: the labels alone)")
    add_optimization_options(p)
    a("--seed", type=int, help="default 0 (the validation split stays the teacher's)")
    a("--workers", type=int, help="data-loading threads (default 2)")
    a("--model-option", action="append", type=_model_option, metavar="KEY=VALUE",
      help="extra student model option (repeatable), e.g. pooling=max for lenet5")
    a("--limit-train", type=int, help="use only the first N training images (default: the "
                                      "teacher's setting)")
    a("--limit-test", type=int, help="use only the first N test images (default: the "
                                     "teacher's setting)")
    a("--data-dir", help="where the teacher's dataset lives now (default: as when it trained)")
    a("--out", help="output folder (default runs/<model>-from-<teacher folder name>)")
    a("--resume", action="store_true", help="continue the run in --out from its last checkpoint "
                                            "(same teacher; --epochs may be raised)")
    add_run_folder_options(p)
    p.set_defaults(func=run)


def teacher_config(run_dir: Path) -> dict:
    """The teacher run's config, refused unless it is a finished-enough classification run."""
    from ._setup import read_config

    if not run_dir.is_dir():
        raise FileNotFoundError(f"--teacher {run_dir}: no such run folder; give the --out "
                                "folder of a `convnet train` run")
    cfg = read_config(run_dir)
    task = cfg.get("task", "classify")
    if task != "classify":
        raise ValueError(f"--teacher {run_dir}: a --task {task} run ({cfg.get('model')}); "
                         "distillation needs a classification run (one label per image)")
    if not (run_dir / "model.safetensors").is_file():
        raise FileNotFoundError(f"--teacher {run_dir}: no model.safetensors (was the run "
                                "interrupted before its first epoch finished?)")
    return cfg


def _check_hyper(name: str, value) -> None:
    if value is None:
        return
    if name == "temperature" and not 0 < value < float("inf"):
        raise ValueError(f"--temperature must be a positive number, got {value}")
    if name == "alpha" and not 0 <= value <= 1:
        raise ValueError(f"--alpha must be in [0, 1], got {value}")


def resolve_config(args) -> tuple[dict, Path, Path, argparse.Namespace]:
    """(config, output folder, teacher folder, arguments as ``convnet train`` reads them): the
    student's training options on top of the teacher's data settings, checked by ``convnet
    train``'s rules; on --resume, the saved ones."""
    from . import train

    for name in DISTILL_DEFAULTS:
        _check_hyper(name, getattr(args, name))
    # train's options that distill does not offer stay unset (their defaults, or the teacher's)
    ns = argparse.Namespace(**{k: None for k in DEFAULTS})
    ns.__dict__.update(vars(args))
    teacher = Path(args.teacher) if args.teacher else None
    if args.resume:
        if args.out is None:
            if teacher is None or not args.model:
                raise ValueError("--resume: give the run's --out folder")
            ns.out = str(Path("runs") / f"{args.model}-from-{teacher.name}")
        cfg, out = train.resolve_config(ns)  # checks the checkpoint and the changed flags
        saved = cfg.get("distillation")
        if not saved:
            raise ValueError(f"--resume: {out} is a `convnet train` run, not a distillation; "
                             f"continue it with `convnet train --out {out} --resume`")
        for name in DISTILL_DEFAULTS:
            given = getattr(args, name)
            if given is not None and float(given) != float(saved[name]):
                raise ValueError(f"--resume: --{name} {given} differs from the saved run's "
                                 f"{saved[name]}; resume with the same settings")
        teacher = teacher or Path(saved["teacher"])
        teacher_config(teacher)
        if sha256_of(teacher / "model.safetensors") != saved["teacher_sha256"]:
            raise ValueError(f"--resume: the teacher's weights in {teacher} are not the ones "
                             "this run started with (retrained or replaced); resuming needs "
                             "the same teacher")
        return cfg, out, teacher, ns
    if teacher is None:
        raise ValueError("--teacher RUN is required: the --out folder of a trained "
                         "classification run")
    if not args.model:
        raise ValueError("--model is required: the student network, e.g. --model lenet5 "
                         "(see `convnet models`)")
    tcfg = teacher_config(teacher)
    for k in FROM_TEACHER:
        if getattr(ns, k, None) is None:
            setattr(ns, k, tcfg.get(k, DEFAULTS[k]))
    if ns.out is None:
        ns.out = str(Path("runs") / f"{args.model}-from-{teacher.name}")
    cfg, out = train.resolve_config(ns)
    cfg["distillation"] = {
        "teacher": str(teacher.resolve()), "teacher_model": tcfg["model"],
        "teacher_sha256": sha256_of(teacher / "model.safetensors"),
        "temperature": float(args.temperature if args.temperature is not None
                             else DISTILL_DEFAULTS["temperature"]),
        "alpha": float(args.alpha if args.alpha is not None else DISTILL_DEFAULTS["alpha"]),
        # the teacher's validation images stay unseen by the student whatever its --seed
        "split_seed": int(tcfg.get("seed", DEFAULTS["seed"])),
    }
    return cfg, out, teacher, ns


def run(args) -> int:
    import numpy as np

    from ..autograd.grad_mode import no_grad
    from ..tensor import Tensor
    from ..training import evaluate
    from ..training.distill import DistillationTrainer
    from .evaluate import load_run
    from .train import run_classifier

    cfg, out, teacher_dir, args = resolve_config(args)
    d = cfg["distillation"]
    tcfg, tinfo, teacher = load_run(teacher_dir)
    # One tiny eval-mode pass checks the teacher takes the images and predicts every class
    # before any data is read (it draws no random numbers).
    shape = (1, tinfo.channels, tinfo.size, tinfo.size)
    dtype = next(iter(teacher.parameters()))._data.dtype
    with no_grad():
        k = teacher(Tensor._make(np.zeros(shape, dtype))).shape
    if k != (1, len(tinfo.classes)):
        raise ValueError(f"--teacher {teacher_dir}: its model maps {shape} images to {k}, not "
                         f"(1, {len(tinfo.classes)}) logits over its classes")
    print(f"teacher: {teacher_dir} ({tcfg['model']}); temperature {d['temperature']}, "
          f"alpha {d['alpha']}", flush=True)

    # Without augmentation an image's teacher logits never change: compute them once
    # (one teacher pass over the training set instead of one per epoch).
    fixed_images = (cfg.get("augment") or "none") == "none"

    def make_trainer(model, *a, **kw):
        return DistillationTrainer(model, *a, teacher=teacher, temperature=d["temperature"],
                                   alpha=d["alpha"], cache_teacher_logits=fixed_images, **kw)

    teacher_result = {}

    def report(test_loader) -> dict:
        res = evaluate(teacher, test_loader)
        teacher_result.update(res)
        return {"teacher_test_accuracy": res["accuracy"],
                "distillation": {**d, "teacher_test_accuracy": res["accuracy"],
                                 "teacher_test_loss": res["loss"]}}

    status = run_classifier(args, cfg, out, split_seed=d["split_seed"],
                            make_trainer=make_trainer, report=report, command="distill")
    if status == 0 and teacher_result:
        student = json.loads((out / "metrics.json").read_text())["test_accuracy"]
        print(f"teacher test accuracy {teacher_result['accuracy']:.4f} ({tcfg['model']}); "
              f"student {student:.4f} ({cfg['model']}) on the same test images")
    return status
