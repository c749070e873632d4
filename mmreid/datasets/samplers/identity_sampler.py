import math
from typing import Hashable, List, Optional, Sequence, Sized

import numpy as np

from mmreid.registry import DATA_SAMPLERS
from .epoch_plan_sampler import EpochPlanSampler, plan_rng


@DATA_SAMPLERS.register_module()
class IdentitySampler(EpochPlanSampler):
    """PK sampler: every batch is P identities x K images, DDP-safe.

    On every rank, each consecutive run of ``batch_size`` indices (one
    dataloader batch) is ``P = batch_size // num_instances`` groups of
    ``K = num_instances`` indices; a group holds images of one identity and
    the P identities of a batch are distinct. Under DDP, the batches that
    all ranks take at the same step hold ``P * world_size`` distinct
    identities, and every rank yields the same number of batches.

    **Epoch.** Each identity with ``n`` images is shuffled and cut into
    groups of K. With ``remainder='complete'`` (the default) it gives
    ``ceil(n / K)`` groups, so every image appears at least once per epoch:

    - ``n >= K``: a short last group is completed with other images of the
      same identity, drawn without replacement (no duplicate in a group);
    - ``n < K``: the single group is all ``n`` images plus ``K - n`` drawn
      with replacement.

    With ``remainder='drop'`` it gives ``max(1, n // K)`` groups, as the
    ``RandomIdentitySampler`` of torchreid and of the BoT code does: the
    ``n mod K`` images left over sit this epoch out (another random subset
    each epoch), and ``n < K`` still gives one group completed with
    repeats. An epoch is then about ``len(dataset)`` samples or fewer
    instead of more.

    The ``G`` groups are spread over ``T = max(ceil(G / (P * world_size)),
    max_i ceil(n_i / K))`` steps (the second term: an identity appears at
    most once per step). The ``T * P * world_size - G`` free slots are
    filled with extra groups (drawn by the same rules) of identities absent
    from that step. ``T`` depends only on the pids, K, P and the world size,
    never on the epoch, so ``len(sampler) = T * batch_size`` is exact and
    the same every epoch, and the dataloader has ``T`` iterations per
    epoch. As ``len(dataset) <= K * G < len(dataset) + K * num_pids``, an
    epoch draws slightly more than ``len(dataset)`` samples over all ranks
    (about 9% more on Market-1501 with K = 4).

    **Randomness.** A local ``numpy.random.Generator`` seeded with
    ``(seed, epoch)`` builds the global plan of all ranks; every rank builds
    the same plan and keeps its own slice of each step. The global RNG is
    never touched. Call :meth:`set_epoch` (mmengine's
    ``DistSamplerSeedHook`` does) to draw a new plan. Each yielded index
    carries its sample's augmentation seed (see :class:`EpochPlanSampler`).

    **Batch size.** mmengine builds samplers with ``dataset`` and ``seed``
    only, yet the sampler needs the batch boundaries to keep identities
    distinct within a batch and across ranks, so ``batch_size`` is an
    argument and **must equal the dataloader's** ``batch_size``
    (:meth:`check_batch_size` verifies it against a built dataloader).

    **Extension.** Identities are read by :meth:`load_identities` (any
    hashable key, e.g. ``(dsetid, pid)``) and groups are scheduled to steps
    by :meth:`assign_steps`; domain-aware variants (domain-balanced or
    single-domain batches of a multi-source set, whose records carry
    ``dsetid``) override these two.

    Args:
        dataset (Sized): The training set. Pids come from
            ``dataset.get_pids()`` if it exists, else from
            ``dataset.get_data_info(i)['pid']``.
        batch_size (int): Images per batch per GPU; the dataloader's
            ``batch_size``. A multiple of ``num_instances``.
        num_instances (int): K, images per identity in a batch. Defaults
            to 4.
        seed (int, optional): Seed shared by all ranks. Defaults to None: a
            random seed is drawn on rank 0 and broadcast.
        remainder (str): ``'complete'`` or ``'drop'``: what an identity's
            last ``n mod K`` images become (see **Epoch**). Defaults to
            ``'complete'``.

    Examples:
        >>> train_dataloader = dict(
        ...     batch_size=64,
        ...     sampler=dict(
        ...         type='IdentitySampler', batch_size=64, num_instances=4),
        ...     dataset=...)
    """

    #: The accepted ``remainder`` values.
    REMAINDERS = ('complete', 'drop')

    def __init__(self,
                 dataset: Sized,
                 batch_size: int,
                 num_instances: int = 4,
                 seed: Optional[int] = None,
                 remainder: str = 'complete') -> None:
        if remainder not in self.REMAINDERS:
            raise ValueError(f'{type(self).__name__}: remainder must be one '
                             f'of {self.REMAINDERS}, got {remainder!r}')
        self.remainder = remainder
        super().__init__(dataset, batch_size, num_instances, seed)

        keys = self.load_identities(dataset)
        index_of_key = {}
        members: List[List[int]] = []
        for idx, key in enumerate(keys):
            if key not in index_of_key:
                index_of_key[key] = len(members)
                members.append([])
            members[index_of_key[key]].append(idx)
        #: Identity keys, in order of first appearance in the dataset.
        self.identities = list(index_of_key)
        self.indices_per_identity = [
            np.asarray(m, dtype=np.int64) for m in members
        ]

        self._check_identity_count(len(members))
        if remainder == 'drop':
            counts = [max(1, len(m) // num_instances) for m in members]
        else:
            counts = [math.ceil(len(m) / num_instances) for m in members]
        self.group_counts = np.array(counts, dtype=np.int64)
        self.num_groups = int(self.group_counts.sum())
        #: Steps (iterations) per epoch, identical on every rank.
        self.num_steps = max(
            math.ceil(self.num_groups / self.pids_per_step),
            int(self.group_counts.max()))
        self.num_samples = self.num_steps * batch_size

    @staticmethod
    def load_identities(dataset: Sized) -> Sequence[Hashable]:
        """The identity key (pid) of every sample, in dataset order."""
        if hasattr(dataset, 'get_pids'):
            pids = list(dataset.get_pids())
            missing = next((i for i, p in enumerate(pids) if p is None), None)
            if missing is not None:
                raise ValueError(
                    f'IdentitySampler: record {missing} of '
                    f'{type(dataset).__name__} has pid None (from '
                    'get_pids()); every training record needs its identity')
        elif hasattr(dataset, 'get_data_info'):
            pids = []
            for i in range(len(dataset)):
                info = dataset.get_data_info(i)
                if info.get('pid') is None:
                    has = 'pid None' if 'pid' in info else (
                        f"no 'pid' (keys: {sorted(info)})")
                    raise KeyError(
                        f'IdentitySampler: record {i} of '
                        f'{type(dataset).__name__} has {has}; every '
                        'training record needs its identity')
                pids.append(info['pid'])
        else:
            raise TypeError(
                f'IdentitySampler needs a dataset with get_pids() or '
                f'get_data_info(i), got {type(dataset).__name__}')
        if len(pids) != len(dataset):
            raise ValueError(f'read {len(pids)} pids from a dataset of '
                             f'{len(dataset)} samples')
        # numpy scalars and ints of the same value must be one identity.
        return [p.item() if isinstance(p, np.generic) else p for p in pids]

    def _make_groups(self, indices: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
        """Cut one identity's images into its groups (g, K): ``ceil(n /
        K)``, or ``max(1, n // K)`` with ``remainder='drop'``."""
        k = self.num_instances
        shuffled = rng.permutation(indices)
        num = len(shuffled)
        rest = num % k
        if num < k:
            fill = rng.choice(indices, k - num, replace=True)
        elif rest and self.remainder == 'drop':
            return shuffled[:num - rest].reshape(-1, k)
        elif rest:
            fill = rng.choice(shuffled[:num - rest], k - rest, replace=False)
        else:
            fill = shuffled[:0]
        return np.concatenate([shuffled, fill]).reshape(-1, k)

    def _draw_group(self, indices: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
        """One extra group (K, ): distinct images, or all and repeats."""
        k = self.num_instances
        if len(indices) >= k:
            return rng.choice(indices, k, replace=False)
        return np.concatenate(
            [indices,
             rng.choice(indices, k - len(indices), replace=True)])

    def assign_steps(self, identity_order: np.ndarray,
                     rng: np.random.Generator) -> List[np.ndarray]:
        """Choose distinct steps for the groups of each identity.

        Steps are dealt in rounds: each round visits every step once, in a
        fresh random order, and an identity takes the next ``g`` steps.
        When an identity straddles two rounds, the next round starts with
        the steps it has not taken yet, so its steps stay distinct. Each
        step thus gets at most ``ceil(G / T) <= P * world_size`` groups and
        the step loads differ by at most one.

        Args:
            identity_order (np.ndarray): Identity indices, shape (N, ), in
                the order they are dealt.
            rng (np.random.Generator): The epoch's generator.

        Returns:
            list[np.ndarray]: Step ids for each identity of
            ``identity_order``, shape (g_i, ).
        """
        num_steps = self.num_steps
        queue = rng.permutation(num_steps)
        pos = 0
        steps_per_identity = []
        for identity in identity_order:
            count = int(self.group_counts[identity])
            if pos + count <= num_steps:
                steps = queue[pos:pos + count]
                pos += count
            else:
                head = queue[pos:]
                taken = np.zeros(num_steps, dtype=bool)
                taken[head] = True
                queue = np.concatenate([
                    rng.permutation(np.flatnonzero(~taken)),
                    rng.permutation(head)
                ])
                pos = count - len(head)
                steps = np.concatenate([head, queue[:pos]])
            steps_per_identity.append(steps)
        return steps_per_identity

    def _plan(self) -> np.ndarray:
        """Indices of all ranks for the current epoch.

        Returns:
            np.ndarray: Shape (T, world_size, P, K): step, rank, identity
            group and image.
        """
        rng = plan_rng(self.seed, self.epoch)
        k = self.num_instances
        num_steps, width = self.num_steps, self.pids_per_step
        num_identities = len(self.indices_per_identity)

        order = rng.permutation(num_identities)
        steps_per_identity = self.assign_steps(order, rng)
        groups = np.concatenate([
            self._make_groups(self.indices_per_identity[i], rng) for i in order
        ])
        group_identity = np.repeat(order, self.group_counts[order])
        group_step = np.concatenate(steps_per_identity)

        # Scatter the groups into a (step, slot) table.
        table = np.empty((num_steps, width, k), dtype=np.int64)
        table_identity = np.full((num_steps, width), -1, dtype=np.int64)
        by_step = np.argsort(group_step, kind='stable')
        load = np.bincount(group_step, minlength=num_steps)
        first_slot = np.cumsum(load) - load
        sorted_step = group_step[by_step]
        slot = np.arange(len(by_step)) - first_slot[sorted_step]
        table[sorted_step, slot] = groups[by_step]
        table_identity[sorted_step, slot] = group_identity[by_step]

        # Fill free slots with extra groups of identities absent from the
        # step (always possible: there are >= width identities).
        for step in np.flatnonzero(load < width):
            absent = np.ones(num_identities, dtype=bool)
            absent[table_identity[step, :load[step]]] = False
            extra = rng.choice(
                np.flatnonzero(absent), width - load[step], replace=False)
            for slot, identity in enumerate(extra, start=int(load[step])):
                table[step, slot] = self._draw_group(
                    self.indices_per_identity[identity], rng)

        # Shuffle the groups inside each step (which rank gets which) and
        # the order of the steps.
        slot_order = np.argsort(rng.random((num_steps, width)), axis=1)
        table = np.take_along_axis(table, slot_order[..., None], axis=1)
        table = table[rng.permutation(num_steps)]
        return table.reshape(num_steps, self.world_size,
                             self.num_pids_per_batch, k)
