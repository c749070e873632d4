"""Evaluate a trained ReID model.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
        [--strict true|false] [--target NAME [NAME ...]]
        [--cfg-options k=v ...]
        [--launcher none|pytorch|slurm|mpi]
        [--show-ranked-lists [DIR]] [--show-num N] [--show-topk K]
        [--report DIR]
"""
import argparse
import os
import os.path as osp

from mmreid.engine.runner import MultiTargetTestLoop, build_runner
from mmreid.utils import register_all_modules
from mmreid.utils.config import check_config_file, load_config, runtime
from mmreid.utils.logged_warnings import record_warnings
from mmreid.utils.pipeline_source import split_targets


def parse_args():
    parser = argparse.ArgumentParser(description='Test a ReID model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file (path or URL)')
    parser.add_argument('--work-dir', help='where logs and results go')
    parser.add_argument(
        '--out', help='write the metrics to this file (.json, .yaml or .pkl)')
    parser.add_argument(
        '--amp', action='store_true', help='mixed-precision inference')
    parser.add_argument(
        '--strict',
        choices=('true', 'false'),
        default='true',
        help='"true" (default): a model tensor missing from the checkpoint, '
        'or a converted checkpoint whose source network differs from the '
        'config, is an error; "false" accepts them with a warning')
    parser.add_argument(
        '--show-ranked-lists',
        nargs='?',
        const='',
        default=None,
        metavar='DIR',
        help='draw the ranked lists of the worst and best queries (by AP) '
        'into DIR (default <work_dir>/<timestamp>/ranked_lists), replacing '
        'an earlier run\'s pictures there')
    parser.add_argument(
        '--show-num',
        type=int,
        help='worst and best queries drawn by --show-ranked-lists and '
        '--report (each; default 5); needs one of them')
    parser.add_argument(
        '--show-topk',
        type=int,
        help='gallery images per ranked list of --show-ranked-lists and '
        '--report (default 10); needs one of them')
    parser.add_argument(
        '--report',
        metavar='DIR',
        help='write DIR/report.html, a self-contained evaluation report '
        '(CMC, AP and first-match histograms, camera pairs, the worst and '
        'best ranked lists with their images; open it in a browser) and '
        'DIR/per_query.npz, which replace an earlier report there together')
    parser.add_argument(
        '--target',
        nargs='+',
        metavar='NAME',
        help='multi-target configs: test only these targets '
        '(test_cfg.targets[i].name), e.g. --target d3; the mean row is then '
        'over them')
    runtime.add_runtime_args(
        parser, 'test_evaluator.distance=cosine; a multi-target config '
        '(test_cfg.targets: the quick start, every *-v2 and DG config) '
        'takes it per target, test_cfg.targets.0.evaluator.distance=cosine '
        'test_cfg.targets.1.evaluator.distance=cosine ...')
    args = runtime.parse_runtime_args(parser)
    check_args(parser, args)
    return args


OUT_SUFFIXES = ('.json', '.yaml', '.yml', '.pkl', '.pickle')


def check_args(parser, args) -> None:
    """Refuse bad arguments before anything is built or evaluated."""
    try:
        check_config_file(args.config)
    except FileNotFoundError as error:
        parser.error(str(error))
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint {args.checkpoint!r} is not a file')
    if args.out is not None:
        if osp.splitext(args.out)[1] not in OUT_SUFFIXES:
            parser.error(f'--out {args.out!r}: the metrics are written as '
                         'json, yaml or pickle, so the file name must end in '
                         f'{", ".join(OUT_SUFFIXES)}')
        if osp.isdir(args.out):
            parser.error(f'--out {args.out!r} is a directory; give a file '
                         'name')
        # The metrics come after the whole evaluation: a folder they
        # cannot be written into is said now, not then.
        parent = osp.dirname(osp.abspath(args.out))
        while not osp.exists(parent):
            parent = osp.dirname(parent)
        if not osp.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
            parser.error(f'--out {args.out!r}: {parent!r} is not a folder '
                         'this process can write into')
    if args.report == '':
        parser.error('--report needs a folder (DIR/report.html is written)')
    for option, folder in (('--report', args.report),
                           ('--show-ranked-lists', args.show_ranked_lists)):
        if args.out is not None and folder and osp.commonpath(
            [osp.realpath(folder),
             osp.realpath(args.out)]) == osp.realpath(folder):
            # The folder is replaced as a whole by its own files; a
            # metrics file inside would be refused by the next run.
            parser.error(f'--out {args.out} is inside {option} {folder}, '
                         'a folder that holds its own files only; write the '
                         'metrics elsewhere')
    if args.report and args.show_ranked_lists:
        folders = [
            osp.realpath(args.report),
            osp.realpath(args.show_ranked_lists)
        ]
        if osp.commonpath(folders) in folders:
            # Each replaces its folder as a whole with its own files.
            parser.error(
                f'--report {args.report} and --show-ranked-lists '
                f'{args.show_ranked_lists}: each writes a folder of its own, '
                'replacing it as a whole, so give two folders, neither '
                'inside the other')
    drawing = args.report is not None or args.show_ranked_lists is not None
    for flag, default in (('show_num', 5), ('show_topk', 10)):
        value = getattr(args, flag)
        option = f'--{flag.replace("_", "-")}'
        if value is None:
            setattr(args, flag, default)
        elif not drawing:
            # Only the drawings use it: silently ignoring it would let a
            # user believe a different number of lists was drawn.
            parser.error(f'{option} {value} needs --report or '
                         '--show-ranked-lists (it sizes what they draw)')
        elif value < 1:
            parser.error(f'{option} must be at least 1, got {value}')


def select_targets(cfg, names) -> None:
    """Keep only the targets ``names`` of the multi-target test loop.

    The targets keep their config order; ``--cfg-options`` keys such as
    ``test_cfg.targets.<i>...`` were applied before, on the full list.

    Args:
        cfg (Config): The loaded config; ``cfg.test_cfg.targets`` is
            changed in place.
        names (Sequence[str]): Names of ``test_cfg.targets[i].name``.

    Raises:
        ValueError: The config has no multi-target test loop, a name is
            none of its targets, or the loop would refuse its placeholders
            or a target's ``drop_last`` (with the keys of all targets).
    """
    targets = split_targets(cfg, 'test')
    if not targets:
        raise ValueError(
            f'--target {" ".join(names)} given, but the config has no '
            'multi-target test loop (test_cfg.targets) to choose from: it '
            'tests test_dataloader; leave --target out')
    # Before the targets are renumbered: the keys it names count them all.
    MultiTargetTestLoop.refuse_ignored_placeholders(
        cfg.test_cfg.targets,
        dataloader=cfg.get('test_dataloader'),
        evaluator=cfg.get('test_evaluator'))
    MultiTargetTestLoop.refuse_dropping_dataloaders(cfg.test_cfg.targets)
    unknown = [name for name in names if name not in targets]
    if unknown:
        raise ValueError(f'--target {" ".join(unknown)}: no such target in '
                         f'test_cfg.targets; the targets are {targets}')
    cfg.test_cfg.targets = [
        target for target in cfg.test_cfg.targets if target['name'] in names
    ]


def main():
    # Warnings of the config reading go into the run's log file too.
    record_warnings()
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = load_config(
        args.config,
        args.cfg_options,
        args.work_dir,
        args.launcher,
        phase='test')
    if args.target:
        select_targets(cfg, args.target)
    cfg.load_from = args.checkpoint
    cfg.load_strict = args.strict == 'true'
    if args.amp:
        runtime.enable_amp_inference(cfg)
    if args.show_ranked_lists is not None:
        cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [
            dict(
                type='RankedListHook',
                num_queries=args.show_num,
                topk=args.show_topk,
                out_dir=osp.abspath(args.show_ranked_lists)
                if args.show_ranked_lists else None)
        ]
    if args.report:
        cfg.custom_hooks = list(cfg.get('custom_hooks', None) or []) + [
            dict(
                type='EvalReportHook',
                out_dir=osp.abspath(args.report),
                num_queries=args.show_num,
                topk=args.show_topk,
                meta=[
                    f'config: {osp.abspath(args.config)}',
                    f'checkpoint: {args.checkpoint}'
                ])
        ]
    runtime.adapt_to_device(cfg)

    # ReIDRunner loads the checkpoint with init_model's rules.
    runner = build_runner(cfg)
    metrics = runner.test()
    if args.out and runner.rank == 0:
        runtime.dump_atomic(metrics, args.out)
        print(f'metrics written to {args.out}')
    runtime.shutdown_distributed()


if __name__ == '__main__':
    main()
