"""No method's training step reads a tensor's value on the host: on a GPU each such read waits for the device and
stops a step from being captured in a CUDA graph. Counted on the CPU, in CI, with a TorchFunctionMode that sees every
call that needs a value or a data-dependent shape (``ebmlab.syncs``; the check is ``ebmlab.testing.check_no_host_reads``
on the settings of ``ebmlab.testing.CASES``)."""

from __future__ import annotations

import pytest
import torch

from ebmlab.methods import METHODS
from ebmlab.syncs import CountHostReads
from ebmlab.testing import case, check_no_host_reads


def test_the_counter_sees_a_host_read():
    with CountHostReads() as c:
        x = torch.ones(3)
        if (x > 0).any():
            float(x.sum())
        x.nonzero()
        torch.linalg.svdvals(torch.eye(2))  # no wait on the CPU; on CUDA the solver's status is read on the host
        torch.linalg.slogdet(torch.eye(2))  # LU without a status check: not counted
    assert sum(c.where.values()) == 4, c.where


def test_the_check_fails_on_a_step_that_reads_the_host(monkeypatch):
    from ebmlab.methods.gan import GAN

    real = GAN.train_step

    def step_with_item(self, batch, step):
        out = real(self, batch, step)
        float(out["loss_d"])  # a value read on the host
        return out

    monkeypatch.setattr(GAN, "train_step", step_with_item)
    with pytest.raises(AssertionError, match="gan on ring8"):
        check_no_host_reads("gan")


# options that take another path through a step
VARIANTS = [("bib", "digits", {"share_jacobian": True})]


@pytest.mark.parametrize("name, data, over", [(n, d, {}) for n in METHODS for d in (case(n).data, *case(n).more_data)]
                         + VARIANTS)
def test_training_steps_make_no_host_synchronisation(name, data, over):
    check_no_host_reads(name, data, **over)
