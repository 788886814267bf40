"""feaCD: TemCoCo's batch-axis cosine quirk, the ``m3svd`` vector cosine, local weights and the logits cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from m3svd import flow as fl
from m3svd import metrics
from m3svd.metrics.temporal import VideoSources, load_resnet18, logits, resnet18


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "resnet18-random.pth"
    torch.save(resnet18().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def clip():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (4, 48, 64), dtype=np.uint8)
    ir = base
    vi = np.stack([np.roll(base, 1, axis=2)] * 3, axis=-1)
    fused = ((base.astype(np.int32) + rng.integers(0, 40, base.shape)) % 256).astype(np.uint8)
    return ir, vi, fused


def test_state_dict_keys_are_torchvision_resnet18(weights):
    keys = set(torch.load(weights, weights_only=True))
    assert len(keys) == 122 and {"conv1.weight", "bn1.num_batches_tracked", "layer2.0.downsample.0.weight",
                                 "layer4.1.bn2.running_var", "fc.weight", "fc.bias"} <= keys
    assert sum(p.numel() for p in resnet18().parameters()) == 11_689_512  # torchvision's count


def test_temcoco_quirk_is_the_sign_disagreement_rate(weights, clip):
    ir, vi, fused = clip
    src = VideoSources(ir=ir, vi=vi, resnet18=weights)
    literal = metrics.get("feacd", "temcoco")(fused, sources=src)
    net = load_resnet18(weights)
    lf, lv, li = (logits(net, x, normalise=False).double() for x in (fused, vi, ir))
    mf, mv, mi = (x[:-1] - x[1:] for x in (lf, lv, li))
    rate = 2 * ((mf * mv) < 0).double().mean(1) + 2 * ((mf * mi) < 0).double().mean(1)
    np.testing.assert_allclose(literal, rate.numpy(), atol=1e-6)
    vector = metrics.get("feacd")(fused, sources=src)
    ln = [logits(net, x, normalise=True).double() for x in (fused, vi, ir)]
    m = [x[:-1] - x[1:] for x in ln]
    cos = sum(1 - torch.nn.functional.cosine_similarity(m[0], r, dim=1) for r in m[1:])
    np.testing.assert_allclose(vector, cos.numpy(), rtol=1e-9)
    # the fused video equal to V: V-term 0, so feaCD/temcoco = 2 × sign-disagreement(V, IR)
    same = metrics.get("feacd", "temcoco")(vi, sources=src)
    np.testing.assert_allclose(same, (2 * ((mv * mi) < 0).double().mean(1)).numpy(), atol=1e-6)


def test_source_logits_cache(weights, clip, tmp_path):
    ir, vi, fused = clip
    cache = fl.FlowCache(tmp_path)
    plain = metrics.get("feacd")(fused, sources=VideoSources(ir=ir, vi=vi, resnet18=weights))
    first = metrics.get("feacd")(fused, sources=VideoSources(ir=ir, vi=vi, resnet18=weights, cache=cache))
    assert cache.misses == 8 and cache.hits == 0
    again = metrics.get("feacd")(fused, sources=VideoSources(ir=ir, vi=vi, resnet18=weights, cache=cache))
    assert cache.hits == 8 and np.array_equal(first, plain) and np.array_equal(again, plain)
