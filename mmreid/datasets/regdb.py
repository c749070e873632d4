import os
import os.path as osp
import re
from typing import Dict, List, Set, Tuple

from mmreid.registry import DATASETS
from mmreid.utils.checkpoint import _names
from .base_reid_dataset import (BaseReIDDataset, check_link, list_folder,
                                read_list_file)
from .dataset_options import own_metainfo
from .sysu_mm01 import resolve_archive_root

#: An idx label: a non-negative integer in ASCII digits.
LABEL_PATTERN = re.compile(r'[0-9]+')


def read_idx_file(path: str, root: str,
                  listings: Dict[str, Set[str]]) -> List[Tuple[str, int]]:
    """Parse an idx file of ``<relative_path> <label>`` lines.

    Args:
        path (str): The idx file.
        root (str): The folder its paths are relative to.
        listings (dict): Cache of folder listings (one ``listdir`` per
            folder instead of one ``stat`` per image).

    Returns:
        list[tuple[str, int]]: ``(absolute image path, label)`` per line,
        in file order; blank lines are skipped.

    Raises:
        ValueError: A line is not ``<relative_path> <label>`` with a
            non-negative integer label (RegDB and LLCM have no junk
            label).
        FileNotFoundError: A listed image does not exist or is a
            symbolic link to nothing.
    """
    items = []
    for lineno, line in enumerate(read_list_file(path).splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        # ASCII digits only: these lists have no junk label, so -1 is
        # as wrong as -3 (neither may be dropped nor kept as an id).
        if len(fields) != 2 or not LABEL_PATTERN.fullmatch(fields[1]):
            raise ValueError(f'{path}, line {lineno}: expected '
                             f'"<relative_path> <label>" with a '
                             f'non-negative integer label (no junk '
                             f'label), got {line.rstrip()!r}')
        img_path = osp.join(root, fields[0])
        folder, name = osp.split(img_path)
        if folder not in listings:
            listings[folder] = list_folder(folder)
        if name not in listings[folder]:
            check_link(img_path, f', listed in {path} line {lineno},')
            raise FileNotFoundError(f'{img_path!r}, listed in {path} '
                                    f'line {lineno}, does not exist')
        items.append((img_path, int(fields[1])))
    return items


@DATASETS.register_module()
class RegDB(BaseReIDDataset):
    """RegDB visible-thermal dataset (Nguyen et al., Sensors 2017).

    412 identities, each with 10 visible and 10 thermal images from one
    dual camera. The ten 206/206 identity splits (trials 1..10) come from
    the idx files distributed with the AGW code, lines
    ``<path relative to data_root> <label>``; the label is the pid.
    Modality and camid come from the idx file: visible 0, thermal 1 (the
    protocol removes nothing from the gallery).

    * ``split='train'``: ``train_visible_{trial}`` + ``train_thermal_{trial}``
      (206 ids, relabelled in sorted order).
    * ``split='test'``: the full test sets, no sampling. ``direction='v2t'``
      (the default): query = ``test_visible_{trial}``, gallery =
      ``test_thermal_{trial}``; ``'t2v'``: the reverse.

    One model is trained per trial; the trial is stored in the metainfo.

    Published counts, every trial: train 206 ids, 4,120 images (10 visible
    + 10 thermal per id), 2 cameras (= modalities); query and gallery 206
    ids, 2,060 images, 1 camera each.

    Args:
        data_root (str): The ``RegDB`` folder or its parent.
        split (str): ``'train'`` or ``'test'`` (query then gallery).
        trial (int): The split, 1..10.
        direction (str): ``'v2t'`` (visible query, thermal gallery) or
            ``'t2v'``. Stored in the test dataset name (``regdb-t2v``).
        **kwargs: See :class:`BaseReIDDataset`.
    """

    METAINFO = dict(dataset_name='regdb')
    #: The image folder of each modality, relative to ``data_root``.
    MODALITY_FOLDERS = dict(visible='Visible', thermal='Thermal')
    #: specs/datasets.md §3.7 gives 206/206 ids and 2,060 test images per
    #: modality; the 4,120 train images rest on its [unverified] "10
    #: visible + 10 thermal" per id.
    PUBLISHED_COUNTS = dict(
        train=dict(ids=206, images=4120, cams=2, verified=('ids', 'cams')),
        query=dict(ids=206, images=2060, cams=1, verified=True),
        gallery=dict(ids=206, images=2060, cams=1, verified=True))
    ARCHIVE_FOLDER = 'RegDB'
    NUM_TRIALS = 10
    #: The test directions, the default first.
    DIRECTIONS = ('v2t', 't2v')
    #: modality -> (idx file stem, modality id = camid).
    MODALITIES = dict(visible=0, thermal=1)
    LAYOUT = ('data/regdb/RegDB/\n'
              '  Visible/...  Thermal/...   (paths as listed in the idx '
              'files)\n'
              '  idx/train_visible_{1..10}.txt  idx/train_thermal_{1..10}'
              '.txt\n'
              '  idx/test_visible_{1..10}.txt   idx/test_thermal_{1..10}.txt'
              '\n'
              'idx line: "<path relative to RegDB/> <label>"\n'
              '(data_root: RegDB itself or its parent)')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 trial: int = 1,
                 direction: str = DIRECTIONS[0],
                 **kwargs) -> None:
        if isinstance(trial, bool) or not isinstance(trial, int) or \
                not 1 <= trial <= self.NUM_TRIALS:
            raise ValueError(f'RegDB trial must be an integer in 1..'
                             f'{self.NUM_TRIALS}, got {trial!r}')
        if direction not in self.DIRECTIONS:
            raise ValueError(f'RegDB direction must be "v2t" or "t2v", got '
                             f'{direction!r}')
        self.trial = trial
        self.direction = direction
        data_root = resolve_archive_root(data_root, self.ARCHIVE_FOLDER, 'idx')
        stage = 'train' if split == 'train' else 'test'
        self.REQUIRED_PATHS = tuple(
            self.idx_file(stage, m) for m in self.MODALITIES)
        self._listings: Dict[str, Set[str]] = {}
        name = 'regdb' if split == 'train' else f'regdb-{direction}'
        metainfo = dict(dataset_name=name, trial=trial, direction=direction)
        if split != 'train':
            # Its protocol keeps re-ranking out and names the direction in
            # the keys: RegDBMetric's.
            metainfo['protocol_metric'] = 'RegDBMetric'
        metainfo = own_metainfo(
            type(self).__name__, metainfo, kwargs.pop('metainfo', None))
        super().__init__(data_root, split=split, metainfo=metainfo, **kwargs)

    def idx_file(self, stage: str, modality: str) -> str:
        """Relative path of an idx file (``idx/test_thermal_3.txt``)."""
        return f'idx/{stage}_{modality}_{self.trial}.txt'

    def load_data_list(self) -> List[dict]:
        self.check_layout()
        self.check_disjoint_idx_files()
        try:
            return super().load_data_list()
        finally:
            self._listings.clear()

    def check_disjoint_idx_files(self) -> None:
        """Refuse an image listed in a train and a test idx file of the
        trial (e.g. idx files of two trials mixed up): the model would be
        tested on images of identities it trained on.

        The labels are not compared: the train and the test labels of a
        trial are each numbered from 0 (reference loaders add 206 to the
        test labels), so equal labels are different people. Each file of
        the other stage is read when present (paths only; the split being
        loaded checks its own lines).

        Raises:
            ValueError: Names both idx files and the shared images.
        """
        listed: Dict[str, Dict[str, str]] = dict(train={}, test={})
        for stage, images in listed.items():
            for modality in self.MODALITIES:
                path = osp.join(self.data_root, self.idx_file(stage, modality))
                if not osp.isfile(path):
                    continue
                for line in read_list_file(path).splitlines():
                    fields = line.split()
                    if fields:
                        image = osp.normpath(fields[0])
                        images.setdefault(image, path)
        shared = sorted(set(listed['train']) & set(listed['test']))
        if shared:
            first = shared[0]
            raise ValueError(
                f'RegDB trial {self.trial}: {listed["train"][first]} and '
                f'{listed["test"][first]} both list {len(shared)} '
                f'image(s): {_names(shared, 3)}. The test set would hold '
                'images the model trained on; the train and test idx '
                'files of one trial list disjoint identities (idx files '
                'of another trial?)')

    def parse_split(self, role: str) -> List[dict]:
        if role == 'train':
            stage, modalities = 'train', ('visible', 'thermal')
        else:
            query = 'visible' if self.direction == 'v2t' else 'thermal'
            gallery = 'thermal' if query == 'visible' else 'visible'
            stage = 'test'
            modalities = (query, ) if role == 'query' else (gallery, )
        records = []
        for modality in modalities:
            path = osp.join(self.data_root, self.idx_file(stage, modality))
            mod = self.MODALITIES[modality]
            folder = self.MODALITY_FOLDERS[modality]
            for img_path, label in read_idx_file(path, self.data_root,
                                                 self._listings):
                top = osp.relpath(img_path, self.data_root).split(os.sep)[0]
                if top != folder:
                    # Swapped or mislabelled idx files would route thermal
                    # images through the visible stem and MBN slot.
                    raise ValueError(
                        f'RegDB: {path} lists {img_path!r}, which is not in '
                        f'{folder}/: the {modality} idx file must list '
                        f'{modality} images (swapped idx files?)')
                records.append(
                    dict(
                        img_path=img_path, pid=label, camid=mod, modality=mod))
        return records
