import numpy as np
import pytest

from mmreid.datasets.samplers import DomainIdentitySampler, epoch_plan_sampler
from mmreid.registry import DATA_SAMPLERS


class FakeMultiSourceDataset:
    """Records with ``pid`` and ``dsetid`` only, as a ConcatReIDDataset."""

    def __init__(self, pids, dsetids):
        self.records = [dict(pid=p, dsetid=d) for p, d in zip(pids, dsetids)]

    def __len__(self):
        return len(self.records)

    def get_data_info(self, idx):
        return dict(self.records[idx])


def make_dataset(counts_per_domain, seed=0, local_pids=False):
    """``counts_per_domain[d][i]`` images of identity i of domain d, in a
    shuffled order. Global pids by default; ``local_pids`` reuses 0..n-1
    in every domain (keys must still be (dsetid, pid))."""
    pids, dsetids = [], []
    offset = 0
    for dsetid, counts in enumerate(counts_per_domain):
        for i, count in enumerate(counts):
            pids += [i if local_pids else offset + i] * count
            dsetids += [dsetid] * count
        offset += len(counts)
    order = np.random.default_rng(seed).permutation(len(pids))
    return FakeMultiSourceDataset(
        np.asarray(pids)[order].tolist(),
        np.asarray(dsetids)[order].tolist())


# Three domains of different sizes; identities with fewer, exactly and more
# than K=2 images.
DOMAINS = [
    [1, 2, 3, 4, 5, 6, 7, 2, 2, 9],
    [2, 2, 1, 3, 8, 2, 4, 2, 2],
    [3, 1, 2, 2, 5, 2, 2, 6],
]


def build(monkeypatch, dataset, rank=0, world_size=1, **kwargs):
    monkeypatch.setattr(epoch_plan_sampler, 'get_dist_info', lambda:
                        (rank, world_size))
    kwargs.setdefault('seed', 0)
    kwargs.setdefault('batch_size', 8)
    kwargs.setdefault('num_instances', 2)
    return DomainIdentitySampler(dataset, **kwargs)


def batch_keys(dataset, batch, num_instances):
    """(dsetid, pid) of each group of a batch, after checking the groups."""
    keys = [(dataset.records[i]['dsetid'], dataset.records[i]['pid'])
            for i in batch]
    groups = [
        keys[i:i + num_instances] for i in range(0, len(keys), num_instances)
    ]
    assert all(len(set(g)) == 1 for g in groups), 'a group mixes identities'
    group_keys = [g[0] for g in groups]
    assert len(set(group_keys)) == len(group_keys), 'repeated identity'
    return group_keys


def rank_batches(sampler):
    indices = list(sampler)
    assert len(indices) == len(sampler)
    return np.asarray(indices).reshape(-1, sampler.batch_size)


def test_single_mode_batches_come_from_one_domain(monkeypatch):
    dataset = make_dataset(DOMAINS)
    sampler = build(monkeypatch, dataset, mode='single')
    batches = rank_batches(sampler)
    domains_seen = []
    for batch in batches:
        keys = batch_keys(dataset, batch, 2)
        assert len(keys) == 4
        assert len({d for d, _ in keys}) == 1
        domains_seen.append(keys[0][0])
    # Each domain has its own steps: ceil(G_d / P) (here > max groups).
    groups = [sum(-(-c // 2) for c in counts) for counts in DOMAINS]
    expected = [-(-g // 4) for g in groups]
    assert [domains_seen.count(d) for d in range(3)] == expected
    assert len(batches) == sampler.num_steps == sum(expected)
    # Every image appears at least once per epoch; steps of the domains
    # are interleaved.
    assert set(batches.reshape(-1).tolist()) == set(range(len(dataset)))
    assert domains_seen != sorted(domains_seen)


def test_balanced_mode_batches_mix_domains_equally(monkeypatch):
    dataset = make_dataset(DOMAINS)
    sampler = build(monkeypatch, dataset, mode='balanced')
    # The domains are sorted, whatever order they first appear in.
    records = sorted(dataset.records, key=lambda r: -r['dsetid'])
    backwards = FakeMultiSourceDataset([r['pid'] for r in records],
                                       [r['dsetid'] for r in records])
    assert build(monkeypatch, backwards, mode='balanced').domains == [0, 1, 2]
    batches = rank_batches(sampler)
    totals = np.zeros(3, dtype=int)
    for batch in batches:
        keys = batch_keys(dataset, batch, 2)
        per_domain = np.bincount([d for d, _ in keys], minlength=3)
        # P=4 over 3 domains: 1 or 2 identities of each.
        assert sorted(per_domain.tolist()) == [1, 1, 2]
        totals += per_domain
    # The extra slot rotates over the domains.
    assert totals.max() - totals.min() <= 1
    assert set(batches.reshape(-1).tolist()) == set(range(len(dataset)))
    # The epoch is as short as the largest domain's share allows.
    groups_0 = sum(-(-c // 2) for c in DOMAINS[0])
    assert totals[0] >= groups_0
    assert len(batches) * 4 < 3 * groups_0 + 3 * 4


@pytest.mark.parametrize('mode', ['single', 'balanced'])
@pytest.mark.parametrize('world_size', [2, 3])
def test_distributed_ranks(monkeypatch, mode, world_size):
    # Enough identities per domain for P * world_size distinct ones.
    domains = [[(i % 5) + 1 for i in range(14)],
               [(i % 3) + 2 for i in range(13)], [3] * 12]
    dataset = make_dataset(domains)
    samplers = [
        build(
            monkeypatch,
            dataset,
            rank=r,
            world_size=world_size,
            mode=mode,
            batch_size=8,
            num_instances=2,
            seed=5) for r in range(world_size)
    ]
    per_rank = [rank_batches(s) for s in samplers]
    assert len({len(b) for b in per_rank}) == 1, 'unequal batch counts'
    seen = set()
    for step in range(len(per_rank[0])):
        step_keys = []
        for r in range(world_size):
            keys = batch_keys(dataset, per_rank[r][step], 2)
            domains_in_batch = [d for d, _ in keys]
            if mode == 'single':
                assert len(set(domains_in_batch)) == 1
            else:
                assert sorted(np.bincount(domains_in_batch,
                                          minlength=3)) == [1, 1, 2]
            step_keys += keys
            seen.update(per_rank[r][step].tolist())
        assert len(set(step_keys)) == 4 * world_size, 'shared identity'
    assert seen == set(range(len(dataset)))


def test_same_seed_and_epoch_reproduce(monkeypatch):
    dataset = make_dataset(DOMAINS)
    for mode in ('single', 'balanced'):
        a = build(monkeypatch, dataset, mode=mode, seed=3)
        b = build(monkeypatch, dataset, mode=mode, seed=3)
        assert list(a) == list(b)
        a.set_epoch(1)
        assert list(a) != list(b)
        b.set_epoch(1)
        assert list(a) == list(b)
        assert len(a) == len(b)  # the length never depends on the epoch
        c = build(monkeypatch, dataset, mode=mode, seed=4)
        assert list(c) != list(b)


def test_equal_pids_of_different_sources_stay_apart(monkeypatch):
    dataset = make_dataset(DOMAINS, local_pids=True)
    sampler = build(monkeypatch, dataset, mode='single')
    assert len(sampler.identities) == sum(len(c) for c in DOMAINS)
    for batch in rank_batches(sampler):
        keys = batch_keys(dataset, batch, 2)
        assert len({d for d, _ in keys}) == 1


def test_registry_and_errors(monkeypatch):
    dataset = make_dataset(DOMAINS)
    monkeypatch.setattr(epoch_plan_sampler, 'get_dist_info', lambda: (0, 1))
    sampler = DATA_SAMPLERS.build(
        dict(
            type='DomainIdentitySampler',
            dataset=dataset,
            batch_size=8,
            num_instances=2,
            mode='balanced',
            seed=0))
    assert isinstance(sampler, DomainIdentitySampler)
    assert "mode='balanced'" in repr(sampler)
    with pytest.raises(ValueError, match='mode must be one of'):
        build(monkeypatch, dataset, mode='mixed')
    with pytest.raises(ValueError, match=r'P=2 .* < 3 domains'):
        build(monkeypatch, dataset, mode='balanced', batch_size=4)
    # Domain 2 has 8 identities; a single-domain step needs 9.
    with pytest.raises(ValueError, match='domain 2 has 8 identities'):
        build(
            monkeypatch, dataset, mode='single', batch_size=9, num_instances=1)
    no_dsetid = make_dataset(DOMAINS)
    for record in no_dsetid.records:
        record.pop('dsetid')
    with pytest.raises(ValueError, match='no "dsetid"'):
        build(monkeypatch, no_dsetid)


def test_single_mode_steps_per_domain(monkeypatch):
    """``T_d = max(ceil(G_d / (P * world_size)), max_i ceil(n_i / K))``:
    a domain with one identity of many images gets a step per group, and
    in a distributed run a step takes P groups on every rank."""
    # Domain 0: 20 images of one identity (10 groups of K=2) and three of
    # one image: G_0 = 13, T_0 = max(ceil(13 / 4), 10) = 10. Domain 1:
    # 8 identities of two images: G_1 = 8, T_1 = 2.
    dataset = make_dataset([[20, 1, 1, 1], [2] * 8])
    sampler = build(monkeypatch, dataset, mode='single')
    assert sampler.num_steps == 12 and len(sampler) == 12 * 8
    many = [i for i, r in enumerate(dataset.records) if r['pid'] == 0]
    batches = rank_batches(sampler)
    for batch in batches:
        assert len({d for d, _ in batch_keys(dataset, batch, 2)}) == 1
    assert sum(bool(set(b) & set(many)) for b in batches) == 10
    assert set(batches.reshape(-1).tolist()) == set(range(len(dataset)))
    # Two ranks, P=4: 8 groups a step. Domain 0: 10 identities of three
    # images (G_0 = 20, T_0 = 3); domain 1: 9 of two (G_1 = 9, T_1 = 2).
    dataset = make_dataset([[3] * 10, [2] * 9])
    for rank in (0, 1):
        sampler = build(
            monkeypatch, dataset, rank=rank, world_size=2, mode='single')
        assert sampler.num_steps == 5 and len(sampler) == 5 * 8
        assert len(rank_batches(sampler)) == 5


def test_dsetids_of_another_length_than_the_dataset_are_refused(monkeypatch):
    """Samples past the end of a short get_dsetids() would never be
    drawn."""

    class ShortDsetids(FakeMultiSourceDataset):

        def get_dsetids(self):
            return [r['dsetid'] for r in self.records][:-1]

    dataset = make_dataset(DOMAINS)
    short = ShortDsetids([r['pid'] for r in dataset.records],
                         [r['dsetid'] for r in dataset.records])
    with pytest.raises(
            ValueError, match='^read 89 dsetids from a dataset of 90 '
            'samples$'):
        build(monkeypatch, short)


@pytest.mark.parametrize('dsetid', [1.7, True, '1'])
def test_a_source_that_is_not_an_integer_is_refused(monkeypatch, dsetid):
    """dsetid 1.7 was merged with source 1 (``int()`` truncated it)."""
    dataset = make_dataset(DOMAINS)
    dataset.records[5]['dsetid'] = dsetid
    with pytest.raises(
            ValueError,
            match=r'sample 5 of FakeMultiSourceDataset has dsetid=.*not an '
            'integer'):
        build(monkeypatch, dataset)


def test_mode_defaults_to_single(monkeypatch):
    """Built without ``mode``, every batch is drawn from one domain."""
    dataset = make_dataset(DOMAINS)
    monkeypatch.setattr(epoch_plan_sampler, 'get_dist_info', lambda: (0, 1))
    sampler = DomainIdentitySampler(
        dataset, batch_size=8, num_instances=2, seed=0)
    assert sampler.mode == 'single'
    for batch in rank_batches(sampler):
        assert len({d for d, _ in batch_keys(dataset, batch, 2)}) == 1


def test_balanced_mode_accepts_one_identity_per_domain(monkeypatch):
    """P equal to the number of domains is the least P of mode='balanced':
    every batch then holds one identity of each domain."""
    dataset = make_dataset(DOMAINS)
    sampler = build(monkeypatch, dataset, mode='balanced', batch_size=6)
    assert sampler.num_pids_per_batch == 3
    batches = rank_batches(sampler)
    for batch in batches:
        keys = batch_keys(dataset, batch, 2)
        assert sorted(d for d, _ in keys) == [0, 1, 2]
    assert set(batches.reshape(-1).tolist()) == set(range(len(dataset)))


def test_drop_remainder_reaches_the_domain_sampler(monkeypatch):
    """remainder='drop' cuts ``max(1, n // K)`` groups per identity, as in
    IdentitySampler; mode='single' then has ``T_d = max(ceil(G_d / P),
    max_i g_i)`` steps per domain (12 here, against 14 with
    'complete')."""
    dataset = make_dataset(DOMAINS)
    sampler = build(monkeypatch, dataset, mode='single', remainder='drop')
    steps = 0
    for counts in DOMAINS:
        groups = [max(1, c // 2) for c in counts]
        steps += max(-(-sum(groups) // 4), max(groups))
    assert sampler.num_steps == steps == 12
    assert len(sampler) == 12 * 8
    assert len(rank_batches(sampler)) == 12
    with pytest.raises(ValueError, match="remainder must be one of"):
        build(monkeypatch, dataset, remainder='floor')


def test_filler_groups_go_to_every_rank_alike(monkeypatch):
    """A step short of planned groups is completed with groups of
    identities planned in another step; the ranks must share these fillers
    alike. One domain of five identities of K images, two ranks of P = 2:
    two steps (3 + 2 planned groups, 1 + 2 fillers), so three identities
    are in both steps and fill 6 of the 8 places of an epoch. With the
    fillers dealt at random each rank holds 3 of them on average (3.04
    and 2.96 here, over 100 epochs); left to the last places of a step,
    rank 1 would get every filler (3.73 against 2.27)."""
    dataset = make_dataset([[2] * 5])
    samplers = [
        build(monkeypatch, dataset, rank=r, world_size=2, batch_size=4)
        for r in (0, 1)
    ]
    assert samplers[0].num_steps == 2
    in_both_steps = np.zeros(2)
    for epoch in range(100):
        per_rank = []
        for sampler in samplers:
            sampler.set_epoch(epoch)
            per_rank.append([
                batch_keys(dataset, batch, 2)
                for batch in rank_batches(sampler)
            ])
        steps = [set(per_rank[0][t] + per_rank[1][t]) for t in (0, 1)]
        for rank, batches in enumerate(per_rank):
            in_both_steps[rank] += sum(key in steps[0] and key in steps[1]
                                       for batch in batches for key in batch)
    mean = in_both_steps / 100
    assert abs(mean[0] - mean[1]) < 0.5, mean
