import logging
import numbers
import os
import os.path as osp
import pickle
import re
from typing import (Callable, Dict, List, Mapping, Optional, Sequence, Set,
                    Tuple, Union)

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmreid.utils.checkpoint import _names
from .dataset_options import (IDENTITY_SPLIT_KEYS, check_given_counts,
                              check_split_family, given_counts,
                              metainfo_as_given, prepare_sample, relabel_train,
                              subset_positions)
from .summary import (compare_counts, count_roles, describe_differences,
                      log_summary, summary_rows)

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')
ROLES = ('train', 'query', 'gallery')


def check_link(path: str, where: str = '') -> None:
    """Refuse ``path`` when it is a symbolic link to nothing.

    A link into a moved or unmounted data drive has a name like any image
    or folder: it was counted, then failed when the loader opened it
    mid-training (or, as a folder, was skipped and its images left out).

    Args:
        path (str): The image or folder.
        where (str): Said after the path (``', listed in X line 3,'``).

    Raises:
        FileNotFoundError: ``path`` is a symbolic link whose target does
            not exist; names the link and its target (a relative target
            also as resolved against the link's folder).
    """
    if not osp.islink(path) or osp.exists(path):
        return
    target = os.readlink(path)
    resolved = osp.normpath(osp.join(osp.dirname(path), target))
    shown = repr(target) if resolved == target else \
        f'{target!r} ({resolved!r})'
    raise FileNotFoundError(
        f'{path!r}{where} is a symbolic link to {shown}, which does not '
        'exist (a moved or unmounted drive?): restore its target or remove'
        ' the link')


def list_folder(folder: str) -> Set[str]:
    """Names in ``folder`` (an empty set when it is no folder), less the
    symbolic links to nothing.

    One listing per folder instead of one ``stat`` per listed image; only
    the links are looked up. A list file naming a left-out link then
    finds it missing and :func:`check_link` says where it points.
    """
    if not osp.isdir(folder):
        return set()
    with os.scandir(folder) as entries:
        return {
            entry.name
            for entry in entries
            if not entry.is_symlink() or osp.exists(entry.path)
        }


def list_images(folder: str) -> List[str]:
    """Sorted image file names in ``folder`` (other files are ignored).

    Real releases contain stray files (Market-1501 ships ``Thumbs.db``), so
    only files with an image extension are returned. macOS AppleDouble
    files (``._0002_c1s1_000451_03.jpg``, left by copying through a Mac)
    are skipped, as the peers do. Only the symbolic links among the
    images are looked up (:func:`check_link`), not every file.

    Raises:
        ValueError: A folder with an image's name (it would be counted,
            then fail to load), named.
        FileNotFoundError: An image name that is a symbolic link to
            nothing; names the link and its target.
    """
    names = []
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if not name.lower().endswith(IMG_EXTENSIONS) or \
                    name.startswith('._'):
                continue
            if entry.is_symlink():
                check_link(entry.path)
            if entry.is_dir():
                raise ValueError(
                    f'{entry.path!r} is a folder with an image\'s name: '
                    'an image file was expected there')
            names.append(name)
    return sorted(names)


def claim_folder(folders: Dict, key, folder: str, what: str) -> None:
    """``folders[key] = folder``, refusing a second folder of the same
    ``key`` (``cam1`` and ``cam01``, ``0004`` and ``004``): one of them
    would otherwise replace the other and its images vanish.

    Raises:
        ValueError: ``key`` has a folder already; both are named.
    """
    if key in folders and folders[key] != folder:
        raise ValueError(
            f'{folders[key]!r} and {folder!r} are both {what}: rename or '
            'merge them (the images of one would be left out)')
    folders[key] = folder


def read_list_file(path: str) -> str:
    """The text of a dataset's list or id file, as UTF-8.

    A byte-order mark (a file saved by Windows Notepad) is dropped: it
    became part of the first path or id. Bytes that are not UTF-8 are
    refused naming the file and the line.

    Raises:
        ValueError: The file is not UTF-8 text.
    """
    with open(path, 'rb') as f:
        data = f.read()
    try:
        return data.decode('utf-8-sig')
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b'\n') + 1
        raise ValueError(
            f'{path!r}, line {line}: not UTF-8 text (byte '
            f'{data[error.start:error.start + 1]!r}); save the list as '
            'UTF-8') from None


def repository_root() -> Optional[str]:
    """The checkout that holds mmreid's configs (``configs/`` next to the
    ``mmreid`` package), or None for an installed package."""
    package = osp.dirname(osp.dirname(osp.abspath(__file__)))
    root = osp.dirname(package)
    return root if osp.isdir(osp.join(root, 'configs')) else None


def relative_root_hint(root: str) -> str:
    """Where a relative ``data_root`` was looked for, and the fix.

    A relative ``data_root`` (mmreid's configs have ``data/market1501/``)
    is read from the current working directory: a tool run from another
    folder does not find data that is there under the repository root.

    Args:
        root (str): The ``data_root`` as the config gives it.

    Returns:
        str: ``''`` for an absolute (or empty) root, else ``' (looked for
        <absolute path>, relative to the current directory <cwd>; ...:
        run from there, or give an absolute data_root)'``.
    """
    if not root or osp.isabs(root):
        return ''
    checkout = repository_root()
    where = '' if checkout is None else f' {checkout!r}'
    return (f' (looked for {osp.abspath(root)!r}, relative to the current '
            f"directory {os.getcwd()!r}; mmreid's configs give data_root "
            f'relative to the repository root{where}: run from there, or '
            'give an absolute data_root)')


#: How a conflict with a training set of the weights before the latest one
#: (:func:`identity_split_conflict` with ``earlier``) ends.
_EARLIER_ADVICE = (
    " (the checkpoint the weights were loaded from records it: its meta["
    "'dataset_meta'] or meta['pretrained_dataset_meta']); training on "
    'another split since does not undo that. Start from weights that never '
    'trained on these test identities (e.g. the ImageNet initialisation)')


def identity_split_conflict(trained: Optional[Mapping],
                            evaluated: Optional[Mapping],
                            earlier: bool = False) -> Optional[str]:
    """Why evaluating ``evaluated`` after training on ``trained`` leaks.

    RegDB (``trial``) and PRID2011/VIPeR/QMUL-iLIDS/GRID (``split_index``)
    draw their train and test identities per split. A model trained on one
    split and tested on another split of the same dataset has trained on
    some of the test identities, and prints an inflated number. Two
    datasets are the same when their ``dataset_name`` agrees up to the
    first ``-`` (``regdb`` trains, ``regdb-v2t`` tests).

    A multi-source training set (``ConcatReIDDataset``: its metainfo has
    ``sources``) is checked source by source: a source's ``name`` and split
    keys as above, and a combine-all source (``split_used == 'all'``: it
    trained on its test split too) of the evaluated dataset leaks every
    test identity. A key a source entry lacks (a checkpoint written before
    sources recorded their split) is not compared.

    The weights of a fine-tune (``load_from``) have trained on the
    training sets of the checkpoint they started from too (``earlier``).

    Args:
        trained (Mapping, optional): The training set's metainfo (or the
            checkpoint's ``meta['dataset_meta']``).
        evaluated (Mapping, optional): The evaluated set's metainfo.
        earlier (bool): ``trained`` is a training set of the weights
            before the latest one (the loaded checkpoint's, or its
            ``meta['pretrained_dataset_meta']``); the message says so and
            advises other weights, not another split. Defaults to False.

    Returns:
        str | None: The conflict, naming the key and both values, or None.
    """
    if not isinstance(trained, Mapping) or not isinstance(evaluated, Mapping):
        return None
    sources = trained.get('sources')
    if not isinstance(sources, (list, tuple)):
        return _split_conflict(
            trained.get('dataset_name'), trained, evaluated, earlier)
    for index, source in enumerate(sources):
        if not isinstance(source, Mapping):
            continue
        name = source.get('name')
        if source.get('split_used') == 'all' \
                and _family(name) is not None \
                and _family(name) == _family(evaluated.get('dataset_name')):
            conflict = (
                f'every identity of {name} (source {index} of the training '
                "set, combine_all: its train and test splits, split_used="
                f"'all') and this evaluates "
                f'{evaluated.get("dataset_name")}, whose test identities it '
                'trained on, so its numbers would be inflated')
            if earlier:
                return (f'the weights were trained before on {conflict}'
                        f'{_EARLIER_ADVICE}')
            return (f'the model was trained on {conflict}. Evaluate on a '
                    'dataset that is not a combine-all source, or train '
                    f'{name} on its train split only')
        conflict = _split_conflict(name, source, evaluated, earlier)
        if conflict:
            return f'{conflict} (source {index} of the training set)'
    return None


def _family(name) -> Optional[str]:
    """A ``dataset_name`` up to its first ``-``, or None."""
    return name.split('-')[0] if isinstance(name, str) else None


def _split_conflict(name: Optional[str],
                    trained: Mapping,
                    evaluated: Mapping,
                    earlier: bool = False) -> Optional[str]:
    """The :data:`IDENTITY_SPLIT_KEYS` part of
    :func:`identity_split_conflict` for one training set named ``name``
    whose split keys are in ``trained``."""
    family = _family(name)
    if family is None or family != _family(evaluated.get('dataset_name')):
        return None
    for key in IDENTITY_SPLIT_KEYS:
        if key in trained and key in evaluated \
                and trained[key] != evaluated[key]:
            conflict = (f'{family} {key}={trained[key]!r} and this '
                        f'evaluates {evaluated.get("dataset_name")} {key}='
                        f'{evaluated[key]!r}: that test set holds '
                        'identities the model trained on, so its numbers '
                        'would be inflated')
            if earlier:
                return (f'the weights were trained before on {conflict}'
                        f'{_EARLIER_ADVICE}')
            return (f'the model was trained on {conflict}. Set {key}='
                    f'{trained[key]!r} on the evaluated dataset (or train '
                    'on the split you test)')
    return None


def serialize_data_list(data_list: list) -> Tuple[np.ndarray, np.ndarray]:
    """Pickle a dataset's infos into one byte array, in mmengine's layout.

    ``BaseDataset(serialize_data=True)`` keeps its infos as one uint8 array
    (``data_bytes``) and the end offset of every info (``data_address``),
    so that dataloader workers share the parent's memory. mmengine's own
    ``_serialize_data`` then runs a full ``gc.collect()``: about 0.25 s per
    dataset in a process holding torch and a model, paid by every dataset
    of a multi-source or multi-target config and nothing freed by it that
    reference counting does not free. This gives the same arrays without
    it.

    Args:
        data_list (list[dict]): The infos, in order.

    Returns:
        tuple[np.ndarray, np.ndarray]: ``data_bytes`` (uint8) and
        ``data_address`` (int64 end offsets).
    """
    parts = [
        np.frombuffer(pickle.dumps(info, protocol=4), dtype=np.uint8)
        for info in data_list
    ]
    address = np.cumsum([len(part) for part in parts], dtype=np.int64)
    data_bytes = np.concatenate(parts) if parts else np.zeros(0, np.uint8)
    return data_bytes, address


class DatasetLayoutError(FileNotFoundError):
    """A dataset root is missing or does not have the expected layout."""


class BaseReIDDataset(BaseDataset):
    """Base class of person re-identification datasets.

    A subclass parses its on-disk layout in :meth:`parse_split`, returning one
    record per image with its *original* pid. This class then applies the
    rules every ReID dataset shares:

    * every record has ``img_path``, ``pid`` and ``camid``; ``pid`` is an
      integer or a string of one (``'0101'`` is 101), read before the
      rules below, and a role lists an image once (see
      :meth:`parse_records`);
    * pid ``-1`` (junk) is dropped;
    * the training split relabels pids to ``0..N-1`` in sorted order of the
      original pid (distractors, pid 0, never enter training);
    * the test split lists the query first, then the gallery, with original
      pids (pid 0 distractors kept as gallery negatives) and each record's
      ``role`` set.

    Every record has ``img_path``, ``pid``, ``camid`` (0-based), ``modality``
    (0 visible, 1 infrared), ``role`` and ``dataset``; a training record
    also keeps the dataset's own integer pid as ``orig_pid`` (``pid`` is
    the training label). A record parsed without ``modality`` is visible
    (0), unless the dataset declares more than one modality (``MODALITIES``
    of the class, or ``modalities`` in its metainfo): then every record
    must carry its own, and a missing one is an error naming the dataset
    and the image.

    Args:
        data_root (str): Root folder of the dataset.
        split (str): ``'train'`` or ``'test'`` (query and gallery).
        pipeline (Sequence): Transforms applied to each record.
        test_mode (bool, optional): Defaults to ``split == 'test'``.
        lazy_init (bool): Parse the annotation only on first access.
        **kwargs: Passed to :class:`mmengine.dataset.BaseDataset`
            (``metainfo``, ``indices``). ``indices`` takes a subset of the
            split as parsed (a repeated index is refused); a train subset
            is labelled ``0..N-1`` anew and the metainfo counts it. The
            options a ReID dataset never applies are refused: ``filter_cfg``
            (it has no filter), ``data_prefix`` (the layout under
            ``data_root`` is fixed) and ``max_refetch`` other than 0 (a
            sample the pipeline drops is an error, never replaced by
            another).
    """

    #: Folders (or files) under ``data_root`` that must exist; subclasses
    #: override. Used in the error message for a wrong root.
    REQUIRED_PATHS: Sequence[str] = ()
    #: The expected tree, shown when the layout is wrong.
    LAYOUT: str = ''
    METAINFO: dict = dict(dataset_name='reid')
    #: pid of gallery distractors (kept in the gallery, never trained on).
    DISTRACTOR_PID: Optional[int] = None
    #: The published counts per role (see :mod:`mmreid.datasets.summary`).
    #: Not inherited: a subclass with other data declares its own (or
    #: overrides :meth:`published_counts`).
    PUBLISHED_COUNTS: Optional[Dict[str, dict]] = None
    #: The modalities the records carry, name -> id (e.g. ``dict(visible=0,
    #: thermal=1)``); ``metainfo['modalities']`` may declare them too.
    #: With more than one, :meth:`parse_split` must set every record's
    #: ``modality``. None: visible only, ``modality`` defaults to 0.
    MODALITIES: Optional[Mapping[str, int]] = None
    #: Keys every record of :meth:`parse_split` must carry.
    RECORD_KEYS: Tuple[str, ...] = ('img_path', 'pid', 'camid')

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 pipeline: Sequence[Union[dict, Callable]] = (),
                 test_mode: Optional[bool] = None,
                 lazy_init: bool = False,
                 **kwargs) -> None:
        if split not in ('train', 'test'):
            raise ValueError(f'split must be "train" or "test", got '
                             f'{split!r}')
        self.split = split
        if test_mode is None:
            test_mode = split == 'test'
        self._refuse_unused_options(kwargs)
        check_split_family(
            type(self).__name__, self.METAINFO, kwargs.get('metainfo'))
        #: Counts a config's ``metainfo`` gives: checked against the
        #: loaded records (:func:`check_given_counts`), never kept instead.
        self._given_counts = given_counts(kwargs.get('metainfo'))
        super().__init__(
            ann_file='',
            data_root=data_root,
            pipeline=list(pipeline),
            test_mode=test_mode,
            lazy_init=lazy_init,
            serialize_data=True,
            **kwargs)

    @classmethod
    def _load_metainfo(cls, metainfo: Optional[Mapping] = None) -> dict:
        """Metainfo as given; see :func:`metainfo_as_given`."""
        return metainfo_as_given(cls.METAINFO, metainfo)

    def _refuse_unused_options(self, kwargs: Mapping) -> None:
        """Refuse the mmengine options a ReID dataset never applies.

        They were accepted and had no effect: ``filter_cfg`` (no
        ``filter_data``), ``data_prefix`` (the image folders under
        ``data_root`` are the dataset's own layout, so a cleaned copy in
        another folder was not read) and ``max_refetch`` (see
        :func:`prepare_sample`; 0, no refetch, is what happens).

        Raises:
            ValueError: One of them is given; names it and its value.
        """
        name = type(self).__name__
        if kwargs.get('filter_cfg') is not None:
            raise ValueError(
                f'{name}: filter_cfg={kwargs["filter_cfg"]!r} is not '
                'applied by a ReID dataset (it has no filter): remove it, '
                'and pass indices= (or a copy of the data with the images '
                'to keep) for a subset')
        prefix = kwargs.get('data_prefix', dict(img_path=''))
        if not isinstance(prefix, Mapping) or any(prefix.values()):
            raise ValueError(
                f'{name}: data_prefix={prefix!r} is not applied by a ReID '
                'dataset: its images are read from its own layout under '
                'data_root. Remove data_prefix, and point data_root at a '
                'copy with that layout')
        if kwargs.get('max_refetch', 0) != 0:
            raise ValueError(
                f'{name}: max_refetch={kwargs["max_refetch"]!r}: a ReID '
                'dataset never replaces a sample that its pipeline drops '
                'by another (it raises naming the image): remove '
                'max_refetch')

    def __getitem__(self, idx: int) -> dict:
        """Sample ``idx`` through the pipeline, never another (see
        :func:`prepare_sample`), in training and in testing."""
        self.full_init()
        return prepare_sample(self, idx)

    def _serialize_data(self) -> Tuple[np.ndarray, np.ndarray]:
        """See :func:`serialize_data_list` (no full garbage collection)."""
        serialized = serialize_data_list(self.data_list)
        self.data_list.clear()
        return serialized

    @property
    def dataset_name(self) -> str:
        return self.metainfo.get('dataset_name', type(self).__name__)

    # ------------------------------------------------------------------
    # Layout
    # ------------------------------------------------------------------
    def check_layout(self) -> None:
        """Raise :class:`DatasetLayoutError` naming what is missing."""
        root = self.data_root
        if not root or not osp.isdir(root):
            raise DatasetLayoutError(
                f'{type(self).__name__}: data_root {root!r} does not exist '
                f'or is not a folder{relative_root_hint(root)}. Expected '
                f'layout:\n{self.LAYOUT}')
        missing = [
            p for p in self.REQUIRED_PATHS
            if not osp.exists(osp.join(root, p))
        ]
        if missing:
            raise DatasetLayoutError(
                f'{type(self).__name__}: {osp.join(root, missing[0])!r} is '
                f'missing (data_root={root!r}). Expected layout:\n'
                f'{self.LAYOUT}')

    @staticmethod
    def parse_name(pattern: 're.Pattern', path: str) -> 're.Match':
        """Match an image file name, or raise naming the file."""
        match = pattern.match(osp.basename(path))
        if match is None:
            raise ValueError(f'cannot parse the image name of {path!r}: '
                             f'expected a name matching {pattern.pattern!r}')
        return match

    # ------------------------------------------------------------------
    # Parsing
    # ------------------------------------------------------------------
    def parse_split(self, role: str) -> List[dict]:
        """Parse one split.

        Args:
            role (str): ``'train'``, ``'query'`` or ``'gallery'``.

        Returns:
            list[dict]: Records with ``img_path``, original ``pid``,
            0-based ``camid`` and optionally ``modality``.
        """
        raise NotImplementedError

    def published_counts(self) -> Optional[Dict[str, dict]]:
        """The published counts of this dataset's configuration.

        Returns:
            dict | None: ``role -> dict(ids=, images=, cams=, verified=)``
            as declared by the class itself (or set on the instance), or
            ``None`` when nothing is published.
        """
        if 'PUBLISHED_COUNTS' in vars(self):
            return self.PUBLISHED_COUNTS
        return vars(type(self)).get('PUBLISHED_COUNTS')

    def load_data_list(self) -> List[dict]:
        self.check_layout()
        name = self.dataset_name
        if self.split == 'train':
            parsed = self.parse_records('train')
            records = [
                r for r in parsed
                if r['pid'] != -1 and r['pid'] != self.DISTRACTOR_PID
            ]
            if len(records) < len(parsed):
                # The published training sets hold none; the count changes,
                # so the log says why.
                left = [r for r in parsed if r['pid'] in (
                    -1, self.DISTRACTOR_PID)]
                print_log(
                    f'{name}: {len(left)} training image(s) labelled junk '
                    f'(-1) or distractor ({self.DISTRACTOR_PID}) are not '
                    f'trained on, e.g. {left[0]["img_path"]!r}',
                    logger='current',
                    level=logging.WARNING)
            if not records:
                raise DatasetLayoutError(
                    f'{name}: the training split is empty: no training '
                    f'image found under data_root={self.data_root!r}. '
                    f'Expected layout:\n{self.LAYOUT}')
            pids = sorted({r['pid'] for r in records})
            relabel = {pid: label for label, pid in enumerate(pids)}
            data_list = []
            for r in records:
                out = self._finish(r, role='train', pid=relabel[r['pid']])
                if isinstance(r['pid'], (int, np.integer)):
                    # (CUHK02's (pair, pid) keeps its own keys.)
                    out['orig_pid'] = int(r['pid'])
                data_list.append(out)
            return data_list
        data_list = []
        for role in ('query', 'gallery'):
            records = [r for r in self.parse_records(role) if r['pid'] != -1]
            if role == 'query':
                self._check_no_distractor_query(records)
            part = [self._finish(r, role=role, pid=r['pid']) for r in records]
            if not part:
                # A gallery without queries (or the reverse) evaluates
                # nothing: a partial copy, not a subset.
                raise DatasetLayoutError(
                    f'{name}: the test split has no {role} image under '
                    f'data_root={self.data_root!r}. Expected layout:\n'
                    f'{self.LAYOUT}')
            data_list += part
        return data_list

    def parse_records(self, role: str) -> List[dict]:
        """:meth:`parse_split` of ``role``, checked, with the pids as
        :meth:`original_pid` reads them.

        The one place a parsed pid becomes an int, before the junk (-1)
        and distractor filters and the relabelling compare it: a string
        ``'-1'`` is junk as -1 is (it trained as an extra class), a string
        ``'0'`` query a distractor as 0 is. Every record must carry
        :attr:`RECORD_KEYS`, and a role must not list an image twice: it
        would be counted twice (and ranked twice as a gallery image, maybe
        under two pids). An image in two roles is allowed (a protocol may
        list it as a query and as a gallery image).

        Args:
            role (str): ``'train'``, ``'query'`` or ``'gallery'``.

        Returns:
            list[dict]: Copies of the records, in parse order.

        Raises:
            KeyError: A record lacks a key of :attr:`RECORD_KEYS`; names
                the record's position and image.
            ValueError: A pid that is not an integer, or an image listed
                twice; names both positions and their pids.
        """
        records: List[dict] = []
        first: Dict[str, int] = {}
        for index, parsed in enumerate(self.parse_split(role)):
            self._check_record_keys(parsed, role, index)
            record = dict(parsed, pid=self.original_pid(parsed, role))
            path = osp.normpath(record['img_path'])
            if path in first:
                earlier = records[first[path]]
                raise ValueError(
                    f'{self.dataset_name} ({type(self).__name__}): the '
                    f'{role} records {first[path]} (pid {earlier["pid"]!r})'
                    f' and {index} (pid {record["pid"]!r}) of parse_split('
                    f'{role!r}) are both {record["img_path"]!r}: an image '
                    'listed twice in one role is counted twice'
                    f'{" and ranked twice" if role == "gallery" else ""}. '
                    'List each image once per role')
            first[path] = index
            records.append(record)
        return records

    def _check_record_keys(self, record: Mapping, role: str,
                           index: int) -> None:
        """Raise a ``KeyError`` naming the record when it lacks a key of
        :attr:`RECORD_KEYS` (it was a bare ``KeyError: 'camid'``)."""
        missing = [key for key in self.RECORD_KEYS if key not in record]
        if missing:
            raise KeyError(
                f'{self.dataset_name} ({type(self).__name__}): the {role} '
                f'record {index} of parse_split({role!r}) (img_path='
                f'{record.get("img_path")!r}) has no {missing[0]!r}: every '
                f'record needs {", ".join(self.RECORD_KEYS)}')

    def original_pid(self, record: dict, role: str):
        """The dataset's own pid of a parsed record, as an int (a parser
        may give ``'0101'``; see :meth:`_record_int`). CUHK02 overrides it
        (its identities are ``(pair, pid)``)."""
        return self._record_int(record, role, 'pid', record['pid'])

    def _check_no_distractor_query(self, records: List[dict]) -> None:
        """Refuse queries labelled as distractors (``DISTRACTOR_PID``).

        Distractors are gallery negatives for every query; a distractor
        query would be scored as an identity whose true matches are the
        gallery's distractors, and shift CMC/mAP without a word.
        """
        if self.DISTRACTOR_PID is None:
            return
        paths = [
            r['img_path'] for r in records if r['pid'] == self.DISTRACTOR_PID
        ]
        if paths:
            raise ValueError(
                f'{self.dataset_name}: {len(paths)} query image(s) carry the '
                f'distractor label pid {self.DISTRACTOR_PID}: '
                f'{_names(paths, 3)}. Distractors belong in the gallery '
                'only (a distractor query would be ranked as a person '
                'whose true matches are the gallery distractors). Move '
                'them to the gallery or out of the query folder, or give '
                'the person an identity number.')

    def declared_modalities(self) -> int:
        """How many modalities the dataset declares (``MODALITIES``, else
        ``metainfo['modalities']``; 1 if neither)."""
        declared = self.MODALITIES
        if declared is None:
            declared = self.metainfo.get('modalities')
        if declared is None:
            return 1
        if isinstance(declared, Mapping):
            return len(set(declared.values()))
        return len(declared)

    def _finish(self, record: dict, role: str, pid: int) -> dict:
        out = dict(record)
        out['pid'] = self._record_int(record, role, 'pid', pid)
        out['camid'] = self._record_int(record, role, 'camid', record['camid'])
        if 'modality' not in record and self.declared_modalities() > 1:
            raise ValueError(
                f'{self.dataset_name} ({type(self).__name__}) declares '
                f'{self.declared_modalities()} modalities but the {role} '
                f'record of {record.get("img_path")!r} has no "modality": '
                'set it in parse_split (0 visible, 1 infrared); the default'
                ' 0 would make the cross-modality data all visible')
        out['modality'] = self._record_int(record, role, 'modality',
                                           record.get('modality', 0))
        out['role'] = role
        out['dataset'] = self.dataset_name
        return out

    def _record_int(self, record: dict, role: str, key: str, value) -> int:
        """``value`` of ``record[key]`` as an int, refusing what ``int()``
        would truncate (a test pid of 2.5 became identity 2, a modality of
        0.5 visible), a bool (``True`` was pid 1) and a camid below 0."""
        if isinstance(value, str):
            integral = re.fullmatch(r'\s*[+-]?\d+\s*', value) is not None
        else:
            whole = isinstance(
                value, numbers.Integral) or (isinstance(value, numbers.Real)
                                             and float(value).is_integer())
            integral = whole and not isinstance(value, bool)
        where = (f'{self.dataset_name} ({type(self).__name__}): the {role} '
                 f'record of {record.get("img_path")!r} has {key}='
                 f'{value!r}')
        if not integral:
            raise ValueError(f'{where}, not an integer: parse_split must '
                             f'give integer {key}s')
        if key == 'camid' and int(value) < 0:
            raise ValueError(f'{where}, below 0: camera ids count from 0')
        return int(value)

    def full_init(self) -> None:
        """Load the records, take the ``indices`` subset, label a train
        split ``0..N-1`` and count it (mmengine's steps, with the
        relabelling after the subset: see :meth:`_set_records`)."""
        if self._fully_initialized:
            return
        self.data_list = self.load_data_list()
        self.data_list = self.filter_data()
        if self._indices is not None:
            self.data_list = [
                self.data_list[i] for i in subset_positions(
                    self._indices, self.data_list, self.dataset_name)
            ]
        self._set_records(self.data_list)
        check_given_counts(type(self).__name__, self._given_counts,
                           self.metainfo)
        self._fully_initialized = True
        self.check_published_counts()
        log_summary(
            f'{type(self).__name__}: dataset summary',
            summary_rows(self.dataset_name, self.split, self.split_counts))

    def _set_records(self, data_list: List[dict]) -> None:
        """Hold ``data_list`` as the dataset's records and count them.

        A train split's labels are renumbered ``0..N-1``
        (:func:`relabel_train`): a subset of it (``indices``,
        :meth:`get_subset`) was labelled as the full split, so a class
        had no image or a label passed ``num_pids``. A test split keeps
        its pids. ``num_pids``, ``num_cams``, ``num_images`` and
        ``role_counts`` of the metainfo (and :attr:`split_counts`) are
        those of ``data_list``.

        Args:
            data_list (list[dict]): The records, in order (changed in
                place).
        """
        if self.split == 'train':
            relabel_train(data_list)
        #: role -> ids, images, cams, modalities of the loaded split.
        self.split_counts = count_roles(data_list)
        self._metainfo.update(
            num_pids=len({r['pid']
                          for r in data_list}),
            num_cams=len({r['camid']
                          for r in data_list}),
            num_images=len(data_list),
            role_counts={
                role: counts['images']
                for role, counts in self.split_counts.items()
            })
        self.data_list = data_list
        if self.serialize_data:
            self.data_bytes, self.data_address = self._serialize_data()

    def _subset_records(self, indices) -> List[dict]:
        """Copies of the records ``indices`` selects (see
        :func:`subset_positions`), without ``sample_idx``."""
        records = []
        for i in range(len(self)):
            record = self.get_data_info(i)
            record.pop('sample_idx', None)
            records.append(record)
        return [
            records[i]
            for i in subset_positions(indices, records, self.dataset_name)
        ]

    def get_subset_(self, indices: Union[Sequence[int], int]) -> None:
        """mmengine's in-place subset, each record once, a train subset
        labelled ``0..N-1`` and the metainfo counting the subset (see
        :meth:`_set_records`)."""
        self.full_init()
        self._set_records(self._subset_records(indices))

    def get_subset(self, indices: Union[Sequence[int],
                                        int]) -> 'BaseReIDDataset':
        """mmengine's subset, each record once, a train subset labelled
        ``0..N-1`` and the metainfo counting the subset (see
        :meth:`_set_records`); this dataset is unchanged."""
        self.full_init()
        records = self._subset_records(indices)
        # A fresh memo: mmengine's default one is shared by every call, so
        # two subsets of one dataset shared one metainfo dict.
        subset = self._copy_without_annotation(memo={})
        subset._set_records(records)
        return subset

    def check_published_counts(self) -> None:
        """Log one warning when the loaded split differs from the
        published counts (a subset on purpose is fine; a partial copy is
        not, and ``tools/misc/verify_dataset.py`` reports it as an
        error)."""
        published = {
            role: expected
            for role, expected in (self.published_counts() or {}).items()
            if role in (('train', ) if self.split == 'train' else ('query',
                                                                   'gallery'))
        }
        differences = compare_counts(published, self.split_counts)
        if differences:
            print_log(
                f'{self.dataset_name} (split {self.split!r}, data_root='
                f'{self.data_root!r}) differs from the published counts: '
                f'{describe_differences(differences)}. A subset on purpose'
                ' is fine; otherwise the copy is incomplete (python '
                'tools/misc/verify_dataset.py CONFIG names what differs).',
                logger='current',
                level=logging.WARNING)

    @property
    def num_pids(self) -> int:
        """Number of identities (the classifier size for a train split)."""
        return self.metainfo['num_pids']

    def get_pids(self) -> List[int]:
        """pid of every sample, in dataset order (used by samplers)."""
        return [self.get_data_info(i)['pid'] for i in range(len(self))]

    def __repr__(self) -> str:
        lines = [
            f'{type(self).__name__}(data_root={self.data_root!r}, '
            f'split={self.split!r})'
        ]
        if self._fully_initialized:
            lines.append(f'  images: {len(self)}, ids: {self.num_pids}, '
                         f'cameras: {self.metainfo["num_cams"]}, roles: '
                         f'{self.metainfo["role_counts"]}')
        return '\n'.join(lines)
