"""The base of the identity samplers: an index plan per (seed, epoch)."""
import numbers
from typing import Iterator, Optional, Sized

import numpy as np
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Sampler

from .sample_seed import seeded_indices


def lower_batch_size_text(fits: int = 0) -> str:
    """How to lower an identity sampler's batch size, in words.

    The sampler has its own ``batch_size``, which the dataloader's must
    equal: lowering ``train_dataloader.batch_size`` alone changes nothing
    here (and the two would then differ).

    Args:
        fits (int): The largest batch size that would fit, 0 if unknown
            or if none does with this number of GPUs.

    Returns:
        str: The keys to set, with ``fits`` (or ``B``) as their value.
    """
    value = fits if fits else 'B'
    at_most = f' to at most {fits}' if fits else ''
    return (f"lower the sampler's own batch size{at_most}, and the "
            "dataloader's with it: --cfg-options "
            f'train_dataloader.sampler.batch_size={value} '
            f'train_dataloader.batch_size={value}, or use fewer GPUs')


def plan_rng(seed: int, epoch: int) -> np.random.Generator:
    """The generator of the index plan of ``(seed, epoch)``.

    numpy reads a list seed as its ints' 32-bit words with trailing zero
    words ignored, so the plain ``[seed, epoch]`` made seed ``s + e * 2**32``
    at epoch 0 the stream of seed ``s`` at epoch ``e``: two runs of a seed
    study shared an epoch's batches. A seed in [0, 2**32) keeps that
    entropy (its plans are unchanged); any other seed is taken modulo
    2**64 as two words, followed by the epoch and a final 1, a list no
    other ``(seed, epoch)`` gives.

    Args:
        seed (int): The sampler's seed, any int.
        epoch (int): The epoch, >= 0.

    Returns:
        np.random.Generator: The plan's generator.
    """
    if 0 <= seed < 1 << 32:
        return np.random.default_rng([seed, epoch])
    seed %= 1 << 64
    return np.random.default_rng(
        [seed & 0xFFFFFFFF, seed >> 32, epoch, 1])


class EpochPlanSampler(Sampler):
    """Base of the identity samplers: an index plan per (seed, epoch).

    The constructor checks the batch layout and sets what every identity
    sampler shares: ``dataset``, ``rank``, ``world_size``, ``batch_size``,
    ``num_instances``, ``num_pids_per_batch`` (P), ``pids_per_step``
    (``P * world_size``), ``seed`` (drawn on rank 0 and broadcast when
    None) and ``epoch``. A batch holds P identities x
    ``images_per_instance * num_instances`` images (1 for a PK batch, 2
    for K visible + K infrared images). A subclass then reads its
    identities, calls :meth:`_check_identity_count`, sets
    ``identities``, ``num_steps`` and ``num_samples`` and implements
    ``_plan()``, an array of shape (num_steps, world_size, ...) whose
    ``[:, rank]`` entries flattened in order are the rank's indices (whole
    batches, one step after another).

    Every index comes with its sample's augmentation seed (a
    :class:`~mmreid.datasets.samplers.sample_seed.SeededIndex`), a function
    of ``(seed, epoch, rank, position)`` only, so the augmentations of an
    epoch are the same whether the run was resumed or not and whatever the
    number of dataloader workers.

    Args:
        dataset (Sized): The training set.
        batch_size (int): Images per batch per GPU; the dataloader's
            ``batch_size``.
        num_instances (int): K, images per identity (per modality) in a
            batch.
        seed (int, optional): Seed shared by all ranks. None draws one on
            rank 0 and broadcasts it.
    """

    #: The indices carry per-sample augmentation seeds.
    yields_sample_seeds = True
    #: Images of one identity in a batch, in units of ``num_instances``.
    images_per_instance = 1

    def __init__(self,
                 dataset: Sized,
                 batch_size: int,
                 num_instances: int = 4,
                 seed: Optional[int] = None) -> None:
        name = type(self).__name__
        for key, value in (('batch_size', batch_size), ('num_instances',
                                                        num_instances)):
            # bool is an int: True would be a batch or a group of one.
            is_int = isinstance(value, int) and not isinstance(value, bool)
            if not is_int or value < 1:
                raise ValueError(f'{name}: {key} must be a positive int, '
                                 f'got {value!r}')
        per_identity = self.images_per_instance * num_instances
        if batch_size % per_identity != 0:
            raise ValueError(
                f'{name}: batch_size ({batch_size}) must be a multiple of '
                f'{self._per_identity_text()} ({per_identity}): a batch is '
                f'P identities x {self._layout_text(num_instances)}')
        rank, world_size = get_dist_info()
        self.rank = rank
        self.world_size = world_size
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.num_pids_per_batch = batch_size // per_identity
        self.pids_per_step = self.num_pids_per_batch * world_size
        if seed is None:
            seed = sync_random_seed()
        elif isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise TypeError(f'{name}: seed must be an int or None, got '
                            f'{seed!r} (train_dataloader.sampler.seed)')
        self.seed = int(seed)
        self.epoch = 0

    def _per_identity_text(self) -> str:
        """``num_instances`` scaled as in the batch-size rule, in words."""
        if self.images_per_instance == 1:
            return 'num_instances'
        return f'{self.images_per_instance} * num_instances'

    def _layout_text(self, num_instances: int) -> str:
        """What one identity contributes to a batch, in words."""
        return f'K={num_instances} images'

    def _check_identity_count(self,
                              num_identities: int,
                              kind: str = 'distinct identities') -> None:
        """Raise unless one step can take ``P * world_size`` identities.

        Args:
            num_identities (int): Identities the sampler can draw from.
            kind (str): How they are named in the message.
        """
        if num_identities >= self.pids_per_step:
            return
        divisor = f'num_instances {self.num_instances}'
        if self.images_per_instance != 1:
            divisor = f'({self.images_per_instance} x {divisor})'
        fits = num_identities // self.world_size * self.images_per_identity
        raise ValueError(
            f'{type(self).__name__}: a step needs {self.pids_per_step} '
            f'{kind} (P={self.num_pids_per_batch} per batch = '
            f'train_dataloader.sampler.batch_size {self.batch_size} / '
            f'{divisor}, x world_size {self.world_size}), but the dataset '
            f'has only {num_identities}; ' + lower_batch_size_text(fits))

    def _plan(self) -> np.ndarray:
        raise NotImplementedError

    def __iter__(self) -> Iterator[int]:
        """The indices of this rank, batch after batch, with their seeds."""
        indices = self._plan()[:, self.rank].reshape(-1)
        return iter(seeded_indices(indices, self.seed, self.epoch, self.rank))

    def __len__(self) -> int:
        """The number of indices this rank yields per epoch."""
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; the plan is a function of ``(seed, epoch)``.

        Args:
            epoch (int): Epoch number.
        """
        self.epoch = epoch

    @property
    def images_per_identity(self) -> int:
        """Images of each identity in every batch (K, or 2K for K visible
        + K infrared)."""
        return self.images_per_instance * self.num_instances

    def check_batch_size(self, batch_size: int) -> None:
        """Raise if the dataloader's batch size differs from the sampler's.

        A mismatch silently breaks the batch structure (batches would mix
        the identity groups of different steps), so call this with
        ``dataloader.batch_size`` once the dataloader is built
        (``TrainSetupCheckHook`` does).
        """
        name = type(self).__name__
        if batch_size != self.batch_size:
            raise ValueError(
                f'the dataloader batch_size ({batch_size}) differs from '
                f'{name} batch_size ({self.batch_size}); set both to one '
                f'value, e.g. --cfg-options '
                f'train_dataloader.sampler.batch_size={batch_size}, or '
                f'train_dataloader.batch_size={self.batch_size}')

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(batch_size={self.batch_size}, '
                f'num_instances={self.num_instances}, seed={self.seed}, '
                f'identities={len(self.identities)}, '
                f'steps={self.num_steps}, world_size={self.world_size})')
