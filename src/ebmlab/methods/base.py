"""The method contract and the small helpers methods share.

A method owns its networks and optimizers and writes its update out in full in ``train_step``; the trainer
never reads a loss to decide what to update. ``networks`` names every module the method trains (the contract
test checks that a step moves each of them); ``frozen`` names modules that must not move.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterator, Sequence

import torch
from torch import Tensor, nn

from ..data.base import DataSpec
from ..errors import EbmlabError
from ..metadata import Metric
from ..nets.calls import in_blocks, rows_per_call
from ..rng import Noise, randn
from ..samplers.latent import GuidedConfig
from ..data.base import Dataset


class Method(abc.ABC):
    """Abstract base of all methods. Subclasses are final."""

    name: ClassVar[str]
    # its options: a frozen dataclass whose OPTIONS ClassVar gives the range kind and meaning of each field not in
    # ebmlab.options.SHARED (ebmlab.options explains)
    Config: ClassVar[type]
    renamed_options: ClassVar[dict[str, str]] = {}  # {old name: new name} of options saved in older run directories
    # metadata of the metrics the method's evaluate_extra reports (ebmlab.metadata.Metric), beside the method
    metrics: ClassVar[dict[str, Metric]] = {}
    bookkeeping: ClassVar[frozenset[str]] = frozenset()  # numbers it reports that are counts or settings, not results
    # {name: what it is} of the extra sample sets evaluate_extra returns under "samples" (their metrics: name_*)
    sample_sets: ClassVar[dict[str, str]] = {}
    description: ClassVar[str] = ""
    has_energy: ClassVar[bool] = False
    has_generator: ClassVar[bool] = True
    # False where exp(−E) alone is not the model's density (KALE: the model is exp(−E)·G), so the spine's
    # quadrature metrics of exp(−E) would be mislabelled; an instance may set it (KALE with a fixed base)
    energy_defines_density: bool = True
    # the data kinds the method models (None: any); others are refused when the method is built
    data_kinds: ClassVar[tuple[str, ...] | None] = None
    data_hint: ClassVar[str] = ""
    needs_labels: ClassVar[bool] = False  # trains on class labels too (semi-supervised): a labelled data set  # what to use instead, for that message
    progress_keys: ClassVar[tuple[str, ...]] = ()  # training metrics on the progress bar (empty: the first three)
    # the networks the method's samples come from: the ones the run option ``ema`` averages (ebmlab.recipe); an
    # instance may set them (KALE with a fixed base)
    sampling_networks: tuple[str, ...] = ("generator",)
    # optional abilities, each declared by its flag and given by overriding its method below (the registry test
    # checks that the two agree): an own energy-guided sampler (guided_config), a transition that augments real
    # examples (augment, ``ebmlab.semisup``), a conditional sampler of missing values (inpaint, ``api.inpaint_run``)
    has_guided_sampler: ClassVar[bool] = False
    can_augment: ClassVar[bool] = False
    can_inpaint: ClassVar[bool] = False

    def __init__(self, config: Any, *, spec: DataSpec | None = None, data_dim: int | None = None,
                 device: torch.device, generator: torch.Generator):
        """``spec`` describes the data (kind, sample shape, value range); ``data_dim=D`` is shorthand for
        unbounded vectors of shape (D,)."""
        if spec is None:
            if data_dim is None:
                raise EbmlabError("a method needs the data's spec (or data_dim for plain vectors)")
            spec = DataSpec("vectors", (int(data_dim),))
        if self.data_kinds is not None and spec.kind not in self.data_kinds:
            raise EbmlabError(f"method {self.name!r} models data of kind {' or '.join(self.data_kinds)}; this data "
                              f"set is of kind {spec.kind!r}. {self.data_hint}")
        self.config = config
        self.spec = spec
        self.data_dim = spec.dim
        self.device = device
        self.rng = generator  # the method's own noise (z, ε): saved and restored with the checkpoint
        self.networks: dict[str, nn.Module] = {}
        self.frozen: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.recipe: Any = None  # the run's shared training recipe (ebmlab.recipe.Recipe), attached by the trainer

    # --- the contract -------------------------------------------------------------------------------
    @abc.abstractmethod
    def train_step(self, batch: Tensor, step: int) -> dict[str, Tensor | float]:
        """One update on a batch of real data [b, *shape]; does its own backward and optimizer steps.

        Returns the step's training metrics as detached 0-d tensors (or Python numbers): the trainer reads them
        from the device only at log steps, so a step makes no host synchronisation for its metrics."""

    @abc.abstractmethod
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n samples [n, *shape] from the model (no gradient)."""

    def energy(self, x: Tensor) -> Tensor:
        """Unnormalised −log density E(x) [b] in nats, for methods that have one."""
        raise EbmlabError(f"method {self.name!r} has no energy function")

    @property
    def forward_rows(self) -> int | None:
        """Rows per network call where a method evaluates many inputs at once (its evaluation's energies, guided
        samples): blocks of 128 images of 28×28 values or more on the CPU, else None (all at once); the values do
        not depend on it (``nets.calls``)."""
        return rows_per_call(self.spec.dim, self.device) if self.spec.kind == "image" else None

    @property
    def latent_dim(self) -> int:
        """Dimension d of the generator's latent z ~ N(0, I_d), for methods with a generator."""
        raise EbmlabError(f"method {self.name!r} has no latent generator")

    def generate(self, z: Tensor) -> Tensor:
        """G(z): latent [b, d] → data [b, *shape] (differentiable; used by energy-guided latent samplers)."""
        raise EbmlabError(f"method {self.name!r} has no latent generator")

    def step_kind(self, step: int) -> str | None:
        """The kind of training step ``step`` will be, given the method's state now. Steps of one kind run the same
        operations on tensors of the same shapes with the same Python numbers — what one captured CUDA graph
        replays — except the first step of a session, which creates optimizer state. None: the step depends on
        Python numbers that change from step to step and cannot be replayed; ``capture_blocker`` says why.
        Checked against the operations each step actually runs by ``tests/test_step_kinds.py``."""
        return None if self.capture_blocker() else "step"

    def capture_blocker(self) -> str | None:
        """Why this method's steps cannot be replayed from a captured graph (None: they can)."""
        return None

    # compile=auto's estimate for this method's compiled step (ebmlab.compiled.AutoProbe): its speed-up over the
    # eager step and its cold compile in seconds, as benchmarks/compile/results.md measured them at the 2D preset
    # (one thread); a method without measurements keeps the general assumption
    compile_estimate: ClassVar[tuple[float, float]] = (2.0, 70.0)

    def compile_blocker(self) -> str | None:
        """Why this method has no compiled training step (run option ``compile``, ``ebmlab.compiled``; None: it has
        one, :meth:`compiled_train_step`)."""
        return ("it has no compiled training step (every built-in method has one; a method offers it by defining "
                "compiled_train_step and returning None here)")

    def compiled_train_step(self, batch: Tensor, step: int, noise: Any, compile: Callable[..., Any]
                            ) -> dict[str, Tensor | float]:
        """``train_step`` with its arithmetic compiled: the same numbers to float rounding, every draw taken from
        ``noise`` (an ``rng.Tape`` of the draws the eager step makes, in its order), ``compile`` applied once to
        the pure function it runs (``ebmlab.compiled``). Offered where :meth:`compile_blocker` returns None."""
        raise NotImplementedError(f"{self.name} has no compiled training step")

    def prepare_step(self, step: int) -> None:
        """Called by the trainer before step ``step`` runs, eagerly or replayed from a captured graph, outside the
        step: where a method writes the Python numbers of a schedule into device tensors its step reads (a replay
        runs no Python; EBGAN's decaying margin). Nothing by default."""

    def replayed(self, kind: str) -> None:
        """The Python bookkeeping of a step of ``kind`` that was replayed from a captured graph (``ebmlab.graphs``):
        a replay runs the step's tensor work only, so what ``train_step`` does in Python (counters) is redone here.
        Nothing by default; ``tests/test_graphs.py`` checks every capturable method's replayed steps against eager
        ones, state included."""

    # --- optional abilities (flags above) ------------------------------------------------------------------
    def guided_config(self) -> GuidedConfig | None:
        """The settings of the method's own energy-guided latent sampler (its options), whether or not it samples
        with it by default (:attr:`samples_guided`); None: it has none (``has_guided_sampler`` False)."""
        return None

    @property
    def samples_guided(self) -> bool:
        """Whether ``sample`` draws from the energy-guided sampler of :meth:`guided_config` (in this run's
        options): what ``ebmlab sample`` uses by default."""
        return False

    def augment(self, x: Tensor, *, generator: torch.Generator) -> Tensor:
        """A transition T(x) of each real example x [b, *shape], in the data's units (``can_augment``)."""
        raise EbmlabError(f"method {self.name!r} does not augment examples (its can_augment is False)")

    def inpaint(self, x_obs: Tensor, missing: Tensor, *, generator: torch.Generator,
                sweeps: int | None = None) -> tuple[Tensor, float]:
        """One draw of the values ``missing`` [b, *shape] (bool) given the others of ``x_obs`` per row, and the
        chain's acceptance rate (``can_inpaint``)."""
        raise EbmlabError(f"method {self.name!r} has no conditional sampler (its can_inpaint is False)")

    def attach_data(self, dataset: Dataset) -> None:
        """Called once, after construction and before training or loading, with the run's data set: for methods
        that need more of it than batches (EBGAN-LN's labelled subset and class count). Nothing by default."""

    def evaluate_extra(self, dataset: Dataset, count: int = 2500) -> dict[str, Any]:
        """Method-specific evaluation numbers (bounds, estimator likelihoods) and extra sample sets to score (drawn
        at ``count``); none by default."""
        return {}

    def density_energy(self, x: Tensor) -> Tensor:
        """−log of the model's unnormalised density where ``energy_defines_density``: the energy itself, unless
        the model re-weights a base with a density (KALE with a fixed base)."""
        return self.energy(x)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features [b, F] of the energy or discriminator (the linear probe's input)."""
        raise EbmlabError(f"method {self.name!r} exposes no energy/discriminator features")

    # --- state ---------------------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {
            "networks": {k: m.state_dict() for k, m in {**self.networks, **self.frozen}.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "rng": self.rng.get_state(),
            "extra": self.extra_state(),
            **({"recipe": self.recipe.state_dict()} if self.recipe is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any], *, any_device: bool = False) -> None:
        """Restore a checkpoint's state. ``any_device``: loaded for sampling or evaluation, possibly on another
        device type than it was trained on; the method's random-number state then restarts from a fixed seed."""
        nets = {**self.networks, **self.frozen}
        if set(state["networks"]) != set(nets):
            raise EbmlabError(
                f"checkpoint holds networks {sorted(state['networks'])}, method {self.name!r} expects {sorted(nets)}"
            )
        for k, m in nets.items():
            try:
                m.load_state_dict(state["networks"][k])
            except RuntimeError as exc:  # shapes or names differ: an edited config.json or another data set's net
                first = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln or "key" in ln),
                             str(exc).splitlines()[0])
                raise EbmlabError(
                    f"the checkpoint's network {k!r} does not fit the one config.json describes ({first[:200]}); "
                    f"config.json was edited after training, or the checkpoint comes from another run or data set "
                    f"— restore the run's own config.json and checkpoint.pt") from None
        for k, o in self.optimizers.items():
            try:
                o.load_state_dict(state["optimizers"][k])
            except (ValueError, KeyError) as exc:
                raise EbmlabError(f"the checkpoint's optimizer {k!r} does not fit this run's networks ({exc}); "
                                  f"restore the run's own config.json and checkpoint.pt") from None
        rng = state["rng"] if "rng" in state else state["generator"]  # "generator": older runs
        try:
            self.rng.set_state(rng)
        except RuntimeError:
            # a generator state of another device type (a CUDA run loaded on the CPU, or back): its stream cannot
            # continue here; inference reseeds deterministically, an exact resume needs the training device
            if not any_device:
                raise EbmlabError(f"the checkpoint's random-number state belongs to another device type than "
                                  f"{self.device.type}; resume training on the device it was trained on (sampling "
                                  f"and evaluation work on any device)") from None
            self.rng.manual_seed(0)
        self.load_extra_state(state.get("extra", {}))
        if self.recipe is not None:
            self.recipe.load_state_dict(state.get("recipe"))

    def parameters(self) -> Iterator[nn.Parameter]:
        for m in self.networks.values():
            yield from m.parameters()

    def train(self, mode: bool = True) -> None:
        for m in self.networks.values():
            m.train(mode)

    # --- small shared helpers --------------------------------------------------------------------------
    def noise(self, n: int, dim: int, generator: Noise | None = None) -> Tensor:
        return randn(n, dim, generator=generator or self.rng, device=self.device)


class LatentGenerator:
    """Mixin for methods whose samples are x = G(z), z ~ N(0, I_d) with d = ``config.z_dim``: the latent
    interface of the energy-guided samplers and the plain sampler. Put it before :class:`Method` in the bases;
    methods that sample differently (BiB's noisy generator, KALE's guided chains) override ``sample``."""

    if TYPE_CHECKING:  # what it reads of the method it is mixed into
        config: Any
        G: nn.Module
        forward_rows: int

        def noise(self, n: int, dim: int, generator: Noise | None = None) -> Tensor: ...

    @property
    def latent_dim(self) -> int:
        return self.config.z_dim

    def generate(self, z: Tensor) -> Tensor:
        return self.G(z)

    @torch.no_grad()
    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        z = self.noise(n, self.config.z_dim, generator)  # all of the noise first: the same draws as one call
        return in_blocks(self.G, z, self.forward_rows)  # eval_time_images.md


def adam(params, lr: float, betas: tuple[float, float], eps: float = 1e-8) -> torch.optim.Adam:
    """torch.optim.Adam, fused (one kernel for all parameters) when they all live on the CPU or a CUDA device:
    the same update, 3× cheaper than the per-tensor loop for the small networks of the 2D toys."""
    params = list(params)
    fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.dtype.is_floating_point for p in params)
    return torch.optim.Adam(params, lr=lr, betas=betas, eps=eps, fused=fused or None)


def make_optimizer(kind: str, params, lr: float, betas: tuple[float, float]) -> torch.optim.Optimizer:
    if kind == "adam":
        return adam(params, lr, betas)
    if kind == "adadelta":
        return torch.optim.Adadelta(params, lr=lr)
    raise EbmlabError(f"unknown optimizer {kind!r}; valid: adam, adadelta")


def optimizer_step(opt: torch.optim.Optimizer, loss: Tensor, recipe: Any = None, *, clip: float | None = None,
                   params: list[nn.Parameter] | None = None) -> None:
    """zero_grad → backward → the gradient's mean over the processes of a data-parallel run → the method's own
    global-norm clip (``clip``) → the run's clip (run option ``grad_clip``) → step.

    ``recipe`` is the run's :class:`ebmlab.recipe.Recipe` (``method.recipe``; None for a method used outside a run,
    where there is nothing to average or clip): both the average and the run's clip happen here, at the call, so
    every optimizer step of a method reads in full where it is written."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if recipe is not None:
        recipe.average(opt)  # the clip must see the global gradient
    if clip is not None:
        ps = params if params is not None else [p for g in opt.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(ps, clip)
    if recipe is not None:
        recipe.clip(opt)
    opt.step()


@contextlib.contextmanager
def in_mode(training: bool, *modules: nn.Module):
    """Temporarily put ``modules`` in train (``True``) or eval mode (``False``: batch norm on its running statistics,
    no update of them), each back in its own mode afterwards."""
    saved = [(m, m.training) for m in modules]
    for m, _ in saved:
        m.train(training)
    try:
        yield
    finally:
        for m, t in saved:
            m.train(t)


@contextlib.contextmanager
def frozen(*modules: nn.Module):
    """Temporarily stop gradients into ``modules`` (the other player's step still differentiates through them).
    Moot, and skipped, while ``torch.compile`` traces a compiled step: its gradients are taken by ``torch.func`` in
    the inputs it names (``pair_core``), which refuses ``requires_grad_`` inside its transforms."""
    if torch.compiler.is_compiling():
        yield
        return
    saved = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    for p, _ in saved:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, r in saved:
            p.requires_grad_(r)


@dataclasses.dataclass(frozen=True)
class UpdateRule:
    """An optimizer's update as a pure function of the compiled step (:meth:`apply`): torch.optim.Adam's
    (ε outside the square root) or torch.optim.Adadelta's, after the run's global-norm gradient clip (run option
    ``grad_clip``; 0: none) as ``Recipe.clip`` applies it eagerly. Its fields are constants of the compiled code."""

    kind: str  # "adam" | "adadelta"
    betas: tuple[float, float]  # Adam's (β1, β2); Adadelta's (ρ, ρ)
    eps: float
    clip: float = 0.0

    @staticmethod
    def blocker(opt: torch.optim.Optimizer) -> str | None:
        """Why a compiled step cannot carry ``opt``'s update (None: it can)."""
        group = opt.param_groups[0]
        if not isinstance(opt, (torch.optim.Adam, torch.optim.Adadelta)) or len(opt.param_groups) > 1:
            return f"{type(opt).__name__} with {len(opt.param_groups)} parameter group(s)"
        if group.get("weight_decay", 0) or group.get("maximize") or group.get("amsgrad"):
            return f"{type(opt).__name__} with weight decay, maximize or amsgrad"
        return None

    def apply(self, params: dict[str, Tensor], grads: dict[str, Tensor], first: dict[str, Tensor],
              second: dict[str, Tensor], step: Tensor, lr: Tensor) -> tuple[Any, ...]:
        """(parameters, first state, second state, step count) after the update (``OptimizerView.read``'s order;
        ``lr`` of shape [1] or 0-d)."""
        from ..bounds.unroll import DiffAdamState, clip_global_norm, diff_adadelta_step, diff_adam_step

        lr = lr.reshape(())

        if self.clip > 0:
            grads = clip_global_norm(grads, self.clip)
        if self.kind == "adadelta":
            p, s, a = diff_adadelta_step(params, grads, first, second, lr=lr, rho=self.betas[0], eps=self.eps)
            return p, s, a, step + 1
        p, st = diff_adam_step(params, grads, DiffAdamState(step, first, second), lr=lr, betas=self.betas,
                               eps=self.eps, eps_placement="outside_sqrt")
        return p, st.m, st.v, st.step


# the state names of each optimizer kind, in UpdateRule.apply's order (first, second)
_STATE = {"adam": ("exp_avg", "exp_avg_sq"), "adadelta": ("square_avg", "acc_delta")}


class OptimizerView:
    """A module's parameters and their torch.optim.Adam or Adadelta state as the tensors a pure compiled step
    reads, and the write-back of what it returns (one multi-tensor copy per kind): the optimizer's state stays the
    one checkpoints save and an eager step continues from. The state must exist (the first step of a kind runs
    eagerly). ``rule``: the update the compiled step applies, the run's gradient clip ``clip`` (0: none) first."""

    def __init__(self, module: torch.nn.Module, opt: torch.optim.Optimizer, clip: float = 0.0):
        self.params = dict(module.named_parameters())
        self.opt = opt
        group = opt.param_groups[0]
        if isinstance(opt, torch.optim.Adadelta):
            self.rule = UpdateRule("adadelta", (float(group["rho"]),) * 2, float(group["eps"]), float(clip))
        else:
            self.rule = UpdateRule("adam", tuple(group["betas"]), float(group["eps"]), float(clip))
        self.keys = _STATE[self.rule.kind]
        # the current rate, a tensor (a new value does not recompile) of shape [1]: dynamo takes a 0-d float64
        # input for a Python float, traces the step with a symbolic float, and then traces it all again to turn it
        # back into a tensor (torch 2.11–2.13) — twice the cold compile of every step that reads it
        self.lr = torch.zeros(1, dtype=torch.float64)

    def read(self) -> tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor], Tensor, Tensor]:
        """(parameters detached, first state, second state, the step count, the learning rate: shape [1])."""
        st = [self.opt.state[p] for p in self.params.values()]
        self.lr.fill_(float(self.opt.param_groups[0]["lr"]))
        a, b = self.keys
        return ({n: p.detach() for n, p in self.params.items()}, {n: s[a] for n, s in zip(self.params, st)},
                {n: s[b] for n, s in zip(self.params, st)}, st[0]["step"], self.lr)

    @torch.no_grad()
    def write(self, params: dict[str, Tensor], first: dict[str, Tensor], second: dict[str, Tensor],
              step: Tensor) -> None:
        st = [self.opt.state[p] for p in self.params.values()]
        names = list(self.params)
        a, b = self.keys
        torch._foreach_copy_(list(self.params.values()), [params[n] for n in names])
        torch._foreach_copy_([s[a] for s in st], [first[n] for n in names])
        torch._foreach_copy_([s[b] for s in st], [second[n] for n in names])
        torch._foreach_copy_([s["step"] for s in st], [step.to(s["step"].dtype) for s in st])


def run_clip(method: Method) -> float:
    """The run's global-norm gradient clip (run option ``grad_clip``) of ``method``'s run; 0 outside a run."""
    return float(method.recipe.rc.grad_clip) if method.recipe is not None else 0.0


# --- compiled steps of two-player methods (run option compile, ebmlab.compiled) ----------------------------------
OptRead = tuple[dict[str, Tensor], dict[str, Tensor], dict[str, Tensor], Tensor, Tensor]  # OptimizerView.read
PlayerLoss = Callable[[dict[str, Tensor], dict[str, Tensor], Tensor], tuple[Tensor, dict[str, Tensor]]]


def pair_core(d_loss: PlayerLoss, g_loss: PlayerLoss, d: OptRead, g: OptRead, zs: list[Any],
              rules: tuple[UpdateRule, UpdateRule], g_first: bool = False, nets: tuple[nn.Module, ...] = ()
              ) -> tuple[tuple[Any, ...], tuple[Any, ...], dict[str, Tensor]]:
    """One step of a discriminator/generator pair as a pure function, the body of a compiled step: a
    discriminator update for each latent of ``zs[:-1]`` (``d_loss(p_d, p_g, z)``), then a generator update with
    ``zs[-1]`` through the updated discriminator (``g_loss(p_g, p_d, z)``) — or, with ``g_first`` (VGAN: the
    generator is the inner player), a generator update for each of ``zs[:-1]`` and then the discriminator's with
    ``zs[-1]``. Each loss returns (loss, metrics); its gradient is taken by ``torch.func`` and its update by the
    player's ``rules`` (:class:`UpdateRule`: torch's Adam or Adadelta, after the run's gradient clip). ``d``,
    ``g``: parameters, optimizer states, step count and learning rate of each player (:meth:`OptimizerView.read`). ``nets``: the
    modules whose buffers the forward passes update (BatchNorm's statistics), carried through each gradient
    (``compiled.grad_carrying``). Returns both players' new (parameters, moments, step count) and the metrics of
    their last updates."""
    from ..compiled import grad_carrying

    players: dict[str, list[Any]] = {"d": list(d[:4]), "g": list(g[:4])}
    lrs, rule = {"d": d[4], "g": g[4]}, {"d": rules[0], "g": rules[1]}
    metrics: dict[str, Tensor] = {}

    def update(who: str, z: Tensor) -> None:
        other = players["g" if who == "d" else "d"][0]
        loss = d_loss if who == "d" else g_loss
        p, m, v, t = players[who]
        grads, (_, aux) = grad_carrying(lambda q: loss(q, other, z), p, nets)
        players[who] = list(rule[who].apply(p, grads, m, v, t, lrs[who]))
        metrics.update(aux)

    inner, outer = ("g", "d") if g_first else ("d", "g")
    for z in zs[:-1]:
        update(inner, z)
    update(outer, zs[-1])
    return tuple(players["d"]), tuple(players["g"]), metrics


class CompiledPair:
    """The compiled step of a two-player method (GAN, EBGAN): its losses as pure functions (``d_loss``, ``g_loss``
    of :func:`pair_core`), compiled once with the optimizers' states read before and written back after each call.
    ``blocker`` says what a pure step of the method's networks and run does not carry, or None. The networks'
    buffers (BatchNorm's running statistics, spectral norm's power-iteration vectors) are carried through the step
    and updated as the eager step updates them (``compiled.grad_carrying``)."""

    def __init__(self, method: Method, d_net: nn.Module, d_opt: str, g_net: nn.Module, g_opt: str):
        clip = run_clip(method)
        self.views = (OptimizerView(d_net, method.optimizers[d_opt], clip),
                      OptimizerView(g_net, method.optimizers[g_opt], clip))
        self.nets = (d_net, g_net)
        self.core: Callable[..., Any] | None = None

    @staticmethod
    def blocker(method: Method) -> str | None:
        for name, opt in method.optimizers.items():
            why = UpdateRule.blocker(opt)
            if why:
                return f"its {name} optimizer is {why} (the compiled step carries Adam's and Adadelta's updates)"
        return None

    def __call__(self, d_loss: PlayerLoss, g_loss: PlayerLoss, zs: Sequence[Tensor | None], compile: Callable[..., Any],
                 *inputs: Any, g_first: bool = False) -> dict[str, Tensor | float]:
        """One step: ``d_loss``/``g_loss`` are module-level functions taking ``inputs`` after their three
        arguments (a batch, a margin: tensors, so that a new value does not recompile); ``g_first``: as
        :func:`pair_core`."""
        vd, vg = self.views
        if self.core is None:
            self.core = compile(_pair_step)
        d, g, metrics = self.core(d_loss, g_loss, vd.read(), vg.read(), zs, (vd.rule, vg.rule), inputs, g_first,
                                  self.nets)
        vd.write(*d)
        vg.write(*g)
        return {**metrics}


def _pair_step(d_loss: Callable[..., Any], g_loss: Callable[..., Any], d: OptRead, g: OptRead, zs: list[Any],
               rules: tuple[UpdateRule, UpdateRule], inputs: tuple[Any, ...], g_first: bool,
               nets: tuple[nn.Module, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...], dict[str, Tensor]]:
    return pair_core(lambda p, q, z: d_loss(p, q, z, *inputs), lambda p, q, z: g_loss(p, q, z, *inputs), d, g, zs,
                     rules, g_first, nets)


class CompiledSingle:
    """The compiled step of a method with one optimizer over one module (VAE/IWAE): its loss — the eager
    step's own code, run with the module's parameters swapped for the traced ones and its draws from the tape —,
    the gradient by ``torch.func`` and the optimizer's update (:class:`UpdateRule`) as one pure function, the
    optimizer's state read before and written back after each call."""

    def __init__(self, method: Method, module: nn.Module, opt: str):
        self.module, self.view = module, OptimizerView(module, method.optimizers[opt], run_clip(method))
        self.core: Callable[..., Any] | None = None

    def __call__(self, loss: Callable[..., tuple[Tensor, dict[str, Tensor]]], compile: Callable[..., Any],
                 *inputs: Any) -> dict[str, Tensor]:
        if self.core is None:
            self.core = compile(_single_step)
        new, metrics = self.core(loss, self.module, self.view.read(), self.view.rule, inputs)
        self.view.write(*new)
        return metrics


def _single_step(loss: Callable[..., tuple[Tensor, dict[str, Tensor]]], module: nn.Module, a: OptRead,
                 rule: UpdateRule, inputs: tuple[Any, ...]) -> tuple[tuple[Any, ...], dict[str, Tensor]]:
    from torch.nn.utils.stateless import _reparametrize_module

    from ..compiled import grad_carrying

    p, m, v, t, lr = a

    def f(q: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        with _reparametrize_module(module, q):
            return loss(*inputs)

    grads, (_, metrics) = grad_carrying(f, p, (module,))
    return rule.apply(p, grads, m, v, t, lr), metrics
