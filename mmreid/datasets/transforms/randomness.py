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
import math
import numbers

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


def check_prob(prob, name: str = 'prob') -> float:
    """A probability: a real number in [0, 1], not a bool or a string.

    Raises:
        ValueError: Naming ``name`` and the value.
    """
    if isinstance(prob, bool) or not isinstance(prob, numbers.Real) \
            or not 0 <= prob <= 1:
        raise ValueError(f'{name} must be a number in [0, 1], got {prob!r}')
    return float(prob)


def check_finite(value, name: str) -> float:
    """A finite real number, not a bool (NaN and inf passed the range
    checks and failed in numpy or cv2 at the first image).

    Raises:
        ValueError: Naming ``name`` and the value.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value):
        raise ValueError(f'{name} must be a finite number, got {value!r}')
    return float(value)
