"""Evaluate a trained ReID model.

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out FILE]
        [--cfg-options k=v ...] [--launcher none|pytorch|slurm|mpi]
        [--show-ranked-lists [DIR]] [--show-num N] [--show-topk K]
        [--report DIR]
"""
import argparse
import os.path as osp

from mmengine.runner import Runner

from mmreid.utils import config as setup_cfg
from mmreid.utils import register_all_modules


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
        '--show-ranked-lists',
        nargs='?',
        const='',
        default=None,
        metavar='DIR',
        help='draw the ranked lists of the worst and best queries (by AP) '
        'into DIR (default <work_dir>/<timestamp>/ranked_lists)')
    parser.add_argument(
        '--show-num',
        type=int,
        default=5,
        help='worst and best queries drawn by --show-ranked-lists and '
        '--report (each)')
    parser.add_argument(
        '--show-topk',
        type=int,
        default=10,
        help='gallery images per ranked list of --show-ranked-lists and '
        '--report')
    parser.add_argument(
        '--report',
        metavar='DIR',
        help='write DIR/report.html, a self-contained evaluation report '
        '(CMC, AP and first-match histograms, camera pairs, the worst and '
        'best ranked lists with their images); open it in a browser')
    setup_cfg.add_runtime_args(parser, 'test_evaluator.metric=cosine')
    return setup_cfg.parse_runtime_args(parser)


def main():
    args = parse_args()
    register_all_modules(init_default_scope=False)
    cfg = setup_cfg.load_config(args.config, args.cfg_options, args.work_dir,
                                args.launcher)
    cfg.load_from = args.checkpoint
    if args.amp:
        setup_cfg.enable_amp_inference(cfg)
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
    setup_cfg.adapt_to_device(cfg)

    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    if args.out and runner.rank == 0:
        setup_cfg.dump_atomic(metrics, args.out)
        print(f'metrics written to {args.out}')
    setup_cfg.shutdown_distributed()


if __name__ == '__main__':
    main()
