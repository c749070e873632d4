"""Where the random transforms take their randomness from.

Every random transform of mmreid draws from one ``numpy.random.Generator``
per sample, kept in ``results['rng']`` and shared by the transforms of the
pipeline in order. It is made by the first random transform that runs:

* from the seed the sampler attached to the index
  (:class:`~mmreid.datasets.samplers.sample_seed.SeededIndex`, found as
  ``results['sample_idx']``, which mmengine's ``BaseDataset`` sets to the
  index it was given). The seed is a function of (seed, epoch, rank,
  position in the epoch), so a resumed run, any ``num_workers`` and
  persistent workers draw the same augmentations;
* otherwise (another sampler, a transform called by hand) from numpy's
  global RNG, as mmcv's transforms do: ``np.random.seed`` then makes the
  draws reproducible, but a resumed run does not repeat them.
"""
import numpy as np


def sample_rng(results: dict) -> np.random.Generator:
    """The sample's generator, made on first use and kept in the results.

    Args:
        results (dict): The pipeline's results. ``rng`` is read, or set.

    Returns:
        np.random.Generator: The generator the transforms draw from.
    """
    rng = results.get('rng')
    if rng is None:
        seed = getattr(results.get('sample_idx'), 'seed', None)
        if seed is None:
            seed = int(np.random.randint(np.iinfo(np.int64).max))
        rng = np.random.default_rng(seed)
        results['rng'] = rng
    elif not isinstance(rng, np.random.Generator):
        raise TypeError(f'results["rng"] must be a numpy.random.Generator, '
                        f'got {type(rng).__name__}')
    return rng
