"""The pure-PyTorch FID Inception: output shapes on random weights, the resize, and refusal of a wrong file."""

import pytest
import torch

from ebmlab.errors import EbmlabError
from ebmlab.metrics.inception import FIDInceptionV3, load_inception, preprocess


def test_output_shapes_on_random_weights():
    torch.manual_seed(0)
    net = FIDInceptionV3().eval()
    with torch.no_grad():
        f, logits = net(preprocess(torch.rand(2, 1, 28, 28) * 2 - 1))
    assert f.shape == (2, 2048) and logits.shape == (2, 1008) and torch.isfinite(f).all()
    assert sum(p.numel() for p in net.parameters()) > 2e7  # Inception-v3 without the auxiliary head: ~23.9M


def test_preprocess_range_and_size():
    x = preprocess(torch.zeros(1, 3, 32, 32) - 1.0)
    assert x.shape == (1, 3, 299, 299) and float(x.max()) == -1.0
    with pytest.raises(EbmlabError, match="channels"):
        preprocess(torch.zeros(1, 2, 8, 8))


def test_wrong_or_missing_weights_refused(tmp_path, monkeypatch):
    monkeypatch.delenv("EBMLAB_INCEPTION", raising=False)
    with pytest.raises(EbmlabError, match="never downloaded"):
        load_inception()
    p = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save(FIDInceptionV3().state_dict(), p)  # right layout, wrong numbers: the hash tells them apart
    with pytest.raises(EbmlabError, match="6726825d"):
        load_inception(p)
