"""Known answers for EBGAN's pull-away term (float64)."""

from __future__ import annotations

import itertools

import pytest
import torch

from ebmlab.bounds.pullaway import pullaway_term

DT = torch.float64


def test_orthogonal_codes_give_zero():
    codes = torch.diag(torch.tensor([1.0, 2.0, 0.5, 3.0], dtype=DT))  # 4 mutually orthogonal rows of any norms
    assert pullaway_term(codes).item() == 0.0
    q, _ = torch.linalg.qr(torch.randn(6, 6, generator=torch.Generator().manual_seed(0), dtype=DT))
    torch.testing.assert_close(pullaway_term(q.T[:4] * 3.0), torch.tensor(0.0, dtype=DT), rtol=0, atol=1e-15)


def test_parallel_and_antiparallel_codes_give_one():
    v = torch.tensor([0.3, -1.2, 2.0], dtype=DT)
    torch.testing.assert_close(pullaway_term(v.repeat(5, 1)), torch.tensor(1.0, dtype=DT), rtol=1e-14, atol=0)
    # cos² is blind to sign and scale (the square is what makes anti-parallel codes count as collapsed).
    scaled = torch.stack([v, -2 * v, 0.1 * v])
    torch.testing.assert_close(pullaway_term(scaled), torch.tensor(1.0, dtype=DT), rtol=1e-14, atol=0)


def test_hand_computed_case():
    # S = [(1,0), (1,1), (0,2)]: cos²(1,2) = 1/2, cos²(1,3) = 0, cos²(2,3) = 1/2;
    # ordered pairs i ≠ j sum to 2·(1/2 + 0 + 1/2) = 2, over N(N−1) = 6 → 1/3.
    s = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]], dtype=DT)
    torch.testing.assert_close(pullaway_term(s), torch.tensor(1.0 / 3.0, dtype=DT), rtol=1e-14, atol=0)


def test_matches_double_loop_and_flattens_feature_maps():
    g = torch.Generator().manual_seed(1)
    codes = torch.randn(7, 2, 3, 2, generator=g, dtype=DT)  # conv-encoder-like codes [N, C, H, W]
    flat = codes.reshape(7, -1)
    total = sum(
        (torch.dot(flat[i], flat[j]) / (flat[i].norm() * flat[j].norm())) ** 2
        for i, j in itertools.permutations(range(7), 2)
    )
    torch.testing.assert_close(pullaway_term(codes), total / 42, rtol=1e-13, atol=0)


def test_gradient_is_correct_and_zero_code_is_harmless():
    g = torch.Generator().manual_seed(2)
    codes = torch.randn(5, 3, generator=g, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(pullaway_term, (codes,))
    with_zero = torch.cat([torch.zeros(1, 3, dtype=DT), codes.detach()])
    value = pullaway_term(with_zero)
    # A zero code is orthogonal to everything: only the 5·4 ordered pairs among the others contribute.
    torch.testing.assert_close(value, pullaway_term(codes.detach()) * 20 / 30, rtol=1e-13, atol=0)


def test_needs_two_codes():
    with pytest.raises(ValueError, match="at least N = 2"):
        pullaway_term(torch.ones(1, 4, dtype=DT))
    with pytest.raises(ValueError, match=r"shape \[N, k\]"):
        pullaway_term(torch.ones(4, dtype=DT))
