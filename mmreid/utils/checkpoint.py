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
import hashlib
import os
import os.path as osp
import pickle
import uuid
from typing import Any, List, Optional
from urllib.parse import urlparse
from urllib.request import Request, urlopen

import numpy as np
import torch
from mmengine.dist import barrier, get_dist_info
from mmengine.logging import print_log
from mmengine.runner.checkpoint import CheckpointLoader

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


def load_trusted_checkpoint(filename: str, map_location=None) -> Any:
    """Load a local checkpoint: tensors plus mmengine's own classes.

    Args:
        filename (str): Path of a local checkpoint file.
        map_location: Same as :func:`torch.load`.

    Returns:
        The loaded object (usually a dict).
    """
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file {filename!r} does not exist')
    with torch.serialization.safe_globals(trusted_checkpoint_globals()):
        return torch.load(
            filename, map_location=map_location, weights_only=True)


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
        OSError: The transfer ended before ``Content-Length`` bytes.
        RuntimeError: The sha256 does not start with the name's prefix.
    """
    match = torch.hub.HASH_REGEX.search(osp.basename(dst))
    hash_prefix = match.group(1) if match else None
    os.makedirs(osp.dirname(dst), exist_ok=True)
    tmp = f'{dst}.{uuid.uuid4().hex}.partial'
    try:
        sha256 = hashlib.sha256()
        size = 0
        request = Request(url, headers={'User-Agent': 'mmreid'})
        with urlopen(request) as response, open(tmp, 'wb') as f:
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
        os.replace(tmp, dst)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)


def load_weights_from_url(url: str,
                          map_location=None,
                          model_dir: Optional[str] = None) -> Any:
    """Download ``url`` into the torch hub cache and load tensors only.

    A hash prefix in the file name (``name-<sha256 prefix>.pth``) is checked
    and a short transfer is an error (see :func:`download_checkpoint`).
    Only local rank 0 downloads; the others wait and read the cached file.

    Args:
        url (str): ``http://`` or ``https://`` address of the checkpoint.
        map_location: Same as :func:`torch.load`.
        model_dir (str, optional): Cache directory. Defaults to torch hub's
            ``checkpoints`` directory.

    Returns:
        The loaded object, restricted to tensors and plain containers.
    """
    rank, world_size = get_dist_info()
    cached = osp.join(model_dir or hub_cache_dir(),
                      osp.basename(urlparse(url).path))
    if rank == 0 and not osp.exists(cached):
        print_log(f'Downloading: "{url}" to {cached}', logger='current')
        download_checkpoint(url, cached)
    kwargs = dict(
        model_dir=model_dir,
        map_location=map_location,
        check_hash=True,
        weights_only=True,
        progress=False)
    if rank == 0:
        checkpoint = torch.hub.load_state_dict_from_url(url, **kwargs)
    if world_size > 1:
        barrier()
        if rank > 0:
            checkpoint = torch.hub.load_state_dict_from_url(url, **kwargs)
    return checkpoint


def patch_checkpoint_loaders() -> None:
    """Register the safe loaders with mmengine's ``CheckpointLoader``.

    Idempotent; called when :mod:`mmreid` is imported.
    """
    global _PATCHED
    if _PATCHED:
        return
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_trusted_checkpoint, force=True)
    CheckpointLoader.register_scheme(
        prefixes=('http://', 'https://'),
        loader=lambda filename, map_location=None, model_dir=None, **_:
        load_weights_from_url(filename, map_location, model_dir),
        force=True)
    _PATCHED = True


def hub_cache_dir() -> str:
    """Directory where downloaded checkpoints are cached."""
    return osp.join(torch.hub.get_dir(), 'checkpoints')


__all__ = [
    'download_checkpoint', 'load_trusted_checkpoint', 'load_weights_from_url',
    'patch_checkpoint_loaders', 'trusted_checkpoint_globals', 'hub_cache_dir'
]
