"""What gradient accumulation changes, checked and stated before training.

With ``optim_wrapper.accumulative_counts=k`` mmengine updates the weights
once every k steps, with the mean of their gradients: the update of a
batch of k x (processes x ``batch_size``) images. Used by
:class:`~mmreid.engine.hooks.setup_check_hook.TrainSetupCheckHook`.
"""
from typing import Any, Dict, Iterable, List

from mmengine.hooks import EMAHook


def accumulative_counts(optim_wrapper: Any) -> Dict[str, int]:
    """The steps per update of each optimizer.

    Args:
        optim_wrapper: The runner's built ``optim_wrapper``: an
            ``OptimWrapper``, an ``OptimWrapperDict`` or None.

    Returns:
        dict: ``{'optim_wrapper': k}`` for one wrapper,
        ``{'optim_wrapper.<name>': k}`` for each of an
        ``OptimWrapperDict``; 1 where the wrapper does not accumulate.
    """
    items = getattr(optim_wrapper, 'optim_wrappers', None)
    if isinstance(items, dict):
        return {
            f'optim_wrapper.{name}': getattr(w, '_accumulative_counts', 1)
            for name, w in items.items()
        }
    return {'optim_wrapper': getattr(optim_wrapper, '_accumulative_counts', 1)}


def check_ema_with_accumulation(hooks: Iterable[Any],
                                counts: Dict[str, int]) -> None:
    """Refuse an ``EMAHook`` with gradient accumulation.

    mmengine's ``EMAHook`` averages the weights after every step, also
    after the k - 1 of every k that do not change them, so each update's
    weights would enter the average k times (momentum m acting as
    ``1 - (1 - m) ** k``): the averaged copy, validated and saved, would
    not be the recipe's. (A hook averaging once per update could lift
    this.)

    Args:
        hooks (Iterable[Hook]): The runner's hooks.
        counts (dict): :func:`accumulative_counts`.

    Raises:
        ValueError: Naming the hook, ``accumulative_counts`` and what the
            momentum would act as.
    """
    key, k = max(counts.items(), key=lambda item: item[1])
    if k <= 1:
        return
    for hook in hooks:
        if not isinstance(hook, EMAHook):
            continue
        momentum = getattr(getattr(hook, 'ema_model', None), 'momentum', None)
        acts = ('' if not isinstance(momentum, float) else
                f' (momentum={momentum:g} would act as '
                f'{1 - (1 - momentum) ** k:g})')
        raise ValueError(
            f'{type(hook).__name__} with {key}.accumulative_counts={k}: the '
            'hook averages the weights after every step, also after the '
            f'{k - 1} of every {k} that do not update them, so each update '
            f'would enter the average {k} times{acts} and the averaged '
            'model, validated and saved, would not be the configured one. '
            'Train without accumulation to use the hook, or remove it.')


def accumulation_text(step_batch: int, counts: Dict[str, int],
                      mining: List[str], process_batch: int) -> str:
    """The update batch of the start-up batch line.

    Args:
        step_batch (int): Images per step over all processes.
        counts (dict): :func:`accumulative_counts`; all 1: no accumulation.
        mining (list[str]): The losses that mine within a batch
            (``needs_positives`` or ``needs_negatives``).
        process_batch (int): Images per step of one process.

    Returns:
        str: ``''`` without accumulation, else e.g. ``' x 8 accumulated
        (optim_wrapper.accumulative_counts=8) = 64 per update'``, with
        ``'; TripletLoss mines within each step's 8 images, not the
        update's 64'`` where a loss mines within a batch.
    """
    accumulated = {key: k for key, k in counts.items() if k > 1}
    if not accumulated:
        return ''
    if len(set(counts.values())) > 1:
        shown = ', '.join(f'{key}.accumulative_counts={k}'
                          for key, k in counts.items())
        text = f' ({shown})'
    else:
        key, k = next(iter(accumulated.items()))
        text = (f' x {k} accumulated ({key}.accumulative_counts={k}) = '
                f'{step_batch * k} per update')
    if mining:
        text += (f' ({", ".join(mining)} mines within each step\'s '
                 f'{process_batch} images per process, not within the '
                 'update\'s)')
    return text
