"""Wrong-number hunt in the work dirs and the run records the tools read.

Each test builds a work dir as ``tools/train.py`` and ``tools/test.py``
leave it (timestamp folders, ``vis_data/scalars.json``, the config copies,
``last_checkpoint``) and checks that the analysis tools read the run the
user means, or refuse a dir whose records are ambiguous.
"""
import json

from ..fixtures.finished_runs import (REGDB, fake_test, fake_training,
                                      finished_gap_runs, finished_run,
                                      gap_effect_refusal, trial_options,
                                      write_config)
from ..fixtures.processes import load_tool

GAP_EFFECT = 'tools/analysis_tools/gap_effect.py'
REGDB_TRIALS = 'tools/analysis_tools/regdb_trials.py'
COMPARE = 'tools/analysis_tools/compare_configs.py'


def _later_training(work_dir, config, options, epochs, stamp):
    """A later ``tools/train.py`` run into ``work_dir`` that trained
    ``epochs`` epochs and was stopped before it logged a validation (a
    config that validates at its last epoch only, stopped during that
    validation, or one trained with ``--no-validate``): its losses, its
    recorded config (``options``: its ``--cfg-options``), the work dir's
    config copy and ``epoch_<epochs>.pth`` and ``last_checkpoint``, which
    mmengine's ``CheckpointHook`` writes before the validation."""
    from mmreid.utils.config import load_config
    cfg = load_config(config, options, str(work_dir))
    folder = work_dir / stamp / 'vis_data'
    folder.mkdir(parents=True)
    lines = [
        json.dumps(dict(loss=1.5, epoch=epoch, step=epoch))
        for epoch in range(1, epochs + 1)
    ]
    (folder / 'scalars.json').write_text('\n'.join(lines) + '\n')
    cfg.dump(str(folder / 'config.py'))
    cfg.dump(str(work_dir / config.split('/')[-1]))
    checkpoint = work_dir / f'epoch_{epochs}.pth'
    checkpoint.write_text(f'the model of the later training {stamp}')
    (work_dir / 'last_checkpoint').write_text(str(checkpoint))
    return checkpoint


def test_gap_effect_refuses_a_final_checkpoint_of_a_later_training(
        tmp_path, monkeypatch, capsys):
    """``gap_effect.py`` on a work dir trained into twice.

    Each run of ``bn.py`` and ``mbn.py`` finished (validation at its final
    epoch 12, the table's R1). Into the seed-0 BN work dir the user then
    started a second training by mistake, with another seed
    (``--cfg-options randomness.seed=5``), and stopped it during its final
    validation (the SynthReID schedules validate at the last epoch only,
    ``val_interval=max_epochs``; a visible evaluation takes minutes):
    mmengine's ``CheckpointHook`` had already written ``epoch_12.pth``
    and ``last_checkpoint``. The tool reads the first run's final
    validation (the second logged none) and measures the gap of
    ``epoch_12.pth``, the second run's model: the gap column and the plot
    are of another model than the R1 beside them. The module docstring
    promises the gap "of a run is measured on its last checkpoint"; the
    file of that name is no longer that run's, so the work dir must be
    refused (two trainings, the later one of another config).
    """
    tool = load_tool(GAP_EFFECT)
    monkeypatch.chdir(tmp_path)
    measured = finished_gap_runs(tool, tmp_path, monkeypatch)
    _later_training(tmp_path / 'bn_seed0', 'bn.py',
                    {'randomness.seed': 5}, 12, '20260102_000000')
    refused = gap_effect_refusal(tool, tmp_path)
    capsys.readouterr()
    assert refused is not None, (
        'gap measured on the later training\'s model next to the first '
        f'run\'s R1: {measured}')


def _regdb_metrics(direction, r1):
    """RegDBMetric's keys of one direction, R1 ``r1``."""
    found = {
        f'regdb-{direction}/{m}': r1 + i
        for i, m in enumerate(('R1', 'R5', 'R10', 'R20', 'mAP', 'mINP'))
    }
    found[f'regdb-{direction}/num_query'] = 2060
    return found


def test_regdb_directions_are_of_one_model(tmp_path, monkeypatch, capsys):
    """``regdb_trials.py`` after a second training into a trial's dir.

    Trial 1 was trained (final validation v2t, R1 40) into
    ``regdb_trial1_seed0``. The user then trained it again there with
    ``--cfg-options optim_wrapper.optimizer.lr=0.5`` and stopped it in
    its final validation, after ``epoch_2.pth`` was written; then
    ``tools/test.py`` tested that ``epoch_2.pth`` thermal -> visible
    into ``regdb_trial1_t2v_seed0`` (R1 70). The module docstring says
    the other direction is "tools/test.py of the same final checkpoint"
    as the run's final validation. The tool prints the lr-0.1 run's v2t
    R1 40 and the lr-0.5 model's t2v R1 70 as trial 1's two directions
    (exit 0). Two models' numbers in one trial's rows: the trial must be
    refused (its final checkpoint is not of the run whose validation is
    read).
    """
    tool = load_tool(REGDB_TRIALS)

    def no_training(*args, **kwargs):
        raise AssertionError(f'a training or test was started: {args}')

    monkeypatch.setattr(tool.run.__globals__['subprocess'], 'run',
                        no_training)
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    train = tmp_path / 'regdb_trial1_seed0'
    finished_run(
        train,
        config,
        0,
        _regdb_metrics('v2t', 40.0),
        options=trial_options(1))
    checkpoint = _later_training(
        train, config,
        dict(trial_options(1), **{'optim_wrapper.optimizer.lr': 0.5}), 2,
        '20260102_000000')
    fake_test(
        tmp_path / 'regdb_trial1_t2v_seed0',
        config,
        str(checkpoint),
        _regdb_metrics('t2v', 70.0),
        options=trial_options(1, 't2v'))
    try:
        tool.main([
            config, '--trials', '1', '--work-dir',
            str(tmp_path), '--no-train'
        ])
    except SystemExit as error:
        refused = str(error)
    else:
        refused = None
    out = capsys.readouterr().out
    assert refused is not None, f'one trial, two models:\n{out}'


def _compare(monkeypatch, tmp_path, config):
    """``compare_configs.py CONFIG --seeds 0 --no-train --metrics R1`` on
    the runs in ``tmp_path/runs``: its exit (None when it printed a
    table)."""
    tool = load_tool(COMPARE)
    monkeypatch.chdir(tmp_path)
    try:
        tool.main([
            config, '--work-dir',
            str(tmp_path / 'runs'), '--no-train', '--seeds', '0',
            '--metrics', 'R1'
        ])
    except SystemExit as error:
        return error
    return None


def test_a_resumed_run_is_read_from_its_final_validation(
        tmp_path, monkeypatch, capsys):
    """A training killed after epoch 1 of 2 (validation R1 10) and resumed
    with ``tools/train.py a.py --resume`` (its own timestamp folder,
    validation at epoch 2: R1 30): the run's result is the resumed part's
    final validation, 30, not the killed part's 10."""
    config = write_config(tmp_path / 'a.py', max_epochs=2)
    work_dir = tmp_path / 'runs' / 'a_seed0'
    fake_training(work_dir, config, 0, {1: {'d3/R1': 10.0}},
                  stamp='20260101_000000')
    fake_training(
        work_dir,
        config,
        0, {2: {
            'd3/R1': 30.0
        }},
        options={
            'resume': True,
            'load_from': str(work_dir / 'epoch_1.pth')
        },
        stamp='20260101_000000_1')
    assert _compare(monkeypatch, tmp_path, config) is None
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith('| ')]
    assert '30.0' in rows[-1] and '10.0' not in rows[-1], out


def test_a_retest_with_other_options_in_the_training_dir_is_refused(
        tmp_path, monkeypatch, capsys):
    """The README's test command run in the training's work dir with
    ``--cfg-options`` of another test set: its metrics (R1 90) are the
    work dir's latest evaluation, but of another test set than the
    config's, so they must not be printed as the config's result."""
    config = write_config(tmp_path / 'a.py', max_epochs=2)
    work_dir = tmp_path / 'runs' / 'a_seed0'
    finished_run(work_dir, config, 0, {'d3/R1': 30.0})
    fake_test(
        work_dir,
        config,
        str(work_dir / 'epoch_2.pth'), {'d3/R1': 90.0},
        options={'test_dataloader.dataset.domain': 0})
    error = _compare(monkeypatch, tmp_path, config)
    assert error is not None and error.code not in (0, None)
    assert 'test_dataloader' in str(error.code)
    assert '90.0' not in capsys.readouterr().out
