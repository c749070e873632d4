"""Training randomness that a resumed run repeats exactly."""
import logging
import random
import re
from typing import Any, Optional

import numpy as np
import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.runner import EpochBasedTrainLoop

from mmreid.registry import HOOKS

#: Separates the iteration seeds from other streams derived from the run's
#: seed (ASCII 'iter').
ITERATION_STREAM = 0x69746572


def seed_global_rngs(seed: int, iteration: int, rank: int) -> None:
    """Seed Python's, numpy's and torch's global RNGs for one iteration.

    The state is a function of ``(seed, iteration, rank)`` only. Ranks get
    different states, so dropout masks differ between GPUs.

    Args:
        seed (int): The run's seed.
        iteration (int): The 0-based training iteration about to run.
        rank (int): The process's rank.
    """
    sequence = np.random.SeedSequence(
        seed % (1 << 64), spawn_key=(ITERATION_STREAM, iteration, rank))
    words = sequence.generate_state(2, np.uint32)
    state = (int(words[0]) << 32) | int(words[1])
    random.seed(state)
    np.random.seed(words)
    torch.manual_seed(state)  # also seeds every CUDA device


@HOOKS.register_module()
class TrainRandomStateHook(Hook):
    """Make a resumed run draw the random numbers the uninterrupted run drew.

    mmengine seeds the global RNGs once, when the runner starts, and a
    checkpoint does not store their state, so a resumed run's random draws
    restart from the seed instead of continuing. mmreid therefore derives
    every random draw of training from where it happens:

    * augmentations from the sample's seed, a function of (seed, epoch,
      rank, position in the epoch), which mmreid's samplers attach to the
      indices they yield (see :mod:`mmreid.datasets.transforms.randomness`);
    * everything the main process draws from the global RNGs during an
      iteration (e.g. GMN's dropout-based perturbation) from a state this
      hook sets before every training iteration, a function of (seed,
      iteration, rank) (:func:`seed_global_rngs`).

    A run killed mid-epoch (with persistent dataloader workers or not) and
    resumed from its last epoch checkpoint therefore ends with the same
    weights as the uninterrupted run on the CPU, whatever ``num_workers``
    is, provided the resumed run knows the sampler's seed: the config's
    (``train_dataloader.sampler.seed``), the run's (restored by mmengine
    from ``meta['seed']``) or, with ``randomness=dict(seed=None,
    diff_rank_seed=True)``, the shared draw the checkpoint records in
    ``meta['sampler_seed']`` (:meth:`ReIDRunner.save_checkpoint
    <mmreid.engine.runner.ReIDRunner.save_checkpoint>`). A checkpoint
    without it (written by another runner or an older mmreid) resumes with
    a new draw, and a warning says so.

    Before training it also

    * refuses a resume from a checkpoint saved in the middle of an epoch
      (mmengine's epoch-based loop would train that epoch's first
      iterations again), or one whose epochs had another number of steps
      than this run's (its iteration is not a whole number of these
      epochs);
    * gives the sampler the run's seed when the config gives it none: a
      run with ``randomness=dict(seed=None)`` gets the checkpoint's seed
      back on resume, after mmengine built the sampler with a new one
      (with ``diff_rank_seed=True``, the checkpoint's
      ``meta['sampler_seed']``, or a warning where it lacks one); the
      iterator an ``IterBasedTrainLoop`` started when it was built, which
      may already have drawn indices with the old seed, is started again;
    * warns when a random transform of the training pipeline draws from the
      dataloader workers' global RNGs (a sampler that gives no per-sample
      seeds, or a random transform from outside mmreid: one whose drawing
      methods mmcv's ``cache_randomness`` marks, or whose code calls
      ``np.random``, ``random`` or ``torch.rand*``, :func:`global_draws`).

    ``configs/_base_/default_runtime.py`` enables it for every config:

    Examples:
        >>> default_hooks = dict(
        ...     random_state=dict(type='TrainRandomStateHook'))
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        self._check_resume_point(runner)
        self._follow_run_seed(runner)
        self._check_pipeline(runner)

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        seed_global_rngs(runner.seed, runner.iter, get_rank())

    @staticmethod
    def _check_resume_point(runner) -> None:
        from mmreid.engine.runner.resume_checks import steps_per_epoch_advice
        loop = runner.train_loop
        if not isinstance(loop, EpochBasedTrainLoop):
            return
        per_epoch = len(loop.dataloader)
        if loop.iter == loop.epoch * per_epoch:
            return
        done = loop.iter - loop.epoch * per_epoch
        # At the end of an epoch of another length, iter is a multiple of
        # epoch; a mid-epoch save of these epochs has 0 < done < per_epoch.
        old = loop.iter // loop.epoch if loop.epoch > 0 \
            and loop.iter % loop.epoch == 0 else None
        changed = ('The steps per epoch changed (another number of '
                   'processes, batch size or training set). ' +
                   steps_per_epoch_advice(
                       per_epoch, 'Resume with the processes and the '
                       'batches of that run'))
        if 0 < done < per_epoch:
            also = (f' If it was saved at the end of epoch {loop.epoch}, '
                    f'its epochs had {old} steps, not {per_epoch}. {changed}'
                    if old is not None else '')
            raise RuntimeError(
                f'the resumed checkpoint was saved in the middle of epoch '
                f'{loop.epoch + 1} (iteration {loop.iter}, {done} of its '
                f'{per_epoch} iterations done); the epoch-based loop would '
                f'train them again and the run would end elsewhere. Resume '
                f'from a checkpoint saved at the end of an epoch '
                f'(CheckpointHook with by_epoch=True).{also}')
        had = f'{old} steps' if old is not None else 'another number of steps'
        raise RuntimeError(
            f'the resumed checkpoint was saved at iteration {loop.iter} after '
            f'{loop.epoch} epochs, not after {loop.epoch} x {per_epoch} '
            f'(len(train_dataloader) of this run): its epochs had {had}. '
            f'{changed}')

    @staticmethod
    def _follow_run_seed(runner) -> None:
        sampler = runner.train_dataloader.sampler
        if not getattr(sampler, 'yields_sample_seeds', False):
            return
        sampler_cfg = runner.cfg.get('train_dataloader', {}).get('sampler')
        if sampler_cfg is None or sampler_cfg.get('seed') is not None:
            return  # a seed of its own, or not built from a config
        # With diff_rank_seed mmengine gives the sampler no seed: it draws
        # one shared by the ranks, which ReIDRunner's checkpoints record.
        randomness = getattr(runner, '_randomness_cfg', None) or {}
        if randomness.get('diff_rank_seed', False):
            TrainRandomStateHook._restore_shared_seed(runner, sampler)
            return
        if sampler.seed != runner.seed:
            print_log(
                f'{type(sampler).__name__}: seed {sampler.seed} -> '
                f'{runner.seed}, the seed of the run (restored from the '
                f'resumed checkpoint)',
                logger='current',
                level=logging.INFO)
            sampler.seed = runner.seed
            _restart_loop_iterator(runner)

    @staticmethod
    def _restore_shared_seed(runner, sampler) -> None:
        """On resume, give the sampler the seed the checkpoint records
        (``meta['sampler_seed']``), or warn that it has a new one."""
        meta = getattr(runner, 'resumed_meta', None)
        if meta is None and runner.train_loop.iter == 0:
            return  # a new run
        saved = (meta or {}).get('sampler_seed')
        if isinstance(saved, int):
            if sampler.seed != saved:
                print_log(
                    f'{type(sampler).__name__}: seed {sampler.seed} -> '
                    f'{saved}, the seed of the run (restored from the '
                    f"resumed checkpoint's meta['sampler_seed'])",
                    logger='current',
                    level=logging.INFO)
                sampler.seed = saved
                _restart_loop_iterator(runner)
            return
        print_log(
            f'randomness.diff_rank_seed=True without a sampler seed: the '
            f'resumed checkpoint does not record the seed its run\'s '
            f'{type(sampler).__name__} drew (no meta[\'sampler_seed\']), '
            f'so it goes on with a new one ({sampler.seed}): the resumed '
            f'epochs get another sample order and other augmentations than '
            f'the uninterrupted run would have. For runs that must resume '
            f'identically, set train_dataloader.sampler.seed.',
            logger='current',
            level=logging.WARNING)

    @staticmethod
    def _check_pipeline(runner) -> None:
        loader = runner.train_dataloader
        pipeline = getattr(loader.dataset, 'pipeline', None)
        if pipeline is None:
            _check_wrapped_dataset(loader.dataset, loader.sampler)
        transforms = getattr(pipeline, 'transforms', [])
        random_transforms = [
            t for t in transforms if getattr(t, 'draws_from_sample_rng', False)
            or draws_at_random(type(t))
        ]
        if not random_transforms:
            return
        foreign = [
            type(t).__name__ for t in random_transforms
            if not getattr(t, 'draws_from_sample_rng', False)
        ]
        if foreign:
            print_log(
                f'{", ".join(foreign)} in the training pipeline draw from '
                f"the dataloader workers' global random state: a resumed "
                f'run will not repeat their draws. mmreid\'s transforms '
                f'take a per-sample generator instead: draw from '
                f'mmreid.datasets.transforms.sample_rng(results) and set '
                f'the class attribute draws_from_sample_rng = True (see '
                f'docs/customize.md).',
                logger='current',
                level=logging.WARNING)
        sampler = loader.sampler
        if not getattr(sampler, 'yields_sample_seeds', False):
            print_log(
                f'the training sampler {type(sampler).__name__} gives no '
                f'per-sample augmentation seeds, so the random transforms '
                f'draw from the global random state of each dataloader '
                f'worker: a resumed run will not repeat them. mmreid\'s '
                f'samplers (IdentitySampler, ...) give them.',
                logger='current',
                level=logging.WARNING)


#: A call that draws from a global random state: numpy's (``np.random.
#: uniform(...)``), Python's ``random`` module's, torch's.
_GLOBAL_DRAW = re.compile(
    r'\b(?:np|numpy)\.random\.(?!Generator\b)\w+\s*\('
    r'|(?<![\w.])random\.(?:random|randint|uniform|choice|choices|shuffle'
    r'|sample|gauss|randrange|normalvariate|betavariate|triangular)\s*\('
    r'|\btorch\.(?:rand|randn|randint|randperm|bernoulli|multinomial'
    r'|normal|rand_like|randn_like|randint_like)\s*\(')


def declared_draws(cls: Any) -> Optional[bool]:
    """What a transform class declares of its draws: its class attribute
    ``draws_at_random`` (True: it draws at random; False: it gives the
    same output for the same input whatever the worker, the batch or the
    order, e.g. a generator seeded from the image itself). None where it
    declares nothing.

    Raises:
        TypeError: ``draws_at_random`` is not a bool.
    """
    declared = getattr(cls, 'draws_at_random', None)
    if declared is None or isinstance(declared, bool):
        return declared
    raise TypeError(
        f'{getattr(cls, "__qualname__", cls)}.draws_at_random is '
        f'{declared!r}: it must be True (the transform draws at random) or '
        'False (it draws nothing at random: the same output for the same '
        'input in any worker and order)')


def draws_at_random(cls: type) -> bool:
    """Whether a transform class of outside mmreid's sample generator
    draws at random: its declaration (:func:`declared_draws`) if it makes
    one, else a method marked with mmcv's ``cache_randomness``, else a
    call found in its code (:func:`global_draws`)."""
    declared = declared_draws(cls)
    if declared is not None:
        return declared
    return bool(getattr(cls, '_methods_with_randomness',
                        None)) or global_draws(cls)


def global_draws(cls: type) -> bool:
    """Whether a transform class of outside mmreid draws from a global
    random state in its own code.

    mmcv marks a random transform's drawing methods with
    ``cache_randomness``; a transform of one's own that calls
    ``np.random.uniform`` in ``transform()`` carries no such mark. Its
    code (and that of its bases outside mmreid and mmcv's
    ``BaseTransform``), without comments and strings, is searched for such
    a call. mmreid's transforms,
    which draw from :func:`~mmreid.datasets.transforms.sample_rng`, are
    not searched.

    Args:
        cls (type): The transform's class.

    Returns:
        bool: A call to ``np.random.*``, ``random.*`` or ``torch.rand*``
        was found; False where the source cannot be read.
    """
    import inspect

    from mmcv.transforms import BaseTransform
    for base in getattr(cls, '__mro__', ())[:-1]:  # without object
        own = base.__module__.startswith(('mmreid.', 'builtins'))
        if base is BaseTransform or own:
            continue
        try:
            source = _code_only(inspect.getsource(base))
        except (OSError, TypeError):
            continue
        if _GLOBAL_DRAW.search(source):
            return True
    return False


def _code_only(source: str) -> str:
    """``source`` with its comments and string literals (docstrings) blanked
    out, so that a class whose docstring mentions ``np.random.rand()`` is
    not taken for one that calls it. Where the source does not tokenize,
    it is returned whole (searched as before)."""
    import io
    import tokenize
    lines = source.splitlines(keepends=True)
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return source
    for token in reversed(tokens):
        if token.type not in (tokenize.COMMENT, tokenize.STRING):
            continue
        (row, col), (end_row, end_col) = token.start, token.end
        for r in range(row, end_row + 1):
            line = lines[r - 1]
            start = col if r == row else 0
            stop = end_col if r == end_row else len(line.rstrip('\r\n'))
            lines[r - 1] = line[:start] + ' ' * (stop - start) + line[stop:]
    return ''.join(lines)


def _restart_loop_iterator(runner) -> None:
    """Start the iteration-based loop's pass over the data again, after
    the sampler's seed changed.

    mmengine's ``IterBasedTrainLoop`` calls ``iter(dataloader)`` when it
    is built, before the checkpoint is resumed. With ``num_workers > 0``
    torch's iterator draws the sampler's indices then (it prefetches), so
    the first pass would follow the plan and the per-sample seeds of the
    seed the sampler was built with, not the restored one. The iterator
    is built again here, in ``before_train``; the loop skips the batches
    already trained (``Advance dataloader``) after it. An epoch-based
    loop starts its iterator in each epoch, after this hook.
    """
    from mmengine.runner.loops import _InfiniteDataloaderIterator
    loop = runner.train_loop
    if isinstance(
            getattr(loop, 'dataloader_iterator', None),
            _InfiniteDataloaderIterator):
        loop.dataloader_iterator = _InfiniteDataloaderIterator(loop.dataloader)


def _wrapped_pipelines(dataset, depth: int = 0) -> list:
    """The pipelines of the datasets a wrapper holds (``dataset`` of
    mmengine's ``RepeatDataset``/``ClassBalancedDataset``, ``datasets`` of
    its ``ConcatDataset``), at any depth."""
    if depth > 8:
        return []
    inner = getattr(dataset, 'datasets', None)
    inner = list(inner) if isinstance(inner, (list, tuple)) else []
    if getattr(dataset, 'dataset', None) is not None:
        inner.append(dataset.dataset)
    found = []
    for item in inner:
        pipeline = getattr(item, 'pipeline', None)
        if pipeline is not None:
            found.append(pipeline)
        else:
            found += _wrapped_pipelines(item, depth + 1)
    return found


def _check_wrapped_dataset(dataset, sampler) -> None:
    """Warn when a wrapper drops the sampler's per-sample seeds.

    mmengine's dataset wrappers compute the inner index with integer
    arithmetic (``idx % len``, ``idx - offset``), which turns mmreid's
    :class:`~mmreid.datasets.samplers.SeededIndex` into a plain int: the
    inner pipelines' random transforms then draw from the worker's global
    random state, so the augmentations depend on ``num_workers`` and a
    resumed run does not repeat them.
    """
    if not getattr(sampler, 'yields_sample_seeds', False):
        return
    randomised = [
        type(t).__name__ for pipeline in _wrapped_pipelines(dataset)
        for t in getattr(pipeline, 'transforms', [])
        if getattr(t, '_methods_with_randomness', None)
    ]
    if randomised:
        print_log(
            f'the training set is wrapped in {type(dataset).__name__}, which '
            f'passes plain indices to the datasets it holds: the '
            f"sampler's per-sample augmentation seeds do not reach their "
            f'pipelines, so {", ".join(sorted(set(randomised)))} draw from '
            f"each dataloader worker's global random state (the "
            f'augmentations change with num_workers, and a resumed run '
            f'does not repeat them). Combine datasets with '
            f'ConcatReIDDataset, which passes the seeds on, and repeat by '
            f'epochs rather than RepeatDataset.',
            logger='current',
            level=logging.WARNING)
