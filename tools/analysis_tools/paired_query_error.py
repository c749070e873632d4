"""Test-set sampling error of the difference between two evaluated models.

    python tools/analysis_tools/paired_query_error.py A B [--out FILE]

A and B are report folders written by ``tools/test.py CONFIG CHECKPOINT
--report DIR`` (or the ``per_query.npz`` in them), e.g. a baseline and a
method on the same test set. For every section (target) both hold, the
queries are matched by image path and the per-query differences B - A of
the R1 hit and the AP are averaged (and of their averages over gallery
trials, where both runs used a trial protocol). A section or metric in
one report only, or with fewer than two queries valid in both, is listed
under the table as not compared. The error of that mean
difference is the one of another draw of the test identities: clustered
by query identity (each identity one draw with all its queries, see
``mmreid.evaluation.sampling_error.query_sampling_error``), with a 95 %
Student t interval on G - 1 degrees of freedom for G identities (the
clustered error is estimated from G draws; with few identities a normal
interval would be far too narrow; none with one identity). It
complements ``compare_configs.py --baseline``, whose intervals are over
training seeds on one fixed test set.

Both runs must have ranked the same gallery with the same evaluation
settings (distance, normalize, GMN's primary mode, rerank, query
expansion, rank rules, the metric's protocol options such as SYSU's
gallery draw, shots and trials or LLCM's ``vis2ir_mode``, and the model's
non-default test-time options such as MBN ``eval_stats``), which
``per_query.npz`` records per section: a pair that differs
is refused, naming what differs (``--allow-different KEY`` accepts a
setting that differs on purpose, e.g. the distances of two models, and
says so under the table). Whole-gallery values that are not the ranking
the run reported (the hook ranked plain distances where the metric
re-ranks), and the whole-gallery R1 of a run that reports R1 by another
CMC protocol (CUHK03 classic's single-gallery-shot), are not compared.
Files written before these records still pair, with a note that the
gallery and settings were not checked.

A ``per_query.npz`` with a ``report.html`` beside it must be of the run
that wrote that page (both name their run id): a pair from two runs is
refused, so that the values compared are the ones the page shows.
"""
import argparse
import json
import os.path as osp
import sys
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from mmreid.engine.hooks.report_hook import (PER_QUERY_NAME, REPORT_NAME,
                                             RUN_ID_KEY, report_run_id)
from mmreid.evaluation.sampling_error import query_sampling_error
from mmreid.utils.atomic import open_atomic

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from paired_stats import t975  # noqa

#: (row name, path key, value key, how to turn the value into percent)
ROWS = (
    ('R1', 'img_path', 'first_rank', lambda v: 100.0 * (v == 1)),
    ('mAP', 'img_path', 'ap', lambda v: 100.0 * v),
    ('R1 (trial average)', 'trial_img_path', 'trial_r1', lambda v: 100.0 * v),
    ('mAP (trial average)', 'trial_img_path', 'trial_ap', lambda v: 100.0 * v),
)


def load_per_query(path: str) -> Dict[str, Dict[str, np.ndarray]]:
    """``per_query.npz`` of a report folder (or the file itself), as
    section -> array name -> array."""
    if osp.isdir(path):
        path = osp.join(path, PER_QUERY_NAME)
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'{path} does not exist: give a folder written by tools/test.py '
            f'--report (mmreid >= this tool) or its {PER_QUERY_NAME}')
    sections: Dict[str, Dict[str, np.ndarray]] = {}
    with np.load(path, allow_pickle=False) as data:
        for key in data.files:
            section, _, name = key.rpartition('/')
            if not section:
                raise ValueError(f'{path}: key {key!r} is not '
                                 '<section>/<array>')
            sections.setdefault(section, {})[name] = data[key]
    # Each section names the run that wrote the file (None before runs
    # were named).
    run_ids = [arrays.pop(RUN_ID_KEY, None) for arrays in sections.values()]
    run_ids = sorted({None if i is None else str(i) for i in run_ids}, key=str)
    if len(run_ids) > 1:
        raise ValueError(f'{path}: its sections name different runs '
                         f'({run_ids}); write it again with tools/test.py '
                         '--report')
    if run_ids:
        check_report_run(path, run_ids[0])
    return sections


def check_report_run(path: str, run_id: Optional[str]) -> None:
    """Refuse a ``per_query.npz`` (``path``, of run ``run_id``; None
    when it names none) whose folder's ``report.html`` another run wrote.

    Raises:
        ValueError: The page names another run id, or one of the two
            names one and the other none (a page or values of a release
            before run ids, beside the other's).
    """
    page_path = osp.join(osp.dirname(path), REPORT_NAME)
    if not osp.isfile(page_path):
        return
    with open(page_path, encoding='utf-8') as f:
        page_id = report_run_id(f.read())
    if page_id != run_id:
        raise ValueError(
            f'{path} (run id {run_id}) and {page_path} (run id {page_id}) '
            'were written by different runs, so the values would not be '
            'the ones the page shows: write the report again with '
            'tools/test.py --report')


def _matched(a: Dict[str, np.ndarray], b: Dict[str, np.ndarray], path_key: str,
             value_key: str, pid_key: str,
             where: str) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values of A and B on the same queries, and their pids."""
    for arrays, run in ((a, 'A'), (b, 'B')):
        missing = [
            k for k in (path_key, value_key, pid_key) if k not in arrays
        ]
        if missing:
            raise ValueError(f'{where}: run {run} has no {missing[0]!r} '
                             '(a per_query.npz not written whole by '
                             'tools/test.py --report)')
    paths_a, paths_b = a[path_key], b[path_key]
    for arrays, paths, run in ((a, paths_a, 'A'), (b, paths_b, 'B')):
        for key in (value_key, pid_key):
            if arrays[key].shape != paths.shape:
                raise ValueError(
                    f'{where}: run {run}\'s {key} has shape '
                    f'{arrays[key].shape}, its {path_key} {paths.shape}: '
                    'one value per query was expected (a per_query.npz '
                    'not written whole by tools/test.py --report)')
    for paths, run in ((paths_a, 'A'), (paths_b, 'B')):
        if len(set(paths.tolist())) != len(paths):
            raise ValueError(f'{where}: run {run} repeats query image paths; '
                             'the queries cannot be matched')
    index_b = {p: i for i, p in enumerate(paths_b.tolist())}
    if set(index_b) != set(paths_a.tolist()):
        only_a = len(set(paths_a.tolist()) - set(index_b))
        only_b = len(set(index_b) - set(paths_a.tolist()))
        raise ValueError(f'{where}: the runs have different queries ({only_a} '
                         f'only in A, {only_b} only in B); pair runs on the '
                         'same test set')
    order = np.array([index_b[p] for p in paths_a.tolist()], np.int64)
    pids = a[pid_key]
    if not np.array_equal(pids, b[pid_key][order]):
        raise ValueError(f'{where}: the same query image has different pids '
                         'in A and B')
    return a[value_key], b[value_key][order], pids


#: A section's arrays by name, and the sections of a file by name.
Arrays = Dict[str, np.ndarray]
Sections = Dict[str, Arrays]
#: Keys of a section that record its gallery and evaluation settings.
SETUP_KEYS = ('gallery_size', 'gallery_digest', 'settings')
#: The settings entry that says what the whole-gallery values rank.
VALUES_KEY = 'values'
REPORTED = 'reported ranking'


def _settings(arrays: Arrays) -> Dict[str, str]:
    return json.loads(str(arrays['settings']))


def check_same_setup(a: Arrays,
                     b: Arrays,
                     where: str,
                     notes: List[str],
                     allow: Sequence[str] = ()) -> None:
    """Refuse a section whose gallery or evaluation settings differ
    between A and B.

    Args:
        a, b: The section's arrays in A and B.
        where (str): The section as errors name it.
        notes (list): Gets a line when a run has no record (written
            before it was kept), or a setting in ``allow`` differs.
        allow (Sequence[str]): Settings that may differ.

    Raises:
        ValueError: The gallery size or digest, or a setting not in
            ``allow``, differ.
    """
    missing = [
        run for run, arrays in (('A', a), ('B', b))
        if any(k not in arrays for k in SETUP_KEYS)
    ]
    if missing:
        runs = ('run ' if len(missing) == 1 else 'runs ') + ' and '.join(
            missing)
        notes.append(
            f'{where}: {runs} recorded no gallery or evaluation settings '
            '(written before they were recorded), so it was not checked '
            'that both ranked the same gallery in the same way, nor that '
            'the values are the ranking each run reported (they are not '
            'for a re-ranked run)')
        return
    size_a, size_b = int(a['gallery_size']), int(b['gallery_size'])
    if size_a != size_b or str(a['gallery_digest']) != str(
            b['gallery_digest']):
        raise ValueError(
            f'{where}: the runs have different galleries ({size_a} items '
            f'in A, {size_b} in B' +
            (', other paths or labels' if size_a == size_b else '') +
            '); their difference would mix the models with the gallery: '
            'pair runs on the same test set')
    settings_a, settings_b = _settings(a), _settings(b)
    differ = sorted(
        k for k in set(settings_a) | set(settings_b)
        if k != VALUES_KEY and settings_a.get(k) != settings_b.get(k))
    refused = [k for k in differ if k not in allow]
    if refused:
        shown = '; '.join(f'{k}: {settings_a.get(k)!r} in A, '
                          f'{settings_b.get(k)!r} in B' for k in refused)
        none = ('; None: the run records no such setting (e.g. a test-time '
                'option at its default)' if any(
                    k not in settings_a or k not in settings_b
                    for k in refused) else '')
        raise ValueError(
            f'{where}: the runs were evaluated with different settings '
            f'({shown}){none}; test both with the same evaluator and '
            'test-time options, or pass --allow-different '
            f'{" ".join(refused)} if the difference is what you compare')
    for k in differ:
        notes.append(f'{where}: {k} differs, allowed ('
                     f'{settings_a.get(k)!r} in A, {settings_b.get(k)!r} '
                     'in B)')


def _not_reported(a: Arrays, b: Arrays) -> List[str]:
    """Why A's or B's whole-gallery values are not the ranking the run
    reported (empty when both are, or nothing says otherwise)."""
    why = []
    for run, arrays in (('A', a), ('B', b)):
        if 'settings' in arrays:
            values = _settings(arrays).get(VALUES_KEY, REPORTED)
            if values != REPORTED:
                why.append(f'{run} holds {values}')
    return why


def _own_cmc_protocol(a: Arrays, b: Arrays) -> List[str]:
    """Which of A and B report R1 by another CMC protocol than the
    whole-gallery ranking (CUHK03 classic's single-gallery-shot), so
    their whole-gallery R1 is not the R1 they reported."""
    why = []
    for run, arrays in (('A', a), ('B', b)):
        if 'settings' in arrays:
            protocol = _settings(arrays).get('cmc_protocol')
            if protocol:
                why.append(f'{run} reports R1 by the {protocol} protocol')
    return why


def paired_rows(a: Sections,
                b: Sections,
                left_out: Optional[List[str]] = None,
                notes: Optional[List[str]] = None,
                allow: Sequence[str] = ()) -> List[dict]:
    """One row per section both hold and per metric both have.

    Args:
        a, b: :func:`load_per_query` of A and B.
        left_out (list, optional): Gets one line per section or metric
            that is in one report only, has fewer than two queries valid
            in both, or whose whole-gallery values are not the reported
            ranking (or, for R1, not the reported R1: CUHK03 classic's
            single-gallery-shot CMC): what the table does not show.
        notes (list, optional): Gets the notes of
            :func:`check_same_setup`.
        allow (Sequence[str]): Settings that may differ.

    Raises:
        ValueError: See :func:`check_same_setup`; the runs have different
            queries.
    """
    rows = []
    setup_notes = notes if notes is not None else []
    notes = left_out if left_out is not None else []
    for section, where in [(s, 'A') for s in a if s not in b] + \
            [(s, 'B') for s in b if s not in a]:
        notes.append(f'section {section!r}: only in {where}')
    for section in [s for s in a if s in b]:
        check_same_setup(a[section], b[section], f'section {section!r}',
                         setup_notes, allow)
        not_reported = _not_reported(a[section], b[section])
        own_cmc = _own_cmc_protocol(a[section], b[section])
        for name, path_key, value_key, percent in ROWS:
            if own_cmc and value_key == 'first_rank' \
                    and value_key in a[section] and value_key in b[section]:
                notes.append(f'section {section!r}, {name}: the whole '
                             'gallery\'s R1, not the reported one (' +
                             '; '.join(own_cmc) + ')')
                continue
            # A metric in one run only is named below, as such.
            if not_reported and not path_key.startswith('trial') \
                    and value_key in a[section] and value_key in b[section]:
                notes.append(f'section {section!r}, {name}: not the '
                             'reported ranking (' + '; '.join(not_reported) +
                             ')')
                continue
            if value_key not in a[section] or value_key not in b[section]:
                if value_key in a[section] or value_key in b[section]:
                    notes.append(f'section {section!r}, {name}: only in '
                                 f'{"A" if value_key in a[section] else "B"}')
                continue
            pid_key = 'trial_pid' if path_key.startswith('trial') else 'pid'
            values_a, values_b, pids = _matched(a[section], b[section],
                                                path_key, value_key, pid_key,
                                                f'section {section!r}')
            if value_key == 'first_rank':
                valid = (values_a > 0) & (values_b > 0)
            else:
                valid = np.isfinite(values_a) & np.isfinite(values_b)
            if valid.sum() < 2:
                notes.append(f'section {section!r}, {name}: '
                             f'{int(valid.sum())} queries valid in both')
                continue
            va, vb = percent(values_a[valid]), percent(values_b[valid])
            diff = query_sampling_error(vb - va, pids[valid])
            half = float('nan') if diff.num_identities < 2 else \
                t975(diff.num_identities - 1) * diff.se_clustered
            rows.append(
                dict(
                    section=section,
                    metric=name,
                    a=float(va.mean()),
                    b=float(vb.mean()),
                    diff=diff.value,
                    se_independent=diff.se_independent,
                    se_clustered=diff.se_clustered,
                    low=diff.value - half,
                    high=diff.value + half,
                    queries=diff.num_queries,
                    identities=diff.num_identities))
    return rows


def format_rows(rows: List[dict]) -> str:
    """The rows as a Markdown table."""
    lines = [
        '| section | metric | A | B | B - A | SE, independent | SE, '
        'clustered by identity | 95 % interval (clustered) | queries | '
        'identities |', '|---|---|---|---|---|---|---|---|---|---|'
    ]

    def shown(value: float) -> str:
        # None for a quantity one identity cannot estimate, as the
        # report's '-'.
        return '-' if np.isnan(value) else f'{value:.2f}'

    for r in rows:
        interval = '-' if np.isnan(r['low']) else \
            f"[{r['low']:+.2f}, {r['high']:+.2f}]"
        lines.append(
            f"| {r['section']} | {r['metric']} | {r['a']:.2f} | "
            f"{r['b']:.2f} | {r['diff']:+.2f} | "
            f"{shown(r['se_independent'])} | {shown(r['se_clustered'])} | "
            f"{interval} | {r['queries']} | {r['identities']} |")
    return '\n'.join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('a', help='report folder (or per_query.npz) of A')
    parser.add_argument('b', help='report folder (or per_query.npz) of B')
    parser.add_argument('--out', help='also write the Markdown table here')
    parser.add_argument(
        '--allow-different',
        nargs='+',
        default=[],
        metavar='KEY',
        help='evaluation settings (as an error names them, e.g. distance '
        'primary_mode) that may differ between the runs; listed under '
        'the table')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        a, b = load_per_query(args.a), load_per_query(args.b)
        left_out: List[str] = []
        notes: List[str] = []
        rows = paired_rows(a, b, left_out, notes, args.allow_different)
    except (OSError, ValueError) as error:
        raise SystemExit(f'error: {error}')
    if not rows:
        raise SystemExit(
            f'{args.a} and {args.b} share no section with two valid '
            f'queries (sections: {sorted(a)} and {sorted(b)})' +
            ''.join(f'\n* {line}' for line in left_out + notes))
    table = format_rows(rows)
    if left_out:
        table += ('\n\nNot compared (A: ' + args.a + ', B: ' + args.b +
                  '):\n' + '\n'.join(f'* {line}' for line in left_out))
    if notes:
        table += '\n\nNotes:\n' + '\n'.join(f'* {line}' for line in notes)
    print(table)
    if args.out:
        with open_atomic(args.out, 'w', encoding='utf-8') as f:
            f.write(table + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
