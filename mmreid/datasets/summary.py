"""Counts of a dataset's splits: the start-up summary table and the
comparison with the published counts.

Every dataset class declares the counts its authors (or its standard
preparation) publish, per role::

    PUBLISHED_COUNTS = dict(
        train=dict(ids=751, images=12936, cams=6, verified=('ids', 'cams')),
        query=dict(ids=750, images=3368, cams=6, verified=('images', 'cams')),
        gallery=dict(ids=751, images=15913, cams=6,
                     verified=('images', 'cams')))

``verified`` is ``True`` (every number of the role), ``False`` (none) or
the names of the verified numbers: those ``specs/datasets.md`` does not
tag [unverified] (see :func:`verified_keys`).

A loaded split whose counts differ logs one warning (users subset datasets
on purpose); ``tools/misc/verify_dataset.py`` turns a difference on a
verified number into an error, on an unverified one into a warning.
"""
import logging
from collections import Counter
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from mmengine.logging import print_log

#: The compared counts, in table order.
COUNT_KEYS = ('ids', 'images', 'cams')
ROLE_ORDER = ('train', 'query', 'gallery')
MODALITY_NAMES = {0: 'vis', 1: 'ir'}

#: (role, key, expected, found) of one differing number.
Difference = Tuple[str, str, int, int]


def count_records(records: Iterable[Mapping]) -> dict:
    """Identities, images, cameras and images per modality.

    Args:
        records: Dataset records with ``pid``, ``camid`` and optionally
            ``modality``.

    Returns:
        dict: ``ids`` (distinct pids: junk is dropped at parsing, the
        distractor pid counts as one), ``images``, ``cams`` (distinct
        camids) and ``modalities`` (modality -> images).
    """
    pids, cams, modalities = set(), set(), Counter()
    images = 0
    for record in records:
        images += 1
        pids.add(record['pid'])
        cams.add(record['camid'])
        modalities[int(record.get('modality', 0))] += 1
    return dict(
        ids=len(pids),
        images=images,
        cams=len(cams),
        modalities=dict(sorted(modalities.items())))


def count_roles(records: Iterable[Mapping],
                key: str = 'role') -> Dict[str, dict]:
    """:func:`count_records` per role (the records' ``key``, ``'train'``
    where absent), roles in train/query/gallery order, others after them
    in the order first met."""
    by_role: Dict[str, List[Mapping]] = {}
    for record in records:
        by_role.setdefault(record.get(key, 'train'), []).append(record)
    order = sorted(
        by_role, key=lambda r: ROLE_ORDER.index(r) if r in ROLE_ORDER else 3)
    return {role: count_records(by_role[role]) for role in order}


def verified_keys(expected: Mapping) -> Tuple[str, ...]:
    """The verified numbers of one role's published counts.

    Args:
        expected: ``dict(ids=, images=, cams=, verified=)``; ``verified``
            is ``True`` (all numbers), ``False`` or absent (none), or a
            sequence of :data:`COUNT_KEYS` (those verified).

    Returns:
        tuple[str, ...]: The verified keys, in :data:`COUNT_KEYS` order.

    Raises:
        ValueError: ``verified`` is anything else; names the value.
    """
    verified = expected.get('verified', False)
    if isinstance(verified, bool):
        return COUNT_KEYS if verified else ()
    keys = verified if isinstance(verified,
                                  (tuple, list, set, frozenset)) else None
    if keys is not None and set(keys) <= set(COUNT_KEYS):
        return tuple(key for key in COUNT_KEYS if key in keys)
    raise ValueError(f'published counts: verified must be True, False or '
                     f'some of {COUNT_KEYS}, got {verified!r}')


def compare_counts(published: Optional[Mapping],
                   found: Mapping[str, Mapping]) -> List[Difference]:
    """The published numbers that differ from the found ones.

    Args:
        published: ``role -> dict(ids=, images=, cams=, verified=)``;
            a key left out is not compared (``verified`` is not used).
        found: ``role -> counts`` (see :func:`count_roles`); a published
            role that was not loaded counts as empty.

    Returns:
        list: ``(role, key, expected, found)`` for every difference.
    """
    differences = []
    for role, expected in (published or {}).items():
        counts = found.get(role, dict.fromkeys(COUNT_KEYS, 0))
        for key in COUNT_KEYS:
            if key in expected and counts[key] != expected[key]:
                differences.append((role, key, expected[key], counts[key]))
    return differences


def describe_differences(differences: Sequence[Difference]) -> str:
    """``'query images: expected 3368, found 3; ...'``."""
    return '; '.join(f'{role} {key}: expected {expected}, found {found}'
                     for role, key, expected, found in differences)


def format_modalities(modalities: Mapping[int, int]) -> str:
    """``'vis:22258 ir:11909'``; a single modality is its name (``'ir'``)."""
    if len(modalities) <= 1:
        return ' '.join(MODALITY_NAMES.get(m, str(m)) for m in modalities)
    return ' '.join(f'{MODALITY_NAMES.get(m, m)}:{n}'
                    for m, n in modalities.items())


def format_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
    """A plain-text table: numbers right-aligned, text left-aligned."""
    lines = [[str(c) for c in header]] + [[str(c) for c in row]
                                          for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = [
        ' | '.join(c.ljust(w) for c, w in zip(lines[0], widths)),
        '-+-'.join('-' * w for w in widths)
    ]
    text += [
        ' | '.join(
            c.rjust(w) if c.isdigit() else c.ljust(w)
            for c, w in zip(line, widths)) for line in lines[1:]
    ]
    return '\n'.join(line.rstrip() for line in text)


SUMMARY_HEADER = ('dataset', 'split', 'role', 'ids', 'images', 'cams',
                  'modalities')


def summary_rows(name: str, split: str,
                 counts: Mapping[str, Mapping]) -> List[tuple]:
    """Rows of the summary table for one dataset split."""
    return [(name, split, role, c['ids'], c['images'], c['cams'],
             format_modalities(c['modalities'])) for role, c in counts.items()]


_muted = 0


class mute_summaries:
    """Within this context datasets do not log their summary table (the
    sources of a :class:`ConcatReIDDataset`, which logs one table for
    all of them)."""

    def __enter__(self) -> 'mute_summaries':
        global _muted
        _muted += 1
        return self

    def __exit__(self, *exc) -> None:
        global _muted
        _muted -= 1


def log_summary(title: str, rows: Sequence[Sequence]) -> None:
    """Log the summary table, unless muted (see :class:`mute_summaries`).
    """
    if _muted or not rows:
        return
    print_log(
        f'{title}\n{format_table(SUMMARY_HEADER, rows)}',
        logger='current',
        level=logging.INFO)
