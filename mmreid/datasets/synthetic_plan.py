"""SynthReID file plans: which file shows which (domain, pid, camera, image).

Pure bookkeeping, no pixels: :mod:`.synthetic` renders the plan with
:mod:`.synthetic_render` and writes it.
"""
import hashlib
import json
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .synthetic_render import _ADDED, _SPLIT, _rng, domain_names

SYSU_VISIBLE_CAMS = (1, 2, 4, 5)
SYSU_INFRARED_CAMS = (3, 6)
#: The largest pid: Market-1501 and SYSU-MM01 names have 4-digit pids.
#: The domains of ``'visible'`` own ``MAX_PID // domains`` pids each.
MAX_PID = 9999


def _allocate_pids(rng: np.random.Generator, first: int, last: int,
                   counts: Sequence[int]) -> List[List[int]]:
    """Split distinct random pids in [first, last] into groups."""
    total = sum(counts)
    if last - first + 1 < total:
        raise ValueError(f'{total} identities do not fit in 4-digit pids')
    pids = first + rng.choice(last - first + 1, total, replace=False)
    groups, start = [], 0
    for n in counts:
        groups.append(sorted(int(p) for p in pids[start:start + n]))
        start += n
    return groups


def _added_test_pids(seed: int, domain: int, first: int, last: int,
                     taken: Sequence[int], count: int) -> List[int]:
    """``count`` more test pids in [first, last], none of ``taken``.

    Their own stream: the other identities are drawn as without them.
    """
    if count == 0:
        return []
    taken_set = set(taken)
    free = [p for p in range(first, last + 1) if p not in taken_set]
    if len(free) < count:
        raise ValueError(f'num_ids_test_added: {count} more identities do '
                         f'not fit in pids {first}-{last} of domain '
                         f'{domain} ({len(free)} left)')
    rng = _rng(seed, _ADDED, domain)
    return sorted(free[i] for i in rng.choice(len(free), count, replace=False))


def _count(value, domain: int) -> int:
    """A count given as an int or one per domain."""
    return value[domain] if isinstance(value, list) else value


def _plan_market(p: dict, d: int) -> List[tuple]:
    """Files of one Market-style domain.

    Returns:
        list[tuple]: ``(relative path, pid, cam, index, kind)``.
    """
    seed, ncam, nimg = p['seed'], p['num_cams'], p['imgs_per_cam']
    # Domains own disjoint pid ranges, so identities (and pid numbers) of
    # different domains never coincide.
    block = MAX_PID // p['domains']
    rng = _rng(seed, _SPLIT, d)
    first, last = d * block + 1, (d + 1) * block
    train, test = _allocate_pids(
        rng, first, last,
        [p['num_ids_train'], _count(p['num_ids_test'], d)])
    test = sorted(test +
                  _added_test_pids(seed, d, first, last, train + test,
                                   _count(p.get('num_ids_test_added', 0), d)))
    plan = []

    def name(pid, cam, seq, frame, box):
        # Junk keeps Market's unpadded '-1'.
        prefix = f'{pid:04d}' if pid >= 0 else str(pid)
        return f'{prefix}_c{cam}s{seq}_{frame:06d}_{box:02d}.jpg'

    def fields(pid, cam, count):
        # Frames of one (pid, camera) track increase along a sequence.
        r = _rng(seed, _SPLIT, d, pid, cam)
        seq, frame = int(r.integers(1, 7)), int(r.integers(1, 150000))
        out = []
        for _ in range(count):
            out.append((seq, frame, int(r.integers(0, 9))))
            frame += int(r.integers(5, 60))
        return out

    for role, pids in (('train', train), ('test', test)):
        for pid in pids:
            r = _rng(seed, _SPLIT, d, pid)
            cams = sorted(
                int(c) + 1 for c in r.choice(
                    ncam, int(r.integers(2, ncam + 1)), replace=False))
            # One query image per camera (Market style); with one image
            # per camera one camera is kept for the gallery, so that every
            # query has a match seen by another camera.
            qcams = set(cams) if nimg >= 2 else set(
                r.choice(cams, len(cams) - 1, replace=False))
            for cam in cams:
                for i, f in enumerate(fields(pid, cam, nimg)):
                    if role == 'train':
                        folder = 'bounding_box_train'
                    elif i == 0 and cam in qcams:
                        folder = 'query'
                    else:
                        folder = 'bounding_box_test'
                    plan.append((f'{folder}/{name(pid, cam, *f)}', pid, cam, i,
                                 'person'))
    for kind, pid, count in (('distractor', 0, p['num_distractors']),
                             ('junk', -1, p['num_junk'])):
        for i in range(count):
            r = _rng(seed, _SPLIT, d, pid, 10**6 + i)
            cam = int(r.integers(1, ncam + 1))
            # The index in the frame number keeps names unique.
            f = (int(r.integers(1, 7)), i * 1000 + int(r.integers(0, 1000)),
                 int(r.integers(0, 9)))
            plan.append(
                (f'bounding_box_test/{name(pid, cam, *f)}', pid, cam, i, kind))
    return plan


def _plan_sysu(p: dict) -> Tuple[List[tuple], Dict[str, List[int]]]:
    """Files and id lists of the SYSU-MM01-style variant."""
    seed, nimg = p['seed'], p['imgs_per_cam']
    rng = _rng(seed, _SPLIT, 0)
    counts = [p['num_ids_train'], p['num_ids_val'], p['num_ids_test']]
    train, val, test = _allocate_pids(rng, 1, max(533, sum(counts)), counts)
    test = sorted(test +
                  _added_test_pids(seed, 0, 1, MAX_PID, train + val +
                                   test, p.get('num_ids_test_added', 0)))
    plan = []
    for pid in sorted(train + val + test):
        r = _rng(seed, _SPLIT, 0, pid)
        # Everyone is seen by at least two visible and one infrared camera.
        vis = r.choice(SYSU_VISIBLE_CAMS, int(r.integers(2, 5)), replace=False)
        ir = r.choice(SYSU_INFRARED_CAMS, int(r.integers(1, 3)), replace=False)
        for cam in sorted(int(c) for c in np.concatenate([vis, ir])):
            for i in range(nimg):
                plan.append((f'SYSU-MM01/cam{cam}/{pid:04d}/{i + 1:04d}.jpg',
                             pid, cam, i, 'person'))
    return plan, dict(train=train, val=val, test=test)


def control_names(num_domains: int) -> List[Tuple[str, int, int]]:
    """The style-only control folders (``style_control=True``).

    ``d<last>-d0style`` holds the test split of the last domain (its
    identities, cameras, poses and noise) rendered in the style of ``d0``;
    ``d0-d<last>style`` the test split of ``d0`` in the unseen style. With
    ``d0`` and ``d<last>`` they separate the cost of the style shift from
    the cost of new cameras and identities.

    Returns:
        list[tuple]: ``(folder name, identity domain, style domain)``.
    """
    last = num_domains - 1
    return [(f'd{last}-d0style', last, 0), (f'd0-d{last}style', 0, last)]


def _plan_jobs(params: dict) -> Tuple[List[dict], dict, Dict]:
    """Every file to render, the per-split counts and the SYSU id lists."""
    counts: dict = {}
    ids: Dict[str, List[int]] = {}
    jobs = []
    if params['modality'] == 'vi':
        plan, ids = _plan_sysu(params)
        split_of = {pid: split for split, pids in ids.items() for pid in pids}
        images: Dict[str, Dict[str, int]] = {split: {} for split in ids}
        for rel, pid, cam, i, kind in plan:
            infrared = cam in SYSU_INFRARED_CAMS
            jobs.append(
                dict(
                    path=rel,
                    domain=0,
                    pid=pid,
                    cam=cam,
                    index=i,
                    kind=kind,
                    infrared=infrared))
            per_cam = images[split_of[pid]]
            per_cam[f'cam{cam}'] = per_cam.get(f'cam{cam}', 0) + 1
        counts['SYSU-MM01'] = dict(
            ids={
                k: len(v)
                for k, v in ids.items()
            },
            visible=sum(not j['infrared'] for j in jobs),
            infrared=sum(j['infrared'] for j in jobs),
            images={
                k: dict(sorted(v.items()))
                for k, v in images.items()
            })
        return jobs, counts, ids
    folders = [(name, d, d)
               for d, name in enumerate(domain_names(params['domains']))]
    if params.get('style_control'):
        folders += control_names(params['domains'])
    for name, d, style_domain in folders:
        plan = _plan_market(params, d)
        if style_domain != d:
            # A control holds the test split only (the training folder
            # exists, empty, as the Market-1501 layout requires).
            plan = [f for f in plan if not f[0].startswith('bounding_box_tr')]
        split_counts: dict = {}
        if style_domain != d:
            split_counts['bounding_box_train'] = dict(
                images=0, ids=set(), junk=0, distractors=0)
        for rel, pid, cam, i, kind in plan:
            job = dict(
                path=f'{name}/{rel}',
                domain=d,
                pid=pid,
                cam=cam,
                index=i,
                kind=kind,
                infrared=False)
            if style_domain != d:
                job['style_domain'] = style_domain
            jobs.append(job)
            c = split_counts.setdefault(
                rel.split('/')[0],
                dict(images=0, ids=set(), junk=0, distractors=0))
            c['images'] += 1
            c['ids'].add(pid)
            c['junk'] += kind == 'junk'
            c['distractors'] += kind == 'distractor'
        counts[name] = {
            k: dict(v, ids=len(v['ids'] - {0, -1}))
            for k, v in sorted(split_counts.items())
        }
    return jobs, counts, ids


def _canary_jobs(jobs: List[dict],
                 ids: Optional[Dict[str, List[int]]] = None) -> List[dict]:
    """The planned images re-rendered at every load: one per folder and camera.

    The first file of every camera in every split folder
    (``bounding_box_train``, ``query``, ``bounding_box_test``) of every
    domain and style-only control, and the first distractor and junk box;
    for ``'vi'`` the first file of every camera in each id list (train,
    val, test), so both sensors. A change of the renderer or the plan that
    touches any domain, split, camera, sensor or kind of box changes at
    least one of them (66 images for SynthReID v2.1 with its style-only
    controls: 4 domains x 3 folders x 4 cameras, 2 controls x 2 folders x
    4 cameras, 2 boxes; 50 without the controls; 18 for SynthReID-vi;
    about 1 ms each). Cameras were not covered before:
    a change to one camera's rendering was not seen.

    Args:
        jobs (list[dict]): The plan (see :func:`_plan_jobs`).
        ids (dict, optional): The SYSU id lists of ``'vi'``.
    """
    split_of = {
        pid: split
        for split, pids in (ids or {}).items()
        for pid in pids
    }
    picked: Dict[tuple, dict] = {}
    for job in jobs:
        if job['path'].startswith('SYSU'):
            key = (split_of[job['pid']], job['infrared'], job['cam'])
        elif job['kind'] != 'person':
            key = (job['kind'], )
        else:
            key = (*job['path'].split('/')[:2], job['cam'])
        picked.setdefault(key, job)
    return list(picked.values())


#: The job fields that make the plan: a file's path and its labels.
_PLAN_FIELDS = ('path', 'domain', 'style_domain', 'pid', 'cam', 'index',
                'kind', 'infrared')


def _plan_digest(jobs: List[dict], ids: Dict[str, List[int]]) -> str:
    """sha256 of a plan: every file's path and labels, and the id lists."""
    text = json.dumps(
        dict(
            files=[[job.get(k) for k in _PLAN_FIELDS] for job in jobs],
            ids=ids),
        sort_keys=True,
        separators=(',', ':'))
    return hashlib.sha256(text.encode()).hexdigest()
