import torch

from ebmlab.nets import BoundedExpertHead, mlp


def test_bounded_head_logit_form_equals_the_binary_entropy_of_clipped_probabilities():
    torch.manual_seed(0)
    head = BoundedExpertHead(mlp(2, (16,), 16), 16, n_experts=32).double()
    with torch.no_grad():
        head.experts.weight.mul_(30)  # push many experts into the clipped range
    x = torch.randn(500, 2, dtype=torch.float64) * 3
    e_fast = head(x)
    e_ref = head.energy_from_probs(head.probs(x))
    assert torch.allclose(e_fast, e_ref, rtol=0, atol=1e-9)
    assert (e_ref >= 0).all() and (e_ref <= 32 * torch.log(torch.tensor(2.0))).all()
