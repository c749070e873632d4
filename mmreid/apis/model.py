"""Build a model from a config or the model zoo and load its weights."""
import copy
import os.path as osp
from pathlib import Path
from typing import Optional, Union

import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner.checkpoint import _load_checkpoint

from mmreid.registry import MODELS
from .model_zoo import get_model_info


def _load_config(config: Union[str, Path, Config],
                 cfg_options: Optional[dict] = None) -> Config:
    from mmreid.utils.config import read_config
    from mmreid.utils.config.options import merge_cfg_options
    if isinstance(config, (str, Path)):
        config = read_config(str(config), phase='test')
    elif isinstance(config, Config):
        config = copy.deepcopy(config)
    else:
        raise TypeError(f'config must be a path or a Config, got '
                        f'{type(config).__name__}')
    merge_cfg_options(
        config,
        cfg_options,
        config.filename or 'the config',
        option='cfg_options',
        phase='test')
    return config


def _load_weights(model: nn.Module,
                  config: Config,
                  checkpoint: str,
                  strict: bool,
                  overrides: str = 'cfg_options',
                  opt_out: str = 'init_model(..., strict=False)') -> None:
    """Load ``checkpoint`` into ``model`` with mmreid's rules.

    See :func:`mmreid.utils.model_state.load_model_state` (the rules every
    entry point shares): a missing model tensor is an error, a classifier
    of another shape (a checkpoint trained on other identities) is skipped
    with one warning, since test features do not use it. A converted
    checkpoint whose source network differs from the config is refused
    (:func:`mmreid.utils.arch_check.check_source_arch`).

    ``overrides`` and ``opt_out`` word the refusals for the caller's user
    (``init_model``'s by default; ``tools/extract_features.py`` gives its
    own): how to override config keys (``'cfg_options'`` or
    ``'--cfg-options'``) and what accepts a partial load or another
    config, quoted in the messages.
    """
    from mmreid.utils.arch_check import check_source_arch
    from mmreid.utils.model_state import check_model_fits, load_model_state

    # Goes through mmreid's safe loaders: tensors only for URLs.
    loaded = _load_checkpoint(checkpoint, map_location='cpu')
    meta = loaded.get('meta') if isinstance(loaded, dict) else None
    # Another depth first: the source network's settings come after.
    check_model_fits(
        model,
        loaded,
        checkpoint,
        strict=strict,
        cfg=config,
        before_config_checks=True)
    check_source_arch(
        meta,
        model,
        config,
        checkpoint,
        test=True,
        api=True,
        strict=strict,
        overrides=overrides,
        opt_out=opt_out)
    load_model_state(
        model, loaded, checkpoint, strict=strict, opt_out=opt_out, cfg=config)


def init_model(config: Union[str, Path, Config],
               checkpoint: Optional[str] = None,
               device: Union[str, torch.device] = 'cpu',
               cfg_options: Optional[dict] = None,
               strict: bool = True,
               target: Optional[str] = None,
               command: Optional[str] = None) -> nn.Module:
    """Build the model of a config and load a checkpoint into it.

    The model's own pretrained ``init_cfg`` (e.g. ImageNet weights) is not
    applied: nothing is downloaded unless ``checkpoint`` is a URL.

    Args:
        config (str | Path | Config): Config file or object.
        checkpoint (str, optional): Path or ``http(s)://`` URL (downloaded
            to the torch hub cache, hash in the file name verified, loaded
            tensors only). Defaults to None (random weights).
        device (str | torch.device): Defaults to ``'cpu'``.
        cfg_options (dict, optional): Overrides merged into the config.
        strict (bool): A checkpoint that lacks any model tensor or holds
            one the model does not have, or a converted checkpoint whose
            source network differs from the config, is an error. Defaults
            to True.
        target (str, optional): For a config with a multi-target test loop
            whose targets' pipelines differ: the name of the target
            (``test_cfg.targets[i].name``) whose test pipeline
            :func:`~mmreid.apis.extract_features` and
            :func:`~mmreid.apis.rank_gallery` run. Defaults to None (the
            one pipeline of the config; refused where they differ).
        command (str, optional): The command-line tool that calls, e.g.
            ``'tools/extract_features.py'``: a refused checkpoint's advice
            then names its ``--cfg-options`` and says that it has no
            switch for a partial load. Defaults to None (advice in this
            function's arguments).

    Returns:
        nn.Module: The model in eval mode, with the config as ``model.cfg``
        and ``target`` as ``model.test_target``.
    """
    config = _load_config(config, cfg_options)
    if target is not None:
        # Refuse an unknown name here, not at the first extraction.
        from mmreid.utils.pipeline_source import resolve_test_pipeline
        resolve_test_pipeline(
            config, target, option='init_model(..., target={})')
    init_default_scope(config.get('default_scope', 'mmreid'))
    model_cfg = config.model.to_dict() if hasattr(config.model, 'to_dict') \
        else dict(config.model)
    model = MODELS.build(model_cfg)
    if checkpoint is not None:
        wording = {} if command is None else dict(
            overrides='--cfg-options',
            opt_out=f'init_model(..., strict=False) from Python ({command} '
            'has no such switch)')
        _load_weights(model, config, str(checkpoint), strict, **wording)
    model.cfg = config
    model.test_target = target
    model.to(device)
    model.eval()
    return model


def get_model(name_or_config: Union[str, Path, Config],
              pretrained: Union[bool, str] = False,
              device: Union[str, torch.device] = 'cpu',
              **kwargs) -> nn.Module:
    """A model from the model zoo by name, or from a config.

    Args:
        name_or_config (str | Path | Config): A name from
            :func:`list_models` or a config file/object.
        pretrained (bool | str): ``True`` loads the model zoo's ``Weights``
            (an error if it has none), a string is a checkpoint path or URL,
            ``False`` (default) gives random weights.
        device (str | torch.device): Defaults to ``'cpu'``.
        **kwargs: Passed to :func:`init_model` (``cfg_options``,
            ``strict``, ``target``).

    Returns:
        nn.Module: The model in eval mode.
    """
    name = None
    config = name_or_config
    if isinstance(name_or_config, str) and not osp.isfile(name_or_config) \
            and not name_or_config.endswith('.py'):
        name = name_or_config
        info = get_model_info(name)
        config = info.config
    checkpoint = None
    if pretrained is True:
        if name is None:
            raise ValueError('pretrained=True needs a model zoo name; for a '
                             'config, pass the checkpoint path or URL')
        if not info.weights:
            raise ValueError(f'model {name!r} has no released weights; pass '
                             'pretrained=<path or URL> of your own '
                             'checkpoint')
        checkpoint = info.weights
    elif isinstance(pretrained, (str, Path)):
        checkpoint = str(pretrained)
    elif pretrained is not False and pretrained is not None:
        raise TypeError(f'pretrained must be a bool, a path or a URL, got '
                        f'{pretrained!r}')
    return init_model(config, checkpoint, device=device, **kwargs)


__all__ = ['init_model', 'get_model']
