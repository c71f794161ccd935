"""The energies of a batch and their gradient in the input, ∇_x Σ_i E(x_i) (each row's gradient its own when the
energy is row-wise), differentiable in the energy's parameters: the form every score and gradient penalty shares.

Eagerly by ``torch.autograd.grad`` with ``create_graph``; while ``torch.compile`` traces a compiled training step
(run option ``compile``, whose gradients ``torch.func`` takes, and which refuses ``autograd.grad`` and
``requires_grad_`` inside its transforms) by ``torch.func.grad_and_value`` — the same numbers to float rounding
(``tests/test_compiled.py``), the eager form kept where it is fastest.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


def energy_and_input_grad(energy_fn: Callable[[Tensor], Tensor], x: Tensor, create_graph: bool = True
                          ) -> tuple[Tensor, Tensor]:
    """(E(x) [b], ∇_x Σ E(x) shaped as x) at the detached ``x``; the gradient carries its graph in the energy's
    parameters with ``create_graph`` (else detached). ``energy_fn`` must map [b, ...] to [b]."""
    b = x.shape[0]

    def checked(y: Tensor) -> Tensor:
        e = energy_fn(y)
        if e.shape != (b,):
            raise ValueError(f"energy_fn must map [b, ...] to [b]; got output shape {tuple(e.shape)} for b={b}.")
        return e

    if torch.compiler.is_compiling():
        def summed(y: Tensor) -> tuple[Tensor, Tensor]:
            e = checked(y)
            return e.sum(), e

        grad, (_, energy) = torch.func.grad_and_value(summed, has_aux=True)(x.detach())
        return energy, grad if create_graph else grad.detach()
    with torch.enable_grad():
        xx = x.detach().requires_grad_(True)
        energy = checked(xx)
        grad = torch.autograd.grad(energy.sum(), xx, create_graph=create_graph)[0]
    return energy, grad
