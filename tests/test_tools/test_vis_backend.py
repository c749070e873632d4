"""``tools/train.py --vis-backend``: TensorBoard gets the training losses and
the ReID metrics, and the log ends each evaluation with the results table."""
import glob
import json
import os.path as osp

import pytest

from ..fixtures.processes import PYTHON, run_process, run_tool, tool_env

ONE_EPOCH = '''
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
'''


def read_local_scalars(work_dir):
    """The LocalVisBackend's scalars.json: one dict per logged step."""
    paths = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    assert len(paths) == 1, paths
    with open(paths[0]) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_tensorboard_event_file_holds_losses_and_reid_metrics(
        make_config, tmp_path):
    pytest.importorskip(
        'torch.utils.tensorboard',
        reason='tensorboard is not installed (pip install tensorboard; '
        'requirements/tests.txt lists it)')
    from tensorboard.backend.event_processing.event_accumulator import \
        EventAccumulator
    work_dir = str(tmp_path / 'work')
    log = run_tool([
        PYTHON, 'tools/train.py',
        make_config(extra=ONE_EPOCH), '--work-dir', work_dir, '--vis-backend',
        'tensorboard'
    ])
    events = glob.glob(
        osp.join(work_dir, '*', 'vis_data', 'events.out.tfevents.*'))
    assert len(events) == 1, events
    accumulator = EventAccumulator(events[0])
    accumulator.Reload()
    tags = set(accumulator.Tags()['scalars'])
    for tag in ('loss', 'loss_cls', 'lr', 'reid/mAP', 'reid/R1', 'reid/mINP'):
        assert tag in tags, (tag, sorted(tags))
    # The event file holds the same numbers as the local scalars.json.
    local = read_local_scalars(work_dir)
    val = [row for row in local if 'reid/mAP' in row]
    assert len(val) == 1
    (event, ) = accumulator.Scalars('reid/mAP')
    assert event.value == pytest.approx(val[0]['reid/mAP'], rel=1e-6)
    losses = [row['loss'] for row in local if 'loss' in row]
    assert [e.value for e in accumulator.Scalars('loss')] == pytest.approx(
        losses, rel=1e-6)
    # After LoggerHook's line of metrics: one table with the same numbers.
    assert 'val results:' in log
    table = log.split('val results:\n', 1)[1].splitlines()
    assert table[0].split() == [
        'row', '|', 'R1', '|', 'R5', '|', 'R10', '|', 'R20', '|', 'mAP', '|',
        'mINP'
    ]
    cells = [c.strip() for c in table[2].split('|')]
    assert cells[0] == 'reid'
    assert float(cells[5]) == pytest.approx(val[0]['reid/mAP'], abs=0.005)


def test_unknown_or_missing_vis_backend_is_refused_before_training(
        make_config, tmp_path):
    proc = run_process([
        PYTHON, 'tools/train.py',
        make_config(), '--vis-backend', 'tensorbored'
    ], tool_env())
    assert proc.returncode != 0
    assert "invalid choice: 'tensorbored'" in proc.stdout


def test_runtime_snippets_add_their_backend_to_the_local_one(tmp_path):
    from mmengine.config import Config
    repo = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
    for snippet, backend in (('runtime_tensorboard', 'TensorboardVisBackend'),
                             ('runtime_wandb', 'WandbVisBackend')):
        leaf = tmp_path / f'{snippet}_leaf.py'
        leaf.write_text(f"_base_ = ['{repo}/configs/_base_/{snippet}.py']\n")
        cfg = Config.fromfile(str(leaf))
        assert [b['type'] for b in cfg.visualizer.vis_backends
                ] == ['LocalVisBackend', backend]
        # Everything else is the default runtime.
        assert cfg.default_hooks.results_table.type == 'ResultsTableHook'


def test_a_backend_named_twice_is_added_once(tmp_path):
    """``--vis-backend tensorboard tensorboard`` (a repeated name, e.g. from
    a wrapper script adding its own) gave the visualizer two TensorBoard
    backends, which mmengine refuses when the runner is built ("vis_backend
    name TensorboardVisBackend already exists")."""
    pytest.importorskip('torch.utils.tensorboard')
    from mmengine.visualization import Visualizer

    from ..fixtures.processes import load_tool
    tool = load_tool('tools/train.py')
    backends = tool.vis_backends(['tensorboard', 'tensorboard'])
    assert backends == [
        dict(type='LocalVisBackend'),
        dict(type='TensorboardVisBackend')
    ]
    visualizer = Visualizer(
        name=f'vis_backend_twice_{tmp_path.name}',
        vis_backends=backends,
        save_dir=str(tmp_path))
    assert sorted(visualizer._vis_backends) == [
        'LocalVisBackend', 'TensorboardVisBackend'
    ]
