"""How fast is merging four ResNet50-sized models? (medlib.vectors.merge, Paper A §3.3–3.4)

Compares, on the same inputs (timm ``resnet50``, ~25.6M parameters, random weights):

* ``per-key``   the common dict comprehension
                ``{k: pre[k] + lam * sum(sd[k] - pre[k] for sd in sds) for k in pre}``
* ``medlib``    ``merge(pre, sds, "data_vector", lam)`` on state dicts, on modules (which also
                builds the new model), and with ``into=`` (writes into an existing model)
* ``bound``     the memory-bandwidth bound: every input read once, the output written once,
                (N + 2) × model bytes ÷ the bandwidth of a large ``torch`` tensor copy.

A merge that returns *new* tensors also pays for the first touch of fresh memory (the
kernel maps and zeroes every page); the row ``first touch`` measures that alone
(``torch.empty`` + ``fill_`` of one model's worth of bytes). The bound does not include it.

Timings alternate between the implementations (round-robin) so that a busy machine slows
all of them alike; the best of ``--repeats`` rounds is reported.

Run: ``python benches/bench_merge.py [--device cpu|cuda] [--repeats 9] [--threads N]``.
``merge`` is written per key like Eq. 1–3 (plus its checks), so expect about the per-key time: a
merge takes about a second after hours of training. TIES (a global top-k over the flattened
vector) and DARE (a random mask per value) show what the later merging methods cost.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

import timm
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, installed or not
from medlib.vectors import merge  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _round_robin(fns: dict, device, repeats: int) -> dict[str, tuple[float, float]]:
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():  # warm-up: allocator, caches, lazy init
        fn()
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: (min(t), statistics.median(t)) for name, t in times.items()}


def per_key_merge(pre, sds, lam):
    return {k: pre[k] + lam * sum(sd[k] - pre[k] for sd in sds) for k in pre}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--sites", type=int, default=4)
    parser.add_argument("--lam", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    pretrained = timm.create_model("resnet50", pretrained=False).to(device).eval()
    sites = []
    for _ in range(args.sites):
        site = copy.deepcopy(pretrained)
        with torch.no_grad():
            for p in site.parameters():
                p.add_(torch.randn_like(p), alpha=1e-3)
        sites.append(site)
    pre_sd = {k: v.detach() for k, v in pretrained.state_dict().items()}
    site_sds = [{k: v.detach() for k, v in s.state_dict().items()} for s in sites]
    model_bytes = sum(v.numel() * v.element_size() for v in pre_sd.values())
    n_params = sum(p.numel() for p in pretrained.parameters())
    reusable = copy.deepcopy(pretrained)

    # correctness first: both implementations agree on the merged parameters
    ref = per_key_merge(pre_sd, site_sds, args.lam)
    ours = merge(pre_sd, site_sds, "data_vector", lam=args.lam)
    worst = max(float((ref[k].float() - ours[k].float()).abs().max()) for k, _ in pretrained.named_parameters())
    assert worst < 1e-5, f"medlib merge disagrees with the per-key merge by {worst}"

    n_floats = max(model_bytes, 256 << 20) // 4
    src, dst = torch.rand(n_floats, device=device), torch.empty(n_floats, device=device)
    rows = _round_robin({
        "copy (bandwidth probe)": lambda: dst.copy_(src),
        "per-key dict comprehension": lambda: per_key_merge(pre_sd, site_sds, args.lam),
        "medlib merge (state dicts)": lambda: merge(pre_sd, site_sds, "data_vector", lam=args.lam),
        "medlib merge (modules)": lambda: merge(pretrained, sites, "data_vector", lam=args.lam),
        "medlib merge (into=model)": lambda: merge(pretrained, sites, "data_vector", lam=args.lam, into=reusable),
        "medlib TIES (density 0.2)": lambda: merge(pre_sd, site_sds, "ties", lam=args.lam, density=0.2),
        "medlib DARE (drop 0.9)": lambda: merge(pre_sd, site_sds, "dare", lam=args.lam, drop=0.9),
        "first touch of a fresh output": lambda: torch.empty(model_bytes // 4, device=device).fill_(0),
    }, device, args.repeats)
    copy_best = rows.pop("copy (bandwidth probe)")[0]
    bandwidth = 2 * n_floats * 4 / copy_best  # bytes read + written per second
    moved = (args.sites + 2) * model_bytes  # read θ_pre and N sites, write θ_mix
    bound = moved / bandwidth

    threads = torch.get_num_threads()
    print(f"device {device} ({threads} threads) · {args.sites} sites · resnet50: {n_params / 1e6:.2f}M "
          f"parameters, state dict {model_bytes / 2**20:.0f} MiB")
    print(f"copy bandwidth {bandwidth / 1e9:.2f} GB/s → bound {bound * 1e3:.1f} ms ({moved / 2**20:.0f} MiB moved)")
    print(f"{'implementation':32s} {'best ms':>8s} {'median ms':>10s} {'÷ bound':>8s} {'speed-up vs per-key':>20s}")
    per_key_best = rows["per-key dict comprehension"][0]
    for name, (best, med) in rows.items():
        print(f"{name:32s} {best * 1e3:8.1f} {med * 1e3:10.1f} {best / bound:8.2f} {per_key_best / best:19.2f}×")
    return {"bound_s": bound, "bandwidth_Bps": bandwidth, **{k: v[0] for k, v in rows.items()}}


if __name__ == "__main__":
    main()
