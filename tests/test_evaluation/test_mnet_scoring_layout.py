"""GMN pair scoring: kernels apart from policy, one BN fold, one options
object (issue 17.4)."""
import ast
import dataclasses
import inspect

import pytest
import torch
import torch.nn as nn

from mmreid.evaluation.functional import (MNetPairScorer, PairDistanceOptions,
                                          make_mnet_scorer, mnet_distance,
                                          mnet_distances, mnet_logits,
                                          pair_scoring)
from mmreid.evaluation.functional.mnet_logits import fold_mnet_batchnorm
from mmreid.models.layers import MNet


def random_bn(channels, affine, seed):
    torch.manual_seed(seed)
    bn = nn.BatchNorm1d(channels, affine=affine, eps=1e-3)
    bn.running_mean.uniform_(-2, 2)
    bn.running_var.uniform_(0.01, 5)
    if affine:
        bn.weight.data.uniform_(-2, 2)
        bn.bias.data.uniform_(-1, 1)
    return bn.eval()


@pytest.mark.parametrize('affine', [True, False])
def test_fold_equals_eval_mode_batchnorm(affine):
    dim, hidden = 40, 24
    bn = random_bn(hidden, affine, seed=3)
    first = nn.Linear(dim, hidden, bias=False)
    x = torch.randn(500, dim, generator=torch.Generator().manual_seed(4))
    weight, bias = fold_mnet_batchnorm(first.weight, bn)
    assert weight.dtype == bias.dtype == torch.float32
    assert not weight.requires_grad and not bias.requires_grad
    with torch.no_grad():
        expected = bn(first(x))
    # The same map up to fp32 rounding (assert_close's fp32 tolerances).
    torch.testing.assert_close(x @ weight.t() + bias, expected)
    # The shift is the BN of a zero input: beta - mean * gamma / std.
    with torch.no_grad():
        torch.testing.assert_close(bias, bn(torch.zeros(1, hidden))[0])


def test_fold_refuses_bn_without_running_statistics():
    bn = nn.BatchNorm1d(4, track_running_stats=False)
    with pytest.raises(ValueError, match='running statistics'):
        fold_mnet_batchnorm(torch.ones(4, 3), bn)


@pytest.mark.parametrize('num_layers', [1, 2])
def test_mnet_uses_the_one_fold(num_layers):
    mnet = MNet(in_channels=16, hidden_channels=8, num_layers=num_layers)
    for module in mnet.modules():
        if isinstance(module, nn.BatchNorm1d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.1, 3)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.5, 0.5)
    mnet.eval()
    params = mnet.folded_params()
    weight, bias = fold_mnet_batchnorm(mnet.hidden[0].weight, mnet.hidden[1])
    assert torch.equal(params['weight'], weight)
    assert torch.equal(params['bias'], bias)
    pairs = torch.rand(30, 16)
    hidden = torch.relu(pairs @ params['weight'].t() + params['bias'])
    if params['tail'] is None:
        z = hidden @ params['out_weight'] + params['out_bias']
    else:
        z = params['tail'](hidden)
    with torch.no_grad():
        torch.testing.assert_close(z, mnet(pairs))


def test_kernels_know_nothing_of_the_distance_policy():
    tree = ast.parse(inspect.getsource(mnet_logits))
    imported = {
        node.module
        for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
    }
    assert 'mnet_distance' not in imported
    for name in ('mnet_distances', 'MNetPairScorer', 'PAIR_DISTANCE_MODES'):
        assert not hasattr(mnet_logits, name)
    # The old module path re-exports the same objects (one release).
    for name in pair_scoring.__all__:
        new = getattr(mnet_distance, name, None) or getattr(mnet_logits, name)
        assert getattr(pair_scoring, name) is new


def small_mnet():
    torch.manual_seed(0)
    weight, bias = torch.randn(6, 5), torch.randn(6)
    return weight, bias, torch.randn(6), torch.tensor(0.3)


def test_options_are_checked_once_for_every_entry_point():
    with pytest.raises(ValueError, match='distance must be one of'):
        PairDistanceOptions(distance='cosine')
    with pytest.raises(
            ValueError, match=r'fuse_beta must be a number in \[0, 1\)'):
        PairDistanceOptions(distance='fused', fuse_beta=1.5)
    with pytest.raises(
            ValueError, match="only supported with distance='mnet'"):
        PairDistanceOptions(distance='euclid', topk=3)
    with pytest.raises(ValueError, match='topk must be a positive int'):
        PairDistanceOptions(topk=True)
    with pytest.raises(ValueError, match='method must be one of'):
        PairDistanceOptions(method='fast')
    mnet = small_mnet()
    # The scorer refuses at construction what the function refuses.
    with pytest.raises(ValueError, match='method must be one of'):
        MNetPairScorer(*mnet, method='fast')
    with pytest.raises(
            TypeError,
            match=r"mnet_distances\(\) got unexpected "
            r"keyword arguments \['fuse'\]"):
        mnet_distances(torch.rand(2, 5), torch.rand(3, 5), *mnet, fuse=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        PairDistanceOptions().distance = 'euclid'


def test_options_object_and_keywords_are_the_same_distance():
    mnet = small_mnet()
    query, gallery = torch.rand(4, 5), torch.rand(7, 5)
    options = PairDistanceOptions(distance='fused', fuse_beta=0.25)
    by_object = mnet_distances(query, gallery, *mnet, options)
    by_keywords = mnet_distances(
        query, gallery, *mnet, distance='fused', fuse_beta=0.25)
    assert torch.equal(by_object, by_keywords)
    # Keywords override the object's fields.
    overridden = mnet_distances(query, gallery, *mnet, options, fuse_beta=0.75)
    assert torch.equal(
        overridden,
        mnet_distances(
            query, gallery, *mnet, distance='fused', fuse_beta=0.75))
    scorer = make_mnet_scorer(*mnet, options, check_queries=0)
    assert scorer.options == options
    assert (scorer.distance, scorer.fuse_beta) == ('fused', 0.25)
    assert torch.equal(scorer(query, gallery), by_object)
    euclid = MNetPairScorer(*mnet, options, distance='euclid')
    expected = (query[:, None] - gallery[None]).pow(2).sum(-1)
    torch.testing.assert_close(euclid(query, gallery), expected)


def test_options_refuse_topk_zero():
    """A top-0 rerank would score no candidate at all: 'positive int'."""
    with pytest.raises(ValueError, match='topk must be a positive int'):
        PairDistanceOptions(topk=0)
    with pytest.raises(ValueError, match='topk must be a positive int'):
        mnet_distances(
            torch.rand(2, 5), torch.rand(3, 5), *small_mnet(), topk=0)
