"""Parse every dataset of a config and check its counts.

    python tools/misc/verify_dataset.py CONFIG [--split train|test|all]
        [--cfg-options k=v ...]

Builds the dataset of ``train_dataloader``, ``val_dataloader`` and
``test_dataloader`` and of every target of a multi-target ``val_cfg`` /
``test_cfg``, then prints one row per split and role: images, identities
(distinct pids as loaded: junk dropped, the distractor pid counted as one),
cameras and, when a dataset has infrared images, images per modality. A
``ConcatReIDDataset`` gets one row per source and role (train, and query /
gallery for a combine-all source) and a total row. The query and gallery
rows of a combine-all source show what it trains on (no distractors) and
are checked on the source's test split as loaded, against that split's
published counts, so a half-copied test folder is seen there too.

Every mmreid dataset class declares the published counts of its splits::

    PUBLISHED_COUNTS = dict(
        train=dict(ids=751, images=12936, cams=6, verified=('ids', 'cams')),
        query=dict(ids=750, images=3368, cams=6, verified=('images', 'cams')),
        gallery=dict(ids=751, images=15913, cams=6,
                     verified=('images', 'cams')))

(read through the dataset's ``published_counts()``, which picks the
numbers of its variant, version or mode; a class outside mmreid may set
``PUBLISHED_COUNTS`` only). ``verified`` is ``True``, ``False`` or the
names of the verified numbers: those specs/datasets.md does not tag
[unverified]. A mismatch on a verified number is an error naming the
dataset, role, number, found and published values (an incomplete copy,
e.g. a missing ``cam3/`` or an emptied ``query/``), on an unverified one a
warning (spec datasets §5). The exit status is 1 after an error (a
mismatch or a dataset that cannot be built), else 0.
"""
import argparse
import copy
import json
import sys
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

from mmengine.config import Config

from mmreid.datasets.summary import mute_summaries, verified_keys
from mmreid.registry import DATASETS
from mmreid.utils import register_all_modules
from mmreid.utils.config.options import ReIDDictAction

COUNT_KEYS = ('images', 'ids', 'cams')
MODALITY_NAMES = {0: 'vis', 1: 'ir'}
SPLITS = ('train', 'test', 'all')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Parse the datasets of a config and check their counts')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--split',
        choices=SPLITS,
        default='all',
        help='train: the training set; test: the val/test sets and '
        'targets; all: both (default)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=ReIDDictAction,
        help='override config keys, e.g. '
        'train_dataloader.dataset.data_root=data/market1501')
    return parser.parse_args(argv)


def collect_dataset_cfgs(cfg: Config, split: str) -> List[Tuple[str, dict]]:
    """The dataset configs to verify, each with the names that use it.

    Args:
        cfg (Config): The merged config.
        split (str): ``'train'``, ``'test'`` or ``'all'``.

    Returns:
        list[tuple[str, dict]]: ``(names, dataset config)``; one entry per
        distinct config (``test_dataloader = val_dataloader`` is listed
        once, as ``val, test``).
    """
    found: List[Tuple[str, dict]] = []
    if split in ('train', 'all'):
        found.append(('train', cfg.get('train_dataloader')))
    if split in ('test', 'all'):
        for loop in ('val', 'test'):
            found.append((loop, cfg.get(f'{loop}_dataloader')))
            loop_cfg = cfg.get(f'{loop}_cfg') or {}
            for i, target in enumerate(loop_cfg.get('targets') or []):
                name = target.get('name', str(i))
                found.append((f'{loop}/{name}', target.get('dataloader')))
    entries: Dict[str, Tuple[List[str], dict]] = {}
    for name, dataloader in found:
        if not dataloader or not dataloader.get('dataset'):
            continue
        dataset_cfg = dataloader['dataset']
        dataset_cfg = dataset_cfg.to_dict() if hasattr(
            dataset_cfg, 'to_dict') else copy.deepcopy(dict(dataset_cfg))
        # Transforms are irrelevant to counting and may need more setup.
        dataset_cfg['pipeline'] = []
        key = json.dumps(dataset_cfg, sort_keys=True, default=str)
        entries.setdefault(key, ([], dataset_cfg))[0].append(name)
    return [(', '.join(names), dataset_cfg)
            for names, dataset_cfg in entries.values()]


def count(records: List[dict]) -> dict:
    """Images, identities, cameras and images per modality of records."""
    modalities = Counter(int(r.get('modality', 0)) for r in records)
    return dict(
        images=len(records),
        ids=len({r['pid']
                 for r in records}),
        cams=len({r['camid']
                  for r in records}),
        modalities=dict(sorted(modalities.items())))


def records_of(dataset) -> List[dict]:
    dataset.full_init()
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def dataset_name(dataset) -> str:
    return dataset.metainfo.get('dataset_name', type(dataset).__name__)


def summarize(entry: str, dataset) -> List[dict]:
    """One row per (source, role) of a built dataset.

    Each row has ``entry``, ``dataset``, ``role``, the counts of
    :func:`count` and ``published``, the dataset object whose
    ``PUBLISHED_COUNTS`` apply (``None`` for a total row). The query and
    gallery rows of a combine-all source lack the distractors and junk of
    the test split it trains on, so they also carry ``compared``: the
    counts of that role in the source's test split as loaded
    (``ConcatReIDDataset.test_datasets``), which :func:`compare` checks
    against the test split's published counts.
    """
    records = records_of(dataset)
    rows = []
    sources = getattr(dataset, 'datasets', None)
    if sources is not None and 'sources' in dataset.metainfo:
        tests = getattr(dataset, 'test_datasets', None) or []
        for dsetid, source in enumerate(dataset.metainfo['sources']):
            test = tests[dsetid] if dsetid < len(tests) else None
            test_records = records_of(test) if test is not None else []
            own = [r for r in records if r.get('dsetid') == dsetid]
            name = source['name']
            if source.get('split_used') == 'all':
                name += ' (all)'
            for role in ('train', 'query', 'gallery'):
                part = [
                    r for r in own
                    if r.get('source_role', r.get('role')) == role
                ]
                if not part:
                    continue
                row = dict(
                    entry=entry,
                    dataset=name,
                    role=role,
                    published=sources[dsetid] if role == 'train' else test,
                    **count(part))
                if role != 'train':
                    # Combine-all drops the distractors and junk: the
                    # published numbers are the test split's.
                    row['compared'] = count(
                        [r for r in test_records if r.get('role') == role])
                rows.append(row)
        rows.append(
            dict(
                entry=entry,
                dataset='total',
                role='train',
                published=None,
                **count(records)))
        return rows
    roles = sorted({r.get('role', 'train')
                    for r in records},
                   key=lambda role: ('train', 'query', 'gallery').index(role)
                   if role in ('train', 'query', 'gallery') else 3)
    for role in roles:
        part = [r for r in records if r.get('role', 'train') == role]
        rows.append(
            dict(
                entry=entry,
                dataset=dataset_name(dataset),
                role=role,
                label=role_label(dataset, role),
                published=dataset,
                **count(part)))
    return rows


def role_label(dataset, role: str) -> str:
    """How the table names a role: ``'gallery pool'`` for the gallery of
    a dataset whose protocol draws each trial's gallery from it (its
    metainfo's ``protocol_metric`` is a trial metric: SYSU-MM01, LLCM), so
    its counts are not read as one trial's gallery; else the role."""
    from mmreid.evaluation.metrics import TrialGalleryMetric
    from mmreid.registry import METRICS
    name = dataset.metainfo.get('protocol_metric')
    metric = METRICS.get(name) if isinstance(name, str) else None
    if role == 'gallery' and isinstance(metric, type) and issubclass(
            metric, TrialGalleryMetric):
        return 'gallery pool'
    return role


def published_counts(dataset) -> Optional[dict]:
    """``role -> counts`` published for a built dataset, or ``None``."""
    if dataset is None:
        return None
    method = getattr(dataset, 'published_counts', None)
    if callable(method):
        return method()
    return getattr(dataset, 'PUBLISHED_COUNTS', None)


def compare(row: dict) -> Tuple[str, List[str], List[str]]:
    """Compare a row with its dataset's ``PUBLISHED_COUNTS``.

    The row's counts are compared, or its ``compared`` counts when it has
    them (a combine-all query/gallery row: its source's test split as
    loaded); a message then says so where they differ from the row's.

    Returns:
        tuple[str, list[str], list[str]]: The table cell, the errors
        (verified mismatches) and the warnings (unverified mismatches).
    """
    expected = (published_counts(row['published']) or {}).get(row['role'])
    if not expected:
        return '-', [], []
    verified = verified_keys(expected)
    found = row.get('compared', row)
    errors, warnings = [], []
    for key in COUNT_KEYS:
        if key not in expected:
            continue
        if found[key] != expected[key]:
            message = (f'{row["entry"]}: {row["dataset"]} {row["role"]} '
                       f'{key}: got {found[key]}, published {expected[key]}')
            if found[key] != row[key]:
                message += (f' (its test split as loaded; combine-all '
                            f'trains on {row[key]}, without distractors '
                            'and junk)')
            if key in verified:
                errors.append(message)
            else:
                warnings.append(message + ' (unverified)')
    unverified = [k for k in COUNT_KEYS if k in expected and k not in verified]
    if errors:
        cell = 'MISMATCH'
    elif warnings:
        cell = 'differs (unverified)'
    elif not unverified:
        cell = 'ok'
    elif not verified:
        cell = 'ok (unverified)'
    else:
        cell = f'ok ({", ".join(unverified)} unverified)'
    return cell, errors, warnings


def split_match_errors(entry: str, dataset) -> List[str]:
    """Queries of a split protocol whose true matches share their camera.

    The split metrics rank with the Market rule, which removes gallery
    images of the query's pid seen by the query's camera, and expect every
    query to keep exactly one true match (spec evaluation §6.2: that no
    GRID probe shares a camera with its match is unverified, and this tool
    checks it). Returns one error per split with such queries.
    """
    splits = dataset.metainfo.get('dg_splits') if hasattr(
        dataset, 'metainfo') else None
    if not splits:
        return []
    # By role: with every split loaded, an image may be a query in one
    # split and a gallery image (another camid) in another. A record
    # without a role may be either.
    records = records_of(dataset)
    queries = {
        r['img_path']: r
        for r in records if r.get('role') in (None, 'query')
    }
    galleries = {
        r['img_path']: r
        for r in records if r.get('role') in (None, 'gallery')
    }
    errors = []
    for index, split in enumerate(splits):
        gallery = [galleries[p] for p in split['gallery'] if p in galleries]
        lost = []
        for path in split['query']:
            query = queries.get(path)
            if query is None:
                continue
            matches = [g for g in gallery if g['pid'] == query['pid']]
            if matches and all(g['camid'] == query['camid']
                               for g in matches):
                lost.append(path)
        if lost:
            split_index = dataset.metainfo.get('split_index')
            name = split_index if split_index is not None else index
            hint = (' (GRID: assign_camids=True gives probes camid 0 and '
                    'gallery images camid 1)' if dataset_name(dataset)
                    == 'grid' else '')
            errors.append(
                f'{entry}: {dataset_name(dataset)} split {name}: '
                f'{len(lost)} queries share the camera of every true match, '
                f'which the Market rule removes, e.g. {lost[0]!r}{hint}')
    return errors


def format_table(rows: List[dict]) -> str:
    show_modality = any(
        set(row['modalities']) - {0} for row in rows if row['modalities'])
    header = ['split', 'dataset', 'role', 'images', 'ids', 'cams']
    if show_modality:
        header.append('modality')
    header.append('published')
    lines = [header]
    for row in rows:
        line = [
            row['entry'], row['dataset'], row.get('label', row['role']),
            str(row['images']),
            str(row['ids']),
            str(row['cams'])
        ]
        if show_modality:
            line.append(' '.join(f'{MODALITY_NAMES.get(m, m)}:{n}'
                                 for m, n in row['modalities'].items()))
        line.append(row['check'])
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    rule = '-+-'.join('-' * w for w in widths)
    text = [' | '.join(c.ljust(w) for c, w in zip(lines[0], widths)), rule]
    text += [
        ' | '.join(
            c.rjust(w) if c.isdigit() else c.ljust(w)
            for c, w in zip(line, widths)) for line in lines[1:]
    ]
    return '\n'.join(line.rstrip() for line in text)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    register_all_modules(init_default_scope=True)
    from mmreid.utils.config import read_config
    from mmreid.utils.config.options import merge_cfg_options
    cfg = read_config(args.config)
    merge_cfg_options(cfg, args.cfg_options, args.config)
    dataset_cfgs = collect_dataset_cfgs(cfg, args.split)
    if not dataset_cfgs:
        print(f'no dataset found in {args.config} for --split {args.split}')
        return 1

    rows: List[dict] = []
    errors: List[str] = []
    warnings: List[str] = []
    for entry, dataset_cfg in dataset_cfgs:
        try:
            # The table below replaces each dataset's start-up summary.
            with mute_summaries():
                dataset = DATASETS.build(dataset_cfg)
                entry_rows = summarize(entry, dataset)
                errors += split_match_errors(entry, dataset)
        except Exception as err:  # report every dataset, then fail
            errors.append(f'{entry}: cannot build {dataset_cfg.get("type")}:'
                          f' {type(err).__name__}: {err}')
            continue
        for row in entry_rows:
            row['check'], row_errors, row_warnings = compare(row)
            errors += row_errors
            warnings += row_warnings
        rows += entry_rows

    if rows:
        print(format_table(rows))
    for message in warnings:
        print(f'WARNING: {message}')
    for message in errors:
        print(f'ERROR: {message}')
    print(f'{len(rows)} rows, {len(errors)} errors, {len(warnings)} '
          f'warnings')
    return 1 if errors else 0


if __name__ == '__main__':
    sys.exit(main())
