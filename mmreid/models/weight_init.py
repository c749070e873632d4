from typing import Dict, Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model.weight_init import update_init_info
from mmengine.runner.checkpoint import _load_checkpoint

from mmreid.registry import WEIGHT_INITIALIZERS


def extract_state_dict(checkpoint,
                       prefix: Optional[str] = None,
                       source: str = '') -> Dict[str, torch.Tensor]:
    """The tensors of a checkpoint, optionally under ``prefix``.

    Accepts a bare state dict or one wrapped in ``state_dict``/``model``;
    strips a DataParallel ``module.`` prefix.
    """
    if not isinstance(checkpoint, dict):
        raise TypeError(f'checkpoint {source!r} holds a '
                        f'{type(checkpoint).__name__}, expected a dict')
    for key in ('state_dict', 'model'):
        if key in checkpoint and isinstance(checkpoint[key], dict):
            checkpoint = checkpoint[key]
            break
    state_dict = {
        (k[len('module.'):] if k.startswith('module.') else k): v
        for k, v in checkpoint.items() if isinstance(v, torch.Tensor)
    }
    if prefix:
        if not prefix.endswith('.'):
            prefix += '.'
        picked = {
            k[len(prefix):]: v
            for k, v in state_dict.items() if k.startswith(prefix)
        }
        if not picked:
            raise KeyError(f'no key of checkpoint {source!r} starts with '
                           f'prefix {prefix!r}; first keys: '
                           f'{sorted(state_dict)[:5]}')
        state_dict = picked
    return state_dict


def load_pretrained(module: nn.Module,
                    checkpoint: str,
                    prefix: Optional[str] = None,
                    map_location: str = 'cpu') -> dict:
    """Load pretrained weights into ``module`` and report the key match.

    Missing and unexpected keys are logged by name; a checkpoint that
    matches *no* parameter of the module is an error (the usual cause is a
    wrong ``prefix``), never a silently random-initialised model.

    Returns:
        dict: ``loaded``, ``missing`` and ``unexpected`` key lists.
    """
    state_dict = extract_state_dict(
        _load_checkpoint(checkpoint, map_location=map_location), prefix,
        checkpoint)
    own = module.state_dict()
    loaded = sorted(k for k in state_dict if k in own)
    if not loaded:
        raise RuntimeError(
            f'checkpoint {checkpoint!r} (prefix={prefix!r}) matches no key '
            f'of {type(module).__name__}. Checkpoint keys start with '
            f'{sorted(state_dict)[:3]}, the module expects '
            f'{sorted(own)[:3]}. Set init_cfg.prefix accordingly.')
    incompatible = module.load_state_dict(state_dict, strict=False)
    missing = [
        k for k in incompatible.missing_keys
        if not k.endswith('num_batches_tracked')
    ]
    unexpected = list(incompatible.unexpected_keys)
    print_log(
        f'{type(module).__name__}: loaded {len(loaded)} of {len(own)} '
        f'tensors from {checkpoint}' +
        (f'; missing keys ({len(missing)}): {", ".join(missing)}'
         if missing else '') +
        (f'; unexpected keys ({len(unexpected)}): {", ".join(unexpected)}'
         if unexpected else ''),
        logger='current',
        level=30 if missing or unexpected else 20)
    return dict(loaded=loaded, missing=missing, unexpected=unexpected)


@WEIGHT_INITIALIZERS.register_module(name='Pretrained')
class ReportingPretrainedInit:
    """``init_cfg=dict(type='Pretrained', checkpoint=...)`` for mmreid.

    Same arguments as mmengine's ``Pretrained``, which it replaces in the
    mmreid scope; it reports the key match (see :func:`load_pretrained`) and
    loads through mmreid's safe loaders (tensors only for downloads).

    Args:
        checkpoint (str): A path or an ``http(s)://`` URL.
        prefix (str, optional): Only keys under this prefix are loaded, with
            the prefix removed (e.g. ``'backbone.'``).
        map_location (str): Defaults to ``'cpu'``.
    """

    def __init__(self,
                 checkpoint: str,
                 prefix: Optional[str] = None,
                 map_location: str = 'cpu') -> None:
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.map_location = map_location

    def __call__(self, module: nn.Module) -> None:
        load_pretrained(module, self.checkpoint, self.prefix,
                        self.map_location)
        if hasattr(module, '_params_init_info'):
            update_init_info(
                module,
                init_info=f'{type(self).__name__}: load from '
                f'{self.checkpoint}')
