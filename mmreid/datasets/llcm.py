import os
import os.path as osp
import re
from typing import Dict, List, Set

from mmreid.registry import DATASETS
from mmreid.utils.checkpoint import _names
from .base_reid_dataset import (BaseReIDDataset, DatasetLayoutError,
                                check_link, claim_folder, list_images,
                                read_list_file)
from .dataset_options import own_metainfo
from .regdb import read_idx_file
from .sysu_mm01 import read_id_list, resolve_archive_root


@DATASETS.register_module()
class LLCM(BaseReIDDataset):
    """LLCM low-light cross-modality dataset (Zhang and Wang, CVPR 2023).

    1,064 identities seen by 9 cameras, each recording visible (VIS) and
    near-infrared (NIR) images. The VIS and NIR images of camera K come from
    the same physical camera, so both get camid ``K - 1`` (the LLCM
    protocol removes gallery items with the query's pid *and* camid); a
    camera outside 1..9 raises, naming the path.
    Modality: ``vis`` -> 0, ``nir`` -> 1.

    * ``split='train'``: the images listed in ``idx/train_vis.txt`` and
      ``idx/train_nir.txt`` (``<path relative to data_root> <label>``, the
      label is the pid; 713 ids, relabelled in sorted order). Modality
      comes from the list; a ``vis``/``nir`` tag in the path must agree.
      camid comes from a ``cam<K>`` folder in the path or, failing that,
      from the ``_c<K>_`` field of the file name
      (``0001_c01_s185535_f7010_nir.jpg``).
    * ``split='test'``: the ids of ``idx/test_id.txt`` (one line of
      comma-separated ids), images ``test_vis/cam<K>/<pid:04d>/*`` and
      ``test_nir/cam<K>/<pid:04d>/*``. ``direction='ir2vis'`` (the
      default): query = every NIR image, gallery = every VIS image;
      ``'vis2ir'``: the reverse. Order: sorted pid, camera, file name.
      A test image whose name starts with a pid and camera, as the
      training lists' names do (``0003_c01_s185734_f3195_nir.jpg``), must
      agree with its folders, or it is refused; other names are read from
      the folders alone (the test images' naming is not documented).

    The gallery is the full *pool*. The protocol's per-trial single-shot
    gallery (one image per identity and camera, ``random.seed(trial)``) and
    the reference's transposed VIS->IR evaluation (the sampled NIR images
    become the probes) belong to the evaluation, not to this parser. The
    test metainfo names that evaluation (``protocol_metric='LLCMMetric'``);
    other metrics refuse the pool.

    Published counts (the paper's 46,767 boxes): train 713 ids, 30,921
    images (16,946 VIS + 13,975 NIR), 9 cameras; test 8,680 VIS and 7,166
    NIR images of 351 ids. The per-modality numbers are not confirmed, so
    ``verify_dataset.py`` only warns about them.

    Args:
        data_root (str): The ``LLCM`` folder or its parent.
        split (str): ``'train'`` or ``'test'`` (query then gallery).
        direction (str): ``'ir2vis'`` (IR->VIS, NIR query) or ``'vis2ir'``
            (VIS->IR, VIS query); ``'i2v'``/``'v2i'`` are accepted as
            aliases. Stored in the test dataset name (``llcm-vis2ir``).
        **kwargs: See :class:`BaseReIDDataset`.
    """

    METAINFO = dict(dataset_name='llcm')
    #: The 713 train ids are confirmed (specs/datasets.md §3.8, reference
    #: code); the images and cameras per split are not.
    TRAIN_COUNTS = dict(ids=713, images=30921, cams=9, verified=('ids', ))
    #: Test images per modality.
    TEST_IMAGES = dict(vis=8680, nir=7166)
    ARCHIVE_FOLDER = 'LLCM'
    DIRECTIONS = dict(
        ir2vis='ir2vis', vis2ir='vis2ir', i2v='ir2vis', v2i='vis2ir')
    MODALITIES = dict(vis=0, nir=1)
    TRAIN_LISTS = dict(vis='idx/train_vis.txt', nir='idx/train_nir.txt')
    TEST_ID_FILE = 'idx/test_id.txt'
    TEST_FOLDERS = dict(vis='test_vis', nir='test_nir')
    LAYOUT = ('data/llcm/LLCM/\n'
              '  idx/train_vis.txt idx/train_nir.txt   (<relative_path> '
              '<label>)\n'
              '  idx/test_id.txt                       (one line of '
              'comma-separated ids)\n'
              '  test_vis/cam{1..9}/<pid:04d>/<img>\n'
              '  test_nir/cam{1,2,4,5,6,7,8,9}/<pid:04d>/<img>   (no NIR '
              'cam3)\n'
              '  (training image folders as referenced by the idx files)\n'
              '(data_root: LLCM itself or its parent)')
    #: Cameras are numbered 1..NUM_CAMS (``cam<K>``, ``_c<K>_``).
    NUM_CAMS = 9
    CAM_DIR_PATTERN = re.compile(r'^cam(\d+)$', re.ASCII)
    CAM_NAME_PATTERN = re.compile(r'(?:^|_)c(\d+)_', re.ASCII)
    PID_PATTERN = re.compile(r'^(\d+)$', re.ASCII)
    #: A test image name: ``<pid>_c<K>_...`` (``0003_c01_s185734_f3195_nir``).
    TEST_NAME_PATTERN = re.compile(r'^(\d+)_c(\d+)_', re.ASCII)
    #: ``vis``/``nir`` as a word of the path (``test_nir/``, ``_vis.jpg``).
    MODALITY_TAG = re.compile(r'(?<![a-z])(vis|nir)(?![a-z])')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 direction: str = 'ir2vis',
                 **kwargs) -> None:
        if direction not in self.DIRECTIONS:
            raise ValueError(f'LLCM direction must be "ir2vis" (or "i2v") '
                             f'or "vis2ir" (or "v2i"), got {direction!r}')
        self.direction = self.DIRECTIONS[direction]
        data_root = resolve_archive_root(data_root, self.ARCHIVE_FOLDER, 'idx')
        if split == 'train':
            self.REQUIRED_PATHS = tuple(self.TRAIN_LISTS.values())
        else:
            self.REQUIRED_PATHS = (self.TEST_ID_FILE, ) + tuple(
                self.TEST_FOLDERS.values())
        self._listings: Dict[str, Set[str]] = {}
        name = 'llcm' if split == 'train' else f'llcm-{self.direction}'
        metainfo = dict(dataset_name=name, direction=self.direction)
        if split == 'test':
            # The gallery is the pool of the trials: LLCMMetric's protocol.
            metainfo['protocol_metric'] = 'LLCMMetric'
        metainfo = own_metainfo(
            type(self).__name__, metainfo, kwargs.pop('metainfo', None))
        super().__init__(data_root, split=split, metainfo=metainfo, **kwargs)

    def published_counts(self) -> Dict[str, dict]:
        query = 'nir' if self.direction == 'ir2vis' else 'vis'
        gallery = 'vis' if query == 'nir' else 'nir'
        return dict(
            train=self.TRAIN_COUNTS,
            query=dict(images=self.TEST_IMAGES[query], verified=False),
            gallery=dict(images=self.TEST_IMAGES[gallery], verified=False))

    def load_data_list(self) -> List[dict]:
        self.check_layout()
        self.check_no_test_image_in_train()
        try:
            return super().load_data_list()
        finally:
            self._listings.clear()

    def check_no_test_image_in_train(self) -> None:
        """Refuse a training idx line that lists a test image: one the
        test split reads (``test_vis/`` or ``test_nir/``, ``cam<K>/<pid>/``
        with ``pid`` in ``idx/test_id.txt``). The model would be tested on
        images it trained on.

        The training labels are not compared with the test ids: nothing
        says they are numbered alike. Each file is read when present
        (paths only; the split being loaded checks its own lines).

        Raises:
            ValueError: Names the idx file, ``test_id.txt`` and the test
                images it lists.
        """
        id_path = osp.join(self.data_root, self.TEST_ID_FILE)
        if not osp.isfile(id_path):
            return
        test_ids = set(read_id_list(id_path))
        test_folders = set(self.TEST_FOLDERS.values())
        for rel in self.TRAIN_LISTS.values():
            path = osp.join(self.data_root, rel)
            if not osp.isfile(path):
                continue
            shared = []
            for line in read_list_file(path).splitlines():
                fields = line.split()
                if fields and self._is_test_image(fields[0], test_ids,
                                                  test_folders):
                    shared.append(fields[0])
            if shared:
                raise ValueError(
                    f'LLCM: {path} lists {len(shared)} test image(s) (in '
                    f'{" or ".join(sorted(test_folders))}, of ids in '
                    f'{id_path}): {_names(shared, 3)}. The test set would '
                    'hold images the model trained on; training images '
                    'must not be test images')

    def _is_test_image(self, rel_path: str, test_ids: Set[int],
                       test_folders: Set[str]) -> bool:
        """Whether ``rel_path`` is ``<test folder>/cam<K>/<pid>/<img>``
        with ``pid`` a test id."""
        parts = osp.normpath(rel_path).replace('\\', '/').split('/')
        return (len(parts) >= 4 and parts[0] in test_folders
                and self.CAM_DIR_PATTERN.match(parts[1]) is not None
                and self.PID_PATTERN.match(parts[2]) is not None
                and int(parts[2]) in test_ids)

    def camid_of(self, rel_path: str) -> int:
        """0-based camid of an image path (relative to ``data_root``).

        A ``cam<K>`` folder wins; otherwise the ``_c<K>_`` field of the
        file name. Both present must agree.
        """
        parts = rel_path.replace('\\', '/').split('/')
        dir_cams = {
            int(m.group(1))
            for m in map(self.CAM_DIR_PATTERN.match, parts[:-1]) if m
        }
        match = self.CAM_NAME_PATTERN.search(parts[-1])
        name_cam = int(match.group(1)) if match else None
        if len(dir_cams) > 1 or (dir_cams and name_cam is not None
                                 and name_cam not in dir_cams):
            raise ValueError(f'LLCM: conflicting cameras in {rel_path!r}')
        if dir_cams:
            cam = dir_cams.pop()
        elif name_cam is not None:
            cam = name_cam
        else:
            raise ValueError(
                f'LLCM: cannot find the camera of {rel_path!r}: expected a '
                f'"cam<K>" folder or a file name such as '
                f'"0001_c01_s185535_f7010_nir.jpg"')
        self.check_camera(cam, rel_path)
        return cam - 1

    def check_camera(self, cam: int, where: str) -> None:
        """Raise unless ``cam`` is one of LLCM's cameras, 1..9.

        Args:
            cam (int): The camera number read from ``where``.
            where (str): The path it was read from, for the message.
        """
        if not 1 <= cam <= self.NUM_CAMS:
            raise ValueError(f'LLCM cameras are 1..{self.NUM_CAMS}, got '
                             f'{cam} in {where!r}')

    def check_modality(self, rel_path: str, modality: str) -> None:
        """Raise if a ``vis``/``nir`` tag in the path contradicts it."""
        tags = set(self.MODALITY_TAG.findall(rel_path.lower()))
        if tags - {modality}:
            raise ValueError(f'LLCM: {rel_path!r} is listed as {modality} '
                             f'but its path says {sorted(tags)}')

    def check_test_name(self, path: str, pid: int) -> None:
        """Raise if a test image's name says it is another identity than
        its folder (``0011_c01_...`` in ``cam1/0030/``); :meth:`camid_of`
        compares the camera. A name without the ``<pid>_c<K>_`` start of
        the training lists' names says nothing and is accepted.

        Args:
            path (str): The image, in the identity folder of ``pid``.
            pid (int): The identity its folder names.

        Raises:
            ValueError: The name's pid is another identity's; names the
                file.
        """
        match = self.TEST_NAME_PATTERN.match(osp.basename(path))
        if match is not None and int(match.group(1)) != pid:
            raise ValueError(
                f'LLCM: {path!r} is named for pid {int(match.group(1))} but '
                f'is in the identity folder {osp.basename(osp.dirname(path))}'
                f' (pid {pid}): it would be scored as pid {pid}; move it to '
                'the folder of its identity')

    def parse_split(self, role: str) -> List[dict]:
        if role == 'train':
            return self.parse_train()
        query = 'nir' if self.direction == 'ir2vis' else 'vis'
        if role == 'query':
            return self.parse_test(query)
        return self.parse_test('vis' if query == 'nir' else 'nir')

    def parse_train(self) -> List[dict]:
        """Records of ``idx/train_vis.txt`` then ``idx/train_nir.txt``."""
        records = []
        for modality, rel in self.TRAIN_LISTS.items():
            path = osp.join(self.data_root, rel)
            for img_path, label in read_idx_file(path, self.data_root,
                                                 self._listings):
                rel_path = osp.relpath(img_path, self.data_root)
                try:
                    self.check_modality(rel_path, modality)
                    camid = self.camid_of(rel_path)
                except ValueError as e:
                    raise ValueError(f'{path}: {e}') from None
                records.append(
                    dict(
                        img_path=img_path,
                        pid=label,
                        camid=camid,
                        modality=self.MODALITIES[modality]))
        return records

    def parse_test(self, modality: str) -> List[dict]:
        """Every test image of one modality (``'vis'`` or ``'nir'``)."""
        pids = set(read_id_list(osp.join(self.data_root, self.TEST_ID_FILE)))
        root = osp.join(self.data_root, self.TEST_FOLDERS[modality])
        cams: Dict[int, str] = {}
        for name in os.listdir(root):
            match = self.CAM_DIR_PATTERN.match(name)
            if match:
                check_link(osp.join(root, name))
            if match and osp.isdir(osp.join(root, name)):
                # Checked here too: a cam10 folder is wrong even when it
                # holds no test identity.
                self.check_camera(int(match.group(1)), osp.join(root, name))
                claim_folder(cams, int(match.group(1)), osp.join(root, name),
                             f'LLCM camera {int(match.group(1))}')
        if not cams:
            raise DatasetLayoutError(
                f'LLCM: no cam<K> folder under {root!r}. Expected layout:\n'
                f'{self.LAYOUT}')
        by_pid: Dict[int, Dict[int, str]] = {}
        for cam in sorted(cams):
            for name in sorted(os.listdir(cams[cam])):
                folder = osp.join(cams[cam], name)
                if not osp.isdir(folder):
                    check_link(folder)
                    continue
                match = self.PID_PATTERN.match(name)
                if match is None:
                    raise ValueError(
                        f'LLCM: cannot parse the identity folder {folder!r}'
                        f': expected a name such as "0001"')
                pid = int(match.group(1))
                if pid in pids:
                    claim_folder(
                        by_pid.setdefault(pid, {}), cam, folder,
                        f'LLCM identity {pid} of camera {cam}')
        records = []
        for pid in sorted(by_pid):
            for cam, folder in sorted(by_pid[pid].items()):
                stems: Dict[str, str] = {}
                for name in list_images(folder):
                    path = osp.join(folder, name)
                    self.check_test_name(path, pid)
                    # x.jpg beside a converted x.png is one picture, which
                    # would be counted (and drawn from) twice.
                    stem = osp.splitext(name)[0]
                    if stem in stems:
                        raise ValueError(
                            f'LLCM: {path!r} and '
                            f'{osp.join(folder, stems[stem])!r} are one '
                            'image in two files (same name, other '
                            'extension): keep one')
                    stems[stem] = name
                    rel_path = osp.relpath(path, self.data_root)
                    self.check_modality(rel_path, modality)
                    records.append(
                        dict(
                            img_path=path,
                            pid=pid,
                            camid=self.camid_of(rel_path),
                            modality=self.MODALITIES[modality]))
        return records
