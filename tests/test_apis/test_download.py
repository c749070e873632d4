"""Downloads from a local HTTP server: hash check, partial and corrupted
files, tensors-only loading."""
import functools
import hashlib
import http.server
import os
import pickle
import threading

import pytest
import torch

from mmreid.apis import get_model, init_model
from mmreid.utils import load_weights_from_url
from ..fixtures.processes import killed_writers_temp

CONFIG = '''
default_scope = 'mmreid'
test_pipeline = [dict(type='ReIDLoadImageFromFile'),
                 dict(type='PackReIDInputs')]
model = dict(
    type='ReIDModel',
    backbone=dict(type='ReIDResNet', depth=18, base_channels=4,
                  stem_channels=4),
    head=dict(type='BNNeckHead', in_channels=32, num_classes=3))
'''


class Payload:
    """Unpickling this runs code: the download loader must refuse it."""

    def __reduce__(self):
        return (print, ('code ran during torch.load', ))


class TruncatingHandler(http.server.SimpleHTTPRequestHandler):
    """Serves ``cut-*`` files announcing their full size but sending half,
    then closing the connection: an interrupted download."""

    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.lstrip('/')
        if not name.startswith('cut-'):
            return super().do_GET()
        with open(os.path.join(self.directory, name), 'rb') as f:
            data = f.read()
        self.send_response(200)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data[:len(data) // 2])
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture
def server(tmp_path):
    """Serve a folder on 127.0.0.1; yield (folder, base URL)."""
    root = tmp_path / 'served'
    root.mkdir()
    handler = functools.partial(TruncatingHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f'http://127.0.0.1:{httpd.server_address[1]}'
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch hub directory for this test."""
    hub = tmp_path / 'hub'
    monkeypatch.setattr(torch.hub, '_hub_dir', str(hub))
    return hub / 'checkpoints'


def sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_files(cache):
    return sorted(os.listdir(cache)) if cache.exists() else []


def save_hashed(obj, root, stem):
    """Save ``obj`` as ``<stem>-<sha256[:8]>.pth`` (torch hub's form)."""
    tmp = root / f'{stem}.tmp'
    torch.save(obj, tmp)
    path = root / f'{stem}-{sha256(tmp)[:8]}.pth'
    tmp.rename(path)
    return path


@pytest.fixture
def config(tmp_path):
    path = tmp_path / 'tiny.py'
    path.write_text(CONFIG)
    return str(path)


def test_good_download_loads_into_the_model(server, hub_dir, config):
    root, url = server
    source = init_model(config)
    with torch.no_grad():
        for p in source.parameters():
            p.uniform_(-1, 1)
    path = save_hashed(dict(state_dict=source.state_dict()), root, 'tiny')
    # A download killed before left its temporary file: removed.
    hub_dir.mkdir(parents=True)
    killed_writers_temp(hub_dir, path.name)
    model = get_model(config, pretrained=f'{url}/{path.name}')
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    # Cached under its own name, byte-identical.
    assert cache_files(hub_dir) == [path.name]
    assert sha256(hub_dir / path.name) == sha256(path)
    # The second load reads the cache: the server no longer has the file.
    path.unlink()
    again = load_weights_from_url(f'{url}/{path.name}')
    assert torch.equal(again['state_dict']['head.bnneck.weight'],
                       source.state_dict()['head.bnneck.weight'])


def test_wrong_hash_leaves_nothing(server, hub_dir):
    root, url = server
    torch.save(dict(w=torch.ones(3)), root / 'weights-deadbeef.pth')
    with pytest.raises(RuntimeError, match='invalid hash value'):
        load_weights_from_url(f'{url}/weights-deadbeef.pth')
    assert cache_files(hub_dir) == []  # no file, no .partial left over


def test_corrupted_file_leaves_nothing(server, hub_dir):
    root, url = server
    good = save_hashed(dict(w=torch.arange(1000.)), root, 'weights')
    # The server's copy is damaged: the name's hash no longer matches.
    data = good.read_bytes()
    good.write_bytes(data[:len(data) // 2])
    with pytest.raises(RuntimeError, match='invalid hash value'):
        load_weights_from_url(f'{url}/{good.name}')
    assert cache_files(hub_dir) == []


def test_interrupted_download_leaves_nothing(server, hub_dir):
    root, url = server
    # No hash in the name: only the transfer itself can tell.
    path = root / 'cut-weights.pth'
    torch.save(dict(w=torch.arange(1000.)), path)
    size = path.stat().st_size
    # (torch.hub alone would cache the first half as a valid file.)
    with pytest.raises(OSError, match=f'received {size // 2} of {size} bytes'):
        load_weights_from_url(f'{url}/cut-weights.pth')
    assert cache_files(hub_dir) == []


def test_pickled_objects_are_refused(server, hub_dir, config, capsys):
    root, url = server
    path = save_hashed(dict(w=torch.ones(1), extra=Payload()), root, 'evil')
    with pytest.raises(pickle.UnpicklingError):
        load_weights_from_url(f'{url}/{path.name}')
    with pytest.raises(pickle.UnpicklingError):
        get_model(config, pretrained=f'{url}/{path.name}')
    assert 'code ran' not in capsys.readouterr().out


RANK_SCRIPT = '''
import sys
import torch
import torch.distributed as dist
dist.init_process_group('gloo')
torch.hub.set_dir(sys.argv[2])
from mmreid.utils import load_weights_from_url
try:
    load_weights_from_url(sys.argv[1])
    print('LOADED')
except Exception as e:
    print('RAISED', type(e).__name__, e)
'''


def test_a_failed_download_stops_every_rank(server, tmp_path):
    """Two processes (torchrun's variables, gloo): rank 0's download fails
    its hash check; rank 1 raises naming it, instead of a transport error
    once rank 0 has exited (gloo: "Connection closed by peer") or a wait
    for a file that will not come while rank 0 lives."""
    import socket
    import subprocess
    import sys
    root, url = server
    torch.save(dict(w=torch.ones(3)), root / 'weights-deadbeef.pth')
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    repo = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    procs = []
    for rank in range(2):
        env = dict(
            os.environ,
            MASTER_ADDR='127.0.0.1',
            MASTER_PORT=str(port),
            RANK=str(rank),
            LOCAL_RANK=str(rank),
            WORLD_SIZE='2',
            OMP_NUM_THREADS='1',
            PYTHONPATH=os.pathsep.join(
                p for p in (repo, os.environ.get('PYTHONPATH')) if p))
        procs.append(
            subprocess.Popen([
                sys.executable, '-c', RANK_SCRIPT,
                f'{url}/weights-deadbeef.pth',
                str(tmp_path / 'hub')
            ],
                             env=env,
                             stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT,
                             text=True))
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=120)[0])
    except subprocess.TimeoutExpired:
        pytest.fail('a rank is still waiting after 120 s')
    finally:
        for proc in procs:
            proc.kill()
    assert 'RAISED RuntimeError' in outputs[0], outputs[0]
    assert 'invalid hash value' in outputs[0], outputs[0]
    assert 'RAISED RuntimeError rank 0 could not download or load' in \
        outputs[1], outputs[1]
    assert 'invalid hash value' in outputs[1], outputs[1]


def test_the_whole_hash_prefix_is_checked(server, hub_dir):
    """A name whose prefix agrees with the file's sha256 in its first
    characters only is still a wrong hash."""
    root, url = server
    tmp = root / 'weights.tmp'
    torch.save(dict(w=torch.ones(3)), tmp)
    digest = sha256(tmp)
    wrong = digest[:4] + ('0000' if digest[4:8] != '0000' else '1111')
    tmp.rename(root / f'weights-{wrong}.pth')
    with pytest.raises(RuntimeError, match='invalid hash value'):
        load_weights_from_url(f'{url}/weights-{wrong}.pth')
    assert cache_files(hub_dir) == []
