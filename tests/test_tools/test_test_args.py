"""tools/test.py refuses bad arguments before it builds or evaluates."""
import os.path as osp
import sys

import pytest

from ..fixtures.processes import REPO, load_tool, run_main

CONFIG = osp.join(REPO, 'configs', 'baseline', 'bot_r18_synthreid.py')


@pytest.fixture(scope='module')
def test_tool():
    return load_tool('tools/test.py')


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    path.write_bytes(b'not read by the argument check')
    return str(path)


def parse(test_tool, monkeypatch, capsys, *argv) -> str:
    monkeypatch.setattr(sys, 'argv', ['tools/test.py', *argv])
    with pytest.raises(SystemExit) as info:
        test_tool.parse_args()
    assert info.value.code == 2
    return capsys.readouterr().err


def test_out_with_a_wrong_extension(test_tool, monkeypatch, capsys,
                                    checkpoint):
    err = parse(test_tool, monkeypatch, capsys, CONFIG, checkpoint, '--out',
                'm.txt')
    assert "--out 'm.txt'" in err and '.json' in err and '.pkl' in err


def test_out_that_is_a_directory(test_tool, monkeypatch, capsys, checkpoint,
                                 tmp_path):
    (tmp_path / 'metrics.json').mkdir()
    err = parse(test_tool, monkeypatch, capsys, CONFIG, checkpoint, '--out',
                str(tmp_path / 'metrics.json'))
    assert 'is a directory' in err


def test_missing_files(test_tool, monkeypatch, capsys, checkpoint, tmp_path):
    err = parse(test_tool, monkeypatch, capsys, str(tmp_path / 'no.py'),
                checkpoint)
    assert f"config file {str(tmp_path / 'no.py')!r} does not exist" in err
    err = parse(test_tool, monkeypatch, capsys, CONFIG,
                str(tmp_path / 'no.pth'))
    assert 'no.pth' in err and 'is not a file' in err


def test_show_counts(test_tool, monkeypatch, capsys, checkpoint):
    err = parse(test_tool, monkeypatch, capsys, CONFIG, checkpoint, '--report',
                'r', '--show-topk', '0')
    assert '--show-topk must be at least 1' in err


def test_good_arguments_pass(test_tool, monkeypatch, checkpoint):
    monkeypatch.setattr(
        sys, 'argv',
        ['tools/test.py', CONFIG, checkpoint, '--out', 'metrics.json'])
    args = test_tool.parse_args()
    assert args.out == 'metrics.json'
    # A URL is downloaded later, not checked as a file.
    monkeypatch.setattr(
        sys, 'argv',
        ['tools/test.py', CONFIG, 'https://example.org/m-1a2b3c4d.pth'])
    assert test_tool.parse_args().checkpoint.startswith('https://')


@pytest.mark.parametrize('flag', ['--show-num', '--show-topk'])
def test_show_counts_need_a_drawing_option(test_tool, monkeypatch, capsys,
                                           checkpoint, flag):
    """--show-num/--show-topk only size what --report and
    --show-ranked-lists draw: given alone they are an error, not ignored.
    """
    err = parse(test_tool, monkeypatch, capsys, CONFIG, checkpoint, flag, '3')
    assert flag in err and '--report' in err and '--show-ranked-lists' in err
    for drawing in (['--report', 'r'], ['--show-ranked-lists']):
        monkeypatch.setattr(
            sys, 'argv',
            ['tools/test.py', CONFIG, checkpoint, flag, '3', *drawing])
        args = test_tool.parse_args()
        assert getattr(args, flag[2:].replace('-', '_')) == 3
    # Without them the defaults stay: 5 queries, top 10.
    monkeypatch.setattr(sys, 'argv',
                        ['tools/test.py', CONFIG, checkpoint, '--report', 'r'])
    args = test_tool.parse_args()
    assert (args.show_num, args.show_topk) == (5, 10)


def test_every_documented_out_suffix_passes(test_tool, monkeypatch,
                                            checkpoint):
    for name in ('m.json', 'm.yaml', 'm.yml', 'm.pkl', 'm.pickle'):
        monkeypatch.setattr(
            sys, 'argv', ['tools/test.py', CONFIG, checkpoint, '--out', name])
        assert test_tool.parse_args().out == name


def test_show_counts_reach_the_drawing_hooks(test_tool, monkeypatch,
                                             checkpoint, tmp_path):
    """--show-num sizes the queries drawn, --show-topk each list, in both
    the ranked-list pictures and the report."""
    built = []

    class Runner:
        rank = 0

        @classmethod
        def from_cfg(cls, cfg):
            built.append(cfg)
            return cls()

        def test(self):
            return {}

    monkeypatch.setattr(test_tool, 'build_runner', Runner.from_cfg)
    monkeypatch.setattr(sys, 'argv', [
        'tools/test.py', CONFIG, checkpoint, '--work-dir',
        str(tmp_path), '--show-ranked-lists',
        str(tmp_path / 'lists'), '--report',
        str(tmp_path / 'report'), '--show-num', '3', '--show-topk', '7'
    ])
    test_tool.main()
    [cfg] = built
    hooks = {h['type']: h for h in cfg.custom_hooks}
    for name in ('RankedListHook', 'EvalReportHook'):
        assert (hooks[name]['num_queries'], hooks[name]['topk']) == (3, 7)


def test_target_keeps_the_named_targets_only(test_tool, make_config,
                                             monkeypatch, checkpoint):
    """``--target NAME [NAME ...]`` tests some targets of a multi-target
    config, as extract_features/pytorch2onnx/browse_dataset take one."""
    from mmengine.config import Config

    from ..fixtures.multi_target import MULTI_TARGET
    config = make_config(extra=MULTI_TARGET)
    monkeypatch.setattr(
        sys, 'argv',
        ['tools/test.py', config, checkpoint, '--target', 'd0', 'd2'])
    assert test_tool.parse_args().target == ['d0', 'd2']

    def names(cfg):
        return [target['name'] for target in cfg.test_cfg.targets]

    cfg = Config.fromfile(config, import_custom_modules=False)
    assert names(cfg) == ['d2', 'd0']
    evaluator = cfg.test_cfg.targets[1].evaluator
    test_tool.select_targets(cfg, ['d0'])
    assert names(cfg) == ['d0']
    assert cfg.test_cfg.targets[0].evaluator == evaluator
    cfg = Config.fromfile(config, import_custom_modules=False)
    test_tool.select_targets(cfg, ['d0', 'd2'])
    assert names(cfg) == ['d2', 'd0']  # the config's order
    with pytest.raises(ValueError) as error:
        test_tool.select_targets(cfg, ['d3', 'd0'])
    assert str(error.value) == (
        "--target d3: no such target in test_cfg.targets; the targets are "
        "['d2', 'd0']")
    # The refusal of an override the loop would ignore counts all the
    # config's targets (0 is d2), not those left (d0 alone).
    cfg.test_evaluator = dict(distance='cosine')
    with pytest.raises(ValueError) as error:
        test_tool.select_targets(cfg, ['d0'])
    assert "(test_cfg.targets: 0 'd2', 1 'd0')" in str(error.value)
    assert '--cfg-options test_cfg.targets.0.evaluator.distance=cosine ' \
        'test_cfg.targets.1.evaluator.distance=cosine;' in str(error.value)
    single = Config.fromfile(make_config(name='single.py'))
    with pytest.raises(ValueError, match='no multi-target test loop'):
        test_tool.select_targets(single, ['d0'])


@pytest.mark.parametrize('lists', ['out', 'out/lists'])
def test_report_and_ranked_lists_need_two_folders(test_tool, monkeypatch,
                                                  capsys, checkpoint, tmp_path,
                                                  lists):
    """Each replaces its folder as a whole: one folder (or one inside the
    other) would have the second refuse, or remove, the first's files."""
    folders = ['--report', str(tmp_path / 'out')]
    folders += ['--show-ranked-lists', str(tmp_path / lists)]
    err = parse(test_tool, monkeypatch, capsys, CONFIG, checkpoint, *folders)
    assert 'give two folders' in err and str(tmp_path / lists) in err


def test_a_report_inside_the_ranked_lists_folder_is_refused(
        test_tool, monkeypatch, capsys, checkpoint, tmp_path):
    """The other nesting: the ranked lists replace their folder as a whole,
    and with it a report written inside it. Two sibling folders, even
    with a common name prefix, are accepted."""
    err = parse(test_tool, monkeypatch, capsys, CONFIG, checkpoint,
                '--report', str(tmp_path / 'lists' / 'report'),
                '--show-ranked-lists', str(tmp_path / 'lists'))
    assert 'give two folders' in err
    monkeypatch.setattr(sys, 'argv', [
        'tools/test.py', CONFIG, checkpoint, '--report',
        str(tmp_path / 'report'), '--show-ranked-lists',
        str(tmp_path / 'report_lists')
    ])
    args = test_tool.parse_args()
    assert args.show_ranked_lists == str(tmp_path / 'report_lists')


def test_the_checkpoint_is_loaded_strictly_unless_told(
        test_tool, monkeypatch, checkpoint, tmp_path):
    """The checkpoint evaluated is the one given, and a model tensor it
    lacks is an error unless ``--strict false``: a partial load tested
    random weights and printed their numbers."""
    work = ['--work-dir', str(tmp_path / 'work')]
    cfg = run_main(test_tool, monkeypatch, CONFIG, checkpoint, *work)
    assert cfg.load_from == checkpoint
    assert cfg.load_strict is True
    cfg = run_main(test_tool, monkeypatch, CONFIG, checkpoint, *work,
                   '--strict', 'false')
    assert cfg.load_strict is False


def test_out_holds_the_metrics_of_the_run(test_tool, monkeypatch, checkpoint,
                                          tmp_path):
    """``--out`` holds exactly the metrics ``runner.test()`` returned, as
    json or pickle, written by the main process only (each rank writing
    the same path raced)."""
    import json
    import pickle
    metrics = {'reid/mAP': 41.25, 'reid/R1': 63.5, 'd3/reid/R1': 50.0}
    work = ['--work-dir', str(tmp_path / 'work')]
    out = tmp_path / 'metrics.json'
    run_main(test_tool, monkeypatch, CONFIG, checkpoint, *work, '--out',
             str(out), metrics=metrics)
    assert json.loads(out.read_text()) == metrics
    out = tmp_path / 'metrics.pkl'
    run_main(test_tool, monkeypatch, CONFIG, checkpoint, *work, '--out',
             str(out), metrics=metrics)
    assert pickle.loads(out.read_bytes()) == metrics
    out = tmp_path / 'rank1.json'
    run_main(test_tool, monkeypatch, CONFIG, checkpoint, *work, '--out',
             str(out), rank=1, metrics=metrics)
    assert not out.exists()


def test_drawing_hooks_join_the_configs_hooks(test_tool, make_config,
                                              monkeypatch, checkpoint,
                                              tmp_path):
    """``--show-ranked-lists`` without a folder draws under the run's work
    dir (the hook's default), not into the current folder, which the hook
    would replace; with one, into that folder. The config's own
    ``custom_hooks`` stay beside the drawing hooks."""
    config = make_config(extra="custom_hooks = [dict(type='EmptyCacheHook')]")
    work = ['--work-dir', str(tmp_path / 'work')]
    cfg = run_main(test_tool, monkeypatch, config, checkpoint, *work,
                   '--show-ranked-lists', '--report',
                   str(tmp_path / 'report'))
    types = [hook['type'] for hook in cfg.custom_hooks]
    assert types == ['EmptyCacheHook', 'RankedListHook', 'EvalReportHook']
    hooks = {hook['type']: hook for hook in cfg.custom_hooks}
    assert hooks['RankedListHook']['out_dir'] is None
    assert hooks['EvalReportHook']['out_dir'] == str(tmp_path / 'report')
    cfg = run_main(test_tool, monkeypatch, config, checkpoint, *work,
                   '--show-ranked-lists', str(tmp_path / 'lists'))
    assert [hook['type'] for hook in cfg.custom_hooks] == \
        ['EmptyCacheHook', 'RankedListHook']
    assert cfg.custom_hooks[1]['out_dir'] == str(tmp_path / 'lists')


def test_target_refuses_a_dropping_dataloader_by_the_configs_key(
        test_tool, make_config):
    """A kept target whose dataloader drops its last batch is refused
    with the key ``--cfg-options`` takes, counted over the config's
    targets: once ``--target`` renumbered them, the loop's own refusal
    named ``test_cfg.targets.0`` for the config's target 1."""
    from mmengine.config import Config

    from ..fixtures.multi_target import MULTI_TARGET
    cfg = Config.fromfile(
        make_config(extra=MULTI_TARGET), import_custom_modules=False)
    cfg.test_cfg.targets[1].dataloader.drop_last = True
    with pytest.raises(ValueError) as error:
        test_tool.select_targets(cfg, ['d0'])
    message = str(error.value)
    assert "test_cfg.targets.1.dataloader.drop_last=True (target 'd0')" \
        in message
    assert [target['name'] for target in cfg.test_cfg.targets] == ['d2', 'd0']


def test_amp_runs_the_test_loop_in_fp16_or_is_refused(test_tool, monkeypatch,
                                                      checkpoint, tmp_path):
    """``--amp`` evaluates under fp16 autocast (``test_cfg.fp16``); on a
    machine without CUDA it is refused, not ignored: an fp32 run printed
    other numbers than the mixed-precision ones asked for."""
    work = ['--work-dir', str(tmp_path / 'work')]
    monkeypatch.setattr('torch.cuda.is_available', lambda: False)
    with pytest.raises(RuntimeError, match='--amp needs a CUDA device'):
        run_main(test_tool, monkeypatch, CONFIG, checkpoint, *work, '--amp')
    cfg = run_main(test_tool, monkeypatch, CONFIG, checkpoint, *work)
    assert not cfg.test_cfg.get('fp16', False)
    monkeypatch.setattr('torch.cuda.is_available', lambda: True)
    cfg = run_main(test_tool, monkeypatch, CONFIG, checkpoint, *work, '--amp')
    assert cfg.test_cfg.fp16 is True


def test_an_out_no_folder_can_hold_is_refused_before_the_evaluation(
        test_tool, monkeypatch, capsys, checkpoint, tmp_path):
    """--out under a path that is a file failed only when the metrics were
    written, after the whole evaluation had run."""
    (tmp_path / 'notes.txt').write_text('a file, not a folder')
    out = tmp_path / 'notes.txt' / 'runs' / 'm.json'
    err = parse(test_tool, monkeypatch, capsys, CONFIG, checkpoint, '--out',
                str(out))
    assert f"{str(tmp_path / 'notes.txt')!r} is not a folder" in err
    monkeypatch.setattr(sys, 'argv', [
        'tools/test.py', CONFIG, checkpoint, '--out',
        str(tmp_path / 'new' / 'deeper' / 'm.json')
    ])
    assert test_tool.parse_args().out.endswith('m.json')


def test_an_empty_report_folder_is_refused(test_tool, monkeypatch, capsys,
                                           checkpoint):
    """``--report ''`` wrote no report and said nothing."""
    err = parse(test_tool, monkeypatch, capsys, CONFIG, checkpoint,
                '--report', '')
    assert '--report needs a folder' in err


@pytest.mark.parametrize('option', ['--report', '--show-ranked-lists'])
def test_out_inside_a_drawing_folder_is_refused(test_tool, monkeypatch,
                                                capsys, checkpoint, tmp_path,
                                                option):
    """The drawings replace their folder as a whole and refuse a folder
    holding files of another writer: --out inside it made the next run of
    the same command fail."""
    folder = tmp_path / 'drawn'
    err = parse(test_tool, monkeypatch, capsys, CONFIG, checkpoint, option,
                str(folder), '--out', str(folder / 'm.json'))
    assert f'is inside {option} {folder}' in err
    monkeypatch.setattr(sys, 'argv', [
        'tools/test.py', CONFIG, checkpoint, option,
        str(folder), '--out',
        str(tmp_path / 'drawn_metrics.json')
    ])
    test_tool.parse_args()
