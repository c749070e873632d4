import functools
import http.server
import pickle
import threading

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

import mmreid  # noqa: F401 (installs the safe loaders)
from mmreid.utils import load_trusted_checkpoint, load_weights_from_url


class Payload:
    """An arbitrary class: unpickling it must never be allowed."""

    def __reduce__(self):
        return (print, ('code ran during torch.load', ))


def mmengine_like_checkpoint():
    buffer = HistoryBuffer()
    buffer.update(1.5)
    return dict(
        meta=dict(epoch=3, iter=30, seed=np.int64(7)),
        state_dict=dict(w=torch.ones(2)),
        message_hub=dict(log_scalars=dict(loss=buffer)),
        optimizer=dict(state={}, param_groups=[dict(lr=0.1)]),
        extra=np.arange(3, dtype=np.float32))


def test_trusted_checkpoint_with_mmengine_classes_loads(tmp_path):
    path = tmp_path / 'epoch_3.pth'
    torch.save(mmengine_like_checkpoint(), path)
    # What plain torch >= 2.6 does: refuse.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, weights_only=True)
    ckpt = load_trusted_checkpoint(str(path))
    assert ckpt['meta']['seed'] == 7
    assert isinstance(ckpt['message_hub']['log_scalars']['loss'],
                      HistoryBuffer)
    np.testing.assert_array_equal(ckpt['extra'], np.arange(3))
    # mmengine's loader for local paths is the safe one.
    assert CheckpointLoader._schemes[''] is load_trusted_checkpoint


def test_trusted_checkpoint_refuses_arbitrary_classes(tmp_path, capsys):
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(1)), x=Payload()), path)
    with pytest.raises(pickle.UnpicklingError):
        load_trusted_checkpoint(str(path))
    assert 'code ran' not in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_trusted_checkpoint(str(tmp_path / 'missing.pth'))


@pytest.fixture
def http_root(tmp_path):
    """Serve tmp_path on 127.0.0.1 for the duration of a test."""
    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f'http://127.0.0.1:{server.server_address[1]}'
    server.shutdown()
    server.server_close()


def test_downloaded_weights_load_tensors_only(http_root, tmp_path_factory):
    root, url = http_root
    cache = str(tmp_path_factory.mktemp('hub'))
    torch.save(dict(w=torch.arange(3.)), root / 'weights.pth')
    ckpt = load_weights_from_url(f'{url}/weights.pth', model_dir=cache)
    assert torch.equal(ckpt['w'], torch.arange(3.))
    # mmengine's own classes are not allowed from the network either.
    torch.save(mmengine_like_checkpoint(), root / 'full.pth')
    with pytest.raises(pickle.UnpicklingError):
        load_weights_from_url(f'{url}/full.pth', model_dir=cache)
    torch.save(dict(x=Payload()), root / 'evil.pth')
    with pytest.raises(pickle.UnpicklingError):
        load_weights_from_url(f'{url}/evil.pth', model_dir=cache)


def test_getattr_is_restricted_to_history_buffer(tmp_path):

    class Sneaky:

        def __reduce__(self):
            # getattr(np.ndarray, 'tofile') would let a file write files.
            return (getattr, (np.ndarray, 'tofile'))

    path = tmp_path / 'sneaky.pth'
    torch.save(dict(x=Sneaky()), path)
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        load_trusted_checkpoint(str(path))
