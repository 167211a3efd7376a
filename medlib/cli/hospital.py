"""Paper A as a workflow hospitals could run: one command per step, safetensors between steps.

    medlib pretrained --dataset NAME --root DIR --out pre.safetensors
    medlib finetune   --dataset NAME --root DIR --site K --n-sites 4 --out site_K.safetensors [--resume]
    medlib merge      --pretrained pre.safetensors --models site_*.safetensors --method data-vector --lam 0.5
                      --out merged.safetensors  (or --method ties --density 0.2, --method dare --drop 0.9)
    medlib restore-bn --model merged.safetensors --dataset NAME --root DIR --out restored.safetensors
    medlib evaluate   --model restored.safetensors --dataset NAME --root DIR --json

Every file carries JSON metadata (architecture, classes, profile, provenance); a pickle, a file without
metadata or a model of another architecture is refused. In a real deployment ``--site`` is dropped and
``--root`` is the hospital's own data; ``--site K`` takes part K of the book's split
(:func:`~medlib.experiments.paper_a.runs.split_sites`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np

from medlib.cli import bounded_int
from medlib.errors import MedlibError

_METHOD = {m.replace("_", "-"): m for m in ("data_vector", "params_mean", "random_vector", "ties", "dare")}
_RESTORE = {m.replace("_", "-"): m for m in ("finetune_epoch", "recompute_stats", "site_stats")}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _local(args, profile):
    """The dataset at ``--root`` split into ``--n-sites`` hospitals exactly as the book splits it, with the
    book's batches (:class:`~medlib.experiments.paper_a.runs.Trained`: images on the device, augmented there)."""
    from medlib.data import load_dataset
    from medlib.experiments.paper_a.runs import Trained, split_sites

    ds = load_dataset(args.dataset, args.root)
    # progress would corrupt `--json` output on stdout
    data = split_sites(ds, profile, args.seed, method=args.partition, n_sites=args.n_sites,
                       progress=not getattr(args, "json", False))
    return Trained(args.dataset, profile, args.seed, data)


def _site(local, k: int | None) -> np.ndarray:
    part = local.data.partition
    if k is None:
        return part.train
    if not 1 <= k <= part.n_sites:
        raise MedlibError(f"--site {k} is out of range: expected 1..{part.n_sites} (--n-sites)")
    return part.sites[k - 1]


_seed = bounded_int(0, 2**32)  # what NumPy and torch both take
_positive = bounded_int(1)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):  # NaN fails >= too
        raise argparse.ArgumentTypeError(f"{text}: expected seconds >= 0 (0: after every epoch)")
    return value


def _check_out(path: Path) -> None:
    """Refuse an --out that cannot be written before any work: a folder, or a folder we cannot write in."""
    import tempfile

    if path.is_dir():
        raise MedlibError(f"--out {path} is a folder: name the file to write, e.g. {path / 'model.safetensors'}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
            pass
    except OSError as exc:
        raise MedlibError(f"--out {path} cannot be written ({exc.strerror or exc}): choose another path") from exc


def _binding(args, local, idx: np.ndarray, model) -> dict:
    """What a fine-tuning's weights depend on besides its TrainConfig: its checkpoint is bound to it."""
    from medlib.data.cache import cache_key
    from medlib.experiments.paper_a.runs import _digest

    return {"dataset": args.dataset, "site": args.site, "n_sites": args.n_sites, "partition": args.partition,
            "data": cache_key(local.data.dataset.image_paths, local.profile.paper_a.image_size),
            "indices": _digest(idx, local.data.labels[idx]), "theta_pre": _digest(*model.state_dict().values())}


def _check_classes(meta: dict, ds, path) -> None:
    if meta.get("classes") != list(ds.classes):
        raise MedlibError(f"{path} was trained for classes {meta.get('classes')} but {ds.name} at this root has "
                          f"{list(ds.classes)}; use a model trained on the same dataset")


def _common(p: argparse.ArgumentParser, *, data: bool = True) -> None:
    if data:
        p.add_argument("--dataset", required=True, help="retina, pad-ufes-20 or bladder-tissue")
        p.add_argument("--root", required=True, type=Path, help="folder the dataset was unpacked to")
        p.add_argument("--n-sites", type=_positive, default=4, help="simulated hospitals (default 4, the paper's)")
        p.add_argument("--partition", default="equal", help="equal (paper), stratified, dirichlet or grouped")
        p.add_argument("--seed", type=_seed, default=None,
                       help="seed of the partition and training, 0 <= seed < 4294967296 (default: the profile's first)")
    p.add_argument("--profile", default="auto", help="smoke, full or auto")


def _model_and_data(args):
    """The profile, the model file's classifier and the local data, checked to share classes."""
    from medlib.models import load_classifier

    P = _profile_and_seed(args)
    model, meta = load_classifier(args.model)  # refuses lying metadata and NaN/inf weights
    local = _local(args, P)
    _check_classes(meta, local.data.dataset, args.model)
    return P, model, meta, local


def _profile_and_seed(args):
    from medlib.profiles import get_profile, is_dry_run

    P = get_profile(args.profile, dry=is_dry_run())
    if args.dataset not in P.paper_a.datasets:  # before any data is read or θ_pre built
        raise MedlibError(f"--dataset {args.dataset!r} is not one of Paper A's: expected one of "
                          f"{list(P.paper_a.datasets)}")
    if args.seed is None:
        args.seed = P.first_seed  # the book's first seed (full: the paper's 3315, Table 4)
    if getattr(args, "out", None) is not None:
        _check_out(args.out)
    return P


def _cmd_pretrained(args) -> int:
    from medlib.data import load_dataset
    from medlib.experiments.paper_a import pretrained_classifier
    from medlib.models import save_classifier

    P = _profile_and_seed(args)
    ds = load_dataset(args.dataset, args.root)
    model = pretrained_classifier(P, len(ds.classes), args.seed, pretrained_path=args.pretrained_path)
    save_classifier(args.out, model, {"classes": list(ds.classes), "profile": P.name, "role": "pretrained",
                                      "dataset": args.dataset, "seed": args.seed})
    print(f"θ_pre ({model.arch}, {len(ds.classes)}-class head) written to {args.out}")
    return 0


def _cmd_finetune(args) -> int:
    import torch

    from medlib.experiments.paper_a.runs import finetune_config, pretrained_classifier
    from medlib.models import load_classifier, save_classifier
    from medlib.runtime import provenance, seed_everything
    from medlib.train import fit

    P = _profile_and_seed(args)
    local = _local(args, P)
    classes = list(local.data.classes)
    if args.pretrained:
        model, meta = load_classifier(args.pretrained)
        _check_classes(meta, local.data.dataset, args.pretrained)
    else:
        model = pretrained_classifier(P, len(classes), args.seed, pretrained_path=args.pretrained_path)
    idx = _site(local, args.site)
    epochs = args.epochs if args.epochs is not None else P.paper_a.epochs
    cfg = finetune_config(local, idx, epochs=epochs, log_every=1)
    print(f"fine-tuning {model.arch} on {args.dataset} site {args.site or 'all'} ({len(idx)} images), "
          f"{epochs} epochs, profile {P.label}", flush=True)
    seed_everything(args.seed)
    out = Path(args.out)
    ckpt = out.with_name(out.name + ".ckpt")
    if ckpt.exists() and not args.resume:
        print(f"{ckpt} holds an interrupted training; starting over (pass --resume to continue it)", flush=True)
    # fit says whether it resumes (from which checkpoint, after which epoch) or starts from scratch; the
    # checkpoint of another site, partition, dataset or θ_pre is refused (safer than silently starting over)
    history = fit(model, local.loader(idx, train=True), cfg, checkpoint_path=ckpt, resume=args.resume,
                  checkpoint_every_s=args.checkpoint_every, binding=_binding(args, local, idx, model))
    meta = {"classes": classes, "profile": P.name, "role": "site", "dataset": args.dataset,
            "site": args.site, "n_sites": args.n_sites, "partition": args.partition, "seed": args.seed,
            "epochs": epochs, "history": history.records, "provenance": provenance(P, args.seed)}
    save_classifier(out, model.to(torch.device("cpu")), meta)
    ckpt.unlink(missing_ok=True)
    print(f"site model written to {out}")
    return 0


def _cmd_merge(args) -> int:
    from medlib.models import load_classifier, save_classifier
    from medlib.vectors import merge

    _check_out(args.out)
    pre, pre_meta = load_classifier(args.pretrained)
    sites = []
    for path in args.models:
        model, meta = load_classifier(path)
        if meta.get("arch") != pre_meta.get("arch") or meta.get("classes") != pre_meta.get("classes"):
            raise MedlibError(f"{path} is a {meta.get('arch')} model for classes {meta.get('classes')}, but the "
                              f"pretrained model is a {pre_meta.get('arch')} for {pre_meta.get('classes')}: every site "
                              "must fine-tune the same θ_pre")
        sites.append(model)
    merged = merge(pre, sites, _METHOD[args.method], lam=args.lam, density=args.density, drop=args.drop, seed=args.seed)
    meta = {"classes": pre_meta["classes"], "profile": pre_meta.get("profile"), "role": "merged",
            "method": args.method, "lam": args.lam, "density": args.density, "drop": args.drop, "seed": args.seed,
            "inputs": {str(Path(p).name): _sha256(Path(p)) for p in [args.pretrained, *args.models]}}
    save_classifier(args.out, merged, meta)
    print(f"{args.method} merge of {len(sites)} models (λ={args.lam}) written to {args.out}; "
          "restore its BatchNorm state next (medlib restore-bn)")
    return 0


def _cmd_restore(args) -> int:
    from medlib.experiments.paper_a.restore import restore_on_parts
    from medlib.models import save_classifier

    P, model, meta, local = _model_and_data(args)
    sites = [args.site] if args.site else list(range(1, local.data.partition.n_sites + 1))
    _site(local, args.site)  # out of range: a one-line error
    restored = restore_on_parts(local, model, [k - 1 for k in sites], _RESTORE[args.method])
    bad = [k for k, v in restored.state_dict().items() if v.is_floating_point() and not bool(v.isfinite().all())]
    if bad:  # e.g. a finetune-epoch that diverged: no NaN model is written
        raise MedlibError(f"restoring {args.model} ({args.method}) gave NaN or infinite values (first {bad[0]}); "
                          f"nothing written to {args.out}")
    meta.update(role="restored", restore_method=args.method, restore_sites=sites)
    save_classifier(args.out, restored.cpu(), meta)
    print(f"BatchNorm state restored ({args.method}, sites {sites}) → {args.out}")
    return 0


def _cmd_evaluate(args) -> int:
    from medlib.train import evaluate

    P, model, meta, local = _model_and_data(args)
    idx = local.data.partition.test if args.split == "test" else np.arange(len(local.data.labels))
    metrics = evaluate(model, local.loader(idx, train=False), local.device, local.n_classes, max_steps=P.max_steps)
    # n: the images evaluated (fewer than the split's in a dry run, which caps the batches)
    report = {"model": str(args.model), "dataset": args.dataset, "split": args.split, "n": int(metrics["n"]),
              "role": meta.get("role"), "profile": P.name, **{k: float(v) for k, v in metrics.items() if k != "n"}}
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        for key, value in report.items():
            print(f"{key:>18}: {value}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("pretrained", help="Paper A: write the shared θ_pre (backbone + new head)")
    _common(p)
    p.add_argument("--pretrained-path", type=Path, help="local safetensors backbone instead of the profile's θ_pre")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=_cmd_pretrained)

    p = subparsers.add_parser("finetune", help="Paper A §3.1: fine-tune θ_pre on one site's data")
    _common(p)
    p.add_argument("--site", type=int, help="1-based site of the simulated split (default: all training data)")
    p.add_argument("--pretrained", type=Path, help="θ_pre file from `medlib pretrained` (default: build it)")
    p.add_argument("--pretrained-path", type=Path, help="local safetensors backbone (full profile, offline)")
    p.add_argument("--epochs", type=_positive, help="override the profile's number of epochs (at least 1)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT.ckpt after an interruption; a checkpoint of another run (dataset, site, "
                        "partition, data, θ_pre or settings) or an unreadable one is refused, naming it")
    p.add_argument("--checkpoint-every", type=_seconds, default=600.0, metavar="SECONDS",
                   help="write OUT.ckpt every SECONDS of training and after the last epoch (600; 0: every epoch)")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=_cmd_finetune)

    p = subparsers.add_parser("merge", help="Paper A §3.3–3.4: merge site models (data vector, params mean, random; "
                                             "TIES, DARE)")
    p.add_argument("--pretrained", required=True, type=Path)
    p.add_argument("--models", required=True, nargs="+", type=Path)
    p.add_argument("--method", choices=sorted(_METHOD), default="data-vector")
    p.add_argument("--lam", type=float, default=0.5, help="λ of θ_pre + λ Σ τ_i (paper: 0.5)")
    p.add_argument("--density", type=float, help="ties: fraction of each vector's largest magnitudes kept (0.2)")
    p.add_argument("--drop", type=float, help="dare: probability of dropping each coordinate (default 0.9)")
    p.add_argument("--seed", type=_seed, default=0, help="seed of the random-vector control and of dare's drops")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=_cmd_merge)

    p = subparsers.add_parser("restore-bn", help="Paper A §3.5: restore the state (BatchNorm) of a merged model")
    _common(p)
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--method", choices=sorted(_RESTORE), default="recompute-stats",
                   help="finetune-epoch is the paper's restoration (§4.1: one epoch of training on the sites' "
                        "data); recompute-stats (default, ours) only recomputes BatchNorm statistics by forward "
                        "passes and changes no weight or label, the more privacy-friendly; site-stats pools "
                        "per-layer sums the sites share (federated statistics)")
    p.add_argument("--site", type=int, help="restore on this site only (default: every site)")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=_cmd_restore)

    p = subparsers.add_parser("evaluate", help="Paper A: accuracy, balanced accuracy, macro-F1, AUROC of a model")
    _common(p)
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--split", choices=("test", "all"), default="test")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_evaluate)
