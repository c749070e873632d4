"""The visible-infrared modality gap at every BN (and MBN) layer of a model.

A mixed batch (``--num-per-modality`` visible and as many infrared images of
the config's training set, loaded with the test pipeline: no augmentation)
goes through the model once; at every norm layer the layer's *input* is
compared between the two modalities. Per channel ``c``, with the moments a
BN layer computes (over the samples and, for maps, H and W; population
variance)::

    gap_c = |mean_vis_c - mean_ir_c| / sqrt((var_vis_c + var_ir_c) / 2)

the standardised mean difference (Cohen's d). The table reports its mean
over channels (``gap``), its maximum, and the mean over channels of
``|log(std_ir_c / std_vis_c)|`` (``log_std``): the two differences of the
per-modality moments that MBN removes and plain BN does not. Both are
invariant to a per-channel affine map with positive scale applied to the
compared input itself (e.g. a BN's own affine, or a rescaled input of a
stem); an affine transform earlier in the network, followed by a ReLU or a
convolution, does change them.

A finite batch gives a small positive gap even between two samples of one
distribution (the noise of the per-modality means). The ``floor`` column
measures it: the same statistic between the two halves of the visible
images (in batch order), one split, without a spread. Its groups are half
as large, so with no gap at all the modality comparison would give about
``floor / sqrt(2)`` on average (mean differences of independent images
shrink as ``sqrt(1/n1 + 1/n2)``); one split varies around that, much so
for few images (at 8 + 8 images, 200 random splits of the visible half
gave floors of 0.32 +- 0.19 at one layer). Use the default
``--num-per-modality`` or more, and compare gaps measured with the same
``--num-per-modality`` and ``--seed``.

Without a checkpoint the model is training's starting point: as mmengine's
``Runner`` does, the random seed (``--init-seed``, by default the config's
``randomness.seed``) is set *before* the model is built, then
``init_weights()`` runs. Layers that ``init_weights`` leaves alone (e.g. a
backbone with ``init_cfg=None``) keep the constructor's draw, so an
unseeded build would give another network, and other gaps, on every run.

Layers whose input holds one modality only (the stems of a two-stream
backbone; the inner BNs of an MBN) have no gap and are listed with ``-``.
Channels constant over the batch at one value in both modalities (e.g.
dead ReLUs) are left out of the means; their number is the ``const``
column. A channel constant within each modality at two different values
separates the modalities perfectly: its gap is infinite, and so is the
layer's mean (``gap_effect.py`` refuses such a layer). A channel
constant in one modality only has a finite ``gap`` (its pooled std is
positive), which counts, but no finite log std ratio (``log 0``): it is
left out of ``log_std`` and counted in the ``const (one)`` column.

By default the forward runs in training mode (batch statistics, as in
training; running statistics are updated on a throw-away copy only); with
``--eval`` the model's running statistics are used::

    python tools/analysis_tools/modality_gap.py \\
        configs/mbn/agw_r18_synthreid-vi-v2.py work_dirs/agw/epoch_8.pth
    python tools/analysis_tools/modality_gap.py \\
        configs/mbn/agw_r18_synthreid-vi-v2.py   # random init (training's
                                                 # starting point)
"""
import argparse
import json
import math
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

VISIBLE, INFRARED = 0, 1


def norm_layers(model: nn.Module) -> List[str]:
    """Names of the BN and MBN layers of ``model``, in module order.

    The inner BNs of an MBN are not listed: the MBN itself is, and it sees
    the whole mixed batch.
    """
    from mmreid.models.layers.mbn import MBN
    names, inside_mbn = [], []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + '.') for prefix in inside_mbn):
            continue
        if isinstance(module, MBN):
            inside_mbn.append(name)
            names.append(name)
        elif isinstance(module, _BatchNorm):
            names.append(name)
    return names


def gap_statistics(x: torch.Tensor, modality: torch.Tensor) -> dict:
    """Per-channel modality gap of a norm layer's input.

    Args:
        x (Tensor): Layer input of shape (N, C) or (N, C, ...).
        modality (Tensor): Label of each sample, shape (N, ), 0 visible,
            1 infrared; both must be present.

    Returns:
        dict: ``gap`` (C,) standardised mean differences, ``log_std`` (C,)
        ``|log(std_ir / std_vis)|``, both NaN for channels constant at
        one value in both modalities, ``const`` (int) the number of such
        channels (a channel constant within each modality at different
        values has an infinite ``gap``), and
        ``one_const`` (int) the number of channels constant in one
        modality only, whose ``log_std`` is NaN too (undefined, not
        infinite: it would swamp any mean over channels).
    """
    if x.dim() < 2 or x.size(0) != modality.numel():
        raise ValueError(f'expected an input of shape (N, C, ...) with N = '
                         f'{modality.numel()} labels, got {tuple(x.shape)}')
    modality = modality.to(x.device)
    x = x.detach().double().transpose(0, 1).reshape(x.size(1), x.size(0), -1)
    moments = []
    for k in (VISIBLE, INFRARED):
        part = x[:, modality == k]
        if part.size(1) == 0:
            raise ValueError(f'modality {k} is absent from the batch')
        part = part.reshape(x.size(0), -1)
        moments.append((part.mean(1), part.var(1, unbiased=False)))
    (mean_v, var_v), (mean_i, var_i) = moments
    pooled = ((var_v + var_i) / 2).sqrt()
    # Constant in both modalities: at one value no gap is defined; at two
    # values the standardised difference is infinite (|d| / 0).
    flat = pooled == 0
    const = flat & (mean_v == mean_i)
    gap = (mean_v - mean_i).abs() / pooled.masked_fill(flat, 1)
    gap[flat & ~const] = math.inf
    one_const = (var_v == 0) ^ (var_i == 0)
    log_std = (var_i.sqrt().log() - var_v.sqrt().log()).abs()
    gap[const] = math.nan
    log_std[flat] = math.nan
    log_std[const | one_const] = math.nan
    return dict(
        gap=gap,
        log_std=log_std,
        const=int(const.sum()),
        one_const=int(one_const.sum()))


def _nan_mean(values: torch.Tensor) -> Optional[float]:
    """Mean of the non-NaN values, None when there is none."""
    kept = values[~torch.isnan(values)]
    return float(kept.mean()) if kept.numel() else None


def measure_modality_gap(model: nn.Module,
                         inputs: torch.Tensor,
                         modality: Sequence[int],
                         forward: Optional[Callable] = None) -> List[dict]:
    """Run one mixed batch and report the gap at every BN/MBN input.

    Args:
        model (nn.Module): The model; its modality-aware modules (MBN,
            two-stream backbones) receive ``modality`` first.
        inputs (Tensor): The batch, shape (N, ...), already preprocessed.
        modality (Sequence[int]): Modality of each sample (0 visible, 1
            infrared), both present.
        forward (Callable, optional): ``forward(inputs)`` to run instead
            of ``model(inputs)``.

    Returns:
        list[dict]: One row per norm layer in module order: ``layer``,
        ``type``, ``channels``, ``gap`` (mean over channels), ``gap_max``,
        ``log_std`` (mean over channels), ``floor`` (the mean gap between
        the two halves of the visible images; None with fewer than 4),
        ``const`` and ``one_const`` (see :func:`gap_statistics`; ``gap``
        leaves out the ``const`` channels, ``log_std`` both kinds); the
        statistics are None
        for a layer whose input holds one modality only (``note`` says
        why) or that the forward did not reach.

    Raises:
        ValueError: One modality is missing or the labels do not match the
            batch.
    """
    from mmreid.models.layers.mbn import set_modality
    labels = torch.as_tensor(list(modality), dtype=torch.long)
    if labels.numel() != inputs.size(0):
        raise ValueError(f'got {labels.numel()} modality labels for a '
                         f'batch of {inputs.size(0)}')
    present = set(labels.tolist())
    if present != {VISIBLE, INFRARED}:
        raise ValueError(f'the batch must hold both modalities (0 visible, '
                         f'1 infrared), got {sorted(present)}')
    # The noise floor: the visible images split into two halves.
    visible = labels == VISIBLE
    num_visible = int(visible.sum())
    halves = None
    if num_visible >= 4:
        halves = (torch.arange(num_visible) >= num_visible // 2).long()
    names = norm_layers(model)
    modules = dict(model.named_modules())
    seen: Dict[str, dict] = {}

    def hook(name):

        def record(module, args):
            if name in seen:  # a module called twice: keep the first
                return
            x = args[0]
            row = dict(channels=int(x.size(1)) if x.dim() > 1 else None)
            if x.size(0) != labels.numel():
                row['note'] = (f'sees {x.size(0)} of {labels.numel()} '
                               f'samples (one modality)')
            else:
                row.update(gap_statistics(x, labels))
                if halves is not None:
                    floor = gap_statistics(x[visible.to(x.device)],
                                           halves)['gap']
                    row['floor'] = floor
            seen[name] = row

        return record

    handles = [
        modules[name].register_forward_pre_hook(hook(name)) for name in names
    ]
    set_modality(model, labels)
    try:
        with torch.no_grad():
            (forward or model)(inputs)
    finally:
        for handle in handles:
            handle.remove()
        set_modality(model, None)
    rows = []
    for name in names:
        row = dict(
            layer=name,
            type=type(modules[name]).__name__,
            channels=None,
            gap=None,
            gap_max=None,
            log_std=None,
            floor=None,
            const=None,
            one_const=None,
            note='')
        found = seen.get(name)
        if found is None:
            row['note'] = 'not reached by the forward'
        elif 'gap' not in found:
            row.update(channels=found['channels'], note=found['note'])
        else:
            gap, log_std = found['gap'], found['log_std']
            valid = ~torch.isnan(gap)
            if valid.any():
                row.update(
                    gap=float(gap[valid].mean()),
                    gap_max=float(gap[valid].max()),
                    log_std=_nan_mean(log_std))
                floor = found.get('floor')
                if floor is not None and (~torch.isnan(floor)).any():
                    row['floor'] = float(floor[~torch.isnan(floor)].mean())
            else:
                row['note'] = 'every channel constant'
            row.update(
                channels=found['channels'],
                const=found['const'],
                one_const=found['one_const'])
        rows.append(row)
    return rows


def format_table(rows: List[dict]) -> str:
    """A markdown table of :func:`measure_modality_gap`'s rows."""

    def number(value, digits=3):
        return '-' if value is None else f'{value:.{digits}f}'

    lines = [
        '| layer | type | channels | gap (mean) | gap (max) | '
        '\\|log std ratio\\| | floor | const | const (one) | note |',
        '|---|---|---|---|---|---|---|---|---|---|'
    ]
    for row in rows:
        lines.append(f'| {row["layer"]} | {row["type"]} | '
                     f'{row["channels"] if row["channels"] else "-"} | '
                     f'{number(row["gap"])} | {number(row["gap_max"])} | '
                     f'{number(row["log_std"])} | {number(row["floor"])} | '
                     f'{"-" if row["const"] is None else row["const"]} | '
                     f'{"-" if row["one_const"] is None else row["one_const"]}'
                     ' | '
                     f'{row["note"]} |')
    return '\n'.join(lines)


def mixed_batch(cfg, num_per_modality: int, seed: int, preprocessor):
    """``num_per_modality`` images of each modality of the training set.

    The training dataset of ``cfg`` is built with the test pipeline (no
    random augmentation); the images are drawn without replacement by a
    ``numpy`` generator seeded with ``seed``. A test pipeline that
    ``preprocessor`` (the model's data preprocessor) would misread, e.g.
    a BGR loader, is refused as ``tools/test.py`` refuses it.

    Returns:
        dict: ``inputs`` (list of tensors) and ``data_samples``, visible
        first, as a collate function would give them.
    """
    from mmengine.dataset import pseudo_collate

    from mmreid.registry import DATASETS
    from mmreid.utils.pipeline_check import check_pipeline
    from mmreid.utils.pipeline_source import PipelineSource
    dataset_cfg = cfg.train_dataloader.dataset.to_dict() \
        if hasattr(cfg.train_dataloader.dataset, 'to_dict') \
        else dict(cfg.train_dataloader.dataset)
    key = 'test_dataloader' if cfg.get('test_dataloader') else \
        'val_dataloader'
    test_cfg = cfg.get(key)
    if not test_cfg or 'pipeline' not in test_cfg.get('dataset', {}):
        raise KeyError('the config needs test_dataloader.dataset.pipeline '
                       '(the images are loaded without augmentation)')
    dataset_cfg['pipeline'] = test_cfg['dataset']['pipeline']
    check_pipeline(
        PipelineSource(f'{key}.dataset.pipeline', dataset_cfg['pipeline']),
        preprocessor)
    dataset = DATASETS.build(dataset_cfg)
    by_modality: Dict[int, List[int]] = {VISIBLE: [], INFRARED: []}
    for index in range(len(dataset)):
        value = dataset.get_data_info(index).get('modality')
        if value is None:
            raise KeyError(f'{type(dataset).__name__}: record {index} has no '
                           f'"modality"; the modality gap needs a '
                           f'visible-infrared training set')
        by_modality.setdefault(int(value), []).append(index)
    rng = np.random.default_rng(seed)
    chosen = []
    for k in (VISIBLE, INFRARED):
        if len(by_modality[k]) < num_per_modality:
            raise ValueError(
                f'{type(dataset).__name__} has {len(by_modality[k])} '
                f'images of modality {k}, fewer than --num-per-modality '
                f'{num_per_modality}')
        chosen += sorted(
            rng.choice(by_modality[k], num_per_modality, replace=False))
    return pseudo_collate([dataset[int(i)] for i in chosen])


def init_seed_of(cfg, init_seed: Optional[int] = None) -> int:
    """The seed training sets before it builds the model of ``cfg``.

    Args:
        cfg (Config): The config; its ``randomness.seed`` is the default.
        init_seed (int, optional): An explicit seed, used instead.

    Returns:
        int: The seed.

    Raises:
        ValueError: Neither is set: training draws a new seed on every run,
            so there is no one starting point to measure.
    """
    if init_seed is not None:
        return int(init_seed)
    seed = (cfg.get('randomness') or {}).get('seed')
    if seed is None:
        raise ValueError(
            f'{cfg.filename or "the config"}: randomness.seed is not set, so '
            f'training draws a new seed (and starts from other weights) on '
            f'every run; pass --init-seed (or --cfg-options '
            f'randomness.seed=...)')
    return int(seed)


def build_start_model(config,
                      cfg_options: Optional[dict] = None,
                      init_seed: Optional[int] = None):
    """The model training starts from, without a checkpoint.

    mmengine's ``Runner`` sets the random seed, builds the model and later
    calls ``init_weights()``; this does the same, in that order. A
    ``Pretrained`` ``init_cfg`` would download and is dropped (every r18
    config has none).

    Args:
        config (str | Config): Config file or object.
        cfg_options (dict, optional): Overrides merged into the config.
        init_seed (int, optional): Seed set before the build. Defaults to
            the config's ``randomness.seed``.

    Returns:
        tuple[nn.Module, int]: The model (eval mode, ``model.cfg`` set) and
        the seed used.
    """
    from mmengine.runner import set_random_seed

    from mmreid.apis import init_model
    from mmreid.apis.model import _load_config
    cfg = _load_config(config, cfg_options)  # as init_model reads it
    seed = init_seed_of(cfg, init_seed)
    set_random_seed(seed)
    model = init_model(cfg)
    for module in model.modules():
        init_cfg = getattr(module, 'init_cfg', None)
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            module.init_cfg = None
    model.init_weights()
    return model, seed


def parse_args():
    from mmreid.utils.config.options import ReIDDictAction
    parser = argparse.ArgumentParser(
        description='Modality gap at every BN/MBN input on a mixed batch')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint',
        nargs='?',
        help='checkpoint to load (default: the random initialisation that '
        'training starts from; pretrained init_cfg weights are not loaded)')
    parser.add_argument(
        '--num-per-modality',
        type=int,
        default=32,
        help='visible images and infrared images in the batch (default 32)')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the image draw only (default 0); the random init is '
        'seeded by --init-seed')
    parser.add_argument(
        '--init-seed',
        type=int,
        help='without a checkpoint: the seed set before the model is built, '
        'as training sets it (default: the config\'s randomness.seed, which '
        'gives the weights training starts from)')
    parser.add_argument(
        '--eval',
        action='store_true',
        help='use the running statistics (eval mode) instead of the batch '
        'statistics of training mode')
    parser.add_argument('--out', help='also write the rows as JSON')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=ReIDDictAction,
        help='override config settings, as in tools/train.py')
    args = parser.parse_args()
    if args.num_per_modality < 2:
        parser.error(f'--num-per-modality must be >= 2 (BN statistics), got '
                     f'{args.num_per_modality}')
    return args


def main():
    args = parse_args()
    import copy

    from mmreid.apis import init_model
    from mmreid.utils import register_all_modules
    register_all_modules()
    init_seed = None
    if args.checkpoint is None:
        model, init_seed = build_start_model(args.config, args.cfg_options,
                                             args.init_seed)
    else:
        model = init_model(
            args.config,
            args.checkpoint,
            cfg_options=args.cfg_options,
            command='tools/analysis_tools/modality_gap.py')
    cfg = model.cfg
    batch = mixed_batch(cfg, args.num_per_modality, args.seed,
                        model.data_preprocessor)
    model = copy.deepcopy(model)  # training mode updates running stats
    data = model.data_preprocessor(batch, False)
    inputs, samples = data['inputs'], data['data_samples']
    modality = [int(s.metainfo['modality']) for s in samples]
    model.train(not args.eval)

    def forward(x):
        return model.head.predict(model.extract_feat(x))

    rows = measure_modality_gap(model, inputs, modality, forward)
    mode = 'eval (running statistics)' if args.eval else \
        'train (batch statistics)'
    print(f'Modality gap at the input of each norm layer: '
          f'{args.num_per_modality} visible + {args.num_per_modality} '
          f'infrared training images, draw seed {args.seed}, {mode}, '
          f'{args.checkpoint or f"random init (init seed {init_seed})"}')
    print(format_table(rows))
    if args.out:
        from mmreid.utils.atomic import open_atomic
        with open_atomic(args.out, 'w') as f:
            json.dump(
                dict(
                    config=args.config,
                    checkpoint=args.checkpoint,
                    num_per_modality=args.num_per_modality,
                    seed=args.seed,
                    init_seed=init_seed,
                    mode='eval' if args.eval else 'train',
                    rows=rows),
                f,
                indent=2)


if __name__ == '__main__':
    main()
