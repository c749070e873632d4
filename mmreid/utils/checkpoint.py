"""Safe checkpoint loading for mmengine on torch >= 2.6.

mmengine 0.10.7 calls ``torch.load(filename)`` without ``weights_only``. From
torch 2.6 on that means ``weights_only=True``, which refuses the classes that
mmengine itself writes into a training checkpoint (the message hub's
``HistoryBuffer`` and numpy scalars and arrays), so ``--resume`` fails.
Turning ``weights_only`` off would let any downloaded file run code on load.

mmreid replaces mmengine's loaders for two schemes:

* local files are loaded with ``weights_only=True`` and an allowlist of the
  few classes that mmengine's own checkpoints contain, so the user's own
  training checkpoints resume and nothing else is unpickled;
* ``http(s)://`` files are downloaded to the torch hub cache (a hash in the
  file name is verified, a partial download never becomes a cache file) and
  loaded with ``weights_only=True`` and no allowlist: tensors only.
"""
import difflib
import hashlib
import os
import os.path as osp
import pickle
import re
import zipfile
from typing import Any, List, Optional, Sequence, Tuple
from urllib.error import URLError
from urllib.parse import urlparse
from urllib.request import Request, urlopen

import numpy as np
import torch
from mmengine.dist import all_gather_object, get_dist_info
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

from .atomic import atomic_path

_PATCHED = False


def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """A ``getattr`` restricted to HistoryBuffer's statistics methods.

    ``HistoryBuffer`` pickles its statistics table as
    ``getattr(HistoryBuffer, 'mean')`` and so on. Allowing the real builtin
    ``getattr`` would let a crafted file reach any method of an allowed
    class (``ndarray.tofile`` writes files), so the unpickler gets this
    function under the name ``builtins.getattr`` instead.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    # The built-in statistics are added to the table only when the first
    # buffer is created, so they are listed here too.
    allowed = {'min', 'max', 'current', 'mean'}
    allowed.update(HistoryBuffer._statistics_methods)
    if obj is HistoryBuffer and name in allowed:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(
        f'refusing getattr({getattr(obj, "__name__", type(obj).__name__)}, '
        f'{name!r}) while loading a checkpoint')


def trusted_checkpoint_globals() -> List[Any]:
    """Classes that mmengine writes into its own training checkpoints."""
    from mmengine.logging.history_buffer import HistoryBuffer
    allowed: List[Any] = [
        HistoryBuffer, np.ndarray, np.dtype,
        (_history_buffer_getattr, 'builtins.getattr')
    ]
    # numpy pickles arrays through ``_reconstruct`` and scalars through
    # ``scalar``; both moved from numpy.core to numpy._core in numpy 2.
    for module_name in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            module = __import__(module_name, fromlist=['_reconstruct'])
        except ImportError:
            continue
        allowed += [module._reconstruct, module.scalar]
        break
    # numpy >= 1.25 pickles dtypes as instances of per-type classes.
    dtypes = getattr(np, 'dtypes', None)
    if dtypes is not None:
        allowed += [
            getattr(dtypes, name) for name in dir(dtypes)
            if name.endswith('DType')
        ]
    return allowed


class CheckpointFormatError(ValueError):
    """A file given as a checkpoint is not a PyTorch checkpoint."""


def check_torch_file(filename: str) -> None:
    """Refuse a file that cannot be a ``torch.save`` file, naming it.

    ``torch.save`` writes a zip archive (torch >= 1.6) or, in the legacy
    format, a pickle (protocol 2 and later start with byte ``0x80``).
    Anything else, typically an HTML error page or a text file saved
    under a ``.pth`` name by a failed download, would otherwise reach
    ``torch.load``, whose error advises loading with
    ``weights_only=False``: exactly the unsafe step mmreid never takes.

    Raises:
        CheckpointFormatError: ``filename`` is not a PyTorch checkpoint.
    """
    with open(filename, 'rb') as f:
        head = f.read(64)
    if head.startswith(b'\x80') or zipfile.is_zipfile(filename):
        return
    size = osp.getsize(filename)
    text = head.lstrip().lower()
    if head.startswith(b'PK\x03\x04'):
        # A zip archive without its end (the central directory).
        raise CheckpointFormatError(
            f'{filename!r} ({size} bytes) is a truncated PyTorch checkpoint: '
            f'a zip archive cut short (an interrupted write or copy?). '
            f'{_instead_of_damaged(filename)}')
    if not head:
        what = 'it is empty'
    elif text.startswith((b'<!doctype', b'<html', b'<?xml', b'<')):
        what = ('it is an HTML/XML page (a failed or redirected download '
                'saved under a checkpoint name?)')
    else:
        what = f'it starts with {head[:24]!r}'
    raise CheckpointFormatError(
        f'{filename!r} ({size} bytes) is not a PyTorch checkpoint: {what}. '
        'Download it again or pass the right file.')


#: The names mmengine's CheckpointHook gives the checkpoints of a run.
_RUN_CHECKPOINT = re.compile(r'(epoch|iter)_(\d+)\.pth')


def run_checkpoints(folder: str) -> List[Tuple[str, int, str]]:
    """The checkpoints a training run wrote into ``folder``, in order.

    Only mmengine's own names count (``epoch_N.pth``, ``iter_N.pth``): a
    ``best_*.pth`` repeats one of them, and file times say nothing once a
    work dir is copied.

    Args:
        folder (str): A work dir.

    Returns:
        list[tuple[str, int, str]]: ``(kind, step, file name)`` of each,
        sorted by kind, then step (``epoch_2`` before ``epoch_10``).
    """
    found = []
    for name in os.listdir(folder):
        match = _RUN_CHECKPOINT.fullmatch(name)
        if match:
            found.append((match.group(1), int(match.group(2)), name))
    return sorted(found)


def _found_run_checkpoints(work_dir: str,
                           out_dir: Optional[str] = None) -> List[str]:
    """The paths of a run's checkpoints (:func:`run_checkpoints`), in the
    work dir and in a local ``<out_dir>/<work dir name>``, the last one
    (by kind, then step) last."""
    folders = [work_dir]
    if out_dir and '://' not in out_dir:
        folders.append(osp.join(out_dir, osp.basename(osp.normpath(work_dir))))
    found = sorted((kind, step, osp.join(folder, name)) for folder in folders
                   if osp.isdir(folder)
                   for kind, step, name in run_checkpoints(folder))
    return [path for _, _, path in found]


def _explicit_resume_hint(found: List[str]) -> str:
    """The advice to resume from the last of ``found`` by its path."""
    return (f'resume from one of its checkpoints explicitly (last: '
            f'{", ".join(osp.basename(p) for p in found[-3:])}), '
            f'tools/train.py CONFIG --resume {found[-1]}')


def last_run_checkpoint(work_dir: str,
                        out_dir: Optional[str] = None) -> Optional[str]:
    """The checkpoint ``<work_dir>/last_checkpoint`` names, in ``work_dir``.

    mmengine's ``CheckpointHook`` writes the absolute path of each
    checkpoint it saves into ``<work_dir>/last_checkpoint``, so a work dir
    copied or moved elsewhere still names the original folder's file:
    ``--resume`` of a copy continued (or, once it was gone, refused) the
    original run, and a tool reading the copy's metrics measured the
    original's model. A recorded path outside the work dir is read as the
    work dir's own file of that name (``<work_dir>/<file name>``), and a
    relative one as relative to the work dir. A run whose
    ``CheckpointHook`` has an ``out_dir`` saves into ``<out_dir>/<work dir
    name>`` (mmengine's rule): a recorded file there is that run's own.
    Every reader of ``last_checkpoint`` in mmreid (``--resume``,
    ``gap_effect.py``) reads it here.

    A work dir without ``last_checkpoint`` that holds checkpoints of a
    run (``epoch_N.pth``, ``iter_N.pth``, there or in ``<out_dir>/<work
    dir name>``) is refused: mmengine writes the file with every
    checkpoint, so it was deleted or not copied, and ``--resume`` would
    have trained from the start over them.

    Args:
        work_dir (str): A run's work dir.
        out_dir (str, optional): The ``out_dir`` of the run's
            ``CheckpointHook`` as its config gives it; None (the default)
            when the hook saves into the work dir.

    Returns:
        str | None: The checkpoint; a URL (a remote ``out_dir``) as
        recorded; None when the work dir has no ``last_checkpoint`` and
        no checkpoint.

    Raises:
        FileNotFoundError: ``last_checkpoint`` is missing next to
            checkpoints, is empty or names no file (a run killed while
            writing it), or names a file outside the work dir that the
            work dir does not hold; the message names the paths, the
            checkpoints found and the ``--resume`` of the last one.
    """
    path = osp.join(work_dir, 'last_checkpoint')
    if not osp.isfile(path):
        found = _found_run_checkpoints(work_dir, out_dir)
        if not found:
            return None
        several = len(found) > 1
        raise FileNotFoundError(
            f'{work_dir} holds {len(found)} checkpoint'
            f'{"s" if several else ""} of a run but no last_checkpoint '
            'file, which mmengine writes with each one (deleted, or the '
            'work dir copied without it): the checkpoint to go on from is '
            'not known, and training from the start would overwrite '
            f'{"them" if several else "it"}; '
            f'{_explicit_resume_hint(found)}.')
    with open(path) as f:
        recorded = f.read().strip()
    if '://' in recorded:
        return recorded
    if out_dir and recorded and osp.isfile(recorded) and osp.realpath(
            osp.dirname(recorded)) == osp.realpath(
                osp.join(out_dir, osp.basename(osp.normpath(work_dir)))):
        return recorded
    located = osp.join(work_dir, recorded)  # an absolute path stays
    inside = osp.realpath(osp.dirname(located)) == osp.realpath(work_dir)
    if not inside:
        located = osp.join(work_dir, osp.basename(recorded))
    if recorded and osp.isfile(located):
        return located
    found = _found_run_checkpoints(work_dir, out_dir)
    hint = (
        _explicit_resume_hint(found)
        if found else 'it holds no checkpoint: train from the start')
    if inside:
        raise FileNotFoundError(
            f'{path} names {recorded!r}, which is not a file (a run killed '
            f'while writing it leaves it empty or cut); {hint}.')
    elsewhere = (f'; to go on from {recorded} itself (checkpoints written '
                 'outside the work dir by CheckpointHook\'s out_dir), give '
                 f'it: --resume {recorded}' if osp.isfile(recorded) else '')
    raise FileNotFoundError(
        f'{path} names {recorded!r}, outside the work dir, and the work '
        f'dir holds no {osp.basename(recorded)!r} ({located} is not a '
        'file): a work dir copied or moved from another folder is read '
        f'with its own checkpoints, not that folder\'s; {hint}{elsewhere}.')


def _instead_of_damaged(filename: str) -> str:
    """What to do about a damaged checkpoint: for one of a training run's
    work dir (named ``epoch_N.pth``/``iter_N.pth``/``best_*.pth``, or next
    to a ``last_checkpoint``), resume from the previous checkpoint there;
    otherwise fetch it again."""
    folder, name = osp.split(osp.abspath(filename))
    found = _RUN_CHECKPOINT.fullmatch(name)
    if not (found or name.startswith('best_')
            or osp.isfile(osp.join(folder, 'last_checkpoint'))):
        return 'Download or copy it again, or pass the right file.'
    earlier = [(kind, step, other)
               for kind, step, other in run_checkpoints(folder)
               if other != name and (found is None or (
                   kind == found.group(1) and step < int(found.group(2))))]
    if not earlier:
        return ('If the run writing it was killed, its work dir holds no '
                'earlier checkpoint: train again from the start.')
    previous = osp.join(folder, earlier[-1][2])
    return ('If the run writing it was killed, resume from the previous '
            f'checkpoint of its work dir: tools/train.py CONFIG --resume '
            f'{previous}.')


def _refused(filename: str, error: Exception) -> pickle.UnpicklingError:
    """mmreid's message for a file that holds objects it does not load.

    torch's own message suggests ``weights_only=False`` (which would run
    any code the file contains); this one names the file and the object.
    """
    # torch's reason without its advice: the text after "WeightsUnpickler
    # error:" up to the end of that sentence.
    found = re.search(r'WeightsUnpickler error:\s*(.*?)(?:\. |\.?\n|\.?$)',
                      str(error))
    reason = found.group(1) if found else type(error).__name__
    return pickle.UnpicklingError(
        f'{filename!r} holds an object that mmreid does not load '
        f'({reason}): checkpoints '
        'are read as tensors, plain containers and the few classes '
        'mmengine writes into its own training checkpoints. If you made '
        'this file, save a plain state dict (`torch.save(model.'
        'state_dict(), path)`) or convert it with tools/model_converters.')


def _safe_torch_load(filename: str, map_location, allowed: List[Any]) -> Any:
    """``torch.load(weights_only=True)`` with mmreid's own errors."""
    check_torch_file(filename)
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise _refused(filename, e) from None
    except RuntimeError as e:
        # torch's zip reader: a damaged central directory ("failed reading
        # zip archive") or a damaged record inside an intact zip frame
        # ("PytorchStreamReader failed reading file ...").
        if (str(e).startswith('PytorchStreamReader') or 'zip archive' in str(e)
                or 'central directory' in str(e)):
            raise CheckpointFormatError(
                f'{filename!r} is a damaged PyTorch checkpoint (truncated '
                f'or corrupted zip archive: {e}). '
                f'{_instead_of_damaged(filename)}') from None
        raise


def load_trusted_checkpoint(filename: str, map_location=None) -> Any:
    """Load a local checkpoint: tensors plus mmengine's own classes.

    Args:
        filename (str): Path of a local checkpoint file.
        map_location: Same as :func:`torch.load`.

    Returns:
        The loaded object (usually a dict).

    Raises:
        FileNotFoundError: No such file.
        IsADirectoryError: ``filename`` is a directory.
        CheckpointFormatError: Not a PyTorch checkpoint (e.g. an HTML page),
            or a damaged one (truncated, or a corrupted zip record).
        pickle.UnpicklingError: The file holds objects mmreid does not load
            (never answered with advice to load unsafely).
    """
    if osp.isdir(filename):
        raise IsADirectoryError(
            f'checkpoint {filename!r} is a directory; give a checkpoint '
            'file (a work dir names its latest in last_checkpoint)')
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename!r} does not exist')
    return _safe_torch_load(filename, map_location,
                            trusted_checkpoint_globals())


def name_hash_prefix(path: str) -> Optional[str]:
    """The sha256 prefix in a file name (``name-<hex>.ext``, torch hub's
    rule), or None."""
    match = torch.hub.HASH_REGEX.search(osp.basename(path))
    return match.group(1) if match else None


def check_cached_hash(path: str) -> None:
    """Check a cached file against the sha256 prefix in its name.

    torch hub checks the prefix only when it downloads; a file already in
    the cache (copied there, or left by another tool) would be loaded
    unchecked.

    Raises:
        RuntimeError: The file's sha256 does not start with the prefix,
            naming the file, both values and the remedy.
    """
    hash_prefix = name_hash_prefix(path)
    if hash_prefix is None:
        return
    sha256 = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(1 << 20), b''):
            sha256.update(chunk)
    digest = sha256.hexdigest()
    if not digest.startswith(hash_prefix):
        raise RuntimeError(
            f'cached checkpoint {path} is not the file its name promises: '
            f'its sha256 is "{digest}", the name says "{hash_prefix}". '
            'Delete it to download it again')


def download_checkpoint(url: str, dst: str) -> None:
    """Download ``url`` to ``dst``; only a complete, verified file appears.

    ``torch.hub.download_url_to_file`` already writes to a temporary file
    and renames it, but it takes a connection that closes early for the end
    of the file (``http.client`` does not raise on a short ``read(amt)``),
    so a URL without a hash in its name could leave a truncated checkpoint
    in the cache. Here the byte count must match ``Content-Length`` and the
    sha256 prefix in the file name (``name-<hex>.ext``, torch hub's rule)
    must match, before the temporary file is renamed to ``dst``.

    Raises:
        OSError: The URL cannot be opened (a refused connection, an HTTP
            error), naming it, or the transfer ended before
            ``Content-Length`` bytes.
        RuntimeError: The sha256 does not start with the name's prefix.
    """
    hash_prefix = name_hash_prefix(dst)
    # A temporary file that a killed download leaves is removed by the
    # next write in the cache (see atomic_path).
    with atomic_path(dst) as tmp:
        sha256 = hashlib.sha256()
        size = 0
        request = Request(url, headers={'User-Agent': 'mmreid'})
        try:
            response = urlopen(request)
        except URLError as error:  # HTTPError too; neither names the URL
            raise OSError(
                f'cannot download {url} to {dst}: {error}') from error
        with response, open(tmp, 'wb') as f:
            expected = response.headers.get('Content-Length')
            while True:
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                f.write(chunk)
                sha256.update(chunk)
                size += len(chunk)
        if expected is not None and size != int(expected):
            raise OSError(f'incomplete download of {url}: received {size} '
                          f'of {expected} bytes')
        digest = sha256.hexdigest()
        if hash_prefix and not digest.startswith(hash_prefix):
            raise RuntimeError(f'invalid hash value of {url} (expected '
                               f'"{hash_prefix}", got "{digest}")')


def load_weights_from_url(url: str,
                          map_location=None,
                          model_dir: Optional[str] = None) -> Any:
    """Download ``url`` into the torch hub cache and load tensors only.

    A hash prefix in the file name (``name-<sha256 prefix>.pth``) is checked,
    of a downloaded and of an already cached file, and a short transfer is
    an error (see :func:`download_checkpoint`).
    Only each node's local rank 0 downloads; the others wait and read the
    cached file. A failure on one rank is raised on every rank, naming
    it, so none waits for a file that will not come.

    Args:
        url (str): ``http://`` or ``https://`` address of the checkpoint.
        map_location: Same as :func:`torch.load`.
        model_dir (str, optional): Cache directory. Defaults to torch hub's
            ``checkpoints`` directory.

    Returns:
        The loaded object, restricted to tensors and plain containers.
    """
    rank, world_size = get_dist_info()
    # torchrun and mmengine's slurm launcher set LOCAL_RANK; without it,
    # one node is assumed.
    local_rank = int(os.environ.get('LOCAL_RANK', rank)) \
        if world_size > 1 else 0
    cached = osp.join(model_dir or hub_cache_dir(),
                      osp.basename(urlparse(url).path))
    kwargs = dict(
        model_dir=model_dir,
        map_location=map_location,
        check_hash=True,
        weights_only=True,
        progress=False)

    def load():
        if osp.isfile(cached):
            check_torch_file(cached)
        try:
            return torch.hub.load_state_dict_from_url(url, **kwargs)
        except pickle.UnpicklingError as e:
            raise _refused(cached, e) from None

    checkpoint, error = None, None
    if local_rank == 0:
        try:
            if not osp.exists(cached):
                print_log(
                    f'Downloading: "{url}" to {cached}', logger='current')
                download_checkpoint(url, cached)
            else:
                check_cached_hash(cached)
            checkpoint = load()
        except Exception as e:  # every rank must hear of it, see below
            if world_size == 1:
                raise
            error = e
    if world_size > 1:
        # Also the barrier: the other ranks read the file once their
        # node's rank 0 has it. A failure there stops every rank with its
        # message instead of leaving them waiting.
        failures = [(r, m) for r, m in enumerate(
            all_gather_object(None if error is None else
                              f'{type(error).__name__}: {error}'))
                    if m is not None]
        if error is not None:
            raise error
        if failures:
            failed, message = failures[0]
            raise RuntimeError(f'rank {failed} could not download or load '
                               f'{url}: {message}')
        if local_rank != 0:
            checkpoint = load()
    return checkpoint


# mmengine logs "Loads checkpoint by {loader.__name__[10:]} backend", i.e.
# it expects loaders named ``load_from_<backend>``: these names make the
# line read "by local_trusted backend" and "by http_tensors_only backend".
def load_from_local_trusted(filename: str, map_location=None) -> Any:
    """mmengine's loader for local paths: :func:`load_trusted_checkpoint`."""
    return load_trusted_checkpoint(filename, map_location)


def load_from_http_tensors_only(filename: str,
                                map_location=None,
                                model_dir: Optional[str] = None,
                                **_) -> Any:
    """mmengine's loader for ``http(s)://``: :func:`load_weights_from_url`.
    """
    return load_weights_from_url(filename, map_location, model_dir)


# mmengine's schemes that name a model instead of giving its address, and
# the function of mmengine.runner.checkpoint that holds their table.
_NAMED_SCHEMES = {
    'torchvision://': 'get_torchvision_models',
    'modelzoo://': 'get_torchvision_models',  # mmengine: deprecated
    'open-mmlab://': 'get_external_models',
    'openmmlab://': 'get_external_models',
    'mmcls://': 'get_mmcls_models',
}


def named_checkpoint_address(filename: str) -> str:
    """The address mmengine gives a named checkpoint (``torchvision://
    resnet50``, ``open-mmlab://...``, ``mmcls://...``).

    mmengine's loaders of these schemes download through its own
    ``load_from_http``, which checks no hash (neither of the download nor
    of a file already in the cache) and not the transfer's length; mmreid
    resolves the name with mmengine's tables and loads the address with
    its own checks (see :func:`load_from_named_address`).

    Args:
        filename (str): ``<scheme>://<name>`` with one of the schemes above.

    Returns:
        str: An ``http(s)://`` URL, or, for an ``open-mmlab://`` entry
        that names a file, its path under mmengine's home.

    Raises:
        ValueError: mmengine's table has no such name; the message names
            the scheme and the closest names it has.
    """
    from mmengine.runner import checkpoint as mm
    scheme = filename[:filename.index('://') + 3]
    name = filename[len(scheme):]
    if scheme == 'modelzoo://':
        print_log(
            f'The URL scheme "modelzoo://" is deprecated; use '
            f'"torchvision://{name}"',
            logger='current',
            level=30)
    table = getattr(mm, _NAMED_SCHEMES[scheme])()
    if scheme in ('open-mmlab://', 'openmmlab://'):
        renamed = mm.get_deprecated_model_names()
        if name in renamed:
            print_log(
                f'{filename} is deprecated in favor of '
                f'{scheme}{renamed[name]}',
                logger='current',
                level=30)
            name = renamed[name]
    if name not in table:
        close = difflib.get_close_matches(name, list(table), n=5, cutoff=0.6)
        raise ValueError(
            f'checkpoint {filename!r}: mmengine knows no {scheme} model '
            f'named {name!r} ({len(table)} names' +
            (f'; the closest: {", ".join(close)}' if close else '') + ')')
    address = table[name]
    if not address.startswith(('http://', 'https://')):
        address = osp.join(mm._get_mmengine_home(), address)
    return address


def load_from_named_address(filename: str, map_location=None) -> Any:
    """mmengine's loader for ``torchvision://``, ``modelzoo://``,
    ``open-mmlab://``, ``openmmlab://`` and ``mmcls://``: the address
    (:func:`named_checkpoint_address`) loaded as :func:`load_weights_from_url`
    or, a local file, :func:`load_trusted_checkpoint` does; an
    ``mmcls://`` checkpoint's keys are then renamed as mmengine does."""
    address = named_checkpoint_address(filename)
    if address.startswith(('http://', 'https://')):
        checkpoint = load_weights_from_url(address, map_location)
    else:
        if not osp.isfile(address):
            raise FileNotFoundError(
                f'checkpoint {filename!r} names {address}, which is not a '
                'file (mmengine\'s open_mmlab.json in its home gives that '
                'path)')
        checkpoint = load_trusted_checkpoint(address, map_location)
    if filename.startswith('mmcls://'):
        from mmengine.runner.checkpoint import _process_mmcls_checkpoint
        checkpoint = _process_mmcls_checkpoint(checkpoint)
    return checkpoint


def patch_checkpoint_loaders() -> None:
    """Register the safe loaders with mmengine's ``CheckpointLoader``.

    Idempotent; called when :mod:`mmreid` is imported.
    """
    global _PATCHED
    if _PATCHED:
        return
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local_trusted, force=True)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'),
        loader=load_from_http_tensors_only,
        force=True)
    CheckpointLoader.register_scheme(
        prefixes=tuple(_NAMED_SCHEMES),
        loader=load_from_named_address,
        force=True)
    _PATCHED = True


def hub_cache_dir() -> str:
    """Directory where downloaded checkpoints are cached."""
    return osp.join(torch.hub.get_dir(), 'checkpoints')


def _names(keys: Sequence[str], limit: int = 10, sep: str = ', ') -> str:
    """The first ``limit`` keys, then how many more there are."""
    keys = list(keys)
    shown = sep.join(keys[:limit])
    return shown + (f'{sep}... ({len(keys) - limit} more)'
                    if len(keys) > limit else '')


__all__ = [
    'download_checkpoint', 'load_trusted_checkpoint', 'load_weights_from_url',
    'patch_checkpoint_loaders', 'trusted_checkpoint_globals', 'hub_cache_dir',
    'CheckpointFormatError', 'check_torch_file', 'load_from_local_trusted',
    'load_from_http_tensors_only', 'load_from_named_address',
    'named_checkpoint_address'
]
