"""What mmengine's dataset options mean for a ReID dataset: the
``metainfo`` a config gives (taken as given, never contradicting what the
class loaded), the ``indices`` subset (each record once, a train subset
relabelled) and a sample the pipeline drops (an error, never another
sample in its place)."""
import copy
from typing import List, Mapping, Optional, Sequence

import numpy as np
from mmengine.dataset import BaseDataset


def metainfo_as_given(defaults: Mapping,
                      metainfo: Optional[Mapping] = None) -> dict:
    """Merge a dataset's ``METAINFO`` with the config's ``metainfo``.

    mmengine's ``BaseDataset._load_metainfo`` treats every string value
    as a possible file name and, if a file or folder of that name exists in
    the working directory, replaces the value by its lines (a folder
    ``labeled/`` next to the data crashes ``CUHK03NP``; a file ``V1``
    silently becomes the MSMT17 version). Metadata is data: here it is
    taken as given and never looked up.

    Args:
        defaults: The class's ``METAINFO``.
        metainfo: The ``metainfo`` argument, or ``None``.

    Returns:
        dict: A deep copy of ``defaults`` updated with ``metainfo``.
    """
    merged = copy.deepcopy(dict(defaults))
    if metainfo is None:
        return merged
    if not isinstance(metainfo, Mapping):
        raise TypeError(f'metainfo must be a dict, got '
                        f'{type(metainfo).__name__}: {metainfo!r}')
    merged.update(copy.deepcopy(dict(metainfo)))
    return merged


#: Metainfo keys a config may set over the value a dataset class gives:
#: renaming a dataset changes no record.
RENAMABLE_METAINFO = ('dataset_name', )


def own_metainfo(owner: str,
                 own: Mapping,
                 metainfo: Optional[Mapping] = None) -> dict:
    """A dataset class's metainfo from its arguments, with the config's.

    A class records in the metainfo what its arguments and split chose
    (RegDB's ``trial`` and ``direction``, SYSU-MM01's ``mode``, MSMT17's
    ``version``, the test split's ``protocol_metric`` ...), and the metrics
    and the identity-split leak check trust it. A config's ``metainfo``
    used to replace those values: ``RegDB(split='test',
    metainfo=dict(trial=2))`` loaded trial 1 and said trial 2. A value of
    ``metainfo`` that contradicts one of ``own`` is refused; an equal one
    is fine, other keys are kept, and :data:`RENAMABLE_METAINFO` keys
    (``dataset_name``) may be renamed.

    Args:
        owner (str): The dataset class, for the message.
        own (Mapping): key -> the value the class sets.
        metainfo (Mapping, optional): The ``metainfo`` argument.

    Returns:
        dict: ``metainfo`` (as :func:`metainfo_as_given` takes it) with
        the values of ``own``, a renamed ``dataset_name`` kept.

    Raises:
        TypeError: ``metainfo`` is not a dict.
        ValueError: A value contradicts the class's; names the key and
            both values.
    """
    merged = metainfo_as_given({}, metainfo)
    for key, value in own.items():
        if key in merged and key in RENAMABLE_METAINFO:
            continue
        if key in merged and merged[key] != value:
            raise ValueError(
                f'{owner}: metainfo {key}={merged[key]!r} contradicts '
                f'{key}={value!r}, which {owner} sets from its arguments '
                f'and split: its records are those of {key}={value!r}. '
                f'Leave {key!r} out of metainfo (to load another {key}, '
                f'set the argument)')
        merged[key] = copy.deepcopy(value)
    return merged


#: Metainfo keys a dataset counts from its loaded records.
COUNTED_METAINFO = ('num_pids', 'num_cams', 'num_images', 'role_counts')


def given_counts(metainfo: Optional[Mapping] = None) -> dict:
    """The :data:`COUNTED_METAINFO` values of a config's ``metainfo``."""
    if not isinstance(metainfo, Mapping):
        return {}
    return {
        k: copy.deepcopy(v)
        for k, v in metainfo.items() if k in COUNTED_METAINFO
    }


def check_given_counts(owner: str, given: Mapping, counted: Mapping) -> None:
    """Refuse a count in a config's ``metainfo`` that the records do not
    have.

    ``num_pids`` and the other counts are those of the loaded split; a
    ``metainfo=dict(num_pids=751)`` over a folder of 700 identities was
    replaced by 700 without a word, and the user believed the classifier
    (and the split) had 751.

    Args:
        owner (str): The dataset class, for the message.
        given (Mapping): The counts the config gave (:func:`given_counts`).
        counted (Mapping): The metainfo counted from the records.

    Raises:
        ValueError: Names the key and both values.
    """
    for key, value in given.items():
        if counted.get(key) != value:
            raise ValueError(
                f'{owner}: metainfo {key}={value!r}, but the loaded split '
                f'has {key}={counted.get(key)!r}: the counts are those of '
                f'the records loaded (leave {key!r} out of metainfo, or '
                'check data_root and the split)')


#: Metainfo keys that choose which identities a dataset trains on and which
#: it tests on: RegDB's ``trial``, the DG small sets' ``split_index``.
IDENTITY_SPLIT_KEYS = ('trial', 'split_index')


def check_split_family(owner: str,
                       defaults: Mapping,
                       metainfo: Optional[Mapping] = None) -> None:
    """Refuse renaming a dataset with per-split identities out of its name.

    The identity-split leak check (``identity_split_conflict``) tells
    datasets apart by ``dataset_name`` up to its first ``-``: a RegDB or
    small-DG dataset renamed ``myregdb`` trained on trial 1 and tested on
    trial 2 without a word, its test identities trained on. A new name
    keeps the class's first part (``regdb-mine``).

    Args:
        owner (str): The dataset class, for the message.
        defaults (Mapping): The class's ``METAINFO``.
        metainfo (Mapping, optional): The ``metainfo`` argument.

    Raises:
        ValueError: Names both names and the key.
    """
    merged = metainfo_as_given(defaults, metainfo)
    keys = [k for k in IDENTITY_SPLIT_KEYS if merged.get(k) is not None]
    own, name = defaults.get('dataset_name'), merged.get('dataset_name')
    if not keys or not isinstance(own, str) or not isinstance(name, str):
        return
    family = own.split('-')[0]
    if name.split('-')[0] != family:
        raise ValueError(
            f'{owner}: metainfo dataset_name={name!r} renames a dataset '
            f'whose identities depend on its {keys[0]}, and the check that '
            'a model is not tested on identities it trained on tells such '
            f'datasets apart by the name before its first "-": keep '
            f'{family!r} there (e.g. {family + "-" + name!r})')


def subset_positions(indices, records: Sequence[Mapping],
                     owner: str) -> List[int]:
    """The positions of ``records`` that mmengine's ``indices`` (or
    ``get_subset``'s) select, each once.

    mmengine lists ``data_list[i]`` for every ``i`` of ``indices``: a
    repeated index (``np.random.choice(n, k)`` draws with replacement)
    listed an image twice in its role, and the metric counted (and ranked)
    it twice.

    Args:
        indices (int | Sequence[int]): ``n`` for the first ``n`` records
            (``-n``: the last ``n``), or the positions (negative ones count
            from the end).
        records (Sequence[Mapping]): The records they select from.
        owner (str): The dataset, for the messages.

    Returns:
        list[int]: The selected positions, in the order given.

    Raises:
        TypeError: ``indices`` is not an int or a sequence of ints.
        ValueError: An index out of range, ``n`` larger than the split,
            or a position selected twice; names ``indices``, the position
            and its image.
    """
    length = len(records)
    if isinstance(indices, (int, np.integer)) and \
            not isinstance(indices, bool):
        if abs(indices) > length:
            raise ValueError(
                f'{owner}: indices={indices} asks for {abs(indices)} '
                f'records, but the split has {length}: a subset is never '
                'larger than its split (mmengine would give the whole '
                'split)')
        return list(range(length))[:indices] if indices >= 0 else \
            list(range(length))[indices:]
    if isinstance(indices, np.ndarray) and indices.ndim == 1:
        indices = indices.tolist()
    if not isinstance(indices, Sequence) or isinstance(indices, str) or any(
            isinstance(i, bool) or not isinstance(i, (int, np.integer))
            for i in indices):
        raise TypeError(f'{owner}: indices must be an int or a sequence of '
                        f'ints, got {indices!r}')
    positions, first = [], {}
    for place, index in enumerate(indices):
        if not -length <= index < length:
            raise ValueError(f'{owner}: indices[{place}] = {index} is out '
                             f'of range for its {length} records')
        position = int(index) % length
        if position in first:
            raise ValueError(
                f'{owner}: indices[{first[position]}] and indices[{place}] '
                f'both select record {position} '
                f'({records[position].get("img_path")!r}): a subset lists '
                'each image once (a repeated image is counted, and ranked,'
                ' twice). Draw the indices without replacement, e.g. '
                'np.random.choice(n, k, replace=False)')
        first[position] = place
        positions.append(position)
    return positions


def relabel_train(records: List[dict]) -> List[dict]:
    """Training labels ``0..N-1``, in the order of the records' labels.

    A train split is labelled ``0..N-1`` in sorted order of the original
    pid; the labels of a subset of it keep that order, so renumbering them
    in sorted order gives the subset's own ``0..N-1`` (``orig_pid`` and the
    other keys are kept). The records are changed in place.

    Args:
        records (list[dict]): Training records (each ``pid`` once a
            label).

    Returns:
        list[dict]: ``records``.
    """
    labels = sorted({r['pid'] for r in records})
    relabel = {label: new for new, label in enumerate(labels)}
    for record in records:
        record['pid'] = relabel[record['pid']]
    return records


def prepare_sample(dataset: BaseDataset, idx: int):
    """``dataset.prepare_data(idx)``, refusing a sample the pipeline drops.

    mmengine's ``BaseDataset.__getitem__`` replaces a training sample whose
    pipeline gives ``None`` (``LoadImageFromFile(ignore_empty=True)`` on an
    empty image) by a random other one, up to ``max_refetch`` times: that
    image and its label were trained on in its place, without a word.

    Args:
        dataset (BaseDataset): A ReID dataset.
        idx (int): The sample.

    Returns:
        The pipeline's output for sample ``idx``.

    Raises:
        ValueError: The pipeline gave ``None``; names the sample's image.
    """
    data = dataset.prepare_data(idx)
    if data is None:
        path = dataset.get_data_info(idx).get('img_path')
        name = dataset.metainfo.get('dataset_name', type(dataset).__name__)
        raise ValueError(
            f'{name} ({type(dataset).__name__}): the pipeline dropped sample '
            f'{idx}, {path!r} (it gave None: an image that could not be '
            'loaded with ignore_empty=True?). A sample is never replaced by'
            ' another (its image would be used under another label): '
            'repair or remove the image, or load it with '
            'ReIDLoadImageFromFile, which names what is wrong')
    return data
