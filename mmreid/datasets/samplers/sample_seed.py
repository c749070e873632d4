"""Per-sample augmentation seeds that a resumed run draws again.

A training sample's augmentation must not depend on the history of the
process that loads it (how many images a dataloader worker has augmented
since it started, whether the run was resumed, how many workers there
are), or a run killed and resumed ends elsewhere than the uninterrupted
run. So a sampler gives each index it yields a seed that is a pure function
of ``(seed, epoch, rank, position in the rank's epoch)`` and the transforms
draw from a generator made from it (see
:func:`mmreid.datasets.transforms.sample_rng`).

The seed travels with the index as a :class:`SeededIndex`, an ``int``
carrying a ``seed`` attribute: datasets, ``len``, indexing and the sampler
tests see a plain index, and mmengine's ``BaseDataset.get_data_info``
stores the index object itself as ``results['sample_idx']``, where the
transforms find the seed. No dataset class needs to know about it.
"""
import numpy as np

#: Separates the augmentation seeds from other streams derived from the
#: run's seed (ASCII 'aug').
AUGMENT_STREAM = 0x617567


class SeededIndex(int):
    """A dataset index that carries its sample's augmentation seed.

    Args:
        index (int): The dataset index.
        seed (int): Seed of the sample's ``numpy.random.Generator``, in
            ``[0, 2**64)``.
    """

    seed: int

    def __new__(cls, index: int, seed: int) -> 'SeededIndex':
        obj = super().__new__(cls, index)
        obj.seed = int(seed)
        return obj

    def __reduce__(self):
        # Indices reach dataloader workers pickled; keep the seed.
        return type(self), (int(self), self.seed)

    def __repr__(self) -> str:
        return f'SeededIndex({int(self)}, seed={self.seed})'


def sample_seeds(seed: int, epoch: int, rank: int,
                 num_samples: int) -> np.ndarray:
    """Augmentation seeds of one rank's samples in one epoch.

    Entry ``i`` is the seed of the ``i``-th index the rank yields in
    ``epoch``; it depends on nothing else, so an epoch started again (a
    resumed run) repeats it and the number of dataloader workers does not
    change it.

    Args:
        seed (int): The sampler's seed (shared by all ranks).
        epoch (int): Epoch number.
        rank (int): The rank.
        num_samples (int): Indices the rank yields per epoch.

    Returns:
        np.ndarray: Shape (num_samples, ), ``uint64``.
    """
    # A spawn key keeps (seed, epoch, rank) apart from the plain entropy
    # lists the samplers use for their plans, e.g. [seed, epoch].
    sequence = np.random.SeedSequence(
        seed % (1 << 64), spawn_key=(AUGMENT_STREAM, epoch, rank))
    return sequence.generate_state(num_samples, np.uint64)


def seeded_indices(indices, seed: int, epoch: int, rank: int) -> list:
    """Attach :func:`sample_seeds` to a rank's indices of one epoch.

    Args:
        indices (Sequence[int]): The rank's indices, in the order yielded.
        seed (int): The sampler's seed.
        epoch (int): Epoch number.
        rank (int): The rank.

    Returns:
        list[SeededIndex]: The same indices, each with its seed.
    """
    indices = [int(i) for i in indices]
    seeds = sample_seeds(seed, epoch, rank, len(indices)).tolist()
    return [SeededIndex(i, s) for i, s in zip(indices, seeds)]
