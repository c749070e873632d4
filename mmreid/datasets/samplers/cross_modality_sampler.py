import logging
from typing import Dict, List, Optional, Sequence, Sized, Tuple

import numpy as np
from mmengine.logging import print_log

from mmreid.registry import DATA_SAMPLERS
from mmreid.utils.labels import integer_label
from .epoch_plan_sampler import EpochPlanSampler, plan_rng

VISIBLE, INFRARED = 0, 1


@DATA_SAMPLERS.register_module()
class CrossModalityIdentitySampler(EpochPlanSampler):
    """Visible-infrared PK sampler (the AGW ``IdentitySampler``), DDP-safe.

    Every dataloader batch on every rank is ``P`` identities x ``K``
    visible images followed by the **same** ``P`` identities x ``K``
    infrared images, aligned position by position::

        [v(id1) x K, ..., v(idP) x K, t(id1) x K, ..., t(idP) x K]

    so each batch holds both modalities in equal counts (``P * K`` each),
    as MBN needs on every GPU. The layout is a sampler detail: the modality
    of each sample travels in its own metainfo, and nothing downstream may
    rely on it.

    **Draw** (Ye et al., AGW, ``utils.IdentitySampler``). For each step,
    ``P * world_size`` distinct identities are drawn without replacement
    among the identities that have images of both modalities (the others
    are never sampled: a WARNING names them, and they are in
    :attr:`skipped_pids`); for each,
    ``K`` visible and ``K`` infrared images are drawn *with* replacement.
    Rank ``r`` takes the ``r``-th run of ``P`` identities, i.e. whole
    identity groups of both modalities.

    **Epoch size.** As in AGW, with ``N = max(#visible, #infrared)``
    training images, an epoch has ``T = N // (P * K * world_size) + 1``
    steps, the same on every rank and every epoch, so ``len(sampler) = T *
    batch_size`` is exact (SYSU-MM01, P=8, K=4, one GPU: 22258 // 32 + 1 =
    696 steps).

    **Unbalanced batches** (``infrared_instances=(low, high)``, off by
    default). The MBN paper names an *inter-mini-batch* gap: batch
    statistics that change from batch to batch. To study it, each batch
    can draw its own modality mix: every step and rank draws ``k`` uniformly
    from ``low..high``, and each of the batch's ``P`` identities then gives
    ``2K - k`` visible and ``k`` infrared images (same batch size and
    identities; the visible share of a batch varies from ``1 - high / 2K``
    to ``1 - low / 2K``). ``1 <= low <= high <= 2K - 1``, so both
    modalities are in every batch. The default (None) is the balanced AGW
    draw above, index for index.

    **Randomness.** A local ``numpy.random.Generator`` seeded with ``(seed,
    epoch)`` builds the plan of all ranks; every rank builds the same plan.
    :meth:`set_epoch` (called by ``DistSamplerSeedHook``) draws a new one.
    Each yielded index carries its sample's augmentation seed (see
    :class:`EpochPlanSampler`).

    Args:
        dataset (Sized): Training set whose records have ``pid`` and
            ``modality`` (0 visible, 1 infrared), read with
            ``dataset.get_data_info(i)``.
        batch_size (int): Images per batch per GPU, both modalities: ``2 *
            P * K``. Must equal the dataloader's ``batch_size`` (checked by
            :meth:`check_batch_size`).
        num_instances (int): K, images per identity **per modality** in a
            batch. Defaults to 4.
        seed (int, optional): Seed shared by all ranks. Defaults to None: a
            random seed drawn on rank 0 and broadcast.
        infrared_instances (Sequence[int], optional): ``(low, high)``,
            the range of infrared images per identity in a batch, drawn per
            batch (unbalanced batches, see above). Defaults to None: K
            visible and K infrared images per identity in every batch.

    Examples:
        >>> # AGW: 8 ids x 4 images per modality -> 64 images per batch.
        >>> train_dataloader = dict(
        ...     batch_size=64,
        ...     sampler=dict(type='CrossModalityIdentitySampler',
        ...                  batch_size=64, num_instances=4),
        ...     dataset=...)
    """

    #: A batch holds K visible and K infrared images of each identity.
    images_per_instance = 2
    #: How many one-modality identities the warning names.
    SKIPPED_NAMED = 5

    def __init__(self,
                 dataset: Sized,
                 batch_size: int,
                 num_instances: int = 4,
                 seed: Optional[int] = None,
                 infrared_instances: Optional[Sequence[int]] = None) -> None:
        super().__init__(dataset, batch_size, num_instances, seed)
        self.infrared_instances = self._check_infrared_instances(
            infrared_instances, num_instances)
        per_identity, counts = self.load_modalities(dataset)
        both = [
            pid for pid, mods in per_identity.items()
            if len(mods[VISIBLE]) and len(mods[INFRARED])
        ]
        #: Identities with images of one modality only, sorted: never
        #: sampled, so their classifier rows (if any) never train.
        self.skipped_pids = sorted(set(per_identity) - set(both))
        self.skipped_identities = len(self.skipped_pids)
        if self.skipped_pids:
            print_log(
                self._skipped_message(per_identity, dataset),
                'current',
                level=logging.WARNING)
        #: Identities with both modalities, in order of first appearance.
        self.identities = both
        self.visible_indices = [
            np.asarray(per_identity[p][VISIBLE], dtype=np.int64) for p in both
        ]
        self.infrared_indices = [
            np.asarray(per_identity[p][INFRARED], dtype=np.int64) for p in both
        ]
        self._check_identity_count(
            len(both), 'distinct identities with both modalities')
        #: max(#visible, #infrared) images, the AGW epoch-size base.
        self.num_images = max(counts)
        #: Steps (iterations) per epoch, identical on every rank.
        self.num_steps = self.num_images // (self.pids_per_step *
                                             num_instances) + 1
        self.num_samples = self.num_steps * batch_size

    def _skipped_message(self, per_id: Dict[int, List[List[int]]],
                         dataset: Sized) -> str:
        """The warning about identities that lack one modality.

        Args:
            per_id (dict): ``{pid: [visible indices, infrared indices]}``.
            dataset (Sized): The training set, for an image of each.

        Returns:
            str: How many identities are skipped, and the first
            :attr:`SKIPPED_NAMED` of them with the modality they have and
            one of their images: the labels are the training set's
            (relabelled ``0..N-1``), not the dataset's folder names.
        """
        named = []
        for pid in self.skipped_pids[:self.SKIPPED_NAMED]:
            has = VISIBLE if per_id[pid][VISIBLE] else INFRARED
            path = dataset.get_data_info(per_id[pid][has][0]).get('img_path')
            named.append(f'{pid} (' +
                         ('visible' if has == VISIBLE else 'infrared') +
                         ' only' + (f', e.g. {path}' if path else '') + ')')
        more = len(self.skipped_pids) - len(named)
        if more:
            named.append(f'and {more} more')
        return (f'{type(self).__name__}: {len(self.skipped_pids)} of '
                f'{len(per_id)} identities lack one modality and are '
                f'never sampled: training labels {", ".join(named)}. A '
                'classifier sized by the dataset keeps their rows, which '
                'never train (AGW would fail on a visible-only identity); '
                'drop them from the training lists if that is not '
                'intended.')

    def _check_infrared_instances(
            self, value: Optional[Sequence[int]],
            num_instances: int) -> Optional[Tuple[int, int]]:
        """Validate ``infrared_instances``; returns ``(low, high)`` or
        None."""
        if value is None:
            return None
        name = type(self).__name__
        most = 2 * num_instances - 1
        ok = (
            isinstance(value, (list, tuple)) and len(value) == 2 and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value))
        if not ok or not 1 <= value[0] <= value[1] <= most:
            raise ValueError(
                f'{name}: infrared_instances must be None or (low, high) '
                f'with 1 <= low <= high <= 2 * num_instances - 1 = {most} '
                f'(both modalities in every batch), got {value!r}')
        return int(value[0]), int(value[1])

    def _layout_text(self, num_instances: int) -> str:
        return (f'K={num_instances} visible + the same P x K infrared '
                'images')

    @staticmethod
    def load_modalities(
            dataset: Sized) -> Tuple[Dict[int, List[List[int]]], List[int]]:
        """Indices of each identity per modality, and per-modality counts.

        Returns:
            tuple: ``{pid: [visible indices, infrared indices]}`` (pids in
            order of first appearance) and ``[#visible, #infrared]``.
        """
        if not hasattr(dataset, 'get_data_info'):
            raise TypeError(
                f'CrossModalityIdentitySampler needs a dataset with '
                f'get_data_info(i), got {type(dataset).__name__}')
        per_identity: Dict[int, List[List[int]]] = {}
        counts = [0, 0]
        for idx in range(len(dataset)):
            info = dataset.get_data_info(idx)
            for key in ('pid', 'modality'):
                if info.get(key) is None:
                    raise KeyError(
                        f'CrossModalityIdentitySampler: record {idx} of '
                        f'{type(dataset).__name__} has no {key!r} '
                        f'(keys: {sorted(info)})')
            modality = integer_label(
                info['modality'], f'CrossModalityIdentitySampler: record '
                f'{idx} of {type(dataset).__name__} has modality')
            if modality not in (VISIBLE, INFRARED):
                raise ValueError(
                    f'CrossModalityIdentitySampler: record {idx} has '
                    f'modality {modality!r}, expected 0 (visible) or 1 '
                    f'(infrared)')
            pid = info['pid']
            pid = pid.item() if isinstance(pid, np.generic) else pid
            per_identity.setdefault(pid, [[], []])[modality].append(idx)
            counts[modality] += 1
        return per_identity, counts

    def _plan(self) -> np.ndarray:
        """Indices of all ranks for the current epoch.

        Returns:
            np.ndarray: Shape (T, world_size, 2, P, K): step, rank,
            modality (visible, infrared), identity and image; with
            ``infrared_instances``, (T, world_size, 2 * P * K): the
            visible images of the P identities, then their infrared ones.
        """
        rng = plan_rng(self.seed, self.epoch)
        if self.infrared_instances is not None:
            return self._unbalanced_plan(rng)
        k, p = self.num_instances, self.num_pids_per_batch
        table = np.empty((self.num_steps, self.pids_per_step, 2, k),
                         dtype=np.int64)
        for step in range(self.num_steps):
            chosen = rng.choice(
                len(self.identities), self.pids_per_step, replace=False)
            for slot, identity in enumerate(chosen):
                table[step, slot, 0] = rng.choice(
                    self.visible_indices[identity], k, replace=True)
                table[step, slot, 1] = rng.choice(
                    self.infrared_indices[identity], k, replace=True)
        table = table.reshape(self.num_steps, self.world_size, p, 2, k)
        return table.transpose(0, 1, 3, 2, 4)

    def _unbalanced_plan(self, rng: np.random.Generator) -> np.ndarray:
        """The plan of ``infrared_instances``: one modality mix per batch.

        Returns:
            np.ndarray: Shape (T, world_size, 2 * P * K).
        """
        k, p = self.num_instances, self.num_pids_per_batch
        low, high = self.infrared_instances
        table = np.empty((self.num_steps, self.world_size, 2 * p * k),
                         dtype=np.int64)
        for step in range(self.num_steps):
            chosen = rng.choice(
                len(self.identities), self.pids_per_step, replace=False)
            num_ir = rng.integers(low, high + 1, size=self.world_size)
            for rank in range(self.world_size):
                ir, vis = int(num_ir[rank]), 2 * k - int(num_ir[rank])
                ids = chosen[rank * p:(rank + 1) * p]
                table[step, rank, :p * vis] = np.concatenate([
                    rng.choice(self.visible_indices[i], vis, replace=True)
                    for i in ids
                ])
                table[step, rank, p * vis:] = np.concatenate([
                    rng.choice(self.infrared_indices[i], ir, replace=True)
                    for i in ids
                ])
        return table
