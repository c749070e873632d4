"""The records a metric keeps of each sample, and their split by role.

:meth:`~.reid_metric.ReIDMetric.process` keeps one record per sample
(``feature``, ``pid``, ``camid``, ``is_query``, ``sample_idx``,
``dataset``, ``img_path``, ``modality``; the labels read with
:func:`label_to_int`). Every evaluation starts from them with
:meth:`RecordsMixin.split_roles`: records of several datasets are refused,
the repeated records of distributed padding dropped, query and gallery
split and their features and labels stacked (:class:`QueryGallery`).
"""
import logging
import math
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.logging import print_log

from ..functional import count_valid_positives, rule_with_junk_label
from ..functional.distance import check_normalizable
from ..query_analysis import own_image_codes

ROLES = ('query', 'gallery')


def label_to_int(value: Any, key: str = 'label', img_path: Any = None) -> int:
    """A pid or camid stored as an int, a 1-element tensor or array.

    Args:
        value: The label: an integer, or an integral float (``3.0``), as
            a Python or NumPy scalar, a 1-element tensor, array or list.
        key: Its key in the data sample, for the error.
        img_path: The sample's image, for the error.

    Returns:
        int: The label.

    Raises:
        ValueError: Not one value, a bool, or a number that is not an
            integer (``int()`` would truncate 1.7 to 1 and make True 1).
    """
    where, given = f'{key} of sample {img_path!r}', value
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f'{where}: expected one label, got shape '
                             f'{tuple(value.shape)}')
        value = value.item()
    elif isinstance(value, (list, tuple)):
        if len(value) != 1:
            raise ValueError(f'{where}: expected one label, got {value!r}')
        value = value[0]
    array = np.asarray(value)
    if array.size != 1:
        raise ValueError(f'{where}: expected one label, got shape '
                         f'{array.shape}')
    scalar = array.reshape(()).item()
    if array.dtype.kind in 'iu':
        return int(scalar)
    if array.dtype.kind == 'f' and math.isfinite(scalar) and \
            scalar == int(scalar):
        return int(scalar)
    dtype = given.dtype if isinstance(given, torch.Tensor) else array.dtype
    raise ValueError(f'{where} must be an integer, got {given!r} '
                     f'({dtype}); it is not truncated')


def optional_label_to_int(value: Any,
                          key: str = 'label',
                          img_path: Any = None) -> Optional[int]:
    return None if value is None else label_to_int(value, key, img_path)


def check_single_positives(labels: Tuple[torch.Tensor, ...],
                           q_paths: Sequence[Any], junk_rule: Any,
                           where: str) -> None:
    """Raise unless every query has exactly one valid positive, as the
    single-shot protocols of the small DG targets define (a query whose
    true match the junk rule removes would otherwise be skipped, and the
    numbers averaged over the others).

    Args:
        labels: ``(q_pids, g_pids, q_camids, g_camids)``.
        q_paths: The queries' image paths, for the error.
        junk_rule: The removal rule, as the ranking applies it.
        where: The split, for the error (``'split 3'``).

    Raises:
        ValueError: Names the first such query, its count of valid
            positives and how many such queries there are.
    """
    counts = count_valid_positives(*labels, junk_rule=junk_rule)
    bad = torch.nonzero(counts != 1).flatten().tolist()
    if bad:
        raise ValueError(
            f'{where}: query {q_paths[bad[0]]!r} has '
            f'{int(counts[bad[0]])} valid positives in the gallery, '
            f'expected exactly 1 ({len(bad)} such queries); check the '
            'split and the camids (GRID: assign_camids=True)')


@dataclass(eq=False)
class QueryGallery:
    """The records of one evaluation split by role, features and labels
    stacked.

    Attributes:
        query (list[dict]): Query records (see
            :meth:`~.reid_metric.ReIDMetric.process`), Q of them, in
            arrival order.
        gallery (list[dict]): Gallery records, G of them.
        query_feats (torch.Tensor): Float32 features, shape (Q, D).
        gallery_feats (torch.Tensor): Float32 features, shape (G, D).
        q_pids, g_pids (torch.Tensor): Int64 pids, shapes (Q,) and (G,).
        q_camids, g_camids (torch.Tensor): Int64 camids, shapes (Q,) and
            (G,).
    """
    query: List[dict]
    gallery: List[dict]
    query_feats: torch.Tensor
    gallery_feats: torch.Tensor
    q_pids: torch.Tensor
    g_pids: torch.Tensor
    q_camids: torch.Tensor
    g_camids: torch.Tensor

    @classmethod
    def from_records(cls, query: List[dict],
                     gallery: List[dict]) -> 'QueryGallery':
        """Stack the features and labels of the records of both roles."""

        def features(records: List[dict]) -> torch.Tensor:
            return torch.stack([r['feature'] for r in records]).float()

        def labels(records: List[dict], key: str) -> torch.Tensor:
            return torch.tensor([r[key] for r in records], dtype=torch.long)

        return cls(query, gallery, features(query), features(gallery),
                   labels(query, 'pid'), labels(gallery, 'pid'),
                   labels(query, 'camid'), labels(gallery, 'camid'))

    def check_normalizable(self) -> None:
        """Refuse a feature that L2 normalisation cannot give a direction
        (see :func:`~mmreid.evaluation.functional.distance.
        check_normalizable`), naming its image."""
        for feats, records, role in ((self.query_feats, self.query, 'query'),
                                     (self.gallery_feats, self.gallery,
                                      'gallery')):
            check_normalizable(feats, role,
                               [r.get('img_path') for r in records])

    def check_own_images(self, junk_rule: str, metric: str) -> None:
        """Refuse an image listed as a query and as a gallery item that
        the junk rule keeps in that query's gallery.

        No protocol ranks an image against itself, and the report and the
        ranked lists remove such a copy (:func:`~mmreid.evaluation.
        query_analysis.own_image_codes`): ranked, it sits at distance 0,
        a true match at rank 1 when its labels are the query's, so the
        query would count as found whatever the model. A copy the rule
        removes (same pid and camid under ``'market'``) is harmless.

        Args:
            junk_rule: The metric's removal rule.
            metric: The metric's name, for the message.

        Raises:
            ValueError: Names the first such image, its labels in both
                roles, the rule, and how many there are.
        """
        codes = own_image_codes([r.get('img_path') for r in self.query],
                                [r.get('img_path') for r in self.gallery])
        if codes is None:
            return
        q_codes, g_codes = codes
        rule = rule_with_junk_label(junk_rule, self.q_pids, self.g_pids)
        kept = []
        for q in np.flatnonzero(np.isin(q_codes, g_codes)):
            copies = torch.from_numpy(np.flatnonzero(g_codes == q_codes[q]))
            same_pid = (self.g_pids[copies] == self.q_pids[q])[None]
            removed = rule(same_pid, self.q_camids[q:q + 1],
                           self.g_camids[copies])
            for index, copy in enumerate(copies.tolist()):
                if removed is None or not bool(removed[0, index]):
                    kept.append((int(q), copy))
        if not kept:
            return
        q, g = kept[0]
        raise ValueError(
            f'{metric}: {self.query[q].get("img_path")!r} is a query and a '
            f'gallery item (pid {int(self.q_pids[q])}, camid '
            f'{int(self.q_camids[q])} as the query; pid '
            f'{int(self.g_pids[g])}, camid {int(self.g_camids[g])} in the '
            f"gallery), and junk_rule={junk_rule!r} keeps the copy in its "
            'own query\'s gallery, where it would be ranked at distance 0'
            f'{"" if len(kept) == 1 else f" ({len(kept)} such copies)"}. '
            'List each image in one role, or give a copy the pid and camid '
            "of its query under junk_rule='market', which removes it")

    def unmatched_label_items(self, candidates: Sequence[int]) -> torch.Tensor:
        """Gallery items whose pid is one of ``candidates`` and no query's.

        mmreid's datasets label distractors 0 and junk -1 (docs/
        datasets.md): such a pid is a label shared by different people,
        not an identity, unless a query has it (MSMT17's 0-based pids).

        Args:
            candidates: The pids that may label distractors.

        Returns:
            torch.Tensor: A bool mask over the gallery, shape (G,).
        """
        candidates = torch.tensor(list(candidates), dtype=torch.long)
        return (torch.isin(self.g_pids, candidates)
                & ~torch.isin(self.g_pids, self.q_pids))

    def check_no_merged_distractors(self, metric: str) -> None:
        """Refuse pid 0 distractors under a CMC that counts each pid once.

        The de-duplicated CMC (``cmc_mode='dedup'``, SYSU-MM01's) keeps
        the first item of each pid in a ranked list, so the distractors,
        different people under one label, would count as one wrong
        identity: a true match behind 50 of them would be at rank 2, and
        every R<k> inflated (evaluation spec section 5 ranks distractors
        as negatives, each one). pid -1 is not checked: the junk rules
        drop it or refuse it.

        Args:
            metric: The metric's name, for the message.

        Raises:
            ValueError: Names the count, a file and what to use instead.
        """
        merged = self.unmatched_label_items((0, ))
        count = int(merged.sum())
        if not count:
            return
        first = self.gallery[int(torch.nonzero(merged)[0])]
        raise ValueError(
            f"{metric}: cmc_mode='dedup' counts each pid once in a ranked "
            f'list, but the gallery holds {count} item(s) of the '
            'distractor pid 0 that no query has (e.g. '
            f'{first.get("img_path")!r} of dataset '
            f'{first.get("dataset")!r}): these different people would '
            'count as one identity, inflating the CMC. Use '
            "cmc_mode='standard' (the protocol of Market-1501, GRID and "
            "the other single-gallery datasets), or, if pid 0 is a real "
            'identity, give it a query')

    @property
    def labels(self) -> Tuple[torch.Tensor, ...]:
        """``(q_pids, g_pids, q_camids, g_camids)``, the order of
        :func:`~mmreid.evaluation.functional.evaluate_rank`."""
        return self.q_pids, self.g_pids, self.q_camids, self.g_camids


class RecordsMixin:
    """The split of :class:`~.reid_metric.ReIDMetric`'s records by role:
    :meth:`split_roles` (the prelude of every evaluation), or its two
    steps :meth:`split_records` and :meth:`query_gallery` for a protocol
    that keeps part of the gallery first."""

    def split_records(self,
                      results: List[dict]) -> Tuple[List[dict], List[dict]]:
        """The records of each sample once, split by role.

        Args:
            results: The records of all samples, collected from all ranks.

        Returns:
            tuple[list[dict], list[dict]]: Query and gallery records, each
            in dataset order (``sample_idx``; arrival order where a record
            has none), repeated samples dropped (see
            :meth:`_drop_duplicates`). A shuffled test sampler delivers
            them in another order, which decided the tie order of the
            ``'stable'`` policy and the draws of the sampled-gallery
            protocols (CUHK03 classic: R1 27.5 / 27.5 / 25.0 for three
            sampler seeds of one model).

        Raises:
            ValueError: The records come from more than one dataset (see
                :meth:`check_one_dataset`), or a protocol refuses them
                (:meth:`check_roles`).
        """
        self.check_one_dataset(results)
        results = self._drop_duplicates(results)
        if all(r.get('sample_idx') is not None for r in results):
            results = sorted(results, key=lambda r: r['sample_idx'])
        query = [r for r in results if r['is_query']]
        gallery = [r for r in results if not r['is_query']]
        self.check_roles(query, gallery)
        return query, gallery

    def gallery_pool(self, gallery: List[dict]) -> List[dict]:
        """The gallery records this protocol ranks against (or draws its
        galleries from): all of them here. A protocol that keeps part of
        the gallery it is given overrides it (``TrialGalleryMetric`` keeps
        its ``gallery_cams``), and the evaluation report and the ranked
        lists rank the same records.

        Args:
            gallery: Gallery records, each with ``camid``.

        Returns:
            list[dict]: The records kept, in their order.
        """
        return list(gallery)

    def check_roles(self, query: List[dict], gallery: List[dict]) -> None:
        """Refuse records a protocol does not define, once they are split
        by role; nothing here (the cross-modality protocols check each
        record's ``modality``).

        Args:
            query: Query records, each sample once.
            gallery: Gallery records, each sample once.
        """

    def check_one_dataset(self, results: List[dict]) -> None:
        """Refuse records of several datasets.

        pids and camids are numbered per dataset: ranked as one gallery,
        pid 5 of one dataset would be a true match of pid 5 of another,
        and camid 1 of both the same camera. An mmengine ``ConcatDataset``
        of two test sets (``ignore_keys``) gives such records.

        Args:
            results: The records; their ``dataset`` names (records without
                one are not counted).

        Raises:
            ValueError: More than one distinct ``dataset``; names them.
        """
        names = sorted({
            str(r.get('dataset'))
            for r in results if r.get('dataset') is not None
        })
        if len(names) > 1:
            raise ValueError(
                f'{type(self).__name__} got the records of {len(names)} '
                f'datasets ({", ".join(repr(n) for n in names)}) in one '
                'evaluation, but pids and camids are numbered per dataset: '
                'ranked as one gallery, the identities and cameras of '
                'different datasets would collide. Evaluate each dataset as '
                "its own target: test_cfg = dict(type='MultiTargetTestLoop'"
                ', targets=[dict(name=..., dataloader=..., evaluator=...), '
                '...]) (MultiTargetValLoop for validation)')

    def query_gallery(self,
                      query: List[dict],
                      gallery: List[dict],
                      gallery_desc: str = 'gallery samples') -> QueryGallery:
        """Stack the features and labels of both roles.

        Args:
            query: Query records.
            gallery: Gallery records (a protocol may have kept part of
                them).
            gallery_desc: What the gallery records are, for the error.

        Returns:
            QueryGallery: The records with stacked features and labels.

        Raises:
            ValueError: A role has no record.
        """
        if not query or not gallery:
            raise ValueError(f'{type(self).__name__} got {len(query)} query '
                             f'and {len(gallery)} {gallery_desc}; both are '
                             'needed')
        data = QueryGallery.from_records(query, gallery)
        if self.normalizes_features():
            data.check_normalizable()
        if self.counts_pids_once():
            data.check_no_merged_distractors(type(self).__name__)
        return data

    def counts_pids_once(self) -> bool:
        """Whether the CMC keeps one item per pid of a ranked list (then
        pid 0 distractors are refused by :meth:`query_gallery`); not
        here."""
        return False

    def normalizes_features(self) -> bool:
        """Whether the ranking L2-normalises the features (then a
        feature of zero norm is refused by :meth:`query_gallery`); none
        does here."""
        return False

    def split_roles(self, results: List[dict]) -> QueryGallery:
        """The prelude of every evaluation: drop the repeated records,
        split query and gallery, stack features and labels.

        Args:
            results: The records of all samples, collected from all ranks.

        Returns:
            QueryGallery: See :meth:`query_gallery`.
        """
        return self.query_gallery(*self.split_records(results))

    def _drop_duplicates(self, results: List[dict]) -> List[dict]:
        """Keep the first record of each sample.

        Returns:
            list: The records, each sample once, in their original order.
        """
        first_seen = {}
        unique = []
        for record in results:
            if record['sample_idx'] is None:
                unique.append(record)
                continue
            key = (record['sample_idx'], record['dataset'], record['is_query'],
                   record['img_path'])
            previous = first_seen.get(key)
            if previous is None:
                first_seen[key] = record
                unique.append(record)
            elif (previous['pid'], previous['camid']) != (record['pid'],
                                                          record['camid']):
                raise ValueError(
                    f'two samples share sample_idx={key[0]} (dataset '
                    f'{key[1]!r}, image {key[3]!r}) but differ in pid or '
                    'camid; sample_idx must identify a sample')
        num_dropped = len(results) - len(unique)
        if num_dropped:
            print_log(
                f'{type(self).__name__} dropped {num_dropped} repeated '
                'records of the same samples (distributed padding that '
                'reached the metric); each sample is counted once.',
                logger='current',
                level=logging.WARNING)
        return unique
