import pytest

from mmreid.utils.config import load_config


@pytest.mark.parametrize('path,suggested', [
    ('configs/baseline/bot_r18_synthreid_typo.py',
     "'configs/baseline/bot_r18_synthreid.py'"),
    ('configs/basline/bot_r18_synthreid.py',
     "'configs/baseline/bot_r18_synthreid.py'"),
])
def test_a_missing_config_suggests_the_closest_names(path, suggested):
    with pytest.raises(FileNotFoundError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f'config file {path!r} does not exist; '
                              f'did you mean {suggested}')
    assert '_base_' not in message


def test_nothing_close_is_suggested_as_nothing(tmp_path):
    path = str(tmp_path / 'nothing_like_it.py')
    with pytest.raises(FileNotFoundError) as info:
        load_config(path)
    assert str(info.value) == f'config file {path!r} does not exist'


class Built(Exception):
    """No runner: only the config tools/train.py would build is read."""


def train_tool_building(tmp_path, monkeypatch, lines, *options):
    """tools/train.py, as a module, on a config of ``lines`` with
    ``options``: its ``main()`` raises :class:`Built` with the config in
    the returned list instead of building the runner.

    Returns:
        tuple: The tool module, the config path and the list of configs.
    """
    from ..fixtures.processes import load_tool
    config = tmp_path / 'tiny.py'
    config.write_text('\n'.join(["default_scope = 'mmreid'", *lines]))
    tool = load_tool('tools/train.py')
    built = []

    def from_cfg(cfg):
        built.append(cfg)
        raise Built

    monkeypatch.setattr(tool.ReIDRunner, 'from_cfg', from_cfg)
    monkeypatch.setattr('sys.argv', [
        'train.py',
        str(config), *options, '--work-dir',
        str(tmp_path / 'work')
    ])
    return tool, config, built


@pytest.mark.parametrize('lines,refused', [
    ('', True),
    ('auto_scale_lr = dict(enable=False)', True),
    ('auto_scale_lr = dict(base_batch_size=32, enable=False)', False),
])
def test_auto_scale_lr_needs_the_configs_base_batch(tmp_path, monkeypatch,
                                                    lines, refused):
    """tools/train.py --auto-scale-lr assumed a base batch of 64 for a
    config that names none, and scaled the lr by an invented ratio."""
    tool, config, built = train_tool_building(
        tmp_path, monkeypatch,
        ['train_dataloader = dict(batch_size=32)', lines], '--auto-scale-lr')
    if refused:
        with pytest.raises(ValueError) as info:
            tool.main()
        assert str(info.value) == (
            '--auto-scale-lr needs auto_scale_lr.base_batch_size in the '
            'config, the total batch its learning rate was tuned for (e.g. '
            'auto_scale_lr = dict(base_batch_size=64) for a 1xb64 config); '
            f'{config} names none')
        assert not built
        return
    with pytest.raises(Built):
        tool.main()
    assert built[0].auto_scale_lr == dict(base_batch_size=32, enable=True)


@pytest.mark.parametrize('save_best,rule', [
    ('reid/mAP', 'greater'),
    (['reid/mAP', 'reid/R1'], ['greater', 'greater']),
])
def test_no_validate_drops_save_best_with_a_line(tmp_path, monkeypatch,
                                                 save_best, rule):
    """With --no-validate a config's ``save_best`` has nothing to select
    by; mmengine then kept no best checkpoint without a word. Its ``rule``
    goes too: a list rule without save_best fails in CheckpointHook."""
    from mmengine.hooks import CheckpointHook
    tool, _, built = train_tool_building(tmp_path, monkeypatch, [
        'val_dataloader = dict(batch_size=8)', 'val_cfg = dict()',
        "val_evaluator = dict(type='ReIDMetric')",
        "default_hooks = dict(checkpoint=dict(type='CheckpointHook', "
        f'interval=2, save_best={save_best!r}, rule={rule!r}))'
    ], '--no-validate')
    logged = []
    # The logger's handler may hold another stream than capsys's (it is
    # made once per process), so the line is caught where it is sent.
    monkeypatch.setattr('mmengine.logging.print_log',
                        lambda msg, **kwargs: logged.append(msg))
    with pytest.raises(Built):
        tool.main()
    cfg = built[0]
    assert cfg.val_cfg is None and cfg.val_dataloader is None
    checkpoint = cfg.default_hooks.checkpoint.to_dict()
    assert checkpoint == dict(
        type='CheckpointHook', interval=2, save_best=None)
    checkpoint.pop('type')
    CheckpointHook(**checkpoint)  # mmengine builds it
    assert any(
        line.startswith("--no-validate: no best checkpoint is kept "
                        f'(default_hooks.checkpoint.save_best={save_best!r} '
                        'needs validation)') for line in logged)
