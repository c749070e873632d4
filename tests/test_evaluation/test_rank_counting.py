"""The counting paths of the rank metrics, as functions with explicit
arguments, against a naive count (issue 17.4)."""
import numpy as np
import pytest
import torch

import mmreid.evaluation.functional.count_kernel as count_kernel
from mmreid.evaluation import functional
from mmreid.evaluation.functional import evaluate, rank
from mmreid.evaluation.functional.positives import sort_positives, tie_blocks
from mmreid.evaluation.functional.rank_counting import (ChunkPositives,
                                                        GalleryPidIndex,
                                                        kernel_counts,
                                                        search_counts)


def test_evaluate_rank_lives_with_its_machinery():
    assert functional.evaluate_rank.__module__ == rank.__name__
    assert rank.evaluate_rank is functional.evaluate_rank
    # The old import path keeps working for one release.
    assert evaluate.evaluate_rank is rank.evaluate_rank


def random_chunk(seed, num_q=6, num_g=40, with_masks=True):
    """Tied integer distances, random positives, a few removed items."""
    gen = torch.Generator().manual_seed(seed)
    dist = torch.randint(0, 8, (num_q, num_g), generator=gen).double()
    pos = torch.rand(num_q, num_g, generator=gen) < 0.15
    pos[-1] = False  # a query without positives
    removed = (torch.rand(num_q, num_g, generator=gen) < 0.1) & ~pos
    num_pos = pos.sum(1)
    pos_dist, pos_idx = sort_positives(dist, pos, num_pos, int(num_pos.max()))
    chunk = ChunkPositives(num_pos, pos_dist, pos_idx, pos | removed, None)
    return dist, pos, removed, chunk


def naive_before(dist, pos, removed, chunk, tie_policy):
    """Negatives before each sorted positive, from the definition."""
    before = torch.zeros_like(chunk.pos_idx)
    for q in range(len(dist)):
        negatives = (~pos[q] & ~removed[q]).nonzero().flatten().tolist()
        for j in range(int(chunk.num_pos[q])):
            g = int(chunk.pos_idx[q, j])
            d = dist[q, g]
            if tie_policy == 'pessimistic':
                count = sum(dist[q, n] <= d for n in negatives)
            elif tie_policy == 'optimistic':
                count = sum(dist[q, n] < d for n in negatives)
            else:  # ascending (distance, gallery index)
                count = sum((dist[q, n], n) < (d, g) for n in negatives)
            before[q, j] = int(count)
    return before


def search_before(dist, chunk, tie_policy, dense_fraction):
    blocks = tie_blocks(chunk.pos_dist[:, :chunk.max_pos], chunk.is_real)
    hist, hist_pessimistic, seen = search_counts(dist, chunk, blocks,
                                                 tie_policy, 'cumsum', None,
                                                 dense_fraction)
    assert hist_pessimistic is hist and seen is None
    return hist[:, :chunk.max_pos].cumsum(1).masked_fill(~chunk.is_real, 0)


@pytest.mark.parametrize('tie_policy', rank.TIE_POLICIES)
@pytest.mark.parametrize('dense_fraction', [0.0, 2.0])
def test_search_counts_equal_the_naive_count(tie_policy, dense_fraction):
    for seed in range(3):
        dist, pos, removed, chunk = random_chunk(seed)
        expected = naive_before(dist, pos, removed, chunk, tie_policy)
        got = search_before(dist, chunk, tie_policy, dense_fraction)
        assert torch.equal(got, expected)


@pytest.mark.parametrize('tie_policy', rank.TIE_POLICIES)
def test_kernel_counts_equal_the_naive_count(monkeypatch, tie_policy):
    monkeypatch.setattr(count_kernel, 'ENABLED', True)
    if not count_kernel.available():
        pytest.skip('numba is not installed')
    for seed in range(3):
        dist, pos, removed, chunk = random_chunk(seed)
        expected = naive_before(dist, pos, removed, chunk, tie_policy)
        before, before_pessimistic, first_rank = kernel_counts(
            dist, chunk, tie_policy, 'cumsum', None, 2, False)
        assert first_rank is None and before_pessimistic is before
        assert torch.equal(before.masked_fill(~chunk.is_real, 0), expected)


def test_dedup_marks_the_pids_before_the_first_positive():
    dist, pos, removed, chunk = random_chunk(5)
    g_pids = torch.arange(dist.shape[1]) % 7
    pid_index = GalleryPidIndex.of(g_pids * 10)
    assert pid_index.num_pids == 7
    assert np.array_equal(pid_index.index_np, g_pids.numpy())
    blocks = tie_blocks(chunk.pos_dist[:, :chunk.max_pos], chunk.is_real)
    _, _, seen = search_counts(dist, chunk, blocks, 'stable', 'cumsum',
                               pid_index, 0.25)
    for q in range(len(dist)):
        expected = set()
        if chunk.num_pos[q]:
            g0 = int(chunk.pos_idx[q, 0])
            for n in (~pos[q] & ~removed[q]).nonzero().flatten().tolist():
                if (dist[q, n], n) < (dist[q, g0], g0):
                    expected.add(int(g_pids[n]))
        assert set(seen[q].nonzero().flatten().tolist()) == expected


def random_own_chunk(seed, num_q=6, num_g=40):
    """Tied integer distances; the same-pid items listed as ``own``.

    The representation the rank computation uses for the ``'market'`` and
    ``'none'`` rules: no (Qc, G) mask, only the flat indices of every item
    sharing the query's pid (kept positives and removed same-camera
    items), which both paths count like negatives and take back.
    """
    gen = torch.Generator().manual_seed(seed)
    dist = torch.randint(0, 6, (num_q, num_g), generator=gen).double()
    same_pid = torch.rand(num_q, num_g, generator=gen) < 0.25
    same_pid[-1] = False  # a query without positives
    removed = same_pid & (torch.rand(num_q, num_g, generator=gen) < 0.4)
    pos = same_pid & ~removed
    num_pos = pos.sum(1)
    pos_dist, pos_idx = sort_positives(dist, pos, num_pos, int(num_pos.max()))
    flat = torch.arange(num_q * num_g).view(num_q, num_g)
    chunk = ChunkPositives(num_pos, pos_dist, pos_idx, None, flat[same_pid])
    return dist, pos, removed, chunk


@pytest.mark.parametrize('tie_policy', rank.TIE_POLICIES)
def test_counts_of_own_items_equal_the_naive_count(monkeypatch, tie_policy):
    """Both paths with the same-pid items given as ``own`` (the market
    rule's fast form) count only the negatives before each positive; the
    kernel's padding stays 0 as documented. A wrong take-back of the
    same-pid items would shift every rank of the query."""
    for seed in range(3):
        dist, pos, removed, chunk = random_own_chunk(seed)
        expected = naive_before(dist, pos, removed, chunk, tie_policy)
        assert (expected > 0).any() and (chunk.num_pos > 1).any()
        for dense_fraction in (0.0, 2.0):
            got = search_before(dist, chunk, tie_policy, dense_fraction)
            assert torch.equal(got, expected)
        monkeypatch.setattr(count_kernel, 'ENABLED', True)
        if not count_kernel.available():
            continue
        before, _, _ = kernel_counts(dist, chunk, tie_policy, 'cumsum', None,
                                     1, True)
        assert torch.equal(before, expected)
