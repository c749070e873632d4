"""Pure functions of the partitioned evaluation protocols.

The metrics of :mod:`mmreid.evaluation.metrics` compute one distance
matrix and evaluate it on several partitions of the gallery (or of both
roles): SYSU-MM01 and LLCM re-draw the gallery from a pool in every trial
(:func:`seeded_gallery_draw`, :func:`official_gallery_draw`), the small DG
targets use fixed splits, CUHK03's classic protocol draws one gallery
image per identity (:func:`classic_cmc`). Their per-partition numbers are
summarised by one function, :func:`summarize_partitions`.

Camera numbers: the parsers store ``camid = camera number - 1`` (SYSU-MM01
``cam3`` -> camid 2). The gallery draws work on camera *numbers*, as the
protocols name them.
"""
import os.path as osp
import random
import re
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .junk_rules import JUNK_PID, JunkRule, _some, rule_with_junk_label

_IMAGE_NUMBER = re.compile(r'^(\d+)\.[A-Za-z]+$')

#: (pid, camera number) -> pool indices ordered by image path.
PoolGroups = Dict[Tuple[int, int], List[int]]


def group_pool(pids: Sequence[int], cameras: Sequence[int],
               img_paths: Sequence[Optional[str]]) -> PoolGroups:
    """Group the gallery pool by identity and camera.

    Args:
        pids: Pid of every pool item, length P.
        cameras: Camera number (1-based) of every pool item, length P.
        img_paths: Image path of every pool item (``None`` allowed), used
            to order a group as the reference's ``sorted(files)``; items
            without a path keep their pool order.

    Returns:
        dict: ``(pid, camera) -> list of pool indices``.
    """
    groups: PoolGroups = {}
    for index, key in enumerate(zip(pids, cameras)):
        groups.setdefault((int(key[0]), int(key[1])), []).append(index)
    for indices in groups.values():
        indices.sort(key=lambda i: (img_paths[i] or '', i))
    return groups


def seeded_gallery_draw(groups: PoolGroups, cameras: Sequence[int], shots: int,
                        seed: int) -> List[int]:
    """The AGW seeded gallery draw (``process_gallery_sysu``).

    ``random.seed(seed)``; for every pid in sorted order and every camera
    in ``cameras`` order that holds images of it, ``random.choice`` of the
    sorted files (``shots == 1``) or ``random.sample(files, shots)``
    (multi-shot, mmreid's extension; a group with fewer images gives all
    of them in a random order). With ``seed = trial`` this reproduces
    AGW's galleries given the same file lists.

    Args:
        groups: See :func:`group_pool`.
        cameras: Gallery camera numbers, in visiting order.
        shots: Images per (pid, camera).
        seed: Seed of a private :class:`random.Random`.

    Returns:
        list[int]: Pool indices of the gallery, in draw order.
    """
    rng = random.Random(seed)
    gallery = []
    for pid in sorted({pid for pid, _ in groups}):
        for cam in cameras:
            files = groups.get((pid, cam))
            if not files:
                continue
            if shots == 1:
                gallery.append(rng.choice(files))
            else:
                gallery.extend(rng.sample(files, min(shots, len(files))))
    return gallery


#: The layout ``rand_perm_cam`` must have, quoted by every error about it.
RAND_PERM_LAYOUT = (
    'a cell of 6 cameras; per camera one entry per person id (id k at '
    'position k); each entry a 10 x n matrix whose row t is a permutation '
    'of the 1-based numbers of the id\'s n images in that camera (n = 0: '
    'an empty entry), as in wuancong/SYSU-MM01 '
    'evaluation/data_split/rand_perm_cam.mat')
NUM_OFFICIAL_TRIALS = 10
NUM_SYSU_CAMS = 6


class RandPermCam(list):
    """Checked permutations: ``perms[camera - 1][pid - 1][trial]`` is the
    list of 1-based image numbers in the order the protocol takes them."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_perm_matrix(value: Any) -> bool:
    """A 10 x n matrix: 10 rows, each a list of numbers (or one number).

    mat4py gives a 10 x n matrix as 10 lists of n numbers (10 x 1: 10
    one-element lists) and an empty entry as 10 empty lists.
    """
    if not isinstance(value, list) or len(value) != NUM_OFFICIAL_TRIALS:
        return False
    return all(
        _is_number(row) or (isinstance(row, list) and all(
            _is_number(v) for v in row)) for row in value)


def _unwrap(value: Any) -> Any:
    """Strip the one-element lists a MATLAB cell wraps around its content
    (mat4py reads a 1 x N cell as ``[[...]]``), stopping at a matrix."""
    while (isinstance(value, list) and len(value) == 1
           and isinstance(value[0], list) and not _is_perm_matrix(value)):
        value = value[0]
    return value


def normalize_rand_perm_cam(value: Any, source: str) -> RandPermCam:
    """Check the official permutations and bring them to one layout.

    Accepts the nested lists ``mat4py`` reads from ``rand_perm_cam.mat``
    (a 1 x N cell per camera, each per-id matrix wrapped in one more list)
    as well as the same content without the wrapping lists.

    Args:
        value: The ``rand_perm_cam`` variable.
        source: Where ``value`` comes from (the file), for the errors.

    Returns:
        list: ``perms[cam - 1][pid - 1][trial]``, a list of 1-based image
        numbers (empty where the id has no image in the camera).

    Raises:
        ValueError: ``value`` does not have the layout; the message names
            ``source``, the place and the expected layout.
    """

    def fail(where: str, found: Any) -> ValueError:
        text = repr(found)
        if len(text) > 80:
            text = text[:77] + '...'
        return ValueError(f'{source}: rand_perm_cam{where} is {text}, '
                          f'expected {RAND_PERM_LAYOUT}')

    if isinstance(value, RandPermCam):
        return value
    cams = _unwrap(value)
    if not isinstance(cams, list) or len(cams) != NUM_SYSU_CAMS:
        raise fail('', cams)
    perms = RandPermCam()
    for cam, cell in enumerate(cams, start=1):
        entries = cell
        # A camera's 1 x N cell: unwrap unless the content is one matrix,
        # which would be a camera with a single id.
        while (isinstance(entries, list) and len(entries) == 1
               and isinstance(entries[0], list)
               and not _is_perm_matrix(entries[0])
               and not _is_perm_matrix(_unwrap(entries[0]))):
            entries = entries[0]
        if not isinstance(entries, list) or not entries:
            raise fail(f'{{{cam}}}', cell)
        per_pid = []
        for pid, entry in enumerate(entries, start=1):
            matrix = _unwrap(entry)
            if not _is_perm_matrix(matrix):
                raise fail(f'{{{cam}}}{{{pid}}}', entry)
            rows = [row if isinstance(row, list) else [row] for row in matrix]
            rows = [[int(v) for v in row] for row in rows]
            length = len(rows[0])
            for trial, row in enumerate(rows):
                if sorted(row) != list(range(1, length + 1)):
                    raise fail(f'{{{cam}}}{{{pid}}}({trial + 1},:)', row)
            per_pid.append(rows)
        perms.append(per_pid)
    return perms


def official_gallery_draw(rand_perm_cam: Union[list, RandPermCam],
                          groups: PoolGroups,
                          img_paths: Sequence[Optional[str]],
                          cameras: Sequence[int], shots: int,
                          trial: int) -> List[int]:
    """The official SYSU-MM01 draw (``get_testing_set.m``).

    ``rand_perm_cam{cam}{pid}`` is a 10 x n matrix of 1-based image
    permutations; trial ``t`` takes the first ``shots`` entries of row
    ``t``; entry ``i`` is ``cam<cam>/<pid:04d>/<i:04d>.jpg``. Cameras are
    visited in the outer loop and ids in ascending order inside, as in the
    MATLAB code; an id with an empty entry contributes nothing. Every
    image the permutations pick must be in the pool.

    Args:
        rand_perm_cam: The permutations, as loaded by
            :func:`~mmreid.evaluation.metrics.load_rand_perm_cam` or raw
            nested lists (checked with
            :func:`normalize_rand_perm_cam`).
        groups: See :func:`group_pool`.
        img_paths: Image path of every pool item; the image number is the
            file name (``0007.jpg`` -> 7).
        cameras: Gallery camera numbers.
        shots: Images per (pid, camera).
        trial: Row of the permutations, 0..9.

    Returns:
        list[int]: Pool indices of the gallery, in draw order.
    """
    perms = normalize_rand_perm_cam(rand_perm_cam, 'rand_perm_cam')
    if not 0 <= trial < NUM_OFFICIAL_TRIALS:
        raise ValueError(f'the official draws hold trials 0..'
                         f'{NUM_OFFICIAL_TRIALS - 1}, got {trial}')
    pids = sorted({pid for pid, _ in groups})
    gallery = []
    for cam in cameras:
        per_pid = perms[cam - 1]
        for pid in pids:
            files = groups.get((pid, cam), [])
            if not 1 <= pid <= len(per_pid):
                if files:
                    raise ValueError(
                        f'rand_perm_cam has no entry for cam{cam}/{pid:04d} '
                        f'(camera {cam} holds ids 1..{len(per_pid)}), but '
                        'the gallery pool has images of it')
                continue
            row = per_pid[pid - 1][trial]
            if not row:
                continue
            by_number = {}
            for index in files:
                name = osp.basename(img_paths[index] or '')
                match = _IMAGE_NUMBER.match(name)
                if match is None:
                    raise ValueError(
                        'the official draw maps image numbers to files; '
                        f'cannot read one from {img_paths[index]!r}')
                number = int(match.group(1))
                if number in by_number:
                    raise ValueError(
                        f'cam{cam}/{pid:04d} has two images numbered '
                        f'{number}: {img_paths[by_number[number]]!r} and '
                        f'{img_paths[index]!r}; the official draw picks '
                        'images by number')
                by_number[number] = index
            for number in row[:shots]:
                if number not in by_number:
                    raise ValueError(
                        f'rand_perm_cam picks cam{cam}/{pid:04d}/'
                        f'{number:04d} in trial {trial}, which is not '
                        'in the gallery pool (a partial copy of '
                        'SYSU-MM01?)')
                gallery.append(by_number[number])
    return gallery


def classic_cmc(distmat: np.ndarray,
                q_pids: np.ndarray,
                g_pids: np.ndarray,
                q_camids: np.ndarray,
                g_camids: np.ndarray,
                max_rank: int = 50,
                num_repeats: int = 10,
                seed: Optional[int] = 0) -> Tuple[np.ndarray, np.ndarray]:
    """CUHK03 classic single-gallery-shot CMC (fast-reid ``eval_cuhk03``).

    Per query (in order): rank the gallery by ascending distance (stable
    sort), remove items of the query's pid and camid, bucket the rest by
    pid in order of first appearance; then ``num_repeats`` times pick one
    item per bucket (``rng.choice`` per bucket, in bucket order) and take
    the rank of the picked positive among the picked items. CMC_q is the
    mean over the repeats. Queries without a kept positive are skipped.
    With ``seed=s`` the draws equal those of the reference after
    ``np.random.seed(s)`` (the reference itself is unseeded).

    Args:
        distmat: Distances, shape (Q, G).
        q_pids, g_pids: pids, shapes (Q,) and (G,).
        q_camids, g_camids: camids, shapes (Q,) and (G,).
        max_rank: Length of the CMC curve.
        num_repeats: Draws per query.
        seed: Seed of a private ``np.random.RandomState``; ``None`` for an
            unseeded one.

    Returns:
        tuple: ``cmc`` (max_rank,) averaged over valid queries and
        ``valid`` (Q,) bool.

    Raises:
        ValueError: A query or gallery item has pid -1, the junk label.
    """
    rng = np.random.RandomState(seed)
    distmat = np.asarray(distmat, dtype=np.float64)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    for role, pids in (('query', q_pids), ('gallery', g_pids)):
        junk = np.flatnonzero(pids == JUNK_PID).tolist()
        if junk:
            raise ValueError(
                f'{role} items {_some(junk)} of {len(pids)} have pid '
                f'{JUNK_PID}, the junk label: classic_cmc draws one gallery '
                f'item per pid, so junk images would be ranked as one '
                f'identity. Leave them out (CUHK03 has none)')
    valid = np.zeros(len(q_pids), dtype=bool)
    total = np.zeros(max_rank)
    for q in range(len(q_pids)):
        order = np.argsort(distmat[q], kind='stable')
        keep = ~((g_pids[order] == q_pids[q]) &
                 (g_camids[order] == q_camids[q]))
        kept_pids = g_pids[order][keep]
        if not np.any(kept_pids == q_pids[q]):
            continue
        valid[q] = True
        buckets: 'OrderedDict[int, List[int]]' = OrderedDict()
        for position, pid in enumerate(kept_pids.tolist()):
            buckets.setdefault(pid, []).append(position)
        positive = list(buckets).index(int(q_pids[q]))
        sizes = np.array([len(m) for m in buckets.values()])
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        flat = np.concatenate([m for m in buckets.values()])
        cmc = np.zeros(max_rank)
        for _ in range(num_repeats):
            # One randint over the buckets draws the same stream as the
            # reference's ``np.random.choice`` per bucket.
            picked = flat[starts + rng.randint(0, sizes)]
            rank = int((picked < picked[positive]).sum())  # 0-based
            if rank < max_rank:
                cmc[rank:] += 1
        total += cmc / num_repeats
    num_valid = int(valid.sum())
    if num_valid == 0:
        raise ValueError('no query has a positive in the gallery')
    return total / num_valid, valid


def count_valid_positives(
        q_pids: torch.Tensor,
        g_pids: torch.Tensor,
        q_camids: torch.Tensor,
        g_camids: torch.Tensor,
        junk_rule: Union[str, JunkRule] = 'market') -> torch.Tensor:
    """Gallery items of each query's pid that the removal rule keeps.

    The same rule as the ranking (:func:`get_junk_rule`), so a protocol
    that checks its positives counts what the ranking will see.

    Args:
        q_pids: Query pids, shape (Q,).
        g_pids: Gallery pids, shape (G,).
        q_camids: Query camids, shape (Q,).
        g_camids: Gallery camids, shape (G,).
        junk_rule: ``'market'``, ``'none'``, ``'sysu'`` or a
            :data:`~.junk_rules.JunkRule`.

    Returns:
        torch.Tensor: Valid positives per query, int64, shape (Q,).
    """
    q_pids, g_pids = torch.as_tensor(q_pids), torch.as_tensor(g_pids)
    rule = rule_with_junk_label(junk_rule, q_pids, g_pids)
    same_pid = q_pids[:, None] == g_pids[None, :]
    removed = rule(same_pid, torch.as_tensor(q_camids),
                   torch.as_tensor(g_camids))
    if removed is not None:
        same_pid = same_pid & ~removed
    return same_pid.sum(dim=1)


def summarize_partitions(
        per_partition: Sequence[Mapping[str, float]]) -> Dict[str, float]:
    """Mean and population standard deviation over partitions.

    The summary of every protocol evaluated on several splits or trials:
    for each key ``k`` the mean ``k`` and the standard deviation
    ``k_std`` (``ddof=0``, as the protocols report it) of the values of
    all partitions.

    Args:
        per_partition: One mapping per partition (split or trial), the
            same keys in each, e.g. ``dict(R1=..., mAP=..., mINP=...)``.

    Returns:
        dict: The means under the partitions' keys (in their order), then
        the standard deviations under ``<key>_std``.

    Raises:
        ValueError: No partition, or partitions with different keys.
    """
    if not per_partition:
        raise ValueError('summarize_partitions needs at least one partition')
    keys = list(per_partition[0])
    for index, values in enumerate(per_partition):
        if set(values) != set(keys):
            raise ValueError(f'partition {index} has keys {sorted(values)}, '
                             f'partition 0 has {sorted(keys)}; every '
                             'partition must report the same keys')
    columns = {
        key: np.array([float(v[key]) for v in per_partition])
        for key in keys
    }
    summary = {key: float(np.mean(column)) for key, column in columns.items()}
    summary.update({
        f'{key}_std': float(np.std(column, ddof=0))
        for key, column in columns.items()
    })
    return summary
