"""The variational auto-encoder architecture: a diagonal-Gaussian encoder and a Bernoulli or Gaussian decoder.

Architecture only: the ELBO and the IWAE bound live in ``bounds.elbo``, the training objective in
``methods.estimators``. The module exposes the two maps those functions take:

    encode(x [b, D]) -> (mu [b, d], logvar [b, d])           q(z|x) = N(mu, diag e^logvar)
    decode(z [b, d]) -> logits [b, D]                         Bernoulli decoder
                     -> (mean [b, D], logvar [D])             Gaussian decoder, fixed or learned variance

The Gaussian decoder's log-variance is one number per data dimension, shared by every z (as in AEVB's toy
models and LBT's estimator, whose variance is fixed at 0.001). Fixed, it is a buffer — so a functional call at
unrolled parameters leaves it alone; learned, it is a parameter and is unrolled with the rest.

``hidden = ()`` gives linear maps (x → (mu, logvar) and z → mean): the linear-Gaussian model whose marginal
and exact posterior are known in closed form, used as the known-answer case.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor, nn

from ..data.base import DataSpec
from .mlp import mlp

DecoderKind = Literal["gaussian", "bernoulli", "discretised"]


class GaussianVAE(nn.Module):
    """Encoder D → hidden… → (mu, logvar) [d each]; decoder d → hidden… → D.

    Args:
        data_dim: D.
        z_dim: d, the latent dimension.
        hidden: widths of the hidden layers, used by the encoder and (in the same order) by the decoder;
            () for linear encoder and decoder.
        act: activation after every hidden layer.
        decoder: "gaussian" (continuous data), "bernoulli" (binary data; decode returns logits) or "discretised"
            (a Gaussian's mass on each level of quantised data: a likelihood of 8-bit images, bounds.discrete).
        decoder_var: the Gaussian decoder's variance (initial value when learned).
        learn_decoder_var: learn one log-variance per data dimension.
        decoder_hidden: the MLP decoder's hidden widths from z outwards (default ``hidden``; an encoder
            D → 1000 → 400 → z mirrored is ``decoder_hidden=(400, 1000)``).
    """

    def __init__(self, data: DataSpec | int, z_dim: int, hidden: tuple[int, ...] = (128, 128), *, act: str = "tanh",
                 decoder: DecoderKind = "gaussian", decoder_var: float = 1e-3, learn_decoder_var: bool = False,
                 net: str = "auto", width: int = 32, decoder_hidden: tuple[int, ...] | None = None):
        from .build import decoder as build_decoder, family
        from .conv import ConvCritic

        super().__init__()
        spec = data if isinstance(data, DataSpec) else DataSpec("vectors", (int(data),))
        data_dim = spec.dim
        fam = family(spec, net)
        if decoder not in ("gaussian", "bernoulli", "discretised"):
            raise ValueError(f"decoder must be 'gaussian', 'bernoulli' or 'discretised'; got {decoder!r}")
        if decoder == "discretised" and (spec.levels is None or spec.value_range is None):
            raise ValueError("decoder=discretised needs quantised data (8-bit images); this data is continuous — "
                             "use decoder=gaussian")
        if decoder_var <= 0:
            raise ValueError(f"decoder_var must be a positive variance; got {decoder_var}")
        self.data_dim, self.z_dim, self.decoder_kind, self.shape = data_dim, z_dim, decoder, spec.shape
        self.value_range, self.levels = spec.value_range, spec.levels
        if fam != "mlp":
            conv = ConvCritic(spec.shape, width, 1)
            self.encoder_trunk: nn.Module = conv.trunk
            feat = conv.feat_dim
        elif hidden:
            self.encoder_trunk = mlp(data_dim, hidden[:-1], hidden[-1], act=act, out_act=act)
            feat = hidden[-1]
        else:
            self.encoder_trunk = nn.Identity()
            feat = data_dim
        if fam == "mlp" and len(spec.shape) > 1:
            self.encoder_trunk = nn.Sequential(nn.Flatten(), self.encoder_trunk)
        # Separate heads for the mean and the log-variance (as LBT's dense3/dense4), equivalent to one linear
        # layer of width 2d split in two.
        self.enc_mu = nn.Linear(feat, z_dim)
        self.enc_logvar = nn.Linear(feat, z_dim)
        dec_hidden = hidden if decoder_hidden is None else decoder_hidden
        self.decoder_net = build_decoder(spec, z_dim, net=net, hidden=dec_hidden, act=act, width=width)
        self.learn_decoder_var = learn_decoder_var
        if decoder in ("gaussian", "discretised"):
            logvar = torch.full(spec.shape, math.log(decoder_var))
            if learn_decoder_var:
                self.decoder_logvar = nn.Parameter(logvar)
            else:
                self.register_buffer("decoder_logvar", logvar)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x [b, D] -> (mu [b, d], logvar [b, d]) of q(z|x)."""
        h = self.encoder_trunk(x)
        return self.enc_mu(h), self.enc_logvar(h)

    def decode(self, z: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """z [b, d] -> Bernoulli logits [b, D], or (mean [b, D], logvar [D]) for the Gaussian decoder."""
        out = self.decoder_net(z)
        if self.decoder_kind == "bernoulli":
            return out
        return out, self.decoder_logvar

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.encode(x)
