"""The small domain-generalization target sets: PRID2011, GRID, VIPeR and
QMUL-iLIDS.

Each is evaluated on ten fixed splits. PRID2011, VIPeR and QMUL-iLIDS read
them from the split files shipped in ``mmreid/datasets/splits/`` (made once
by ``tools/dataset_converters/make_dg_splits.py`` with seed = split index
and protected by a checksum); GRID reads its official partitions from
``features_and_partitions.mat``. Nothing is drawn at load time.

``split='test'`` with ``split_index=None`` (the default) lists the union of
the queries of all ten splits, then the union of their galleries; the
membership of every split is in ``metainfo['dg_splits']`` as lists of image
paths, which :class:`~mmreid.evaluation.metrics.DGSplitMetric` uses to
evaluate the ten splits from one feature extraction, and
``metainfo['protocol_metric']`` is ``'DGSplitMetric'``: an image can be a
query in one split and in the gallery of another, so other metrics refuse
the union. ``split_index=i``
lists split ``i`` only (for :class:`~mmreid.evaluation.ReIDMetric`) or, with
``split='train'``, its training identities.
"""
import hashlib
import json
import os.path as osp
import re
from collections import Counter
from typing import Dict, List, Optional, Sequence

from mmreid.registry import DATASETS
from mmreid.utils.mat_file import load_mat
from .base_reid_dataset import BaseReIDDataset, DatasetLayoutError, list_images
from .dataset_options import own_metainfo

SPLIT_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'splits')
NUM_SPLITS = 10


def splits_checksum(splits: Sequence[dict]) -> str:
    """SHA-256 of the canonical JSON of a list of splits.

    Args:
        splits: The ``splits`` list of a split file.

    Returns:
        str: Hex digest of ``json.dumps(splits, sort_keys=True,
        separators=(',', ':'))``.
    """
    text = json.dumps(list(splits), sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def load_split_file(path: str, dataset: str) -> List[dict]:
    """Read a split file and check its checksum.

    Args:
        path: A JSON file with ``dataset``, ``splits`` and ``sha256``.
        dataset: The expected ``dataset`` field.

    Returns:
        list[dict]: The splits.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'split file {path!r} not found: mmreid ships it in '
            'mmreid/datasets/splits/; regenerate it with python '
            'tools/dataset_converters/make_dg_splits.py')
    with open(path, encoding='utf-8') as f:
        content = json.load(f)
    for key in ('dataset', 'splits', 'sha256'):
        if key not in content:
            raise ValueError(f'split file {path!r} has no {key!r} field')
    if content['dataset'] != dataset:
        raise ValueError(f'split file {path!r} is for '
                         f'{content["dataset"]!r}, expected {dataset!r}')
    digest = splits_checksum(content['splits'])
    if digest != content['sha256']:
        raise ValueError(f'split file {path!r} does not match its checksum '
                         f'({digest} != {content["sha256"]}); it was edited '
                         'by hand or damaged, regenerate it with '
                         'tools/dataset_converters/make_dg_splits.py')
    return content['splits']


class SplitReIDDataset(BaseReIDDataset):
    """A dataset evaluated on fixed splits over one set of images.

    A subclass implements :meth:`scan` (every image, keyed by the name the
    splits use) and :meth:`load_splits` (per split, the keys of its train,
    query and gallery images).

    Args:
        data_root (str): Root folder of the dataset.
        split (str): ``'test'`` (query then gallery) or ``'train'``.
        split_index (int, optional): One split, ``0..9``. ``None`` (test
            only) lists the images of all splits.
        split_file (str, optional): Overrides the shipped split file.
        **kwargs: See :class:`BaseReIDDataset`.
    """

    #: Name of the shipped split file in ``mmreid/datasets/splits/``.
    SPLIT_FILE: Optional[str] = None
    #: camid of (query, gallery) images when the dataset has no cameras.
    ASSIGNED_CAMIDS: Optional[Dict[str, int]] = None
    #: (query, gallery) image counts of one split, checked on loading.
    SPLIT_SIZES: Dict[str, int] = {}
    #: Identities per role of one split where they differ from the images.
    SPLIT_IDS: Dict[str, int] = {}
    COUNTS_VERIFIED = True
    #: Folder (relative to ``data_root``) the split-file keys are relative
    #: to, used to name a missing image at its real path.
    KEY_ROOT = ''

    def __init__(self,
                 data_root: str,
                 split: str = 'test',
                 split_index: Optional[int] = None,
                 split_file: Optional[str] = None,
                 **kwargs) -> None:
        if split_index is not None and not (isinstance(split_index, int)
                                            and 0 <= split_index < NUM_SPLITS):
            raise ValueError(f'split_index must be None or an int in '
                             f'[0, {NUM_SPLITS}), got {split_index!r}')
        if split == 'train' and split_index is None:
            raise ValueError(f'{type(self).__name__}(split="train") needs '
                             'split_index: the training ids differ per split')
        self.split_index = split_index
        self.split_file = split_file or (osp.join(SPLIT_DIR, self.SPLIT_FILE)
                                         if self.SPLIT_FILE else None)
        if split_index is not None:
            # One split's counts, for tools/misc/verify_dataset.py (the
            # loader also checks the image counts).
            self.PUBLISHED_COUNTS = {
                role:
                dict(
                    images=n,
                    ids=self.SPLIT_IDS.get(role, n),
                    verified=self.COUNTS_VERIFIED)
                for role, n in self.SPLIT_SIZES.items()
            }
        kwargs['metainfo'] = own_metainfo(
            type(self).__name__, dict(split_index=split_index),
            kwargs.get('metainfo'))
        super().__init__(data_root, split=split, **kwargs)

    def scan(self) -> Dict[str, dict]:
        """Every image: split-file key -> ``dict(img_path, pid, camid)``."""
        raise NotImplementedError

    def key_path(self, key: str) -> str:
        """The image path a split-file key names."""
        return osp.join(self.data_root, self.KEY_ROOT, key)

    def load_splits(self, images: Dict[str, dict]) -> List[dict]:
        """Per split, ``dict(train=[keys], query=[keys], gallery=[keys])``.

        Args:
            images: The result of :meth:`scan`.
        """
        raise NotImplementedError

    def _resolve(self) -> None:
        images = self.scan()
        splits = self.load_splits(images)
        if len(splits) != NUM_SPLITS:
            # The protocol is the mean over exactly 10 splits: an 11th
            # would be averaged in (split_index=None), as a missing one
            # would be left out.
            raise ValueError(f'{type(self).__name__}: {self.split_file} '
                             f'holds {len(splits)} splits, expected '
                             f'{NUM_SPLITS}')
        for index, members in enumerate(splits):
            for role, keys in members.items():
                missing = [k for k in keys if k not in images]
                if missing:
                    raise DatasetLayoutError(
                        f'{type(self).__name__}: split {index} lists '
                        f'{self.key_path(missing[0])!r}, which does not '
                        f'exist ({len(missing)} {role} images missing). '
                        f'Expected layout:\n{self.LAYOUT}')
                expected = self.SPLIT_SIZES.get(role)
                if expected is not None and len(keys) != expected:
                    raise ValueError(
                        f'{type(self).__name__}: split {index} has '
                        f'{len(keys)} {role} images, expected {expected}')
                repeated = sorted({k for k in keys if keys.count(k) > 1})
                if repeated:
                    # The dataset lists an image once, dg_splits as often
                    # as the file does: a repeated query counted twice.
                    raise ValueError(
                        f'{type(self).__name__}: split {index} of '
                        f'{self.split_file} lists {role} image '
                        f'{self.key_path(repeated[0])!r} more than once '
                        f'({len(repeated)} such images)')
            shared = sorted({images[k]['pid']
                             for k in members.get('train', ())}
                            & {images[k]['pid']
                               for k in members.get('query', ())})
            if shared:
                raise ValueError(
                    f'{type(self).__name__}: split {index} of '
                    f'{self.split_file} trains on identities it tests '
                    f'(pid {shared[0]}, {len(shared)} in all): a split\'s '
                    'training and test identities are disjoint')
        self._images = images
        self._splits = splits

    def parse_split(self, role: str) -> List[dict]:
        if role != 'gallery':  # query comes first, train alone
            self._resolve()
        chosen = (
            self._splits
            if self.split_index is None else [self._splits[self.split_index]])
        keys = sorted({key for members in chosen for key in members[role]})
        if role == 'train':
            return [self._images[k] for k in keys]
        records = []
        for key in keys:
            record = dict(self._images[key])
            if self.ASSIGNED_CAMIDS is not None:
                record['camid'] = self.ASSIGNED_CAMIDS[role]
            records.append(record)
        return records

    def load_data_list(self) -> List[dict]:
        data_list = super().load_data_list()
        # Train and test metainfo both name the split (see
        # identity_split_conflict).
        self._metainfo['split_index'] = self.split_index
        if self.split == 'test':
            chosen = (
                self._splits if self.split_index is None else
                [self._splits[self.split_index]])
            self._metainfo['dg_splits'] = [
                dict(
                    query=[self._images[k]['img_path'] for k in s['query']],
                    gallery=[
                        self._images[k]['img_path'] for k in s['gallery']
                    ]) for s in chosen
            ]
            if self.split_index is None:
                # The union is no query/gallery set: only the split metric
                # evaluates it (ReIDMetric refuses it).
                self._metainfo['protocol_metric'] = 'DGSplitMetric'
        return data_list


@DATASETS.register_module()
class PRID2011(SplitReIDDataset):
    """PRID2011 single-shot (Hirzer et al., SCIA 2011), a DG target.

    ``cam_a/person_<pid:04d>.png`` (camid 0) and ``cam_b/...`` (camid 1).
    Ids 1-200 are seen by both cameras; a split takes 100 of them as test
    ids: query = their cam_a images (100), gallery = their cam_b images
    plus cam_b ids 201-749 (649). Training ids of a split: the other 100
    of ids 1-200, both cameras.

    Args:
        data_root (str): The folder holding ``prid_2011/``.
        **kwargs: See :class:`SplitReIDDataset`.
    """

    METAINFO = dict(dataset_name='prid2011')
    SPLIT_FILE = 'prid2011.json'
    KEY_ROOT = osp.join('prid_2011', 'single_shot')
    SPLIT_SIZES = dict(query=100, gallery=649)
    CAMERAS = ('cam_a', 'cam_b')
    REQUIRED_PATHS = ('prid_2011/single_shot/cam_a',
                      'prid_2011/single_shot/cam_b')
    LAYOUT = ('data/prid2011/\n'
              '  prid_2011/\n'
              '    single_shot/\n'
              '      cam_a/   person_0001.png ... person_0385.png\n'
              '      cam_b/   person_0001.png ... person_0749.png\n'
              '    multi_shot/   (unused)')
    NAME_PATTERN = re.compile(r'^person_(\d{4})\.png$', re.ASCII)

    def scan(self) -> Dict[str, dict]:
        images = {}
        for camid, cam in enumerate(self.CAMERAS):
            folder = osp.join(self.data_root, 'prid_2011', 'single_shot', cam)
            for name in list_images(folder):
                path = osp.join(folder, name)
                match = self.parse_name(self.NAME_PATTERN, path)
                images[f'{cam}/{name}'] = dict(
                    img_path=path, pid=int(match.group(1)), camid=camid)
        return images

    def load_splits(self, images: Dict[str, dict]) -> List[dict]:
        splits = []
        for s in load_split_file(self.split_file, 'prid2011'):
            train = [
                f'{cam}/person_{pid:04d}.png' for pid in s['train_ids']
                for cam in self.CAMERAS
            ]
            splits.append(
                dict(train=train, query=s['query'], gallery=s['gallery']))
        return splits


@DATASETS.register_module()
class VIPeR(SplitReIDDataset):
    """VIPeR (Gray et al., PETS 2007), a DG target.

    632 identities, one image in ``cam_a`` (camid 0) and one in ``cam_b``
    (camid 1). The pid is the numeric file-name prefix; the loader checks
    that the ``k``-th files of both cameras (sorted by name) have the same
    prefix and that there are 632 pairs. The split file names pairs by
    their 0-based position in that order: a split takes 316 test pairs
    (query = cam_a, gallery = cam_b; direction cam_a -> cam_b) and trains
    on the other 316.

    Args:
        data_root (str): The folder holding ``VIPeR/``.
        **kwargs: See :class:`SplitReIDDataset`.
    """

    METAINFO = dict(dataset_name='viper')
    SPLIT_FILE = 'viper.json'
    KEY_ROOT = 'VIPeR'
    SPLIT_SIZES = dict(query=316, gallery=316)
    NUM_PAIRS = 632
    REQUIRED_PATHS = ('VIPeR/cam_a', 'VIPeR/cam_b')
    LAYOUT = ('data/viper/\n'
              '  VIPeR/\n'
              '    cam_a/   000_45.bmp ... (632 images)\n'
              '    cam_b/   000_90.bmp ... (632 images)')
    NAME_PATTERN = re.compile(r'^(\d+)(?:_[^.]*)?\.bmp$', re.ASCII)

    def scan(self) -> Dict[str, dict]:
        names = {}
        for cam in ('cam_a', 'cam_b'):
            names[cam] = list_images(osp.join(self.data_root, 'VIPeR', cam))
        if len(names['cam_a']) != self.NUM_PAIRS or len(
                names['cam_b']) != self.NUM_PAIRS:
            raise DatasetLayoutError(
                f'VIPeR: expected {self.NUM_PAIRS} images in each of '
                f'cam_a and cam_b under {self.data_root!r}, found '
                f'{len(names["cam_a"])} and {len(names["cam_b"])}. '
                f'Expected layout:\n{self.LAYOUT}')
        images = {}
        self._pairs = []
        for name_a, name_b in zip(names['cam_a'], names['cam_b']):
            pids = []
            pair = (('cam_a', name_a), ('cam_b', name_b))
            for camid, (cam, name) in enumerate(pair):
                path = osp.join(self.data_root, 'VIPeR', cam, name)
                pids.append(int(self.parse_name(self.NAME_PATTERN, path)[1]))
                images[f'{cam}/{name}'] = dict(
                    img_path=path, pid=pids[-1], camid=camid)
            if pids[0] != pids[1]:
                raise ValueError(
                    f'VIPeR pairs cam_a and cam_b images by sorted '
                    f'position; cam_a/{name_a} and cam_b/{name_b} have '
                    'different pids')
            self._pairs.append((f'cam_a/{name_a}', f'cam_b/{name_b}'))
        return images

    def load_splits(self, images: Dict[str, dict]) -> List[dict]:
        splits = []
        for s in load_split_file(self.split_file, 'viper'):
            splits.append(
                dict(
                    train=[
                        k for i in s['train_pairs'] for k in self._pairs[i]
                    ],
                    query=[self._pairs[i][0] for i in s['test_pairs']],
                    gallery=[self._pairs[i][1] for i in s['test_pairs']]))
        return splits


@DATASETS.register_module()
class QMULiLIDS(SplitReIDDataset):
    """QMUL-iLIDS (Zheng et al., BMVC 2009), a DG target.

    ``Persons/<pid:04d><idx:03d>.jpg``: 119 identities, no camera labels.
    A split takes 60 test identities, one query and one *other* gallery
    image of each (60 / 60); query images get camid 0 and gallery images
    camid 1. The split file names identities by their 0-based position in
    sorted pid order and stores two draws per test identity: with the
    identity's images sorted by name, the query is image
    ``query_draw % n`` and the gallery image ``gallery_draw % (n - 1)`` of
    the remaining ones. An image may be a query in one split and a gallery
    image in another: it is then listed twice (once per role).

    Because the picks are positions, the copy must hold exactly the
    published 119 identities and 476 images (the peers assert the same):
    a missing or extra image would silently change the shipped splits,
    so it is an error.

    The images may be in ``i-LIDS_Pedestrian/Persons/`` (the release) or
    in ``images/`` (MetaBIN's ``QMUL-iLIDS/images``, with ``data_root``
    the ``QMUL-iLIDS`` folder); a root holding both is refused.

    Args:
        data_root (str): The folder holding ``i-LIDS_Pedestrian/`` (or
            ``images/``).
        **kwargs: See :class:`SplitReIDDataset`.
    """

    METAINFO = dict(dataset_name='ilids')
    SPLIT_FILE = 'ilids.json'
    SPLIT_SIZES = dict(query=60, gallery=60)
    ASSIGNED_CAMIDS = dict(query=0, gallery=1)
    NUM_PIDS = 119
    NUM_IMAGES = 476
    #: The accepted image folders, relative to ``data_root``.
    IMAGE_FOLDERS = (osp.join('i-LIDS_Pedestrian', 'Persons'), 'images')
    LAYOUT = ('data/ilids/\n'
              '  i-LIDS_Pedestrian/\n'
              '    Persons/   0001001.jpg 0001002.jpg ... (119 ids, 476 '
              'images)\n'
              'or (MetaBIN) data/QMUL-iLIDS/images/   0001001.jpg ...')
    NAME_PATTERN = re.compile(r'^(\d{4})(\d{3})\.jpg$', re.ASCII)

    @property
    def KEY_ROOT(self) -> str:  # noqa: N802 (the attribute it overrides)
        found = [
            f for f in self.IMAGE_FOLDERS
            if osp.isdir(osp.join(self.data_root or '', f))
        ]
        if len(found) > 1:
            raise DatasetLayoutError(
                f'QMUL-iLIDS: data_root={self.data_root!r} holds both '
                f'{found[0]}/ and {found[1]}/: keep one. Expected layout:\n'
                f'{self.LAYOUT}')
        return found[0] if found else self.IMAGE_FOLDERS[0]

    def check_layout(self) -> None:
        self.REQUIRED_PATHS = (self.KEY_ROOT, )
        super().check_layout()

    def scan(self) -> Dict[str, dict]:
        folder = osp.join(self.data_root, self.KEY_ROOT)
        images = {}
        self._by_pid: Dict[int, List[str]] = {}
        for name in list_images(folder):
            path = osp.join(folder, name)
            pid = int(self.parse_name(self.NAME_PATTERN, path).group(1))
            images[name] = dict(img_path=path, pid=pid, camid=0)
            self._by_pid.setdefault(pid, []).append(name)
        if len(self._by_pid) != self.NUM_PIDS:
            raise DatasetLayoutError(
                f'QMUL-iLIDS: expected {self.NUM_PIDS} identities in '
                f'{folder!r}, found {len(self._by_pid)}. Expected layout:\n'
                f'{self.LAYOUT}')
        single = [p for p, names in self._by_pid.items() if len(names) < 2]
        if single:
            raise ValueError(f'QMUL-iLIDS: identity {single[0]} has one '
                             'image; each needs a query and a gallery image')
        if len(images) != self.NUM_IMAGES:
            raise DatasetLayoutError(
                f'QMUL-iLIDS: expected {self.NUM_IMAGES} images in '
                f'{folder!r}, found {len(images)}. The shipped splits pick '
                "each test identity's query and gallery image by position "
                'among its images, so a missing or extra image would '
                'silently change every split. Expected layout:\n'
                f'{self.LAYOUT}')
        return images

    def load_splits(self, images: Dict[str, dict]) -> List[dict]:
        pids = sorted(self._by_pid)
        splits = []
        for index, s in enumerate(load_split_file(self.split_file,
                                                  'ilids')):
            for name in ('test_ids', 'train_ids'):
                positions = list(s[name])
                bad = [p for p in positions if not 0 <= p < len(pids)]
                if bad or len(set(positions)) != len(positions):
                    raise ValueError(
                        f'QMULiLIDS: split {index} of {self.split_file}: '
                        f'{name} must be distinct positions in 0..'
                        f'{len(pids) - 1} among the sorted identities, got '
                        + (f'{bad[0]}' if bad else 'a repeated one'))
            query, gallery = [], []
            for pos, q_draw, g_draw in zip(s['test_ids'], s['query_draws'],
                                           s['gallery_draws']):
                names = list(self._by_pid[pids[pos]])
                query.append(names.pop(q_draw % len(names)))
                gallery.append(names[g_draw % len(names)])
            train = [
                n for pos in s['train_ids'] for n in self._by_pid[pids[pos]]
            ]
            splits.append(dict(train=train, query=query, gallery=gallery))
        return splits


def _find_index_vectors(value, length: int) -> List[List[int]]:
    """Every flat numeric list of ``length`` in a nested mat4py value."""
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        flat = [
            v[0] if isinstance(v, list) and len(v) == 1 else v for v in value
        ]
        if len(flat) == length and all(
                isinstance(v, (int, float)) for v in flat):
            return [flat]
        found = []
        for item in value:
            found.extend(_find_index_vectors(item, length))
        return found
    return []


def check_grid_partition(train_ids: List, index: int, path: str,
                         num_ids: int) -> None:
    """Refuse a GRID partition that is not distinct ids in 1..num_ids.

    The official ids are 1-based, and pid 0 in the file names is the
    distractor: a 0-based copy of the file would train on the distractors
    and test on one id of the training half, which the split sizes catch
    only as a query count that is one off.

    Args:
        train_ids (list): The partition's training ids.
        index (int): Its 0-based position, for the message.
        path (str): The file, for the message.
        num_ids (int): The number of identities (ids 1..num_ids).

    Raises:
        ValueError: An id that is not an integer in 1..num_ids (a
            fraction is not truncated), or a repeated one.
    """
    bad = [i for i in train_ids if i != int(i) or not 1 <= i <= num_ids]
    repeated = sorted(i for i, n in Counter(train_ids).items() if n > 1)
    if bad or repeated:
        what = (f'ids that are not integers in 1..{num_ids} {bad[:5]}'
                if bad else f'repeated ids {repeated[:5]}')
        raise ValueError(
            f'{path}: trainIdxAll partition {index} has {what}; GRID\'s '
            f'official partitions hold {len(train_ids)} distinct 1-based '
            'ids (pid 0 is the distractor)')


def load_grid_partitions(path: str,
                         num_train_ids: int = 125,
                         num_ids: int = 250) -> List[List[int]]:
    """The ten official GRID partitions (training ids, 1-based).

    Reads ``trainIdxAll`` of ``features_and_partitions.mat`` with
    ``mat4py``: ten entries, each holding one vector of 125 training ids
    (in the release, the third field of a struct), each checked by
    :func:`check_grid_partition`.

    Args:
        path: Path of ``features_and_partitions.mat``.
        num_train_ids: Length of each vector.
        num_ids: The number of identities (ids 1..num_ids).

    Returns:
        list[list[int]]: Ten lists of training ids.
    """
    data = load_mat(path, ['trainIdxAll'], 'GRID partitions')
    entries = data['trainIdxAll']
    if isinstance(entries, dict):  # a struct array: field -> values
        entries = [
            dict(zip(entries, values)) for values in zip(*entries.values())
        ]
    while isinstance(entries, list) and len(entries) == 1:
        entries = entries[0]
    partitions = []
    for entry in entries:
        if isinstance(entry, dict):
            # The release's struct has the training ids in its third
            # field (torchreid reads ``[0][0][2]``); prefer a field named
            # like it, then that position.
            names = [k for k in entry if 'train' in k.lower()]
            if not names and len(entry) >= 3:
                names = [list(entry)[2]]
            if names:
                entry = entry[names[0]]
        vectors = _find_index_vectors(entry, num_train_ids)
        if len(vectors) != 1:
            raise ValueError(f'{path}: cannot find one vector of '
                             f'{num_train_ids} training ids in a '
                             'trainIdxAll entry')
        check_grid_partition(vectors[0], len(partitions), path, num_ids)
        partitions.append([int(i) for i in vectors[0]])
    if len(partitions) != NUM_SPLITS:
        raise ValueError(f'{path}: trainIdxAll has {len(partitions)} '
                         f'partitions, expected {NUM_SPLITS}')
    return partitions


@DATASETS.register_module()
class GRID(SplitReIDDataset):
    """GRID (Loy et al., 2010), a DG target with ten official partitions.

    ``underground_reid/probe/*.jpeg`` (250) and ``gallery/*.jpeg``
    (1,025 = 250 + 775 distractors); name ``<pid:04d>_<camera>_...jpeg``,
    pid 0 = distractor (kept in every gallery), camid = camera - 1
    (cameras 1..8; any other number raises, naming the file). A
    partition of ``features_and_partitions.mat`` lists 125 training ids;
    the other 125 are the test ids: query = their probes (125), gallery =
    their gallery images plus the 775 distractors (900).

    Args:
        data_root (str): The folder holding ``underground_reid/``.
        assign_camids (bool): Give probes camid 0 and gallery images camid
            1 instead of the file's camera (if a probe shares a camera with
            its true match, the Market rule would remove the match).
        **kwargs: See :class:`SplitReIDDataset`.
    """

    METAINFO = dict(dataset_name='grid')
    KEY_ROOT = 'underground_reid'
    SPLIT_SIZES = dict(query=125, gallery=900)
    SPLIT_IDS = dict(gallery=126)  # 125 + the distractor pid 0
    COUNTS_VERIFIED = False
    DISTRACTOR_PID = 0
    NUM_IDS = 250
    REQUIRED_PATHS = ('underground_reid/probe', 'underground_reid/gallery',
                      'underground_reid/features_and_partitions.mat')
    LAYOUT = ('data/grid/\n'
              '  underground_reid/\n'
              '    probe/     0001_1_25004_107_32_130_364.jpeg ... (250)\n'
              '    gallery/   0000_...jpeg, 0001_...jpeg ... (1,025)\n'
              '    features_and_partitions.mat')
    NAME_PATTERN = re.compile(r'^(\d{4})_(\d+)_.*\.jpeg$', re.ASCII)
    #: GRID's eight camera views, numbered 1..8 in the file names.
    NUM_CAMS = 8

    def __init__(self,
                 data_root: str,
                 split: str = 'test',
                 assign_camids: bool = False,
                 **kwargs) -> None:
        if assign_camids:
            self.ASSIGNED_CAMIDS = dict(query=0, gallery=1)
        super().__init__(data_root, split=split, **kwargs)

    def scan(self) -> Dict[str, dict]:
        images = {}
        for folder in ('probe', 'gallery'):
            root = osp.join(self.data_root, 'underground_reid', folder)
            for name in list_images(root):
                path = osp.join(root, name)
                match = self.parse_name(self.NAME_PATTERN, path)
                cam = int(match.group(2))
                if not 1 <= cam <= self.NUM_CAMS:
                    raise ValueError(
                        f'GRID cameras are 1..{self.NUM_CAMS}, got camera '
                        f'{match.group(2)!r} in {path!r}')
                images[f'{folder}/{name}'] = dict(
                    img_path=path, pid=int(match.group(1)), camid=cam - 1)
        return images

    def load_splits(self, images: Dict[str, dict]) -> List[dict]:
        path = self.split_file or osp.join(self.data_root, 'underground_reid',
                                           'features_and_partitions.mat')
        partitions = load_grid_partitions(path, num_ids=self.NUM_IDS)
        splits = []
        for train_ids in partitions:
            train_ids = set(train_ids)
            members = dict(train=[], query=[], gallery=[])
            for key, record in images.items():
                pid = record['pid']
                if pid in train_ids:
                    members['train'].append(key)
                elif key.startswith('probe/'):
                    if pid != self.DISTRACTOR_PID:
                        members['query'].append(key)
                else:
                    members['gallery'].append(key)
            splits.append(members)
        return splits
