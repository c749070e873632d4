"""Runtime arguments of ``tools/train.py`` and ``tools/test.py``: the
options they share (``--cfg-options``, ``--launcher``, ``--local-rank``)
and the launcher's environment, and what their flags do to the config
and the run before and after the runner (``--amp``, ``--auto-scale-lr``,
``--no-validate``, a CPU-only distributed run, ``--out``, the end of a
distributed run)."""
import datetime
import logging
import numbers
import os
import sys
import warnings
from typing import Optional

import torch
from mmengine.config import Config

from ..atomic import open_atomic
from .options import ReIDDictAction


def add_runtime_args(parser, cfg_example: str) -> None:
    """The options ``tools/train.py`` and ``tools/test.py`` share.

    ``--cfg-options``, ``--launcher`` and ``--local-rank`` (passed by
    ``torch.distributed.launch``; torchrun sets ``LOCAL_RANK`` instead).
    """
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=ReIDDictAction,
        help=f'override config keys, e.g. {cfg_example}')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runtime_args(parser):
    """Parse, exporting LOCAL_RANK for launchers that pass it as a flag;
    a ``--launcher`` whose environment is missing is a usage error
    (:func:`check_launcher_env`)."""
    args = parser.parse_args()
    try:
        check_launcher_env(args.launcher)
    except ValueError as error:
        parser.error(str(error))
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    return args


#: ``--launcher`` -> (the environment variables mmengine starts the
#: process group from, what sets them).
LAUNCHER_ENV = dict(
    pytorch=(('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'),
             'torchrun: start the run with `bash tools/dist_train.sh CONFIG '
             'GPUS [options]` or `bash tools/dist_test.sh CONFIG CHECKPOINT '
             'GPUS [options]`'),
    slurm=(('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST'),
           'srun: start the run with `bash tools/slurm_train.sh` or '
           '`bash tools/slurm_test.sh`'),
    mpi=(('OMPI_COMM_WORLD_LOCAL_RANK', 'OMPI_COMM_WORLD_RANK',
          'OMPI_COMM_WORLD_SIZE'),
         'mpirun: start the run with `mpirun -np N python tools/train.py '
         '... --launcher mpi` (or tools/test.py)'))


def check_launcher_env(launcher: str, environ: Optional[dict] = None) -> None:
    """Refuse a ``--launcher`` whose process was not started by it.

    ``--launcher pytorch`` without torchrun ended in torch's "Error
    initializing torch.distributed using env:// rendezvous: environment
    variable RANK expected, but not set" (``slurm`` and ``mpi`` in a bare
    ``KeyError``).

    Args:
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or
            ``'mpi'``.
        environ (dict, optional): The environment; ``os.environ`` if None.

    Raises:
        ValueError: Naming the launcher, the missing variables and how to
            start the run.
    """
    if launcher not in LAUNCHER_ENV:
        return
    environ = os.environ if environ is None else environ
    names, starter = LAUNCHER_ENV[launcher]
    missing = [name for name in names if name not in environ]
    if missing:
        raise ValueError(
            f'--launcher {launcher}: {", ".join(missing)} '
            f'{"is" if len(missing) == 1 else "are"} not set, so this '
            f'process was not started by {starter}; for a single process, '
            f'leave --launcher out.')


def _require_cuda_for_amp(option: str = '--amp',
                          fix: str = 'run without --amp on the CPU') -> None:
    if not torch.cuda.is_available():
        raise RuntimeError(f'{option} needs a CUDA device, and none is '
                           f'available; {fix}.')


def check_amp_device(optim_wrapper) -> None:
    """The check of ``--amp`` for a config that sets AMP itself.

    mmengine's ``AmpOptimWrapper`` fails on the CPU with a bare
    ``AssertionError``; this names the key and the fp32 alternative.

    Args:
        optim_wrapper (dict | Any): The ``optim_wrapper`` config (or a
            built wrapper, which is left alone).

    Raises:
        RuntimeError: ``optim_wrapper.type`` is ``AmpOptimWrapper`` and
            there is no CUDA device.
    """
    if not isinstance(optim_wrapper, dict):
        return
    kind = optim_wrapper.get('type')
    name = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
    if name.rpartition('.')[2] == 'AmpOptimWrapper':
        _require_cuda_for_amp(
            f'optim_wrapper.type={name!r}',
            "to train in fp32 on the CPU, set optim_wrapper.type="
            "'OptimWrapper' and remove its AMP arguments (loss_scale, "
            'dtype)')


def check_loop_amp_device(fp16: bool, key: str) -> None:
    """The check of ``--amp`` for a val/test loop whose config sets
    ``fp16`` itself (``test_cfg.fp16=True``, ``val_cfg.fp16=True``).

    mmengine's ``autocast`` runs such a loop in bfloat16 on the CPU,
    without a word, where ``--amp`` is refused: the metrics got bf16
    features and reported other numbers than the fp32 run (and than
    ``mmreid.apis.extract_features``).

    Args:
        fp16 (bool): The loop's ``fp16``.
        key (str): Its config key, e.g. ``'test_cfg.fp16'``.

    Raises:
        RuntimeError: ``fp16`` is set and there is no CUDA device; names
            the key and the fp32 alternative.
    """
    if fp16:
        fix = (f'to evaluate in fp32 on the CPU, set {key}=False '
               f'(--cfg-options {key}=False)')
        _require_cuda_for_amp(f'{key}=True', fix)


def enable_amp(cfg: Config) -> None:
    """Switch the optimizer wrapper to mmengine's ``AmpOptimWrapper``.

    Raises:
        RuntimeError: Without a CUDA device (mmengine's AMP wrapper supports
            accelerators only); silently training in fp32 instead would
            change the numbers a user asked for.
    """
    _require_cuda_for_amp()
    optim_wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
    if optim_wrapper == 'AmpOptimWrapper':
        return
    if optim_wrapper != 'OptimWrapper':
        raise ValueError(f'--amp works with optim_wrapper.type '
                         f'"OptimWrapper", the config has {optim_wrapper!r}')
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')


def enable_amp_inference(cfg: Config) -> None:
    """Run the test loop under fp16 autocast (mmengine ``test_cfg.fp16``)."""
    _require_cuda_for_amp()
    cfg.test_cfg = cfg.get('test_cfg') or dict()
    cfg.test_cfg['fp16'] = True


#: The ``auto_scale_lr`` keys mmengine's ``Runner.scale_lr`` reads.
AUTO_SCALE_LR_KEYS = ('enable', 'base_batch_size')


def check_auto_scale_lr(auto_scale_lr) -> None:
    """Refuse an ``auto_scale_lr`` key that mmengine does not read.

    ``Runner.scale_lr`` reads ``enable`` and ``base_batch_size`` only; a
    misspelt key (``base_batchsize=8``, ``enabled=True``) merged into the
    base schedule's dict without a word, and the learning rate was scaled
    against the base's batch (or not at all).

    Args:
        auto_scale_lr: The config's ``auto_scale_lr`` (a dict, or None).

    Raises:
        ValueError: Naming the key, the closest read key and the keys
            read.
    """
    import difflib
    if not isinstance(auto_scale_lr, dict):
        return
    for key in auto_scale_lr:
        if key in AUTO_SCALE_LR_KEYS:
            continue
        close = difflib.get_close_matches(str(key), AUTO_SCALE_LR_KEYS, 1)
        hint = f' (did you mean {close[0]!r}?)' if close else ''
        raise ValueError(
            f'auto_scale_lr.{key}={auto_scale_lr[key]!r} is not read{hint}: '
            f'mmengine scales the learning rate by auto_scale_lr.enable and '
            f'auto_scale_lr.base_batch_size only, so the rate would be '
            f'scaled as if the key were not there '
            f'(auto_scale_lr is {dict(auto_scale_lr)!r}). Its keys are '
            f'{list(AUTO_SCALE_LR_KEYS)}.')


def enable_auto_scale_lr(cfg: Config, path: str) -> None:
    """``--auto-scale-lr``: scale the learning rate by the total batch.

    mmengine multiplies the learning rate by ``world_size * batch_size /
    auto_scale_lr.base_batch_size``; the base is the batch the config's
    learning rate was tuned for, and only the config can say it.

    Args:
        cfg (Config): The config; its ``auto_scale_lr.enable`` is set.
        path (str): The config file, for the error.

    Raises:
        ValueError: The config names no ``auto_scale_lr.base_batch_size``,
            or a key mmengine does not read (:func:`check_auto_scale_lr`).
    """
    auto_scale_lr = cfg.get('auto_scale_lr', None)
    check_auto_scale_lr(auto_scale_lr)
    if not isinstance(auto_scale_lr, dict) \
            or auto_scale_lr.get('base_batch_size') is None:
        raise ValueError(
            f'--auto-scale-lr needs auto_scale_lr.base_batch_size in the '
            f'config, the total batch its learning rate was tuned for '
            f'(e.g. auto_scale_lr = dict(base_batch_size=64) for a 1xb64 '
            f'config); {path} names none')
    auto_scale_lr['enable'] = True


def disable_validation(cfg: Config) -> None:
    """Train without evaluating between epochs.

    A ``default_hooks.checkpoint.save_best`` has nothing to select by: it
    is dropped with its ``rule``, with a log line (mmengine would keep no
    best checkpoint without a word; a list ``rule`` left without its
    ``save_best`` would fail in mmengine's ``CheckpointHook``).
    """
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator'):
        cfg[key] = None
    checkpoint = (cfg.get('default_hooks') or {}).get('checkpoint')
    if isinstance(checkpoint, dict) and checkpoint.get('save_best'):
        from mmengine.logging import print_log
        print_log(
            f'--no-validate: no best checkpoint is kept (default_hooks.'
            f'checkpoint.save_best={checkpoint["save_best"]!r} needs '
            f'validation); the interval and last checkpoints are saved',
            logger='current')
        checkpoint['save_best'] = None
        checkpoint.pop('rule', None)


def adapt_to_device(cfg: Config) -> None:
    """Let distributed configs run on CPU processes (gloo) too.

    NCCL needs GPUs, and mmengine 0.10.7's pytorch launcher calls
    ``torch.cuda.set_device`` unconditionally. Without a GPU the backend
    becomes gloo and, for torchrun (``--launcher pytorch``), the process
    group is created here so that mmengine finds it ready. The same config
    and launcher then run on a laptop, in CI, and on a GPU cluster.
    """
    launcher = cfg.get('launcher', 'none')
    if launcher == 'none' or torch.cuda.is_available():
        return
    env_cfg = cfg.setdefault('env_cfg', {})
    dist_cfg = env_cfg.setdefault('dist_cfg', {})
    if dist_cfg.get('backend', 'nccl') == 'nccl':
        warnings.warn('no CUDA device: using the gloo backend instead of '
                      'nccl for distributed training on the CPU')
        dist_cfg['backend'] = 'gloo'
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(
            # Scoped: mmengine looks the wrapper up in its root registry.
            type='mmreid.CPUAwareDistributedDataParallel',
            broadcast_buffers=False,
            find_unused_parameters=cfg.get('find_unused_parameters', False))
    if launcher == 'pytorch' and not torch.distributed.is_initialized():
        kwargs = {k: v for k, v in dist_cfg.items() if k != 'backend'}
        timeout = kwargs.get('timeout')
        if timeout is not None and not isinstance(timeout,
                                                  datetime.timedelta):
            # In seconds, as mmengine reads it on the GPU; torch takes a
            # timedelta (an int was a TypeError naming no key).
            if isinstance(timeout, bool) or not isinstance(
                    timeout, numbers.Real) or timeout <= 0:
                raise ValueError(
                    'env_cfg.dist_cfg.timeout is in seconds, a number > 0, '
                    f'got {timeout!r}')
            kwargs['timeout'] = datetime.timedelta(seconds=timeout)
        torch.distributed.init_process_group(
            backend=dist_cfg['backend'], **kwargs)


def dump_atomic(obj, path: str) -> None:
    """Write ``obj`` with mmengine's ``dump`` through a temporary file.

    The file appears complete or not at all: an interrupted run never
    leaves a truncated result that a later script would read.
    """
    from mmengine.fileio import dump
    suffix = os.path.splitext(path)[1].lstrip('.')
    if suffix not in ('json', 'yaml', 'yml', 'pkl', 'pickle'):
        raise ValueError(f'--out must end in .json, .yaml or .pkl, got '
                         f'{path!r}')
    mode = 'wb' if suffix in ('pkl', 'pickle') else 'w'
    with open_atomic(path, mode) as f:
        dump(obj, f, file_format=suffix)


def shutdown_distributed() -> None:
    """End a finished distributed run cleanly, with exit status 0.

    The process group is destroyed after a barrier. Then, in a distributed
    run only, the process leaves with ``os._exit(0)`` once the logs and
    streams are flushed: gloo's C++ threads can still abort the interpreter
    at teardown ("terminate called without an active exception", exit
    -6) on a loaded machine, which turned finished runs into failed ones.
    Everything the run writes is written (and closed) before this point.
    """
    if torch.distributed.is_available() and \
            torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
