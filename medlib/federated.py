r"""Federated baselines with Flower: FedAvg, FedProx and FedBN from Paper A's θ_pre.

Paper A argues that federated learning is impractical and never measures it. Here the same four
hospitals, starting from the same θ_pre with the same optimiser (Adam, Paper A's lr, batch size
and class-weighted cross-entropy), run Flower's own strategies
(:class:`flwr.serverapp.strategy.FedAvg`, :class:`~flwr.serverapp.strategy.FedProx`) as a
``ServerApp`` talking to a ``ClientApp`` on each site. Local compute is held equal to Paper A's:
the profile's ``epochs`` local epochs per site are split into ``rounds × local_epochs``.

``fedavg``   the server averages every array the sites send, weighted by their example counts
             (McMahan et al., 2017): parameters *and* BatchNorm running statistics.
``fedprox``  FedAvg with the proximal term :math:`\frac{\mu}{2}\lVert w - w^t\rVert^2` added to each
             site's loss (Li et al., 2020); Flower's strategy sends μ as ``proximal-mu``.
``fedbn``    FedAvg where each site keeps its BatchNorm layers — weight, bias and running
             statistics — local (Li et al., 2021): only the other arrays travel. The site's BN
             state lives in the ClientApp's ``context.state``, Flower's per-node memory.

Evaluating FedBN on the shared test set. A FedBN federation has no single model: the shared
weights are global, BatchNorm is per site. We evaluate what each hospital would deploy — the
global weights with *its own* BN — on the shared test set, as Flower's federated evaluation
(each ClientApp reports its accuracy) and report the mean over the sites (the strategy's
example-weighted average, with equal test counts); the per-site values are kept too.

Backends. ``"ray"`` is Flower's simulation engine (:func:`flwr.simulation.run_simulation`: a Ray
actor per ClientApp). ``"inprocess"`` runs the same ServerApp, ClientApp and strategy with the
ClientApps called in this process by :class:`InProcessGrid`, a :class:`flwr.serverapp.grid.Grid`
that hands each message to the ClientApp and returns its reply. On a 2-core machine Ray's
start-up (raylet, GCS, workers) costs more than a whole smoke federation; the results are the
same because every client's randomness is a function of (seed, site, round) only.

FedAvg with one round, all local epochs and equal site sizes *is* Params Mean before any
BatchNorm restoration (tested).
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

os.environ.setdefault("FLWR_TELEMETRY_ENABLED", "0")  # a book build or a test must not phone home

import numpy as np
import torch
from torch import nn

from medlib.bn import batchnorm_layers
from medlib.errors import MedlibError

__all__ = [
    "STRATEGIES", "BACKENDS", "FederatedSite", "FederatedResult", "InProcessGrid", "run_federated",
    "batchnorm_keys", "rounds_grid",
]

STRATEGIES = ("fedavg", "fedprox", "fedbn")
BACKENDS = ("inprocess", "ray")
_ROUND_SEED_STRIDE = 1000  # round r trains with seed + 1000 (r − 1): round 1 is the one-shot site run


@dataclass
class FederatedSite:
    """What one hospital holds: a loader factory over its own data and its class weights.

    ``loader(seed)`` returns the site's (augmented, shuffled) training loader whose order is
    fixed by ``seed``; ``test_loader()`` the shared test set (used by FedBN's per-site
    evaluation only). ``n_examples`` weights the site in the average.
    """

    loader: Callable[[int], object]
    n_examples: int
    class_weights: torch.Tensor | None = None
    test_loader: Callable[[], object] | None = None


@dataclass
class FederatedResult:
    """The outcome of one federation: the final global model and what it cost."""

    strategy: str
    rounds: int
    local_epochs: int
    model: nn.Module  # global arrays loaded into the template (FedBN: θ_pre's BN, see site_models)
    site_models: list[nn.Module] = field(default_factory=list)  # FedBN: global weights + each site's BN
    site_accuracies: list[float] = field(default_factory=list)  # FedBN: per-site test accuracy (%)
    seconds: float = 0.0
    backend: str = "inprocess"
    train_loss: dict[int, float] = field(default_factory=dict)  # round → example-weighted mean loss

    @property
    def accuracy(self) -> float | None:
        """FedBN: the mean of the sites' test accuracies; None for a single global model."""
        return float(np.mean(self.site_accuracies)) if self.site_accuracies else None


def batchnorm_keys(model: nn.Module) -> set[str]:
    """State-dict keys of every BatchNorm layer (affine parameters and running statistics)."""
    layers = batchnorm_layers(model)
    return {k for k in model.state_dict() if k.rsplit(".", 1)[0] in layers}


def rounds_grid(epochs: int) -> tuple[int, ...]:
    """Round counts R that split ``epochs`` local epochs evenly: 1, 4, 16, … and ``epochs`` itself.

    The paper's 64 epochs give (1, 4, 16, 64); smoke's 4 give (1, 4); a dry run's 1 gives (1,).
    """
    if epochs < 1:
        raise MedlibError(f"epochs must be >= 1 to split into rounds, got {epochs}")
    grid, r = {1, epochs}, 4
    while r <= epochs:
        if epochs % r == 0:
            grid.add(r)
        r *= 4
    return tuple(sorted(grid))


# ----------------------------------------------------------------------------- the grid


class InProcessGrid:
    """A Flower ``Grid`` whose nodes are ClientApps called in this process, one after another.

    Built lazily as a subclass of :class:`flwr.serverapp.grid.Grid` (see :func:`_grid_class`)
    so that importing :mod:`medlib.federated` does not import Flower.
    """

    def __new__(cls, client_app, n_nodes: int, run_id: int = 1):
        return _grid_class()(client_app, n_nodes, run_id)


_GRID_CLASS = None


def _grid_class():
    global _GRID_CLASS
    if _GRID_CLASS is not None:
        return _GRID_CLASS
    from flwr.app import Context, RecordDict
    from flwr.serverapp.grid import Grid
    from flwr.supercore.run import Run

    class _InProcessGrid(Grid):
        def __init__(self, client_app, n_nodes: int, run_id: int = 1):
            self._client_app = client_app
            self._run = Run.create_empty(run_id)
            # node ids as Flower's simulation makes them: positive ints; partition-id = site index
            self._contexts = {
                1000 + k: Context(run_id=run_id, node_id=1000 + k, state=RecordDict(), run_config={},
                                  node_config={"partition-id": k, "num-partitions": n_nodes})
                for k in range(n_nodes)
            }
            self._replies: dict[str, object] = {}

        def set_run(self, run) -> None:
            self._run = run

        @property
        def run(self):
            return self._run

        def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
            from flwr.app import Message

            return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

        def get_node_ids(self):
            return list(self._contexts)

        def push_messages(self, messages):
            ids = []
            for msg in messages:
                if msg.metadata.dst_node_id not in self._contexts:
                    raise MedlibError(f"message for unknown node {msg.metadata.dst_node_id}; nodes: {list(self._contexts)}")
                msg.metadata.__dict__["_message_id"] = str(uuid.uuid4())  # what Flower's own grids do
                reply = self._client_app(msg, self._contexts[msg.metadata.dst_node_id])
                self._replies[msg.metadata.message_id] = reply
                ids.append(msg.metadata.message_id)
            return ids

        def pull_messages(self, message_ids):
            return [self._replies.pop(i) for i in list(message_ids) if i in self._replies]

        def send_and_receive(self, messages, *, timeout=None):
            return self.pull_messages(self.push_messages(messages))

    _GRID_CLASS = _InProcessGrid
    return _GRID_CLASS


# ----------------------------------------------------------------------------- the apps


def _state_arrays(model: nn.Module, exclude: set[str] = frozenset()):
    from flwr.app import ArrayRecord

    return ArrayRecord({k: v.detach().cpu() for k, v in model.state_dict().items() if k not in exclude})


def _load(model: nn.Module, arrays, local: dict[str, torch.Tensor] | None = None) -> None:
    """Load Flower arrays (and a site's local tensors) into ``model``, keeping every dtype."""
    received = arrays.to_torch_state_dict()
    state = model.state_dict()
    for k, v in {**received, **(local or {})}.items():
        if k not in state:
            raise MedlibError(f"array {k!r} is not in the model; the federation must share one architecture")
        state[k].copy_(torch.as_tensor(v).to(dtype=state[k].dtype))


def _proximal_loss(model: nn.Module, mu: float, class_weights):
    """Weighted cross-entropy + μ/2 ‖w − w_global‖² over the trainable parameters (FedProx)."""
    import torch.nn.functional as F

    anchor = [p.detach().clone() for p in model.parameters() if p.requires_grad]
    params = [p for p in model.parameters() if p.requires_grad]

    def loss_fn(out, y):
        weight = class_weights.to(out.device) if class_weights is not None else None
        loss = F.cross_entropy(out.float(), y, weight=weight)
        if mu:
            loss = loss + 0.5 * mu * sum((p - a.to(p.device)).square().sum() for p, a in zip(params, anchor))
        return loss

    return loss_fn


@dataclass(frozen=True)
class _ClientSettings:
    lr: float
    seed: int
    device: str
    max_steps: int | None


def _client_app(template: nn.Module, sites: Sequence[FederatedSite], settings: _ClientSettings, bn_keys: set[str]):
    """One ClientApp for every site; ``context.node_config['partition-id']`` says which site it is."""
    from flwr.app import ArrayRecord, Message, MetricRecord, RecordDict
    from flwr.clientapp import ClientApp

    from medlib.train import TrainConfig, fit, predict

    app = ClientApp()

    def local_model(msg, context) -> nn.Module:
        model = copy.deepcopy(template)
        kept = context.state.array_records.get("local-bn") if "local-bn" in context.state else None
        _load(model, msg.content["arrays"], kept.to_torch_state_dict() if kept is not None else None)
        return model

    @app.train()
    def train(msg: Message, context) -> Message:
        k = int(context.node_config["partition-id"])
        site, config = sites[k], msg.content["config"]
        server_round, epochs = int(config["server-round"]), int(config["local-epochs"])
        mu = float(config.get("proximal-mu", 0.0))
        model = local_model(msg, context)
        seed = settings.seed + _ROUND_SEED_STRIDE * (server_round - 1)
        cfg = TrainConfig(lr=settings.lr, epochs=epochs, seed=seed, class_weights=site.class_weights,
                          device=settings.device, log_every=0, max_steps=settings.max_steps)
        from medlib.runtime import seed_everything

        seed_everything(seed)
        history = fit(model, site.loader(seed), cfg, loss_fn=_proximal_loss(model, mu, site.class_weights))
        model.cpu()
        keep_local = bool(config.get("keep-bn-local", False))
        if keep_local:  # FedBN: the site's BN state stays in Flower's per-node memory, never sent
            context.state["local-bn"] = ArrayRecord({key: v.detach().clone() for key, v in model.state_dict().items()
                                                     if key in bn_keys})
        metrics = MetricRecord({"num-examples": site.n_examples, "train-loss": float(history.last()["train_loss"])})
        arrays = _state_arrays(model, bn_keys if keep_local else set())
        return Message(RecordDict({"arrays": arrays, "metrics": metrics}), reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context) -> Message:
        k = int(context.node_config["partition-id"])
        config = msg.content["config"]
        accuracy = float("nan")
        if int(config["server-round"]) == int(config["num-rounds"]):  # only the final models are reported
            model = local_model(msg, context)
            probs, labels = predict(model, sites[k].test_loader(), settings.device, max_steps=settings.max_steps)
            accuracy = 100.0 * float(np.mean(np.isfinite(probs).all(axis=1) & (probs.argmax(axis=1) == labels)))
        metrics = MetricRecord({"num-examples": 1, "accuracy": accuracy, "site": k})
        return Message(RecordDict({"metrics": metrics}), reply_to=msg)

    return app


def _site_accuracies(records, weighted_by_key: str):
    """FedBN's federated evaluation: each site's accuracy, in site order, and their mean."""
    from flwr.app import MetricRecord

    by_site = {}
    for record in records:
        metrics = next(iter(record.metric_records.values()))
        by_site[int(metrics["site"])] = float(metrics["accuracy"])
    values = [by_site[k] for k in sorted(by_site)]
    return MetricRecord({"accuracy": float(np.mean(values)), "site-accuracies": values})


def _strategy(name: str, n_sites: int, mu: float, evaluate_sites: bool):
    from flwr.serverapp.strategy import FedAvg, FedProx

    common = dict(fraction_train=1.0, fraction_evaluate=1.0 if evaluate_sites else 0.0,
                  min_train_nodes=n_sites, min_evaluate_nodes=n_sites if evaluate_sites else 0,
                  min_available_nodes=n_sites, evaluate_metrics_aggr_fn=_site_accuracies)
    if name == "fedprox":
        return FedProx(proximal_mu=mu, **common)
    return FedAvg(**common)  # fedbn: FedAvg over what the sites send (everything but BN)


def _server_app(strategy, initial, rounds: int, local_epochs: int, keep_bn_local: bool, outcome: dict):
    from flwr.app import ConfigRecord
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def main(grid, context) -> None:
        config = ConfigRecord({"local-epochs": local_epochs, "keep-bn-local": keep_bn_local})
        # FedBN's sites evaluate their own models on the shared test set after the last round
        result = strategy.start(grid=grid, initial_arrays=initial, num_rounds=rounds, train_config=config,
                                evaluate_config=ConfigRecord({"num-rounds": rounds}))
        outcome["result"] = result

    return app


_SERVER_NODE = 1  # flwr.common.constant.SUPERLINK_NODE_ID


@contextlib.contextmanager
def _server_identity(run_id: int):
    """Say who is sending, as Flower's ServerApp runtime does (``TaskIdentity``), then restore it."""
    from flwr.supercore.task_identity import TaskIdentity

    saved = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, run_id, _SERVER_NODE
    try:
        yield
    finally:
        TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = saved


def _quiet_flower():
    import logging

    from flwr.supercore import log as _  # noqa: F401  (makes sure Flower's logger exists)

    logging.getLogger("flwr").setLevel(logging.WARNING)


def run_federated(strategy: str, pretrained: nn.Module, sites: Sequence[FederatedSite], *, rounds: int,
                  local_epochs: int, lr: float, seed: int = 0, mu: float = 0.01, device: str | torch.device = "cpu",
                  max_steps: int | None = None, backend: str = "inprocess", verbose: bool = False) -> FederatedResult:
    """Run ``strategy`` for ``rounds`` rounds of ``local_epochs`` local epochs on every site, with Flower.

    Starts from ``pretrained`` (θ_pre with its head); every site trains with Adam at ``lr`` on its
    own loader, seeded by (``seed``, round). ``mu`` is FedProx's proximal weight (ignored by the
    others). Returns the final global model on the CPU and, for FedBN, each site's model and
    test accuracy (see the module docstring).
    """
    if strategy not in STRATEGIES:
        raise MedlibError(f"unknown federated strategy {strategy!r}; expected one of {STRATEGIES}")
    if backend not in BACKENDS:
        raise MedlibError(f"unknown Flower backend {backend!r}; expected one of {BACKENDS}")
    if rounds < 1 or local_epochs < 1:
        raise MedlibError(f"rounds and local_epochs must be >= 1, got rounds={rounds}, local_epochs={local_epochs}")
    if len(sites) < 1:
        raise MedlibError("run_federated needs at least one site")
    fedbn = strategy == "fedbn"
    if fedbn and any(s.test_loader is None for s in sites):
        raise MedlibError("FedBN evaluates each site's model on the shared test set: give every FederatedSite a test_loader")
    if not verbose:
        _quiet_flower()
    template = copy.deepcopy(pretrained).cpu().eval()
    bn_keys = batchnorm_keys(template)
    settings = _ClientSettings(lr=lr, seed=seed, device=str(device), max_steps=max_steps)
    client_app = _client_app(template, sites, settings, bn_keys)
    flower_strategy = _strategy(strategy, len(sites), mu, evaluate_sites=fedbn)
    outcome: dict = {}
    server_app = _server_app(flower_strategy, _state_arrays(template), rounds, local_epochs, fedbn, outcome)
    started = time.perf_counter()
    grid = None
    if backend == "inprocess":
        from flwr.app import Context, RecordDict

        grid = InProcessGrid(client_app, len(sites))
        with _server_identity(grid.run.run_id):
            server_app(grid, Context(run_id=grid.run.run_id, node_id=_SERVER_NODE, node_config={},
                                     state=RecordDict(), run_config={}))
    else:
        from flwr.simulation import run_simulation

        resources = {"num_cpus": 1, "num_gpus": 1.0 / len(sites) if torch.device(device).type == "cuda" else 0.0}
        run_simulation(server_app=server_app, client_app=client_app, num_supernodes=len(sites),
                       backend_config={"client_resources": resources, "init_args": {"log_to_driver": verbose}},
                       verbose_logging=verbose)
    if "result" not in outcome:
        raise MedlibError(f"the Flower {backend} simulation ended without a result; rerun with verbose=True to see its log")
    result = outcome["result"]
    model = copy.deepcopy(template)
    _load(model, result.arrays)
    out = FederatedResult(strategy, rounds, local_epochs, model.eval(), seconds=time.perf_counter() - started,
                          backend=backend,
                          train_loss={r: float(m["train-loss"]) for r, m in result.train_metrics_clientapp.items()})
    if fedbn:
        final = result.evaluate_metrics_clientapp.get(rounds)
        out.site_accuracies = [float(a) for a in final["site-accuracies"]] if final else []
        if grid is not None:  # the sites' BN state is readable in-process only (Ray keeps it in the actors)
            for ctx in grid._contexts.values():
                site_model = copy.deepcopy(model)
                _load(site_model, ctx.state["local-bn"])
                out.site_models.append(site_model.eval())
    return out
