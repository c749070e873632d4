import numpy as np
import pytest
import torch

from mmreid.evaluation.functional import query_expansion


def naive_expansion(query, gallery, k, alpha):
    """One query at a time, with Python loops over the neighbours."""
    query = query / np.linalg.norm(query, axis=1, keepdims=True)
    gallery = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    out = []
    for q in query:
        sims = [float(q @ g) for g in gallery]
        order = sorted(range(len(gallery)), key=lambda i: -sims[i])[:k]
        total = q.copy()
        for i in order:
            total = total + max(sims[i], 0.0)**alpha * gallery[i]
        out.append(total / np.linalg.norm(total))
    return np.stack(out)


@pytest.mark.parametrize('k,alpha', [(1, 0.0), (3, 0.0), (5, 3.0), (2, 0.5)])
def test_matches_naive_loop(k, alpha):
    rng = np.random.default_rng(k)
    query, gallery = rng.normal(size=(7, 5)), rng.normal(size=(20, 5))
    expected = naive_expansion(query, gallery, k, alpha)
    for budget in (128, 1e-4):
        result = query_expansion(
            torch.from_numpy(query),
            gallery,
            k=k,
            alpha=alpha,
            memory_budget_mb=budget)
        np.testing.assert_allclose(result.numpy(), expected, atol=1e-12)


def test_plain_average_and_edge_cases():
    query = torch.tensor([[1.0, 0.0]])
    gallery = torch.tensor([[0.0, 2.0], [3.0, 3.0], [-1.0, 0.0]])
    # alpha = 0: mean direction of (1, 0) and the nearest (1, 1)/sqrt(2).
    result = query_expansion(query, gallery, k=1, alpha=0)
    expected = torch.tensor([1 + 2**-0.5, 2**-0.5])
    torch.testing.assert_close(result[0], expected / expected.norm())
    # k = 0 only normalises; float32 in, float32 out.
    result = query_expansion(query * 3, gallery, k=0)
    assert result.dtype == torch.float32
    torch.testing.assert_close(result, query)
    # An opposite neighbour gets weight 0 for alpha > 0.
    result = query_expansion(query, gallery[2:], k=1, alpha=1)
    torch.testing.assert_close(result, query)
    with pytest.raises(ValueError, match='k must'):
        query_expansion(query, gallery, k=4)
    with pytest.raises(ValueError, match='alpha'):
        query_expansion(query, gallery, k=1, alpha=-1)


def test_a_query_cancelled_by_its_neighbours_is_refused():
    """With alpha = 0 every neighbour weighs 1 (AQE), an opposite one too:
    q + g = 0 has no direction, and the zero query it gave tied every
    distance silently."""
    query = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    gallery = torch.tensor([[-2.0, 0.0]])
    for dtype in (torch.float32, torch.float64):
        with pytest.raises(
                ValueError,
                match=r'query_expansion\(k=1, alpha=0\): query 1 cancels'):
            query_expansion(query.to(dtype), gallery.to(dtype), k=1, alpha=0)
    # Query 0 is orthogonal to the neighbour: (1, 1) / sqrt(2), fine.
    result = query_expansion(query[:1], gallery, k=1, alpha=0)
    torch.testing.assert_close(result, torch.tensor([[-1.0, 1.0]]) / 2**0.5)
    # alpha > 0 gives the opposite neighbour weight 0.
    result = query_expansion(query, gallery, k=1, alpha=1)
    torch.testing.assert_close(result, query)


@pytest.mark.parametrize('alpha', [3.0, 0.5])
def test_a_negative_neighbour_among_the_k_gets_no_weight(alpha):
    """alpha-QE: q' = normalize(q + sum max(cos(q, g_i), 0) ** alpha * g_i).
    Of the two neighbours (cosines 0.8 and -0.6), only the first counts;
    a fractional alpha stays finite."""
    query = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    gallery = torch.tensor([[0.8, 0.6], [-0.6, 0.8]], dtype=torch.float64)
    expected = query[0] + 0.8**alpha * gallery[0]
    result = query_expansion(query, gallery, k=2, alpha=alpha)
    assert torch.isfinite(result).all()
    torch.testing.assert_close(result[0], expected / expected.norm())


def test_a_negative_k_is_refused():
    """k counts gallery neighbours, so it lies in [0, G]; a negative k is
    refused with the range, not left to fail inside topk."""
    query = torch.tensor([[1.0, 0.0]])
    gallery = torch.tensor([[0.0, 2.0], [3.0, 3.0], [-1.0, 0.0]])
    with pytest.raises(ValueError, match=r'k must lie in \[0, 3\], got -1'):
        query_expansion(query, gallery, k=-1)


@pytest.mark.parametrize('dtype, tiny', [(torch.float32, 1e-9),
                                         (torch.float64, 1e-17)])
def test_a_sum_within_rounding_of_zero_is_refused(dtype, tiny):
    """A query and its neighbour that cancel up to a few rounding errors
    (not exactly) leave no direction either: normalising the remainder
    gave an arbitrary query, here (0, 1). A remainder well above rounding
    is a direction and is kept."""
    query = torch.tensor([[1.0, 0.0]], dtype=dtype)
    gallery = torch.tensor([[-1.0, tiny]], dtype=dtype)
    with pytest.raises(
            ValueError,
            match=r'query_expansion\(k=1, alpha=0\): query 0 cancels'):
        query_expansion(query, gallery, k=1, alpha=0)
    gallery = torch.tensor([[-1.0, 0.1]], dtype=dtype)
    result = query_expansion(query, gallery, k=1, alpha=0)
    expected = query[0] + gallery[0] / gallery[0].norm()
    torch.testing.assert_close(result[0], expected / expected.norm())


def test_a_cancelled_query_is_named_by_its_index_in_a_later_chunk():
    """With a small memory budget the queries are expanded a chunk at a
    time; the refusal names the query by its index in the whole query
    set, not in its chunk."""
    query = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    gallery = torch.tensor([[-2.0, 0.0]])
    with pytest.raises(
            ValueError,
            match=r'query_expansion\(k=1, alpha=0\): query 2 cancels'):
        query_expansion(query, gallery, k=1, alpha=0, memory_budget_mb=1e-9)
