"""The option catalogue: a one-line description and the valid range of every run and method option.

One table serves three readers: ``ebmlab list --options`` (descriptions), :func:`validate` (ranges, checked before
any work or any file is written) and the tests (every field of every config has an entry). An option name means the
same thing in every method that has it; where a method gives a name its own meaning, the entry is keyed
``"<method>.<name>"``.

Range kinds: ``pos`` (finite, > 0), ``nonneg`` (finite, ≥ 0), ``finite``, ``unit`` (0 ≤ v < 1), ``open01``
(0 < v < 1), ``int1`` (integer ≥ 1), ``int0`` (integer ≥ 0), ``int2`` (integer ≥ 2), ``int10`` (integer ≥ 10),
``ints1`` (a list of integers ≥ 1), ``ints1+`` (a non-empty such list), ``any`` (the type check is enough).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .errors import EbmlabError

_HIDDEN = "hidden layer widths of the {} MLP (comma-separated; unused by conv nets)"

CATALOGUE: dict[str, tuple[str, str]] = {
    # --- run options ---------------------------------------------------------------------------------------------
    "steps": ("int1", "training steps in total (a resumed run may raise it)"),
    "batch_size": ("int2", "examples per training step"),
    "seed": ("int0", "seed of the networks' initialisation, the batches and every sampler of the run"),
    "log_every": ("int1", "steps between lines of training metrics (metrics.jsonl, TensorBoard, progress bar)"),
    "eval_every": ("int0", "steps between evaluations during training (0: evaluate at the end only)"),
    "ckpt_every": ("int1", "steps between checkpoints (a kill loses at most this many steps)"),
    "eval_samples": ("int10", "model samples behind each evaluation metric"),
    "eval_density": ("any", "2D data: compute the quadrature density metrics (exact NLL, log Z) at evaluation"),
    "device": ("any", "cpu, cuda, or auto (cuda when available)"),
    "threads": ("int0", "torch CPU threads (0: torch's default)"),
    "tensorboard": ("any", "write TensorBoard events under RUN_DIR/tb"),
    "plots": ("any", "write PNG figures under RUN_DIR/plots at the end"),
    "data_dir": ("any", "directory of local data files (MNIST, CIFAR-10); empty: the EBMLAB_DATA variable"),
    "image_size": ("int0", "side to which a folder of images is resized (0: the images' own size)"),
    "batches": ("any", "auto (iid for 2D toys, shuffled epochs otherwise), epochs, iid draws, or balanced (iid with equal counts per mode of a mixture)"),
    "num_workers": ("int0", "DataLoader worker processes preparing batches (0: in the training process)"),
    "lr_schedule": ("any", "learning-rate schedule of every optimizer: constant, linear, cosine (decay from "
                            "lr_decay_start to lr_end_factor × lr at the last step) or step"),
    "lr_decay_start": ("int0", "linear/cosine schedules: the step at which the decay begins"),
    "lr_end_factor": ("nonneg", "linear/cosine schedules: the learning rate at the last step, as a fraction of lr"),
    "lr_step_every": ("int0", "step schedule: steps between multiplications by lr_step_factor"),
    "lr_step_factor": ("pos", "step schedule: the factor applied every lr_step_every steps"),
    "grad_clip": ("nonneg", "clip each optimizer's gradients to this global L2 norm before its step (0: off)"),
    "ema": ("unit", "decay of a moving average of the sampling networks' weights, used for evaluation and "
                    "sampling (0: off; e.g. 0.999)"),
    "precision": ("any", "fp32, or bf16 (autocast of every training step to bfloat16; no loss scaling needed)"),
    "channels_last": ("any", "image data: conv networks and batches in channels-last memory format"),
    # --- networks -------------------------------------------------------------------------------------------------
    "net": ("any", "network family: auto (MLP for vectors/2D, conv for images), mlp, conv, dcgan"),
    "width": ("int1", "conv/dcgan width: channels of the first layer"),
    "z_dim": ("int1", "latent dimension of the generator"),
    "act": ("any", "activation of the MLPs"),
    "g_act": ("any", "activation of the generator MLP"),
    "d_act": ("any", "activation of the discriminator MLP"),
    "est_act": ("any", "activation of the estimator (VAE) MLP"),
    "g_hidden": ("ints1", _HIDDEN.format("generator")),
    "d_hidden": ("ints1", _HIDDEN.format("discriminator")),
    "e_hidden": ("ints1", _HIDDEN.format("energy")),
    "enc_hidden": ("ints1", _HIDDEN.format("encoder")),
    "est_hidden": ("ints1", _HIDDEN.format("estimator's encoder and decoder")),
    "hidden": ("ints1", _HIDDEN.format("encoder and decoder")),
    "t_hidden": ("ints1", _HIDDEN.format("time-conditioned energy")),
    "ebgan.d_hidden": ("ints1", "hidden widths of the auto-encoder's encoder (the decoder mirrors them)"),
    "g_batchnorm": ("any", "batch normalisation in the generator MLP"),
    "gan.g_batchnorm": ("any", "generator BatchNorm: auto (conv yes, MLP no), pre/post the activation (MLP), off"),
    "d_maxout": ("int1", "maxout pieces of each discriminator MLP hidden layer (PacGAN: 5; 1: the activation act)"),
    "init": ("any", "MLP weight initialisation: default (torch's), normal (N(0, 0.02^2), PacGAN/DCGAN), xavier"),
    "g_bn_position": ("any", "generator MLP: BatchNorm before the activation (pre) or after it (post)"),
    "e_out_scale": ("any", "a learned scalar factor after the energy MLP (EBM-BB's toy energy)"),
    "e_spectral_norm": ("any", "spectral normalisation of every layer of the energy MLP"),
    "code_dim": ("int1", "dimension of the auto-encoder's code"),
    "n_experts": ("int1", "experts (hidden units) of the bounded multi-modal energy"),
    "time_emb_dim": ("int1", "dimension of the diffusion time embedding"),
    "layers": ("ints1+", "hidden layer sizes of the Helmholtz machine, bottom-up (the visible layer is the data's)"),
    # --- optimisation ---------------------------------------------------------------------------------------------
    "lr": ("pos", "Adam learning rate"),
    "lr_g": ("pos", "generator learning rate"),
    "lr_d": ("pos", "discriminator learning rate"),
    "lr_e": ("pos", "energy learning rate"),
    "lr_est": ("pos", "estimator learning rate of the look-ahead (unrolled) updates"),
    "real_lr_mult": ("pos", "the estimator's real updates use real_lr_mult × lr_est"),
    "beta1": ("unit", "Adam β1"),
    "beta2": ("unit", "Adam β2"),
    "adam_eps": ("pos", "Adam ε"),
    "eps": ("pos", "ε of the unrolled Adam updates"),
    "eps_placement": ("any", "where the unrolled Adam puts ε: inside or outside the square root"),
    "optimizer": ("any", "optimiser: adam or adadelta (the VGAN paper's)"),
    "n_critic": ("int1", "discriminator/energy updates per generator update"),
    "pack": ("int1", "PacGAN packing: samples the discriminator judges at once (1: no packing)"),
    "n_critic_burst": ("int1", "energy updates per generator update during a burst"),
    "burst_every": ("int1", "steps between bursts of n_critic_burst energy updates"),
    "n_dis": ("int1", "discriminator updates per generator update"),
    "k_gen": ("int1", "generator updates per energy update"),
    "clip_g": ("pos", "clip the generator's gradient norm to this (none: no clipping)"),
    "warmup_steps": ("int0", "plain-GAN steps before the estimator and the ELBO term switch on"),
    # --- objectives -----------------------------------------------------------------------------------------------
    "entropy_weight": ("nonneg", "weight of the generator's entropy term (1 keeps the generator loss a bound)"),
    "penalty": ("nonneg", "weight of the energy's gradient penalty"),
    "energy_floor": ("finite", "lower clamp of the energy (none: no clamp)"),
    "margin": ("nonneg", "hinge margin m of the fake-sample energy"),
    "margin_schedule": ("any", "margin over training: constant, or linear/cosine decay to 0"),
    "margin_decay_start": ("int0", "step at which the margin starts to decay"),
    "margin_decay_steps": ("int0", "steps over which the margin decays to 0"),
    "recon_norm": ("any", "reconstruction energy: l2 norm, squared l2, or l1"),
    "recon_reduction": ("any", "sum or mean of the reconstruction error over the dimensions"),
    "tau": ("pos", "temperature: energy(x) = D(x) / tau"),
    "tau_search": ("any", "2D: also the quadrature NLL at the oracle temperature chosen on the test split (slow)"),
    "pt_weight": ("nonneg", "weight of the pull-away term in the generator loss"),
    "out_bound": ("nonneg", "> 0: generator output out_bound·tanh(·), confined to the data box (0: unbounded)"),
    "drop_prob": ("unit", "dropout probability of the VCD transition"),
    "rho": ("nonneg", "weight of the VCD transition's reconstruction term"),
    "recon": ("any", "reconstruction loss of the VCD transition: bce or l2"),
    "reservoir": ("int1", "samples kept in the VCD transition's reservoir"),
    "lambda_gan": ("nonneg", "weight of the GAN term in LBT-GAN's generator loss"),
    # --- BiB bounds -----------------------------------------------------------------------------------------------
    "lower": ("any", "lower bound of the entropy: jacobian (i) or mi (ii)"),
    "upper": ("any", "upper bound of the log-likelihood: gp (iii), diffusion (iv), or none (one-sided)"),
    "estimator": ("any", "the Jacobian term of bound (i): logdet, smallest singular value, or lobpcg"),
    "lobpcg_iters": ("int1", "LOBPCG iterations of the smallest-singular-value estimate"),
    "jac_mode": ("any", "exact Jacobians: auto (tangent propagation through MLP generators, else reverse mode when data dim ≤ latent dim, else forward), prop, fwd, or rev"),
    "score_volume": ("any", "bound (iii): how the latent score's log-volume is computed"),
    "gp_weight": ("nonneg", "bound (iii): weight w of the gradient penalty"),
    "gp_threshold": ("nonneg", "bound (iii): threshold of the gradient penalty"),
    "onesided_penalty": ("any", "one-sided pairing: zero-centred gradient penalty on the energy, or none"),
    "zero_gp_weight": ("nonneg", "weight of the zero-centred gradient penalty"),
    "sigma": ("pos", "bound (ii): standard deviation of the generator's output noise"),
    "t_min": ("open01", "bound (iv): smallest diffusion time"),
    "t_scheme": ("any", "bound (iv): time sampling, uniform in log-SNR or in t"),
    "diffusion_weight": ("nonneg", "bound (iv): weight (1 keeps the energy loss a bound)"),
    "eval_n_t": ("int1", "Gauss–Legendre nodes of the diffusion bound at evaluation"),
    "eval_inner_k": ("int1", "bound (ii): encoder draws behind each importance-sampled p_g(x) at evaluation"),
    "bound_samples": ("int2", "generator samples behind each reported bound (BiB)"),
    # --- KALE sampling --------------------------------------------------------------------------------------------
    "sampler": ("any", "energy-guided latent sampler (none: the base generator only)"),
    "inverse_temperature": ("pos", "inverse temperature of the energy in the latent target"),
    "mcmc_steps": ("int1", "MCMC steps of the latent sampler"),
    "mcmc_step_size": ("pos", "step size of the latent sampler"),
    "mcmc_friction": ("nonneg", "friction of kinetic Langevin"),
    # --- LBT estimator --------------------------------------------------------------------------------------------
    "est_z_dim": ("int1", "latent dimension of the estimator (a VAE)"),
    "est_decoder_var": ("pos", "variance of the estimator's Gaussian decoder (initial value when learned)"),
    "est_learn_decoder_var": ("any", "learn the estimator's decoder variance"),
    "est_sample_mode": ("any", "the estimator's samples: decoder mean or a draw"),
    "flat_unroll": ("any", "unroll on one flat parameter vector (same numbers, fewer tensor operations)"),
    "unroll_steps": ("int1", "look-ahead steps K of the unrolled estimator"),
    "n_est": ("int1", "estimator updates per step"),
    "est_batch": ("int0", "generator samples per unroll step and GAN term (0: the data batch size)"),
    # --- VAE ------------------------------------------------------------------------------------------------------
    "decoder": ("any", "decoder likelihood: gaussian or bernoulli"),
    "decoder_var": ("pos", "Gaussian decoder variance (initial value when learned)"),
    "learn_decoder_var": ("any", "learn the Gaussian decoder variance"),
    "sample_mode": ("any", "samples: the decoder mean or a draw"),
    "iwae_ks": ("ints1+", "sample counts K of the IWAE bounds reported at evaluation"),
    "iwae_points": ("int1", "test points behind the IWAE bounds"),
    "iwae_chunk": ("int1", "test points per forward pass of the IWAE evaluation"),
    "elbo_samples": ("int1", "posterior samples per test point of the ELBO estimate"),
    "eval_seed": ("int0", "seed of the evaluation's own draws"),
    # --- Helmholtz machines ---------------------------------------------------------------------------------------
    "n_samples": ("int1", "samples K of h ~ q(h|x) per example in training"),
    "q_update": ("any", "RWS only: the q update, wake phase or half wake half sleep"),
    "eval_ks": ("ints1+", "sample counts K of the evaluation table"),
    "eval_points": ("int1", "test points behind the evaluation table"),
    "z2_samples": ("int1", "outer draws (x, h) ~ p of the Z² estimator"),
    "z2_inner": ("int1", "inner draws per outer draw of the Z² estimator"),
    "eval_chunk": ("int1", "rows per forward pass in evaluation"),
    "bihm.sample_mode": ("any", "sampling from p*: importance resampling (sir), block Gibbs, or p itself"),
    "rws.sample_mode": ("any", "sampling: importance resampling (sir), block Gibbs, or p itself"),
    "sir_oversample": ("int1", "sir: proposals per returned sample"),
    "sir_inner": ("int1", "sir: draws of q behind each proposal's weight"),
    "gibbs_sweeps": ("int1", "gibbs: sweeps over the layers per sample"),
    "sample_mean": ("any", "return Bernoulli means instead of binary samples"),
}


def method_keys(method: Any) -> tuple[str, ...]:
    """The names under which a method's own option meanings are catalogued: its name, then its base classes'."""
    if method is None:
        return ()
    if isinstance(method, str):
        from .methods import get_method

        method = get_method(method)
    return tuple(dict.fromkeys(c.name for c in method.__mro__ if isinstance(getattr(c, "name", None), str)))


def entry(name: str, method: Any = None) -> tuple[str, str]:
    """(range kind, description) of an option, with a method's own meaning first (``method``: a name or class)."""
    for key in method_keys(method):
        if f"{key}.{name}" in CATALOGUE:
            return CATALOGUE[f"{key}.{name}"]
    if name in CATALOGUE:
        return CATALOGUE[name]
    raise KeyError(f"option {name!r} has no catalogue entry")


def describe(name: str, method: Any = None) -> str:
    return entry(name, method)[1]


_RULES = {
    "pos": (lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "nonneg": (lambda v: math.isfinite(v) and v >= 0, "a finite number ≥ 0"),
    "finite": (lambda v: math.isfinite(v), "a finite number"),
    "unit": (lambda v: math.isfinite(v) and 0 <= v < 1, "a number in [0, 1)"),
    "open01": (lambda v: math.isfinite(v) and 0 < v < 1, "a number in (0, 1)"),
    "int0": (lambda v: v >= 0, "an integer ≥ 0"),
    "int1": (lambda v: v >= 1, "an integer ≥ 1"),
    "int2": (lambda v: v >= 2, "an integer ≥ 2"),
    "int10": (lambda v: v >= 10, "an integer ≥ 10"),
    "ints1": (lambda v: all(x >= 1 for x in v), "a list of integers ≥ 1"),
    "ints1+": (lambda v: len(v) > 0 and all(x >= 1 for x in v), "a non-empty list of integers ≥ 1"),
    "any": (lambda v: True, ""),
}


def problems(cfg: Any, method: Any = None) -> list[str]:
    """Every option of the dataclass ``cfg`` outside its range, as 'name=value (expected ...)'."""
    out = []
    for f in dataclasses.fields(cfg):
        v = getattr(cfg, f.name)
        kind = entry(f.name, method)[0]
        if v is None or isinstance(v, (bool, str)):
            continue
        ok, expected = _RULES[kind]
        if not ok(v):
            out.append(f"{f.name}={v!r} (expected {expected}: {describe(f.name, method)})")
    if getattr(cfg, "lr_schedule", "constant") == "step" and cfg.lr_step_every < 1:
        out.append("lr_schedule=step needs lr_step_every ≥ 1 (the steps between learning-rate drops)")
    # a decay that starts at 0 is always accepted (a preset's schedule must not refuse a short run: with 1 or 2
    # steps there is simply little to decay); a later start that leaves no step to decay over is a mistake
    if getattr(cfg, "lr_schedule", "constant") in ("linear", "cosine") and cfg.lr_decay_start > 0 \
            and cfg.lr_decay_start >= cfg.steps - 1:
        out.append(f"lr_decay_start={cfg.lr_decay_start} leaves no step to decay over (steps={cfg.steps}), so "
                   f"lr_schedule={cfg.lr_schedule} would never decay; lower it or use lr_schedule=constant")
    return out


def validate(cfg: Any, *, method: Any = None, what: str = "options") -> None:
    """Raise one :class:`EbmlabError` listing every out-of-range option of ``cfg``."""
    bad = problems(cfg, method)
    if bad:
        raise EbmlabError(f"invalid {what}: " + "; ".join(bad))
