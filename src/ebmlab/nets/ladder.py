"""The ladder network of Rasmus, Valpola, Honkala, Berglund & Raiko, "Semi-Supervised Learning with Ladder
Networks" (NeurIPS 2015), fully connected, with the "vanilla" combinator — the energy of EBGAN-LN.

Encoder (the paper's Algorithm 1), for layer sizes n_0 = D, n_1 … n_L = number of classes:

    h̃⁽⁰⁾ = z̃⁽⁰⁾ = x + σ ε
    z̃⁽ˡ⁾ = BN(W⁽ˡ⁾ h̃⁽ˡ⁻¹⁾) + σ ε,     h̃⁽ˡ⁾ = relu(z̃⁽ˡ⁾ + β⁽ˡ⁾)  (l < L),   h̃⁽ᴸ⁾ = softmax(γ ⊙ (z̃⁽ᴸ⁾ + β⁽ᴸ⁾))

with BN the normalisation by the batch's own mean and standard deviation (no affine; β and γ follow it). The clean
encoder is the same with σ = 0; it is the classifier used at test time, with population statistics (running means
updated from clean passes of the training batches) in place of batch statistics.

Decoder, from the top down, with lateral connections:

    u⁽ᴸ⁾ = BN(h̃⁽ᴸ⁾),   u⁽ˡ⁾ = BN(V⁽ˡ⁺¹⁾ ẑ⁽ˡ⁺¹⁾),   ẑ⁽ˡ⁾ = g(z̃⁽ˡ⁾, u⁽ˡ⁾)
    g(z̃, u) = (z̃ − μ(u)) ⊙ v(u) + μ(u),   μ(u) = a₁ σ(a₂ u + a₃) + a₄ u + a₅,   v(u) = a₆ σ(a₇ u + a₈) + a₉ u + a₁₀

(σ the logistic function; a₁…a₁₀ vectors per layer, initialised a₂ = a₇ = 1 and the others 0, so that the
decoder starts by ignoring the lateral input). The **bottom-layer cost** used by EBGAN-LN (the "bottom-layer-cost
ladder" of Pezeshki et al., "Deconstructing the Ladder Network Architecture", 2016) keeps only the reconstruction
of the input, per example:

    C(x) = λ₀ · (1/D) ‖x − ẑ⁽⁰⁾‖²          (λ₀ = 1000, the paper's input-layer weight)

The decoder still runs through every layer (each ẑ⁽ˡ⁾ feeds the one below), but only the input is compared.

Deviation: the running (population) statistics are exponential averages of clean passes during training, not the
paper's separate pass over the training set after it (the same quantity, available at every checkpoint).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..rng import Noise, randn


def _bn(z: Tensor, eps: float = 1e-6) -> tuple[Tensor, Tensor, Tensor]:
    """z normalised by its own batch mean and (biased) variance, and those statistics."""
    m = z.mean(0)
    v = z.var(0, unbiased=False)
    return (z - m) / torch.sqrt(v + eps), m, v


class Combinator(nn.Module):
    """The vanilla combinator g(z̃, u) of one layer of width n (ten parameter vectors a₁…a₁₀)."""

    def __init__(self, n: int):
        super().__init__()
        init = torch.zeros(10, n)
        init[1] = 1.0  # a₂
        init[6] = 1.0  # a₇
        self.a = nn.Parameter(init)

    def forward(self, z_noisy: Tensor, u: Tensor) -> Tensor:
        a = self.a
        mu = a[0] * torch.sigmoid(a[1] * u + a[2]) + a[3] * u + a[4]
        v = a[5] * torch.sigmoid(a[6] * u + a[7]) + a[8] * u + a[9]
        return (z_noisy - mu) * v + mu


class Ladder(nn.Module):
    """A fully connected ladder network D → hidden… → n_classes (see the module docstring).

    Every normalisation site (the encoder's L, the decoder's L + 1) keeps population statistics: in training mode a
    site normalises by the batch's own statistics and, when asked to ``track``, moves its population statistics
    towards them (the encoder's from clean passes, the decoder's from noisy passes of real unlabelled batches); in
    evaluation mode it uses the population statistics, so the clean classifier and the cost ``C(x)`` of one example
    do not depend on the rest of its batch."""

    def __init__(self, in_dim: int, hidden: tuple[int, ...], n_classes: int, *, noise_std: float = 0.3,
                 lambda0: float = 1000.0, momentum: float = 0.05):
        super().__init__()
        sizes = [in_dim, *hidden, n_classes]
        self.sizes = sizes
        self.noise_std, self.lambda0, self.momentum = float(noise_std), float(lambda0), float(momentum)
        L = len(sizes) - 1
        self.W = nn.ModuleList(nn.Linear(sizes[i], sizes[i + 1], bias=False) for i in range(L))
        self.V = nn.ModuleList(nn.Linear(sizes[i + 1], sizes[i], bias=False) for i in range(L))
        self.beta = nn.ParameterList(nn.Parameter(torch.zeros(sizes[i + 1])) for i in range(L))
        self.gamma = nn.Parameter(torch.ones(n_classes))  # the top layer's scale (ReLU layers need none)
        self.comb = nn.ModuleList(Combinator(n) for n in sizes)
        for i in range(L):  # encoder site i normalises W⁽ⁱ⁺¹⁾h (width sizes[i + 1])
            self.register_buffer(f"enc{i}_mean", torch.zeros(sizes[i + 1]))
            self.register_buffer(f"enc{i}_var", torch.ones(sizes[i + 1]))
        for i in range(L + 1):  # decoder site i normalises u⁽ⁱ⁾ (width sizes[i])
            self.register_buffer(f"dec{i}_mean", torch.zeros(sizes[i]))
            self.register_buffer(f"dec{i}_var", torch.ones(sizes[i]))

    def _norm(self, site: str, z: Tensor, track: bool) -> Tensor:
        mean, var = getattr(self, f"{site}_mean"), getattr(self, f"{site}_var")
        if not self.training:
            return (z - mean) / torch.sqrt(var + 1e-6)
        out, m, v = _bn(z)
        if track:
            with torch.no_grad():
                mean.lerp_(m.detach(), self.momentum)
                var.lerp_(v.detach(), self.momentum)
        return out

    def _act(self, i: int, z: Tensor) -> Tensor:
        z = z + self.beta[i]
        return z.relu() if i < len(self.W) - 1 else self.gamma * z  # the top: logits (softmax in the cost)

    def _encode(self, x0: Tensor, corrupt, track: bool, upto: int | None = None) -> tuple[list[Tensor], Tensor]:
        zs = [corrupt(x0)]
        h = zs[0]
        for i, W in enumerate(self.W[:upto]):
            z = corrupt(self._norm(f"enc{i}", W(h), track))
            zs.append(z)
            h = self._act(i, z)
        return zs, h

    def forward(self, x: Tensor, *, track: bool = False) -> Tensor:
        """Clean logits [b, n_classes]; in training mode with ``track``, updates the encoder's statistics."""
        return self._encode(x.flatten(1), lambda z: z, track)[1]

    def features(self, x: Tensor) -> Tensor:
        """The clean path's last hidden activations [b, n_{L−1}]."""
        return self._encode(x.flatten(1), lambda z: z, False, upto=len(self.W) - 1)[1]

    def cost(self, x: Tensor, generator: Noise | None, *, track: bool = False,
             noise_std: float | None = None) -> Tensor:
        """The bottom-layer cost C(x) [b] of the corrupted path (:meth:`noisy`'s second value)."""
        cost = self.noisy(x, generator, track=track, noise_std=noise_std)[1]
        assert cost is not None  # decoded
        return cost

    def noisy(self, x: Tensor, generator: Noise | None, *, decode: bool = True, track: bool = False,
              noise_std: float | None = None) -> tuple[Tensor, Tensor | None]:
        """The corrupted path: noisy logits [b, n_classes] and, with ``decode``, the bottom-layer cost C(x) [b].
        ``noise_std`` overrides σ (0: the deterministic cost of the clean path); ``track`` updates the decoder's
        statistics (real unlabelled batches only)."""
        s = self.noise_std if noise_std is None else noise_std
        x0 = x.flatten(1)

        def corrupt(z: Tensor) -> Tensor:
            return z + s * randn(*z.shape, generator=generator, device=z.device, dtype=z.dtype) if s > 0 else z

        zs, logits = self._encode(x0, corrupt, False)
        if not decode:
            return logits, None
        L = len(self.W)
        u = self._norm(f"dec{L}", torch.softmax(logits, 1), track)
        z_hat = self.comb[L](zs[L], u)
        for i in range(L - 1, -1, -1):
            u = self._norm(f"dec{i}", self.V[i](z_hat), track)
            z_hat = self.comb[i](zs[i], u)
        return logits, self.lambda0 * (x0 - z_hat).square().mean(1)
