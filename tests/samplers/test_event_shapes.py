"""Samplers on data of any event shape: image-shaped chains run exactly as their flattened copies."""

import pytest
import torch

from ebmlab.samplers import mcmc as M


@pytest.mark.parametrize("algo,kw", [("mala", {"step_size": 0.05}), ("hmc", {"step_size": 0.1, "n_leapfrog": 3}),
                                     ("kinetic_langevin", {"gamma": 0.01, "kappa": 1.0})])
def test_run_on_image_shaped_chains_equals_flat_chains(algo, kw):
    a = getattr(M, algo)
    w = torch.linspace(0.5, 2.0, 8, dtype=torch.float64)

    def e_img(x):
        return 0.5 * (w * x.flatten(1) ** 2).sum(1)

    x0 = torch.randn(16, 2, 2, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    r_img = M.run(a, x0, e_img, n_steps=20, generator=torch.Generator().manual_seed(1), thin=5, **kw)
    r_flat = M.run(a, x0.flatten(1), lambda v: 0.5 * (w * v**2).sum(1), n_steps=20,
                   generator=torch.Generator().manual_seed(1), thin=5, **kw)
    assert r_img.final_state.x.shape == (16, 2, 2, 2) and r_img.samples.shape == (4, 16, 2, 2, 2)
    assert torch.equal(r_img.final_state.x.flatten(1), r_flat.final_state.x)
    assert torch.equal(r_img.samples.flatten(2), r_flat.samples)
