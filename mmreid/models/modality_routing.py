"""Model-wide modality routing: labels travel from the data to the modules.

A module that treats samples by their modality (an ``MBN`` norm layer, a
two-stream backbone) is *modality-aware*: it has a ``set_modality(labels)``
method. ``ReIDModel`` reads each data sample's ``metainfo['modality']`` and
hands the labels to every such submodule with :func:`set_modality` before
the forward pass; the modules check them with
:func:`check_modality_labels` and split the batch with
:func:`modality_groups`. Nothing here depends on a particular method.
"""
import contextlib
import numbers
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn

from mmreid.utils.labels import integer_label

#: One label per sample, or one int for a single-modality batch.
ModalityLabels = Union[int, Sequence[int], torch.Tensor]


def modality_groups(
        labels: torch.Tensor, num_modalities: int
) -> Tuple[List[torch.Tensor], Optional[torch.Tensor]]:
    """Indices of each modality and the permutation that restores order.

    Args:
        labels (Tensor): Modality of each sample, shape (N,), int64.
        num_modalities (int): Number of modalities M.

    Returns:
        tuple: ``indices`` (M index tensors; empty for an absent modality)
        and ``inverse`` (N,) such that ``torch.cat([y[idx] for idx in
        indices])[inverse] == y``; ``inverse`` is None when the samples
        are already sorted by modality (the [VIS block; IR block] layout),
        where a plain split suffices.
    """
    indices = [
        torch.nonzero(labels == k, as_tuple=False).flatten()
        for k in range(num_modalities)
    ]
    if labels.numel() < 2 or bool((labels[1:] >= labels[:-1]).all()):
        return indices, None
    order = torch.cat(indices)
    return indices, torch.argsort(order)


def check_modality_labels(labels: Optional[ModalityLabels], batch_size: int,
                          num_modalities: int, device: torch.device,
                          owner: str) -> torch.Tensor:
    """Validate modality labels and return them as (N,) int64 on device."""
    if labels is None:
        raise RuntimeError(
            f'{owner}: no modality labels were set. Call set_modality('
            f'model, labels) (ReIDModel does it from each data sample\'s '
            f'metainfo["modality"]) before the forward pass')
    if isinstance(labels, (numbers.Number, np.bool_)):
        labels = torch.full((batch_size, ),
                            integer_label(labels, f'{owner}: the modality'),
                            dtype=torch.long)
    labels = torch.as_tensor(labels, device=device)
    _check_integer_dtype(labels.dtype, owner)
    labels = labels.long().flatten()
    if labels.numel() != batch_size:
        raise ValueError(
            f'{owner}: got {labels.numel()} modality labels for a batch of '
            f'{batch_size} samples; set_modality must be called with one '
            f'label per sample of the batch')
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_modalities):
        raise ValueError(
            f'{owner}: modality labels must be in [0, {num_modalities}), '
            f'got {sorted(set(labels.tolist()))}')
    return labels


def as_modality_labels(labels: ModalityLabels) -> Union[int, torch.Tensor]:
    """One int for a single-modality batch, else labels as (N,) int64."""
    if isinstance(labels, (numbers.Number, np.bool_)):
        return integer_label(labels, 'the modality')
    if not isinstance(labels, torch.Tensor):
        labels = list(labels)
        labels = torch.as_tensor(labels) if labels else torch.zeros(
            0, dtype=torch.long)
    _check_integer_dtype(labels.dtype, 'set_modality')
    return labels.detach().long().flatten()


def _check_integer_dtype(dtype: torch.dtype, owner: str) -> None:
    """Refuse labels that ``.long()`` would change: floats (0.7 would be
    visible) and bools (True infrared)."""
    if dtype.is_floating_point or dtype.is_complex or dtype == torch.bool:
        raise TypeError(
            f'{owner}: modality labels must be integers (0 visible, 1 '
            f'infrared), got dtype {dtype}; they are not converted')


def modality_aware_modules(model: nn.Module) -> List[nn.Module]:
    """Submodules (``model`` included) that take modality labels.

    A module is modality-aware if it has a callable ``set_modality``
    method, e.g. an ``MBN`` norm layer or a two-stream backbone.
    """
    return [
        m for m in model.modules()
        if callable(getattr(m, 'set_modality', None))
    ]


def check_modality_options(model: nn.Module,
                           options: Dict[str, Optional[int]],
                           example: str = '') -> None:
    """Refuse modalities for a model that would ignore them, and ask for
    those a model needs, naming each as the caller names it.

    Args:
        model (nn.Module): The built model.
        options (dict[str, int | None]): The caller's name of each
            modality option (``'--modality'``, ``'query_modality'``) and
            the value given (0 visible, 1 infrared) or None.
        example (str): An example of the options, for the message asking
            for them (e.g. ``'query_modality=1, gallery_modality=0:
            infrared queries, a visible gallery'``).

    Raises:
        ValueError: A modality for a model without modality-aware modules
            (its features do not depend on it), or None for a model with
            them.
    """
    aware = sorted({type(m).__name__ for m in modality_aware_modules(model)})
    given = {name: v for name, v in options.items() if v is not None}
    if given and not aware:
        shown = ', '.join(f'{name}={value}' for name, value in given.items())
        raise ValueError(
            f'{shown} given, but the model has no modality-aware modules '
            '(MBN norm layers, a two-stream backbone): its features do not '
            'depend on the modality, so the value would be ignored. Leave '
            f'{" and ".join(given)} out')
    missing = [name for name in options if name not in given]
    if aware and missing:
        raise ValueError(
            f'the model has modality-aware modules ({", ".join(aware)}): it '
            f'needs {" and ".join(missing)}, each 0 (visible) or 1 '
            '(infrared), the modality of those images' +
            (f' (e.g. {example})' if example else ''))


def check_modality_option(model: nn.Module,
                          modality: Optional[int],
                          option: str = '--modality') -> None:
    """:func:`check_modality_options` for one option: the rule of the
    tools that take one modality for all images (``pytorch2onnx.py``,
    ``extract_features.py --images``).

    Args:
        model (nn.Module): The built model.
        modality (int, optional): The modality given, or None.
        option (str): How the caller names it, for the messages.
    """
    check_modality_options(model, {option: modality})


def set_modality(model: nn.Module, labels: Optional[ModalityLabels]) -> int:
    """Set modality labels on every modality-aware submodule of ``model``.

    Args:
        model (nn.Module): Any module.
        labels (int | Sequence[int] | Tensor | None): One modality per
            sample (shape (N,)), one int for a single-modality batch, or
            None to clear them (see e.g. ``MBN.set_modality``).

    Returns:
        int: The number of modules that received the labels.
    """
    modules = modality_aware_modules(model)
    value = None if labels is None else as_modality_labels(labels)
    for m in modules:
        m.set_modality(value)
    return len(modules)


@contextlib.contextmanager
def modality_context(model: nn.Module,
                     labels: ModalityLabels) -> Iterator[nn.Module]:
    """Run a block with ``labels`` set on ``model``; clear them after.

    Example:
        >>> with modality_context(backbone, [0, 0, 1, 1]):
        ...     feats = backbone(images)
    """
    set_modality(model, labels)
    try:
        yield model
    finally:
        set_modality(model, None)


__all__ = [
    'ModalityLabels', 'as_modality_labels', 'check_modality_labels',
    'modality_groups', 'modality_aware_modules', 'check_modality_option',
    'check_modality_options', 'set_modality', 'modality_context'
]
