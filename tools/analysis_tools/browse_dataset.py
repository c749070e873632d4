"""Write the images of a dataset as the model sees them after its pipeline.

    python tools/analysis_tools/browse_dataset.py CONFIG
        [--phase train|val|test] [--num N] [--out-dir DIR]
        [--mode grid|single] [--tile-size H W] [--shuffle] [--seed S]
        [--target NAME] [--cfg-options k=v ...]

Builds the dataset of ``{phase}_dataloader`` (for the val/test phase of a
multi-target config, that of the target ``--target NAME`` of
``{phase}_cfg.targets``; it may be left out where there is one), runs its
pipeline on the first ``--num`` samples (or a random ``--num`` with
``--shuffle``; random transforms draw anew on every run unless ``--seed``
is given) and writes:

- ``--mode grid`` (default): one picture per role and identity of those
  samples, its samples side by side as tiles of ``--tile-size`` (default
  128 x 64; small images are enlarged by pixel repetition) with the pid,
  camid (the dataset's 0-based camera: Market's ``c1`` is camid 0) and
  modality written under each (under ``query`` or ``gallery`` in the
  val/test phases), named
  ``{role}_pid{pid}_camid{camids}_mod{modalities}.png`` (e.g.
  ``query_pid3_camid1_mod0.png`` and ``gallery_pid3_camid2-4_mod0.png``:
  an identity's query and gallery images are two pictures). In the train
  phase the model's target is the training label (the pids relabelled
  ``0..N-1``), so the dataset's pid and the label are both written
  (``pid 2`` / ``label 0``, file ``train_pid2_label0_camid0_mod0.png``;
  ``label{label}`` alone for a dataset that keeps no ``orig_pid``).
  ``--num`` counts samples, not identities: a dataset's records are
  usually in identity order, so the first 20 may be a few identities (one
  picture each), or one; ``--shuffle`` spreads them over many;
- ``--mode single``: one picture per sample (``--num`` pictures), the
  pipeline's pixels exactly (no resizing, no text), named
  ``{role}_{i:04d}_pid{pid}_camid{camid}_mod{modality}.png`` (with
  ``_label{label}`` after the pid in the train phase).

``{role}`` is the sample's: ``train``, ``query`` or ``gallery``.

The pictures of one run replace ``--out-dir`` as a whole (drawn into a
temporary folder beside it, then renamed), an earlier run's pictures
named in the log, so the folder never mixes runs; a folder that holds
other files is refused before anything is drawn.

``PackReIDInputs`` gives a (C, H, W) RGB tensor, normally ``uint8``; a
float tensor is de-normalised with ``model.data_preprocessor``'s
``mean``/``std`` when it has negative values, scaled by 255 when it lies
in [0, 1], and clipped to [0, 255] otherwise.
"""
import argparse
import os.path as osp
import random
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmreid.registry import DATASETS
from mmreid.utils import register_all_modules
from mmreid.utils.atomic import atomic_folder, check_replaceable, write_image
from mmreid.utils.config.options import ReIDDictAction
from mmreid.utils.pipeline_source import split_datasets
from mmreid.visualization import draw_tiles, modality_name

PHASES = ('train', 'val', 'test')
MODES = ('grid', 'single')
#: The names of the pictures :func:`browse` writes (regex).
OUTPUTS = r'[a-z]+_.*camid.*_mod.*\.png'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Write dataset images after the pipeline')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--phase',
        choices=PHASES,
        default='train',
        help='which dataloader\'s dataset to browse (default train)')
    parser.add_argument(
        '--num',
        type=int,
        default=20,
        help='dataset samples to run the pipeline on (default 20): the '
        'first ones, or random ones with --shuffle. --mode single writes '
        'a picture of each; --mode grid one picture per identity among '
        'them (fewer pictures: one if they all share a pid)')
    parser.add_argument(
        '--out-dir',
        default='browse_dataset',
        help='output folder (default ./browse_dataset)')
    parser.add_argument(
        '--mode',
        choices=MODES,
        default='grid',
        help='grid: one picture per identity; single: one per sample')
    parser.add_argument(
        '--tile-size',
        nargs=2,
        type=int,
        default=(128, 64),
        metavar=('H', 'W'),
        help='tile height and width of --mode grid (default 128 64)')
    parser.add_argument(
        '--shuffle',
        action='store_true',
        help='pick random samples instead of the first ones')
    parser.add_argument(
        '--seed', type=int, default=None, help='seed of the random choices')
    parser.add_argument(
        '--target',
        default=None,
        help='val/test phase of a multi-target config '
        '(<phase>_cfg.targets): the name of the target to browse (needed '
        'where there are several)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=ReIDDictAction,
        help='override config keys, e.g. '
        'train_dataloader.dataset.data_root=data/market1501')
    args = parser.parse_args(argv)
    if args.num < 1:
        parser.error(f'--num must be >= 1, got {args.num}')
    if min(args.tile_size) < 16:
        parser.error('--tile-size must be at least 16 16 to hold its '
                     f'labels, got {args.tile_size[0]} {args.tile_size[1]}')
    return args


def to_image(inputs: torch.Tensor,
             mean: Optional[Sequence[float]] = None,
             std: Optional[Sequence[float]] = None,
             bgr: bool = False) -> np.ndarray:
    """Turn a packed image back into a picture.

    Args:
        inputs (torch.Tensor): (C, H, W), uint8 or float, as given by
            ``PackReIDInputs`` (before the model's data preprocessor);
            C is 1 or 3.
        mean (Sequence[float], optional): The per-channel mean a
            ``Normalize`` of the pipeline subtracted (0-255 scale, in the
            channel order of ``inputs``), added back.
        std (Sequence[float], optional): The std it divided by.
        bgr (bool): ``inputs`` are BGR (a pipeline for a preprocessor
            that swaps them to RGB): shown swapped back.

    Returns:
        np.ndarray: (H, W, 3) RGB uint8.

    Raises:
        ValueError: A float image with negative values and no ``mean``
            and ``std`` to undo: how it was made cannot be told.
    """
    if not isinstance(inputs, torch.Tensor) or inputs.ndim != 3 \
            or inputs.shape[0] not in (1, 3):
        shape = tuple(getattr(inputs, 'shape', ()))
        raise ValueError('expected packed inputs of shape (C, H, W) with C '
                         f'1 or 3, got {type(inputs).__name__} {shape}')
    img = inputs.detach().cpu()
    if img.dtype != torch.uint8:
        img = img.float()
        if mean is not None and std is not None:
            img = img * torch.tensor(std, dtype=torch.float32).view(
                -1, 1, 1) + torch.tensor(
                    mean, dtype=torch.float32).view(-1, 1, 1)
        elif img.min() < 0:
            raise ValueError(
                'the packed images are floats with negative values, but '
                'the pipeline has no Normalize whose mean and std would '
                'undo them: they cannot be drawn as the images they are')
        elif img.max() <= 1.0:
            img = img * 255
        img = img.round().clamp(0, 255).to(torch.uint8)
    if bgr and img.shape[0] == 3:
        img = img.flip(0)
    img = img.permute(1, 2, 0).numpy()
    if img.shape[2] == 1:
        img = np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img)


Stats = Tuple[Optional[list], Optional[list], bool]


def display_stats(cfg, pipeline: Sequence) -> Stats:
    """How to draw what ``pipeline`` packs for the config's model.

    The packed images are what the model's data preprocessor takes:
    BGR where it swaps them to RGB (``bgr_to_rgb``; the pipeline check
    holds the pipeline to that order), RGB otherwise; normalised only by
    a ``Normalize`` of the pipeline (the preprocessor normalises later, on
    the device).

    Returns:
        tuple: The ``Normalize``'s mean and std (None without one), and
        whether the packed images are BGR.
    """
    from mmreid.registry import MODELS
    from mmreid.utils.pipeline_check import (_flattened, _normalises,
                                             transform_class)
    preprocessor_cfg = (cfg.get('model') or {}).get('data_preprocessor')
    bgr = False
    if preprocessor_cfg:
        # ReIDModel's default type where the config gives none.
        preprocessor = MODELS.build(
            dict(dict(type='ReIDDataPreprocessor'), **preprocessor_cfg))
        bgr = bool(getattr(preprocessor, '_channel_conversion', False))
    mean = std = None
    for index, entry in enumerate(pipeline):
        for _, transform in _flattened(f'[{index}]', entry):
            cls = transform_class(transform)
            if cls is not None and _normalises(transform, cls) and \
                    isinstance(transform, dict):
                mean, std = transform.get('mean'), transform.get('std')
    return (None if mean is None else list(mean),
            None if std is None else list(std), bgr)


def _label(data_sample, key: str, default=None):
    value = data_sample.metainfo.get(key, default)
    if isinstance(value, torch.Tensor):
        value = value.reshape(-1)[0].item()
    return value


def _pid(data_sample) -> int:
    gt_label = data_sample.gt_label
    if isinstance(gt_label, torch.Tensor):
        return int(gt_label.reshape(-1)[0].item())
    return int(gt_label)


def _identity(record: dict, gt_label: int, phase: str) -> Tuple[str, str]:
    """``(tile text, file-name part)`` naming a sample's identity.

    In the train phase ``gt_label`` is the training label (pids relabelled
    ``0..N-1``), not the dataset's pid: both are named, the pid from the
    record's ``orig_pid`` (:class:`~mmreid.datasets.BaseReIDDataset` keeps
    it), and the label alone where the dataset keeps no pid.
    """
    if phase != 'train' and record.get('role') != 'train':
        return f'pid {gt_label}', f'pid{gt_label}'
    pid = record.get('orig_pid')
    if pid is None:
        return f'label {gt_label}', f'label{gt_label}'
    return f'pid {pid}\nlabel {gt_label}', f'pid{pid}_label{gt_label}'


def _join(values: List) -> str:
    unique = list(OrderedDict.fromkeys(str(v) for v in values))
    return '-'.join(unique)


def phase_dataset(cfg: Config,
                  phase: str,
                  target: Optional[str] = None) -> Tuple[str, dict]:
    """``(config key, dataset config)`` of the dataset to browse.

    ``{phase}_dataloader.dataset``, or for ``val``/``test`` with a
    multi-target loop (``{phase}_cfg.targets``, whose dataloader is an
    empty placeholder) the dataset of the target named ``target``, which
    may be left out when there is one target
    (:func:`mmreid.utils.pipeline_source.split_datasets`).

    Raises:
        KeyError: The config has no such dataset.
        ValueError: ``target`` names no target, is given without a
            multi-target loop, or is missing where there are several.
    """
    datasets = split_datasets(cfg, phase)
    from_targets = datasets[0][1].startswith(f'{phase}_cfg.targets.')
    names = [name for name, _, _ in datasets]
    if target is not None:
        if not from_targets:
            raise ValueError(
                f'--target {target!r} given, but the {phase} phase has no '
                f'multi-target loop ({phase}_cfg.targets): it browses '
                f'{datasets[0][1]}; leave --target out')
        datasets = [d for d in datasets if d[0] == target]
        if not datasets:
            raise ValueError(f'--target {target!r} is not a target of '
                             f'{phase}_cfg.targets; the targets are {names}')
    elif len(datasets) > 1:
        raise ValueError(f'the {phase} phase has {len(datasets)} targets '
                         f'({phase}_cfg.targets): choose one with --target '
                         f'NAME, one of {names}')
    _, key, dataset_cfg = datasets[0]
    return key, dataset_cfg


def browse(cfg: Config,
           phase: str,
           num: int,
           out_dir: str,
           mode: str = 'grid',
           shuffle: bool = False,
           seed: Optional[int] = None,
           tile_size: Sequence[int] = (128, 64),
           target: Optional[str] = None) -> List[str]:
    """Run a dataset's pipeline and write its images.

    Args:
        cfg (Config): The config.
        phase (str): ``'train'``, ``'val'`` or ``'test'``.
        num (int): Samples to take (at most the dataset's size): one
            picture each with ``mode='single'``, one per identity among
            them with ``'grid'``.
        out_dir (str): Output folder, created if missing; replaced as a
            whole by this run's pictures.
        mode (str): ``'grid'`` or ``'single'``.
        shuffle (bool): Pick random samples.
        seed (int, optional): Seed of the sample choice and transforms.
        tile_size (Sequence[int]): ``(height, width)`` of a grid tile.
        target (str, optional): The target of a multi-target loop to
            browse (see :func:`phase_dataset`).

    Returns:
        list[str]: The written files.

    Raises:
        FileExistsError: ``out_dir`` holds files other than an earlier
            run's pictures (see
            :func:`~mmreid.utils.atomic.check_replaceable`).
    """
    check_replaceable(out_dir, OUTPUTS, 'browse_dataset.py')
    key, dataset_cfg = phase_dataset(cfg, phase, target)
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
    dataset = DATASETS.build(dataset_cfg)
    if len(dataset) == 0:
        raise ValueError(f'{key} is empty')
    indices = list(range(len(dataset)))
    if shuffle:
        random.Random(seed).shuffle(indices)
    indices = indices[:num]
    mean, std, bgr = display_stats(cfg, dataset_cfg.get('pipeline') or [])
    with atomic_folder(out_dir, OUTPUTS, 'browse_dataset.py') as tmp:
        names = _draw(dataset, indices, tmp, mode, phase, tuple(tile_size),
                      mean, std, bgr)
    return [osp.join(out_dir, name) for name in names]


def _draw(dataset, indices: List[int], out_dir: str, mode: str, phase: str,
          tile_size: Tuple[int, int], mean: Optional[Sequence[float]],
          std: Optional[Sequence[float]], bgr: bool) -> List[str]:
    """Write the pictures of ``dataset[indices]`` into ``out_dir`` (see
    :func:`browse`); returns their file names."""
    written = []
    groups: Dict[int, List] = OrderedDict()
    for i, idx in enumerate(indices):
        data = dataset[idx]
        sample = data['data_samples']
        image = to_image(data['inputs'], mean, std, bgr)
        text, name = _identity(dataset.get_data_info(idx), _pid(sample), phase)
        camid = _label(sample, 'camid', 'x')
        modality = _label(sample, 'modality', 0)
        # Query and gallery images of one identity are told apart in the
        # file names (and the tiles), never mixed in one picture.
        role = _label(sample, 'role', phase)
        if role != 'train':
            text = f'{role}\n{text}'
        if mode == 'single':
            filename = f'{role}_{i:04d}_{name}_camid{camid}_mod{modality}.png'
            write_image(osp.join(out_dir, filename), image)
            written.append(filename)
        else:
            groups.setdefault((text, f'{role}_{name}'), []).append(
                (image, camid, modality))
    for (text, name), items in groups.items():
        labels = [
            f'{text}\ncamid {camid}\n{modality_name(modality)}'
            for _, camid, modality in items
        ]
        grid = draw_tiles([img for img, _, _ in items], labels, tile_size)
        camids = _join([c for _, c, _ in items])
        modalities = _join([m for _, _, m in items])
        filename = f'{name}_camid{camids}_mod{modalities}.png'
        write_image(osp.join(out_dir, filename), grid)
        written.append(filename)
    return written


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    register_all_modules(init_default_scope=False)
    from mmreid.utils.config import read_config
    from mmreid.utils.config.options import merge_cfg_options
    phase = 'test' if args.phase == 'test' else 'train'
    cfg = read_config(args.config, phase=phase)
    merge_cfg_options(cfg, args.cfg_options, args.config, phase=phase)
    init_default_scope(cfg.get('default_scope', 'mmreid'))
    written = browse(cfg, args.phase, args.num, args.out_dir, args.mode,
                     args.shuffle, args.seed, args.tile_size, args.target)
    print(f'wrote {len(written)} image{"" if len(written) == 1 else "s"} '
          f'to {args.out_dir}')


if __name__ == '__main__':
    main()
