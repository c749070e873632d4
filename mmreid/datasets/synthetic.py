"""SynthReID: a procedurally rendered person re-identification dataset.

Identities are combinations of camera-invariant attributes (garment colours
and patterns, body proportions, accessories); cameras add their own
background, viewpoint and lighting; domains add a global image style. The
last of several domains has a deliberately different style (the unseen
target of domain generalization). An infrared rendering keeps shape and
patterns but replaces garment colour by a per-identity emissivity.

The data is written on first use in the exact Market-1501 layout (one folder
per domain) or the SYSU-MM01 layout (``modality='vi'``), so the real parsers
and protocols run on it unchanged. Every image is drawn from its own
``numpy.random.Generator(PCG64)`` seeded by (seed, domain, pid, camera,
image), so the bytes do not depend on generation order.
"""
import hashlib
import json
import os
import os.path as osp
import shutil
import uuid
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from mmreid.registry import DATASETS
from .market1501 import Market1501
# Rendering lives in its own module; its public helpers are re-exported.
from .synthetic_render import identity_attributes  # noqa: F401
from .synthetic_render import (_SPLIT, _rng, domain_names, get_domain_styles,
                               render_image)

#: Bump whenever the rendering changes, so that stale folders are refused.
SYNTHREID_VERSION = 1
MANIFEST = 'synthreid.json'


def _source_digest() -> str:
    """Hash of the code that decides the pixels and the file plan.

    Stored in the manifest with the parameters, so a folder written by any
    other version of this code (a development copy included) is refused
    instead of silently reused: a stale folder once gave numbers that a
    fresh clone could not reproduce.
    """
    digest = hashlib.sha256()
    for path in (__file__, osp.join(osp.dirname(__file__),
                                    'synthetic_render.py')):
        with open(path, 'rb') as f:
            digest.update(f.read())
    return digest.hexdigest()[:16]


SOURCE_DIGEST = _source_digest()
JPEG_QUALITY = 90

#: Named sizes. ``num_ids_*`` and ``num_distractors``/``num_junk`` count per
#: domain; ``imgs_per_cam`` is the number of images of an identity in each
#: camera it appears in. ``num_ids_val`` is used by ``modality='vi'`` only
#: (SYSU-MM01 lists train and val ids, both used for training).
SYNTHREID_PRESETS: Dict[str, dict] = dict(
    tiny=dict(
        num_ids_train=4,
        num_ids_test=3,
        num_ids_val=1,
        num_cams=3,
        imgs_per_cam=2,
        num_distractors=2,
        num_junk=2),
    small=dict(
        num_ids_train=16,
        num_ids_test=12,
        num_ids_val=4,
        num_cams=4,
        imgs_per_cam=2,
        num_distractors=6,
        num_junk=4),
    demo=dict(
        num_ids_train=150,
        num_ids_test=100,
        num_ids_val=30,
        num_cams=4,
        imgs_per_cam=3,
        num_distractors=40,
        num_junk=20),
)
SYSU_VISIBLE_CAMS = (1, 2, 4, 5)
SYSU_INFRARED_CAMS = (3, 6)


# ---------------------------------------------------------------------------
# Dataset plans: which file shows which (pid, camera, image)
# ---------------------------------------------------------------------------
def _resolve_params(size: str, modality: str, domains: Optional[int],
                    seed: int, img_size: Sequence[int],
                    overrides: dict) -> dict:
    if size not in SYNTHREID_PRESETS:
        raise ValueError(f'unknown SynthReID size {size!r}; choose from '
                         f'{sorted(SYNTHREID_PRESETS)}')
    if modality not in ('visible', 'vi'):
        raise ValueError(f'modality must be "visible" or "vi", got '
                         f'{modality!r}')
    params = dict(SYNTHREID_PRESETS[size])
    if modality == 'vi':
        if domains not in (None, 1):
            raise ValueError('modality="vi" renders a single domain; got '
                             f'domains={domains}')
        domains = 1
        # SYSU-MM01 has six fixed cameras and no distractor files.
        for key in ('num_cams', 'num_distractors', 'num_junk'):
            params.pop(key)
    else:
        params.pop('num_ids_val')
    unknown = set(overrides) - set(params)
    if unknown:
        raise TypeError(f'unknown SynthReID parameter(s) {sorted(unknown)} '
                        f'for modality={modality!r}; known: '
                        f'{sorted(params)}')
    params.update({k: int(v) for k, v in overrides.items()})
    if modality == 'visible' and not 2 <= params['num_cams'] <= 9:
        # Two cameras at least: every identity is seen by two. At most
        # nine: Market-1501 names have a one-digit camera.
        raise ValueError(f'num_cams must be in [2, 9], got '
                         f'{params["num_cams"]}')
    domains = 4 if domains is None else int(domains)
    h, w = (int(s) for s in img_size)
    if domains < 1 or min(h, w) < 16:
        raise ValueError(f'need domains >= 1 and images of at least 16 px, '
                         f'got domains={domains}, img_size={(h, w)}')
    if min(v for k, v in params.items() if k.startswith('num_ids')) < 1 or \
            params['imgs_per_cam'] < 1:
        raise ValueError(f'identity and image counts must be >= 1: {params}')
    return dict(
        version=SYNTHREID_VERSION,
        code=SOURCE_DIGEST,
        modality=modality,
        domains=domains,
        seed=int(seed),
        img_size=[h, w],
        **params)


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


def _plan_market(p: dict, d: int) -> List[tuple]:
    """Files of one Market-style domain.

    Returns:
        list[tuple]: ``(relative path, pid, cam, index, kind)``.
    """
    seed, ncam, nimg = p['seed'], p['num_cams'], p['imgs_per_cam']
    # Domains own disjoint pid ranges, so identities (and pid numbers) of
    # different domains never coincide.
    block = 9999 // p['domains']
    rng = _rng(seed, _SPLIT, d)
    train, test = _allocate_pids(rng, d * block + 1, (d + 1) * block,
                                 [p['num_ids_train'], p['num_ids_test']])
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


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------
def _write_image(path: str, img: np.ndarray) -> None:
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode('.jpg', img,
                           [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise OSError(f'could not encode {path!r}')
    with open(path, 'wb') as f:
        f.write(buf.tobytes())


def _write_tree(folder: str, params: dict) -> dict:
    """Render every file under ``folder``; returns the per-split counts."""
    h, w = params['img_size']
    seed = params['seed']
    counts: dict = {}
    if params['modality'] == 'vi':
        plan, ids = _plan_sysu(params)
        style = get_domain_styles(1, seed)[0]
        exp = osp.join(folder, 'SYSU-MM01', 'exp')
        os.makedirs(exp)
        for split, pids in ids.items():
            with open(osp.join(exp, f'{split}_id.txt'), 'w') as f:
                f.write(','.join(str(pid) for pid in pids) + '\n')
        jobs = [(rel, 0, pid, cam, i, kind, style, cam in SYSU_INFRARED_CAMS)
                for rel, pid, cam, i, kind in plan]
        counts['SYSU-MM01'] = dict(
            ids={
                k: len(v)
                for k, v in ids.items()
            },
            visible=sum(not j[-1] for j in jobs),
            infrared=sum(j[-1] for j in jobs))
    else:
        styles = get_domain_styles(params['domains'], seed)
        jobs = []
        for d, style in enumerate(styles):
            plan = _plan_market(params, d)
            for rel, pid, cam, i, kind in plan:
                jobs.append((f'{style["name"]}/{rel}', d, pid, cam, i, kind,
                             style, False))
            split_counts = {}
            for rel, pid, *_ in plan:
                split = rel.split('/')[0]
                c = split_counts.setdefault(split, dict(images=0, ids=set()))
                c['images'] += 1
                c['ids'].add(pid)
            counts[style['name']] = {
                k: dict(images=v['images'], ids=len(v['ids'] - {0, -1}))
                for k, v in sorted(split_counts.items())
            }
    made = set()
    for rel, d, pid, cam, i, kind, style, infrared in jobs:
        path = osp.join(folder, rel)
        parent = osp.dirname(path)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        _write_image(
            path,
            render_image(seed, d, pid, cam, i, (h, w), style, infrared, kind))
    return counts


def _read_manifest(root: str) -> Optional[dict]:
    path = osp.join(root, MANIFEST)
    if not osp.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def _check_manifest(root: str, manifest: dict, params: dict) -> dict:
    on_disk = manifest.get('params') or {}
    if on_disk != params:
        keys = sorted(set(on_disk) | set(params))
        diff = ', '.join(f'{k}: {on_disk.get(k)!r} on disk, '
                         f'{params.get(k)!r} requested' for k in keys
                         if on_disk.get(k) != params.get(k))
        raise FileExistsError(
            f'SynthReID: {root!r} holds a dataset generated with different '
            f'parameters ({diff}).\n  on disk:   '
            f'{dict(sorted(on_disk.items()))}\n  requested: '
            f'{dict(sorted(params.items()))}\nDelete {root!r} or choose '
            f'another data_root.')
    return manifest


def generate_synthreid(root: str,
                       *,
                       domains: Optional[int] = None,
                       size: str = 'small',
                       modality: str = 'visible',
                       seed: int = 0,
                       img_size: Sequence[int] = (128, 64),
                       **overrides: int) -> dict:
    """Write a SynthReID dataset under ``root`` unless it is already there.

    Layouts::

        modality='visible' (Market-1501 layout, one folder per domain)
          <root>/d0/bounding_box_train/0002_c1s1_000451_03.jpg ...
          <root>/d0/bounding_box_test/   (with 0000_* distractors and
                                          -1_* junk)
          <root>/d0/query/
          <root>/d1/ ...                 (the last domain: unseen style)
        modality='vi' (SYSU-MM01 layout; cams 1, 2, 4, 5 visible, 3, 6 IR)
          <root>/SYSU-MM01/cam1/0001/0001.jpg ...
          <root>/SYSU-MM01/exp/{train,val,test}_id.txt
        <root>/synthreid.json            (the manifest)

    The tree is written to a temporary sibling folder and renamed into
    place, so ``root`` is complete or absent. When several processes (DDP
    ranks) generate at once, the first rename wins and the others discard
    their copy.

    Args:
        root (str): Destination folder.
        domains (int, optional): Number of domains. Defaults to 4 for
            ``'visible'``; ``'vi'`` renders one.
        size (str): Preset in :data:`SYNTHREID_PRESETS`: ``'tiny'`` (tests),
            ``'small'`` or ``'demo'``.
        modality (str): ``'visible'`` or ``'vi'`` (visible-infrared).
        seed (int): Seed; the same parameters give byte-identical files.
        img_size (Sequence[int]): ``(height, width)`` of every image.
        **overrides: Preset fields to override: ``num_ids_train``,
            ``num_ids_test``, ``num_ids_val`` (vi), ``num_cams`` (visible),
            ``imgs_per_cam``, ``num_distractors`` and ``num_junk``
            (visible).

    Returns:
        dict: The manifest: ``params``, ``size``, ``domains`` (per-domain
        style, see :func:`get_domain_styles`) and ``counts``.

    Raises:
        FileExistsError: ``root`` exists with other parameters, or is a
            non-empty folder that is not a SynthReID dataset.
    """
    params = _resolve_params(size, modality, domains, seed, img_size,
                             overrides)
    root = osp.abspath(root)
    manifest = _read_manifest(root)
    if manifest is None and osp.isdir(root) and os.listdir(root):
        # Another process may have renamed its tree into place just now;
        # the rename is atomic, so a non-empty root has its manifest.
        manifest = _read_manifest(root)
        if manifest is None:
            raise FileExistsError(
                f'SynthReID: {root!r} is not empty and has no {MANIFEST}; '
                f'delete it or choose another data_root.')
    if manifest is not None:
        return _check_manifest(root, manifest, params)
    parent, base = osp.split(root)
    os.makedirs(parent, exist_ok=True)
    tmp = osp.join(parent, f'.{base}.tmp-{os.getpid()}-{uuid.uuid4().hex}')
    try:
        os.makedirs(tmp)
        counts = _write_tree(tmp, params)
        styles = (
            get_domain_styles(params['domains'], seed)
            if modality == 'visible' else get_domain_styles(1, seed))
        manifest = dict(
            params=params, size=size, domains=styles, counts=counts)
        with open(osp.join(tmp, MANIFEST), 'w') as f:
            json.dump(manifest, f, indent=2, sort_keys=True)
        try:
            # Atomic; fails if another process put a non-empty root first.
            os.replace(tmp, root)
        except OSError:
            winner = _read_manifest(root)
            if winner is None:
                raise
            return _check_manifest(root, winner, params)
    finally:
        if osp.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return manifest


# ---------------------------------------------------------------------------
# Dataset
# ---------------------------------------------------------------------------
@DATASETS.register_module()
class SynthReID(Market1501):
    """One domain of the SynthReID dataset, generated on first use.

    Each domain folder has the exact Market-1501 layout and is parsed by
    :class:`Market1501`, so pid ``-1`` junk is dropped, pid ``0``
    distractors stay in the gallery and the Market matching rules apply.

    Example:
        >>> train = SynthReID('data/synthreid', domain=0, split='train')
        >>> target = SynthReID('data/synthreid', domain=-1, split='test')

    Args:
        data_root (str): Root of the generated data (holds ``d0``, ...).
        domain (int | str): Domain to read, by index (negative counts from
            the end; ``-1`` is the unseen-style domain) or by name
            (``'d2'``).
        split (str): ``'train'`` or ``'test'`` (query then gallery).
        num_domains (int): Number of domains to generate.
        size (str): Preset, see :data:`SYNTHREID_PRESETS`.
        seed (int): Generation seed.
        img_size (Sequence[int]): ``(height, width)`` of the images.
        overrides (dict, optional): Preset fields to override (see
            :func:`generate_synthreid`). They may also be passed as keyword
            arguments.
        **kwargs: See :class:`BaseReIDDataset`.
    """

    METAINFO = dict(dataset_name='synthreid')
    LAYOUT = ('<data_root>/d0/  (Market-1501 layout, generated on first '
              'use)\n'
              '  bounding_box_train/   0002_c1s1_000451_03.jpg ...\n'
              '  bounding_box_test/    (pid 0 distractors, pid -1 junk)\n'
              '  query/')

    #: Cameras are configurable (2-9), so no fixed upper bound.
    NUM_CAMS = None

    def __init__(self,
                 data_root: str,
                 domain: Union[int, str] = 0,
                 split: str = 'train',
                 num_domains: int = 4,
                 size: str = 'small',
                 seed: int = 0,
                 img_size: Sequence[int] = (128, 64),
                 overrides: Optional[dict] = None,
                 **kwargs) -> None:
        overrides = dict(overrides or {})
        for key in list(kwargs):
            if key in SYNTHREID_PRESETS['small']:
                overrides[key] = kwargs.pop(key)
        names = domain_names(num_domains)
        if isinstance(domain, str):
            if domain not in names:
                raise ValueError(f'unknown SynthReID domain {domain!r}; '
                                 f'num_domains={num_domains} gives {names}')
            self.domain = domain
        else:
            if not -num_domains <= domain < num_domains:
                raise ValueError(f'domain index {domain} out of range for '
                                 f'num_domains={num_domains}')
            self.domain = names[domain]
        self.synth_root = data_root
        self.generator_cfg = dict(
            domains=num_domains,
            size=size,
            seed=seed,
            img_size=tuple(img_size),
            **overrides)
        # Fail on bad generator arguments now, not at the first access.
        _resolve_params(size, 'visible', num_domains, seed, img_size,
                        overrides)
        super().__init__(
            data_root=osp.join(data_root, self.domain), split=split, **kwargs)
        self._set_name()

    def _set_name(self) -> None:
        # A name per domain keeps multi-source bookkeeping apart; a name
        # given by the user through ``metainfo`` wins.
        if self._metainfo.get('dataset_name') == 'synthreid':
            self._metainfo['dataset_name'] = f'synthreid-{self.domain}'
        self._metainfo['domain'] = self.domain

    def load_data_list(self) -> List[dict]:
        manifest = generate_synthreid(self.synth_root, **self.generator_cfg)
        self._set_name()
        style = next(s for s in manifest['domains']
                     if s['name'] == self.domain)
        self._metainfo['domain_style'] = style['look']
        return super().load_data_list()
