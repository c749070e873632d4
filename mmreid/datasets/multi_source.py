import copy
import inspect
import os.path as osp
from typing import List, Optional, Sequence, Set, Tuple, Union

import numpy as np
from mmengine.dataset import BaseDataset

from mmreid.registry import DATASETS
from .base_reid_dataset import IDENTITY_SPLIT_KEYS, serialize_data_list
from .dataset_options import metainfo_as_given, prepare_sample
from .summary import (count_records, count_roles, format_modalities,
                      log_summary, mute_summaries)

SourceConfig = Union[dict, BaseDataset]

#: Training sources a config may name by type alone in ``sources=[...]``:
#: their folder under the common ``data_root`` (the layout of
#: docs/datasets.md and of ``configs/_base_/datasets``) and whether they have
#: a test split that ``combine_all`` can add. MSMT17 needs its required
#: ``version``: name it as ``dict(type='MSMT17', version='V1')``.
STANDARD_SOURCES = dict(
    Market1501=('market1501', True),
    DukeMTMCReID=('dukemtmc-reid/DukeMTMC-reID', True),
    MSMT17=('msmt17', True),
    CUHK03NP=('cuhk03-np', True),
    CUHK02=('cuhk02', False),
    CUHKSYSU=('cuhk_sysu', False),
)


def reid_sources(sources: Sequence[Union[str, dict]],
                 data_root: str = 'data/',
                 combine_all: Union[bool, Sequence[str]] = False) -> list:
    """The ``datasets`` of a :class:`ConcatReIDDataset` from short names.

    ``ConcatReIDDataset(sources=[...])`` calls this, so a config trains on
    several datasets in one line::

        train_dataloader = dict(dataset=dict(
            type='ConcatReIDDataset',
            sources=['Market1501', 'CUHKSYSU', 'CUHK02'],
            data_root='data/', combine_all=['Market1501'],
            pipeline=train_pipeline))

    Args:
        sources (Sequence[str | dict]): A name of :data:`STANDARD_SOURCES`
            (read from ``<data_root>/<its folder>``, train split) or a
            dataset config (``data_root`` defaults as for a name; other
            arguments as the class takes them, e.g. CUHK03-NP's
            ``variant``, MSMT17's required ``version``).
        data_root (str): The folder that holds every dataset's folder.
        combine_all (bool | Sequence[str]): Sources that also train on their
            test split (query + gallery): ``True`` for every source that has
            one, or their names. Defaults to False.

    Returns:
        list[dict]: One entry per source, ``dict(dataset=..., combine_all=
        True)`` for the combined ones.

    Raises:
        ValueError: An unknown name, the same dataset given twice (same
            type, ``data_root``, version, variant and split; see
            :func:`check_no_repeated_source`) whatever ``combine_all`` is,
            or ``combine_all`` naming a source that is absent, given more
            than once (e.g. both CUHK03-NP variants) or with no test
            split.
    """
    configs = []
    for i, source in enumerate(sources):
        if isinstance(source, str):
            source = dict(type=source)
        elif not isinstance(source, dict) or 'type' not in source:
            raise ValueError(f'sources[{i}]: expected a dataset name or a '
                             f'config dict with a type, got {source!r}')
        source = dict(source)
        name = source['type']
        if 'data_root' not in source:
            if name not in STANDARD_SOURCES:
                raise ValueError(
                    f'sources[{i}]: {name!r} has no standard folder; give '
                    f'dict(type={name!r}, data_root=...). Names that need '
                    f'none: {sorted(STANDARD_SOURCES)}')
            source['data_root'] = osp.join(data_root,
                                           STANDARD_SOURCES[name][0])
        configs.append(source)
    check_no_repeated_source(configs)
    names = [c['type'] for c in configs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated and not isinstance(combine_all, bool):
        raise ValueError(f'combine_all names {repeated}, which appear more '
                         'than once in sources; use dict(dataset=..., '
                         'combine_all=True) entries in datasets instead')
    if combine_all is True:
        combined = {
            n
            for n in names if STANDARD_SOURCES.get(n, (None, True))[1]
        }
    elif combine_all is False:
        combined = set()
    else:
        if not isinstance(combine_all, (list, tuple)):
            # A string would be read as its letters.
            raise ValueError(
                'combine_all must be True, False or a list of source '
                f'names, got {combine_all!r} ({type(combine_all).__name__})')
        combined = set(combine_all)
        for name in sorted(combined):
            if name not in names:
                raise ValueError(f'combine_all names {name!r}, which is not '
                                 f'in sources {names}')
            if not STANDARD_SOURCES.get(name, (None, True))[1]:
                raise ValueError(f'combine_all names {name!r}, which has no '
                                 'test split (it is used whole already)')
    return [
        dict(dataset=dict(c, split='train'), combine_all=True)
        if c['type'] in combined else c for c in configs
    ]


#: Arguments that choose which images of a dataset a source reads, besides
#: its type and ``data_root``: two sources that agree on all of them are the
#: same images (CUHK03-NP ``variant='labeled'`` and ``'detected'`` differ).
SOURCE_SELECTION_KEYS = ('version', 'variant', 'split', 'split_index', 'trial',
                         'domain', 'mode', 'direction')
#: Of those, the keys that only choose a test protocol (SYSU-MM01's search
#: ``mode``, RegDB's and LLCM's ``direction``): two train splits that differ
#: in them read the same images.
TEST_PROTOCOL_KEYS = ('mode', 'direction')


def _selection_keys(split) -> tuple:
    """:data:`SOURCE_SELECTION_KEYS` that choose the images of ``split``."""
    if split == 'train':
        return tuple(k for k in SOURCE_SELECTION_KEYS
                     if k not in TEST_PROTOCOL_KEYS)
    return SOURCE_SELECTION_KEYS


def init_defaults(dataset_type) -> dict:
    """The default of every keyword argument of a dataset class, along its
    MRO (a subclass's ``**kwargs`` reach its bases' ``split='train'``).

    Args:
        dataset_type (str | type): A registered name or a class.

    Returns:
        dict: Argument name to default; empty for an unknown type.
    """
    cls = DATASETS.get(dataset_type) if isinstance(dataset_type,
                                                   str) else dataset_type
    defaults = {}
    for klass in getattr(cls, '__mro__', ()):
        init = klass.__dict__.get('__init__')
        try:
            params = inspect.signature(init).parameters if init else {}
        except (TypeError, ValueError):  # no signature to read
            params = {}
        for name, param in params.items():
            if param.default is not inspect.Parameter.empty:
                defaults.setdefault(name, param.default)
    return defaults


def source_identity(config: dict) -> tuple:
    """What a source config reads: its type, normalised ``data_root`` and
    :data:`SOURCE_SELECTION_KEYS`, an omitted key taking the class's
    default.

    Args:
        config (dict): A dataset config with ``type`` and ``data_root``.

    Returns:
        tuple: Equal for two configs that read the same images.
    """
    defaults = init_defaults(config['type'])
    root = config.get('data_root')
    split = config.get('split', defaults.get('split'))
    return (config['type'],
            osp.normpath(root) if isinstance(root, str) else root) + tuple(
                (key, config.get(key, defaults.get(key)))
                for key in _selection_keys(split))


def check_no_repeated_source(configs: Sequence,
                             where: str = 'sources') -> None:
    """Refuse a dataset given twice among the sources.

    The same images under two pid offsets would make every person two
    classes.

    Args:
        configs (Sequence): The sources: dataset configs, or the entries of
            ``ConcatReIDDataset(datasets=...)`` (a wrapped source is
            compared by its ``dataset``; built datasets are not compared).
        where (str): The argument that lists them, for the message.

    Raises:
        ValueError: Two configs read the same images (see
            :func:`source_identity`); names both positions.
    """
    seen = {}
    for i, config in enumerate(configs):
        if isinstance(config, dict) and 'type' not in config:
            config = config.get('dataset')
        if not isinstance(config, dict) or 'type' not in config:
            continue
        key = repr(source_identity(config))  # any value, hashable
        if key in seen:
            raise ValueError(
                f'{where}[{seen[key]}] and {where}[{i}] are the same '
                f'dataset ({config["type"]} at data_root='
                f'{config.get("data_root")!r}): its images would be '
                'trained on twice, every person as two classes. Give it '
                'once; to also train on its test split, use combine_all')
        seen[key] = i


def built_source_identity(dataset: BaseDataset) -> Optional[tuple]:
    """What a built source reads: its class, the real path of the folder it
    reads and :data:`SOURCE_SELECTION_KEYS` as the dataset holds them.

    The folder is the dataset's ``data_root`` after the class resolved it
    (Market-1501 given as the archive folder or as its parent reads the
    archive folder), with symbolic links followed, so two spellings of one
    folder compare equal.

    Args:
        dataset (BaseDataset): A built source.

    Returns:
        tuple | None: Equal for two sources that read the same images;
        None for a dataset without a ``data_root`` (not compared).
    """
    root = getattr(dataset, 'data_root', None)
    if not isinstance(root, str) or not root:
        return None
    # A class whose data_root may be a folder above its images (CUHK02's
    # Dataset/P1.. or P1..) names the folder it reads.
    images_root = getattr(dataset, 'images_root', None)
    if callable(images_root):
        root = images_root()
    return (type(dataset), osp.realpath(root)) + tuple(
        (key, getattr(dataset, key, None))
        for key in _selection_keys(getattr(dataset, 'split', None)))


def given_root(source) -> Optional[str]:
    """The ``data_root`` a source was given as: its config's (or its
    wrapped ``dataset``'s), else the built dataset's."""
    if isinstance(source, dict) and 'type' not in source:
        source = source.get('dataset')
    if isinstance(source, dict):
        return source.get('data_root')
    return getattr(source, 'data_root', None)


def check_no_repeated_built_source(sources: Sequence,
                                   datasets: Sequence[BaseDataset]) -> None:
    """Refuse two built sources that read the same images.

    :func:`check_no_repeated_source` compares the configs as written;
    this compares what the built datasets read (see
    :func:`built_source_identity`), so a dataset given once by its folder
    and once by the folder above it, or through a symbolic link, or as a
    built dataset, is caught too.

    Args:
        sources (Sequence): The ``datasets`` entries, for the message.
        datasets (Sequence[BaseDataset]): The built train split of each.

    Raises:
        ValueError: Two sources read the same folder with the same
            selection; names both positions, both given roots and the
            folder they resolve to.
    """
    seen = {}
    for i, dataset in enumerate(datasets):
        identity = built_source_identity(dataset)
        if identity is None:
            continue
        key = repr(identity)  # any value, hashable
        if key in seen:
            first = seen[key]
            raise ValueError(
                f'datasets[{first}] and datasets[{i}] are the same dataset '
                f'({type(dataset).__name__}, data_root '
                f'{given_root(sources[first])!r} and '
                f'{given_root(sources[i])!r}, both reading {identity[1]!r}):'
                ' its images would be trained on twice, every person as two'
                ' classes. Give it once; to also train on its test split, '
                'use combine_all')
        seen[key] = i


def check_train_roles(index: int, dataset: BaseDataset,
                      records: Sequence[dict]) -> None:
    """Refuse a source whose records are not all training records.

    A test split's labels can be ``0..n-1`` (MSMT17's test lists are), so
    the labels alone do not tell a test split from a train split; each
    record's ``role`` does.

    Args:
        index (int): The source's position, for the message.
        dataset (BaseDataset): The source.
        records (Sequence[dict]): Its records.

    Raises:
        ValueError: A record's ``role`` is not ``'train'``; names the
            source, the image, its role and the combine-all fix.
    """
    bad = [r for r in records if r.get('role', 'train') != 'train']
    if bad:
        raise ValueError(
            f'source {index} ({type(dataset).__name__}) must be a training '
            f'split, but {len(bad)} of its records are not: '
            f'{bad[0].get("img_path")!r} has role {bad[0].get("role")!r}. '
            'To train on its test split (query + gallery) as well, give the '
            'train split as dict(dataset=<train split config>, '
            'combine_all=True) (or combine_all in sources=[...])')


def check_no_pipeline(index: int,
                      dataset: BaseDataset,
                      what: str = 'train split') -> None:
    """Refuse a source with a pipeline of its own.

    :class:`ConcatReIDDataset` reads the sources' records and runs its own
    ``pipeline`` only; a source's transforms would be dropped.

    Args:
        index (int): The source's position, for the message.
        dataset (BaseDataset): The built source (train or test split).
        what (str): Which part of the source it is, for the message.

    Raises:
        ValueError: The source's pipeline has transforms; names the source
            and them.
    """
    transforms = getattr(
        getattr(dataset, 'pipeline', None), 'transforms', None)
    if transforms:
        raise ValueError(
            f'source {index} ({type(dataset).__name__}, its {what}) has a '
            f'pipeline of its own ({len(transforms)} transforms: '
            f'{", ".join(type(t).__name__ for t in transforms)}), which '
            'ConcatReIDDataset would not run: it reads the sources\' records '
            'and applies only its own pipeline. Remove the pipeline from '
            'the source and give it to ConcatReIDDataset(pipeline=...)')


def check_same_dataset(index: int, train: BaseDataset,
                       test: BaseDataset) -> None:
    """Refuse a combine-all test split of another dataset than the source.

    The source's metadata (``metainfo['sources']``: name, version or
    variant) and its camid namespace are the train split's: the test
    split of another dataset would be recorded under the train dataset's
    name, so evaluating that other dataset would not be refused as
    trained on, and its cameras would share the source's camids.

    Args:
        index (int): The source's position, for the message.
        train (BaseDataset): The source's train split.
        test (BaseDataset): Its ``test_dataset``.

    Raises:
        ValueError: Their classes or ``dataset_name`` differ; names both.
    """
    names = [d.metainfo.get('dataset_name') for d in (train, test)]
    if type(train) is not type(test) or names[0] != names[1]:
        raise ValueError(
            f'source {index}: combine_all adds the test split of the same '
            f'dataset, but test_dataset is {type(test).__name__} '
            f'({names[1]}) and the source is {type(train).__name__} '
            f'({names[0]}). Give {type(train).__name__}\'s test split as '
            f'test_dataset; to train on {type(test).__name__} too, add it as'
            ' a source of its own')


@DATASETS.register_module()
class ConcatReIDDataset(BaseDataset):
    """Training sets of several sources, with identities that never collide.

    Sources are concatenated in config order. Source ``i`` gets
    ``pid_offset_i`` = the number of identities of the sources before it (and
    likewise a camid offset), so the classifier has ``sum(num_pids)`` rows and
    a pid maps back to (source, local pid) through ``metainfo['sources']``.
    Every record keeps its ``dataset`` name and gains ``dsetid`` = i and
    ``source_role``, the role it had in its source (``'train'``, or
    ``'query'``/``'gallery'`` for combine-all); its ``role`` is ``'train'``.

    **Combine-all.** A source written as
    ``dict(dataset=<train split config>, combine_all=True)`` also trains on
    its test split (query + gallery). Within that source the train
    identities keep labels ``0..n_train-1``; the identities of query and
    gallery (gallery-only ones included) follow as ``n_train,
    n_train+1, ...`` in sorted order of their original pid. Junk (pid -1)
    and distractors (the source class's ``DISTRACTOR_PID``, pid 0 for
    Market-1501) are left out. Test labels are always namespaced apart from
    train labels, because some datasets (MSMT17) reuse the same integers for
    different people in the two splits. camids keep the source's single
    namespace (the same physical cameras).

    The test split is built from the train config with ``split='test'``
    (and no pipeline), or from ``test_dataset`` (a config or a built
    dataset) when the source needs something else, e.g. a built train
    dataset or a test split with other arguments; it must be the same
    dataset (class and ``dataset_name``) as the train split.

    ``metainfo['sources']`` lists, per source: ``name``, ``version`` or
    ``variant`` and the identity split (``split_index``, ``trial``) when
    the source has one, ``split_used`` (``'train'`` or
    ``'all'``), ``pid_offset``, ``num_pids``, ``camid_offset``,
    ``num_cams``, ``num_images`` and the train/test breakdown
    ``num_train_pids``, ``num_train_images``, ``num_test_pids``,
    ``num_test_images``.

    Args:
        datasets (Sequence[dict | BaseDataset]): The sources. Each is a
            training split whose pids are 0..n-1 (a config or a built
            dataset), or ``dict(dataset=..., combine_all=bool,
            test_dataset=None)``. A test split is refused (its records'
            ``role`` is not ``'train'``): train on it with combine-all.
            Also refused: a ``ConcatReIDDataset`` (list its sources
            here instead) and two sources that read the same folder (its
            resolved ``data_root``, links followed) with the same
            selection (see :func:`built_source_identity`).
        pipeline (Sequence): Transforms applied after the offsets. A
            source with a pipeline of its own is refused (it would not
            run).
        lazy_init (bool): Defer loading until first access.
        sources (Sequence[str | dict], optional): Instead of ``datasets``:
            names such as ``'Market1501'``, expanded by
            :func:`reid_sources` with ``data_root`` and ``combine_all``
            (the same dataset given twice is refused).
        data_root (str): With ``sources``: the folder of all datasets.
        combine_all (bool | Sequence[str]): With ``sources``: see
            :func:`reid_sources`.

    Examples:
        >>> train = dict(
        ...     type='ConcatReIDDataset',
        ...     sources=['Market1501', 'CUHKSYSU'],
        ...     data_root='data/',
        ...     pipeline=train_pipeline)
        >>> train = dict(
        ...     type='ConcatReIDDataset',
        ...     datasets=[
        ...         dict(dataset=dict(type='Market1501', data_root=m),
        ...              combine_all=True),
        ...         dict(type='CUHKSYSU', data_root=c),
        ...     ],
        ...     pipeline=train_pipeline)
    """

    @classmethod
    def _load_metainfo(cls, metainfo: Optional[dict] = None) -> dict:
        """Metainfo as given, never read from a file."""
        return metainfo_as_given(cls.METAINFO, metainfo)

    def _serialize_data(self) -> Tuple[np.ndarray, np.ndarray]:
        """See :func:`~.base_reid_dataset.serialize_data_list`."""
        serialized = serialize_data_list(self.data_list)
        self.data_list.clear()
        return serialized

    def __init__(self,
                 datasets: Optional[Sequence[SourceConfig]] = None,
                 pipeline: Sequence = (),
                 lazy_init: bool = False,
                 sources: Optional[Sequence[Union[str, dict]]] = None,
                 data_root: str = 'data/',
                 combine_all: Union[bool, Sequence[str]] = False) -> None:
        if sources is not None:
            if datasets is not None:
                raise ValueError('ConcatReIDDataset takes datasets or '
                                 'sources, not both')
            datasets = reid_sources(sources, data_root, combine_all)
        elif combine_all is not False:
            raise ValueError('combine_all goes with sources=[...]; in '
                             'datasets, write dict(dataset=..., '
                             'combine_all=True)')
        if not datasets:
            raise ValueError('ConcatReIDDataset needs at least one dataset')
        check_no_repeated_source(datasets, 'datasets')
        self.datasets: List[BaseDataset] = []
        #: Per source: its test split for combine-all, else ``None``.
        self.test_datasets: List[Optional[BaseDataset]] = []
        # The sources are summarised in this dataset's one table.
        with mute_summaries():
            for i, source in enumerate(datasets):
                train, test = self._build_source(i, source)
                self.datasets.append(train)
                self.test_datasets.append(test)
        check_no_repeated_built_source(datasets, self.datasets)
        super().__init__(
            ann_file='',
            pipeline=list(pipeline),
            lazy_init=lazy_init,
            serialize_data=True)

    @staticmethod
    def _build_source(
            index: int,
            source: SourceConfig) -> Tuple[BaseDataset, Optional[BaseDataset]]:
        """Build one source's train split and, for combine-all, its test
        split."""
        if isinstance(source, dict) and 'dataset' in source \
                and 'type' not in source:
            unknown = set(source) - {'dataset', 'combine_all', 'test_dataset'}
            if unknown:
                raise ValueError(
                    f'source {index}: unknown keys {sorted(unknown)}; a '
                    f'wrapped source is dict(dataset=..., combine_all=bool, '
                    f'test_dataset=None)')
            train_cfg = source['dataset']
            combine_all = source.get('combine_all', False)
            if not isinstance(combine_all, bool):
                # bool('False') is True: the source would train on its
                # test split too.
                raise ValueError(
                    f'source {index}: combine_all must be True or False, '
                    f'got {combine_all!r} ({type(combine_all).__name__})')
            test_cfg = source.get('test_dataset')
        else:
            train_cfg, combine_all, test_cfg = source, False, None
        train = DATASETS.build(train_cfg) if isinstance(train_cfg,
                                                        dict) else train_cfg
        if isinstance(train, ConcatReIDDataset):
            raise ValueError(
                f'source {index} is a ConcatReIDDataset: its sources would '
                'be recorded as one, named after its first, and the checks '
                'that read metainfo["sources"] (the identity-split leak '
                'check of evaluation) would not see the others. List its '
                'datasets in this ConcatReIDDataset\'s datasets instead')
        check_no_pipeline(index, train)
        if not combine_all:
            if test_cfg is not None:
                raise ValueError(f'source {index}: test_dataset is only used '
                                 f'with combine_all=True')
            return train, None
        if test_cfg is None:
            if not isinstance(train_cfg, dict):
                raise ValueError(
                    f'source {index} ({type(train).__name__}): combine_all '
                    f'with a built dataset needs test_dataset (its test '
                    f'split); a config is turned into one by itself')
            test_cfg = dict(copy.deepcopy(train_cfg), split='test')
        if isinstance(test_cfg, dict):
            try:
                test = DATASETS.build(test_cfg)
            except ValueError as err:
                raise ValueError(
                    f'source {index}: combine_all needs the test split of '
                    f'{test_cfg.get("type")}, which could not be built: '
                    f'{err}') from err
        else:
            test = test_cfg
        check_same_dataset(index, train, test)
        check_no_pipeline(index, test, 'test split')
        return train, test

    @staticmethod
    def _records(dataset: BaseDataset) -> List[dict]:
        dataset.full_init()
        records = []
        for i in range(len(dataset)):
            record = copy.deepcopy(dataset.get_data_info(i))
            record.pop('sample_idx', None)
            records.append(record)
        return records

    def _test_records(self, dsetid: int, dataset: BaseDataset,
                      num_train_pids: int,
                      train_paths: Set[str]) -> List[dict]:
        """The test split's records with labels ``num_train_pids, ...``.

        An image the split lists in two roles (QMUL-iLIDS's union of
        splits lists one as a query and as a gallery image) is one
        training image: its first record is kept. Two pids on it are
        refused, and so are a record of another role (a
        ``test_dataset`` built without ``split='test'`` is the train
        split; records without a role are a custom split's) and an image
        of the source's train split (``train_paths``, normalised): it
        would be trained twice, under two labels.
        """
        distractor = getattr(dataset, 'DISTRACTOR_PID', None)
        records, first = [], {}
        for r in self._records(dataset):
            path = osp.normpath(r['img_path'])
            if r.get('role') not in (None, 'query', 'gallery') \
                    or path in train_paths:
                raise ValueError(
                    f'source {dsetid} ({type(dataset).__name__}): '
                    f'combine_all\'s test split holds {r["img_path"]!r}, '
                    + ('an image of the source\'s train split'
                       if path in train_paths else
                       f'a {r.get("role")!r} record, not a query or gallery '
                       'image') + ': it would be trained twice, under two '
                    "labels (build test_dataset with split='test')")
            if r['pid'] == -1 or r['pid'] == distractor:
                continue
            if path in first:
                if first[path]['pid'] != r['pid']:
                    raise ValueError(
                        f'source {dsetid} ({type(dataset).__name__}): '
                        f'combine_all found {r["img_path"]!r} in the test '
                        f'split under pid {first[path]["pid"]} and pid '
                        f'{r["pid"]}: one image, two identities')
                continue
            first[path] = r
            records.append(r)
        if not records:
            raise ValueError(
                f'source {dsetid} ({type(dataset).__name__}): combine_all '
                f'found no test identity (junk and distractors excluded)')
        pids = sorted({r['pid'] for r in records})
        relabel = {pid: num_train_pids + i for i, pid in enumerate(pids)}
        for r in records:
            r['source_role'] = r.get('role', 'test')
            r['role'] = 'train'
            r['pid'] = relabel[r['pid']]
        return records

    def load_data_list(self) -> List[dict]:
        data_list = []
        sources = []
        pid_offset = 0
        camid_offset = 0
        for dsetid, dataset in enumerate(self.datasets):
            records = self._records(dataset)
            check_train_roles(dsetid, dataset, records)
            pids = sorted({r['pid'] for r in records})
            # A second guard: a train split's labels are 0..n-1.
            if pids != list(range(len(pids))):
                raise ValueError(
                    f'source {dsetid} ({type(dataset).__name__}) must be a '
                    f'training split with pids 0..n-1, got pids {pids[:5]}'
                    f'{"..." if len(pids) > 5 else ""}')
            for r in records:
                r['source_role'] = r.get('role', 'train')
                r['role'] = 'train'
            num_train_pids, num_train_images = len(pids), len(records)
            num_test_pids = num_test_images = 0
            test_dataset = self.test_datasets[dsetid]
            if test_dataset is not None:
                test_records = self._test_records(
                    dsetid, test_dataset, num_train_pids,
                    {osp.normpath(r['img_path'])
                     for r in records})
                num_test_pids = len({r['pid'] for r in test_records})
                num_test_images = len(test_records)
                records += test_records
            num_pids = num_train_pids + num_test_pids
            cams = sorted({r['camid'] for r in records})
            num_cams = cams[-1] + 1 if cams else 0
            name = records[0].get('dataset', type(dataset).__name__) \
                if records else type(dataset).__name__
            for r in records:
                r['pid'] += pid_offset
                r['camid'] += camid_offset
                r['dsetid'] = dsetid
                data_list.append(r)
            source = dict(name=name)
            for key in ('version', 'variant') + IDENTITY_SPLIT_KEYS:
                if key in dataset.metainfo:
                    source[key] = dataset.metainfo[key]
            source.update(
                split_used='train' if test_dataset is None else 'all',
                pid_offset=pid_offset,
                num_pids=num_pids,
                camid_offset=camid_offset,
                num_cams=num_cams,
                num_images=len(records),
                num_train_pids=num_train_pids,
                num_train_images=num_train_images,
                num_test_pids=num_test_pids,
                num_test_images=num_test_images)
            sources.append(source)
            pid_offset += num_pids
            camid_offset += num_cams
        self._metainfo.update(
            sources=sources,
            num_pids=pid_offset,
            num_cams=camid_offset,
            num_images=len(data_list),
            dataset_name='+'.join(s['name'] for s in sources))
        return data_list

    def __getitem__(self, idx: int) -> dict:
        """Sample ``idx`` through the pipeline, never another (see
        :func:`~.base_reid_dataset.prepare_sample`)."""
        self.full_init()
        return prepare_sample(self, idx)

    def full_init(self) -> None:
        if self._fully_initialized:
            return
        super().full_init()
        log_summary(f'{type(self).__name__}: dataset summary',
                    self.summary_rows())

    def summary_rows(self) -> List[tuple]:
        """One row per source and source role, then the total (see
        :mod:`mmreid.datasets.summary`)."""
        records = [self.get_data_info(i) for i in range(len(self))]
        rows = []
        for dsetid, source in enumerate(self.metainfo['sources']):
            own = [r for r in records if r['dsetid'] == dsetid]
            split = source['split_used']
            # train, query, gallery, then any other role ('test': a test
            # record without a role), so that the rows add up to the total.
            for role, c in count_roles(own, 'source_role').items():
                rows.append((source['name'], split, role, c['ids'],
                             c['images'], c['cams'],
                             format_modalities(c['modalities'])))
        c = count_records(records)
        rows.append(
            ('total', 'train', 'train', c['ids'], c['images'], c['cams'],
             format_modalities(c['modalities'])))
        return rows

    @property
    def num_pids(self) -> int:
        return self.metainfo['num_pids']

    def get_pids(self) -> List[int]:
        """pid of every sample, in dataset order (used by samplers)."""
        return [self.get_data_info(i)['pid'] for i in range(len(self))]

    def get_dsetids(self) -> List[int]:
        """Source index of every sample, in dataset order (used by
        domain-aware samplers)."""
        return [self.get_data_info(i)['dsetid'] for i in range(len(self))]
