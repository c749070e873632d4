"""Reading a config for a run.

:func:`read_config` is ``Config.fromfile`` after mmreid's modules are
registered and the checks of the config's bases
(:mod:`mmreid.utils.config.bases`); :func:`load_config` adds the
``--cfg-options`` (:mod:`mmreid.utils.config.options`), the work dir and
mmreid's evaluation loops. ``tools/train.py``, ``tools/test.py``, the
other tools and the API read a config through them; what the tools'
runtime flags do to it is in :mod:`mmreid.utils.config.runtime`.
"""
import os.path as osp
from typing import Optional

from mmengine.config import Config

from .bases import (check_base_files, check_base_placeholders,
                    check_base_variables, check_package_bases)
from .keys import TRAINING_ONLY_KEYS
from .options import merge_cfg_options
from .paths import check_config_file
from .runtime import check_auto_scale_lr
from .top_level import check_top_level_names


def load_config(path: str,
                cfg_options: Optional[dict] = None,
                work_dir: Optional[str] = None,
                launcher: str = 'none',
                phase: str = 'train') -> Config:
    """Read a config, apply ``--cfg-options`` and pick the work dir.

    The work dir is, in order: ``work_dir``, the config's ``work_dir``, or
    ``./work_dirs/<config name>``. ``phase`` is what the run does
    (``'train'`` or ``'test'``), see :func:`read_config`; a training
    config's ``auto_scale_lr`` key that mmengine does not read is refused
    (:func:`~mmreid.utils.config.runtime.check_auto_scale_lr`).
    """
    cfg = read_config(path, phase)
    cfg.launcher = launcher
    merge_cfg_options(cfg, cfg_options, path, phase=phase)
    if phase == 'train':
        check_auto_scale_lr(cfg.get('auto_scale_lr', None))
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(path))[0])
    use_reid_loops(cfg)
    return cfg


def use_reid_loops(cfg: Config) -> None:
    """Evaluate with mmreid's loops when the config names no loop type.

    mmengine builds its own ``ValLoop``/``TestLoop`` for a ``val_cfg`` or
    ``test_cfg`` without ``type``; those never hand the model's distance
    (GMN's M-Net) to the metric. ``ReIDValLoop``/``ReIDTestLoop`` do, with
    the same iterations and keys otherwise.
    """
    for key, loop in (('val_cfg', 'ReIDValLoop'), ('test_cfg',
                                                   'ReIDTestLoop')):
        loop_cfg = cfg.get(key, None)
        if isinstance(loop_cfg, dict) and 'type' not in loop_cfg:
            loop_cfg['type'] = loop


def read_config(path: str, phase: str = 'train') -> Config:
    """``Config.fromfile`` after mmreid's own classes are registered.

    ``Config.fromfile`` runs the config's ``custom_imports``. A user's
    module that replaces an mmreid class
    (``@MODELS.register_module(name='TripletLoss', force=True)``) must run
    after mmreid's module registered it: in the other order mmreid's
    import fails with "TripletLoss is already registered", blaming the
    user's module.

    A path that names no file is refused with the closest config names
    (:func:`~mmreid.utils.config.paths.check_config_file`), as by every
    tool. A base named by a package that mmengine cannot resolve
    (``'mmreid::baseline/...'``) is refused first
    (:func:`~mmreid.utils.config.bases.check_package_bases`), and so is a
    base path that names no file
    (:func:`~mmreid.utils.config.bases.check_base_files`), a
    ``{{_base_.name}}`` inside an expression
    (:func:`~mmreid.utils.config.bases.check_base_placeholders`) and a
    top-level name that looks like a misspelt key the run reads
    (``randomnes``, see
    :func:`~mmreid.utils.config.top_level.check_top_level_names`). It then
    refuses a config that redefines a variable its base already
    substituted (:func:`~mmreid.utils.config.bases.check_base_variables`);
    for ``phase='test'`` only in the sections a test reads.

    Args:
        path (str): The config file.
        phase (str): ``'train'`` (every section) or ``'test'``.

    Returns:
        Config: The config.
    """
    from ..setup_env import register_all_modules
    if phase not in ('train', 'test'):
        raise ValueError(f"phase must be 'train' or 'test', got {phase!r}")
    register_all_modules(init_default_scope=False)
    check_config_file(path)
    check_package_bases(path)
    check_base_files(path)
    check_base_placeholders(path)
    check_top_level_names(path)
    cfg = Config.fromfile(path)
    check_base_variables(
        path, cfg, ignore=TRAINING_ONLY_KEYS if phase == 'test' else ())
    return cfg
