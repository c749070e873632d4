"""CrossModalityIdentitySampler: spec mbn_vireid.md section 4, item 11."""
import logging

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from mmreid.datasets.samplers import (CrossModalityIdentitySampler,
                                      cross_modality_sampler,
                                      epoch_plan_sampler)
from mmreid.registry import DATA_SAMPLERS
from ..fixtures.records import RecordDataset


class FakeVIDataset(RecordDataset):
    """Records with pid and modality; some ids lack one modality."""

    def __init__(self, counts):
        # counts: {pid: (num_visible, num_infrared)}
        records = []
        for pid, (nv, ni) in counts.items():
            records += [dict(pid=pid, modality=0)] * nv
            records += [dict(pid=pid, modality=1)] * ni
        # Interleave, so nothing depends on the dataset order.
        super().__init__(records[::2] + records[1::2])


COUNTS = {pid: (3 + pid % 5, 1 + pid % 3) for pid in range(12)}
COUNTS[12] = (5, 0)  # visible only: never sampled


def build(monkeypatch, rank=0, world_size=1, counts=COUNTS, **kwargs):
    monkeypatch.setattr(epoch_plan_sampler, 'get_dist_info', lambda:
                        (rank, world_size))
    kwargs.setdefault('batch_size', 16)
    kwargs.setdefault('num_instances', 2)
    kwargs.setdefault('seed', 3)
    return CrossModalityIdentitySampler(FakeVIDataset(counts), **kwargs)


def batches_of(sampler):
    indices = list(sampler)
    assert len(indices) == len(sampler)
    bs = sampler.batch_size
    return [indices[i:i + bs] for i in range(0, len(indices), bs)]


def check_batch(batch, dataset, p, k):
    records = [dataset.get_data_info(i) for i in batch]
    vis, ir = records[:p * k], records[p * k:]
    assert [r['modality'] for r in vis] == [0] * (p * k)
    assert [r['modality'] for r in ir] == [1] * (p * k)
    # Aligned: item i of the IR block has the pid of item i of the VIS one.
    assert [r['pid'] for r in vis] == [r['pid'] for r in ir]
    pids = [r['pid'] for r in vis]
    groups = [pids[i:i + k] for i in range(0, p * k, k)]
    assert all(len(set(g)) == 1 for g in groups)
    assert len({g[0] for g in groups}) == p
    return {g[0] for g in groups}


def test_batches_are_p_ids_x_k_per_modality_aligned(monkeypatch):
    sampler = build(monkeypatch)
    p, k = 4, 2
    assert sampler.num_pids_per_batch == p
    assert 12 not in sampler.identities
    assert sampler.skipped_identities == 1
    seen = set()
    for batch in batches_of(sampler):
        seen |= check_batch(batch, sampler.dataset, p, k)
    assert 12 not in seen


def test_epoch_size_rule(monkeypatch):
    sampler = build(monkeypatch)
    dataset = sampler.dataset
    num_vis = sum(r['modality'] == 0 for r in dataset.records)
    num_ir = len(dataset) - num_vis
    # floor(max(#VIS, #IR) / (P * K)) + 1 steps.
    steps = max(num_vis, num_ir) // (4 * 2) + 1
    assert sampler.num_steps == steps
    assert len(sampler) == steps * 16
    assert len(batches_of(sampler)) == steps


def test_set_epoch_is_deterministic(monkeypatch):
    a = build(monkeypatch, seed=7)
    b = build(monkeypatch, seed=7)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b) != first
    a.set_epoch(0)
    assert list(a) == first
    assert list(build(monkeypatch, seed=8)) != first


def test_global_rng_untouched(monkeypatch):
    import numpy as np
    state = np.random.get_state()[1].copy()
    torch_state = torch.get_rng_state()
    list(build(monkeypatch))
    assert (np.random.get_state()[1] == state).all()
    assert torch.equal(torch.get_rng_state(), torch_state)


@pytest.mark.parametrize('world_size', [2, 3])
def test_distributed_ranks(monkeypatch, world_size):
    samplers = [
        build(
            monkeypatch,
            rank=r,
            world_size=world_size,
            batch_size=8,
            num_instances=2) for r in range(world_size)
    ]
    per_rank = [batches_of(s) for s in samplers]
    assert len({len(b) for b in per_rank}) == 1
    dataset = samplers[0].dataset
    for step in range(len(per_rank[0])):
        step_pids = []
        for batches in per_rank:
            # Every rank: both modalities in equal counts, whole groups.
            step_pids += sorted(check_batch(batches[step], dataset, 2, 2))
        assert len(set(step_pids)) == 2 * world_size
    # The global epoch size follows P * world_size.
    s = samplers[0]
    assert s.num_steps == s.num_images // (2 * world_size * 2) + 1


def test_errors_and_check_batch_size(monkeypatch):
    with pytest.raises(ValueError, match='multiple of 2 \\* num_instances'):
        build(monkeypatch, batch_size=12, num_instances=4)
    with pytest.raises(ValueError, match='distinct identities'):
        build(monkeypatch, world_size=4, batch_size=16, num_instances=2)
    sampler = build(monkeypatch)
    sampler.check_batch_size(16)
    with pytest.raises(ValueError, match='differs'):
        sampler.check_batch_size(8)
    bad = FakeVIDataset({0: (2, 2)})
    bad.records[0] = dict(pid=0)
    monkeypatch.setattr(epoch_plan_sampler, 'get_dist_info', lambda: (0, 1))
    with pytest.raises(KeyError, match="no 'modality'"):
        CrossModalityIdentitySampler(bad, batch_size=4, num_instances=2)


@pytest.mark.parametrize('modality', [-1, 2])
def test_a_modality_other_than_0_or_1_is_refused(modality):
    """Modality -1 (an 'unknown' marker) would index the infrared slot
    and be drawn as infrared; 2 has no slot at all."""
    dataset = FakeVIDataset({0: (2, 2), 1: (2, 2)})
    dataset.records[3] = dict(pid=1, modality=modality)
    with pytest.raises(
            ValueError,
            match=rf'^CrossModalityIdentitySampler: record 3 has modality '
            rf'{modality}, expected 0 \(visible\) or 1 \(infrared\)$'):
        CrossModalityIdentitySampler.load_modalities(dataset)


def test_default_draw_unchanged(monkeypatch):
    # The balanced draw index for index as before ``infrared_instances``
    # existed (recorded from that code): results of runs made with it stay
    # reproducible.
    sampler = build(monkeypatch)
    sampler.set_epoch(1)
    assert [int(i) for i in list(sampler)[:32]] == [
        21, 64, 69, 69, 6, 7, 57, 56, 22, 22, 72, 29, 50, 51, 59, 16, 18, 17,
        52, 53, 81, 80, 63, 20, 61, 19, 12, 12, 39, 39, 22, 22
    ]


def unbalanced_mix(batch, dataset, p, k):
    """Check one unbalanced batch; returns its infrared images per id."""
    records = [dataset.get_data_info(i) for i in batch]
    assert len(records) == 2 * p * k
    per_pid = {}
    for r in records:
        per_pid.setdefault(r['pid'], [0, 0])[r['modality']] += 1
    assert len(per_pid) == p
    mixes = {tuple(v) for v in per_pid.values()}
    assert len(mixes) == 1  # one mix for every identity of the batch
    num_vis, num_ir = mixes.pop()
    assert num_vis + num_ir == 2 * k and num_vis >= 1 and num_ir >= 1
    # Visible block first, then infrared (a layout detail, as balanced).
    modalities = [r['modality'] for r in records]
    assert modalities == [0] * (p * num_vis) + [1] * (p * num_ir)
    return num_ir


def test_unbalanced_batches(monkeypatch):
    p, k = 4, 3
    sampler = build(
        monkeypatch, batch_size=24, num_instances=k, infrared_instances=(1, 5))
    balanced = build(monkeypatch, batch_size=24, num_instances=k)
    assert len(sampler) == len(balanced)  # same epoch size
    mixes = []
    for epoch in range(4):
        sampler.set_epoch(epoch)
        mixes += [
            unbalanced_mix(b, sampler.dataset, p, k)
            for b in batches_of(sampler)
        ]
    assert set(mixes) <= set(range(1, 6))
    assert len(set(mixes)) >= 3  # the mix changes from batch to batch
    assert 12 not in {
        sampler.dataset.get_data_info(i)['pid']
        for i in list(sampler)
    }
    # Deterministic per (seed, epoch).
    again = build(
        monkeypatch, batch_size=24, num_instances=k, infrared_instances=(1, 5))
    again.set_epoch(3)
    assert list(again) == list(sampler)
    # A fixed mix: (k, k) is balanced in counts, per identity.
    fixed = build(
        monkeypatch, batch_size=24, num_instances=k, infrared_instances=(2, 2))
    assert {unbalanced_mix(b, fixed.dataset, p, k)
            for b in batches_of(fixed)} == {2}


def test_unbalanced_distributed_ranks(monkeypatch):
    world_size = 3
    samplers = [
        build(
            monkeypatch,
            rank=r,
            world_size=world_size,
            batch_size=8,
            num_instances=2,
            infrared_instances=(1, 3)) for r in range(world_size)
    ]
    per_rank = [batches_of(s) for s in samplers]
    assert len({len(b) for b in per_rank}) == 1
    dataset = samplers[0].dataset
    rank_mixes = set()
    for step in range(len(per_rank[0])):
        step_pids = set()
        mixes = []
        for batches in per_rank:
            mixes.append(unbalanced_mix(batches[step], dataset, 2, 2))
            step_pids |= {
                dataset.get_data_info(i)['pid']
                for i in batches[step]
            }
        assert len(step_pids) == 2 * world_size  # disjoint identities
        rank_mixes.add(tuple(mixes))
    # Each rank draws its own mix.
    assert any(len(set(m)) > 1 for m in rank_mixes)


@pytest.mark.parametrize('value', [(0, 2), (1, 4), (3, 2), (1, 2.5), 2,
                                   (1, 2, 3), (True, 2)])
def test_unbalanced_bad_range(monkeypatch, value):
    with pytest.raises(
            ValueError,
            match='infrared_instances must be None '
            r'or \(low, high\).*2 \* num_instances - 1 = 3'):
        build(monkeypatch, infrared_instances=value)


def test_registry_and_dataloader(monkeypatch):
    monkeypatch.setattr(epoch_plan_sampler, 'get_dist_info', lambda: (0, 1))
    dataset = FakeVIDataset(COUNTS)
    sampler = DATA_SAMPLERS.build(
        dict(
            type='CrossModalityIdentitySampler',
            dataset=dataset,
            batch_size=8,
            num_instances=2,
            seed=0))
    loader = DataLoader(dataset, batch_size=8, sampler=sampler, drop_last=True)
    batches = [b.tolist() for b in loader]
    assert len(batches) == sampler.num_steps
    for batch in batches:
        check_batch(batch, dataset, 2, 2)


def logged(monkeypatch):
    """Collect ``(message, level)`` of the sampler module's print_log."""
    messages = []
    monkeypatch.setattr(
        cross_modality_sampler,
        'print_log',
        lambda msg, logger=None, level=logging.INFO: messages.append(
            (msg, level)))
    return messages


def test_one_modality_identities_warn_naming_them(monkeypatch):
    # pid 12 visible only, pid 13 infrared only: never sampled, so their
    # classifier rows never train. This was one INFO line with a count.
    messages = logged(monkeypatch)
    counts = dict(COUNTS)
    counts[13] = (0, 3)
    sampler = build(monkeypatch, counts=counts)
    assert sampler.skipped_identities == 2
    assert sampler.skipped_pids == [12, 13]
    assert len(messages) == 1
    msg, level = messages[0]
    assert level == logging.WARNING
    assert '2 of 14 identities' in msg
    assert '12 (visible only)' in msg and '13 (infrared only)' in msg
    assert 'never sampled' in msg and 'classifier' in msg


def test_one_modality_warning_names_an_image(monkeypatch):
    # The labels are the training set's (relabelled): the warning also
    # names an image, so the user finds the identity to drop. It named
    # label 2 for the folder 0003 before.
    messages = logged(monkeypatch)
    monkeypatch.setattr(
        FakeVIDataset, 'get_data_info', lambda self, idx: dict(
            self.records[idx],
            img_path=f'Visible/{self.records[idx]["pid"] + 1:04d}/a.jpg'))
    build(monkeypatch)
    (msg, _), = messages
    assert '12 (visible only, e.g. Visible/0013/a.jpg)' in msg


def test_one_modality_warning_names_a_few(monkeypatch):
    messages = logged(monkeypatch)
    counts = dict(COUNTS)
    counts.update({pid: (2, 0) for pid in range(20, 30)})
    sampler = build(monkeypatch, counts=counts)
    assert sampler.skipped_pids == [12] + list(range(20, 30))
    (msg, level), = messages
    assert level == logging.WARNING
    assert '11 of 23 identities' in msg
    assert '12 (visible only), 20 (visible only)' in msg
    assert '23 (visible only), and 6 more' in msg
    assert '24 (visible only)' not in msg


def test_no_warning_when_every_identity_has_both(monkeypatch):
    messages = logged(monkeypatch)
    counts = {pid: c for pid, c in COUNTS.items() if pid != 12}
    sampler = build(monkeypatch, counts=counts)
    assert sampler.skipped_identities == 0 and sampler.skipped_pids == []
    assert messages == []


def test_unbalanced_draws_every_count_of_the_range(monkeypatch):
    # k is uniform on low..high, both ends included.
    sampler = build(
        monkeypatch, batch_size=24, num_instances=3, infrared_instances=(1, 5))
    mixes = set()
    for epoch in range(4):
        sampler.set_epoch(epoch)
        mixes |= {
            unbalanced_mix(b, sampler.dataset, 4, 3)
            for b in batches_of(sampler)
        }
    assert mixes == {1, 2, 3, 4, 5}


def test_one_modality_warning_counts_a_single_unnamed_identity(monkeypatch):
    messages = logged(monkeypatch)
    counts = dict(COUNTS)
    counts.update({pid: (2, 0) for pid in range(20, 25)})
    build(monkeypatch, counts=counts)
    (msg, _), = messages
    assert '6 of 18 identities' in msg
    assert '23 (visible only), and 1 more.' in msg


@pytest.mark.parametrize('modality', [0.5, True, '1', None])
def test_a_modality_that_is_not_an_integer_is_refused(modality):
    """A custom dataset's record with modality 0.5 was drawn as visible
    (``int()`` truncated it), True and '1' as infrared."""
    dataset = FakeVIDataset({0: (2, 2), 1: (2, 2)})
    dataset.records[3] = dict(pid=1, modality=modality)
    error = KeyError if modality is None else ValueError
    with pytest.raises(error, match='record 3 of FakeVIDataset'):
        CrossModalityIdentitySampler.load_modalities(dataset)


def test_an_integral_modality_of_another_type_is_taken():
    dataset = FakeVIDataset({0: (2, 2), 1: (2, 2)})
    plain = CrossModalityIdentitySampler.load_modalities(dataset)
    for record in dataset.records:
        record['modality'] = np.int64(
            record['modality']) if record['pid'] else float(record['modality'])
    assert repr(
        CrossModalityIdentitySampler.load_modalities(dataset)) == repr(plain)


def test_too_few_identities_counts_those_with_both_modalities(monkeypatch):
    """Only identities with both modalities are drawn (12 of COUNTS' 13),
    so a step of P = 13 is refused when built, not at the first
    iteration. The largest batch that fits is 12 identities x (K visible
    + K infrared) = 48 on one GPU, 6 x 4 = 24 on each of two."""
    with pytest.raises(ValueError) as err:
        build(monkeypatch, batch_size=2 * 13 * 2, num_instances=2)
    message = str(err.value)
    assert 'needs 13 distinct identities with both modalities' in message
    assert 'has only 12' in message
    assert 'to at most 48' in message
    assert ('train_dataloader.sampler.batch_size=48 '
            'train_dataloader.batch_size=48') in message
    build(monkeypatch, batch_size=48, num_instances=2)  # the fix fits
    with pytest.raises(ValueError, match='sampler.batch_size=24 '):
        build(monkeypatch, rank=1, world_size=2, batch_size=28)
    build(monkeypatch, rank=1, world_size=2, batch_size=24)
