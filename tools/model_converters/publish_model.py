"""Prepare a trained checkpoint for release.

Keeps only the weights (``state_dict``) and a plain-Python ``meta`` (no
optimizer, scheduler or message-hub state, no numpy objects), so that the
file loads with ``torch.load(weights_only=True)``, i.e. through mmreid's
tensors-only loader for downloads. The output is named
``<out stem>-<first 8 hex digits of its sha256>.pth``, the form that
``torch.hub`` verifies on download; an output name from which torch hub
would read another prefix (a ``-<hex digits>.`` part before the hash, as in
``bot_r50-50.market.pth``) is refused, nothing written. A converted model
keeps the ``meta`` that ``init_model`` and ``tools/test.py`` check the config
against (``mmreid.utils.source_arch.SOURCE_META_KEYS``: the source network's
facts and the source tensors that were not converted) and the record of
the source tensors it left out on purpose (``dropped``).

Example::

    python tools/model_converters/publish_model.py \\
        work_dirs/bot_r18_synthreid/epoch_8.pth bot_r18_synthreid.pth
    # -> bot_r18_synthreid-1a2b3c4d.pth
"""
import argparse
import hashlib
import os
import os.path as osp
import sys
from numbers import Number
from typing import Any

import numpy as np
import torch

from mmreid.models.weight_init import extract_state_dict
from mmreid.utils.atomic import set_output_mode
from mmreid.utils.checkpoint import load_trusted_checkpoint, name_hash_prefix
from mmreid.utils.key_mapping import save_checkpoint_atomic
from mmreid.utils.source_arch import SOURCE_META_KEYS

HASH_LENGTH = 8

#: The ``meta`` entries a release keeps: the config text and run facts;
#: the training sets the weights trained on (``dataset_meta`` and, for a
#: fine-tune, ``pretrained_dataset_meta``), which tools/test.py checks the
#: test split against; SOURCE_META_KEYS, a converted model's source network
#: and the tensors not converted, which init_model and tools/test.py check
#: the config against; 'dropped', the source tensors a conversion left out
#: on purpose (an ImageNet classifier). The rest (hook states...) is left
#: out.
KEPT_META = ('cfg', 'epoch', 'iter', 'mmreid_version', 'seed', 'dataset_meta',
             'pretrained_dataset_meta', 'experiment_name', 'converted_from',
             'dropped') + SOURCE_META_KEYS


def plain(value: Any, where: str = 'meta') -> Any:
    """``value`` as plain Python: numpy and torch scalars to numbers, their
    arrays to (nested) lists, tuples to lists.

    Args:
        value: A ``meta`` value.
        where (str): Its place, for the message (``meta['dataset_meta']``).

    Raises:
        TypeError: ``value`` holds an object without a plain form, naming
            where and its type: a kept entry is never dropped in part.
    """
    if isinstance(value, (str, bool)) or value is None:
        return value
    if isinstance(value, Number):
        return value.item() if hasattr(value, 'item') else value
    if isinstance(value, dict):
        return {str(k): plain(v, f'{where}[{k!r}]') for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v, f'{where}[{i}]') for i, v in enumerate(value)]
    if isinstance(value, (np.ndarray, np.generic, torch.Tensor)):
        listed = value.tolist()
        return plain(listed, where) if isinstance(listed, list) else listed
    raise TypeError(
        f'{where} is a {type(value).__module__}.{type(value).__name__}, '
        'which has no plain-Python form (str, number, bool, None, list, '
        'dict, numpy or torch values); a published file loads tensors '
        'only. Nothing written')


def check_name_hash(final: str, hash_prefix: str) -> None:
    """Check that the loaders read ``hash_prefix`` back from ``final``.

    torch hub (and mmreid's URL loader, :func:`name_hash_prefix`) takes the
    first ``-<hex digits>.`` of a file name as its sha256 prefix: a name
    with such a part before the added hash (``bot_r50-50.market`` gives
    ``50``, ``model-.x`` an empty prefix) would make the published file
    refused on download, or loaded unchecked.

    Args:
        final (str): The published file's path.
        hash_prefix (str): The first ``HASH_LENGTH`` hex digits of its
            sha256.

    Raises:
        ValueError: The name reads as another prefix, naming the file, what
            is read and a name to give instead.
    """
    read = name_hash_prefix(final)
    if read == hash_prefix:
        return
    stem = osp.basename(final)[:-len(f'-{hash_prefix}.pth')]
    raise ValueError(
        f'{final!r} would be read as having the sha256 prefix {read!r}, '
        f'not {hash_prefix!r}: torch hub and mmreid take the first '
        '"-<hex digits>." of the name as the hash, so a download of it '
        'would be refused (or, with an empty prefix, not checked). '
        'Nothing written; rename the output so that no "-" is followed by '
        f"hex digits and a \".\" (e.g. '{stem.replace('-', '_')}.pth')")


def publish(src: str, dst: str) -> str:
    """Strip ``src`` to weights + meta and save it as ``dst`` with its hash.

    Args:
        src (str): A checkpoint written by mmengine (or a bare state dict).
        dst (str): Output path; ``-<sha256[:8]>`` is added before ``.pth``.

    Returns:
        str: The path of the published file.

    Raises:
        ValueError: ``src`` holds no tensors, or the name of the published
            file would not read as its hash (see :func:`check_name_hash`);
            nothing written.
    """
    checkpoint = load_trusted_checkpoint(src, map_location='cpu')
    if not isinstance(checkpoint, dict):
        raise TypeError(f'{src!r} holds a {type(checkpoint).__name__}, '
                        'expected a dict')
    # The loaders' own reading: NumPy weights are refused (dropped, they
    # made a release without them), a 'model' wrapper is read.
    state_dict = {
        k: v.detach().cpu().clone()
        for k, v in extract_state_dict(checkpoint, source=src).items()
    }
    if not state_dict:
        raise ValueError(f'{src!r} contains no tensors')
    published = dict(state_dict=state_dict)
    meta = checkpoint.get('meta') or {}
    if not isinstance(meta, dict):
        raise TypeError(f'{src!r}: meta is a {type(meta).__name__}, '
                        'expected a dict')
    meta = {
        str(k): plain(v, f'{src!r}: meta[{k!r}]')
        for k, v in meta.items() if k in KEPT_META
    }
    if meta:
        published['meta'] = meta
    stem = dst[:-len('.pth')] if dst.endswith('.pth') else dst
    tmp_path = stem + '.pth.unhashed'
    save_checkpoint_atomic(published, tmp_path)
    # Whatever stops it (a refused name, a failed rename, an interrupt),
    # the unhashed file is not left behind.
    try:
        sha256 = hashlib.sha256()
        with open(tmp_path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                sha256.update(chunk)
        final = f'{stem}-{sha256.hexdigest()[:HASH_LENGTH]}.pth'
        check_name_hash(final, sha256.hexdigest()[:HASH_LENGTH])
        set_output_mode(tmp_path, final)
        os.replace(tmp_path, final)
    except BaseException:
        if osp.exists(tmp_path):
            os.remove(tmp_path)
        raise
    return final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='trained checkpoint')
    parser.add_argument('dst', help='output name, e.g. model.pth')
    args = parser.parse_args()
    try:
        final = publish(args.src, args.dst)
    except (ValueError, TypeError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(1)
    print(f'published {osp.abspath(final)}')


if __name__ == '__main__':
    main()
