"""EpochPlanSampler: the one constructor prelude of the identity samplers."""
import sys

import numpy as np
import pytest

from mmreid.datasets.samplers import (CrossModalityIdentitySampler,
                                      DomainIdentitySampler, EpochPlanSampler,
                                      IdentitySampler, epoch_plan_sampler,
                                      identity_sampler)


class TwoStepSampler(EpochPlanSampler):
    """The smallest subclass: a fixed plan of two steps."""

    def __init__(self, dataset, batch_size, num_instances=2, seed=None):
        super().__init__(dataset, batch_size, num_instances, seed)
        self.identities = list(range(len(dataset)))
        self._check_identity_count(len(self.identities))
        self.num_steps = 2
        self.num_samples = self.num_steps * batch_size

    def _plan(self):
        total = self.num_steps * self.world_size * self.batch_size
        return np.arange(total).reshape(self.num_steps, self.world_size, -1)


def test_every_identity_sampler_shares_the_base_constructor():
    for cls in (IdentitySampler, DomainIdentitySampler,
                CrossModalityIdentitySampler):
        assert issubclass(cls, EpochPlanSampler)
        # No subclass repeats the prelude: the base's __init__ runs it.
        assert 'get_dist_info' not in vars(sys.modules[cls.__module__])
    # The old import path keeps working for one release.
    assert identity_sampler.EpochPlanSampler is EpochPlanSampler


def test_base_prelude_sets_the_shared_state(monkeypatch):
    monkeypatch.setattr(epoch_plan_sampler, 'get_dist_info', lambda: (1, 2))
    sampler = TwoStepSampler(list(range(8)), batch_size=4, seed=7)
    assert (sampler.rank, sampler.world_size) == (1, 2)
    assert sampler.num_pids_per_batch == 2
    assert sampler.pids_per_step == 4
    assert (sampler.seed, sampler.epoch) == (7, 0)
    assert len(sampler) == 8
    # Rank 1 takes the second slice of every step.
    assert [int(i) for i in sampler] == [4, 5, 6, 7, 12, 13, 14, 15]


def test_base_prelude_errors_name_the_subclass(monkeypatch):
    monkeypatch.setattr(epoch_plan_sampler, 'get_dist_info', lambda: (0, 2))
    with pytest.raises(
            ValueError,
            match='TwoStepSampler: num_instances must be a '
            'positive int, got 0'):
        TwoStepSampler(list(range(8)), batch_size=4, num_instances=0)
    # bool is an int; True is not a count of images.
    for sampler in (TwoStepSampler, IdentitySampler, DomainIdentitySampler,
                    CrossModalityIdentitySampler):
        with pytest.raises(
                ValueError,
                match=f'{sampler.__name__}: num_instances must be a '
                'positive int, got True'):
            sampler(list(range(8)), batch_size=2, num_instances=True)
        with pytest.raises(
                ValueError,
                match=f'{sampler.__name__}: batch_size must be a '
                'positive int, got True'):
            sampler(list(range(8)), batch_size=True, num_instances=1)
    with pytest.raises(
            ValueError,
            match=r'TwoStepSampler: batch_size \(5\) must be a '
            r'multiple of num_instances \(2\)'):
        TwoStepSampler(list(range(8)), batch_size=5)
    with pytest.raises(
            ValueError,
            match=r'TwoStepSampler: a step needs 4 distinct '
            r'identities .* world_size 2\), but the dataset has '
            r'only 3'):
        TwoStepSampler(list(range(3)), batch_size=4, seed=0)


def test_cross_modality_layout_counts_two_images_per_instance(monkeypatch):
    monkeypatch.setattr(epoch_plan_sampler, 'get_dist_info', lambda: (0, 1))
    with pytest.raises(
            ValueError,
            match=r'CrossModalityIdentitySampler: batch_size '
            r'\(12\) must be a multiple of 2 \* num_instances '
            r'\(8\): a batch is P identities x K=4 visible'):
        CrossModalityIdentitySampler([], batch_size=12, num_instances=4)


@pytest.mark.parametrize('seed', ['7', 7.0, True])
def test_a_seed_that_is_not_an_int_is_refused_when_built(monkeypatch, seed):
    """A string or float seed built and failed at the first iteration in
    the plan's arithmetic, with torch's or numpy's message."""
    monkeypatch.setattr(epoch_plan_sampler, 'get_dist_info', lambda: (0, 1))
    with pytest.raises(
            TypeError,
            match=r'TwoStepSampler: seed must be an int or None, got '
            r'.*\(train_dataloader.sampler.seed\)'):
        TwoStepSampler(list(range(8)), batch_size=4, seed=seed)
    assert TwoStepSampler(
        list(range(8)), batch_size=4, seed=np.int64(7)).seed == 7


class NoPidDataset:

    def __init__(self, records):
        self.records = records

    def __len__(self):
        return len(self.records)

    def get_data_info(self, idx):
        return dict(self.records[idx])


@pytest.mark.parametrize('record', [dict(img_path='a.jpg'), dict(pid=None)])
def test_a_record_without_an_identity_is_named(record):
    """A missing pid was a bare KeyError; pid=None was drawn as an
    identity of its own."""
    records = [dict(pid=1), dict(pid=1), record, dict(pid=2)]
    with pytest.raises(
            KeyError,
            match=r"IdentitySampler: record 2 of NoPidDataset has "
            r"(no 'pid' \(keys: \['img_path'\]\)|pid None);"):
        IdentitySampler.load_identities(NoPidDataset(records))


def test_a_numpy_integer_seed_draws_the_plan_of_the_same_int(monkeypatch):
    """A seed read from a numpy array (np.int64) is taken as the int: the
    plan's ``seed % 2**64`` overflowed on an np.int64 at the first
    iteration."""
    monkeypatch.setattr(epoch_plan_sampler, 'get_dist_info', lambda: (0, 1))
    dataset = NoPidDataset([dict(pid=i // 4) for i in range(24)])
    numpy_seed = IdentitySampler(
        dataset, batch_size=8, num_instances=4, seed=np.int64(7))
    int_seed = IdentitySampler(dataset, batch_size=8, num_instances=4, seed=7)
    assert type(numpy_seed.seed) is int
    assert list(numpy_seed) == list(int_seed)
    assert [i.seed for i in numpy_seed] == [i.seed for i in int_seed]


def test_a_none_pid_from_get_pids_is_named():
    """mmreid's datasets and ConcatReIDDataset have get_pids(), so the
    refusal of a record without an identity above only covered datasets
    without it."""

    class Pids:

        def __len__(self):
            return 4

        def get_pids(self):
            return [1, 1, None, 2]

    with pytest.raises((KeyError, ValueError), match='record 2 of Pids'):
        IdentitySampler.load_identities(Pids())
