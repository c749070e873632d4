import math
import re

import numpy as np
import pytest
from mmengine.runner import Runner
from torch.utils.data import DataLoader

from mmreid.datasets.samplers import epoch_plan_sampler
from mmreid.datasets.samplers.identity_sampler import IdentitySampler
from mmreid.registry import DATA_SAMPLERS


class FakePidDataset:
    """Just pids: sample ``i`` has pid ``pids[i]``."""

    def __init__(self, pids):
        self.pids = list(pids)

    def __len__(self):
        return len(self.pids)

    def get_pids(self):
        return list(self.pids)

    def __getitem__(self, idx):
        return idx


class FakeInfoDataset:
    """No get_pids: pids only through get_data_info, as a concat wrapper."""

    def __init__(self, pids):
        self.pids = list(pids)

    def __len__(self):
        return len(self.pids)

    def get_data_info(self, idx):
        return dict(pid=self.pids[idx], dsetid=0)


def make_pids(counts, seed=0):
    """Shuffled dataset order with ``counts[p]`` images of pid ``p``."""
    pids = np.repeat(np.arange(len(counts)), counts)
    return np.random.default_rng(seed).permutation(pids).tolist()


# Identities with fewer, exactly and more than K=4 images.
COUNTS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 13, 4, 4, 2, 1, 17]


def batches_of(sampler):
    indices = list(sampler)
    assert len(indices) == len(sampler)
    assert len(indices) % sampler.batch_size == 0
    return np.asarray(indices).reshape(-1, sampler.batch_size)


def check_pk(batch, pids, num_instances):
    """Return the batch's pids after checking P whole groups of K."""
    groups = np.asarray(pids)[batch].reshape(-1, num_instances)
    assert (groups == groups[:, :1]).all(), 'a group mixes identities'
    batch_pids = groups[:, 0].tolist()
    assert len(set(batch_pids)) == len(batch_pids), 'repeated pid'
    return batch_pids


def build(monkeypatch, pids, rank=0, world_size=1, **kwargs):
    monkeypatch.setattr(epoch_plan_sampler, 'get_dist_info', lambda:
                        (rank, world_size))
    kwargs.setdefault('seed', 0)
    return IdentitySampler(FakePidDataset(pids), **kwargs)


def test_every_batch_is_p_groups_of_k(monkeypatch):
    pids = make_pids(COUNTS)
    sampler = build(monkeypatch, pids, batch_size=16, num_instances=4)
    for batch in batches_of(sampler):
        assert len(check_pk(batch, pids, 4)) == 4


def test_len_is_exact_and_epoch_covers_every_image(monkeypatch):
    pids = make_pids(COUNTS)
    sampler = build(monkeypatch, pids, batch_size=16, num_instances=4)
    groups = sum(math.ceil(c / 4) for c in COUNTS)  # 32
    assert sampler.num_groups == groups
    assert sampler.num_steps == math.ceil(groups / 4)  # 8 steps of 4 ids
    assert len(sampler) == 8 * 16
    for epoch in range(3):
        sampler.set_epoch(epoch)
        indices = list(sampler)
        assert len(indices) == len(sampler)
        assert set(indices) == set(range(len(pids)))


def test_drop_remainder_cuts_groups_as_the_reference_sampler(monkeypatch):
    # torchreid's and BoT's RandomIdentitySampler: an identity of n images
    # gives n // K groups of distinct images (one group, completed with
    # repeats, when n < K); its n mod K other images sit the epoch out.
    pids = make_pids(COUNTS)
    sampler = build(
        monkeypatch, pids, batch_size=16, num_instances=4, remainder='drop')
    groups = sum(max(1, c // 4) for c in COUNTS)  # 20, against 32
    assert sampler.num_groups == groups
    assert len(sampler) == max(math.ceil(groups / 4), 17 // 4) * 16
    rng = np.random.default_rng(0)
    for pid, count in enumerate(COUNTS):
        indices = np.flatnonzero(np.asarray(pids) == pid)
        cut = sampler._make_groups(indices, rng)
        assert cut.shape == (max(1, count // 4), 4)
        if count >= 4:
            assert len(set(cut.ravel().tolist())) == cut.size  # distinct
    for batch in batches_of(sampler):
        assert len(check_pk(batch, pids, 4)) == 4
    with pytest.raises(
            ValueError,
            match="remainder must be one of "
            r"\('complete', 'drop'\), got 'floor'"):
        build(monkeypatch, pids, batch_size=16, remainder='floor')


def test_small_identities_are_sampled_with_replacement(monkeypatch):
    counts = [1, 2, 6, 6, 6]
    pids = make_pids(counts)
    # 8 groups in 3 steps of 3 ids: one extra (padding) group per epoch,
    # built like the others.
    sampler = build(monkeypatch, pids, batch_size=12, num_instances=4)
    (single, ) = [i for i, p in enumerate(pids) if p == 0]
    pair = {i for i, p in enumerate(pids) if p == 1}
    for epoch in range(10):
        sampler.set_epoch(epoch)
        for batch in batches_of(sampler):
            for group in batch.reshape(-1, 4):
                if pids[group[0]] == 0:
                    assert group.tolist() == [single] * 4
                elif pids[group[0]] == 1:
                    assert set(group.tolist()) == pair
                else:
                    # Enough images: no duplicate inside a group.
                    assert len(set(group.tolist())) == 4


def test_identity_with_many_images_sets_the_epoch_length(monkeypatch):
    # pid 0 needs 10 groups and may appear once per step: >= 10 steps even
    # though 14 groups would fit in 7 steps of 2 ids.
    pids = make_pids([40, 2, 2, 2, 2])
    sampler = build(monkeypatch, pids, batch_size=8, num_instances=4)
    assert sampler.num_steps == 10 and len(sampler) == 80
    batches = batches_of(sampler)
    assert len(batches) == 10
    for batch in batches:
        check_pk(batch, pids, 4)
    assert set(batches.ravel()) == set(range(len(pids)))


def test_filler_groups_take_random_places_in_their_step(monkeypatch):
    """A step short of identities is completed with groups of identities
    planned in other steps; the step's groups are then shuffled, so that
    no rank of a distributed run gets the fillers more often than another.
    Five identities of K images, P = 4: two steps, five planned groups
    and three fillers, so three identities are in both steps. Shuffled, a
    step's last place holds one of those in 3 / 4 of the steps (0.81 here,
    over 60 epochs); with the fillers left last, in every step."""
    pids = make_pids([4] * 5)
    sampler = build(monkeypatch, pids, batch_size=16, num_instances=4)
    assert sampler.num_steps == 2
    in_both = []
    for epoch in range(60):
        sampler.set_epoch(epoch)
        steps = [
            np.asarray(pids)[batch].reshape(4, 4)[:, 0]
            for batch in batches_of(sampler)
        ]
        for step, other in ((steps[0], steps[1]), (steps[1], steps[0])):
            in_both.append(step[-1] in other)
    assert np.mean(in_both) < 0.9


def test_same_seed_and_epoch_reproduce(monkeypatch):
    pids = make_pids(COUNTS)
    first = build(monkeypatch, pids, batch_size=16, seed=7)
    second = build(monkeypatch, pids, batch_size=16, seed=7)
    other_seed = build(monkeypatch, pids, batch_size=16, seed=8)
    first.set_epoch(3)
    second.set_epoch(3)
    other_seed.set_epoch(3)
    epoch3 = list(first)
    assert epoch3 == list(second) == list(first)
    assert epoch3 != list(other_seed)
    first.set_epoch(4)
    assert list(first) != epoch3


def test_global_rng_is_untouched(monkeypatch):
    sampler = build(monkeypatch, make_pids(COUNTS), batch_size=16, seed=None)
    np.random.seed(123)
    state = np.random.get_state()[1].copy()
    list(sampler)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


@pytest.mark.parametrize('world_size', [2, 3])
def test_distributed_ranks_never_share_an_identity(monkeypatch, world_size):
    counts = [1, 3, 4, 5, 8, 9, 12, 2, 2, 6, 7, 30, 4, 4, 5, 1, 1, 2, 3, 9]
    pids = make_pids(counts)
    samplers = [
        build(
            monkeypatch,
            pids,
            rank=r,
            world_size=world_size,
            batch_size=12,
            num_instances=3,
            seed=5) for r in range(world_size)
    ]
    for epoch in (0, 1):
        for s in samplers:
            s.set_epoch(epoch)
        per_rank = [batches_of(s) for s in samplers]
        assert len({len(s) for s in samplers}) == 1
        assert len({len(b) for b in per_rank}) == 1
        assert len(per_rank[0]) == samplers[0].num_steps
        covered = set()
        for step in range(len(per_rank[0])):
            step_pids = []
            for batches in per_rank:
                step_pids += check_pk(batches[step], pids, 3)
                covered.update(batches[step].tolist())
            assert len(set(step_pids)) == 4 * world_size
        # Together the ranks see every image.
        assert covered == set(range(len(pids)))
    # Ranks take different slices, not copies.
    assert list(samplers[0]) != list(samplers[1])


def test_dataloader_batches(monkeypatch):
    pids = make_pids(COUNTS)
    sampler = build(monkeypatch, pids, batch_size=8, num_instances=2)
    loader = DataLoader(
        FakePidDataset(pids), batch_size=8, sampler=sampler, drop_last=True)
    assert len(loader) == sampler.num_steps
    for batch in loader:
        assert len(check_pk(batch.numpy(), pids, 2)) == 4
    sampler.check_batch_size(loader.batch_size)
    with pytest.raises(
            ValueError,
            match=r'\(16\).*\(8\).*--cfg-options '
            r'train_dataloader.sampler.batch_size=16, or '
            r'train_dataloader.batch_size=8'):
        sampler.check_batch_size(16)


def test_built_from_registry_with_data_info_fallback(monkeypatch):
    monkeypatch.setattr(epoch_plan_sampler, 'get_dist_info', lambda: (0, 1))
    pids = make_pids(COUNTS)
    sampler = DATA_SAMPLERS.build(
        dict(type='IdentitySampler', batch_size=8, num_instances=4),
        default_args=dict(dataset=FakeInfoDataset(pids), seed=0))
    assert isinstance(sampler, IdentitySampler)
    for batch in batches_of(sampler):
        check_pk(batch, pids, 4)


def test_mmengine_runner_builds_the_dataloader(monkeypatch):
    monkeypatch.setattr(epoch_plan_sampler, 'get_dist_info', lambda: (0, 1))
    pids = make_pids(COUNTS)
    loader = Runner.build_dataloader(
        dict(
            dataset=FakePidDataset(pids),
            sampler=dict(
                type='mmreid.IdentitySampler', batch_size=8, num_instances=4),
            batch_size=8,
            num_workers=0,
            collate_fn=dict(type='default_collate')),
        seed=3)
    assert loader.sampler.seed == 3
    assert len(loader) == loader.sampler.num_steps
    for batch in loader:
        check_pk(batch.numpy(), pids, 4)


def test_numpy_and_python_pids_are_one_identity(monkeypatch):
    pids = [np.int64(0), 0, 0, 0, 1, 1, 1, 1]
    sampler = build(monkeypatch, pids, batch_size=4, num_instances=2)
    assert len(sampler.identities) == 2


def test_bad_batch_size_names_both_numbers(monkeypatch):
    with pytest.raises(ValueError, match=r'batch_size \(10\).*\(4\)'):
        build(monkeypatch, make_pids(COUNTS), batch_size=10)
    with pytest.raises(ValueError, match='positive'):
        build(monkeypatch, make_pids(COUNTS), batch_size=8, num_instances=0)


def test_too_few_identities(monkeypatch):
    pids = make_pids([4, 4, 4])
    with pytest.raises(ValueError, match=re.escape('only 3')):
        build(monkeypatch, pids, batch_size=16, num_instances=4)
    pids = make_pids([4] * 6)
    build(monkeypatch, pids, batch_size=16, num_instances=4)  # P=4 <= 6
    with pytest.raises(ValueError, match='world_size 2'):
        build(
            monkeypatch,
            pids,
            rank=1,
            world_size=2,
            batch_size=16,
            num_instances=4)


def test_too_few_identities_names_the_sampler_key(monkeypatch):
    """The sampler has its own batch_size: the message names that key
    (with the dataloader's), and the largest value that fits: 15 ids, K=4
    -> P <= 15 per step -> 60 images on one GPU, 7 x 4 = 28 on each of
    two."""
    pids = make_pids([4] * 15)
    with pytest.raises(ValueError) as err:
        build(monkeypatch, pids, batch_size=64, num_instances=4)
    message = str(err.value)
    assert 'train_dataloader.sampler.batch_size 64' in message
    assert ('train_dataloader.sampler.batch_size=60 '
            'train_dataloader.batch_size=60') in message
    build(monkeypatch, pids, batch_size=60, num_instances=4)  # the fix fits
    with pytest.raises(ValueError, match='sampler.batch_size=28 '):
        build(
            monkeypatch,
            pids,
            rank=1,
            world_size=2,
            batch_size=32,
            num_instances=4)
    build(monkeypatch, pids, rank=1, world_size=2, batch_size=28)


def test_dataset_without_pids():
    with pytest.raises(TypeError, match='get_pids'):
        IdentitySampler(list(range(8)), batch_size=4, seed=0)


def test_pids_of_another_length_than_the_dataset_are_refused(monkeypatch):
    """get_pids() shorter than the dataset (a stale cache) would leave
    the samples past its end out of every epoch."""

    class ShortPids(FakePidDataset):

        def __len__(self):
            return len(self.pids) + 8

    monkeypatch.setattr(epoch_plan_sampler, 'get_dist_info', lambda: (0, 1))
    with pytest.raises(
            ValueError, match='^read 16 pids from a dataset of 24 samples$'):
        IdentitySampler(
            ShortPids(make_pids([4, 4, 4, 4])),
            batch_size=8,
            num_instances=4,
            seed=0)


# ---------------------------------------------------------------------------
# Per-sample augmentation seeds
# ---------------------------------------------------------------------------
def test_indices_carry_seeds_of_seed_epoch_rank_and_position(monkeypatch):
    from mmreid.datasets.samplers import SeededIndex, sample_seeds
    pids = make_pids(COUNTS)
    sampler = build(
        monkeypatch, pids, rank=1, world_size=2, batch_size=8, num_instances=2)
    sampler.set_epoch(3)
    indices = list(sampler)
    assert all(isinstance(i, SeededIndex) for i in indices)
    # The indices are the plan's, unchanged.
    plan = sampler._plan()[:, 1].reshape(-1)
    np.testing.assert_array_equal(np.asarray(indices), plan)
    seeds = [i.seed for i in indices]
    # The i-th seed is a pure function of (seed, epoch, rank, i): the same
    # when the epoch is drawn again by a new sampler (a resumed run).
    assert seeds == sample_seeds(0, 3, 1, len(indices)).tolist()
    again = build(
        monkeypatch, pids, rank=1, world_size=2, batch_size=8, num_instances=2)
    again.set_epoch(3)
    assert [i.seed for i in again] == seeds
    # Positions, epochs, ranks and run seeds get different seeds, also
    # where the PK plan repeats an index within the epoch.
    assert len(set(seeds)) == len(seeds)
    assert len(set(np.asarray(indices).tolist())) < len(indices)
    others = [
        sample_seeds(0, 4, 1, len(indices)),
        sample_seeds(0, 3, 0, len(indices)),
        sample_seeds(1, 3, 1, len(indices))
    ]
    for other in others:
        assert not set(other.tolist()) & set(seeds)
    # Different from the [seed, epoch] entropy of the sampler's own plan.
    plan_words = np.random.SeedSequence([0, 3]).generate_state(4, np.uint64)
    assert not set(plan_words.tolist()) & set(seeds)


def test_seeded_index_is_an_int_that_keeps_its_seed_when_pickled():
    import pickle

    from mmreid.datasets.samplers import SeededIndex
    index = SeededIndex(7, 2**64 - 1)
    assert index == 7 and [10, 11, 12, 13, 14, 15, 16, 17][index] == 17
    copy = pickle.loads(pickle.dumps([index]))[0]
    assert type(copy) is SeededIndex
    assert copy == 7 and copy.seed == 2**64 - 1


def test_run_seeds_apart_by_2_to_the_32_draw_other_seeds():
    from mmreid.datasets.samplers import sample_seeds
    assert not set(sample_seeds(5, 0, 0, 8).tolist()) & set(
        sample_seeds(5 + 2**32, 0, 0, 8).tolist())


class InMemoryAugmentedSet:
    """Stand-in for an mmengine dataset: tiny images through a pipeline."""

    def __init__(self, pids):
        from mmengine.dataset import Compose

        from mmreid.datasets.transforms import (PadRandomCrop,
                                                Random2DTranslation,
                                                RandomChannel, ReIDColorJitter,
                                                ReIDRandomErasing,
                                                ReIDRandomFlip)
        self.pids = list(pids)
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 256, (len(pids), 16, 8, 3), np.uint8)
        self.pipeline = Compose([
            Random2DTranslation(size=(16, 8)),
            ReIDRandomFlip(prob=0.5),
            PadRandomCrop(padding=2),
            ReIDColorJitter(brightness=0.2, contrast=0.15, hue=0.05, prob=0.8),
            RandomChannel(prob=0.5),
            ReIDRandomErasing(prob=0.5),
        ])

    def __len__(self):
        return len(self.pids)

    def get_pids(self):
        return list(self.pids)

    def __getitem__(self, idx):
        # As mmengine's BaseDataset.get_data_info: the index object itself
        # becomes results['sample_idx'].
        results = dict(img=self.images[idx].copy(), sample_idx=idx)
        return self.pipeline(results)['img']


def augmented_epochs(dataset, epochs, num_workers, stop_after=None):
    """Augmented images of each epoch, as a run's dataloader makes them.

    The global RNGs are seeded as a (re)started run seeds them, and the
    workers as mmengine's default ``worker_init_fn`` does. With
    ``stop_after`` the last epoch is abandoned after that many batches.
    """
    import random
    from functools import partial

    from mmengine.dataset.utils import worker_init_fn
    random.seed(0)
    np.random.seed(0)
    sampler = IdentitySampler(dataset, batch_size=8, num_instances=2, seed=0)
    loader = DataLoader(
        dataset,
        batch_size=8,
        sampler=sampler,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        worker_init_fn=partial(
            worker_init_fn, num_workers=num_workers, rank=0, seed=0))
    images = {}
    for epoch in epochs:
        sampler.set_epoch(epoch)
        batches = []
        for batch in loader:
            batches.append(batch.numpy())
            if epoch == epochs[-1] and len(batches) == stop_after:
                break
        images[epoch] = np.concatenate(batches)
    return images, sampler


@pytest.mark.parametrize('num_workers', [0, 2])
def test_resumed_epochs_draw_the_same_augmentations(num_workers):
    dataset = InMemoryAugmentedSet(make_pids([3, 2, 4, 1, 2, 3, 2, 5]))
    straight, sampler = augmented_epochs(dataset, [0, 1, 2], num_workers)
    assert len(straight[1]) == len(sampler)
    # Killed halfway through epoch 1, then resumed from the checkpoint of
    # epoch 0: a fresh process, sampler and workers replay epoch 1.
    augmented_epochs(dataset, [0, 1], num_workers, stop_after=2)
    resumed, _ = augmented_epochs(dataset, [1, 2], num_workers)
    for epoch in (1, 2):
        np.testing.assert_array_equal(resumed[epoch], straight[epoch])
    # The augmentation does not depend on the number of workers either.
    single, _ = augmented_epochs(dataset, [0, 1, 2], 0)
    for epoch in (0, 1, 2):
        np.testing.assert_array_equal(single[epoch], straight[epoch])
    # The images are augmented, differently in each epoch and at each
    # position, also where an index comes twice in an epoch.
    views = {}
    for epoch in (1, 2):
        sampler.set_epoch(epoch)
        order = np.asarray(list(sampler))
        assert not np.array_equal(straight[epoch], dataset.images[order])
        views[epoch] = {}
        repeats = []
        for pos, idx in enumerate(order.tolist()):
            if idx in views[epoch]:
                repeats.append(
                    np.array_equal(straight[epoch][pos], views[epoch][idx]))
            views[epoch].setdefault(idx, straight[epoch][pos])
        assert repeats and not all(repeats)
    assert not all(
        np.array_equal(views[1][idx], views[2][idx]) for idx in views[1])


@pytest.mark.parametrize('sampler_type', [
    'IdentitySampler', 'DomainIdentitySampler', 'CrossModalityIdentitySampler'
])
def test_every_shipped_training_sampler_gives_sample_seeds(sampler_type):
    from mmreid.datasets.samplers import SeededIndex, sample_seeds

    class Records:

        def __init__(self):
            # pid, domain and modality for a dozen identities.
            self.records = [
                dict(pid=p, dsetid=p % 2, modality=m) for p in range(12)
                for m in (0, 1) for _ in range(2 + p % 3)
            ]

        def __len__(self):
            return len(self.records)

        def get_data_info(self, idx):
            return dict(self.records[idx])

    sampler = DATA_SAMPLERS.build(
        dict(
            type=sampler_type,
            dataset=Records(),
            batch_size=8,
            num_instances=2,
            seed=5))
    assert sampler.yields_sample_seeds
    sampler.set_epoch(2)
    indices = list(sampler)
    assert all(type(i) is SeededIndex for i in indices)
    assert [i.seed for i in indices] == sample_seeds(5, 2, 0,
                                                     len(indices)).tolist()


def test_datasets_hand_the_sample_seed_to_the_transforms(tmp_path):
    """mmengine's get_data_info passes the index object on as sample_idx."""
    import cv2

    from mmreid.datasets import ConcatReIDDataset, Market1501
    from mmreid.datasets.samplers import SeededIndex
    root = tmp_path / 'market1501'
    rng = np.random.default_rng(0)
    names = {
        'bounding_box_train': [
            f'{pid:04d}_c{cam}s1_000{pid}{cam}1_01.jpg' for pid in (2, 7, 9)
            for cam in (1, 2)
        ],
        'query': ['0002_c1s1_000311_00.jpg'],
        'bounding_box_test': ['0002_c3s1_000411_01.jpg'],
    }
    for folder, files in names.items():
        (root / folder).mkdir(parents=True)
        for name in files:
            cv2.imwrite(
                str(root / folder / name),
                rng.integers(0, 256, (16, 8, 3), dtype=np.uint8))
    pipeline = [
        dict(type='ReIDLoadImageFromFile'),
        dict(type='ReIDRandomFlip', prob=0.5),
        dict(type='PadRandomCrop', padding=3),
        dict(type='ReIDRandomErasing', prob=0.5),
        dict(type='PackReIDInputs'),
    ]
    market = Market1501(data_root=str(root), pipeline=pipeline)
    concat = ConcatReIDDataset(
        datasets=[dict(type='Market1501', data_root=str(root))],
        pipeline=pipeline)
    for dataset in (market, concat):
        assert len(dataset) == 6
        views = []
        for global_seed in (0, 1):
            np.random.seed(global_seed)
            views.append([
                dataset[SeededIndex(i, seed)]['inputs'].numpy()
                for i in range(6) for seed in (10, 11, 12)
            ])
        # The seed decides, not the global RNG; different seeds of one
        # image draw different augmentations.
        for a, b in zip(*views):
            np.testing.assert_array_equal(a, b)
        assert len({v.tobytes() for v in views[0]}) > 6


def test_seed_none_takes_the_seed_broadcast_from_rank_0(monkeypatch):
    """seed=None: one seed is drawn on rank 0 and broadcast to all ranks
    (mmengine's ``sync_random_seed``), so every rank builds one plan; a
    seed of the sampler's own would give each rank its own plan."""
    monkeypatch.setattr(epoch_plan_sampler, 'sync_random_seed', lambda: 4242)
    pids = make_pids(COUNTS)
    drawn = build(monkeypatch, pids, batch_size=16, seed=None)
    assert drawn.seed == 4242
    assert list(drawn) == list(
        build(monkeypatch, pids, batch_size=16, seed=4242))


def test_every_pair_of_identities_meets_in_some_batch(monkeypatch):
    """The identities of a batch are drawn at random every epoch: over
    some epochs, every two identities share a batch (the triplet loss
    mines its negatives within a batch). Eight identities of K images, P =
    4: two batches an epoch, so a given pair meets in 3 / 7 of the epochs.
    Dealt to the steps in one fixed order, two identities dealt one after
    the other fell in different steps of every epoch and never met."""
    pids = make_pids([4] * 8)
    sampler = build(monkeypatch, pids, batch_size=16, num_instances=4)
    met = set()
    for epoch in range(30):
        sampler.set_epoch(epoch)
        for batch in batches_of(sampler):
            batch_pids = sorted(check_pk(batch, pids, 4))
            met |= {(a, b) for a in batch_pids for b in batch_pids if a < b}
    assert met == {(a, b) for a in range(8) for b in range(8) if a < b}


def test_drop_remainder_sits_out_another_subset_each_epoch(monkeypatch):
    """remainder='drop': the ``n mod K`` images left over sit the epoch
    out, another random subset each epoch, so every image is trained on
    over a few epochs. Four identities of 6 images, K = P = 4: one step
    of four groups, no filler; 2 images of each identity sit out every
    epoch, the same 2 if the cut did not follow the epoch's shuffle."""
    pids = make_pids([6] * 4)
    sampler = build(
        monkeypatch, pids, batch_size=16, num_instances=4, remainder='drop')
    seen = set()
    for epoch in range(20):
        sampler.set_epoch(epoch)
        indices = [int(i) for i in sampler]
        assert len(indices) == 16 and len(set(indices)) == 16
        seen |= set(indices)
    assert seen == set(range(len(pids)))


def test_an_identity_is_cut_into_other_groups_each_epoch(monkeypatch):
    """Each identity's images are shuffled before being cut into groups of
    K, so which images share a group changes from epoch to epoch. Four
    identities of 8 images, K = P = 4: two groups per identity, no
    filler."""
    pids = make_pids([8] * 4)
    sampler = build(monkeypatch, pids, batch_size=16, num_instances=4)
    groups_of_pid0 = set()
    for epoch in range(10):
        sampler.set_epoch(epoch)
        for group in batches_of(sampler).reshape(-1, 4):
            if pids[group[0]] == 0:
                groups_of_pid0.add(frozenset(group.tolist()))
    assert len(groups_of_pid0) > 2


def test_sample_seeds_use_all_64_bits():
    """A sample's seed is drawn from ``[0, 2**64)``: seeds of 32 bits
    would collide within an epoch of a large training set (about one pair
    per epoch of 10**5 samples), two positions then drawing the same
    augmentation."""
    from mmreid.datasets.samplers import sample_seeds
    seeds = sample_seeds(0, 0, 0, 64)
    assert seeds.dtype == np.uint64
    assert (seeds >= 2**32).sum() > 32


def test_pids_longer_than_the_dataset_are_refused(monkeypatch):
    """get_pids() longer than the dataset (a cache of a larger split)
    cannot be matched to the samples either: refused, not cut to length."""

    class LongPids(FakePidDataset):

        def __len__(self):
            return len(self.pids) - 4

    monkeypatch.setattr(epoch_plan_sampler, 'get_dist_info', lambda: (0, 1))
    with pytest.raises(
            ValueError, match='^read 20 pids from a dataset of 16 samples$'):
        IdentitySampler(
            LongPids(make_pids([4] * 5)),
            batch_size=8,
            num_instances=4,
            seed=0)
