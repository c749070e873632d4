"""mmengine's Runner with mmreid's checkpoint rules."""
import os
from typing import Callable, Union

from mmengine.model import is_model_wrapper
from mmengine.runner import Runner, find_latest_checkpoint
from mmengine.runner.checkpoint import _load_checkpoint

from mmreid.registry import RUNNERS

#: How a user of the tools turns strict loading off (quoted in errors).
STRICT_OPT_OUT = ('`--strict false` (tools/test.py, tools/dist_test.sh, '
                  'tools/train.py) or `load_strict = False` in the config')


def check_loop_reads_a_dataloader(mode: str, loop_cfg, dataloader) -> None:
    """Refuse a single-target loop over a multi-target base's placeholder.

    Multi-target dataset configs (``configs/_base_/datasets/synthreid.py``,
    SynthReID v2) set ``<mode>_dataloader = dict()`` and leave the loop to
    the leaf config. A leaf that keeps a schedule's plain ``ValLoop`` would
    otherwise fail deep in mmengine with ``KeyError: ... got {}``, after the
    training set was built.

    Args:
        mode (str): ``'val'`` or ``'test'``.
        loop_cfg: ``<mode>_cfg`` as given to the runner.
        dataloader: ``<mode>_dataloader`` as given to the runner.

    Raises:
        ValueError: ``loop_cfg`` is a loop config without ``targets``
            (``{}`` included: mmengine's default loop) and ``dataloader``
            is an empty dict.
    """
    # An empty loop config is mmengine's default (single-target) loop.
    if not isinstance(loop_cfg, dict) or 'targets' in loop_cfg:
        return
    if not (isinstance(dataloader, dict) and not dataloader):
        return
    loop = 'MultiTargetValLoop' if mode == 'val' else 'MultiTargetTestLoop'
    raise ValueError(
        f'{mode}_dataloader is an empty placeholder, but {mode}_cfg '
        f'({dict(loop_cfg) or "empty: mmengine builds its default loop"}) '
        f'is a single-target loop that reads it. The '
        f'dataset config evaluates several targets (as '
        f'configs/_base_/datasets/synthreid.py, SynthReID v2, does): name '
        f'them in the loop, {mode}_cfg = dict(type={loop!r}, '
        f'targets={{{{_base_.{mode}_targets}}}}); for the first release of '
        f'SynthReID (d3 only) inherit '
        f'configs/_base_/datasets/synthreid_v1.py instead.')


@RUNNERS.register_module()
class ReIDRunner(Runner):
    """mmengine's ``Runner`` whose checkpoint loading follows mmreid's rules.

    mmengine loads ``load_from`` (and the checkpoint of ``tools/test.py``)
    with ``strict=False``: a model tensor the checkpoint lacks only gets a
    warning, and the model is evaluated with random weights in its place.
    Here every checkpoint goes through
    :func:`mmreid.utils.checkpoint.load_model_state`, the rules of
    :func:`mmreid.apis.init_model`:

    * a missing model tensor, or a checkpoint tensor the model does not
      have, is an error naming it; the config key
      ``load_strict = False`` (``--strict false`` in the tools) accepts a
      partial load with one warning;
    * a classifier of another size is skipped with one warning when
      testing (features do not use it) and is an error when training
      (``load_from``/resume, unless ``load_strict = False``), where it
      would silently restart from random weights;
    * a converted checkpoint (``meta.source_arch``, written by
      ``tools/model_converters``) is compared with the model and the test
      pipeline; a mismatch is refused with the ``--cfg-options`` to use.

    ``--resume`` in a work dir without checkpoints logs one line and starts
    at epoch 1 (requeued jobs use ``--resume`` on their first start too).
    """

    _training = False

    def __init__(self, *args, **kwargs) -> None:
        for mode in ('val', 'test'):
            check_loop_reads_a_dataloader(mode, kwargs.get(f'{mode}_cfg'),
                                          kwargs.get(f'{mode}_dataloader'))
        super().__init__(*args, **kwargs)

    def set_randomness(self,
                       seed,
                       diff_rank_seed: bool = False,
                       deterministic: bool = False) -> None:
        """mmengine's, after making cuBLAS deterministic when asked.

        mmengine's ``deterministic=True`` turns on
        ``torch.use_deterministic_algorithms``, under which older torch
        releases raise on every CUDA GEMM unless ``CUBLAS_WORKSPACE_CONFIG``
        is set (see
        :func:`~mmreid.utils.setup_env.setup_deterministic_cublas`).
        """
        if deterministic:
            from mmengine.logging import print_log

            from mmreid.utils.setup_env import (CUBLAS_WORKSPACE_VAR,
                                                setup_deterministic_cublas)
            if setup_deterministic_cublas():
                import torch
                late = (' (CUDA was already initialised in this process: '
                        'if a CUDA matrix product ran before, torch has '
                        'read the variable already; set it before starting '
                        'Python)' if torch.cuda.is_initialized() else '')
                print_log(
                    f'randomness.deterministic=True: set '
                    f'{CUBLAS_WORKSPACE_VAR}='
                    f'{os.environ[CUBLAS_WORKSPACE_VAR]} for deterministic '
                    f'cuBLAS{late}.',
                    logger='current')
        super().set_randomness(
            seed, diff_rank_seed=diff_rank_seed, deterministic=deterministic)

    def train(self):
        self._training = True
        try:
            return super().train()
        finally:
            self._training = False

    def build_optim_wrapper(self, optim_wrapper):
        """mmengine's, after checking the optimizer type (see
        :func:`~mmreid.utils.registry_suggestions.check_optimizer_type`)."""
        from mmreid.registry import OPTIMIZERS
        from mmreid.utils.registry_suggestions import check_optimizer_type
        check_optimizer_type(optim_wrapper, OPTIMIZERS)
        return super().build_optim_wrapper(optim_wrapper)

    def load_or_resume(self) -> None:
        if (not self._has_loaded and self._resume and self._load_from is None
                and find_latest_checkpoint(self.work_dir) is None):
            self.logger.info(f'--resume: no checkpoint found in '
                             f'{self.work_dir}; training starts from epoch '
                             '1.')
            self._resume = False
        super().load_or_resume()

    def load_checkpoint(self,
                        filename: str,
                        map_location: Union[str, Callable] = 'cpu',
                        strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]):
        """Load ``filename`` into the model with mmreid's rules.

        Args:
            filename (str): Path or URL.
            map_location (str | Callable): As :func:`torch.load`.
            strict (bool): Ignored unless True; the config's
                ``load_strict`` (default True) decides.
            revise_keys (list): Unused: a ``module.`` prefix is stripped
                and no other renaming is done (a checkpoint that needs it
                goes through ``tools/model_converters``).

        Returns:
            dict: The loaded checkpoint.
        """
        from mmreid.utils.checkpoint import load_model_state
        from mmreid.utils.source_arch import check_source_arch
        checkpoint = _load_checkpoint(filename, map_location=map_location)
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(
            self.model) else self.model
        strict = strict or bool(self.cfg.get('load_strict', True))
        meta = checkpoint.get('meta') if isinstance(checkpoint, dict) \
            else None
        check_source_arch(
            meta,
            model,
            self.cfg,
            filename,
            test=not self._training,
            strict=strict)
        load_model_state(
            model,
            checkpoint,
            filename,
            strict=strict,
            skip_other_classifier=not (self._training and strict),
            opt_out=STRICT_OPT_OUT)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint
