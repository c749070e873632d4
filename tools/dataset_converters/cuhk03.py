"""Convert the raw CUHK03 release to the CUHK03-NP layout mmreid reads.

    python tools/dataset_converters/cuhk03.py RAW_DIR OUT_DIR
        [--variants labeled detected] [--images-dir DIR]

``RAW_DIR`` holds the release's ``cuhk-03.mat`` (MATLAB v7.3, i.e. HDF5;
read with ``h5py``) and the new-protocol files
``cuhk03_new_protocol_config_{labeled,detected}.mat`` (MATLAB v5; read
with ``mat4py``) with ``filelist``, ``labels``, ``train_idx``,
``query_idx`` and ``gallery_idx`` (1-based). Two steps, run once, never at
training time:

1. ``cuhk-03.mat`` -> ``OUT_DIR/images_<variant>/<pair>_<pid:03d>_<view>_
   <img:02d>.png`` (the names ``filelist`` uses; images 1-5 are view 1,
   6-10 view 2; empty cells are skipped). Skipped when ``--images-dir``
   points at images extracted before (``<dir>/images_<variant>/``).
2. The new protocol -> ``OUT_DIR/<variant>/{bounding_box_train, query,
   bounding_box_test}/<label:04d>_c<view>_<img:02d>.png`` with the
   protocol's ``labels`` as pid, which :class:`mmreid.datasets.CUHK03NP`
   reads with ``data_root=OUT_DIR``.

Each folder (``images_<variant>``, ``<variant>``) is written beside its
place and renamed into it when complete: an interrupted run leaves none of
them half written (the next run removes what a killed one left). Nothing
is ever written into an existing folder, which would mix its files with the
new ones: an output folder that exists with files is refused before any
work, naming it (remove it to convert again; ``--images-dir OUT_DIR``
reuses the images a run extracted there).
"""
import argparse
import os
import os.path as osp
import shutil
import sys
from typing import Dict, List, Sequence

import numpy as np

from mmreid.utils.atomic import atomic_folder
from mmreid.utils.mat_file import load_mat

VARIANTS = ('labeled', 'detected')
PROTOCOL_FILE = 'cuhk03_new_protocol_config_{}.mat'
FOLDERS = dict(
    train='bounding_box_train', query='query', gallery='bounding_box_test')
PROTOCOL_KEYS = ('filelist', 'labels', 'train_idx', 'query_idx', 'gallery_idx')


def image_name(pair: int, pid: int, view: int, img: int) -> str:
    """Name of an extracted image; all numbers 1-based."""
    return f'{pair:d}_{pid:03d}_{view:d}_{img:02d}.png'


def check_new(path: str, advice: str) -> None:
    """Refuse an output folder that exists with files: writing into it
    would mix its files with the new ones.

    Args:
        path: The folder the converter would write.
        advice: What the user can do instead, after "remove it to convert
            again".

    Raises:
        FileExistsError: ``path`` exists and is not an empty folder.
    """
    if osp.isdir(path) and not osp.islink(path) and not os.listdir(path):
        return
    if osp.lexists(path):
        raise FileExistsError(
            f'{path!r} exists: the converter never writes into an existing '
            f'folder (its files would mix with the new ones). Remove it to '
            f'convert again{advice}.')


def extract_images(mat_path: str, variant: str, out_dir: str) -> List[str]:
    """Write every image of one variant of ``cuhk-03.mat`` as PNG.

    Args:
        mat_path: Path of ``cuhk-03.mat`` (HDF5).
        variant: ``'labeled'`` or ``'detected'``.
        out_dir: Folder to create: written beside it and renamed to it
            when complete.

    Returns:
        list[str]: The written file names.

    Raises:
        FileExistsError: ``out_dir`` exists with files (see
            :func:`check_new`).
    """
    check_new(out_dir, '')
    try:
        import h5py
    except ImportError as error:
        raise ImportError('reading cuhk-03.mat (MATLAB v7.3 / HDF5) needs '
                          'h5py: pip install h5py') from error
    import cv2
    names = []
    with h5py.File(mat_path, 'r') as mat, atomic_folder(out_dir) as tmp:
        if variant not in mat:
            raise KeyError(f'{mat_path}: no {variant!r} variable, found '
                           f'{sorted(mat.keys())}')
        # MATLAB stores arrays column-major: transposing gives
        # (pids, 10) cells and (H, W, 3) RGB images.
        for pair, pair_ref in enumerate(np.asarray(mat[variant]).ravel(), 1):
            cells = np.asarray(mat[pair_ref]).T
            for pid, row in enumerate(cells, 1):
                for img, img_ref in enumerate(row, 1):
                    image = np.asarray(mat[img_ref]).T
                    if image.size == 0 or image.ndim < 3:
                        continue  # an empty cell: fewer than 10 images
                    name = image_name(pair, pid, 1 if img <= 5 else 2, img)
                    path = osp.join(tmp, name)
                    # cv2 reports a failed write (a full disk) by returning
                    # False, and the folder would be committed with a cut
                    # picture.
                    if not cv2.imwrite(
                            path,
                            np.ascontiguousarray(image[..., ::-1]).astype(
                                np.uint8)):
                        raise OSError(f'cannot write {path!r} (cv2.imwrite '
                                      'failed: is the disk full?)')
                    names.append(name)
    return names


def _flat(value) -> list:
    """Flatten the nested lists mat4py returns for vectors and cells."""
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            out.extend(_flat(item))
        return out
    return [value]


def load_protocol(path: str) -> Dict[str, list]:
    """Read a new-protocol ``.mat`` file.

    Args:
        path: Path of ``cuhk03_new_protocol_config_<variant>.mat``.

    Returns:
        dict: ``filelist`` (names), ``labels`` (pid per file) and the
        0-based ``train_idx``, ``query_idx``, ``gallery_idx``.
    """
    data = load_mat(path, PROTOCOL_KEYS, 'the CUHK03 new protocol')
    protocol = dict(
        filelist=[str(n) for n in _flat(data['filelist'])],
        labels=[int(x) for x in _flat(data['labels'])])
    if len(protocol['filelist']) != len(protocol['labels']):
        raise ValueError(f'{path}: {len(protocol["filelist"])} files but '
                         f'{len(protocol["labels"])} labels')
    for key in ('train_idx', 'query_idx', 'gallery_idx'):
        indices = [int(x) - 1 for x in _flat(data[key])]
        bad = [i for i in indices if not 0 <= i < len(protocol['filelist'])]
        if bad:
            raise ValueError(f'{path}: {key} holds {bad[0] + 1}, outside '
                             f'1..{len(protocol["filelist"])}')
        repeated = sorted({i for i in indices if indices.count(i) > 1})
        if repeated:
            raise ValueError(f'{path}: {key} lists '
                             f'{protocol["filelist"][repeated[0]]!r} more '
                             'than once')
        protocol[key] = indices
    check_disjoint_roles(protocol, path)
    return protocol


def check_disjoint_roles(protocol: Dict[str, list], where: str) -> None:
    """Refuse an image listed for training and for testing.

    The new protocol's training and test identities are disjoint: an image
    in both would be tested on after the model trained on it.

    Args:
        protocol: See :func:`load_protocol`.
        where: The protocol's file, for the message.

    Raises:
        ValueError: Names the first such image and how many there are.
    """
    shared = set(protocol['train_idx']) & (set(protocol['query_idx'])
                                           | set(protocol['gallery_idx']))
    if shared:
        raise ValueError(f'{where}: {protocol["filelist"][min(shared)]!r} '
                         f'is in train_idx and in a test role '
                         f'({len(shared)} such images)')


def write_np_layout(protocol: Dict[str, list], images_dir: str,
                    out_dir: str) -> Dict[str, int]:
    """Copy the images into the Market-style CUHK03-NP folders.

    Args:
        protocol: See :func:`load_protocol`.
        images_dir: Folder of the extracted images (``filelist`` names).
        out_dir: ``<OUT_DIR>/<variant>``, to create: written beside it and
            renamed to it when complete.

    Returns:
        dict: Images written per role.

    Raises:
        FileExistsError: ``out_dir`` exists with files (see
            :func:`check_new`).
    """
    check_new(out_dir, ', or pass another OUT_DIR')
    check_disjoint_roles(protocol, 'the protocol')
    with atomic_folder(out_dir) as tmp:
        return _copy_roles(protocol, images_dir, tmp)


def _copy_roles(protocol: Dict[str, list], images_dir: str,
                out_dir: str) -> Dict[str, int]:
    """The three folders of :func:`write_np_layout`, into the new
    ``out_dir``."""
    counts = {}
    for role, folder in FOLDERS.items():
        target = osp.join(out_dir, folder)
        os.makedirs(target)
        written: Dict[str, str] = {}
        for index in protocol[f'{role}_idx']:
            name = protocol['filelist'][index]
            fields = osp.splitext(name)[0].split('_')
            if len(fields) != 4 or not all(f.isdigit() for f in fields):
                raise ValueError(f'cannot parse the CUHK03 file name '
                                 f'{name!r}: expected <pair>_<pid>_<view>_'
                                 '<img>.png')
            view, img = int(fields[2]), int(fields[3])
            source = osp.join(images_dir, name)
            if not osp.isfile(source):
                raise FileNotFoundError(
                    f'{source!r} is missing: extract cuhk-03.mat first '
                    '(or check --images-dir)')
            pid = protocol['labels'][index]
            out_name = f'{pid:04d}_c{view}_{img:02d}.png'
            if out_name in written:
                # copyfile would overwrite the first one without a word
                raise ValueError(
                    f'{name!r} and {written[out_name]!r} both become '
                    f'{folder}/{out_name} (label {pid}, view {view}, image '
                    f'{img}): one would overwrite the other')
            written[out_name] = name
            shutil.copyfile(source, osp.join(target, out_name))
        counts[role] = len(written)
    return counts


def convert(raw_dir: str,
            out_dir: str,
            variants: Sequence[str] = VARIANTS,
            images_dir: str = None) -> Dict[str, Dict[str, int]]:
    """Both steps for each variant; see the module docstring.

    Every input and output is checked before anything is written: a
    missing protocol file, ``cuhk-03.mat`` or ``--images-dir`` folder, or
    an output folder that exists with files (see :func:`check_new`) is
    refused up front.
    """
    for variant in variants:
        if variant not in VARIANTS:
            raise ValueError(f'variant must be one of {VARIANTS}, got '
                             f'{variant!r}')
        protocol_path = osp.join(raw_dir, PROTOCOL_FILE.format(variant))
        if not osp.isfile(protocol_path):
            raise FileNotFoundError(f'{protocol_path!r} is missing')
        extracted = osp.join(images_dir or '', f'images_{variant}')
        if images_dir is not None and not osp.isdir(extracted):
            raise FileNotFoundError(
                f'{extracted!r} is missing: --images-dir {images_dir} holds '
                f'no extracted {variant} images')
        if images_dir is None:
            check_new(
                osp.join(out_dir, f'images_{variant}'),
                f', or pass --images-dir {out_dir} to use the images '
                f'extracted there')
        check_new(osp.join(out_dir, variant), ', or pass another OUT_DIR')
    mat_path = osp.join(raw_dir, 'cuhk-03.mat')
    if images_dir is None and not osp.isfile(mat_path):
        raise FileNotFoundError(
            f'{mat_path!r} is missing (or pass --images-dir with the images '
            'extracted before)')
    summary = {}
    for variant in variants:
        protocol_path = osp.join(raw_dir, PROTOCOL_FILE.format(variant))
        if images_dir is None:
            variant_images = osp.join(out_dir, f'images_{variant}')
            extract_images(mat_path, variant, variant_images)
        else:
            variant_images = osp.join(images_dir, f'images_{variant}')
        summary[variant] = write_np_layout(
            load_protocol(protocol_path), variant_images,
            osp.join(out_dir, variant))
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        'raw_dir',
        help='folder of cuhk-03.mat and the '
        'new-protocol .mat files')
    parser.add_argument('out_dir', help='the CUHK03-NP data_root to write')
    parser.add_argument(
        '--variants', nargs='+', default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument(
        '--images-dir',
        help='use images extracted before (<dir>/images_<variant>/) '
        'instead of reading cuhk-03.mat')
    args = parser.parse_args(argv)
    for variant, counts in convert(args.raw_dir, args.out_dir, args.variants,
                                   args.images_dir).items():
        print(f'{variant}: ' + ', '.join(f'{role} {n}'
                                         for role, n in counts.items()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
