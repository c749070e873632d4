"""open_atomic, atomic_path: a file appears complete or not at all;
atomic_folder: a folder holds one run's whole output."""
import os
import re
import socket
import stat
from pathlib import Path

import pytest

from mmreid.utils import atomic
from mmreid.utils.atomic import (atomic_folder, atomic_path, current_umask,
                                 open_atomic, output_mode)
from ..fixtures.processes import dead_pid


def test_written_file_appears_on_a_clean_exit(tmp_path):
    path = tmp_path / 'sub' / 'out.txt'
    with open_atomic(str(path), 'w', encoding='utf-8') as f:
        f.write('done')
        assert not path.exists()  # not under its name before the end
    assert path.read_text() == 'done'
    assert os.listdir(path.parent) == ['out.txt']


def test_an_error_leaves_nothing_and_keeps_the_old_file(tmp_path):
    path = tmp_path / 'out.bin'
    with pytest.raises(RuntimeError, match='interrupted'):
        with open_atomic(str(path)) as f:
            f.write(b'half')
            raise RuntimeError('interrupted')
    assert os.listdir(tmp_path) == []
    path.write_bytes(b'complete')
    with pytest.raises(RuntimeError):
        with open_atomic(str(path)) as f:
            f.write(b'half')
            raise RuntimeError('interrupted')
    assert path.read_bytes() == b'complete'
    assert os.listdir(tmp_path) == ['out.bin']


def test_atomic_path_for_writers_that_take_a_path(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    path.write_bytes(b'complete')
    with pytest.raises(RuntimeError, match='interrupted'):
        with atomic_path(str(path)) as tmp:
            assert os.path.dirname(tmp) == str(tmp_path)
            with open(tmp, 'wb') as f:
                f.write(b'half')
            raise RuntimeError('interrupted')
    assert path.read_bytes() == b'complete'
    assert os.listdir(tmp_path) == ['epoch_1.pth']
    with atomic_path(str(path)) as tmp:
        with open(tmp, 'wb') as f:
            f.write(b'new')
        assert path.read_bytes() == b'complete'
    assert path.read_bytes() == b'new'
    assert os.listdir(tmp_path) == ['epoch_1.pth']


def test_bad_mode():
    with pytest.raises(ValueError, match="mode must be 'w' or 'wb'"):
        with open_atomic('x', 'a'):
            pass


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(
    'mask, expected', [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)],
    ids=['umask022', 'umask077', 'umask002'])
def test_written_file_has_the_mode_of_a_plain_open(tmp_path, umask, mask,
                                                   expected):
    """Not the temporary file's private 0600: a result written with
    umask 022 is readable by the group and others, as with open()."""
    umask(mask)
    with open_atomic(str(tmp_path / 'out.json'), 'w') as f:
        f.write('{}')
    with open(tmp_path / 'plain.json', 'w') as f:
        f.write('{}')
    assert mode_of(tmp_path / 'out.json') == expected
    assert mode_of(tmp_path / 'plain.json') == expected


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    """As writing in place would: a file made group-writable (or private)
    stays so when a new version replaces it."""
    umask(0o022)
    path = tmp_path / 'out.bin'
    for mode in (0o664, 0o600):
        path.write_bytes(b'old')
        path.chmod(mode)
        with open_atomic(str(path)) as f:
            f.write(b'new')
        assert path.read_bytes() == b'new'
        assert mode_of(path) == mode


@pytest.mark.parametrize('from_proc', [True, False])
def test_current_umask_leaves_the_umask(umask, monkeypatch, from_proc):
    if not from_proc:  # no /proc (not Linux): set and restored
        def no_proc(*args, **kwargs):
            raise OSError('no /proc')
        monkeypatch.setattr(atomic, 'open', no_proc, raising=False)
    for mask in (0o027, 0o002):
        umask(mask)
        assert current_umask() == mask
        assert os.umask(mask) == mask


def test_output_mode_of_a_folder(tmp_path, umask):
    umask(0o022)
    assert output_mode(str(tmp_path / 'new'), folder=True) == 0o755
    assert output_mode(str(tmp_path / 'new')) == 0o644
    (tmp_path / 'kept').mkdir(mode=0o750)
    os.chmod(tmp_path / 'kept', 0o750)
    assert output_mode(str(tmp_path / 'kept'), folder=True) == 0o750
    # A folder where a file is to go (or a file where a folder) is not
    # what is replaced: the new one's mode.
    assert output_mode(str(tmp_path / 'kept')) == 0o644
    umask(0o077)
    assert output_mode(str(tmp_path / 'new'), folder=True) == 0o700


def hidden(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith('.'))


def logs(monkeypatch):
    """The lines ``mmreid.utils.atomic`` logs from now on."""
    logged = []
    monkeypatch.setattr(
        atomic,
        'print_log',
        lambda msg, **kwargs: logged.append(msg),
        raising=False)
    return logged


def write_epoch_4(folder, monkeypatch):
    """Write ``epoch_4.pth`` in ``folder`` atomically; returns the lines
    logged meanwhile."""
    logged = logs(monkeypatch)
    with open_atomic(str(folder / 'epoch_4.pth')) as f:
        f.write(b'whole')
    return logged


requires_proc = pytest.mark.skipif(
    not os.path.exists('/proc/self/ns/pid'),
    reason='pid namespaces are read from /proc (Linux)')


def own_pid_namespace():
    return os.stat('/proc/self/ns/pid').st_ino


@pytest.fixture
def no_proc(monkeypatch):
    """A system without /proc (or without it mounted)."""
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if str(path).startswith('/proc/'):
            raise FileNotFoundError(2, 'No such file or directory', path)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(atomic.os, 'stat', stat)


@requires_proc
def test_temporary_name_names_its_host_pid_namespace_and_process(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    with atomic_path(str(path)) as tmp:
        name = os.path.basename(tmp)
    host, pid = socket.gethostname(), os.getpid()
    assert re.fullmatch(
        rf'\.epoch_1\.pth\.tmp-{re.escape(host)}-pidns{own_pid_namespace()}-'
        rf'{pid}-[0-9a-f]{{32}}', name)


def test_without_proc_the_name_has_no_pid_namespace(tmp_path, no_proc):
    assert atomic.pid_namespace() is None
    path = tmp_path / 'epoch_1.pth'
    with atomic_path(str(path)) as tmp:
        name = os.path.basename(tmp)
    host, pid = socket.gethostname(), os.getpid()
    assert re.fullmatch(
        rf'\.epoch_1\.pth\.tmp-{re.escape(host)}-{pid}-[0-9a-f]{{32}}', name)


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(
        tmp_path, monkeypatch):
    """A process killed in the block (a preempted job saving a
    checkpoint) leaves its file; the next write in the folder, of any
    file, removes it and says so."""
    host, dead, hexa = socket.gethostname(), dead_pid(), 'a' * 32
    stale = [
        f'.epoch_3.pth.tmp-{host}-{dead}-{hexa}',
        f'.best_mAP_epoch_3.pth.tmp-{host}-{dead}-{hexa}'
    ]
    for name in stale:
        (tmp_path / name).write_bytes(b'half a checkpoint')
    logged = write_epoch_4(tmp_path, monkeypatch)
    assert os.listdir(tmp_path) == ['epoch_4.pth']
    assert len(logged) == 1
    assert all(str(tmp_path / name) in logged[0] for name in stale)


def test_temporary_files_of_a_live_process_or_another_host_are_kept(
        tmp_path, monkeypatch):
    """On a file system several nodes share, another node's writer may be
    running: its pid means nothing here."""
    host, dead, hexa = socket.gethostname(), dead_pid(), 'b' * 32
    kept = [
        f'.epoch_3.pth.tmp-{host}-{os.getpid()}-{hexa}',  # live
        f'.epoch_3.pth.tmp-other-node-{dead}-{hexa}',
        f'.epoch_3.pth.tmp-{host}-{10 ** 30}-{hexa}',  # no such pid
        '.epoch_3.pth.abc_1234.tmp',  # an earlier release's: no pid
        f'epoch_3.pth.tmp-{host}-{dead}-{hexa}',  # not hidden
    ]
    for name in kept:
        (tmp_path / name).write_bytes(b'x')
    # A folder is not the temporary file of a write (SynthReID's are).
    (tmp_path / f'.synth.tmp-{host}-{dead}-{hexa}').mkdir()
    kept.append(f'.synth.tmp-{host}-{dead}-{hexa}')
    logged = write_epoch_4(tmp_path, monkeypatch)
    assert sorted(os.listdir(tmp_path)) == sorted(kept + ['epoch_4.pth'])
    assert logged == []


@requires_proc
def test_a_live_writer_in_another_pid_namespace_is_not_taken_for_dead(
        tmp_path, monkeypatch):
    """Two containers may share a host name but not their pids (``docker
    run --uts=host``, the same ``--hostname``, pods with hostNetwork): the
    pid of a writer running in the other is absent here (or another
    process's), and its file was removed under it."""
    dead = dead_pid()
    with monkeypatch.context() as other_container:
        other_container.setattr(
            atomic,
            'pid_namespace',
            lambda: own_pid_namespace() + 1,
            raising=False)
        other_container.setattr(atomic.os, 'getpid', lambda: dead)
        writing = atomic.temp_name('epoch_3.pth')
    (tmp_path / writing).write_bytes(b'half a checkpoint')
    logged = write_epoch_4(tmp_path, monkeypatch)
    assert sorted(os.listdir(tmp_path)) == sorted([writing, 'epoch_4.pth'])
    assert logged == []


@requires_proc
def test_temporary_files_are_judged_within_their_pid_namespace(
        tmp_path, monkeypatch):
    host, space, dead = socket.gethostname(), own_pid_namespace(), dead_pid()
    hexa = 'e' * 32
    stale = [
        f'.epoch_3.pth.tmp-{host}-pidns{space}-{dead}-{hexa}',
        # Written before the namespace was named: read as before.
        f'.best_mAP_epoch_3.pth.tmp-{host}-{dead}-{hexa}',
    ]
    kept = [
        f'.epoch_3.pth.tmp-{host}-pidns{space}-{os.getpid()}-{hexa}',  # live
        f'.epoch_3.pth.tmp-{host}-pidns{space + 1}-{dead}-{hexa}',
        f'.epoch_3.pth.tmp-{host}-pidns{space + 1}-{os.getpid()}-{hexa}',
        f'.epoch_3.pth.tmp-node-7-pidns{space}-{dead}-{hexa}',  # other host
    ]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b'x')
    logged = write_epoch_4(tmp_path, monkeypatch)
    assert sorted(os.listdir(tmp_path)) == sorted(kept + ['epoch_4.pth'])
    assert len(logged) == 1
    assert all(str(tmp_path / name) in logged[0] for name in stale)


def test_a_hostless_temporary_file_of_a_dead_writer_is_removed(
        tmp_path, monkeypatch):
    """A name without a host (SynthReID's first release wrote
    ``.<name>.tmp-<pid>-<hex>``) is this host's: its dead writer's file is
    removed, not kept for ever as another node's; a live writer's is
    kept."""
    dead, hexa = dead_pid(), 'c' * 32
    stale = f'.epoch_3.pth.tmp-{dead}-{hexa}'
    live = f'.epoch_3.pth.tmp-{os.getpid()}-{hexa}'
    for name in (stale, live):
        (tmp_path / name).write_bytes(b'half a checkpoint')
    logged = write_epoch_4(tmp_path, monkeypatch)
    assert sorted(os.listdir(tmp_path)) == sorted([live, 'epoch_4.pth'])
    assert len(logged) == 1 and str(tmp_path / stale) in logged[0]


@requires_proc
def test_a_lock_holder_removes_other_pid_namespaces_temporary_folders(
        tmp_path):
    """SynthReID removes, under the lock every writer takes, the folders
    of other hosts and namespaces whatever their pid; a live process of
    its own namespace (a release without the lock) keeps its own."""
    host, space, hexa = socket.gethostname(), own_pid_namespace(), 'f' * 32
    live = os.getpid()
    others = [
        f'.synth.tmp-{host}-pidns{space + 1}-{live}-{hexa}',
        f'.synth.tmp-node-7-pidns{space}-{live}-{hexa}',
    ]
    mine = f'.synth.tmp-{host}-pidns{space}-{live}-{hexa}'
    for name in others + [mine]:
        (tmp_path / name).mkdir()
    removed = atomic.remove_stale_temps(
        str(tmp_path), 'synth', folders=True, other_hosts=True)
    assert sorted(removed) == sorted(str(tmp_path / n) for n in others)
    assert os.listdir(tmp_path) == [mine]


def test_without_proc_a_named_pid_namespace_is_another(tmp_path, monkeypatch,
                                                       no_proc):
    """Where this process's namespace is not known, a file naming one may
    be another container's: kept. One without (as this process writes
    them then) is judged by its pid, as before."""
    host, dead, hexa = socket.gethostname(), dead_pid(), 'a' * 32
    stale = f'.epoch_3.pth.tmp-{host}-{dead}-{hexa}'
    kept = f'.epoch_3.pth.tmp-{host}-pidns4026531836-{dead}-{hexa}'
    for name in (stale, kept):
        (tmp_path / name).write_bytes(b'x')
    logged = write_epoch_4(tmp_path, monkeypatch)
    assert sorted(os.listdir(tmp_path)) == sorted([kept, 'epoch_4.pth'])
    assert str(tmp_path / stale) in logged[0]


def test_a_temporary_file_is_kept_while_its_block_runs(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    with atomic_path(str(path)) as tmp:
        with open(tmp, 'wb') as f:
            f.write(b'first')
        # Another write in the folder starts (and removes stale files).
        with open_atomic(str(tmp_path / 'last.txt'), 'w') as f:
            f.write('x')
        assert os.path.basename(tmp) in hidden(tmp_path)
    assert path.read_bytes() == b'first'
    assert hidden(tmp_path) == []


def test_another_users_live_process_counts_as_alive(monkeypatch):

    def kill(pid, sig):
        raise PermissionError(1, 'Operation not permitted')

    monkeypatch.setattr(atomic.os, 'kill', kill)
    assert atomic.pid_alive(12345)


def test_write_image_in_the_format_of_its_extension(tmp_path):
    """RGB in, the file's own format out (PNG lossless); an extension cv2
    cannot encode leaves no file."""
    import cv2
    import numpy as np

    from mmreid.utils.atomic import write_image
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 200  # red
    write_image(str(tmp_path / 'a.png'), rgb)
    bgr = cv2.imread(str(tmp_path / 'a.png'))
    assert bgr.shape == (4, 6, 3) and (bgr[..., 2] == 200).all()
    assert (bgr[..., :2] == 0).all()
    write_image(str(tmp_path / 'a.jpg'), rgb)
    assert (tmp_path / 'a.jpg').read_bytes()[:2] == b'\xff\xd8'
    with pytest.raises((cv2.error, OSError)):
        write_image(str(tmp_path / 'a.nope'), rgb)
    assert sorted(os.listdir(tmp_path)) == ['a.jpg', 'a.png']


def replaced_folder(parent, name, pid, mtime, host=None, content='old'):
    """The previous folder a writer replacing ``parent/name`` moved aside,
    its writer ``pid`` (on ``host``, this one by default)."""
    host = socket.gethostname() if host is None else host
    path = parent / (f'.{name}.tmp-{host}-{pid}-'
                     f'{format(mtime, "x").rjust(32, "0")}.old')
    path.mkdir()
    (path / 'meta.json').write_text(content)
    os.utime(path, (mtime, mtime))
    return path


def test_the_newest_set_a_killed_swap_left_aside_is_put_back(
        tmp_path, monkeypatch):
    """Killed between moving the previous folder aside and moving the new
    one in, a writer left the folder missing: the newest folder a dead
    writer left aside is renamed back, the others removed, and one line
    says so each. A live writer's and another host's are kept."""
    logged = logs(monkeypatch)
    dead = dead_pid()
    older = replaced_folder(tmp_path, 'feats', dead, 1000, content='older')
    replaced_folder(tmp_path, 'feats', dead, 2000, content='newer')
    kept = [
        replaced_folder(tmp_path, 'feats', os.getpid(), 3000),
        replaced_folder(tmp_path, 'feats', dead, 4000, host='node-7'),
    ]
    atomic.recover_replaced_folders(str(tmp_path), 'feats')
    assert (tmp_path / 'feats' / 'meta.json').read_text() == 'newer'
    assert sorted(os.listdir(tmp_path)) == sorted(['feats'] +
                                                  [p.name for p in kept])
    assert len(logged) == 2
    assert 'Restored' in logged[0] and str(tmp_path / 'feats') in logged[0]
    assert str(older) in logged[1]
    # The folder there: a writer killed after its swap; the one it moved
    # aside is stale.
    stale = replaced_folder(tmp_path, 'feats', dead, 5000)
    assert atomic.recover_replaced_folders(str(tmp_path), 'feats') is None
    assert not stale.exists()
    assert (tmp_path / 'feats' / 'meta.json').read_text() == 'newer'


def test_stale_temporaries_are_not_taken_for_a_set_left_aside(tmp_path):
    """remove_stale_temps leaves the ``.old`` folders alone (they may be
    the only copy), and recovery leaves the half-written ones."""
    dead, hexa = dead_pid(), 'd' * 32
    half = tmp_path / f'.feats.tmp-{socket.gethostname()}-{dead}-{hexa}'
    half.mkdir()
    aside = replaced_folder(tmp_path, 'feats', dead, 1000)
    assert atomic.remove_stale_temps(
        str(tmp_path), 'feats', folders=True) == [str(half)]
    assert aside.exists()
    half.mkdir()
    atomic.recover_replaced_folders(str(tmp_path), 'feats')
    assert sorted(os.listdir(tmp_path)) == sorted(['feats', half.name])


def test_a_folder_appears_complete_or_not_at_all(tmp_path):
    path = tmp_path / 'sub' / 'labeled'
    with pytest.raises(RuntimeError, match='interrupted'):
        with atomic.atomic_folder(str(path)) as tmp:
            (Path(tmp) / 'a.png').write_bytes(b'x')
            raise RuntimeError('interrupted')
    assert os.listdir(path.parent) == []
    with atomic.atomic_folder(str(path)) as tmp:
        (Path(tmp) / 'a.png').write_bytes(b'x')
        assert not path.exists()
    assert os.listdir(path) == ['a.png']
    assert os.listdir(path.parent) == ['labeled']


def test_an_existing_folder_is_never_written_into(tmp_path, umask):
    """An existing folder with files (a user's data, an older run's
    output) is refused, naming it; an empty one is replaced."""
    path = tmp_path / 'labeled'
    path.mkdir()
    (path / 'mine.png').write_bytes(b'user data')
    with pytest.raises(FileExistsError, match=re.escape(repr(str(path)))):
        with atomic.atomic_folder(str(path)) as tmp:
            (Path(tmp) / 'a.png').write_bytes(b'x')
    assert os.listdir(path) == ['mine.png']
    assert os.listdir(tmp_path) == ['labeled']
    (path / 'mine.png').unlink()
    umask(0o022)
    with atomic.atomic_folder(str(path)) as tmp:
        (Path(tmp) / 'a.png').write_bytes(b'x')
    assert os.listdir(path) == ['a.png']
    assert mode_of(path) == 0o755
    # Another process put it there meanwhile: refused, nothing left.
    with pytest.raises(FileExistsError):
        with atomic.atomic_folder(str(tmp_path / 'raced')) as tmp:
            (tmp_path / 'raced').mkdir()
            (tmp_path / 'raced' / 'theirs.png').write_bytes(b'y')
    assert os.listdir(tmp_path / 'raced') == ['theirs.png']
    assert hidden(tmp_path) == []


#: The entries the writer of the atomic_folder tests writes.
PICTURES = r'pic_\d+\.jpg'


def write_pictures(folder, names, monkeypatch=None, fail=False):
    """Write ``names`` (each holding b'new') as one run's output of
    ``folder``; returns the lines logged."""
    logged = [] if monkeypatch is None else logs(monkeypatch)
    with atomic_folder(str(folder), PICTURES, 'Writer') as tmp:
        for name in names:
            with open(os.path.join(tmp, name), 'wb') as f:
                f.write(b'new')
        if fail:
            raise OSError('disk full (simulated)')
    return logged


def test_a_folder_is_replaced_as_a_whole(tmp_path, monkeypatch):
    """An earlier run's pictures that this run does not write are gone,
    not left beside the new ones; the log names what was replaced."""
    out = tmp_path / 'pics'
    out.mkdir()
    for name in ('pic_0.jpg', 'pic_1.jpg', 'pic_2.jpg'):
        (out / name).write_bytes(b'old')
    logged = write_pictures(out, ['pic_0.jpg'], monkeypatch)
    assert sorted(os.listdir(out)) == ['pic_0.jpg']
    assert (out / 'pic_0.jpg').read_bytes() == b'new'
    assert os.listdir(tmp_path) == ['pics']  # no temporary folder left
    assert len(logged) == 1
    assert str(out) in logged[0]
    assert all(f'pic_{i}.jpg' in logged[0] for i in range(3))
    # A new folder: nothing replaced, nothing said.
    assert write_pictures(tmp_path / 'new', ['pic_0.jpg'], monkeypatch) == []
    assert os.listdir(tmp_path / 'new') == ['pic_0.jpg']


def test_a_folder_holding_other_files_is_refused(tmp_path):
    out = tmp_path / 'pics'
    out.mkdir()
    (out / 'pic_0.jpg').write_bytes(b'old')
    (out / 'notes.txt').write_bytes(b'mine')
    refused = r"Writer: .*pics.* holds \['notes.txt'\]"
    with pytest.raises(FileExistsError, match=refused):
        write_pictures(out, ['pic_0.jpg'])
    assert sorted(os.listdir(out)) == ['notes.txt', 'pic_0.jpg']
    assert (out / 'pic_0.jpg').read_bytes() == b'old'
    (tmp_path / 'file').write_bytes(b'')
    with pytest.raises(NotADirectoryError, match='not a directory'):
        write_pictures(tmp_path / 'file', [])


def test_an_error_keeps_the_previous_folder(tmp_path):
    out = tmp_path / 'pics'
    out.mkdir()
    (out / 'pic_0.jpg').write_bytes(b'old')
    with pytest.raises(OSError, match='simulated'):
        write_pictures(out, ['pic_0.jpg', 'pic_1.jpg'], fail=True)
    assert os.listdir(out) == ['pic_0.jpg']
    assert (out / 'pic_0.jpg').read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['pics']


def test_a_failed_swap_puts_the_previous_folder_back(tmp_path, monkeypatch):
    """Interrupted between moving the previous folder aside and renaming
    the new one into its place: the previous folder is back."""
    out = tmp_path / 'pics'
    out.mkdir()
    (out / 'pic_0.jpg').write_bytes(b'old')
    rename, renamed = os.rename, []

    def second_rename_fails(src, dst):
        renamed.append(dst)
        if len(renamed) == 2:  # the new folder into the place of the old
            raise KeyboardInterrupt
        rename(src, dst)

    monkeypatch.setattr(atomic.os, 'rename', second_rename_fails)
    with pytest.raises(KeyboardInterrupt):
        write_pictures(out, ['pic_1.jpg'])
    monkeypatch.undo()
    assert renamed[1] == str(out) and len(renamed) == 3
    assert os.listdir(out) == ['pic_0.jpg']
    assert os.listdir(tmp_path) == ['pics']


def test_a_killed_runs_temporary_folder_is_removed_by_the_next(tmp_path):
    host, dead, hexa = socket.gethostname(), dead_pid(), 'a' * 32
    stale = tmp_path / f'.pics.tmp-{host}-{dead}-{hexa}'
    stale.mkdir()
    (stale / 'pic_0.jpg').write_bytes(b'half')
    write_pictures(tmp_path / 'pics', ['pic_0.jpg'])
    assert os.listdir(tmp_path) == ['pics']


def test_a_folder_gets_the_mode_of_a_plain_mkdir(tmp_path, umask):
    umask(0o022)
    write_pictures(tmp_path / 'pics', ['pic_0.jpg'])
    assert mode_of(tmp_path / 'pics') == 0o755


def test_a_folder_a_killed_swap_left_aside_is_restored_then_replaced(
        tmp_path, monkeypatch):
    """A writer killed between its two renames left no folder, only the
    previous one aside (``.old``): the next write puts it back first, so
    that an error now would still leave it, then replaces it whole."""
    aside = replaced_folder(tmp_path, 'pics', dead_pid(), 1000)
    (aside / 'meta.json').rename(aside / 'pic_7.jpg')
    with pytest.raises(OSError, match='simulated'):
        write_pictures(tmp_path / 'pics', ['pic_0.jpg'], fail=True)
    assert os.listdir(tmp_path) == ['pics']
    assert os.listdir(tmp_path / 'pics') == ['pic_7.jpg']
    logged = write_pictures(tmp_path / 'pics', ['pic_0.jpg'], monkeypatch)
    assert os.listdir(tmp_path) == ['pics']
    assert os.listdir(tmp_path / 'pics') == ['pic_0.jpg']
    assert logged == [
        f"Writer: replaced an earlier run's output in {tmp_path / 'pics'}: "
        'pic_7.jpg'
    ]


def test_the_current_directory_is_never_replaced(tmp_path, monkeypatch):
    """``--report .`` in a folder of an earlier report: the swap would
    move the process's own directory away; refused, nothing changed."""
    out = tmp_path / 'pics'
    out.mkdir()
    (out / 'pic_0.jpg').write_bytes(b'old')
    monkeypatch.chdir(out)
    with pytest.raises(ValueError, match='holds the current directory'):
        write_pictures('.', ['pic_0.jpg'])
    assert os.listdir(out) == ['pic_0.jpg']
    assert (out / 'pic_0.jpg').read_bytes() == b'old'
    (out / 'sub').mkdir()
    monkeypatch.chdir(out / 'sub')
    with pytest.raises(ValueError, match='holds the current directory'):
        write_pictures('..', ['pic_0.jpg'])


def test_a_name_that_only_starts_as_an_output_is_refused(tmp_path):
    """``pic_0.jpg.bak`` (a user's backup) begins as the writer's name but
    is not one: refused, kept; the whole name must be an output's."""
    out = tmp_path / 'pics'
    out.mkdir()
    (out / 'pic_0.jpg.bak').write_bytes(b'mine')
    with pytest.raises(FileExistsError, match=r"holds \['pic_0.jpg.bak'\]"):
        write_pictures(out, ['pic_0.jpg'])
    assert os.listdir(out) == ['pic_0.jpg.bak']
    assert (out / 'pic_0.jpg.bak').read_bytes() == b'mine'


def test_a_temporary_file_in_the_folder_is_the_writers_own(tmp_path):
    """A temporary file a killed write left in the folder is the writer's
    own (see temp_name): the folder is replaced, not refused."""
    out = tmp_path / 'pics'
    out.mkdir()
    (out / 'pic_0.jpg').write_bytes(b'old')
    half = f'.pic_1.jpg.tmp-{socket.gethostname()}-{dead_pid()}-{"e" * 32}'
    (out / half).write_bytes(b'half')
    write_pictures(out, ['pic_0.jpg'])
    assert os.listdir(out) == ['pic_0.jpg']
    assert (out / 'pic_0.jpg').read_bytes() == b'new'


def test_a_linked_output_folder_stays_a_link(tmp_path):
    """``out`` a link to a folder elsewhere: the link is kept and the
    folder it names gets the run's output."""
    target = tmp_path / 'disk' / 'pics'
    target.mkdir(parents=True)
    (target / 'pic_0.jpg').write_bytes(b'old')
    link = tmp_path / 'pics'
    link.symlink_to(target)
    write_pictures(link, ['pic_1.jpg'])
    assert link.is_symlink() and os.path.realpath(link) == str(target)
    assert os.listdir(target) == ['pic_1.jpg']
    assert (target / 'pic_1.jpg').read_bytes() == b'new'


def test_a_current_directory_that_only_shares_the_prefix_is_not_held(
        tmp_path, monkeypatch):
    """Run from ``pics2``, writing ``pics`` is not writing the current
    directory's parent: it is done, not refused."""
    (tmp_path / 'pics2').mkdir()
    monkeypatch.chdir(tmp_path / 'pics2')
    write_pictures(tmp_path / 'pics', ['pic_0.jpg'])
    assert os.listdir(tmp_path / 'pics') == ['pic_0.jpg']


def test_the_restored_folder_is_not_logged_as_removed(tmp_path, monkeypatch):
    """The one folder a killed swap left aside is put back: the log says
    it was restored, and names no folder removed."""
    logged = logs(monkeypatch)
    aside = replaced_folder(tmp_path, 'feats', dead_pid(), 1000)
    assert atomic.recover_replaced_folders(str(tmp_path),
                                           'feats') == str(aside)
    assert os.listdir(tmp_path) == ['feats']
    assert len(logged) == 1 and logged[0].startswith('Restored')


def test_a_refused_folder_is_refused_before_the_block_runs(tmp_path):
    """The refusal comes at the start: nothing of the run is computed or
    written before it."""
    out = tmp_path / 'pics'
    out.mkdir()
    (out / 'notes.txt').write_bytes(b'mine')
    ran = []
    with pytest.raises(FileExistsError, match=r"holds \['notes.txt'\]"):
        with atomic_folder(str(out), PICTURES, 'Writer'):
            ran.append(True)
    assert ran == []
    assert os.listdir(tmp_path) == ['pics']
