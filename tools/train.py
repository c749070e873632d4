"""Train a ReID model from a config.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp]
        [--strict true|false] [--vis-backend tensorboard|wandb ...]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
"""
import argparse

from mmreid.engine.runner import build_runner
from mmreid.utils import register_all_modules
from mmreid.utils.config import load_config, runtime
from mmreid.utils.logged_warnings import record_warnings

# --vis-backend name -> (mmengine backend, module it needs, pip package)
VIS_BACKENDS = dict(
    tensorboard=('TensorboardVisBackend', 'torch.utils.tensorboard',
                 'tensorboard'),
    wandb=('WandbVisBackend', 'wandb', 'wandb'))


def vis_backends(names):
    """The ``visualizer.vis_backends`` of ``--vis-backend``: the local
    files plus each named backend, whose package must be importable."""
    import importlib
    backends = [dict(type='LocalVisBackend')]
    for name in dict.fromkeys(names):
        backend, module, package = VIS_BACKENDS[name]
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise SystemExit(f'--vis-backend {name} needs `pip install '
                             f'{package}` ({error})')
        backends.append(dict(type=backend))
    return backends


def parse_args():
    parser = argparse.ArgumentParser(description='Train a ReID model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='where logs and checkpoints go')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or from the latest one in '
        'the work dir when no path is given (none there: start at epoch 1, '
        'from the weights of load_from if the config gives one)')
    parser.add_argument(
        '--strict',
        choices=('true', 'false'),
        default=None,
        help='loading load_from/--resume: "true" (the default, or the '
        'config\'s load_strict): a model tensor missing from the checkpoint '
        'or a classifier of another size is an error; "false" accepts a '
        'partial load with a warning')
    parser.add_argument(
        '--amp', action='store_true', help='automatic mixed precision')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the total batch (processes x '
        "batch_size) over the config's auto_scale_lr.base_batch_size")
    parser.add_argument(
        '--vis-backend',
        nargs='+',
        choices=sorted(VIS_BACKENDS),
        help='also log losses, lr and validation metrics to TensorBoard '
        'and/or Weights & Biases (besides the local files)')
    runtime.add_runtime_args(parser, 'train_cfg.max_epochs=2')
    return runtime.parse_runtime_args(parser)


def main():
    # Warnings of the config reading go into the run's log file too.
    record_warnings()
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = load_config(args.config, args.cfg_options, args.work_dir,
                      args.launcher)
    if args.amp:
        runtime.enable_amp(cfg)
    if args.resume == 'auto':
        # The work dir's latest checkpoint, else a plain load of load_from
        # (ReIDRunner.load_or_resume; resume=True would resume load_from).
        cfg.resume = 'auto'
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.strict is not None:
        cfg.load_strict = args.strict == 'true'
    if args.no_validate:
        runtime.disable_validation(cfg)
    if args.auto_scale_lr:
        runtime.enable_auto_scale_lr(cfg, args.config)
    if args.vis_backend:
        cfg.visualizer.vis_backends = vis_backends(args.vis_backend)
    runtime.adapt_to_device(cfg)

    # ReIDRunner loads load_from with init_model's rules.
    runner = build_runner(cfg)
    runner.train()
    runtime.shutdown_distributed()


if __name__ == '__main__':
    main()
