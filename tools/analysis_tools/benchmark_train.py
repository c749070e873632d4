"""How much does the framework cost? Time training iterations three ways.

In one run, with the same config, model, batch and images:

1. ``mmreid``: the runner ``tools/train.py`` builds (:class:`ReIDRunner`)
   with mmreid's data pipeline, data preprocessor, model, hooks and
   logging (an iteration-based loop);
2. ``bare``: a plain PyTorch loop over the same dataloader, model and
   optimizer (``preprocess -> forward -> backward -> step``; the
   optimizer with the config's parameter groups, ``paramwise_cfg``
   included);
3. ``data``: the dataloader alone (decode + augment + collate), in images/s.

The overhead is ``mmreid / bare - 1``. A config whose ``optim_wrapper``
does work the bare loop does not (``clip_grad``, ``accumulative_counts``)
is refused, not timed against a loop that does less. Example::

    python tools/analysis_tools/benchmark_train.py \
        configs/baseline/bot_r18_synthreid.py --iters 30 --warmup 5

Use ``--device cuda`` and ``--amp`` on a GPU machine. Without the real
Market-1501, ``--noise-market DIR`` writes a folder of its layout (751
ids x 8 smooth random 128x64 JPEGs; the step's cost does not depend on
what the pixels show) and trains a Market-1501 config on it. The folder is
written beside DIR and renamed to it when complete; a later run reuses it.
An existing DIR this tool did not finish (a real Market-1501) is refused,
never written into::

    python tools/analysis_tools/benchmark_train.py \
        configs/baseline/bot_r50_1xb64-120e_market1501.py \
        --noise-market /tmp/noise_market --device cuda [--amp]
"""
import argparse
import copy
import json
import os
import os.path as osp
import statistics
import tempfile
import time

import torch
from mmengine.hooks import Hook
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner

from mmreid.engine.runner import build_runner
from mmreid.registry import MODELS
from mmreid.utils import register_all_modules
from mmreid.utils.atomic import atomic_folder, open_atomic
from mmreid.utils.config import load_config
from mmreid.utils.config.options import ReIDDictAction


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', help='training config')
    parser.add_argument(
        '--iters', type=int, default=30, help='timed iterations per mode')
    parser.add_argument(
        '--warmup',
        type=int,
        default=5,
        help='untimed iterations before timing')
    parser.add_argument(
        '--repeats',
        type=int,
        default=1,
        help='alternate mmreid/bare runs this many times')
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='mixed precision in both loops (CUDA only)')
    parser.add_argument(
        '--num-workers',
        type=int,
        default=None,
        help='override the dataloader workers')
    parser.add_argument(
        '--noise-market',
        metavar='DIR',
        help='train on a Market-1501-shaped folder of random JPEGs written '
        'to DIR (for Market-1501 configs); one this tool finished there '
        'before is reused, any other existing DIR with files is refused')
    parser.add_argument('--out', help='also write the results as JSON')
    parser.add_argument('--cfg-options', nargs='+', action=ReIDDictAction)
    args = parser.parse_args()
    for name, least in (('iters', 1), ('warmup', 0), ('repeats', 1),
                        ('num_workers', 0)):
        value = getattr(args, name)
        if value is not None and value < least:
            parser.error(f'--{name.replace("_", "-")} must be >= {least}, '
                         f'got {value}')
    return args


NOISE_MARKET_IDS = 751
NOISE_MARKET_IMAGES_PER_ID = 8


def _imwrite(path: str, image, params=()) -> None:
    """``cv2.imwrite``, raising where it reports a failed write (it
    returns False on a full disk): the folder would be marked done with a
    cut picture, reused by every later benchmark."""
    import cv2
    if not cv2.imwrite(path, image, list(params)):
        raise OSError(f'cannot write {path!r} (cv2.imwrite failed: is the '
                      'disk full?)')


def write_noise_market(root):
    """Write a Market-1501-shaped folder of random 128x64 JPEGs.

    Training images are smooth random colour fields (16x8 noise upsampled,
    plus pixel noise), ``NOISE_MARKET_IMAGES_PER_ID`` per id over the six
    cameras; query and gallery get one image each (never read here). A
    folder this tool finished (its ``.done`` marker) is reused. The folder
    is written beside ``root`` and renamed to it when complete, so nothing
    is ever written into an existing folder: one without the marker (a
    user's Market-1501, anything else) is refused, an empty one replaced.

    Args:
        root (str): The folder (the config's ``data_root``).

    Raises:
        FileExistsError: ``root`` exists, is not empty and has no
            ``.done`` marker; names it.
    """
    if osp.exists(osp.join(root, '.done')):
        return
    if osp.lexists(root) and not (osp.isdir(root) and not os.listdir(root)):
        raise FileExistsError(
            f'--noise-market {root!r} exists and is not a noise folder this '
            f'tool finished (it has no .done marker): it is never written '
            f'into, as it may hold real images. Pass another --noise-market '
            f'DIR, or remove {root!r} to write the noise folder there.')
    try:
        with atomic_folder(root) as tmp:
            _write_noise_images(tmp)
            open(osp.join(tmp, '.done'), 'w').close()
    except FileExistsError:
        # Another run finished it meanwhile.
        if not osp.exists(osp.join(root, '.done')):
            raise


def _write_noise_images(root):
    """The images of :func:`write_noise_market`, into the new ``root``."""
    import cv2
    import numpy as np
    rng = np.random.default_rng(0)
    folders = ('bounding_box_train', 'bounding_box_test', 'query')
    for folder in folders:
        os.makedirs(osp.join(root, folder))
    for pid in range(1, NOISE_MARKET_IDS + 1):
        for k in range(NOISE_MARKET_IMAGES_PER_ID):
            low = rng.integers(0, 256, (16, 8, 3), dtype=np.uint8)
            img = cv2.resize(low, (64, 128), interpolation=cv2.INTER_LINEAR)
            img = np.clip(img + rng.normal(0, 8, img.shape), 0,
                          255).astype(np.uint8)
            name = f'{pid:04d}_c{k % 6 + 1}s1_{k:06d}_01.jpg'
            _imwrite(
                osp.join(root, 'bounding_box_train', name), img,
                [cv2.IMWRITE_JPEG_QUALITY, 95])
    for folder in folders[1:]:
        _imwrite(osp.join(root, folder, '0001_c1s1_000000_01.jpg'), img)


def prepare_cfg(args):
    cfg = load_config(args.config, args.cfg_options)
    if args.noise_market:
        dataset = cfg.train_dataloader.dataset
        if dataset.get('type') != 'Market1501':
            raise SystemExit(f'--noise-market needs a config that trains on '
                             f'Market1501; {args.config} trains on '
                             f'{dataset.get("type")!r}')
        write_noise_market(args.noise_market)
        dataset.data_root = args.noise_market
    cfg.work_dir = tempfile.mkdtemp(prefix='mmreid-bench-')
    if args.num_workers is not None:
        cfg.train_dataloader.num_workers = args.num_workers
        cfg.train_dataloader.persistent_workers = args.num_workers > 0
    # The initial weights do not change the cost; never download them.
    cfg.model.backbone.pop('init_cfg', None)
    return cfg


class IterTimes(Hook):
    """Record the wall time of every training iteration.

    Measured from the end of one iteration to the end of the next, so the
    time includes waiting for data, exactly as in the bare loop.
    """

    priority = 'VERY_LOW'

    def __init__(self, device: str):
        self.times = []
        self._start = None
        self.device = device

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        if self.device == 'cuda':
            torch.cuda.synchronize()
        now = time.perf_counter()
        if self._start is not None:
            self.times.append(now - self._start)
        self._start = time.perf_counter()


def run_mmreid(cfg, args):
    cfg = copy.deepcopy(cfg)
    total = args.warmup + args.iters + 1
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=total)
    cfg.param_scheduler = []
    for key in ('val_dataloader', 'val_cfg', 'val_evaluator'):
        cfg[key] = None
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=10**9, save_last=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10**9)
    cfg.log_level = 'WARNING'
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
    timer = IterTimes(args.device)
    # No validation: no feature extraction to show.
    cfg.default_hooks.pop('feature_progress', None)
    runner = build_runner(cfg)  # tools/train.py's: ReIDRunner
    runner.register_hook(timer)
    runner.train()
    return timer.times[args.warmup:]


def run_bare(cfg, args):
    model = MODELS.build(copy.deepcopy(cfg.model)).to(args.device)
    model.init_weights()
    model.train()
    # The runner's optimizer (its parameter groups, paramwise_cfg's lr and
    # decay multipliers), stepped without the wrapper.
    optimizer = build_optim_wrapper(model, copy.deepcopy(
        cfg.optim_wrapper)).optimizer
    loader = Runner.build_dataloader(copy.deepcopy(cfg.train_dataloader))
    scaler = torch.amp.GradScaler('cuda') if args.amp else None
    times = []
    total = args.warmup + args.iters + 1
    done = 0
    start = None
    while done < total:
        for data in loader:
            data = model.data_preprocessor(data, True)
            with torch.autocast(args.device, enabled=args.amp):
                losses = model(**data, mode='loss')
            loss = sum(v for k, v in losses.items() if 'loss' in k)
            optimizer.zero_grad()
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            if args.device == 'cuda':
                torch.cuda.synchronize()
            now = time.perf_counter()
            if start is not None:
                times.append(now - start)
            start = time.perf_counter()
            done += 1
            if done >= total:
                break
    return times[args.warmup:]


#: ``optim_wrapper`` keys that make the runner's step do more than the bare
#: loop's ``backward -> step``, with the value that does nothing.
BARE_LOOP_OMITS = dict(clip_grad=None, accumulative_counts=1)


def check_bare_loop_equivalent(cfg) -> None:
    """Refuse an ``optim_wrapper`` whose step the bare loop would not
    reproduce (:data:`BARE_LOOP_OMITS`): the overhead would compare
    different work."""
    for key, plain in BARE_LOOP_OMITS.items():
        value = cfg.optim_wrapper.get(key, plain)
        if value != plain:
            raise SystemExit(
                f'benchmark_train: optim_wrapper.{key}={value!r} makes the '
                "runner's step do more than the bare loop's backward -> "
                'step, so the overhead would compare different work; time '
                f'the config with --cfg-options optim_wrapper.{key}='
                f'{plain}')


def run_data(cfg, args):
    loader = Runner.build_dataloader(copy.deepcopy(cfg.train_dataloader))
    images = 0
    batches = 0
    # Without warm-up the timing starts before the first batch (the
    # workers' start included), as no batch is left untimed.
    start = time.perf_counter() if args.warmup == 0 else None
    while batches < args.warmup + args.iters:
        for data in loader:
            batches += 1
            if batches == args.warmup:
                start = time.perf_counter()
            elif batches > args.warmup:
                images += len(data['data_samples'])
            if batches >= args.warmup + args.iters:
                break
    return images / (time.perf_counter() - start)


def summary(times):
    return dict(
        median_ms=1000 * statistics.median(times),
        mean_ms=1000 * statistics.fmean(times),
        n=len(times))


def main():
    args = parse_args()
    if args.amp and args.device != 'cuda':
        raise SystemExit('--amp needs --device cuda')
    register_all_modules(init_default_scope=True)
    cfg = prepare_cfg(args)
    check_bare_loop_equivalent(cfg)
    batch_size = cfg.train_dataloader.batch_size
    mm_times, bare_times, per_repeat = [], [], []
    # Alternate the two loops so drift in machine load hits both, and keep
    # each repeat's ratio: its spread is the measurement noise.
    for _ in range(args.repeats):
        mm_run = run_mmreid(cfg, args)
        bare_run = run_bare(cfg, args)
        mm_times += mm_run
        bare_times += bare_run
        per_repeat.append(
            100 *
            (statistics.median(mm_run) / statistics.median(bare_run) - 1))
    data_ips = run_data(cfg, args)
    mm, bare = summary(mm_times), summary(bare_times)
    result = dict(
        config=args.config,
        device=args.device,
        amp=args.amp,
        batch_size=batch_size,
        mmreid=mm,
        bare=bare,
        overhead_pct=100 * (mm['median_ms'] / bare['median_ms'] - 1),
        overhead_pct_per_repeat=per_repeat,
        mmreid_images_per_s=1000 * batch_size / mm['median_ms'],
        bare_images_per_s=1000 * batch_size / bare['median_ms'],
        data_images_per_s=data_ips)
    print(f'config: {args.config}  device: {args.device}  amp: {args.amp}  '
          f'batch: {batch_size}')
    print('| loop | median ms/iter | mean ms/iter | images/s |')
    print('|---|---|---|---|')
    for name, stats in (('mmreid ReIDRunner', mm), ('bare PyTorch', bare)):
        print(f'| {name} | {stats["median_ms"]:.1f} | {stats["mean_ms"]:.1f} '
              f'| {1000 * batch_size / stats["median_ms"]:.1f} |')
    print(f'| data pipeline only | | | {data_ips:.1f} |')
    print(f'framework overhead (median): {result["overhead_pct"]:+.1f}%  '
          f'(per repeat: '
          f'{", ".join(f"{p:+.1f}%" for p in per_repeat)})')
    if args.out:
        with open_atomic(args.out, 'w') as f:
            json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
