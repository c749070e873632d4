import os
import os.path as osp
import re
from typing import Dict, List, Optional, Sequence, Set

from mmreid.registry import DATASETS
from mmreid.utils.checkpoint import _names
from .base_reid_dataset import (BaseReIDDataset, DatasetLayoutError,
                                check_link, claim_folder, list_images,
                                read_list_file)
from .dataset_options import own_metainfo


def resolve_archive_root(data_root: str, archive: str, marker: str) -> str:
    """Accept the dataset folder itself or the folder that holds it.

    Args:
        data_root (str): The folder given in the config.
        archive (str): Name of the dataset folder in the official archive
            (``'SYSU-MM01'``).
        marker (str): A path that exists under the dataset folder
            (``'exp'``).

    Returns:
        str: ``data_root/archive`` when ``data_root`` lacks ``marker`` but
        ``data_root/archive`` has it, else ``data_root`` unchanged (the
        layout check then reports what is missing).
    """
    if data_root and not osp.exists(osp.join(data_root, marker)) and \
            osp.exists(osp.join(data_root, archive, marker)):
        return osp.join(data_root, archive)
    return data_root


def read_id_list(path: str) -> List[int]:
    """Read a comma-separated id file (``exp/test_id.txt``).

    The official files hold one line such as ``1,2,4,5``; line breaks,
    spaces and a trailing comma are tolerated.

    Args:
        path (str): The id file.

    Returns:
        list[int]: The ids, in file order.

    Raises:
        ValueError: The file is empty or holds something other than
            comma-separated integers; the message names the file.
    """
    text = read_list_file(path)
    tokens = [t.strip() for t in re.split(r'[,\s]+', text) if t.strip()]
    # ASCII only: str.isdigit also takes '٣' (read as 3) and '²'.
    bad = [t for t in tokens if not (t.isascii() and t.isdigit())]
    if bad:
        raise ValueError(f'{path}: expected comma-separated integer ids, '
                         f'found {bad[0]!r}')
    if not tokens:
        raise ValueError(f'{path}: no id found (expected one line of '
                         f'comma-separated ids such as "1,2,4")')
    ids = [int(t) for t in tokens]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f'{path}: ids listed twice: {dup}')
    return ids


@DATASETS.register_module()
class SYSUMM01(BaseReIDDataset):
    """SYSU-MM01 visible-infrared dataset (Wu et al., ICCV 2017).

    Six cameras: visible (RGB) cam1, cam2 (indoor), cam4, cam5 (outdoor);
    infrared cam3 (indoor, the location of cam2) and cam6 (outdoor). Images
    are ``cam<k>/<pid:04d>/<img:04d>.jpg``; camid (``k - 1``) and pid come
    from the folder names, modality from the camera (cams 1, 2, 4, 5 -> 0,
    cams 3, 6 -> 1).

    * ``split='train'``: every image, of both modalities, of the ids in
      ``exp/train_id.txt`` and ``exp/val_id.txt`` (296 + 99 = 395 ids,
      relabelled ``0..394`` in sorted order).
    * ``split='test'``: the query is every infrared image (cams 3, 6) of the
      ids in ``exp/test_id.txt``, for both modes; the gallery is every
      visible image of the test ids from cams 1, 2, 4, 5 (``mode='all'``)
      or cams 1, 2 (``mode='indoor'``). Order: sorted pid, then camera,
      then file name.

    The gallery is the full *pool* of candidates. The protocol's
    single-shot/multi-shot gallery of each trial (one or ten images per
    identity and camera, seeded or official draws) is sampled from it by
    the evaluation, not here; so is the rule that cam3 queries skip cam2.
    The test metainfo names that evaluation (``protocol_metric=
    'SYSUMetric'``); other metrics refuse the pool.

    Published counts: train 395 ids, 34,167 images (22,258 visible +
    11,909 infrared, as AGW prints them), 6 cameras; query 96 ids, 3,803
    infrared images, 2 cameras; gallery pool 96 ids, 6,775 images, 4
    cameras (``mode='all'``) or 56 ids, 2,939 images, 2 cameras
    (``'indoor'``). The test counts are those of the official
    ``rand_perm_cam.mat`` (its permutations have one entry per image of
    each id and camera) and give the known single-shot galleries of 301
    (all) and 112 (indoor) images.

    Args:
        data_root (str): The ``SYSU-MM01`` folder or its parent.
        split (str): ``'train'`` or ``'test'`` (query then gallery).
        mode (str): ``'all'`` (all-search) or ``'indoor'`` (indoor-search);
            only changes the test gallery. Stored in the metainfo and, for
            the test split, in the dataset name (``sysu-mm01-indoor``).
        **kwargs: See :class:`BaseReIDDataset`.
    """

    METAINFO = dict(dataset_name='sysu-mm01')
    #: Cameras 3 and 6 are infrared: a record without ``modality`` is
    #: refused (:meth:`BaseReIDDataset.declared_modalities`).
    MODALITIES = dict(visible=0, infrared=1)
    #: mode -> role -> published counts (see the class docstring).
    #: specs/datasets.md §3.6 tags the training images and the 3,803
    #: queries [unverified]: those only warn. (The pool counts, read off
    #: the official rand_perm_cam.mat, are not in the spec.)
    MODE_COUNTS = dict(
        all=dict(
            train=dict(
                ids=395, images=34167, cams=6, verified=('ids', 'cams')),
            query=dict(ids=96, images=3803, cams=2, verified=('ids', 'cams')),
            gallery=dict(ids=96, images=6775, cams=4, verified=True)),
        indoor=dict(
            train=dict(
                ids=395, images=34167, cams=6, verified=('ids', 'cams')),
            query=dict(ids=96, images=3803, cams=2, verified=('ids', 'cams')),
            gallery=dict(ids=56, images=2939, cams=2, verified=True)))
    ARCHIVE_FOLDER = 'SYSU-MM01'
    ID_FILES = dict(
        train=('exp/train_id.txt', 'exp/val_id.txt'),
        test=('exp/test_id.txt', ))
    REQUIRED_PATHS = ('exp/train_id.txt', 'exp/val_id.txt', 'exp/test_id.txt')
    VISIBLE_CAMS = (1, 2, 4, 5)
    INFRARED_CAMS = (3, 6)
    #: mode -> gallery cameras, in the order the reference code visits them.
    GALLERY_CAMS = dict(all=(1, 2, 4, 5), indoor=(1, 2))
    LAYOUT = ('data/sysu-mm01/SYSU-MM01/\n'
              '  cam1/0001/0001.jpg ...   (cam1, cam2, cam4, cam5: visible)\n'
              '  cam2/ cam3/ cam4/ cam5/ cam6/   (cam3, cam6: infrared)\n'
              '  exp/train_id.txt exp/val_id.txt exp/test_id.txt\n'
              '      (one line of comma-separated ids each, e.g. "1,2,4")\n'
              '(data_root: SYSU-MM01 itself or its parent)')
    CAM_PATTERN = re.compile(r'^cam(\d+)$', re.ASCII)
    PID_PATTERN = re.compile(r'^(\d+)$', re.ASCII)
    NAME_PATTERN = re.compile(r'^\d+\.(jpg|jpeg|png|bmp)$',
                              re.ASCII | re.IGNORECASE)

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 mode: str = 'all',
                 **kwargs) -> None:
        if mode not in self.GALLERY_CAMS:
            raise ValueError(f'SYSU-MM01 mode must be "all" or "indoor", '
                             f'got {mode!r}')
        self.mode = mode
        data_root = resolve_archive_root(data_root, self.ARCHIVE_FOLDER, 'exp')
        name = 'sysu-mm01' if split == 'train' else f'sysu-mm01-{mode}'
        metainfo = dict(dataset_name=name, mode=mode)
        if split == 'test':
            # The gallery is the pool of the trials: SYSUMetric's protocol.
            metainfo['protocol_metric'] = 'SYSUMetric'
        metainfo = own_metainfo(
            type(self).__name__, metainfo, kwargs.pop('metainfo', None))
        self._cam_dirs: Optional[Dict[int, str]] = None
        super().__init__(data_root, split=split, metainfo=metainfo, **kwargs)

    def published_counts(self) -> Optional[Dict[str, dict]]:
        return self.MODE_COUNTS[self.mode]

    @staticmethod
    def cam_modality(cam: int) -> int:
        """Modality of a 1-based SYSU-MM01 camera (0 visible, 1 IR)."""
        if cam in SYSUMM01.INFRARED_CAMS:
            return 1
        if cam in SYSUMM01.VISIBLE_CAMS:
            return 0
        raise ValueError(f'SYSU-MM01 cameras are 1..6, got {cam}')

    def load_data_list(self) -> List[dict]:
        self.check_layout()
        self.check_disjoint_id_files()
        try:
            return super().load_data_list()
        finally:
            self._cam_dirs = None

    def check_disjoint_id_files(self) -> None:
        """Refuse an id listed in a training id file and the test id file.

        The test split would then hold images of identities the model was
        trained on, and its numbers would be inflated.

        Raises:
            ValueError: Names both files and the shared ids.
        """
        for train_rel in self.ID_FILES['train']:
            train_path = osp.join(self.data_root, train_rel)
            for test_rel in self.ID_FILES['test']:
                test_path = osp.join(self.data_root, test_rel)
                shared = sorted(
                    set(read_id_list(train_path))
                    & set(read_id_list(test_path)))
                if shared:
                    raise ValueError(
                        f'SYSU-MM01: {train_path} and {test_path} share '
                        f'{len(shared)} id(s): '
                        f'{_names([str(i) for i in shared])}. A training '
                        'id in the test split would be tested on after '
                        'being trained on; the official files are '
                        'disjoint (296 train + 99 val, 96 test ids)')

    def camera_folders(self) -> Dict[int, str]:
        """Map 1-based camera number -> ``cam<k>`` folder, found by regex."""
        if self._cam_dirs is None:
            cams = {}
            for name in sorted(os.listdir(self.data_root)):
                match = self.CAM_PATTERN.match(name)
                if match:
                    check_link(osp.join(self.data_root, name))
                if match and osp.isdir(osp.join(self.data_root, name)):
                    cam = int(match.group(1))
                    self.cam_modality(cam)  # raises on cam0, cam7, ...
                    claim_folder(cams, cam, osp.join(self.data_root, name),
                                 f'SYSU-MM01 camera {cam}')
            if not cams:
                raise DatasetLayoutError(
                    f'SYSU-MM01: no cam1..cam6 folder under data_root='
                    f'{self.data_root!r}. Expected layout:\n{self.LAYOUT}')
            self._cam_dirs = cams
        return self._cam_dirs

    def read_ids(self, split: str) -> Set[int]:
        """Ids of a split (``'train'`` is train + val)."""
        ids: Set[int] = set()
        for rel in self.ID_FILES[split]:
            ids.update(read_id_list(osp.join(self.data_root, rel)))
        return ids

    def parse_split(self, role: str) -> List[dict]:
        if role == 'train':
            pids = self.read_ids('train')
            cams: Sequence[int] = self.VISIBLE_CAMS + self.INFRARED_CAMS
        else:
            pids = self.read_ids('test')
            cams = (
                self.INFRARED_CAMS
                if role == 'query' else self.GALLERY_CAMS[self.mode])
        folders = self.camera_folders()
        # pid -> camera -> folder, from the folder names (never offsets).
        pid_dirs: Dict[int, Dict[int, str]] = {}
        for cam in sorted(set(cams) & set(folders)):
            for name in sorted(os.listdir(folders[cam])):
                folder = osp.join(folders[cam], name)
                if not osp.isdir(folder):
                    check_link(folder)
                    continue
                match = self.PID_PATTERN.match(name)
                if match is None:
                    raise ValueError(
                        f'SYSU-MM01: cannot parse the identity folder '
                        f'{folder!r}: expected a name such as "0001"')
                pid = int(match.group(1))
                if pid in pids:
                    claim_folder(
                        pid_dirs.setdefault(pid, {}), cam, folder,
                        f'SYSU-MM01 identity {pid} of camera {cam}')
        records = []
        for pid in sorted(pid_dirs):
            for cam in cams:
                folder = pid_dirs[pid].get(cam)
                if folder is None:
                    continue
                numbers = {}
                for name in list_images(folder):
                    path = osp.join(folder, name)
                    self.parse_name(self.NAME_PATTERN, path)
                    # The official draws (rand_perm_cam.mat) name an image
                    # by its number: 0001.jpg and 0001.png (or 1.jpg) are
                    # one image, which would be counted and scored twice.
                    number = int(name.split('.')[0])
                    if number in numbers:
                        raise ValueError(
                            f'SYSU-MM01: {path!r} and '
                            f'{osp.join(folder, numbers[number])!r} are both '
                            f'image {number:04d} of identity {pid:04d} in '
                            f'cam{cam}: an image is cam<k>/<pid>/<number>'
                            '.jpg; keep one file per number')
                    numbers[number] = name
                    records.append(
                        dict(
                            img_path=path,
                            pid=pid,
                            camid=cam - 1,
                            modality=self.cam_modality(cam)))
        return records
