"""tools/analysis_tools/regdb_trials.py: RegDB's mean over its trials'
models, in both directions."""
import json

import pytest

from ..fixtures.dataset_trees import make_regdb
from ..fixtures.finished_runs import (REGDB, fake_test, fake_training,
                                      finished_run, trial_options,
                                      write_config)
from ..fixtures.processes import load_tool
from ..fixtures.tiny_models import tiny_model_config

TOOL = 'tools/analysis_tools/regdb_trials.py'
METRICS = ('R1', 'R10', 'R20', 'mAP', 'mINP')


def metrics(direction, values, extra=()):
    """RegDBMetric's keys of one direction: ``values`` are R1, R10, R20,
    mAP, mINP."""
    found = {
        f'regdb-{direction}/{m}': v
        for m, v in zip(('R1', 'R10', 'R20', 'mAP', 'mINP'), values)
    }
    found[f'regdb-{direction}/R5'] = values[0] + 1
    found[f'regdb-{direction}/num_query'] = 2060
    for key in extra:
        found[f'regdb-{direction}/{key}'] = 1.0
    return found


def finished_trial(work, config, trial, v2t, t2v=None, seed=0):
    """A trained run of ``trial`` (final validation ``v2t``) and its test
    in the other direction (``t2v``), where the tool puts them."""
    train = work / f'regdb_trial{trial}_seed{seed}'
    finished_run(train, config, seed, v2t, options=trial_options(trial))
    if t2v is not None:
        fake_test(
            work / f'regdb_trial{trial}_t2v_seed{seed}',
            config,
            str(train / 'epoch_2.pth'),
            t2v,
            options=trial_options(trial, 't2v'))
    return train


def no_training(*args, **kwargs):
    raise AssertionError(f'a training or test was started: {args}')


def run_tool(monkeypatch, *argv):
    tool = load_tool(TOOL)
    monkeypatch.setattr(tool.run.__globals__['subprocess'], 'run', no_training)
    tool.main([str(a) for a in argv])


def error_of(monkeypatch, *argv):
    with pytest.raises(SystemExit) as error:
        run_tool(monkeypatch, *argv)
    message = str(error.value)
    assert message.startswith('error: '), message
    return message


def cells(line):
    return [c.strip() for c in line.strip().strip('|').split('|')]


def pop_mean_std(values):
    mean = sum(values) / len(values)
    return mean, (sum((v - mean)**2 for v in values) / len(values))**0.5


@pytest.mark.parametrize('trials', [(1, 4, 7), tuple(range(1, 11))])
def test_the_mean_over_trials_from_the_definition(tmp_path, monkeypatch,
                                                  capsys, trials):
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    work = tmp_path / 'work'
    written = {}
    for trial in trials:
        # Distinct values per trial, metric and direction.
        v2t = [50.0 + 3.3 * trial + i for i in range(5)]
        t2v = [40.0 + 1.7 * trial**1.5 - i for i in range(5)]
        written[trial] = dict(v2t=v2t, t2v=t2v)
        finished_trial(work, config, trial, metrics('v2t', v2t),
                       metrics('t2v', t2v))
    out = tmp_path / 'table.md'
    run_tool(monkeypatch, config, '--trials', *trials, '--work-dir', work,
             '--no-train', '--out', out)
    text = capsys.readouterr().out
    assert out.read_text() == text
    rows = [cells(line) for line in text.splitlines()[2:]]
    assert cells(text.splitlines()[0])[1:] == ['direction', *METRICS]
    assert len(rows) == 2 * (len(trials) + 1)
    n = '' if len(trials) == 10 else f' (n={len(trials)})'
    for direction, block in (('v2t', rows[:len(trials) + 1]),
                             ('t2v', rows[len(trials) + 1:])):
        for trial, row in zip(trials, block):
            values = [f'{v:.1f}' for v in written[trial][direction]]
            assert row == [str(trial), direction, *values]
        expected = []
        for i in range(5):
            mean, std = pop_mean_std(
                [written[t][direction][i] for t in trials])
            expected.append(f'{mean:.1f} ± {std:.1f}{n}')
        assert block[-1] == ['mean ± std over trials', direction, *expected]


def test_one_direction(tmp_path, monkeypatch, capsys):
    """--directions v2t needs no test of the other direction."""
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    finished_trial(tmp_path, config, 2, metrics('v2t', [1, 2, 3, 4, 5]))
    run_tool(monkeypatch, config, '--trials', 2, '--work-dir', tmp_path,
             '--no-train', '--directions', 'v2t')
    rows = [cells(r)[:3] for r in capsys.readouterr().out.splitlines()[2:]]
    mean = ['mean ± std over trials', 'v2t', '1.0 (n=1)']
    assert rows == [['2', 'v2t', '1.0'], mean]


def test_the_missing_test_of_the_other_direction_is_named(
        tmp_path, monkeypatch):
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    finished_trial(tmp_path, config, 2, metrics('v2t', [1, 2, 3, 4, 5]))
    message = error_of(monkeypatch, config, '--trials', 2, '--work-dir',
                       tmp_path, '--no-train')
    assert f'{tmp_path}/regdb_trial2_t2v_seed0: no validation metrics' \
        in message
    assert 'test it with: ' in message
    assert f'tools/test.py {config} {tmp_path}/regdb_trial2_seed0/' \
        'epoch_2.pth' in message
    assert 'test_dataloader.dataset.direction=t2v test_evaluator.' \
        'direction=t2v' in message


def test_a_config_that_is_not_regdb_is_refused(tmp_path, monkeypatch):
    config = write_config(
        tmp_path / 'market.py',
        extra=REGDB + "val_dataloader = dict(dataset=dict("
        "type='Market1501', data_root='data/market1501'))\n")
    message = error_of(monkeypatch, config, '--work-dir', tmp_path)
    assert "val_dataloader.dataset is of type 'Market1501', not RegDB" \
        in message


@pytest.mark.parametrize('trials, expected', [
    (['0', '3'], 'trial(s) 0 outside 1..10'),
    (['3', '11'], 'trial(s) 11 outside 1..10'),
    (['3', '5', '3'], 'trial(s) 3 given more than once'),
])
def test_a_trial_outside_the_ten_or_twice_is_refused(capsys, trials, expected):
    with pytest.raises(SystemExit):
        load_tool(TOOL).parse_args(['regdb.py', '--trials', *trials])
    assert expected in capsys.readouterr().err


def test_options_that_set_a_trial_or_a_direction_are_refused(
        tmp_path, monkeypatch):
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    for option in ('val_dataloader.dataset.trial=3',
                   'test_evaluator.direction=t2v'):
        message = error_of(monkeypatch, config, '--work-dir', tmp_path,
                           '--cfg-options', option)
        assert f'--cfg-options {option}: the tool sets' in message


def test_a_run_of_another_trial_is_refused(tmp_path, monkeypatch):
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    # Trial 2's run, in the work dir of trial 3.
    finished_run(
        tmp_path / 'regdb_trial3_seed0',
        config,
        0,
        metrics('v2t', [1, 2, 3, 4, 5]),
        options=trial_options(2))
    message = error_of(monkeypatch, config, '--trials', 3, '--work-dir',
                       tmp_path, '--no-train')
    assert f'{tmp_path}/regdb_trial3_seed0: its run' in message
    assert 'train_dataloader.dataset.trial: 3 here, 2 in the run' in message


def test_a_test_of_another_checkpoint_is_refused(tmp_path, monkeypatch):
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    for trial in (1, 2):
        finished_trial(tmp_path, config, trial,
                       metrics('v2t', [1, 2, 3, 4, 5]))
    # Trial 2's checkpoint tested in trial 1's test dir.
    fake_test(
        tmp_path / 'regdb_trial1_t2v_seed0',
        config,
        str(tmp_path / 'regdb_trial2_seed0' / 'epoch_2.pth'),
        metrics('t2v', [1, 2, 3, 4, 5]),
        options=trial_options(1, 't2v'))
    message = error_of(monkeypatch, config, '--trials', 1, '--work-dir',
                       tmp_path, '--no-train')
    assert 'regdb_trial2_seed0/epoch_2.pth' in message
    assert f'not {tmp_path}/regdb_trial1_seed0/epoch_2.pth, the final ' \
        'checkpoint of' in message


@pytest.mark.parametrize('retrained', ['20260107_000000', '20260105_000000'])
def test_a_test_older_than_the_training_is_stale(tmp_path, monkeypatch,
                                                 retrained):
    """A run trained again writes epoch_2.pth again: a test from before
    is of the old model, and so may be one started in the same second
    (not later than the run)."""
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    train = finished_trial(tmp_path, config, 1,
                           metrics('v2t', [1, 2, 3, 4, 5]),
                           metrics('t2v', [1, 2, 3, 4, 5]))
    fake_training(
        train,
        config,
        0, {2: metrics('v2t', [6, 7, 8, 9, 10])},
        options=trial_options(1),
        stamp=retrained)
    message = error_of(monkeypatch, config, '--trials', 1, '--work-dir',
                       tmp_path, '--no-train')
    assert f'{tmp_path}/regdb_trial1_t2v_seed0: stale: its test ' \
        f'(20260105_000000) is not later than the run ({retrained})' \
        in message


def test_a_training_in_a_test_dir_is_refused(tmp_path, monkeypatch):
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    finished_trial(tmp_path, config, 1, metrics('v2t', [1, 2, 3, 4, 5]))
    finished_run(
        tmp_path / 'regdb_trial1_t2v_seed0',
        config,
        0,
        metrics('v2t', [1, 2, 3, 4, 5]),
        options=trial_options(1),
        stamp='20260108_000000')
    message = error_of(monkeypatch, config, '--trials', 1, '--work-dir',
                       tmp_path, '--no-train')
    assert 'regdb_trial1_t2v_seed0: its latest evaluation (20260108_000000) ' \
        'is a training, not a tools/test.py result' in message


#: A run with one key more than trial 1's, and one logged as RegDBMetric
#: did before its keys named the direction.
ONE_KEY_MORE = metrics('v2t', [1, 2, 3, 4, 5], extra=['R50'])
UNNAMED = {
    k.replace('regdb-v2t', 'regdb'): v
    for k, v in metrics('v2t', [1, 2, 3, 4, 5]).items()
}


@pytest.mark.parametrize('second, expected', [
    (ONE_KEY_MORE, 'its v2t keys differ from those of trial 1'),
    (UNNAMED, 'no regdb-v2t/R1, regdb-v2t/R10'),
])
def test_results_of_other_keys_are_refused(tmp_path, monkeypatch, second,
                                           expected):
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    finished_trial(tmp_path, config, 1, metrics('v2t', [1, 2, 3, 4, 5]))
    finished_trial(tmp_path, config, 2, second)
    message = error_of(monkeypatch, config, '--trials', 1, 2, '--work-dir',
                       tmp_path, '--no-train', '--directions', 'v2t')
    assert f'{tmp_path}/regdb_trial2_seed0: {expected}' in message


def test_a_test_of_the_other_direction_must_log_its_keys(
        tmp_path, monkeypatch):
    """A test_evaluator with its own prefix logs the same keys in both
    directions: refused, not tabulated as t2v."""
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    finished_trial(tmp_path, config, 1, metrics('v2t', [1, 2, 3, 4, 5]),
                   metrics('v2t', [1, 2, 3, 4, 5]))
    message = error_of(monkeypatch, config, '--trials', 1, '--work-dir',
                       tmp_path, '--no-train')
    assert f'{tmp_path}/regdb_trial1_t2v_seed0: no regdb-t2v/R1' in message


TINY_REGDB = tiny_model_config(num_classes=2) + """
_base_ = ['{repo}/configs/_base_/default_runtime.py']
regdb = dict(type='RegDB', data_root='{root}', trial=1,
             pipeline=test_pipeline)
train_dataloader = dict(
    batch_size=4, num_workers=0,
    sampler=dict(type='IdentitySampler', batch_size=4, num_instances=2),
    collate_fn=dict(type='default_collate'),
    dataset=dict(regdb, split='train'))
val_dataloader = dict(
    batch_size=4, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(regdb, split='test', direction='v2t'))
test_dataloader = val_dataloader
val_evaluator = dict(type='RegDBMetric', direction='v2t')
test_evaluator = val_evaluator
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01))
train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)
val_cfg = dict()
test_cfg = dict()
default_hooks = dict(checkpoint=dict(interval=1))
"""


def recorded(work_dir):
    """The metrics a run wrote itself: the last line with metrics of its
    scalars.json (a training), or its <stamp>.json (a test)."""
    (stamp, ) = [d for d in work_dir.iterdir() if d.name[:1].isdigit()]
    scalars = stamp / 'vis_data' / 'scalars.json'
    if scalars.is_file():
        lines = scalars.read_text().splitlines()
    else:
        lines = [(stamp / f'{stamp.name}.json').read_text()]
    return [json.loads(x) for x in lines if '/' in x][-1]


def test_two_trials_trained_and_tested(tmp_path, capsys):
    """Two trials of a tiny model on a RegDB tree of real images: each is
    trained in its own process, its checkpoint tested thermal -> visible,
    and the table holds what the runs recorded (the tool reads each run
    back as a finished one after it ran: its recorded config, with the
    trial and the direction, is the one asked for)."""
    from ..fixtures.processes import REPO
    root = make_regdb(tmp_path / 'RegDB', images=True)
    config = tmp_path / 'regdb.py'
    config.write_text(TINY_REGDB.format(repo=REPO, root=root))
    work = tmp_path / 'work'
    load_tool(TOOL).main(
        [str(config), '--trials', '1', '2', '--work-dir',
         str(work)])
    out = capsys.readouterr().out
    assert out.count('tools/train.py') == 2
    assert out.count('tools/test.py') == 2
    rows = [cells(line) for line in out.splitlines() if line.startswith('|')]
    by_row = {(r[0], r[1]): r[2:] for r in rows[2:]}
    for direction in ('v2t', 't2v'):
        values = []
        for trial in (1, 2):
            folder = (f'regdb_trial{trial}_seed0' if direction == 'v2t' else
                      f'regdb_trial{trial}_t2v_seed0')
            found = recorded(work / folder)
            values.append([found[f'regdb-{direction}/{m}'] for m in METRICS])
            shown = [f'{v:.1f}' for v in values[-1]]
            assert by_row[(str(trial), direction)] == shown
        expected = [
            '{:.1f} ± {:.1f} (n=2)'.format(*pop_mean_std(column))
            for column in zip(*values)
        ]
        assert by_row[('mean ± std over trials', direction)] == expected


def test_the_user_options_reach_every_run(tmp_path, monkeypatch, capsys):
    """--cfg-options are every run's (its training and its test), as
    compare_configs.py gives a seed's run them: runs trained and tested
    with them are read; without them in the tool's command they would be
    of another config."""
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    lr = {'optim_wrapper.optimizer.lr': 0.02}
    train = tmp_path / 'regdb_trial1_seed0'
    finished_run(
        train,
        config,
        0,
        metrics('v2t', [1, 2, 3, 4, 5]),
        options=dict(trial_options(1), **lr))
    fake_test(
        tmp_path / 'regdb_trial1_t2v_seed0',
        config,
        str(train / 'epoch_2.pth'),
        metrics('t2v', [6, 7, 8, 9, 10]),
        options=dict(trial_options(1, 't2v'), **lr))
    run_tool(monkeypatch, config, '--trials', 1, '--work-dir', tmp_path,
             '--no-train', '--cfg-options', 'optim_wrapper.optimizer.lr=0.02')
    rows = [cells(r)[:3] for r in capsys.readouterr().out.splitlines()[2:]]
    assert rows[0] == ['1', 'v2t', '1.0'] and rows[2] == ['1', 't2v', '6.0']


#: A config without a direction (RegDB's and RegDBMetric's default,
#: 'v2t'), and one whose test set is the other direction's.
NO_DIRECTION = """
regdb = dict(type='RegDB', data_root='data/regdb/RegDB', trial=1)
train_dataloader = dict(dataset=dict(regdb, split='train'))
val_dataloader = dict(dataset=dict(regdb, split='test'))
test_dataloader = val_dataloader
val_evaluator = dict(type='RegDBMetric')
test_evaluator = val_evaluator
"""
OTHER_TEST_SET = REGDB + """
test_dataloader = dict(dataset=dict(regdb, split='test', direction='t2v'))
test_evaluator = dict(type='RegDBMetric', direction='t2v')
"""


@pytest.mark.parametrize(
    'extra', [NO_DIRECTION, OTHER_TEST_SET],
    ids=['no direction', 'test set of the other'])
def test_the_trained_direction_is_the_validations(tmp_path, monkeypatch,
                                                  capsys, extra):
    """The run's final validation is of its val_dataloader's direction
    (RegDB's default 'v2t' when the config names none), whatever the
    config's test set; the other direction is the test."""
    config = write_config(tmp_path / 'regdb.py', extra=extra)
    finished_trial(tmp_path, config, 1, metrics('v2t', [1, 2, 3, 4, 5]),
                   metrics('t2v', [6, 7, 8, 9, 10]))
    run_tool(monkeypatch, config, '--trials', 1, '--work-dir', tmp_path,
             '--no-train')
    rows = [cells(r)[:3] for r in capsys.readouterr().out.splitlines()[2:]]
    assert rows[0] == ['1', 'v2t', '1.0'] and rows[2] == ['1', 't2v', '6.0']


@pytest.mark.parametrize('key', ['train_dataloader', 'test_dataloader'])
def test_every_dataset_of_the_config_must_be_regdb(tmp_path, monkeypatch, key):
    """A model trained (or tested) on another dataset is no RegDB trial's
    model: refused, naming the dataloader, before any run."""
    config = write_config(
        tmp_path / 'market.py',
        extra=REGDB + f"{key} = dict(dataset=dict("
        "type='Market1501', data_root='data/market1501'))\n")
    message = error_of(monkeypatch, config, '--work-dir', tmp_path)
    assert f"{key}.dataset is of type 'Market1501', not RegDB" in message


def test_a_direction_given_twice_is_tabulated_once(tmp_path, monkeypatch,
                                                   capsys):
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    finished_trial(tmp_path, config, 2, metrics('v2t', [1, 2, 3, 4, 5]))
    run_tool(monkeypatch, config, '--trials', 2, '--work-dir', tmp_path,
             '--no-train', '--directions', 'v2t', 'v2t')
    rows = [cells(r)[:2] for r in capsys.readouterr().out.splitlines()[2:]]
    assert rows == [['2', 'v2t'], ['mean ± std over trials', 'v2t']]


def test_the_tool_has_one_seed(capsys):
    """--seed, not compare_configs.py's --seeds: a --seeds it took would be
    ignored, every run being of --seed."""
    with pytest.raises(SystemExit):
        load_tool(TOOL).parse_args(['regdb.py', '--seeds', '1', '2'])
    assert 'unrecognized arguments: --seeds' in capsys.readouterr().err


def test_a_test_of_another_epoch_is_refused(tmp_path, monkeypatch):
    """The other direction is the final model's: a test of an earlier
    checkpoint of the same run is refused, naming both."""
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    train = finished_trial(tmp_path, config, 1,
                           metrics('v2t', [1, 2, 3, 4, 5]))
    fake_test(
        tmp_path / 'regdb_trial1_t2v_seed0',
        config,
        str(train / 'epoch_1.pth'),
        metrics('t2v', [1, 2, 3, 4, 5]),
        options=trial_options(1, 't2v'))
    message = error_of(monkeypatch, config, '--trials', 1, '--work-dir',
                       tmp_path, '--no-train')
    assert f"tested '{train}/epoch_1.pth', not {train}/epoch_2.pth, the " \
        'final checkpoint of' in message


def test_a_test_on_another_trials_test_set_is_refused(tmp_path, monkeypatch):
    """Trial 1's model tested on trial 2's test set (whose ids trial 1
    trains on) is no result of trial 1: its recorded config differs."""
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    train = finished_trial(tmp_path, config, 1,
                           metrics('v2t', [1, 2, 3, 4, 5]))
    fake_test(
        tmp_path / 'regdb_trial1_t2v_seed0',
        config,
        str(train / 'epoch_2.pth'),
        metrics('t2v', [1, 2, 3, 4, 5]),
        options=dict(
            trial_options(1, 't2v'), **{'test_dataloader.dataset.trial': 2}))
    message = error_of(monkeypatch, config, '--trials', 1, '--work-dir',
                       tmp_path, '--no-train')
    assert 'regdb_trial1_t2v_seed0: its run (20260105_000000) was tested ' \
        'with another config than' in message
    assert 'test_dataloader.dataset.trial: 1 here, 2 in the run' in message


def test_only_the_directions_keys_must_agree(tmp_path, monkeypatch, capsys):
    """A validation that also logs keys of the other direction (a second
    metric) differs from another trial's in those keys only: the v2t mean
    is still of one metric, and is tabulated."""
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    finished_trial(tmp_path, config, 1, metrics('v2t', [1, 2, 3, 4, 5]))
    finished_trial(
        tmp_path, config, 2,
        dict(metrics('v2t', [3, 4, 5, 6, 7]), **{'regdb-t2v/R1': 9}))
    run_tool(monkeypatch, config, '--trials', 1, 2, '--work-dir', tmp_path,
             '--no-train', '--directions', 'v2t')
    rows = [cells(r)[:3] for r in capsys.readouterr().out.splitlines()[2:]]
    assert rows[-1] == ['mean ± std over trials', 'v2t', '2.0 ± 1.0 (n=2)']


def test_the_table_is_markdown(tmp_path, monkeypatch, capsys):
    """The delimiter row has one cell per header cell (a Markdown table;
    with fewer, the file renders as text)."""
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    finished_trial(tmp_path, config, 2, metrics('v2t', [1, 2, 3, 4, 5]))
    run_tool(monkeypatch, config, '--trials', 2, '--work-dir', tmp_path,
             '--no-train', '--directions', 'v2t', '--metrics', 'R1', 'mAP')
    header, delimiter = capsys.readouterr().out.splitlines()[:2]
    assert len(cells(header)) == 4
    assert cells(delimiter) == ['---'] * 4


def test_a_test_given_the_checkpoint_by_another_path_is_read(
        tmp_path, monkeypatch, capsys):
    """The test's checkpoint is compared as a real path: tools/test.py
    given it relative to the current directory, or spelt with ./, tested
    the final checkpoint all the same."""
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    finished_trial(tmp_path, config, 1, metrics('v2t', [1, 2, 3, 4, 5]))
    test_dir = tmp_path / 'regdb_trial1_t2v_seed0'
    monkeypatch.chdir(tmp_path)
    spellings = (('20260105_000000', 'regdb_trial1_seed0/epoch_2.pth'),
                 ('20260106_000000',
                  f'{tmp_path}/./regdb_trial1_seed0/epoch_2.pth'))
    for stamp, checkpoint in spellings:
        fake_test(
            test_dir,
            config,
            checkpoint,
            metrics('t2v', [6, 7, 8, 9, 10]),
            stamp=stamp,
            options=trial_options(1, 't2v'))
        run_tool(monkeypatch, config, '--trials', 1, '--work-dir', tmp_path,
                 '--no-train')
        rows = [cells(r)[:3] for r in capsys.readouterr().out.splitlines()]
        assert rows[4] == ['1', 't2v', '6.0']


def test_a_failed_test_is_named_a_test(tmp_path, monkeypatch):
    """The test of the other direction that fails is named as the test it
    is, not as a training."""
    import subprocess
    config = write_config(tmp_path / 'regdb.py', extra=REGDB)
    finished_trial(tmp_path, config, 1, metrics('v2t', [1, 2, 3, 4, 5]))
    tool = load_tool(TOOL)

    def failing(cmd, **kwargs):
        raise subprocess.CalledProcessError(3, cmd)

    monkeypatch.setattr(tool.run.__globals__['subprocess'], 'run', failing)
    with pytest.raises(SystemExit) as error:
        tool.main([config, '--trials', '1', '--work-dir', str(tmp_path)])
    assert str(error.value).startswith(
        f'error: {tmp_path}/regdb_trial1_t2v_seed0: the test of {config} '
        '(seed 0, --cfg-options ')
    assert 'failed (exit status 3;' in str(error.value)
