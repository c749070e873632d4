"""Extract ReID features of a folder of images or of a dataset split.

    python tools/extract_features.py CONFIG CHECKPOINT --images DIR
    python tools/extract_features.py CONFIG CHECKPOINT --split test
        [--out-dir DIR] [--format npy|pt] [--batch-size N] [--device DEV]
        [--modality 0|1] [--target NAME] [--cfg-options k=v ...]

Writes into ``--out-dir``:

* ``features.npy`` (or ``features.pt``): float32, shape (N, D), one row per
  image, the model's test feature (the same as tools/test.py evaluates);
* ``index.csv``: per row ``row, path, pid, camid, modality, role, dataset``
  (``--split train``: ``label`` instead of ``pid``, see below);
* ``meta.json``: config, checkpoint, source, count and feature size, and
  how ``tools/test.py`` ranks the features: as the config's metric does
  (``--split val``: the validation metric's, else the test metric's; a
  multi-target loop's target's, refused without ``--target`` where the
  targets rank differently), else, without one, as the model's
  ``distance``: ``ranking_distance`` (e.g. ``euclidean``, AGW's
  ``cosine``; ``sqeuclidean`` under ``rerank``, which re-ranks squared
  Euclidean distances), ``feature_normalization`` (``l2`` for cosine,
  ``normalize=True`` or query expansion, else ``none``), ``rerank`` and
  ``query_expansion`` (the metric's options, or null),
  ``ranking_source`` (the config key read), ``features_only`` and
  ``ranking_note``. A model that ranks with its own distance (GMN's
  M-Net) gets ``features_only: true`` and its primary mode (``mnet``): no
  feature distance on these features gives its ranking
  (``mmreid.apis.rank_gallery`` does).
  The metric's rank rules are recorded too (``junk_rule``,
  ``tie_policy``, ``ap_mode``, ``cmc_mode``; null without a metric
  mmreid knows): which gallery items each query ignores and how the
  numbers are counted.
  ``batch_size`` (per dataloader for a batch-dependent model) and
  ``batch_dependent`` say how the images were batched (see below), and
  ``fp16`` whether they were extracted under fp16 autocast: as
  ``tools/test.py`` does for a config with ``test_cfg.fp16=True``, on a
  CUDA device only (refused on the CPU, where the test loop is refused
  too; ``--split val`` is refused where ``val_cfg.fp16`` differs).

The three are written into a temporary folder beside ``--out-dir`` that
then replaces it, so a reader never sees new features next to an old or
half-written index. A previous ``--out-dir`` is replaced as a whole: one
that holds other files is refused, and so is a default ``--out-dir`` (named
after base names only) holding the features of another config, checkpoint,
image folder, split or target. A run killed while swapping the folders
leaves the previous set aside, hidden beside ``--out-dir``; the next run
puts it back (and says so) before it writes.

``camid`` is 0-based in both modes, as the datasets and metrics count
cameras: the file-name camera ``c1`` is camid 0. With ``--split`` the
labels are the dataset's records (``role`` query/gallery/train, a
multi-target config's targets one after the other). ``dataset`` is the
name ``tools/test.py`` reports the image's metrics under where a loop
has targets: with ``--split val``/``test`` of a multi-target config the
target's name (``test_cfg.targets[i].name``), with ``--target`` or
without; otherwise the dataset's own name (its ``dataset_name``, e.g.
``market1501``; for a multi-source training set each image's source).
The training records carry training labels, the pids relabelled ``0..N-1``
(offset per source of a multi-source set), not the pids of the files: with
``--split train`` that column is named ``label``. With
``--images`` they are parsed from Market-style file names
(``0002_c1s1_000451_03.jpg``: pid 2, camid 0); other names leave pid and
camid empty, and a camera ``c0`` (no camera of the 1-based convention)
leaves camid empty. Market-1501's junk files (``-1_c...``) are kept, marked
by their pid -1 (the datasets, and so ``--split``, drop them):
``evaluate_rank(junk_rule='market')`` ignores a pid -1 gallery item, as
Market's evaluation does, and refuses a pid -1 query.

Features come from :func:`mmreid.apis.extract_features` (eval mode), one
batch at a time so that a progress bar can follow. Every image goes through
the test pipeline that ``tools/test.py`` runs: the test dataloader's, or
that of the targets of a multi-target test loop; where the targets'
pipelines differ, ``--target NAME`` chooses one (and, with ``--split
val``/``test``, its images only), otherwise the run is refused.

Features do not depend on ``--batch-size`` (eval mode) beyond fp32
rounding (oneDNN's convolutions on the CPU round a batch of 1 and of 16
differently, by about 1e-8 relative), except for a model whose MBN
layers use ``eval_stats='batch'``, or whose batch norm layers keep no
running statistics (``track_running_stats=False``): each test batch is
normalised with its own statistics, so its features are those of the
batches ``tools/test.py`` (one process) runs, and of no others. For such a
model ``--split val``/``test`` batch as the split's dataloader(s) do
(``batch_size``, dataset order, each multi-target loader apart; a
``--batch-size`` other than the loader's and a shuffling sampler are
refused), and ``--images`` and ``--split train``, which no test
dataloader batches, are refused.

The tool runs in one process and has no ``--launcher``: started by
``torchrun`` (or ``mpirun``) with several processes, every process would
extract all the images and replace the same ``--out-dir``, so it refuses
to start when ``WORLD_SIZE`` (``OMPI_COMM_WORLD_SIZE``) is above 1.

The checkpoint is loaded with ``init_model``'s rules: a partial load and a
config other than the one it records (``meta['cfg']``, a converted
checkpoint's source) are refused, the latter with the ``--cfg-options``
that give the recorded settings; this tool has no switch that accepts
either (``init_model(..., strict=False)`` does, from Python).
"""
import argparse
import csv
import json
import os
import os.path as osp
import re
import sys
from typing import List, Optional, Sequence

import numpy as np
import torch
from mmengine.config import Config
from mmengine.utils import ProgressBar

from mmreid.apis import (extract_features, init_model, list_images,
                         parse_market_name)
from mmreid.apis.inference import (evaluated_ranking, feature_fp16, loop_fp16,
                                   market_camid)
from mmreid.evaluation.functional.junk_rules import JUNK_PID
from mmreid.models.layers.mbn import (batch_statistics_layers,
                                      untracked_batch_norms, untracked_named)
from mmreid.registry import DATASETS
from mmreid.utils.atomic import atomic_folder, check_replaceable
from mmreid.utils.config import check_config_file, read_config
from mmreid.utils.config.options import ReIDDictAction, merge_cfg_options
from mmreid.utils.pipeline_source import (resolve_test_pipeline,
                                          split_datasets, split_pipelines)

INDEX_COLUMNS = ('row', 'path', 'pid', 'camid', 'modality', 'role', 'dataset')
#: ``--split train``: the records carry training labels (the pids
#: relabelled ``0..N-1``, offset per source), not the pids of the files.
TRAIN_INDEX_COLUMNS = ('row', 'path', 'label', 'camid', 'modality', 'role',
                       'dataset')
#: ``--batch-size`` of a model whose features do not depend on the batch.
DEFAULT_BATCH_SIZE = 64
#: What a run writes into ``--out-dir`` (any previous run's included).
OUTPUTS = ('features.npy', 'features.pt', 'index.csv', 'meta.json')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Extract ReID features of images or a dataset split, '
        'in one process (no --launcher; refused under torchrun or mpirun '
        'with several processes)')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file (path or URL)')
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--images', help='a folder of images (not recursive)')
    source.add_argument(
        '--split',
        choices=('train', 'val', 'test'),
        help="the images of the config's train/val/test dataset(s)")
    parser.add_argument(
        '--out-dir',
        help='where to write (default: work_dirs/features/<config name>_'
        '<images folder name or split>[_<target>])')
    parser.add_argument(
        '--format',
        choices=('npy', 'pt'),
        default='npy',
        help='features.npy (numpy) or features.pt (torch); default npy')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=None,
        help='images per forward (default: 64; for a model whose features '
        "depend on the batch, MBN eval_stats='batch', the split's "
        "dataloader batch_size, the only one accepted)")
    parser.add_argument(
        '--device',
        default=None,
        help='cpu, cuda, cuda:1, ... (default: cuda if available, else cpu)')
    parser.add_argument(
        '--modality',
        type=int,
        choices=(0, 1),
        help='--images of a cross-modality (modality-aware) model: 0 '
        'visible, 1 infrared; required by such a model, an error for '
        'another')
    parser.add_argument(
        '--target',
        default=None,
        help='multi-target configs: the target (test_cfg.targets[i].name) '
        'whose test pipeline to run (needed where the targets\' pipelines '
        'differ); with --split val/test, only its images')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=ReIDDictAction,
        help='override config settings, e.g. model.head.test_feature='
        'before_bn')
    args = parser.parse_args(argv)
    try:
        check_single_process()
    except ValueError as e:
        parser.error(str(e))
    try:
        check_config_file(args.config)
    except FileNotFoundError as error:
        parser.error(str(error))
    if '://' not in args.checkpoint and not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint {args.checkpoint!r} is not a file')
    if args.images is not None and not osp.isdir(args.images):
        parser.error(f'--images {args.images!r} is not a directory')
    if args.batch_size is not None and args.batch_size < 1:
        parser.error(f'--batch-size must be at least 1, got '
                     f'{args.batch_size}')
    if args.modality is not None and args.split is not None:
        parser.error('--modality is for --images; a split carries the '
                     'modality of every image')
    if args.device is None:
        args.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    defaulted = args.out_dir is None
    if defaulted:
        name = osp.splitext(osp.basename(args.config))[0]
        what = args.split or osp.basename(osp.normpath(args.images))
        # Each target its own folder: --target d0 after --target d3 would
        # replace d3's features otherwise.
        target = f'_{args.target}' if args.target else ''
        args.out_dir = osp.join('work_dirs', 'features',
                                f'{name}_{what}{target}')
    try:
        check_out_dir(args.out_dir)
        if defaulted:
            check_default_out_dir(args)
    except (FileExistsError, NotADirectoryError) as e:
        parser.error(str(e))
    return args


def check_default_out_dir(args: argparse.Namespace) -> None:
    """Refuse to replace, in the default ``--out-dir``, the features of
    another source.

    The default folder is named after the config's and the image folder's
    (or split's) base names only: ``data/a/query`` after ``data/b/query``,
    or another checkpoint of the config, replaced the first run's features
    without a word. The same command run again replaces its own set.

    Raises:
        FileExistsError: The folder's ``meta.json`` records another
            config, checkpoint, image folder, split or target; names both.
    """
    meta_file = osp.join(args.out_dir, 'meta.json')
    if not osp.isfile(meta_file):
        return
    try:
        with open(meta_file) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        meta = None
    if not isinstance(meta, dict):
        raise FileExistsError(
            f'{meta_file} is not a meta.json this tool wrote; give '
            '--out-dir to write the features elsewhere')
    ours = dict(
        config=osp.abspath(args.config),
        checkpoint=osp.abspath(args.checkpoint),
        images=osp.abspath(args.images) if args.images else None,
        split=args.split,
        target=args.target)
    theirs = dict(
        meta,
        checkpoint=osp.abspath(meta['checkpoint'])
        if isinstance(meta.get('checkpoint'), str) else None)
    differ = [k for k, v in ours.items() if theirs.get(k) != v]
    if differ:
        key = differ[0]
        raise FileExistsError(
            f'{args.out_dir} (the default --out-dir) holds the features of '
            f'{key} {theirs.get(key)!r}, not {ours[key]!r}: the default '
            'folder is named after base names only. Give --out-dir to keep'
            ' both, or remove the folder to replace them')


#: The variables in which a launcher gives the number of processes
#: (torchrun, mpirun).
WORLD_SIZE_VARS = ('WORLD_SIZE', 'OMPI_COMM_WORLD_SIZE')


def check_single_process(environ: Optional[dict] = None) -> None:
    """Refuse a start in several processes (``torchrun --nproc_per_node 2``).

    The tool has no ``--launcher``: each process would extract every image
    and replace the same ``--out-dir``, one after the other or failing
    (``OSError: Directory not empty`` when two swap at once).

    Args:
        environ (dict, optional): The environment; ``os.environ`` if None.

    Raises:
        ValueError: Naming the variable, its value and how to run.
    """
    environ = os.environ if environ is None else environ
    for name in WORLD_SIZE_VARS:
        value = environ.get(name, '').strip()
        if value.isdigit() and int(value) > 1:
            raise ValueError(
                f'{name}={value}: tools/extract_features.py runs in one '
                'process (it has no --launcher), and every process of a '
                'distributed launch would extract all the images and '
                'replace the same --out-dir. Run it as python '
                'tools/extract_features.py ..., not under torchrun or '
                'mpirun.')


#: The entries of ``--out-dir`` (a regular expression, see
#: :func:`~mmreid.utils.atomic.check_replaceable`).
_OUTPUT_NAMES = '|'.join(re.escape(name) for name in OUTPUTS)


def check_out_dir(out_dir: str) -> None:
    """Refuse an ``--out-dir`` that the run could not replace as a whole
    (before extracting; :func:`write` checks again).

    Raises:
        NotADirectoryError: ``out_dir`` is a file.
        FileExistsError: It holds something other than a previous run's
            outputs, named in the message.
    """
    check_replaceable(out_dir, _OUTPUT_NAMES, '--out-dir')


def check_val_precision(cfg: Config, split: Optional[str], fp16: bool) -> None:
    """Refuse ``--split val`` where validation extracts at another
    precision than the features written (``test_cfg.fp16``, as
    ``tools/test.py``, see :func:`mmreid.apis.inference.feature_fp16`).

    Raises:
        ValueError: ``val_cfg.fp16`` differs from ``test_cfg.fp16``;
            naming both.
    """
    if split != 'val' or loop_fp16(cfg, 'val') == fp16:
        return
    raise ValueError(
        f'--split val: the features are extracted as tools/test.py does '
        f'(test_cfg.fp16={fp16}), but validation extracts them with '
        f'val_cfg.fp16={loop_fp16(cfg, "val")}, so they would not be the '
        'validated ones. Give both the same value (--cfg-options '
        f'test_cfg.fp16={loop_fp16(cfg, "val")})')


def check_val_pipeline(cfg: Config, split: Optional[str],
                       target: Optional[str]) -> None:
    """Refuse ``--split val`` where validation reads its images through
    another pipeline than the test one every image goes through here
    (:func:`~mmreid.utils.pipeline_source.resolve_test_pipeline`).

    Raises:
        ValueError: A validation pipeline of the images extracted (of
            ``target``'s, with a multi-target validation loop) differs
            from the test pipeline; names both config keys.
    """
    if split != 'val':
        return
    test = resolve_test_pipeline(cfg, target, option='--target {}')
    sources = split_pipelines(cfg, 'val')
    if target is not None and any(s.target for s in sources):
        sources = [s for s in sources if s.target == str(target)]
    differ = [s.path for s in sources if list(s.pipeline) != test.pipeline]
    if differ:
        raise ValueError(
            f'--split val: every image goes through the test pipeline '
            f'({test.path}), but validation reads them through '
            f'{", ".join(differ)}, another pipeline, so the features would '
            'not be the validated ones and their ranking would not give '
            'the validation numbers. Give both the same pipeline, or '
            'extract with --split test')


def split_records(cfg: Config,
                  split: str,
                  target: Optional[str] = None) -> List[dict]:
    """One record per image of ``split``: path, pid, camid, modality,
    role, dataset; with ``target``, those of that target only.

    ``dataset`` is a multi-target loop's target name for its targets'
    images (``target`` given or not), else the record's own (its
    dataset's ``dataset_name``; a multi-source set's source)."""
    records = []
    targets = split_datasets(cfg, split)
    of_loop = targets[0][1].startswith(f'{split}_cfg.targets.')
    if target is not None and of_loop:
        names = [name for name, _, _ in targets]
        targets = [t for t in targets if t[0] == target]
        if not targets:
            raise ValueError(f'--target {target!r} is not a target of '
                             f'{split}_cfg.targets; the targets are {names}')
    for name, key, dataset_cfg in targets:
        # Only the records are read here; images go through the model
        # config's test pipeline in extract_features.
        dataset = DATASETS.build(dict(dataset_cfg, pipeline=[]))
        dataset.full_init()
        for i in range(len(dataset)):
            info = dataset.get_data_info(i)
            records.append(
                dict(
                    path=info['img_path'],
                    pid=info.get('pid'),
                    camid=info.get('camid'),
                    modality=info.get('modality', 0),
                    role=info.get('role', split),
                    dataset=name if of_loop else info.get('dataset', name),
                    loader=key[:-len('.dataset')]))
    return records


def report_junk(records: Sequence[dict]) -> None:
    """Say how many images carry the junk pid, and what becomes of them."""
    num_junk = sum(r['pid'] == JUNK_PID for r in records)
    if num_junk:
        print(f'{num_junk} of {len(records)} images have pid {JUNK_PID} '
              '(Market-1501 junk): kept, marked by that pid in index.csv; '
              "evaluate_rank(junk_rule='market') ignores them in a gallery "
              'and refuses them as queries')


def image_records(folder: str, modality: Optional[int]) -> List[dict]:
    """One record per image of ``folder``, labels from Market-style
    names."""
    records = []
    for name in list_images(folder):
        path = osp.join(folder, name)
        pid, camera = parse_market_name(path)
        records.append(
            dict(
                path=path,
                pid=pid,
                camid=market_camid(camera),
                modality=modality,
                role='',
                dataset=''))
    return records


def fixed_batches(records: List[dict], batch_size: int) -> List[List[dict]]:
    """``records`` in order, cut into batches of ``batch_size``."""
    return [
        records[start:start + batch_size]
        for start in range(0, len(records), batch_size)
    ]


def loader_batches(cfg: Config,
                   split: Optional[str],
                   records: List[dict],
                   batch_size: Optional[int],
                   layers: List[str],
                   untracked: bool = False) -> tuple:
    """The batches of the split's dataloader(s), for a model whose
    features depend on the batch (MBN ``eval_stats='batch'`` in
    ``layers``; with ``untracked``, batch norm layers that keep no running
    statistics): one process's batches, in dataset order, each loader's
    own (a multi-target loop's targets one after the other).

    Returns:
        tuple: The batches (lists of records) and the batch size of each
        loader (config key -> batch_size), for meta.json.

    Raises:
        ValueError: ``--images`` or ``--split train`` (no test dataloader
            batches them), a shuffling sampler, or a ``--batch-size``
            other than the loader's.
    """
    if untracked:
        why = (f"the model's {untracked_named(layers[:1])}: each test "
               'batch is normalised with its own statistics, so the '
               'features depend on how the images are batched')
        fix = 'or use a model trained with running statistics'
    else:
        why = (f"the model's MBN layers (e.g. {layers[0]!r}) use "
               "eval_stats='batch': each test batch is normalised with its "
               'own statistics, so the features depend on how the images '
               'are batched')
        from mmreid.models.layers.mbn import running_statistics_fix
        fix = ('or use each modality\'s running statistics: '
               f'{running_statistics_fix(cfg)}')
    if split not in ('val', 'test'):
        what = '--images' if split is None else f'--split {split}'
        raise ValueError(f'{what}: {why}, and no test dataloader batches '
                         f'these images. Use --split test (the test '
                         f"dataloader's batches, as tools/test.py), {fix}")
    sizes = {}
    for r in records:
        if r['loader'] in sizes:
            continue
        loader = cfg
        for part in r['loader'].split('.'):
            loader = loader[int(part) if part.isdigit() else part]
        sampler = loader.get('sampler') or {}
        if not str(sampler.get('type', '')).endswith('DefaultSampler') \
                or sampler.get('shuffle', True):
            raise ValueError(
                f'{why}; {r["loader"]}.sampler is {dict(sampler)!r}, not '
                "type='DefaultSampler' with shuffle=False, so its batches "
                'are not the dataset order this tool reads: set that '
                f'sampler, {fix}')
        size = sizes[r['loader']] = int(loader['batch_size'])
        if batch_size is not None and batch_size != size:
            raise ValueError(
                f'--batch-size {batch_size}: {why}, and tools/test.py '
                f'batches them by {r["loader"]}.batch_size={size}. Leave '
                f'--batch-size out (or give {size}), {fix}')
    batches = []
    for key in sizes:
        batches += fixed_batches([r for r in records if r['loader'] == key],
                                 sizes[key])
    return batches, sizes


def extract(model, batches: List[List[dict]]) -> torch.Tensor:
    """Features (N, D) of the records of ``batches``, one forward per
    batch, with a progress bar."""
    use_modality = all(r['modality'] is not None for b in batches for r in b)

    def modality(batch):
        return [r['modality'] for r in batch] if use_modality else None

    bar = ProgressBar(sum(len(b) for b in batches), file=sys.stderr)
    feats = []
    for batch in batches:
        feats.append(
            extract_features(
                model, [r['path'] for r in batch],
                batch_size=len(batch),
                modality=modality(batch)))
        bar.update(len(batch))
    sys.stderr.write('\n')
    return torch.cat(feats)


def write(out_dir: str,
          feats: torch.Tensor,
          records: List[dict],
          fmt: str,
          meta: dict,
          columns: Sequence[str] = INDEX_COLUMNS) -> str:
    """Write features, index.csv and meta.json; returns the feature file.

    They are written into a temporary folder beside ``out_dir`` that then
    takes its place: a reader sees the previous complete set or the new
    one, never a mix. An error (or Ctrl-C) leaves the previous set. A run
    killed between moving the previous set aside and moving the new one in
    leaves the previous set hidden (``.<name>.tmp-...-<hex>.old``): it is
    put back under ``out_dir`` first, so that this run, if it fails too,
    leaves it there (see :func:`~mmreid.utils.atomic.atomic_folder`).

    Raises:
        FileExistsError: ``out_dir`` holds files other than a previous
            run's outputs (see :func:`check_out_dir`).
    """
    out_dir = osp.abspath(out_dir)
    with atomic_folder(out_dir, _OUTPUT_NAMES, '--out-dir') as tmp:
        _write_set(tmp, feats, records, fmt, meta, columns)
    return osp.join(out_dir, f'features.{fmt}')


def _write_set(out_dir: str,
               feats: torch.Tensor,
               records: List[dict],
               fmt: str,
               meta: dict,
               columns: Sequence[str] = INDEX_COLUMNS) -> None:
    """Write the three files into the (new, empty) folder ``out_dir``."""
    feats = feats.float().contiguous()
    feature_file = osp.join(out_dir, f'features.{fmt}')
    if fmt == 'npy':
        np.save(feature_file, feats.numpy())
    else:
        torch.save(feats, feature_file)
    with open(osp.join(out_dir, 'index.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        # The record's pid under the name of what it is (columns[2]).
        writer.writerow(columns)
        for row, r in enumerate(records):
            writer.writerow([
                row, r['path'], '' if r['pid'] is None else r['pid'],
                '' if r['camid'] is None else r['camid'],
                '' if r['modality'] is None else r['modality'], r['role'],
                r['dataset']
            ])
    meta = dict(
        meta,
        num_images=int(feats.shape[0]),
        feature_dim=int(feats.shape[1]),
        dtype='float32',
        features=osp.basename(feature_file),
        index='index.csv')
    with open(osp.join(out_dir, 'meta.json'), 'w') as f:
        json.dump(meta, f, indent=2)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    cfg = read_config(args.config, phase='test')
    merge_cfg_options(cfg, args.cfg_options, args.config, phase='test')
    # The pipeline every image will go through, checked before loading.
    resolve_test_pipeline(cfg, args.target, option='--target {}')
    model = init_model(
        cfg,
        args.checkpoint,
        device=args.device,
        target=args.target,
        command='tools/extract_features.py')
    if args.images is not None:
        # As pytorch2onnx: a modality the features would not depend on is
        # refused (and not written into index.csv), one needed is asked.
        from mmreid.models.modality_routing import check_modality_option
        check_modality_option(model, args.modality)
    columns = INDEX_COLUMNS
    if args.split == 'train':
        records = split_records(model.cfg, args.split, args.target)
        columns = TRAIN_INDEX_COLUMNS
        source = dict(
            split=args.split,
            labels='dataset records (camid 0-based); the label column is '
            'the training label (the pids relabelled 0..N-1 in sorted '
            'order, offset per source of a multi-source set), not the pid '
            'of the file, which the training records do not keep')
    elif args.split is not None:
        records = split_records(model.cfg, args.split, args.target)
        source = dict(
            split=args.split, labels='dataset records (camid 0-based)')
        if args.target is not None:
            source['target'] = args.target
    else:
        records = image_records(args.images, args.modality)
        source = dict(
            images=osp.abspath(args.images),
            labels='Market-style file names (camid 0-based: c1 -> 0); '
            'pid and camid empty when a name does not parse, camid empty '
            'for a camera c0; pid -1 marks a Market junk file, kept')
        report_junk(records)
    if not records:
        raise ValueError(f'no images found in {args.images or args.split}')
    # Before extraction: a ranking meta.json cannot record is refused.
    ranking = evaluated_ranking(
        model,
        phase='val' if args.split == 'val' else 'test',
        target=args.target)
    fp16 = feature_fp16(model)
    check_val_precision(model.cfg, args.split, fp16)
    check_val_pipeline(model.cfg, args.split, args.target)
    layers = batch_statistics_layers(model)
    untracked = not layers and untracked_batch_norms(model)
    if layers or untracked:
        batches, batch_size = loader_batches(model.cfg, args.split, records,
                                             args.batch_size, layers
                                             or untracked, bool(untracked))
    else:
        batch_size = args.batch_size or DEFAULT_BATCH_SIZE
        batches = fixed_batches(records, batch_size)
    sizes = ', '.join(f'{v} ({k}.batch_size)' for k, v in batch_size.items()) \
        if layers or untracked else batch_size
    print(f'extracting {len(records)} images on {args.device}, batches of '
          f'{sizes}')
    with torch.no_grad():
        feats = extract(model, batches)
    feature_file = write(
        args.out_dir,
        feats,
        records,
        args.format,
        dict(
            config=osp.abspath(args.config),
            checkpoint=args.checkpoint,
            **source,
            **ranking,
            batch_size=batch_size,
            batch_dependent=bool(layers or untracked),
            fp16=fp16),
        columns=columns)
    print(f'{feats.shape[0]} x {feats.shape[1]} features written to '
          f'{feature_file}, with index.csv and meta.json')


if __name__ == '__main__':
    main()
