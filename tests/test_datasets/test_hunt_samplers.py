"""Wrong-number hunt: the training samplers and what an epoch is.

Every count below is recomputed from the definition (the sampler
docstrings, ``/work/shared/specs/mbn_vireid.md`` section 4, the textbook
P x K sampler of Hermans et al. 2017) by enumerating what the sampler
yields, never read back from the sampler's own attributes.
"""
import numpy as np
import pytest

from mmreid.datasets.samplers import (CrossModalityIdentitySampler,
                                      DomainIdentitySampler, IdentitySampler,
                                      epoch_plan_sampler)
from ..fixtures.records import RecordDataset


def _set_world(monkeypatch, rank, world_size):
    monkeypatch.setattr(epoch_plan_sampler, 'get_dist_info', lambda:
                        (rank, world_size))


def _pk_records(num_ids=12, per_id=5):
    """Two sources, ``num_ids`` identities each with ``per_id`` images of
    both modalities, in a shuffled order."""
    records = []
    for dsetid in range(2):
        for i in range(num_ids):
            pid = dsetid * num_ids + i
            for j in range(per_id):
                records.append(dict(pid=pid, dsetid=dsetid, modality=j % 2))
    order = np.random.default_rng(0).permutation(len(records))
    return [records[i] for i in order]


def _build(monkeypatch, kind, seed):
    _set_world(monkeypatch, 0, 1)
    dataset = RecordDataset(_pk_records())
    if kind == 'IdentitySampler':
        return IdentitySampler(
            dataset, batch_size=8, num_instances=2, seed=seed)
    if kind == 'DomainIdentitySampler':
        return DomainIdentitySampler(
            dataset, batch_size=8, num_instances=2, seed=seed)
    return CrossModalityIdentitySampler(
        dataset, batch_size=8, num_instances=2, seed=seed)


@pytest.mark.parametrize('kind', [
    'IdentitySampler', 'DomainIdentitySampler', 'CrossModalityIdentitySampler'
])
def test_run_seeds_apart_by_2_to_the_32_draw_other_batch_plans(
        monkeypatch, kind):
    """Runs of different seeds draw different batch orders in every epoch.

    A user runs a seed study with ``train_dataloader.sampler.seed`` set to
    ``s`` and to ``s + 2**32`` (e.g. seeds drawn as 64-bit integers). The
    identity samplers seed the epoch's plan with
    ``numpy.random.default_rng([seed, epoch])``; numpy splits each int of
    that list into 32-bit words and treats trailing zero words as absent,
    so ``[s + 2**32, 0]`` (words ``s, 1, 0``) and ``[s, 1]`` (words
    ``s, 1``) are the same seed: epoch 0 of the second run is batch for
    batch epoch 1 of the first. The two runs are then not independent
    replicates and a seed spread computed from them is too small.

    Right: the plan is a function of ``(seed, epoch)`` (the sampler
    docstrings), and two different ``(seed, epoch)`` pairs must give
    independent draws, as mmreid already guarantees for the per-sample
    augmentation seeds of the same two runs
    (``test_run_seeds_apart_by_2_to_the_32_draw_other_seeds``). Two
    independent draws of this plan coincide with negligible probability.
    """
    first = _build(monkeypatch, kind, seed=5)
    first.set_epoch(1)
    second = _build(monkeypatch, kind, seed=5 + 2**32)
    second.set_epoch(0)
    plan_first = [int(i) for i in first]
    plan_second = [int(i) for i in second]
    assert len(plan_first) == len(plan_second)
    assert plan_first != plan_second, (
        f'{kind}: seed 5 + 2**32 at epoch 0 draws the batches of seed 5 '
        'at epoch 1')


def _vi_records():
    """Visible-infrared records where the images of the identities that
    lack one modality decide the AGW epoch length.

    Six identities with 5 visible and 2 infrared images each (30 visible,
    12 infrared) and two visible-only identities of 3 images each: 36
    visible images in all.
    """
    records = []
    for pid in range(6):
        records += [dict(pid=pid, modality=0)] * 5
        records += [dict(pid=pid, modality=1)] * 2
    for pid in (6, 7):
        records += [dict(pid=pid, modality=0)] * 3
    order = np.random.default_rng(1).permutation(len(records))
    return [records[i] for i in order]


@pytest.mark.parametrize('world_size', [1, 2])
def test_cross_modality_epoch_counts_every_training_image(
        monkeypatch, world_size):
    """The AGW epoch length counts all training images of a modality.

    A VI-ReID user trains with ``CrossModalityIdentitySampler`` on a set
    where some identities have visible images only (they are never
    sampled). The spec (mbn_vireid.md section 4, item 1, after AGW's
    ``utils.IdentitySampler``) defines the epoch as
    ``floor(N / (P * K)) + 1`` steps with ``N = max(#VIS, #IR)`` training
    images, all of them; the sampler docstring adds the world size,
    ``N // (P * K * world_size) + 1``. Here ``N`` is 36 visible images;
    without the 6 images of the visible-only identities it would be 30, a
    shorter epoch (P = 2, K = 2: 10 steps instead of 8 on one process, 5
    instead of 4 on two), so the learning-rate schedule in epochs would
    cover other iterations than the config's.
    """
    records = _vi_records()
    num_vis = sum(r['modality'] == 0 for r in records)
    num_ir = sum(r['modality'] == 1 for r in records)
    p, k = 2, 2
    steps = max(num_vis, num_ir) // (p * k * world_size) + 1
    both = max(
        sum(r['modality'] == 0 and r['pid'] < 6 for r in records), num_ir)
    assert both // (p * k * world_size) + 1 != steps  # the case matters
    for rank in range(world_size):
        _set_world(monkeypatch, rank, world_size)
        sampler = CrossModalityIdentitySampler(
            RecordDataset(records),
            batch_size=2 * p * k,
            num_instances=k,
            seed=0)
        drawn = [int(i) for i in sampler]
        # What the log counts (len(dataloader)) is what is drawn.
        assert len(sampler) == len(drawn)
        assert len(drawn) == steps * 2 * p * k
        # Never an identity that lacks a modality.
        assert {records[i]['pid'] for i in drawn} <= set(range(6))


def test_identity_sampler_epoch_is_p_by_k_of_every_group(monkeypatch):
    """Each rank's epoch is ``T`` whole P x K batches that cover every image.

    A user trains on 3 processes with the default ``remainder='complete'``:
    the docstring defines ``ceil(n / K)`` groups per identity,
    ``T = max(ceil(G / (P * world_size)), max_i ceil(n_i / K))`` steps per
    epoch on every rank (the log's ``[i/T]``), and every image at least
    once per epoch over the ranks. Counted here from the dataset alone,
    and checked on the indices the three ranks yield.
    """
    counts = [1, 3, 4, 5, 9, 2, 7, 4, 6, 1, 8, 3, 2, 5]
    pids = np.repeat(np.arange(len(counts)), counts)
    pids = np.random.default_rng(2).permutation(pids).tolist()
    records = [dict(pid=p) for p in pids]
    k, p, world_size = 2, 3, 3
    groups = sum(-(-c // k) for c in counts)
    steps = max(-(-groups // (p * world_size)), max(-(-c // k)
                                                    for c in counts))
    drawn = []
    for rank in range(world_size):
        _set_world(monkeypatch, rank, world_size)
        sampler = IdentitySampler(
            RecordDataset(records), batch_size=p * k, num_instances=k, seed=4)
        sampler.set_epoch(2)
        indices = np.asarray([int(i) for i in sampler])
        assert len(indices) == len(sampler) == steps * p * k
        drawn.append(indices.reshape(steps, p, k))
    plan = np.stack(drawn, 1)  # step, rank, identity, image
    labels = np.asarray(pids)[plan]
    assert (labels == labels[..., :1]).all(), 'a group mixes identities'
    for step in labels[..., 0].reshape(steps, -1):
        assert len(set(step.tolist())) == p * world_size
    assert set(plan.reshape(-1).tolist()) == set(range(len(pids)))
