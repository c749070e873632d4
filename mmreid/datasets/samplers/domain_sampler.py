import math
from typing import Hashable, List, Optional, Sequence, Sized

import numpy as np

from mmreid.registry import DATA_SAMPLERS
from mmreid.utils.labels import integer_label
from .epoch_plan_sampler import lower_batch_size_text, plan_rng
from .identity_sampler import IdentitySampler


def read_dsetids(dataset: Sized) -> List[int]:
    """The source index (``dsetid``) of every sample, in dataset order."""
    if hasattr(dataset, 'get_dsetids'):
        dsetids = list(dataset.get_dsetids())
    elif hasattr(dataset, 'get_data_info'):
        dsetids = []
        for i in range(len(dataset)):
            info = dataset.get_data_info(i)
            if 'dsetid' not in info:
                raise ValueError(
                    f'DomainIdentitySampler: sample {i} of '
                    f'{type(dataset).__name__} has no "dsetid"; use a '
                    f'multi-source dataset such as ConcatReIDDataset')
            dsetids.append(info['dsetid'])
    else:
        raise TypeError(f'DomainIdentitySampler needs a dataset with '
                        f'get_dsetids() or get_data_info(i), got '
                        f'{type(dataset).__name__}')
    if len(dsetids) != len(dataset):
        raise ValueError(f'read {len(dsetids)} dsetids from a dataset of '
                         f'{len(dataset)} samples')
    return [
        integer_label(
            d, f'DomainIdentitySampler: sample {i} of '
            f'{type(dataset).__name__} has dsetid')
        for i, d in enumerate(dsetids)
    ]


@DATA_SAMPLERS.register_module()
class DomainIdentitySampler(IdentitySampler):
    """PK sampler with domain-aware batches for multi-source training.

    Every guarantee of :class:`IdentitySampler` holds (batches of P whole
    groups of K images of one identity, P distinct identities per batch,
    ``P * world_size`` distinct identities over the ranks at each step, the
    same number of batches on every rank, a plan that is a function of
    ``(seed, epoch)`` only). In addition, the source domain of each sample
    (its record's ``dsetid``) shapes the batches:

    - ``mode='single'``: every step, hence every batch on every rank, is
      drawn from one domain. Domain ``d`` with ``G_d`` groups gets its own
      ``T_d = max(ceil(G_d / (P * world_size)), max_i ceil(n_i / K))``
      steps, and the steps of all domains are shuffled together, so an
      epoch has ``sum(T_d)`` steps and covers every image.
    - ``mode='balanced'``: every batch holds ``P // D`` or ``P // D + 1``
      identities of each of the ``D`` domains (the extra slots rotate over
      the domains). The epoch length is set by the domain that needs the
      most steps; smaller domains are oversampled to fill their share, so
      every image still appears at least once per epoch.

    Identities are keyed by ``(dsetid, pid)`` (:meth:`load_identities`),
    so equal pids of different sources never merge, and groups are
    scheduled by :meth:`assign_steps` under a per-step, per-domain capacity.
    The parent's ``_plan`` fills free slots with any absent identity and
    deals slots to ranks at random, so this class has its own ``_plan``
    that fills and deals per domain.

    Args:
        dataset (Sized): The training set, with ``get_data_info(i)``
            giving ``pid`` and ``dsetid`` (or ``get_pids()`` and
            ``get_dsetids()``), e.g. a ``ConcatReIDDataset``.
        batch_size (int): Images per batch per GPU; must equal the
            dataloader's ``batch_size``.
        num_instances (int): K, images per identity in a batch.
        mode (str): ``'single'`` or ``'balanced'``. Defaults to
            ``'single'``.
        seed (int, optional): Seed shared by all ranks.
        remainder (str): ``'complete'`` or ``'drop'``, as in
            :class:`IdentitySampler`. Defaults to ``'complete'``.

    Examples:
        >>> train_dataloader = dict(
        ...     batch_size=64,
        ...     sampler=dict(
        ...         type='DomainIdentitySampler', batch_size=64,
        ...         num_instances=4, mode='balanced'),
        ...     dataset=dict(type='ConcatReIDDataset', datasets=[...]))
    """

    MODES = ('single', 'balanced')

    def __init__(self,
                 dataset: Sized,
                 batch_size: int,
                 num_instances: int = 4,
                 mode: str = 'single',
                 seed: Optional[int] = None,
                 remainder: str = 'complete') -> None:
        if mode not in self.MODES:
            raise ValueError(f'DomainIdentitySampler: mode must be one of '
                             f'{self.MODES}, got {mode!r}')
        self.mode = mode
        super().__init__(
            dataset,
            batch_size=batch_size,
            num_instances=num_instances,
            seed=seed,
            remainder=remainder)
        #: The source indices, sorted; domain ``j`` below is ``domains[j]``.
        self.domains = sorted({dsetid for dsetid, _ in self.identities})
        column = {d: j for j, d in enumerate(self.domains)}
        self.identity_domain = np.array(
            [column[dsetid] for dsetid, _ in self.identities], dtype=np.int64)
        self.identities_per_domain = [
            np.flatnonzero(self.identity_domain == j)
            for j in range(len(self.domains))
        ]
        self.num_steps = self._find_num_steps()
        self.num_samples = self.num_steps * batch_size

    def load_identities(self, dataset: Sized) -> Sequence[Hashable]:
        """The identity key ``(dsetid, pid)`` of every sample."""
        pids = IdentitySampler.load_identities(dataset)
        return list(zip(read_dsetids(dataset), pids))

    # ------------------------------------------------------------------
    # Layout: which domain owns each slot of each step
    # ------------------------------------------------------------------
    def _layout(self, num_steps: int) -> np.ndarray:
        """Domain (column index) of every slot, shape (T, world_size * P).

        Slots ``r * P ... r * P + P - 1`` are the batch of rank ``r``.
        """
        num_domains = len(self.domains)
        p = self.num_pids_per_batch
        if self.mode == 'single':
            steps = [
                np.full(self._single_steps(j), j, dtype=np.int64)
                for j in range(num_domains)
            ]
            step_domain = np.concatenate(steps)
            return np.repeat(step_domain[:, None], self.pids_per_step, 1)
        base, extra = divmod(p, num_domains)
        batches = np.arange(num_steps * self.world_size)
        counts = np.full((len(batches), num_domains), base, dtype=np.int64)
        for j in range(extra):
            counts[batches, (batches * extra + j) % num_domains] += 1
        layout = np.stack(
            [np.repeat(np.arange(num_domains), c) for c in counts])
        return layout.reshape(num_steps, self.pids_per_step)

    def _single_steps(self, domain: int) -> int:
        counts = self.group_counts[self.identities_per_domain[domain]]
        return max(
            math.ceil(int(counts.sum()) / self.pids_per_step),
            int(counts.max()))

    def _capacity(self, layout: np.ndarray) -> np.ndarray:
        """Slots per (step, domain), shape (T, D)."""
        num_domains = len(self.domains)
        return np.stack([(layout == j).sum(1) for j in range(num_domains)],
                        axis=1)

    def _find_num_steps(self) -> int:
        num_domains = len(self.domains)
        p = self.num_pids_per_batch
        if self.mode == 'single':
            num_steps = sum(self._single_steps(j) for j in range(num_domains))
        else:
            if p < num_domains:
                raise ValueError(
                    f'DomainIdentitySampler: mode="balanced" needs at '
                    f'least one identity per domain in a batch, but P='
                    f'{p} (batch_size {self.batch_size} / num_instances '
                    f'{self.num_instances}) < {num_domains} domains')
            demand = np.array([
                int(self.group_counts[ids].sum())
                for ids in self.identities_per_domain
            ])
            # An upper bound: every domain gets >= P // D slots per batch.
            least = self.world_size * (p // num_domains)
            upper = max(
                int(self.group_counts.max()),
                math.ceil(int(demand.max()) / least))
            cumulative = np.cumsum(self._capacity(self._layout(upper)), 0)
            enough = (cumulative >= demand).all(1)
            num_steps = max(
                int(np.argmax(enough)) + 1, int(self.group_counts.max()))
        # The capacities are met in total; make sure each identity can also
        # take distinct steps (the greedy below is exact, so this only
        # grows the epoch in corner cases).
        rng = np.random.default_rng(0)
        order = np.arange(len(self.identities))
        while True:
            capacity = self._capacity(self._layout(num_steps))
            if self.mode == 'single' or self._deal(order, capacity,
                                                   rng) is not None:
                break
            num_steps += 1
        for j, ids in enumerate(self.identities_per_domain):
            need = int(capacity[:, j].max())
            if len(ids) < need:
                raise ValueError(
                    f'DomainIdentitySampler: domain {self.domains[j]} has '
                    f'{len(ids)} identities, but mode={self.mode!r} puts '
                    f'up to {need} distinct identities of it in one step '
                    f'(P={p} x world_size {self.world_size}); ' +
                    lower_batch_size_text())
        return num_steps

    # ------------------------------------------------------------------
    # Scheduling
    # ------------------------------------------------------------------
    def _deal(self, identity_order: np.ndarray, capacity: np.ndarray,
              rng: np.random.Generator) -> Optional[List[np.ndarray]]:
        """Give each identity ``g`` distinct steps with free capacity.

        Identities with more groups go first and each takes the steps with
        the most free slots of its domain (random among ties): the
        Gale-Ryser greedy, which succeeds whenever a schedule exists.

        Returns:
            list[np.ndarray] | None: Steps per identity of
            ``identity_order``, or ``None`` when no schedule exists.
        """
        free = capacity.astype(np.float64).T.copy()  # (D, T)
        # Ties are broken by one random order of the steps per domain (a
        # fresh one per identity would cost O(N * T) draws).
        tie_break = rng.random(free.shape) * 0.5
        counts = self.group_counts[identity_order]
        steps: List[np.ndarray] = [None] * len(identity_order)
        for pos in np.argsort(-counts, kind='stable'):
            identity = identity_order[pos]
            g = int(counts[pos])
            domain = self.identity_domain[identity]
            row = free[domain]
            key = row + tie_break[domain]
            chosen = np.argpartition(-key, g - 1)[:g]
            if (row[chosen] < 1).any():
                return None
            row[chosen] -= 1
            steps[pos] = chosen
        return steps

    def assign_steps(self, identity_order: np.ndarray,
                     rng: np.random.Generator) -> List[np.ndarray]:
        """Choose distinct steps for the groups of each identity, within
        the slots its domain owns in each step.

        Args:
            identity_order (np.ndarray): Identity indices, shape (N, ).
            rng (np.random.Generator): The epoch's generator.

        Returns:
            list[np.ndarray]: Step ids for each identity of
            ``identity_order``, shape (g_i, ).
        """
        capacity = self._capacity(self._layout(self.num_steps))
        steps = self._deal(identity_order, capacity, rng)
        if steps is None:  # _find_num_steps checked this cannot happen
            raise RuntimeError('DomainIdentitySampler: no schedule found')
        return steps

    def _plan(self) -> np.ndarray:
        """Indices of all ranks for the current epoch.

        Returns:
            np.ndarray: Shape (T, world_size, P, K).
        """
        rng = plan_rng(self.seed, self.epoch)
        k = self.num_instances
        num_steps, width = self.num_steps, self.pids_per_step
        # The layout is fixed; the steps are shuffled at the end.
        layout = self._layout(num_steps)

        order = rng.permutation(len(self.indices_per_identity))
        steps_per_identity = self.assign_steps(order, rng)
        # (step, domain) -> groups and their identities.
        pending = {}
        for identity, steps in zip(order, steps_per_identity):
            groups = self._make_groups(self.indices_per_identity[identity],
                                       rng)
            domain = int(self.identity_domain[identity])
            for step, group in zip(steps, groups):
                pending.setdefault((int(step), domain), []).append(
                    (int(identity), group))

        table = np.empty((num_steps, width, k), dtype=np.int64)
        # Slots of each step grouped by domain: domain d owns
        # by_domain[t, ends[t, d] - capacity[t, d]:ends[t, d]].
        by_domain = np.argsort(layout, axis=1, kind='stable')
        capacity = self._capacity(layout)
        ends = np.cumsum(capacity, axis=1)
        present = np.zeros(len(self.indices_per_identity), dtype=bool)
        for step in range(num_steps):
            for domain in np.flatnonzero(capacity[step]):
                end = int(ends[step, domain])
                start = end - int(capacity[step, domain])
                slots = rng.permutation(by_domain[step, start:end])
                items = pending.get((step, int(domain)), [])
                for slot, (_, group) in zip(slots, items):
                    table[step, slot] = group
                if len(items) == len(slots):
                    continue
                # Extra groups of identities of this domain absent from
                # the step.
                members = self.identities_per_domain[domain]
                taken = [identity for identity, _ in items]
                present[taken] = True
                absent = members[~present[members]]
                present[taken] = False
                extra = rng.choice(
                    absent, len(slots) - len(items), replace=False)
                for slot, identity in zip(slots[len(items):], extra):
                    table[step, slot] = self._draw_group(
                        self.indices_per_identity[identity], rng)

        # Shuffle the groups inside each batch and the order of the steps.
        table = table.reshape(num_steps, self.world_size,
                              self.num_pids_per_batch, k)
        group_order = np.argsort(
            rng.random(table.shape[:3]), axis=2)[..., None]
        table = np.take_along_axis(table, group_order, axis=2)
        return table[rng.permutation(num_steps)]

    def __repr__(self) -> str:
        return (f'{super().__repr__()[:-1]}, mode={self.mode!r}, '
                f'domains={len(self.domains)})')
