"""AIS log Z of a trained energy on data of any shape (the likelihood beyond 2D; EVALUATION.md).

Forward AIS (``samplers.ais``) from a normalised Gaussian base fitted to the training split (per-coordinate mean
and standard deviation), geometric path with a sigmoid schedule, HMC transitions (10 leapfrog steps, step adapted
to 0.65 acceptance), on the flattened samples. It is run with T and 2T intermediate distributions so that the
convergence shows; AIS under-estimates log Z in expectation, so ``nll_ais`` = mean E(x_test) + log Z is
optimistic (too low). An energy that is bounded (VGAN's product of experts) has no finite log Z on R^D: its AIS
value only measures how far the chains wandered.

8-bit images (``dataset.spec.levels``): exp(−E)/Z is a density of continuous pixel values, so −log of it at the
test images is not a likelihood of the discrete data (it can go below zero). The mean energy is then taken at
uniformly dequantised test images and the NLL shifted by −D·log w (``bounds.discrete``): P(x) = w^D·E_u p(x + u)
≥ w^D·exp E_u log p(x + u), so E_u[E(x + u)] + log Z − D·log w bounds −log P(x) from above (with the exact log Z),
reported in nats per image and bits per dimension (``bpd_ais_T*``).
"""

from __future__ import annotations

from typing import Any

import torch

from ..bounds.discrete import bits_per_dim, dequantisation_offset, dequantise
from ..samplers.ais import ais_log_z
from ..data.base import Dataset


def ais_report(method, dataset: Dataset, *, n_steps: int = 500, n_chains: int = 64, seed: int = 0,
               progress: bool = False) -> dict[str, Any]:
    shape = tuple(dataset.shape)
    device = getattr(method, "device", None) or torch.device("cpu")
    x = dataset.train.flatten(1).double()
    mean, std = x.mean(0).to(device), x.std(0).clamp_min(1e-3).to(device)

    # −log of the model's unnormalised density (a method's energy, or energy − log base for a fixed-base KALE)
    density_energy = getattr(method, "density_energy", method.energy)

    def energy_flat(v: torch.Tensor) -> torch.Tensor:
        return density_energy(v.reshape(-1, *shape).to(torch.float32)).double()

    spec = getattr(dataset, "spec", None)  # a bare object with train/test/shape is scored too (no quantisation)
    levels = getattr(spec, "levels", None)
    test, offset = dataset.test, 0.0
    if levels is not None and spec is not None and spec.value_range is not None:  # 8-bit data: the energy at dequantised test images, the NLL shifted to the discrete data
        test = dequantise(test.double(), spec.value_range, levels,
                          generator=torch.Generator().manual_seed(seed + 1)).to(dataset.test.dtype)
        offset = dequantisation_offset(x.shape[1], spec.value_range, levels)
    with torch.no_grad():
        e_test = float(torch.cat([density_energy(t.to(device)) for t in test.split(1024)]).double().mean())
    out: dict[str, Any] = {}
    method.train(False)
    try:
        for t in (n_steps, 2 * n_steps):
            g = torch.Generator(device=device).manual_seed(seed)
            res = ais_log_z(energy_flat, x.shape[1], n_chains=n_chains, n_steps=t, generator=g, base_mean=mean,
                            base_std=std, dtype=torch.float64, device=device, progress=progress)
            out[f"ais_log_z_T{t}"] = float(res.log_z)
            out[f"nll_ais_T{t}"] = e_test + float(res.log_z) + offset
            if levels is not None:
                out[f"bpd_ais_T{t}"] = bits_per_dim(out[f"nll_ais_T{t}"], x.shape[1])
    finally:
        method.train(True)
    out["ais_note"] = (f"forward AIS, {n_chains} chains, T = {n_steps} and {2 * n_steps} intermediate distributions, "
                       f"HMC; under-estimates log Z in expectation, so nll_ais is optimistic"
                       + (f"; 8-bit data: nats per image of the discrete values (energy at uniformly dequantised "
                          f"test images, shifted by −D·log w = {offset:.1f} nats)" if levels is not None else ""))
    return out
