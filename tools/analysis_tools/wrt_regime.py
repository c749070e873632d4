"""Where a model sits for ``WRTLoss``'s negative-weight collapse.

The reference WRT softmax (kept by ``WRTLoss(exact_softmax=False)``, the
default) gives an anchor's negatives weights summing to ``S / (S + 1e-6)``,
``S = sum exp(-d_n)``: about 0 once the nearest negative is past ~14, where
the loss loses its negative term (configs/mbn/README.md). This tool runs
training batches through a model in train mode, catches the features the
WRT loss receives, and prints the nearest-negative distances, the negative
weight sums and the loss (unweighted) in both modes, all of the features
as the model's loss sees them (L2-normalised under its
``normalize_feature``)::

    python tools/analysis_tools/wrt_regime.py \\
        configs/mbn/agw_r18_synthreid-vi-v2.py \\
        work_dirs/mbn_v21/agw_r18_synthreid-vi-v2_seed0/epoch_12.pth \\
        --batches 20

``init`` instead of a checkpoint measures the weights training starts from:
built as ``modality_gap.py`` builds them (the seed ``--init-seed``, by
default the config's ``randomness.seed``, set before the build, then
``init_weights()``), whatever the sampler's ``--seed``.

A checkpoint is loaded as ``tools/test.py`` loads it, with the same
checks: a partial load, a plain-BN checkpoint in an MBN model, a converted
checkpoint of another network and a checkpoint whose saved config
(``meta['cfg']``) builds another network or feeds it other test images
are refused (``--cfg-options`` gives the recorded settings; this tool has
no ``--strict false``), and a classifier trained on another number of
identities is skipped with a warning (the features the loss receives do
not use it).
"""
import argparse
import os.path as osp
import sys
from typing import Optional

import torch
import torch.nn.functional as F
from mmengine.runner import Runner

from mmreid.models.losses import WRTLoss, pairwise_euclidean
from mmreid.registry import MODELS
from mmreid.utils import register_all_modules
from mmreid.utils.arch_check import check_source_arch
from mmreid.utils.checkpoint import load_trusted_checkpoint
from mmreid.utils.config import read_config
from mmreid.utils.config.options import ReIDDictAction, merge_cfg_options
from mmreid.utils.model_state import check_model_fits, load_model_state

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from modality_gap import build_start_model  # noqa


def parse_args():
    parser = argparse.ArgumentParser(
        description="Measure where a model sits for WRTLoss's "
        'negative-weight collapse')
    parser.add_argument('config', help='config whose head has a WRTLoss')
    parser.add_argument(
        'checkpoint',
        help="checkpoint file, or 'init' for the initial weights")
    parser.add_argument(
        '--batches', type=int, default=20, help='training batches to use')
    parser.add_argument('--seed', type=int, default=0, help='sampler seed')
    parser.add_argument(
        '--init-seed',
        type=int,
        help="with 'init': the seed set before the model is built "
        "(default: the config's randomness.seed, as training does)")
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=ReIDDictAction,
        help='override config keys, e.g. model.backbone.last_stride=1')
    return parser.parse_args()


def measure(cfg,
            checkpoint: str,
            batches: int,
            seed: int = 0,
            init_seed: Optional[int] = None) -> dict:
    """Features the WRT loss receives, over ``batches`` training batches.

    Args:
        cfg (Config): A config whose ``model.head.loss_tri`` is a WRTLoss.
        checkpoint (str): Checkpoint file, or ``'init'``: the weights
            training starts from (``modality_gap.build_start_model``).
        batches (int): Training batches to run (train mode, no update).
        seed (int): Seed of the sampler.
        init_seed (int, optional): With ``'init'``, the seed set before
            the build; defaults to the config's ``randomness.seed``.

    Returns:
        dict: ``near`` (A, ) nearest-negative distance per anchor,
        ``weight_sum`` (A, ) the reference softmax's negative weight sum,
        ``reference`` / ``exact`` the WRT loss per batch (B, ) in both modes.
    """
    if checkpoint == 'init':
        model, _ = build_start_model(cfg, init_seed=init_seed)
    else:
        model = MODELS.build(cfg.model)
    wrt = getattr(model.head, 'loss_tri', None)
    if not isinstance(wrt, WRTLoss):
        raise ValueError(f'model.head.loss_tri is {type(wrt).__name__}, '
                         'not WRTLoss')
    if checkpoint != 'init':
        # As tools/test.py loads (ReIDRunner.load_checkpoint): the network
        # size, the config against the checkpoint's network, then mmreid's
        # rules (a partial load or a plain-BN checkpoint in an MBN model
        # are refused, a classifier of other identities is skipped with a
        # warning).
        state = load_trusted_checkpoint(checkpoint, map_location='cpu')
        meta = state.get('meta') if isinstance(state, dict) else None
        check_model_fits(
            model, state, checkpoint, cfg=cfg, before_config_checks=True)
        check_source_arch(meta, model, cfg, checkpoint, test=True, opt_out='')
        load_model_state(
            model,
            state,
            checkpoint,
            strict=True,
            opt_out='nothing in this tool',
            cfg=cfg)
    cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=seed)
    seen = []
    wrt.register_forward_pre_hook(lambda module, inputs: seen.append(
        (inputs[0].detach(), inputs[1])))
    model.train()
    out = dict(near=[], weight_sum=[], reference=[], exact=[])
    with torch.no_grad():
        for i, batch in enumerate(loader):
            if i == batches:
                break
            model(**model.data_preprocessor(batch, True), mode='loss')
            feats, labels = seen[-1]
            # The distances the loss sees: of unit features under its
            # normalize_feature.
            seen_feats = F.normalize(feats, dim=1) \
                if wrt.normalize_feature else feats
            dist = pairwise_euclidean(seen_feats, seen_feats)
            negative = labels[None] != labels[:, None]
            dist_n = dist.masked_fill(~negative, float('inf'))
            out['near'].append(dist_n.min(1).values)
            total = torch.exp(-dist_n).sum(1)  # exp(-inf) = 0 elsewhere
            out['weight_sum'].append(total / (total + 1e-6))
            # Unweighted (loss_weight 1), with the model's normalisation.
            for key, exact in (('reference', False), ('exact', True)):
                loss = WRTLoss(
                    normalize_feature=wrt.normalize_feature,
                    exact_softmax=exact)
                out[key].append(loss(feats, labels).view(1))
    if not out['near']:
        raise ValueError('the training loader gave no batch')
    return {key: torch.cat(values) for key, values in out.items()}


def main():
    args = parse_args()
    register_all_modules()
    cfg = read_config(args.config)
    merge_cfg_options(cfg, args.cfg_options, args.config)
    try:
        stats = measure(cfg, args.checkpoint, args.batches, args.seed,
                        args.init_seed)
    except ValueError as error:
        raise SystemExit(f'{args.config}: {error}')
    near, weight_sum = stats['near'], stats['weight_sum']
    q = torch.tensor([0.05, 0.5, 0.95, 1.0])

    def fmt(values):
        return ' / '.join(f'{v:.5g}' for v in values.quantile(q).tolist())

    print(f'{args.checkpoint}: {near.numel()} anchors')
    print(f'nearest negative distance (5 % / 50 % / 95 % / max): {fmt(near)}')
    print(f'negative weight sum (5 % / 50 % / 95 % / max): '
          f'{fmt(weight_sum)}; below 0.5 for '
          f'{(weight_sum < 0.5).float().mean().item():.1%} of anchors')
    print(f'WRT loss: reference {stats["reference"].mean().item():.4f}, '
          f'exact {stats["exact"].mean().item():.4f}')


if __name__ == '__main__':
    main()
