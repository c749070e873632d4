"""Hunt: outputs a failing write leaves behind.

The promise (docs/get_started.md, "6. Checkpoints and safety"; the
docstrings of the writers): a file or folder mmreid writes is the previous
complete one or the new complete one, never a half-written one, and a write
that fails says so, naming the file.
"""
import errno
import itertools
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from ..fixtures.processes import load_tool
from ..fixtures.tiny_config import write_tiny_config

_RUNS = itertools.count()


def _disk_full(path):
    return OSError(errno.ENOSPC, 'No space left on device (simulated)', path)


# ---------------------------------------------------------------------------
# tools/dataset_converters/cuhk03.py: a picture OpenCV could not write
# ---------------------------------------------------------------------------


def _write_cuhk03_mat(path, rng):
    """A two-identity, one-pair ``cuhk-03.mat`` (HDF5, MATLAB layout).

    Returns:
        dict: ``{image name: (H, W, 3) RGB array}`` it holds.
    """
    h5py = pytest.importorskip('h5py')
    cuhk03 = load_tool('tools/dataset_converters/cuhk03.py')
    expected = {}
    with h5py.File(path, 'w') as mat:
        refs = mat.create_group('#refs#')
        cells = np.empty((10, 2), dtype=h5py.ref_dtype)  # (10, pids)
        for pid in (1, 2):
            for img in range(1, 11):
                image = rng.randint(0, 255, (6, 4, 3), np.uint8)
                ds = refs.create_dataset(f'1_{pid}_{img}', data=image.T)
                cells[img - 1, pid - 1] = ds.ref
                expected[cuhk03.image_name(1, pid, 1 if img <= 5 else 2,
                                           img)] = image
        pair = refs.create_dataset('pair1', data=cells)
        mat.create_dataset(
            'labeled', data=np.array([[pair.ref]], dtype=h5py.ref_dtype).T)
    return expected


def imwrite_fills_the_disk(monkeypatch, ext: str) -> list:
    """``cv2.imwrite`` writes 4 files, then does what OpenCV does on
    ENOSPC: part of the file, and ``False``. Returns the list of the paths
    it was called with."""
    real_imwrite = cv2.imwrite
    calls = []

    def disk_fills_up(path, image, *args):
        calls.append(path)
        if len(calls) < 5:
            return real_imwrite(path, image, *args)
        ok, data = cv2.imencode(ext, image)
        with open(path, 'wb') as f:
            f.write(data.tobytes()[:len(data) // 2])
        return False

    monkeypatch.setattr(cv2, 'imwrite', disk_fills_up)
    return calls


def test_cuhk03_extraction_refuses_a_picture_opencv_did_not_write(
        tmp_path, monkeypatch):
    """A picture ``cv2.imwrite`` reports as not written fails the step.

    What the user does: ``tools/dataset_converters/cuhk03.py RAW OUT`` on
    a disk that fills up while the images are extracted from
    ``cuhk-03.mat``.

    What they get: ``cv2.imwrite`` does not raise on a write error: libpng
    prints ``Write Error`` and it returns ``False`` (a PNG written to a
    file linked to ``/dev/full`` does exactly that), leaving the cut file.
    The converter ignores that value, so ``OUT/images_labeled`` is renamed
    into place as complete with a truncated picture in it, and the CUHK03-NP
    folders are then copied from it.

    What is right: the module docstring promises that "an interrupted run
    leaves none of them half written"; a write that failed must raise,
    naming the picture, and leave no ``images_labeled`` folder.
    """
    cuhk03 = load_tool('tools/dataset_converters/cuhk03.py')
    mat_path = str(tmp_path / 'cuhk-03.mat')
    _write_cuhk03_mat(mat_path, np.random.RandomState(0))
    calls = imwrite_fills_the_disk(monkeypatch, '.png')
    out = tmp_path / 'out' / 'images_labeled'
    (tmp_path / 'out').mkdir()
    with pytest.raises(OSError) as error:
        cuhk03.extract_images(mat_path, 'labeled', str(out))
    assert osp.basename(calls[4]) in str(error.value)
    assert os.listdir(tmp_path / 'out') == []


# ---------------------------------------------------------------------------
# tools/train.py: the previous checkpoint while the next one is saved
# ---------------------------------------------------------------------------


def _train_failing_second_save(tmp_path,
                               synth_root,
                               monkeypatch,
                               extra,
                               fail_at=2):
    """Train the tiny config (2 epochs) with ``extra`` lines; the
    ``fail_at``-th checkpoint save fails as on a full disk after writing
    part of the file.

    Returns:
        tuple: The work dir and the raised error.
    """
    import mmengine.runner.runner as mmengine_runner

    from mmreid.engine.runner import ReIDRunner
    real_save = mmengine_runner.save_checkpoint
    saves = []

    def full_disk_save(checkpoint, filename, *args, **kwargs):
        saves.append(filename)
        if len(saves) < fail_at:
            return real_save(checkpoint, filename, *args, **kwargs)
        with open(filename, 'wb') as f:
            f.write(b'PK\x03\x04 half a checkpoint')
        raise _disk_full(filename)

    monkeypatch.setattr(mmengine_runner, 'save_checkpoint', full_disk_save)
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root, extra)
    cfg = Config.fromfile(config)
    cfg.work_dir = str(tmp_path / 'run')
    cfg.experiment_name = f'hunt_half_written_{next(_RUNS)}'
    with pytest.raises(OSError, match='No space left') as error:
        ReIDRunner.from_cfg(cfg).train()
    return cfg.work_dir, error.value


def test_a_failed_save_keeps_the_previous_checkpoint_with_max_keep_ckpts(
        tmp_path, synth_root, monkeypatch):
    """``max_keep_ckpts=1``: a save that fails leaves ``epoch_1.pth``.

    What the user does: trains with ``default_hooks.checkpoint.
    max_keep_ckpts=1`` (keep the last checkpoint only); the disk fills up
    while ``epoch_2.pth`` is saved (or the job is killed then).

    What they get: mmengine's ``CheckpointHook`` deletes ``epoch_1.pth``
    *before* it saves ``epoch_2.pth``; the save fails, so the work dir
    holds no checkpoint at all and ``last_checkpoint`` names the deleted
    ``epoch_1.pth``: ``--resume`` is refused and the epoch is lost.

    What is right: docs/get_started.md ("Training checkpoints ... a job
    killed while saving leaves the previous checkpoint whole, never a
    truncated one"): the previous checkpoint must survive until the new
    one is whole, so ``epoch_1.pth`` is still there, loadable, and
    ``last_checkpoint`` names it.
    """
    from mmreid.utils import load_trusted_checkpoint
    work_dir, error = _train_failing_second_save(
        tmp_path, synth_root, monkeypatch, """
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=10)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1,
                                     max_keep_ckpts=1))
""")
    assert 'epoch_2.pth' in str(error)
    names = sorted(os.listdir(work_dir))
    assert not [n for n in names if '.tmp-' in n], names
    assert 'epoch_2.pth' not in names
    assert 'epoch_1.pth' in names, names
    checkpoint = load_trusted_checkpoint(osp.join(work_dir, 'epoch_1.pth'))
    assert checkpoint['meta']['epoch'] == 1
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert osp.basename(f.read().strip()) == 'epoch_1.pth'


def test_a_failed_save_keeps_the_previous_checkpoint_whole(
        tmp_path, synth_root, monkeypatch):
    """Without ``max_keep_ckpts``: a failed save leaves the epoch before.

    What the user does: trains the default way (every checkpoint kept);
    the disk fills up while ``epoch_2.pth`` is saved.

    What is right (docs/get_started.md, "Training checkpoints"): the save
    raises, naming the file; no cut ``epoch_2.pth`` and no temporary file
    is left; ``epoch_1.pth`` is whole and ``last_checkpoint`` names it, so
    ``--resume`` goes on from epoch 1.
    """
    from mmreid.utils import load_trusted_checkpoint
    work_dir, error = _train_failing_second_save(
        tmp_path, synth_root, monkeypatch, """
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=10)
""")
    assert 'epoch_2.pth' in str(error)
    names = sorted(os.listdir(work_dir))
    assert not [n for n in names if '.tmp-' in n], names
    assert 'epoch_2.pth' not in names
    checkpoint = load_trusted_checkpoint(osp.join(work_dir, 'epoch_1.pth'))
    assert checkpoint['meta']['epoch'] == 1
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        assert osp.basename(f.read().strip()) == 'epoch_1.pth'


def test_a_failed_save_keeps_the_previous_best_checkpoint(
        tmp_path, synth_root, monkeypatch):
    """``save_best``: a better epoch whose save fails leaves the old best.

    What the user does: trains a single-domain protocol selecting the
    epoch by ``reid/mAP`` (docs/visualization.md, "Keeping the best
    checkpoint"); epoch 2 scores better and the disk fills up while
    ``best_reid_mAP_epoch_2.pth`` is saved.

    What they get: mmengine's ``CheckpointHook`` deletes
    ``best_reid_mAP_epoch_1.pth`` first, then the save fails: the run
    keeps no best checkpoint at all, the model the report would cite is
    gone.

    What is right: docs/get_started.md ("a job killed while saving leaves
    the previous checkpoint whole"): the best checkpoint so far is kept
    until its successor is whole.
    """
    from mmreid.evaluation.metrics.reid_metric import ReIDMetric
    from mmreid.utils import load_trusted_checkpoint
    real_compute = ReIDMetric.compute_metrics
    validations = []

    def improving(self, results):
        # Every validation scores better than the one before, so that
        # epoch 2 is the new best whatever the tiny model learns.
        metrics = real_compute(self, results)
        validations.append(metrics)
        metrics['mAP'] = 10.0 * len(validations)
        return metrics

    monkeypatch.setattr(ReIDMetric, 'compute_metrics', improving)
    # Saves: epoch_1, best of epoch 1, epoch_1 again (best_score recorded),
    # epoch_2, then the best of epoch 2 fails.
    work_dir, error = _train_failing_second_save(
        tmp_path,
        synth_root,
        monkeypatch,
        """
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1,
                                     save_best='reid/mAP', rule='greater'))
""",
        fail_at=5)
    assert 'best_reid_mAP_epoch_2.pth' in str(error)
    names = sorted(os.listdir(work_dir))
    assert not [n for n in names if '.tmp-' in n], names
    assert 'best_reid_mAP_epoch_2.pth' not in names
    assert 'best_reid_mAP_epoch_1.pth' in names, names
    checkpoint = load_trusted_checkpoint(
        osp.join(work_dir, 'best_reid_mAP_epoch_1.pth'))
    assert checkpoint['meta']['epoch'] == 1


def test_the_noise_market_refuses_a_picture_opencv_did_not_write(
        tmp_path, monkeypatch):
    """A noise folder with a cut picture is never marked finished.

    What the user does: ``benchmark_train.py --noise-market DIR`` on a
    disk that fills up while the noise images are written.

    What they get: ``cv2.imwrite`` reports the failed write by returning
    ``False`` (it does not raise); the tool ignores it, renames the folder
    into place with its ``.done`` marker, and every later benchmark reuses
    that folder, cut pictures included, without writing it again.

    What is right: the tool's docstring promises a folder it finished or
    none; a picture that was not written must raise, naming it, and leave
    no ``DIR``.
    """
    tool = load_tool('tools/analysis_tools/benchmark_train.py')
    monkeypatch.setattr(tool, 'NOISE_MARKET_IDS', 3)
    calls = imwrite_fills_the_disk(monkeypatch, '.jpg')
    root = tmp_path / 'noise_market'
    with pytest.raises(OSError) as error:
        tool.write_noise_market(str(root))
    assert osp.basename(calls[4]) in str(error.value)
    assert not root.exists()
    assert os.listdir(tmp_path) == []


def test_a_failed_publish_at_the_end_of_training_leaves_no_cut_file(
        tmp_path, synth_root, monkeypatch):
    """``published_keys``: the published file is whole or absent.

    What the user does: trains with ``default_hooks.checkpoint=dict(...,
    published_keys=['meta', 'state_dict'])`` (an mmengine
    ``CheckpointHook`` argument mmreid accepts), which writes
    ``epoch_<N>-<hash>.pth`` after training; the disk fills up while it is
    written.

    What they get: mmengine writes that file in place (``LocalBackend.put``
    opens the final path with ``'wb'``), bypassing the temporary-file save
    of ``ReIDRunner.save_checkpoint``: a cut file is left under a name that
    carries a hash, the form of a file ready to release.

    What is right: docs/get_started.md ("Training checkpoints ... never a
    truncated one") and the promise of no half-written output: no
    ``epoch_2-*.pth`` may be left by the failed write. mmreid refuses
    ``published_keys`` before training (its hash is not the file's
    either) and points to ``tools/model_converters/publish_model.py``.
    Here every write of bytes to a final (not hidden temporary) path fails
    halfway, as on a full disk; the run's own checkpoints go through
    temporary files.
    """
    from mmengine.fileio.backends.local_backend import LocalBackend

    from mmreid.engine.runner import ReIDRunner
    real_put = LocalBackend.put
    failed = []

    def put_fails_in_place(self, obj, filepath):
        if osp.basename(str(filepath)).startswith('.'):
            return real_put(self, obj, filepath)
        failed.append(str(filepath))
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
        raise _disk_full(str(filepath))

    monkeypatch.setattr(LocalBackend, 'put', put_fails_in_place)
    config = write_tiny_config(
        tmp_path / 'tiny.py', synth_root, """
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=10)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1,
                                     published_keys=['meta', 'state_dict']))
""")
    cfg = Config.fromfile(config)
    cfg.work_dir = str(tmp_path / 'run')
    cfg.experiment_name = f'hunt_half_written_{next(_RUNS)}'
    # Refused before training: mmengine's publish writes in place, and
    # names the file by the hash of its pickle, not of the file.
    with pytest.raises(ValueError,
                       match='default_hooks.checkpoint.published_keys'):
        ReIDRunner.from_cfg(cfg).train()
    assert not failed
    names = sorted(os.listdir(cfg.work_dir))
    assert not [n for n in names if n.startswith('epoch_2-')], names
    assert not [n for n in names if '.tmp-' in n], names


# ---------------------------------------------------------------------------
# tools/test.py --out: a dump that fails halfway
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('suffix', ['json', 'pkl'])
def test_a_metrics_dump_that_fails_halfway_keeps_the_previous_file(
        tmp_path, monkeypatch, suffix):
    """``tools/test.py --out``: a failing dump leaves the previous file.

    What the user does: ``tools/test.py CONFIG CKPT --out metrics.json``
    over the metrics of an earlier run, and the dump fails after part of
    the file is written (a value ``json`` cannot write, met after the
    first keys; a full disk for the pickle).

    What is right: the docstring of ``mmreid.utils.config.runtime.
    dump_atomic`` ("an interrupted run never leaves a truncated result
    that a later script would read"): the error propagates, the earlier
    run's file is left byte for byte, and no temporary file is beside it.
    """
    from mmreid.utils.config import runtime
    from ..fixtures.failing_writes import fail_writes
    out = tmp_path / f'metrics.{suffix}'
    out.write_bytes(b'the previous metrics\n')
    if suffix == 'json':
        # An object mmengine's JSON handler cannot write: json writes the
        # keys before it.
        metrics = {'reid/R1': 90.0, 'reid/mAP': object()}
        error = TypeError
    else:
        metrics = {'reid/R1': 90.0, 'reid/mAP': 80.0}
        fail_writes(monkeypatch, runtime)
        error = OSError
    with pytest.raises(error):
        runtime.dump_atomic(metrics, str(out))
    assert out.read_bytes() == b'the previous metrics\n'
    assert os.listdir(tmp_path) == [out.name]
