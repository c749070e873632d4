import os.path as osp
import re
from typing import Dict, List, Optional, Set, Tuple

from mmreid.registry import DATASETS
from .base_reid_dataset import (BaseReIDDataset, DatasetLayoutError,
                                check_link, list_folder, read_list_file)
from .dataset_options import own_metainfo


@DATASETS.register_module()
class MSMT17(BaseReIDDataset):
    """MSMT17 V1 and V2 (Wei et al., CVPR 2018).

    Images and labels come from the list files, one ``<relative path> <pid>``
    per line, paths relative to the train or test image folder. The training
    split is ``list_train.txt`` plus ``list_val.txt`` (1,041 ids, 32,621 =
    30,248 + 2,373 images; the mmreid protocol); ``with_val=False`` trains
    on ``list_train.txt`` only (30,248 images), as fast-reid and torchreid
    do by default. The test split lists ``list_query.txt`` (3,060 ids,
    11,659 images) then ``list_gallery.txt`` (3,060 ids, 82,161 images);
    15 cameras in every split. camid is the third
    ``_``-separated field of the file name
    (``0000_000_01_0303morning_0015_0.jpg`` -> camera 01 -> camid 0),
    cameras 1..15.

    Train and test labels both start at 0, so the same integer names
    different people in the two splits; they are never merged here.

    ``version`` is required and is checked against the layout (``train/``
    + ``test/`` is V1, ``mask_train_v2/`` + ``mask_test_v2/`` is V2, the
    face-masked release): V1 and V2 results differ, so the version a result
    belongs to is what the config says, never what a folder suggests.
    ``data_root`` may be the ``MSMT17_V1``/``MSMT17_V2`` folder itself or
    its parent. The version is stored in the metainfo and in the dataset
    name (``msmt17-v2``).

    Args:
        data_root (str): The ``MSMT17_V1``/``MSMT17_V2`` folder or its
            parent.
        split (str): ``'train'`` or ``'test'`` (query then gallery).
        version (str): ``'V1'`` or ``'V2'`` (case-insensitive); it must
            match the layout under ``data_root``.
        with_val (bool): Train on ``list_train.txt`` + ``list_val.txt``
            (True, the default) or on ``list_train.txt`` only (False, the
            peers' default). Stored in the metainfo.
        **kwargs: See :class:`BaseReIDDataset`.
    """

    METAINFO = dict(dataset_name='msmt17')
    #: version -> (train image folder, test image folder).
    IMAGE_FOLDERS = dict(
        V1=('train', 'test'), V2=('mask_train_v2', 'mask_test_v2'))
    #: version -> folder name in the official archive.
    ARCHIVE_FOLDERS = dict(V1='MSMT17_V1', V2='MSMT17_V2')
    LISTS = dict(
        train=('list_train.txt', 'list_val.txt'),
        query=('list_query.txt', ),
        gallery=('list_gallery.txt', ))
    LAYOUT = ('data/msmt17/MSMT17_V1/        data/msmt17/MSMT17_V2/\n'
              '  train/<pid:04d>/<file>.jpg    mask_train_v2/<pid:04d>/'
              '<file>.jpg\n'
              '  test/<pid:04d>/<file>.jpg     mask_test_v2/<pid:04d>/'
              '<file>.jpg\n'
              '  list_train.txt list_val.txt   list_train.txt list_val.txt\n'
              '  list_query.txt list_gallery.txt (same names in V2)\n'
              'list line: "0000/0000_000_01_0303morning_0015_0.jpg 0"\n'
              '(data_root: MSMT17_V1/MSMT17_V2 itself or their parent)')
    #: The camera is the third ``_``-separated field of the file name.
    NAME_PATTERN = re.compile(r'^\d+_\d+_(\d+)_[^/]*\.jpg$', re.ASCII)
    NUM_CAMS = 15
    #: Verified: the numbers specs/datasets.md §1 and §2.3 do not tag
    #: [unverified] (not the 15 cameras, train images, test ids).
    PUBLISHED_COUNTS = dict(
        train=dict(ids=1041, images=32621, cams=15, verified=('ids', )),
        query=dict(ids=3060, images=11659, cams=15, verified=('images', )),
        gallery=dict(ids=3060, images=82161, cams=15, verified=('images', )))
    #: Images of ``list_train.txt`` alone (``with_val=False``).
    TRAIN_ONLY_IMAGES = 30248

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 version: Optional[str] = None,
                 with_val: bool = True,
                 **kwargs) -> None:
        if not isinstance(with_val, bool):
            raise TypeError(f'MSMT17 with_val must be True or False, got '
                            f'{with_val!r}')
        data_root, version = self.detect_version(data_root, version)
        self.version = version
        self.with_val = with_val
        train_dir, test_dir = self.IMAGE_FOLDERS[version]
        self.REQUIRED_PATHS = (train_dir, test_dir) + sum(
            self.LISTS.values(), ())
        self._listings: Dict[str, Set[str]] = {}
        metainfo = own_metainfo(
            type(self).__name__,
            dict(
                dataset_name=f'msmt17-{version.lower()}',
                version=version,
                with_val=with_val), kwargs.pop('metainfo', None))
        super().__init__(data_root, split=split, metainfo=metainfo, **kwargs)

    @classmethod
    def detect_version(cls, data_root: str,
                       version: Optional[str]) -> Tuple[str, str]:
        """Find the image folders of the version asked for.

        Args:
            data_root (str): The folder given in the config.
            version (str): The version asked for; ``None`` is refused with
                the layout found.

        Returns:
            tuple[str, str]: The folder holding the image folders and the
            version (``'V1'`` or ``'V2'``).
        """
        if version is not None:
            if str(version).upper() not in cls.IMAGE_FOLDERS:
                raise ValueError(f'MSMT17 version must be "V1" or "V2", got '
                                 f'{version!r}')
            version = str(version).upper()

        def versions_in(folder: str) -> List[str]:
            return [
                v for v, dirs in cls.IMAGE_FOLDERS.items() if all(
                    osp.isdir(osp.join(folder, d)) for d in dirs)
            ]

        candidates = [(data_root, v) for v in versions_in(data_root or '.')]
        if not candidates and data_root:
            for v, name in cls.ARCHIVE_FOLDERS.items():
                if v in versions_in(osp.join(data_root, name)):
                    candidates.append((osp.join(data_root, name), v))
        if not candidates:
            raise DatasetLayoutError(
                f'MSMT17: no V1 (train/, test/) or V2 (mask_train_v2/, '
                f'mask_test_v2/) image folders under data_root='
                f'{data_root!r}. Expected layout:\n{cls.LAYOUT}')
        found = [v for _, v in candidates]
        if version is None:
            raise ValueError(
                f'MSMT17: version is required ("V1" or "V2"; V1 and V2 '
                f'results differ, so a result must name its version); '
                f'data_root={data_root!r} holds {" and ".join(found)}: '
                f'add version={found[0]!r} to the dataset config (by name '
                f'in sources=[...]: dict(type="MSMT17", '
                f'version={found[0]!r}))')
        for root, v in candidates:
            if v == version:
                return root, v
        raise ValueError(
            f'MSMT17: version={version!r} was asked for but data_root='
            f'{data_root!r} has the {" and ".join(found)} layout '
            f'({", ".join(cls.IMAGE_FOLDERS[found[0]])}/)')

    def published_counts(self) -> Dict[str, dict]:
        counts = dict(self.PUBLISHED_COUNTS)
        if not self.with_val:
            counts['train'] = dict(
                counts['train'], images=self.TRAIN_ONLY_IMAGES)
        return counts

    def load_data_list(self) -> List[dict]:
        try:
            return super().load_data_list()
        finally:
            self._listings.clear()

    def parse_split(self, role: str) -> List[dict]:
        train_dir, test_dir = self.IMAGE_FOLDERS[self.version]
        image_dir = osp.join(self.data_root,
                             train_dir if role == 'train' else test_dir)
        lists = self.LISTS[role]
        if role == 'train' and not self.with_val:
            lists = lists[:1]
        records = []
        for list_name in lists:
            records.extend(
                self.parse_list(
                    osp.join(self.data_root, list_name), image_dir))
        return records

    def parse_list(self, list_path: str, image_dir: str) -> List[dict]:
        """Parse one list file.

        Args:
            list_path (str): A ``list_*.txt`` file.
            image_dir (str): The folder its paths are relative to.

        Returns:
            list[dict]: One record per line, with the list's pid.
        """
        records = []
        lines = read_list_file(list_path).splitlines()
        for lineno, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            fields = line.split()
            # ASCII only: str.isdigit also takes '٣' (read as 3).
            if len(fields) != 2 or not (fields[1].isascii()
                                        and fields[1].isdigit()):
                raise ValueError(
                    f'{list_path}, line {lineno}: expected '
                    f'"<relative path> <pid>", got {line.rstrip()!r}')
            path = osp.join(image_dir, fields[0])
            if not self._exists(path):
                check_link(path, f', listed in {list_path} line {lineno},')
                raise FileNotFoundError(
                    f'{path!r}, listed in {list_path} line {lineno}, '
                    f'does not exist')
            match = self.parse_name(self.NAME_PATTERN, path)
            cam = int(match.group(1))
            if not 1 <= cam <= self.NUM_CAMS:
                raise ValueError(f'MSMT17 cameras are 1..{self.NUM_CAMS}'
                                 f', got {cam} in {path!r}')
            records.append(
                dict(img_path=path, pid=int(fields[1]), camid=cam - 1))
        return records

    def _exists(self, path: str) -> bool:
        # One listdir per pid folder instead of one stat per image (~126k).
        folder, name = osp.split(path)
        if folder not in self._listings:
            self._listings[folder] = list_folder(folder)
        return name in self._listings[folder]
