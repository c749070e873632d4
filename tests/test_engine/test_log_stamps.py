"""Every run logs into a timestamp folder of its own.

mmengine names a run's log folder after the second it started, and its
logger, message hub and visualizer after the experiment name and that
second: two runs started in one second on one work dir wrote one log file
and one ``scalars.json``, and two runners built in one second in one
process shared their logger and message hub.
"""
import json
import os
import time

from mmengine.config import Config

from mmreid.engine.runner import ReIDRunner, work_dir_lock
from ..fixtures.processes import load_tool
from ..fixtures.tiny_config import write_tiny_config


def build(config, work_dir, experiment_name):
    """A runner of ``config`` in ``work_dir``, named ``experiment_name``."""
    cfg = Config.fromfile(config)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = experiment_name
    return ReIDRunner.from_cfg(cfg)


def run_log(runner) -> str:
    """The text of a runner's log file."""
    with open(os.path.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        return f.read()


def test_a_taken_stamp_gets_a_number(tmp_path, monkeypatch):
    monkeypatch.setattr(work_dir_lock, '_TAKEN_STAMPS', set())
    stamp = '20261206_230000'
    (tmp_path / stamp).mkdir()  # another process's run of that second
    first = work_dir_lock.claim_log_stamp(str(tmp_path), stamp)
    assert first == f'{stamp}_1' and (tmp_path / first).is_dir()
    # Taken by a runner of this process in another work dir.
    other = tmp_path / 'other'
    other.mkdir()
    assert work_dir_lock.claim_log_stamp(str(other), stamp) == stamp
    assert work_dir_lock.claim_log_stamp(str(other),
                                         stamp) == f'{stamp}_2'
    assert sorted(os.listdir(other)) == [stamp, f'{stamp}_2']


def test_two_runners_of_one_second_log_apart(tmp_path, synth_root,
                                             monkeypatch):
    """Two runners built in the same second (one experiment name) on one
    work dir: each has its own log folder, log file, logger and message
    hub, and the analysis tools read both runs, in order."""
    monkeypatch.setattr(work_dir_lock, '_TAKEN_STAMPS', set(), raising=False)
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root)
    now = time.time()
    monkeypatch.setattr(time, 'time', lambda: now)

    first, second = (build(config, tmp_path / 'run', 'same_name')
                     for _ in range(2))
    monkeypatch.undo()
    stamp = time.strftime('%Y%m%d_%H%M%S', time.localtime(now))
    assert (first.timestamp, second.timestamp) == (stamp, f'{stamp}_1')
    assert first.log_dir != second.log_dir
    assert first.logger is not second.logger
    assert first.message_hub is not second.message_hub
    first.logger.info('the first run')
    second.logger.info('the second run')
    logs = [run_log(r) for r in (first, second)]
    assert 'the first run' in logs[0] and 'the second run' not in logs[0]
    assert 'the second run' in logs[1] and 'the first run' not in logs[1]
    # Each logs its own metrics; the latest run's are read last.
    records = load_tool('tools/analysis_tools/run_records.py')
    for runner, value in ((second, 2.0), (first, 1.0)):
        with open(os.path.join(runner.log_dir, f'{runner.timestamp}.json'),
                  'w') as f:
            json.dump({'reid/mAP': value}, f)
    assert [(s, m) for s, _, m in records.evaluations(str(tmp_path / 'run'))
            ] == [(stamp, {
                'reid/mAP': 1.0
            }), (f'{stamp}_1', {
                'reid/mAP': 2.0
            })]
    assert records.last_validation(str(tmp_path / 'run')) == {
        'reid/mAP': 2.0
    }


def test_stamps_of_one_second_sort_by_their_number():
    records = load_tool('tools/analysis_tools/run_records.py')
    stamps = [
        '20261206_230001', '20261206_230000_10', '20261206_230000',
        '20261206_230000_2'
    ]
    assert sorted(stamps, key=records.stamp_order) == [
        '20261206_230000', '20261206_230000_2', '20261206_230000_10',
        '20261206_230001'
    ]
    assert all(records.STAMP.match(s) for s in stamps)
    for other in ('20261206_230000_0', '20261206_230000_', '2026_230000'):
        assert not records.STAMP.match(other), other


def test_the_records_of_a_work_dir_follow_the_stamp_order(tmp_path):
    """Ten runs started in one second: ``_10`` sorts before ``_2`` as
    text, which would make an older run's numbers the latest
    (``last_validation``, compare_configs) and refuse the latest run's
    dumped config as another run's."""
    records = load_tool('tools/analysis_tools/run_records.py')
    stamp = '20261206_230000'
    names = [stamp, f'{stamp}_2', f'{stamp}_9', f'{stamp}_10']
    for index, name in enumerate(names):
        (tmp_path / name).mkdir()
        (tmp_path / name / f'{name}.json').write_text(
            json.dumps({'reid/mAP': float(index)}))
    assert [found[0] for found in records.evaluations(str(tmp_path))
            ] == names
    assert records.last_validation(str(tmp_path)) == {'reid/mAP': 3.0}
    (tmp_path / 'tiny.py').write_text('answer = 42\n')
    # The copy in the work dir is a training's: the latest run trained.
    (tmp_path / f'{stamp}_10' / 'vis_data').mkdir()
    (tmp_path / f'{stamp}_10' / 'vis_data' / 'scalars.json').write_text(
        json.dumps(dict(loss=1.0, step=1)) + '\n')
    assert records.config_record(str(tmp_path), f'{stamp}_10',
                                 'tiny.py').answer == 42


def test_a_rank_other_than_0_takes_the_stamp_rank_0_claimed(
        tmp_path, monkeypatch):
    """Rank 0 claims the folder and broadcasts its name; another rank
    makes no folder of its own in the shared work dir (a stray empty one
    would count as the latest run)."""
    import mmengine.dist
    monkeypatch.setattr(work_dir_lock, '_TAKEN_STAMPS', set())
    sent = []

    def broadcast(objects, src=0, group=None):
        sent.append(list(objects))
        objects[0] = '20261206_230000_3'  # what rank 0 claimed

    monkeypatch.setattr(mmengine.dist, 'broadcast_object_list', broadcast)

    class MMEngineRunner:

        def setup_env(self, env_cfg):
            self._timestamp = '20261206_230000'  # mmengine's stamp

    class Runner(work_dir_lock.RunStampMixin, MMEngineRunner):
        pass

    runner = Runner()
    runner._work_dir, runner._rank, runner._world_size = str(tmp_path), 1, 2
    runner.setup_env({})
    assert runner._timestamp == '20261206_230000_3'
    assert sent == [[None]]
    assert os.listdir(tmp_path) == []


def test_a_run_logs_into_its_own_log_when_a_later_runner_exists(
        tmp_path, synth_root):
    """mmreid logs with ``logger='current'``, the runner built last: a
    runner built before another and trained after it wrote its dataset
    tables and warnings into the other run's log."""
    import warnings
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root,
                               'train_cfg = dict(max_epochs=1)')

    first, second = (build(config, tmp_path / name, f'own_log_{name}')
                     for name in ('first', 'second'))
    first.train()
    warnings.warn('a warning during the first run')
    assert 'synthreid-d0' in run_log(first)
    assert 'Epoch(train)' in run_log(first)
    assert 'a warning during the first run' in run_log(first)
    assert 'synthreid-d0' not in run_log(second)
    assert 'a warning during the first run' not in run_log(second)


def test_the_warnings_of_a_runners_build_go_into_its_log(
        tmp_path, synth_root, monkeypatch):
    """A runner built from Python wrote the warnings of its own build
    (its model, its hooks) into the log of the runner built before it,
    or nowhere."""
    import warnings

    from mmreid.engine.runner import reid_runner
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root)

    first = build(config, tmp_path / 'first', 'build_warnings_first')
    real = reid_runner.collect_env

    def warning_env():
        warnings.warn('a warning while the second runner is built')
        return real()

    monkeypatch.setattr(reid_runner, 'collect_env', warning_env)
    second = build(config, tmp_path / 'second', 'build_warnings_second')
    assert 'a warning while the second runner is built' in run_log(second)
    assert 'a warning while the second runner is built' not in run_log(first)
