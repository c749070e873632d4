import functools
import hashlib
import http.server
import pickle
import shutil
import threading

import numpy as np
import pytest
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

import mmreid  # noqa: F401 (installs the safe loaders)
from mmreid.utils import load_trusted_checkpoint, load_weights_from_url
from mmreid.utils.checkpoint import (CheckpointFormatError,
                                     load_from_local_trusted)


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
    assert CheckpointLoader._schemes[''] is load_from_local_trusted


def test_trusted_checkpoint_refuses_arbitrary_classes(tmp_path, capsys):
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict=dict(w=torch.ones(1)), x=Payload()), path)
    with pytest.raises(pickle.UnpicklingError):
        load_trusted_checkpoint(str(path))
    assert 'code ran' not in capsys.readouterr().out
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_trusted_checkpoint(str(tmp_path / 'missing.pth'))
    # A work dir given for its checkpoint (--resume DIR) was reported as
    # a file that "does not exist".
    with pytest.raises(IsADirectoryError, match='is a directory; give a '):
        load_trusted_checkpoint(str(tmp_path))


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


def test_a_cached_file_is_checked_against_the_hash_in_its_name(tmp_path):
    """torch hub checks a file name's sha256 prefix only when it
    downloads: a file already in the cache (copied there, or left by
    another tool) was loaded unchecked, although the docs say the prefix
    is checked. The whole prefix is: one that differs from the file's
    sha256 in its 8th character only is as wrong."""
    weights = dict(w=torch.arange(3.))
    torch.save(weights, tmp_path / 'probe.pth')
    digest = hashlib.sha256((tmp_path / 'probe.pth').read_bytes()).hexdigest()
    wrong = 'deadbeef' if not digest.startswith('deadbeef') else 'feedface'
    near = digest[:7] + ('0' if digest[7] != '0' else '1')
    for prefix, loads in ((digest[:8], True), (wrong, False), (near, False)):
        cache = tmp_path / prefix
        cache.mkdir()
        name = f'bot-{prefix}.pth'
        shutil.copy(tmp_path / 'probe.pth', cache / name)
        # Nothing listens there: only the cached file can be read.
        url = f'http://127.0.0.1:9/{name}'
        if loads:
            ckpt = load_weights_from_url(url, model_dir=str(cache))
            assert torch.equal(ckpt['w'], weights['w'])
            continue
        with pytest.raises(RuntimeError) as error:
            load_weights_from_url(url, model_dir=str(cache))
        message = str(error.value)
        assert str(cache / name) in message
        assert f'"{prefix}"' in message and digest in message
        assert 'Delete it to download it again' in message


def test_getattr_is_restricted_to_history_buffer(tmp_path):

    class Sneaky:

        def __reduce__(self):
            # getattr(np.ndarray, 'tofile') would let a file write files.
            return (getattr, (np.ndarray, 'tofile'))

    path = tmp_path / 'sneaky.pth'
    torch.save(dict(x=Sneaky()), path)
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        load_trusted_checkpoint(str(path))


def test_getattr_of_another_allowed_class_is_refused(tmp_path):
    """Only HistoryBuffer's statistics: a harmless name on another
    allowed class (``ndarray.mean``) is refused too, not answered with
    HistoryBuffer's method."""

    class OtherClass:

        def __reduce__(self):
            return (getattr, (np.ndarray, 'mean'))

    path = tmp_path / 'other.pth'
    torch.save(dict(x=OtherClass()), path)
    with pytest.raises(
            pickle.UnpicklingError,
            match=r"refusing getattr\(ndarray, 'mean'\)"):
        load_trusted_checkpoint(str(path))
    # HistoryBuffer's own statistics still load (mmengine's checkpoints).
    buffer = HistoryBuffer()
    buffer.update(2.0)
    torch.save(dict(buffer=buffer), path)
    assert load_trusted_checkpoint(str(path))['buffer'].mean() == 2.0


HTML_PAGE = (b'<!DOCTYPE html>\n<html><head><title>404 Not Found</title>'
             b'</head><body>Not Found</body></html>\n')


def test_a_file_that_is_no_checkpoint_is_named(tmp_path):
    # An HTML error page saved under a .pth name (a failed download):
    # torch's own error advises weights_only=False; mmreid names the file.
    path = tmp_path / 'bot_r50.pth'
    path.write_bytes(HTML_PAGE)
    with pytest.raises(CheckpointFormatError) as info:
        load_trusted_checkpoint(str(path))
    message = str(info.value)
    assert str(path) in message and 'HTML' in message
    assert 'weights_only' not in message
    # The same through mmengine (load_from, tools/test.py, init_model).
    from mmengine.runner.checkpoint import _load_checkpoint
    with pytest.raises(CheckpointFormatError, match='not a PyTorch'):
        _load_checkpoint(str(path), map_location='cpu')
    text = tmp_path / 'notes.pth'
    text.write_text('epoch 3 weights\n')
    with pytest.raises(CheckpointFormatError, match="b'epoch 3 weights"):
        load_trusted_checkpoint(str(text))
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(CheckpointFormatError, match='it is empty'):
        load_trusted_checkpoint(str(empty))
    # A truncated zip checkpoint is damaged, not unsafe.
    whole = tmp_path / 'whole.pth'
    torch.save(dict(w=torch.arange(1000.)), whole)
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(whole.read_bytes()[:600])
    with pytest.raises(CheckpointFormatError, match='cut.pth'):
        load_trusted_checkpoint(str(cut))


def test_truncated_checkpoint_is_called_truncated(tmp_path):
    """A zip cut short is an interrupted write, not a bad download; in a
    work dir the previous checkpoint is the way on."""
    whole = tmp_path / 'whole.pth'
    torch.save(dict(w=torch.arange(1000.)), whole)
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(whole.read_bytes()[:600])
    with pytest.raises(CheckpointFormatError) as info:
        load_trusted_checkpoint(str(cut))
    message = str(info.value)
    assert 'truncated' in message and 'interrupted' in message
    assert 'Download or copy it again' in message
    work_dir = tmp_path / 'work_dir'
    work_dir.mkdir()
    for name in ('epoch_9.pth', 'epoch_10.pth', 'epoch_12.pth'):
        (work_dir / name).write_bytes(whole.read_bytes())
    (work_dir / 'epoch_11.pth').write_bytes(whole.read_bytes()[:600])
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_11.pth'))
    with pytest.raises(CheckpointFormatError) as info:
        load_trusted_checkpoint(str(work_dir / 'epoch_11.pth'))
    message = str(info.value)
    assert 'truncated' in message and 'interrupted' in message
    assert 'Download' not in message
    assert f'--resume {work_dir / "epoch_10.pth"}' in message


def test_refused_objects_never_get_unsafe_advice(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save(dict(x=Payload()), path)
    with pytest.raises(pickle.UnpicklingError) as info:
        load_trusted_checkpoint(str(path))
    message = str(info.value)
    assert 'evil.pth' in message and 'GLOBAL print' in message
    assert 'weights_only' not in message
    assert 'add_safe_globals' not in message


def test_downloaded_html_page_is_named(http_root, tmp_path_factory):
    root, url = http_root
    cache = str(tmp_path_factory.mktemp('hub'))
    (root / 'weights.pth').write_bytes(HTML_PAGE)
    with pytest.raises(CheckpointFormatError, match='HTML') as info:
        load_weights_from_url(f'{url}/weights.pth', model_dir=cache)
    assert 'weights_only' not in str(info.value)
    torch.save(dict(x=Payload()), root / 'evil.pth')
    with pytest.raises(pickle.UnpicklingError) as info:
        load_weights_from_url(f'{url}/evil.pth', model_dir=cache)
    assert 'weights_only' not in str(info.value)


def test_loader_names_read_right_in_mmengine_log(tmp_path, monkeypatch,
                                                 http_root):
    # mmengine logs "Loads checkpoint by {loader.__name__[10:]} backend".
    import mmengine.runner.checkpoint as mm_checkpoint
    lines = []
    monkeypatch.setattr(mm_checkpoint, 'print_log',
                        lambda msg, *args, **kwargs: lines.append(msg))
    path = tmp_path / 'w.pth'
    torch.save(dict(w=torch.ones(1)), path)
    mm_checkpoint._load_checkpoint(str(path), map_location='cpu')
    root, url = http_root
    torch.save(dict(w=torch.ones(1)), root / 'u.pth')
    monkeypatch.setattr(torch.hub, 'get_dir', lambda: str(tmp_path / 'hub'))
    mm_checkpoint._load_checkpoint(f'{url}/u.pth', map_location='cpu')
    loads = [line for line in lines if line.startswith('Loads checkpoint')]
    assert loads[0].startswith('Loads checkpoint by local_trusted backend '
                               'from path: ')
    assert loads[1].startswith('Loads checkpoint by http_tensors_only '
                               'backend from path: ')


def _damage_zip(path, signature, start=0, width=4):
    """Overwrite the first zip header ``signature`` found after ``start``;
    the end of central directory stays, so the file still looks like a
    zip archive (``check_torch_file`` lets it through to torch)."""
    data = bytearray(path.read_bytes())
    at = data.find(signature, start)
    assert at > 0
    data[at:at + width] = b'\0' * width
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    'damage',
    [
        # a local record in the middle: torch reads it as "PytorchStreamReader
        # failed reading file ...: invalid header or archive is corrupted"
        dict(signature=b'PK\x03\x04', start=10, width=30),
        # the central directory's first entry: "... failed reading zip archive"
        dict(signature=b'PK\x01\x02', start=0, width=4),
    ])
def test_a_damaged_zip_in_a_work_dir_is_named(tmp_path, damage):
    """Damage inside an intact zip frame is met by torch's stream reader:
    mmreid's error still names the file and the checkpoint to resume from."""
    torch.save(dict(w=torch.arange(4096.)), tmp_path / 'epoch_2.pth')
    torch.save(dict(w=torch.arange(4096.)), tmp_path / 'epoch_3.pth')
    _damage_zip(tmp_path / 'epoch_3.pth', **damage)
    with pytest.raises(CheckpointFormatError) as info:
        load_trusted_checkpoint(str(tmp_path / 'epoch_3.pth'))
    message = str(info.value)
    assert repr(str(tmp_path / 'epoch_3.pth')) in message
    assert 'is a damaged PyTorch checkpoint' in message
    assert f'--resume {tmp_path / "epoch_2.pth"}' in message


def test_a_legacy_format_checkpoint_loads(tmp_path):
    """A checkpoint in torch's legacy (pre-1.6, non-zip) format is a pickle
    starting with byte 0x80: it is a PyTorch checkpoint and must load, not
    be refused as "not a PyTorch checkpoint" (older released weights are
    in this format)."""
    path = tmp_path / 'legacy.pth'
    torch.save(
        dict(state_dict=dict(w=torch.arange(4.))),
        path,
        _use_new_zipfile_serialization=False)
    assert path.read_bytes()[:1] == b'\x80'
    loaded = load_trusted_checkpoint(str(path))
    assert torch.equal(loaded['state_dict']['w'], torch.arange(4.))


def test_an_html_page_after_blank_lines_is_named_as_such(tmp_path):
    """Servers often send an error page after a blank line or two; it is
    still an HTML page, named as one, not "starts with b'\\n\\n<!DOC'"."""
    path = tmp_path / 'bot_r50.pth'
    path.write_bytes(b'\r\n\n  ' + HTML_PAGE)
    with pytest.raises(CheckpointFormatError, match='HTML/XML page'):
        load_trusted_checkpoint(str(path))


def test_a_runtime_error_that_is_no_damage_is_not_swallowed(tmp_path):
    """Only torch's zip reader errors are turned into "damaged checkpoint";
    any other error of torch.load still reaches the caller (no None
    returned as if the file held nothing)."""
    path = tmp_path / 'w.pth'
    torch.save(dict(w=torch.ones(2)), path)

    def refuse(storage, location):
        raise RuntimeError('no such device here')

    with pytest.raises(RuntimeError, match='no such device here'):
        load_trusted_checkpoint(str(path), map_location=refuse)


def test_both_loaders_pass_map_location_on(http_root, tmp_path):
    """mmengine's map_location (``'cpu'`` for a checkpoint saved on a GPU)
    reaches torch.load through either scheme's loader."""
    from mmreid.utils.checkpoint import load_from_http_tensors_only
    path = tmp_path / 'w.pth'
    torch.save(dict(w=torch.ones(2)), path)
    loaded = load_from_local_trusted(str(path), map_location='meta')
    assert loaded['w'].device.type == 'meta'
    root, url = http_root
    shutil.copy(path, root / 'u.pth')
    loaded = load_from_http_tensors_only(
        f'{url}/u.pth', map_location='meta', model_dir=str(tmp_path / 'hub'))
    assert loaded['w'].device.type == 'meta'


def test_names_in_messages_count_every_one_left_out():
    """Messages name the first ten keys, then how many more there are:
    one more than the limit is counted too, never dropped unsaid."""
    from mmreid.utils.checkpoint import _names
    keys = [f'k{i}' for i in range(11)]
    assert _names(keys) == ', '.join(keys[:10]) + ', ... (1 more)'
    assert _names(keys[:10]) == ', '.join(keys[:10])
    assert _names(keys, limit=3, sep='; ') == 'k0; k1; k2; ... (8 more)'


def test_damaged_checkpoint_advice_in_a_work_dir(tmp_path):
    """The advice for a damaged checkpoint of a run: a damaged best_*.pth
    is resumed past from the run's last epoch checkpoint, not sent to be
    downloaded; the first checkpoint of a run has nothing before it; only
    checkpoints of its own kind (epoch/iter) come before it."""
    whole = tmp_path / 'whole.pth'
    torch.save(dict(w=torch.arange(1000.)), whole)
    cut = whole.read_bytes()[:600]
    run = tmp_path / 'run'
    run.mkdir()
    (run / 'epoch_1.pth').write_bytes(cut)
    with pytest.raises(CheckpointFormatError) as info:
        load_trusted_checkpoint(str(run / 'epoch_1.pth'))
    assert 'holds no earlier checkpoint: train again from the start' in \
        str(info.value)
    assert 'Download' not in str(info.value)
    (run / 'epoch_1.pth').write_bytes(whole.read_bytes())
    (run / 'epoch_2.pth').write_bytes(whole.read_bytes())
    (run / 'iter_1.pth').write_bytes(whole.read_bytes())
    (run / 'epoch_3.pth').write_bytes(cut)
    with pytest.raises(CheckpointFormatError) as info:
        load_trusted_checkpoint(str(run / 'epoch_3.pth'))
    assert f'--resume {run / "epoch_2.pth"}.' in str(info.value)
    (run / 'iter_1.pth').unlink()
    (run / 'epoch_3.pth').write_bytes(whole.read_bytes())
    (run / 'best_R1_epoch_2.pth').write_bytes(cut)
    with pytest.raises(CheckpointFormatError) as info:
        load_trusted_checkpoint(str(run / 'best_R1_epoch_2.pth'))
    message = str(info.value)
    assert 'Download' not in message
    assert f'--resume {run / "epoch_3.pth"}.' in message
    # Any file next to a last_checkpoint is one of the run's.
    (run / 'last_checkpoint').write_text(str(run / 'epoch_3.pth'))
    (run / 'model_final.pth').write_bytes(cut)
    with pytest.raises(CheckpointFormatError) as info:
        load_trusted_checkpoint(str(run / 'model_final.pth'))
    assert f'--resume {run / "epoch_3.pth"}.' in str(info.value)


def test_run_checkpoints_are_mmengines_names_only(tmp_path):
    """``epoch_N.pth``/``iter_N.pth`` exactly, in step order: a backup or a
    best checkpoint is no checkpoint of the run's sequence."""
    from mmreid.utils.checkpoint import run_checkpoints
    for name in ('epoch_10.pth', 'epoch_2.pth', 'iter_5.pth',
                 'epoch_3.pth.bak', 'epoch_4.pth~', 'best_R1_epoch_2.pth',
                 'epoch_x.pth', 'last_checkpoint'):
        (tmp_path / name).write_bytes(b'')
    assert run_checkpoints(str(tmp_path)) == [('epoch', 2, 'epoch_2.pth'),
                                              ('epoch', 10, 'epoch_10.pth'),
                                              ('iter', 5, 'iter_5.pth')]


def test_a_work_dir_without_last_checkpoint_names_its_last_ones(tmp_path):
    """The refusal names the run's last three checkpoints by step and the
    --resume of the last; one checkpoint is named in the singular."""
    from mmreid.utils.checkpoint import last_run_checkpoint
    (tmp_path / 'epoch_1.pth').write_bytes(b'')
    with pytest.raises(FileNotFoundError) as info:
        last_run_checkpoint(str(tmp_path))
    message = str(info.value)
    assert f'{tmp_path} holds 1 checkpoint of a run but' in message
    assert 'would overwrite it;' in message
    for step in range(2, 6):
        (tmp_path / f'epoch_{step}.pth').write_bytes(b'')
    with pytest.raises(FileNotFoundError) as info:
        last_run_checkpoint(str(tmp_path))
    message = str(info.value)
    assert f'{tmp_path} holds 5 checkpoints of a run' in message
    assert message.endswith(
        '(last: epoch_3.pth, epoch_4.pth, epoch_5.pth), tools/train.py '
        f'CONFIG --resume {tmp_path / "epoch_5.pth"}.')


def test_last_checkpoint_outside_the_work_dir_is_named(tmp_path):
    """A recorded file outside the work dir that it does not hold is
    refused, also with the hook's out_dir given when the file there is
    gone; one that exists elsewhere is offered by its own --resume."""
    from mmreid.utils.checkpoint import last_run_checkpoint
    work_dir = tmp_path / 'run'
    work_dir.mkdir()
    store = tmp_path / 'store'
    (store / 'run').mkdir(parents=True)
    recorded = store / 'run' / 'epoch_2.pth'
    (work_dir / 'last_checkpoint').write_text(str(recorded))
    # The hook's folder is given, but its file is gone.
    with pytest.raises(FileNotFoundError, match='outside the work dir'):
        last_run_checkpoint(str(work_dir), out_dir=str(store))
    recorded.write_bytes(b'')
    assert last_run_checkpoint(
        str(work_dir), out_dir=str(store)) == str(recorded)
    # Without the out_dir, the file is another folder's: named, with the
    # --resume that goes on from it on purpose.
    with pytest.raises(FileNotFoundError) as info:
        last_run_checkpoint(str(work_dir))
    message = str(info.value)
    assert 'outside the work dir' in message
    assert message.endswith(f'--resume {recorded}.')


def test_the_whole_long_hash_prefix_of_a_cached_file_is_checked(tmp_path):
    """A prefix longer than 8 characters is checked whole: one that differs
    from the file's sha256 in its 10th character only is refused."""
    torch.save(dict(w=torch.arange(3.)), tmp_path / 'probe.pth')
    digest = hashlib.sha256((tmp_path / 'probe.pth').read_bytes()).hexdigest()
    near = digest[:9] + ('0' if digest[9] != '0' else '1')
    cache = tmp_path / 'cache'
    cache.mkdir()
    shutil.copy(tmp_path / 'probe.pth', cache / f'bot-{near}.pth')
    with pytest.raises(RuntimeError, match='is not the file its name'):
        load_weights_from_url(
            f'http://127.0.0.1:9/bot-{near}.pth', model_dir=str(cache))


class NoLengthHandler(http.server.BaseHTTPRequestHandler):
    """Serves a file without Content-Length (as a chunked or streamed
    response does): its end is where the connection closes."""
    protocol_version = 'HTTP/1.0'
    directory = None

    def log_message(self, *args):
        pass

    def do_GET(self):
        with open(f'{self.directory}/{self.path.lstrip("/")}', 'rb') as f:
            data = f.read()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(data)


def test_a_download_without_content_length_loads(tmp_path):
    """Content-Length is checked where the server sends it; a response
    without one (the sha256 in the name still checked) is loaded."""
    root = tmp_path / 'served'
    root.mkdir()
    torch.save(dict(w=torch.arange(5.)), root / 'w.tmp')
    digest = hashlib.sha256((root / 'w.tmp').read_bytes()).hexdigest()
    (root / 'w.tmp').rename(root / f'w-{digest[:8]}.pth')
    handler = type('Handler', (NoLengthHandler, ), dict(directory=str(root)))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = (f'http://127.0.0.1:{server.server_address[1]}/'
               f'w-{digest[:8]}.pth')
        ckpt = load_weights_from_url(url, model_dir=str(tmp_path / 'hub'))
    finally:
        server.shutdown()
        server.server_close()
    assert torch.equal(ckpt['w'], torch.arange(5.))


def test_a_url_with_a_query_is_cached_under_its_file_name(
        http_root, tmp_path_factory):
    """The cache file is named after the URL's path (torch hub's rule), a
    query left out: the file verified is the file loaded, and the next
    load reads it without a download."""
    root, url = http_root
    cache = tmp_path_factory.mktemp('hub')
    torch.save(dict(w=torch.arange(2.)), root / 'w.tmp')
    digest = hashlib.sha256((root / 'w.tmp').read_bytes()).hexdigest()
    name = f'w-{digest[:8]}.pth'
    (root / 'w.tmp').rename(root / name)
    ckpt = load_weights_from_url(f'{url}/{name}?dl=1', model_dir=str(cache))
    assert torch.equal(ckpt['w'], torch.arange(2.))
    assert sorted(p.name for p in cache.iterdir()) == [name]
    (root / name).unlink()
    ckpt = load_weights_from_url(f'{url}/{name}?dl=1', model_dir=str(cache))
    assert torch.equal(ckpt['w'], torch.arange(2.))


def fake_ranks(monkeypatch, rank, world_size, local_rank, gathered=None):
    """This process as ``rank`` of ``world_size`` (LOCAL_RANK
    ``local_rank``); all_gather_object answers ``gathered`` (this rank's
    own entry filled in). Returns the list of URLs downloaded."""
    import mmreid.utils.checkpoint as checkpoint
    monkeypatch.setenv('LOCAL_RANK', str(local_rank))
    dist_info = (rank, world_size)
    monkeypatch.setattr(checkpoint, 'get_dist_info', lambda: dist_info)

    def gather(obj):
        found = list(gathered or [None] * world_size)
        found[rank] = obj
        return found

    monkeypatch.setattr(checkpoint, 'all_gather_object', gather)
    downloads = []
    real = checkpoint.download_checkpoint

    def download(url, dst):
        downloads.append(url)
        return real(url, dst)

    monkeypatch.setattr(checkpoint, 'download_checkpoint', download)
    return downloads


def test_each_nodes_local_rank_0_downloads(http_root, tmp_path_factory,
                                           monkeypatch):
    """Only a node's local rank 0 downloads (rank 2 of 4 on a second node
    is one); another local rank reads the file its node's rank 0 cached,
    and returns its weights too."""
    root, url = http_root
    cache = str(tmp_path_factory.mktemp('hub'))
    torch.save(dict(w=torch.arange(3.)), root / 'weights.pth')
    downloads = fake_ranks(monkeypatch, rank=2, world_size=4, local_rank=0)
    ckpt = load_weights_from_url(f'{url}/weights.pth', model_dir=cache)
    assert downloads == [f'{url}/weights.pth']
    assert torch.equal(ckpt['w'], torch.arange(3.))
    (root / 'weights.pth').unlink()  # only the cached copy is left
    downloads = fake_ranks(monkeypatch, rank=1, world_size=4, local_rank=1)
    ckpt = load_weights_from_url(f'{url}/weights.pth', model_dir=cache)
    assert downloads == []
    assert torch.equal(ckpt['w'], torch.arange(3.))


def test_a_ranks_own_failure_keeps_its_type(tmp_path, monkeypatch):
    """The rank whose load failed raises its own error (here: a cached
    HTML page, CheckpointFormatError), not another rank's wrapping of it."""
    cache = tmp_path / 'hub'
    cache.mkdir()
    (cache / 'weights.pth').write_bytes(HTML_PAGE)
    fake_ranks(monkeypatch, rank=0, world_size=2, local_rank=0)
    with pytest.raises(CheckpointFormatError, match='HTML'):
        load_weights_from_url(
            'http://127.0.0.1:9/weights.pth', model_dir=str(cache))


@pytest.mark.parametrize('where', ['served', 'nowhere'])
def test_a_failed_download_names_its_url(http_root, tmp_path_factory, where):
    root, url = http_root
    if where == 'nowhere':
        url = 'http://127.0.0.1:9'
    missing = f'{url}/bot_r18-0123abcd.pth'
    with pytest.raises(OSError) as info:
        load_weights_from_url(
            missing, model_dir=str(tmp_path_factory.mktemp('hub')))
    assert missing in str(info.value)


def test_named_schemes_load_with_the_checked_download(http_root, tmp_path,
                                                      monkeypatch):
    """``torchvision://``, ``open-mmlab://`` and ``mmcls://`` name a model
    whose address mmengine looks up; mmengine then downloaded it with its
    own ``load_from_http``, which checks no hash: a file whose sha256 is
    not the one its name promises loaded, downloaded or already cached.
    They now go through mmreid's checked download."""
    from mmengine.runner import checkpoint as mm
    root, url = http_root
    hub = tmp_path / 'hub'
    monkeypatch.setattr(torch.hub, '_hub_dir', str(hub))
    torch.save(dict(w=torch.arange(3.)), root / 'probe.pth')
    digest = hashlib.sha256((root / 'probe.pth').read_bytes()).hexdigest()
    wrong = 'deadbeef' if not digest.startswith('deadbeef') else 'feedface'
    shutil.copy(root / 'probe.pth', root / f'tiny-{wrong}.pth')
    shutil.copy(root / 'probe.pth', root / f'tiny-{digest[:8]}.pth')
    table = {
        'tiny': f'{url}/tiny-{wrong}.pth',
        'tiny_right': f'{url}/tiny-{digest[:8]}.pth'
    }
    monkeypatch.setattr(mm, 'get_torchvision_models', lambda: table)
    monkeypatch.setattr(mm, 'get_external_models', lambda: table)
    monkeypatch.setattr(mm, 'get_deprecated_model_names', lambda: {})
    for scheme in ('torchvision://', 'open-mmlab://'):
        with pytest.raises(RuntimeError, match=f'invalid hash value of '
                           f'{url}/tiny-{wrong}.pth'):
            CheckpointLoader.load_checkpoint(f'{scheme}tiny')
        assert not (hub / 'checkpoints' / f'tiny-{wrong}.pth').exists()
        loaded = CheckpointLoader.load_checkpoint(f'{scheme}tiny_right')
        assert torch.equal(loaded['w'], torch.arange(3.))
    # A file already in the cache under the name is checked too.
    shutil.copy(root / 'probe.pth', hub / 'checkpoints' / f'tiny-{wrong}.pth')
    with pytest.raises(RuntimeError, match='is not the file its name prom'):
        CheckpointLoader.load_checkpoint('torchvision://tiny')


def test_a_named_checkpoint_mmengine_does_not_know_is_named(monkeypatch):
    """An unknown name (a typo of ``torchvision://resnet50``) was a bare
    ``KeyError: 'resnet5O'``; it names the scheme and the closest names."""
    with pytest.raises(ValueError) as info:
        CheckpointLoader.load_checkpoint('torchvision://resnet5O')
    message = str(info.value)
    assert "'torchvision://resnet5O'" in message
    assert "mmengine knows no torchvision:// model named 'resnet5O'" in \
        message
    assert 'the closest: resnet50' in message


def test_mmcls_checkpoints_keep_mmengines_renaming(http_root, tmp_path,
                                                   monkeypatch):
    """``mmcls://`` checkpoints are reduced as mmengine does (the
    ``backbone.`` tensors, without the prefix; the head is left out), now
    after mmreid's checked download."""
    from mmengine.runner import checkpoint as mm
    root, url = http_root
    monkeypatch.setattr(torch.hub, '_hub_dir', str(tmp_path / 'hub'))
    torch.save(
        dict(
            state_dict={
                'backbone.conv1.weight': torch.ones(1),
                'head.fc.weight': torch.zeros(1)
            }), root / 'cls.pth')
    monkeypatch.setattr(mm, 'get_mmcls_models',
                        lambda: {'cls': f'{url}/cls.pth'})
    loaded = CheckpointLoader.load_checkpoint('mmcls://cls')
    assert list(loaded['state_dict']) == ['conv1.weight']
    assert (tmp_path / 'hub' / 'checkpoints' / 'cls.pth').is_file()
