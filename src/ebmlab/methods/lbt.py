"""LBT and LBT-GAN — "Learning Implicit Generative Models by Teaching Explicit Ones" (Du, Xu, Li, Zhu, Zhang;
arXiv 1807.03870; code taufikxu/Learning-By-Teaching). The paper's equation numbers could not be checked, so the
objective is cited by content and the update by the released code.

Objective (the bilevel problem): an explicit density estimator p_E(·; φ) is fitted to the generator,
φ*(ψ) = argmax_φ E_z log p_E(G_ψ(z); φ), and the generator maximises the estimator's likelihood of the *data* at
that optimum, max_ψ E_data log p_E(x; φ*(ψ)). With a rich estimator this is min_ψ KL(p_data ‖ p_g), which covers
modes. As in the released code, p_E is a one-sample Gaussian-encoder VAE and its ELBO stands in for log p_E at both
levels; the estimator is any :class:`~ebmlab.methods.estimators.DensityEstimator`.

φ*(ψ) is approximated by K unrolled estimator updates, each on a fresh generator batch, with
the released code's differentiable Adam (first moment keeps its graph, second moment detached, ε inside the square
root; ``bounds.unroll``), written with ``torch.func.functional_call`` so the look-ahead never touches the estimator's
parameters or optimizer state. One training step (the order of the released code's loop):

1. real estimator updates, ``n_est`` times: the same K-step unroll at ``real_lr_mult`` × ``lr_est`` (3×), without a
   graph, on fresh generator batches; its end point (parameters and Adam state, step counter advanced by K) is
   written back into the estimator and its torch.optim.Adam, which is only a state holder and never stepped;
2. (LBT-GAN) ``n_dis`` discriminator steps, BCE with real = 1, fake = 0;
3. the generator step: the K-step look-ahead at 1× ``lr_est`` from the estimator's current state, with the graph
   back to ψ through every inner gradient (second-order terms), then
   loss_G = −mean ELBO(x_data; φ^K(ψ))  [+ λ · mean softplus(−D(G(z))) for LBT-GAN, the non-saturating term],
   its gradient clipped at global norm ``clip_g`` (5: the decoder variance is fixed at 0.001, so the ELBO's
   gradients are large) and applied with Adam(β1 = 0.5).

Compiled step (run option ``compile``, ``ebmlab.compiled``): :func:`teaching_core` is step 1 and 3's arithmetic as
one pure function — every gradient by ``torch.func`` (``bounds.unroll(func_grads=True)``), the look-ahead's
gradient in ψ by an outer ``torch.func.grad_and_value``, every draw from a tape of the eager step's draws — which
``torch.compile`` turns into one graph; the estimator's end point is written back and the generator's Adam step
taken eagerly, as in the eager step. On one CPU thread that step runs several times the eager one (the eager step is
~13,900 small operations; ``benchmarks/peers/README.md``, LBT). The generator's buffers (BatchNorm's running
statistics, as the conv and paper generators have) are carried through it and written by each of its passes in the
eager step's order; an estimator whose passes write buffers trains eagerly (none of ebmlab's do). LBT-GAN compiles
the two parts apart (:func:`real_updates`,
:func:`lookahead_grads`): its discriminator steps and GAN term fall between them and run eagerly.

LBT-GAN's optional warm-up (``warmup_steps``, 3000 for the original's images, 0 for its toys) trains the plain GAN
part first: no estimator updates and no ELBO term before that step.

Toy defaults are the released code's: G z 256 → 128 tanh → 128 tanh → 2; VAE 2 → 128 tanh → 128 tanh → (32-d z),
decoder 32 → 128 → 128 → 2 with fixed variance 0.001; D 2 → 128 tanh → 128 tanh → 1; Adam β1 0.5; lr G 1e-3,
estimator 1e-4, D 1e-4; K = 5; n_est = 2 (3 for the 10×10 grid); λ = 0.1. Its batches, 512 on its ring and 2048 on
its grid, are set by the presets of those data sets (``lbt_ring8_lbt``, ``lbt_grid100``); on other data the run's
``batch_size`` applies (256 on the 2D sets, as for every method: the VEEGAN toys ring8/grid25 are not the paper's).
The run's batch is the data batch; ``est_batch`` (0: the same) is the generator batch of each unroll step and of the
GAN term (the original's ``batch_size_est``).

Deviations: (i) the estimator's optimizer is LBT's Adam everywhere (``eps_placement="inside_sqrt"``), the generator
and discriminator use torch.optim.Adam (ε outside the root, as TF's AdamOptimizer in the original); (ii) the
autograd gradient of the look-ahead is the released code's gradient (the second-moment paths are dropped), not the
exact derivative of the unrolled map — ``detach_second_moment=False`` in ``bounds.unroll`` gives the latter;
(iii) a warm-up step of LBT-GAN multiplies the GAN loss by λ as the original does (its ELBO weight is 0 then);
(iv) the MLP weights start from torch's rule unless ``init=xavier``, the original's (TensorFlow's Glorot-uniform
kernels, zero biases).

The estimator on images: by default a VAE of the run's network family (``est_net=same``: conv for ``net=lbt``) with
a Gaussian decoder of fixed variance, whose bounds are likelihoods of the data (on 8-bit images, of the
dequantised data). The release's stacked-MNIST estimator is ``est_net=mlp est_hidden=1000,400 est_act=relu
est_decoder=bernoulli`` (LBT-GAN_smnist.py: encoder D → 1000 → 400 → z, decoder mirrored, the sigmoid
cross-entropy of pixels in [0, 1]; ebmlab maps its (−1, 1) images to [0, 1] for it). That cross-entropy of grey
levels is the release's training signal but no likelihood of the data, so with it no ``est_nll`` is reported.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Literal, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ..bounds.unroll import (DiffAdamState, FunctionalModule, Unrolled, adam_state_from_torch, adam_state_to_torch,
                             module_tensors, unroll)
from ..nets import build
from ..nets.build import Net
from ..nets.mlp import init_linears
from ..nets.vae import GaussianVAE
from ..compiled import writes_buffers
from ..errors import EbmlabError
from .base import Method, adam, frozen, optimizer_step
from .estimators import METRICS as ESTIMATOR_METRICS
from .estimators import DensityEstimator, VAEEstimator, check_eval_options, estimator_report
from ..distributed import average_gradients
from ..rng import Noise, Tape, randn
from ..data.base import Dataset

Act = Literal["relu", "leaky_relu", "tanh", "prelu", "elu", "softplus"]


@dataclass(frozen=True)
class LBTConfig:
    z_dim: int = 256
    g_hidden: tuple[int, ...] = (128, 128)
    g_act: Act = "tanh"
    est_z_dim: int = 32
    est_hidden: tuple[int, ...] = (128, 128)
    est_act: Act = "tanh"
    est_decoder_var: float = 1e-3
    est_learn_decoder_var: bool = False
    est_sample_mode: Literal["mean", "sample"] = "mean"
    est_net: Literal["same", "mlp"] = "same"
    est_decoder: Literal["gaussian", "bernoulli"] = "gaussian"
    lr_g: float = 1e-3
    lr_est: float = 1e-4
    real_lr_mult: float = 3.0
    beta1: float = 0.5
    beta2: float = 0.999
    eps: float = 1e-8
    eps_placement: Literal["inside_sqrt", "outside_sqrt"] = "inside_sqrt"
    flat_unroll: bool = True
    unroll_steps: int = 5  # K
    n_est: int = 2
    est_batch: int = 0
    clip_g: float | None = 5.0
    iwae_ks: tuple[int, ...] = (1, 10, 100, 1000)
    iwae_points: int = 200
    iwae_chunk: int = 100
    elbo_samples: int = 100
    eval_seed: int = 0
    net: Net = "auto"
    width: int = 32
    init: Literal["default", "xavier"] = "default"

    # range kind and meaning of each option not in ebmlab.options.SHARED (ebmlab.options explains)
    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {
        "g_act": ("choice", "activation of the generator MLP"),
        "est_act": ("choice", "activation of the estimator (VAE) MLP"),
        "est_hidden": ("ints1",
                       "hidden layer widths of the estimator's encoder and decoder MLP (comma-separated; unused by conv nets)"),
        "lr_est": ("pos", "estimator learning rate of the look-ahead (unrolled) updates"),
        "real_lr_mult": ("pos", "the estimator's real updates use real_lr_mult × lr_est"),
        "eps": ("pos", "ε of the unrolled Adam updates"),
        "eps_placement": ("choice", "where the unrolled Adam puts ε: inside or outside the square root"),
        "clip_g": ("pos", "clip the generator's gradient norm to this (none: no clipping)"),
        "est_z_dim": ("int1", "latent dimension of the estimator (a VAE)"),
        "est_decoder_var": ("pos", "variance of the estimator's Gaussian decoder (initial value when learned)"),
        "est_learn_decoder_var": ("any", "learn the estimator's decoder variance"),
        "est_sample_mode": ("choice", "the estimator's samples: decoder mean or a draw"),
        "est_net": ("choice", "the estimator's network: same (the family net names) or mlp (encoder est_hidden, decoder "
                              "est_hidden mirrored, as the release's stacked-MNIST estimator)"),
        "est_decoder": ("choice", "the estimator's likelihood: gaussian (variance est_decoder_var) or bernoulli (the "
                                  "cross-entropy of the data mapped to [0, 1], as the release on images; on non-binary "
                                  "data not a likelihood, so no est_nll is reported)"),
        "flat_unroll": ("any", "unroll on one flat parameter vector (same numbers, fewer tensor operations)"),
        "unroll_steps": ("int1", "look-ahead steps K of the unrolled estimator"),
        "n_est": ("int1", "estimator updates per step"),
        "est_batch": ("int0", "generator samples per unroll step and GAN term (0: the data batch size)"),
        "init": ("choice", "MLP weight initialisation of every network: default (torch's) or xavier (Glorot-uniform weights, "
                        "zero biases: the released code's TensorFlow default)"),
    }


@dataclass(frozen=True)
class LBTGANConfig(LBTConfig):
    d_hidden: tuple[int, ...] = (128, 128)
    d_act: Act = "tanh"
    lr_d: float = 1e-4
    n_dis: int = 1
    lambda_gan: float = 0.1
    warmup_steps: int = 0

    OPTIONS: ClassVar[dict[str, tuple[str, str]]] = {  # the options LBT-GAN adds to LBT's
        "d_act": ("choice", "activation of the discriminator MLP"),
        "n_dis": ("int1", "discriminator updates per generator update"),
        "warmup_steps": ("int0", "plain-GAN steps before the estimator and the ELBO term switch on"),
        "lambda_gan": ("nonneg", "weight of the GAN term in LBT-GAN's generator loss"),
    }


# --- shared pieces: building the two players and the two uses of the unroll ------------------------------------


def _build(method: LBT, c: LBTConfig) -> None:
    spec, device = method.spec, method.device
    if c.unroll_steps < 1 or c.n_est < 0 or c.est_batch < 0 or c.est_decoder_var <= 0:
        raise EbmlabError(f"LBT needs unroll_steps ≥ 1, n_est ≥ 0, est_batch ≥ 0 and est_decoder_var > 0; got "
                          f"unroll_steps={c.unroll_steps}, n_est={c.n_est}, est_batch={c.est_batch}, "
                          f"est_decoder_var={c.est_decoder_var}")
    check_eval_options(c.iwae_ks, c.iwae_points, c.iwae_chunk, c.elbo_samples)
    method.G = build.generator(spec, c.z_dim, net=c.net, hidden=c.g_hidden, act=c.g_act, width=c.width,
                               batchnorm=build.default_batchnorm(spec, c.net)).to(device)
    vae = GaussianVAE(spec, c.est_z_dim, c.est_hidden, act=c.est_act, decoder=c.est_decoder,
                      decoder_var=c.est_decoder_var, learn_decoder_var=c.est_learn_decoder_var,
                      net=c.net if c.est_net == "same" else c.est_net, width=c.width,
                      decoder_hidden=tuple(reversed(c.est_hidden))).to(device)
    method.estimator = VAEEstimator(vae, sample_mode=c.est_sample_mode, chunk_size=c.iwae_chunk,
                                    elbo_samples=c.elbo_samples)
    method.networks = {"generator": method.G, "estimator": vae}
    init_networks(method, c)
    method.optimizers = {
        "generator": adam(method.G.parameters(), c.lr_g, (c.beta1, c.beta2), c.eps),
        # A state holder for LBT's Adam (step, m, v), kept as torch.optim.Adam so checkpoints and resume work;
        # never stepped: estimator_update writes the unrolled end point into it.
        "estimator": adam(vae.parameters(), c.lr_est, (c.beta1, c.beta2), c.eps),
    }


def init_networks(method: LBT, c: LBTConfig) -> None:
    """Every Linear layer of the method's networks initialised by ``c.init`` (MLP networks only)."""
    if c.init == "default":
        return
    if build.family(method.spec, c.net) != "mlp":
        raise EbmlabError(f"init={c.init} shapes MLP networks; net={c.net} on {method.spec.kind} data builds conv "
                          "networks (use init=default)")
    for net in method.networks.values():
        init_linears(net, c.init)


def _latent(method: LBT, n: int, generator: Noise | None) -> Tensor:
    """z ~ N(0, I) [n, z_dim] in the generator's dtype (so a float64 copy of the method runs in float64)."""
    dtype = next(method.G.parameters()).dtype
    return randn(n, method.config.z_dim, generator=generator or method.rng, device=method.device, dtype=dtype)


def generate(method: LBT, n: int, generator: Noise | None = None) -> Tensor:
    """G(z) [n, D], z ~ N(0, I)."""
    return method.G(_latent(method, n, generator))


class FlatParams:
    """A module's named parameters as views of one flat vector θ [P], and back.

    LBT's Adam is elementwise, so unrolling it on the concatenated vector is the same computation as on each tensor,
    with one tensor per inner step instead of one per parameter tensor: for the toy networks the per-tensor operator
    dispatch, not the arithmetic, dominates the optimiser's share of a step (benchmarks/results/lbt_speed.md). The
    views into θ cost no copies; the only new parameter-sized tensors per step are θ_k, m_k and v_k themselves.
    """

    def __init__(self, module: torch.nn.Module):
        named = list(module.named_parameters())
        self.names = [n for n, _ in named]
        self.shapes = [p.shape for _, p in named]
        self.sizes = [p.numel() for _, p in named]

    def flatten(self, tensors: dict[str, Tensor]) -> Tensor:
        return torch.cat([tensors[n].reshape(-1) for n in self.names])

    def unflatten(self, flat: Tensor) -> dict[str, Tensor]:
        return {n: t.view(s) for n, t, s in zip(self.names, flat.split(self.sizes), self.shapes)}

    def flatten_state(self, st: DiffAdamState) -> DiffAdamState:
        return DiffAdamState(st.step, {"flat": self.flatten(st.m)}, {"flat": self.flatten(st.v)})

    def unflatten_state(self, st: DiffAdamState) -> DiffAdamState:
        return DiffAdamState(st.step, self.unflatten(st.m["flat"]), self.unflatten(st.v["flat"]))


EstimatorStart = tuple[dict[str, Tensor], dict[str, Tensor], DiffAdamState]  # parameters, buffers, Adam state


def estimator_start(estimator: DensityEstimator, optimizer: torch.optim.Optimizer) -> EstimatorStart:
    """The estimator's real parameters and buffers (detached copies) and its Adam state, where an unroll starts."""
    params, buffers = module_tensors(estimator.module)
    # the step count stays on the device (a tensor) once the estimator has been updated: no host read in a step
    return params, buffers, adam_state_from_torch(optimizer, estimator.module, device_step=True)


def estimator_unroll(estimator: DensityEstimator, optimizer: torch.optim.Optimizer, batch_fn: Callable[[int], Tensor],
                     c: LBTConfig, *, lr: float, create_graph: bool, generator: Noise,
                     start: EstimatorStart | None = None, func_grads: bool = False) -> Unrolled:
    """K = ``c.unroll_steps`` LBT-Adam steps on the estimator's loss, from ``start`` (None: its real parameters and
    Adam state, :func:`estimator_start`).

    ``batch_fn(k)`` gives the k-th generator batch [b, D] (with its graph to ψ for a look-ahead). Nothing real is
    modified: the module's parameters enter detached and the optimizer state is copied. With ``c.flat_unroll`` the
    steps run on one flat parameter vector (:class:`FlatParams`); the result is returned per parameter name either way.
    ``func_grads``: inner gradients by ``torch.func`` (``bounds.unroll``), the compiled step's form.
    """
    module = estimator.module
    params, buffers, state = start or estimator_start(estimator, optimizer)
    # the look-ahead of a data-parallel run is the global batch's: gradients averaged over the processes
    kw: dict[str, Any] = dict(lr=lr, betas=(c.beta1, c.beta2), eps=c.eps, eps_placement=c.eps_placement, create_graph=create_graph,
              reduce_grads=average_gradients, func_grads=func_grads)
    if not c.flat_unroll:
        return unroll(module, params, buffers, lambda model, x: estimator.loss(model, x, generator=generator),
                      batch_fn, c.unroll_steps, state=state, **kw)
    flat = FlatParams(module)

    def flat_loss(model: FunctionalModule, x: Tensor) -> Tensor:
        view = FunctionalModule(module, flat.unflatten(model.params["flat"]), model.buffers)
        return estimator.loss(view, x, generator=generator)

    res = unroll(module, {"flat": flat.flatten(params)}, buffers, flat_loss, batch_fn, c.unroll_steps,
                 state=flat.flatten_state(state), **kw)
    return Unrolled(flat.unflatten(res.params["flat"]), flat.unflatten_state(res.state), res.buffers, res.losses)


def estimator_update(method: LBT, c: LBTConfig, n_gen: int) -> Tensor:
    """The real estimator update: the K-step unroll at real_lr_mult × lr_est, no graph, written back.
    Returns the mean ELBO of the last inner batch (before its step)."""
    def fresh_batch(k: int) -> Tensor:
        with torch.no_grad():
            return generate(method, n_gen)

    opt = method.optimizers["estimator"]
    res = estimator_unroll(method.estimator, opt, fresh_batch, c, lr=c.real_lr_mult * c.lr_est, create_graph=False,
                           generator=method.rng)
    adam_state_to_torch(opt, method.estimator.module, res.state, res.params)
    return -res.losses[-1].detach()


def lookahead_neg_elbo(method: LBT, c: LBTConfig, data: Tensor, n_gen: int) -> Tensor:
    """−mean ELBO(data; φ^K(ψ)) with φ^K from the K-step look-ahead at 1× lr_est on fresh generator batches;
    differentiable in the generator's parameters ψ through all K inner gradients."""
    res = estimator_unroll(method.estimator, method.optimizers["estimator"],
                           lambda k: generate(method, n_gen), c, lr=c.lr_est, create_graph=True,
                           generator=method.rng)
    view = FunctionalModule(method.estimator.module, res.params, res.buffers)
    return method.estimator.loss(view, data, generator=method.rng)


def generator_step(method: LBT, c: LBTConfig, loss_g: Tensor | None, grads: dict[str, Tensor] | None = None
                   ) -> Tensor:
    """Adam step of the generator on loss_g (or on its gradients ``grads`` by parameter name, computed elsewhere)
    with global-norm clipping; returns the norm before clipping."""
    opt = method.optimizers["generator"]
    opt.zero_grad(set_to_none=True)
    if grads is not None:
        for name, p in method.G.named_parameters():
            p.grad = grads[name]
    elif loss_g is not None:
        loss_g.backward()
    if method.recipe is not None:
        method.recipe.average(opt)  # over the processes of a distributed step, before the clip (one process: nothing)
    params = list(method.G.parameters())
    if c.clip_g is not None:
        norm = torch.nn.utils.clip_grad_norm_(params, c.clip_g)
    else:
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
    if method.recipe is not None:
        method.recipe.clip(opt)
    opt.step()
    return norm.detach()


def generate_at(method: LBT, params: dict[str, Tensor], n: int, generator: Noise) -> Tensor:
    """G(z) at the parameters ``params`` (name -> tensor) instead of the module's own, z as :func:`generate` draws."""
    return functional_call(method.G, params, (_latent(method, n, generator),))


def real_updates(method: LBT, g_params: dict[str, Tensor], start: EstimatorStart, n_gen: int,
                 noise: torch.Generator) -> tuple[EstimatorStart, Tensor | None]:
    """:func:`estimator_update` ``n_est`` times as a pure function of the generator's parameters and the estimator's
    start, every gradient by ``torch.func`` and every draw from ``noise`` (a compiled step's ``rng.Tape``).
    Returns the estimator's end point and the last update's ELBO on its last batch (None when n_est = 0)."""
    c = method.config
    est, opt = method.estimator, method.optimizers["estimator"]
    fixed = {k: v.detach() for k, v in g_params.items()}
    elbo_gen = None
    for _ in range(c.n_est):
        res = estimator_unroll(est, opt, lambda k: generate_at(method, fixed, n_gen, noise).detach(), c,
                               lr=c.real_lr_mult * c.lr_est, create_graph=False, generator=noise, start=start,
                               func_grads=True)
        start = (res.params, start[1], res.state)  # the buffers as the eager update leaves them: unwritten
        elbo_gen = -res.losses[-1]
    return start, elbo_gen


def lookahead_grads(method: LBT, g_params: dict[str, Tensor], start: EstimatorStart, data: Tensor, n_gen: int,
                    noise: torch.Generator) -> tuple[Tensor, dict[str, Tensor]]:
    """:func:`lookahead_neg_elbo` from ``start`` and its gradient in the generator's parameters (by name), as a pure
    function: the inner gradients by ``torch.func``, the outer one by ``torch.func.grad_and_value``."""
    c = method.config
    est, opt = method.estimator, method.optimizers["estimator"]

    def neg_elbo(params: dict[str, Tensor], g_buffers: dict[str, Tensor]) -> Tensor:
        both = {**params, **g_buffers}
        res = estimator_unroll(est, opt, lambda k: generate_at(method, both, n_gen, noise), c, lr=c.lr_est,
                               create_graph=True, generator=noise, start=start, func_grads=True)
        return est.loss(FunctionalModule(est.module, res.params, res.buffers), data, generator=noise)

    # the generator's buffers enter the transform as an input (not differentiated), so that its K training-mode
    # passes update BatchNorm's running statistics in place, into the generator's own tensors, as the eager
    # look-ahead does (torch.func refuses an in-place write to a tensor it did not receive)
    grads, loss = torch.func.grad_and_value(neg_elbo)(g_params, dict(method.G.named_buffers()))
    return loss, grads


def teaching_core(method: LBT, g_params: dict[str, Tensor], start: EstimatorStart, data: Tensor,
                  noise: torch.Generator) -> tuple[EstimatorStart, Tensor | None, Tensor, dict[str, Tensor]]:
    """The arithmetic of LBT's teaching — :func:`real_updates` then :func:`lookahead_grads` — as one pure function,
    the body of LBT's compiled step (``LBT.compiled_train_step``): the same computation as :func:`estimator_update`
    and :func:`lookahead_neg_elbo`. Returns (the estimator's end point, the last real update's ELBO,
    −ELBO(data; φ^K(ψ)), its gradient in ψ by name)."""
    n_gen = method.config.est_batch or data.shape[0]
    end, elbo_gen = real_updates(method, g_params, start, n_gen, noise)
    loss, grads = lookahead_grads(method, g_params, end, data, n_gen, noise)
    return end, elbo_gen, loss, grads


def _report(method: LBT, c: LBTConfig, dataset: Dataset) -> dict[str, Any]:
    # The second model: the estimator's own density bounds against the exact data density, and its samples.
    if c.est_decoder == "bernoulli" and dataset.spec.kind != "binary":
        # the cross-entropy of grey levels is the release's training signal, not a density of the data: no bound
        return {"est_likelihood_note": "no likelihood: the estimator's Bernoulli decoder is a cross-entropy of data "
                                       "that are not binary"}
    # 8-bit images: the Gaussian estimator is a density of continuous values, so its bounds are taken on uniformly
    # dequantised test images and shifted to the discrete data (a valid bound on their NLL whatever the estimator
    # was trained on); without this est_nll_iwae would be −log of a density and could go below zero
    quantised = "dequantised" if dataset.spec.levels is not None else None
    return estimator_report(method.estimator, dataset, ks=c.iwae_ks, n_points=c.iwae_points, seed=c.eval_seed,
                            prefix="est_", quantised=quantised)


class LBT(Method):
    G: nn.Module
    estimator: VAEEstimator
    name = "lbt"
    compile_estimate = (1.66, 112.0)  # benchmarks/compile/results.md (1 thread, cold cache)
    progress_keys = ("elbo_data_lookahead", "elbo_gen", "grad_norm_g")  # shown on the progress bar
    Config = LBTConfig
    metrics = ESTIMATOR_METRICS  # of the estimator, reported as est_*
    sample_sets = {"est": "LBT's estimator (a VAE)"}
    description = "LBT: generator taught through K unrolled VAE-estimator updates (differentiable Adam)"

    def __init__(self, config: LBTConfig, **kw):
        super().__init__(config, **kw)
        _build(self, config)
        self._core: Callable[..., Any] | None = None  # the compiled teaching_core (run option compile)

    def train_step(self, batch: Tensor, step: int) -> dict[str, Tensor | float]:
        c = self.config
        n_gen = c.est_batch or batch.shape[0]
        out: dict[str, Tensor | float] = {}
        # --- real estimator updates: n_est × (K-step unroll at 3× lr), written back ---
        for _ in range(c.n_est):
            out["elbo_gen"] = estimator_update(self, c, n_gen)
        # --- generator step: −ELBO(data; φ^K(ψ)) through the K-step look-ahead (1× lr), clipped ---
        loss_g = lookahead_neg_elbo(self, c, batch, n_gen)
        out["grad_norm_g"] = generator_step(self, c, loss_g)
        out.update(loss_g=loss_g.detach(), elbo_data_lookahead=-loss_g.detach())
        return out

    def compile_blocker(self) -> str | None:
        """LBT compiles its teaching (:func:`teaching_core`); the generator's buffers (BatchNorm's running
        statistics, spectral norm's vectors) are carried through it, written in place by each of its passes as
        the eager step writes them. The estimator's are not: its unrolled copies leave the real ones unwritten in
        the eager step, and a compiled step would have to do the same for an estimator whose forward passes write
        buffers (none of ebmlab's do)."""
        if writes_buffers(self.estimator.module):
            return ("its estimator writes buffers in its forward passes (BatchNorm statistics or spectral norm), "
                    "which the compiled step does not carry")
        return None

    def compiled_train_step(self, batch: Tensor, step: int, noise: Tape, compile: Callable[..., Any]
                            ) -> dict[str, Tensor | float]:
        c = self.config
        if self._core is None:
            self._core = compile(functools.partial(teaching_core, self))
        g_params = {n: p.detach() for n, p in self.G.named_parameters()}
        start = estimator_start(self.estimator, self.optimizers["estimator"])
        (params, _, state), elbo_gen, loss_g, grads = self._core(g_params, start, batch, noise)
        adam_state_to_torch(self.optimizers["estimator"], self.estimator.module, state, params)
        out: dict[str, Tensor | float] = {} if elbo_gen is None else {"elbo_gen": elbo_gen}
        out["grad_norm_g"] = generator_step(self, c, None, grads)
        out.update(loss_g=loss_g, elbo_data_lookahead=-loss_g)
        return out

    def evaluate_extra(self, dataset: Dataset, count: int = 2500) -> dict[str, Any]:
        return _report(self, self.config, dataset)

    @torch.no_grad()
    def sample(self, n: int, *, generator: Noise | None = None) -> Tensor:
        return generate(self, n, generator)


class LBTGAN(LBT):
    name = "lbt_gan"
    compile_estimate = (1.76, 210.0)  # benchmarks/compile/results.md (1 thread, cold cache)
    progress_keys = ("elbo_data_lookahead", "loss_g", "loss_d")  # shown on the progress bar
    Config = LBTGANConfig
    description = "LBT-GAN: LBT plus a discriminator and λ × the non-saturating GAN loss"

    def __init__(self, config: LBTGANConfig, **kw):
        super().__init__(config, **kw)
        c = config  # G, estimator, optimizers are built by LBT
        self.D = build.critic(self.spec, 1, net=c.net, hidden=c.d_hidden, act=c.d_act, width=c.width).to(self.device)
        self.networks["discriminator"] = self.D
        self._parts: tuple[Callable[..., Any], Callable[..., Any]] | None = None  # compiled real_updates, look-ahead
        init_linears(self.D, c.init)  # init=default: torch's weights, untouched
        self.optimizers["discriminator"] = adam(self.D.parameters(), c.lr_d, (c.beta1, c.beta2), c.eps)

    def compiled_train_step(self, batch: Tensor, step: int, noise: Tape, compile: Callable[..., Any]
                            ) -> dict[str, Tensor | float]:
        """:meth:`train_step` with the teaching compiled in two parts (its discriminator steps fall between them):
        :func:`real_updates` and :func:`lookahead_grads`; the discriminator steps and the GAN term run eagerly on
        draws from the same tape, and the generator's gradient is the sum of the GAN term's and the look-ahead's."""
        c, gen = self.config, cast(torch.Generator, noise)
        n_gen, teaching = c.est_batch or batch.shape[0], step > c.warmup_steps
        if self._parts is None:
            self._parts = (compile(functools.partial(real_updates, self)),
                           compile(functools.partial(lookahead_grads, self)))
        g_params = {n: p.detach() for n, p in self.G.named_parameters()}
        out: dict[str, Tensor | float] = {}
        if teaching:
            start, elbo_gen = self._parts[0](g_params, estimator_start(self.estimator, self.optimizers["estimator"]),
                                             n_gen, gen)
            adam_state_to_torch(self.optimizers["estimator"], self.estimator.module, start[2], start[0])
            if elbo_gen is not None:
                out["elbo_gen"] = elbo_gen
        out.update(self._discriminator_steps(batch, n_gen, gen))
        with frozen(self.D):
            loss_gan = F.softplus(-self.D(generate(self, n_gen, gen)).squeeze(1)).mean()
        grads = dict(zip(g_params, torch.autograd.grad(c.lambda_gan * loss_gan, list(self.G.parameters()))))
        loss_g = c.lambda_gan * loss_gan.detach()
        if teaching:
            neg_elbo, la = self._parts[1](g_params, start, batch, n_gen, gen)
            grads = {k: g + la[k] for k, g in grads.items()}
            loss_g = loss_g + neg_elbo
            out["elbo_data_lookahead"] = -neg_elbo
        out["grad_norm_g"] = generator_step(self, c, None, grads)
        out.update(loss_g=loss_g, loss_gan_g=loss_gan.detach())
        return out

    def _discriminator_steps(self, batch: Tensor, n_gen: int, noise: torch.Generator | None = None
                             ) -> dict[str, Tensor]:
        """``n_dis`` discriminator steps, BCE(real = 1, fake = 0), the fakes drawn from ``noise`` (None: the
        method's generator)."""
        out: dict[str, Tensor] = {}
        for _ in range(self.config.n_dis):
            with torch.no_grad():
                fake = generate(self, n_gen, noise)
            logit_real, logit_fake = self.D(batch).squeeze(1), self.D(fake).squeeze(1)
            loss_d = F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real)) + \
                F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake))
            optimizer_step(self.optimizers["discriminator"], loss_d, self.recipe)
            out.update(loss_d=loss_d.detach(), d_real=logit_real.mean().detach(), d_fake=logit_fake.mean().detach())
        return out

    def step_kind(self, step: int) -> str | None:
        """Warm-up steps (no teaching: no estimator update, no look-ahead) and teaching steps."""
        return "step" if step > self.config.warmup_steps else "warmup"

    def train_step(self, batch: Tensor, step: int) -> dict[str, Tensor | float]:
        c = self.config
        n_gen = c.est_batch or batch.shape[0]
        teaching = step > c.warmup_steps
        out: dict[str, Tensor | float] = {}
        # --- real estimator updates (after the warm-up): n_est × (K-step unroll at 3× lr), written back ---
        if teaching:
            for _ in range(c.n_est):
                out["elbo_gen"] = estimator_update(self, c, n_gen)
        out.update(self._discriminator_steps(batch, n_gen))
        # --- generator step: λ · non-saturating GAN loss − ELBO(data; φ^K(ψ)), clipped ---
        with frozen(self.D):
            loss_gan = F.softplus(-self.D(generate(self, n_gen)).squeeze(1)).mean()
            loss_g = c.lambda_gan * loss_gan
            if teaching:
                neg_elbo = lookahead_neg_elbo(self, c, batch, n_gen)
                loss_g = loss_g + neg_elbo
                out["elbo_data_lookahead"] = -neg_elbo.detach()
        out["grad_norm_g"] = generator_step(self, c, loss_g)
        out.update(loss_g=loss_g.detach(), loss_gan_g=loss_gan.detach())
        return out
