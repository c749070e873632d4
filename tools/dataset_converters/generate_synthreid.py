"""Write a SynthReID dataset and print its counts.

Examples::

    # every SynthReID folder a config reads, with its parameters (here the
    # v2.1 benchmark of the quick-start demo, data/synthreid-v2.1/)
    python tools/dataset_converters/generate_synthreid.py \\
        --config configs/snr/snr_r18_synthreid-v2.py
    python tools/dataset_converters/generate_synthreid.py data/synthreid
    python tools/dataset_converters/generate_synthreid.py data/synthreid-vi \\
        --modality vi --size demo
    # Calibration proxy: a tiny CNN trained on two domains, evaluated on a
    # held-out-id split of a training domain and on the unseen-style one.
    python tools/dataset_converters/generate_synthreid.py /tmp/synthreid \\
        --size demo --check
"""
import argparse
import json
import os.path as osp
import re
import time
from typing import Dict, List

import cv2
import numpy as np
from mmengine.config import Config

from mmreid.datasets.base_reid_dataset import list_images
from mmreid.datasets.synthetic import (DEFAULT_DOMAINS, PER_DOMAIN_FIELDS,
                                       PRESET_FIELDS, SYNTHREID_PRESETS,
                                       check_synthreid_files,
                                       generate_synthreid, get_domain_styles)
from mmreid.datasets.synthetic_store import MANIFEST
from mmreid.utils.config.options import ReIDDictAction

NAME = re.compile(r'^(-?\d+)_c(\d+)s\d+_\d+_\d+\.jpg$', re.ASCII)
#: The preset fields ``--set`` takes, and those that take one count per
#: domain (``'visible'``), comma-separated.
SET_KEYS = PRESET_FIELDS
PER_DOMAIN_KEYS = PER_DOMAIN_FIELDS
INTEGER = re.compile(r'^-?\d+$', re.ASCII)
#: Images per training step of the ``--check`` proxy (full batches only).
BATCH = 64


def parse_set(parser: argparse.ArgumentParser, items: List[str],
              modality: str) -> dict:
    """The ``--set`` items as generator overrides.

    Args:
        parser (argparse.ArgumentParser): Reports a malformed item.
        items (list[str]): ``KEY=N``, or ``KEY=N,N,...`` (one count per
            domain) for :data:`PER_DOMAIN_KEYS` with ``'visible'``.
        modality (str): ``--modality``.

    Returns:
        dict: Field to an int, or to a list of ints.
    """
    overrides: Dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition('=')
        if not sep or key not in SET_KEYS:
            parser.error(f'--set {item!r}: expected KEY=N with KEY one of '
                         f'{", ".join(SET_KEYS)}')
        if key in overrides:
            parser.error(f'--set {item!r}: {key} is given twice')
        parts = value.split(',')
        if not all(INTEGER.match(p) for p in parts):
            parser.error(f'--set {item!r}: expected an integer, or for '
                         f'{" and ".join(PER_DOMAIN_KEYS)} one integer per '
                         f'domain separated by commas (e.g. '
                         f'num_ids_test=700,100,100,700)')
        if len(parts) > 1 and (key not in PER_DOMAIN_KEYS
                               or modality != 'visible'):
            parser.error(f'--set {item!r}: only '
                         f'{" and ".join(PER_DOMAIN_KEYS)} with --modality '
                         f'visible take one count per domain; {key} takes '
                         f'one integer')
        counts = [int(p) for p in parts]
        overrides[key] = counts if len(counts) > 1 else counts[0]
    return overrides


def train_domain_indices(train_domains, num_domains: int) -> List[int]:
    """``--train-domains`` as indices in ``range(num_domains)``.

    A negative index counts from the end, as the datasets' ``domain``
    does (``-1`` is the unseen-style domain), so that the proxy's table
    labels the domain it trained on "train style".

    Args:
        train_domains (Sequence[int]): The indices given.
        num_domains (int): Number of domains of the folder.

    Returns:
        list[int]: The indices, each in ``range(num_domains)``.

    Raises:
        ValueError: An index out of range, or one domain given twice;
            names the values and the number of domains.
    """
    found: List[int] = []
    for given in train_domains:
        if not -num_domains <= given < num_domains:
            raise ValueError(
                f'--train-domains {given}: out of range for {num_domains} '
                f'domains (expected {-num_domains} to {num_domains - 1})')
        index = given % num_domains
        if index in found:
            raise ValueError(
                f'--train-domains {" ".join(map(str, train_domains))}: '
                f'domain d{index} is given twice')
        found.append(index)
    return found


#: The options that generate a folder of their own, which a config's
#: folders do not take (``--config`` gives each dataset its parameters).
GENERATION_OPTIONS = ('size', 'modality', 'domains', 'seed', 'img_size',
                      'set', 'check', 'train_domains', 'epochs', 'arch')


def parse_args(argv=None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config:
        defaults = parser.parse_args([])
        given = [
            name for name in GENERATION_OPTIONS
            if getattr(args, name) != getattr(defaults, name)
        ]
        if given:
            # They were ignored: --config --size tiny rendered the
            # config's full-size folders.
            parser.error(
                'with --config the config gives every dataset its '
                'parameters; ' +
                ', '.join('--' + n.replace('_', '-') for n in given) +
                ' would be ignored: set them in the config, or with '
                '--cfg-options (e.g. train_dataloader.dataset.seed=1)')
    args.overrides = parse_set(parser, args.set, args.modality)
    if args.epochs < 1:
        parser.error(f'--epochs {args.epochs}: expected an integer >= 1')
    num_domains = DEFAULT_DOMAINS if args.domains is None else args.domains
    if args.check and num_domains >= 1:
        # Before rendering; a bad --domains is refused by the generator.
        try:
            args.train_domains = train_domain_indices(args.train_domains,
                                                      num_domains)
        except ValueError as error:
            parser.error(str(error))
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'root', nargs='?', help='destination folder (not with --config)')
    parser.add_argument(
        '--config',
        help='write every SynthReID/SynthReIDVI folder the datasets of this '
        'config read, with the parameters it gives them (the other '
        'generation options are refused with it)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=ReIDDictAction,
        default={},
        help='override settings of --config, e.g. '
        'train_dataloader.dataset.ir_gap=0.5')
    parser.add_argument(
        '--size', default='small', choices=sorted(SYNTHREID_PRESETS))
    parser.add_argument(
        '--modality', default='visible', choices=('visible', 'vi'))
    parser.add_argument('--domains', type=int, default=None)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--img-size', type=int, nargs=2, default=(128, 64), metavar=('H', 'W'))
    parser.add_argument(
        '--set',
        nargs='*',
        default=[],
        metavar='KEY=N',
        help='override preset fields, e.g. num_ids_train=50; '
        'num_ids_test and num_ids_test_added (visible) also take one count '
        'per domain, e.g. num_ids_test=700,100,100,700')
    parser.add_argument(
        '--check',
        action='store_true',
        help='train a tiny CNN proxy and report rank-1/mAP (visible only)')
    parser.add_argument('--train-domains', type=int, nargs='+', default=(0, 1))
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument(
        '--arch',
        default='tiny',
        choices=('tiny', 'resnet18'),
        help='proxy network for --check (random init)')
    return parser


# ---------------------------------------------------------------------------
# Calibration proxy (torch is imported only here)
# ---------------------------------------------------------------------------
def _load(folder: str, size=(64, 32)):
    imgs, pids, cams = [], [], []
    for name in list_images(folder):
        pid, cam = (int(g) for g in NAME.match(name).groups())
        if pid == -1:
            continue
        img = cv2.imread(osp.join(folder, name), cv2.IMREAD_COLOR)
        imgs.append(cv2.resize(img, size[::-1], interpolation=cv2.INTER_AREA))
        pids.append(pid)
        cams.append(cam)
    return np.stack(imgs), np.array(pids), np.array(cams)


def market_rank1_map(dist: np.ndarray, q_pids, q_cams, g_pids, g_cams):
    """Rank-1 and mAP under the Market rule (same pid and camera ignored).

    Args:
        dist (np.ndarray): Distances of shape (num_query, num_gallery).

    Returns:
        tuple[float, float]: rank-1 and mAP in [0, 1].
    """
    hits, aps = [], []
    for i in range(len(q_pids)):
        keep = ~((g_pids == q_pids[i]) & (g_cams == q_cams[i]))
        order = np.argsort(dist[i][keep], kind='stable')
        match = (g_pids[keep] == q_pids[i])[order]
        if not match.any():
            continue
        hits.append(match[0])
        ranks = np.flatnonzero(match) + 1
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
    return float(np.mean(hits)), float(np.mean(aps))


def check(root: str,
          manifest: dict,
          train_domains,
          epochs: int,
          arch: str = 'tiny') -> None:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    torch.manual_seed(0)
    np.random.seed(0)
    names = [s['name'] for s in manifest['domains']]
    train_domains = train_domain_indices(train_domains, len(names))
    if epochs < 1:
        raise ValueError(f'--epochs {epochs}: expected an integer >= 1')
    xs, ys = [], []
    for d in train_domains:
        x, p, _ = _load(osp.join(root, names[d], 'bounding_box_train'))
        xs.append(x)
        ys.append(p)
    x = np.concatenate(xs)
    if len(x) < BATCH:
        raise ValueError(
            f'--check: the training folders of '
            f'{[names[d] for d in train_domains]} under {root} hold '
            f'{len(x)} images, fewer than the proxy\'s batch of {BATCH}, '
            f'so it would take no training step; use a larger --size '
            f'(small or demo) or more training identities (--set '
            f'num_ids_train=N)')
    labels = np.unique(np.concatenate(ys), return_inverse=True)[1]
    mean, std = x.reshape(-1, 3).mean(0), x.reshape(-1, 3).std(0)

    def to_tensor(a):
        t = torch.from_numpy((a - mean) / std).float()
        return t.permute(0, 3, 1, 2).contiguous()

    def block(i, o):
        return nn.Sequential(
            nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o),
            nn.ReLU(inplace=True), nn.Conv2d(o, o, 3, padding=1, bias=False),
            nn.BatchNorm2d(o), nn.ReLU(inplace=True), nn.MaxPool2d(2))

    if arch == 'resnet18':
        # Random init; last stride 1 (ReID practice) keeps a 4x2 map.
        import torchvision
        net = torchvision.models.resnet18()
        net.layer4[0].conv1.stride = (1, 1)
        net.layer4[0].downsample[0].stride = (1, 1)
        net.fc = nn.BatchNorm1d(512)
        body, dim = net, 512
    else:
        body = nn.Sequential(
            block(3, 16), block(16, 32), block(32, 64), block(64, 128),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.BatchNorm1d(128))
        dim = 128
    head = nn.Linear(dim, int(labels.max()) + 1)
    xt, yt = to_tensor(x), torch.from_numpy(labels)
    params = list(body.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=5e-4)
    steps = epochs * (len(xt) // BATCH)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    start = time.time()
    body.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(xt))
        for b in range(len(xt) // BATCH):
            idx = perm[b * BATCH:(b + 1) * BATCH]
            inp = xt[idx]
            # Flip and a small random translation (padding + crop).
            flip = torch.rand(len(idx)) < 0.5
            inp[flip] = inp[flip].flip(-1)
            dy, dx = np.random.randint(0, 9), np.random.randint(0, 5)
            inp = F.pad(inp, (2, 2, 4, 4), mode='replicate')
            inp = inp[:, :, dy:dy + 64, dx:dx + 32]
            loss = F.cross_entropy(
                head(body(inp)), yt[idx], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f'epoch {epoch + 1}/{epochs} loss {loss.item():.3f} '
              f'({time.time() - start:.0f}s)')
    body.eval()
    rng = np.random.default_rng(0)
    print(f'trained on {[names[d] for d in train_domains]} '
          f'({len(xt)} images, {int(labels.max()) + 1} ids) in '
          f'{time.time() - start:.0f}s')
    print(f'{"target":<8}{"look":<13}{"query":>6}{"gallery":>8}'
          f'{"rank-1":>8}{"mAP":>7}{"chance r1":>10}{"chance mAP":>11}')
    for d, style in enumerate(manifest['domains']):
        q = _load(osp.join(root, style['name'], 'query'))
        g = _load(osp.join(root, style['name'], 'bounding_box_test'))
        with torch.no_grad():
            fq = F.normalize(body(to_tensor(q[0])), dim=1).numpy()
            fg = F.normalize(body(to_tensor(g[0])), dim=1).numpy()
        r1, mAP = market_rank1_map(1 - fq @ fg.T, q[1], q[2], g[1], g[2])
        chance = np.mean([
            market_rank1_map(
                rng.random((len(q[1]), len(g[1]))), q[1], q[2], g[1], g[2])
            for _ in range(20)
        ], 0)
        seen = 'train' if d in train_domains else 'held-out'
        print(f'{style["name"]:<8}{style["look"]:<13}{len(q[1]):>6}'
              f'{len(g[1]):>8}{r1:>8.1%}{mAP:>7.1%}{chance[0]:>10.1%}'
              f'{chance[1]:>11.1%}  ({seen} style)')


#: Dataset types whose folders ``--config`` writes.
SYNTH_TYPES = ('SynthReID', 'SynthReIDVI')
#: The parts of a config the runner builds datasets from (top-level helper
#: variables such as ``synth`` are not read by training).
RUNNER_KEYS = ('train_dataloader', 'val_dataloader', 'test_dataloader',
               'val_cfg', 'test_cfg')
#: Dataset arguments that choose what is read, not what is written.
READ_ONLY_KEYS = ('domain', 'split', 'mode', 'pipeline', 'metainfo',
                  'lazy_init', 'serialize_data', 'test_mode')


def config_datasets(cfg: Config) -> List[dict]:
    """The SynthReID dataset configs of ``cfg``, one per folder.

    Walks what the runner reads (the dataloaders and the loops' targets,
    concatenated datasets included). Two datasets that read one folder
    with different generator parameters are an error: the second would be
    refused at training time.

    Returns:
        list[dict]: One dataset config per ``data_root``, in config order.
    """
    found: Dict[str, dict] = {}
    params: Dict[str, dict] = {}

    def walk(node, where: str) -> None:
        if isinstance(node, dict):
            if node.get('type') in SYNTH_TYPES:
                gen = {
                    k: v
                    for k, v in node.items() if k not in READ_ONLY_KEYS
                }
                root = osp.abspath(str(node['data_root']))
                if root in params and params[root] != gen:
                    raise ValueError(
                        f'{where} reads {root} with the generator '
                        f'parameters {gen}, another dataset of the config '
                        f'with {params[root]}')
                params.setdefault(root, gen)
                found.setdefault(root, node)
            for key, value in node.items():
                walk(value, f'{where}.{key}')
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f'{where}[{i}]')

    for key in RUNNER_KEYS:
        walk(cfg.get(key), key)
    if not found:
        raise ValueError(f'{cfg.filename} has no {" or ".join(SYNTH_TYPES)} '
                         f'dataset')
    return list(found.values())


def generate_from_config(config: str, cfg_options: dict) -> None:
    """Build each SynthReID dataset of a config once, which writes (or
    checks) its folder exactly as training will read it."""
    from mmengine.registry import init_default_scope

    from mmreid.registry import DATASETS
    from mmreid.utils.config import read_config
    from mmreid.utils.config.options import merge_cfg_options
    cfg = read_config(config)
    merge_cfg_options(cfg, cfg_options, config)
    init_default_scope(cfg.get('default_scope', 'mmreid'))
    for dataset_cfg in config_datasets(cfg):
        start = time.time()
        dataset = DATASETS.build(dict(dataset_cfg, pipeline=[]))
        with open(osp.join(dataset.synth_root, MANIFEST)) as f:
            manifest = json.load(f)
        # The dataset checked the split it reads; every folder's counts
        # are printed.
        check_synthreid_files(dataset.synth_root, manifest)
        print(f'{dataset_cfg["type"]} at {osp.abspath(dataset.synth_root)} '
              f'({time.time() - start:.1f}s): {manifest["params"]}')
        for name, counts in manifest['counts'].items():
            print(f'  {name}: {counts}')


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.config:
        if args.root:
            raise SystemExit('give either ROOT or --config: a config names '
                             'its own folders (data_root)')
        generate_from_config(args.config, args.cfg_options)
        return
    if not args.root:
        raise SystemExit('ROOT (the destination folder) or --config is '
                         'needed')
    if args.cfg_options:
        raise SystemExit('--cfg-options needs --config')
    start = time.time()
    manifest = generate_synthreid(
        args.root,
        domains=args.domains,
        size=args.size,
        modality=args.modality,
        seed=args.seed,
        img_size=tuple(args.img_size),
        **args.overrides)
    # A reused folder's parameters, plan and canaries were checked; its
    # files are what the counts below and --check rest on.
    check_synthreid_files(osp.abspath(args.root), manifest)
    print(f'SynthReID at {osp.abspath(args.root)} ({time.time() - start:.1f}s'
          f'): {manifest["params"]}')
    for name, counts in manifest['counts'].items():
        print(f'  {name}: {counts}')
    if args.modality == 'visible':
        for style in get_domain_styles(manifest['params']['domains'],
                                       args.seed):
            print(f'  style {style["name"]}: {style}')
    if args.check:
        if args.modality != 'visible':
            raise SystemExit('--check needs modality="visible"')
        check(args.root, manifest, args.train_domains, args.epochs, args.arch)


if __name__ == '__main__':
    main()
