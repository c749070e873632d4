"""Checkpoint mappings that only an initialisation may apply.

Some modules accept, on load, the tensors of a simpler network and map them
onto their own: :class:`~mmreid.models.layers.MBN` copies a plain BN's
statistics to every modality, :class:`~mmreid.models.backbones.AGWResNet`
copies a single-stream stem (``conv1``, ``bn1``) into every modality's
stem. That is how an ImageNet network initialises them. A trained model's
checkpoint is loaded inside :func:`trained_model_load`, which turns every
such mapping off: there the simpler network's tensors are *another model*,
refused (:func:`init_only_sources` names them) rather than tested under
this model's name.

A module that maps declares it with

- ``init_mapping_sources(state_dict, prefix) -> bool``: whether
  ``state_dict`` holds, under ``prefix``, the tensors it would map (and
  not its own);
- ``init_mapping_source`` (str): what those tensors are, and
  ``init_mapping_model`` (str): which trained model holds them.

Its load hook maps only while :func:`init_mappings_on` is true.
"""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Tuple

import torch
import torch.nn as nn

#: ``(source, names, trained_as)``: see :func:`init_only_sources`.
Kind = Tuple[str, List[str], str]
# Depth of the ``trained_model_load`` blocks being run (0: mappings on).
_TRAINED_MODEL_LOADS = [0]


@contextmanager
def trained_model_load() -> Iterator[None]:
    """Turn off every initialisation mapping in the block (see the module
    docstring); :func:`mmreid.utils.model_state.load_model_state` loads a
    trained model's checkpoint inside it."""
    _TRAINED_MODEL_LOADS[0] += 1
    try:
        yield
    finally:
        _TRAINED_MODEL_LOADS[0] -= 1


def init_mappings_on() -> bool:
    """Whether load hooks may map a simpler network's tensors."""
    return _TRAINED_MODEL_LOADS[0] == 0


def init_only_sources(model: nn.Module,
                      state_dict: Dict[str, torch.Tensor]) -> List[Kind]:
    """The modules of ``model`` whose tensors ``state_dict`` holds only in
    the simpler network's form, grouped by kind.

    Args:
        model (nn.Module): A bare model (names without ``module.``).
        state_dict (dict[str, Tensor]): Keys named as in ``model``.

    Returns:
        list[tuple[str, list[str], str]]: ``(source, names, trained_as)``
        per kind, in the model's order: what the tensors are
        (``init_mapping_source``), the modules' names, and the model they
        come from (``init_mapping_model``).
    """
    groups: Dict[Tuple[str, str], List[str]] = {}
    for name, module in model.named_modules():
        sources = getattr(module, 'init_mapping_sources', None)
        if sources is None:
            continue
        prefix = f'{name}.' if name else ''
        if sources(state_dict, prefix):
            kind = (module.init_mapping_source, module.init_mapping_model)
            groups.setdefault(kind, []).append(name)
    return [(source, names, trained_as)
            for (source, trained_as), names in groups.items()]
