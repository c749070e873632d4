"""Config inputs that a run must follow or refuse, never drop (hunt EM).

A researcher who misspells a key or puts an option where nothing reads it
must be told: a run that silently used the default trains and prints the
numbers of another config. Each test writes the tiny SynthReID config of
:mod:`tests.fixtures.tiny_config` with one user line added, reads it as
``tools/train.py`` and ``tools/test.py`` do (:func:`load_config`,
:func:`build_runner`) and checks that the run either follows the line or
refuses it naming the key.
"""
import pytest
from mmengine.runner import EpochBasedTrainLoop

from mmreid.engine.runner import build_runner
from mmreid.utils.config import load_config, runtime

#: The tiny config's optimizer (``_base_/schedules/bot_adam_120e.py``).
CONFIG_LR = 0.00035
#: Its training batch: one process x ``train_dataloader.batch_size``.
TRAIN_BATCH = 8
#: The base schedule's ``auto_scale_lr.base_batch_size``.
BASE_SCHEDULE_BATCH = 64


@pytest.fixture(autouse=True)
def _own_torch_settings(torch_settings):
    """The tiny config's ``randomness.deterministic=True`` is put back
    after each test (``torch_settings`` of tests/test_engine/conftest.py),
    not left on for the tests that run after these."""


class _Started(Exception):
    """Raised by the first training epoch: the start-up checks passed."""


def _runner(make_config, tmp_path, extra='', options=None, phase='train',
            auto_scale_lr=False):
    """The runner ``tools/train.py``/``tools/test.py`` build for the tiny
    config with ``extra`` lines and ``--cfg-options`` ``options``."""
    path = make_config(extra=extra)
    cfg = load_config(path, options, str(tmp_path / 'work'), phase=phase)
    if auto_scale_lr:
        runtime.enable_auto_scale_lr(cfg, path)
    runtime.adapt_to_device(cfg)
    return build_runner(cfg)


def _start_training(runner, monkeypatch):
    """Run ``runner.train()`` up to its first epoch (every start-up check
    and hook's ``before_train`` included) and give back its optimizer."""

    def first_epoch(loop):
        raise _Started

    monkeypatch.setattr(EpochBasedTrainLoop, 'run_epoch', first_epoch)
    with pytest.raises(_Started):
        runner.train()
    return runner.optim_wrapper.optimizer


def _base_lr(group):
    """A parameter group's learning rate before the schedule's warm-up
    factor (the rate the schedule starts from: ``initial_lr``)."""
    return group.get('initial_lr', group['lr'])


def _group_lr(runner, optimizer, parameter):
    """The learning rate of ``parameter``'s group, before the warm-up."""
    tensor = dict(runner.model.named_parameters())[parameter]
    for group in optimizer.param_groups:
        if any(p is tensor for p in group['params']):
            return _base_lr(group)
    raise AssertionError(f'{parameter} is in no parameter group')


@pytest.mark.parametrize('line,key', [
    ('randomnes = dict(seed=3)', 'randomnes'),
    ("load_form = 'work_dirs/pretrained/epoch_120.pth'", 'load_form'),
])
def test_a_misspelt_top_level_key_in_the_config_is_refused(
        make_config, tmp_path, line, key):
    """A user's leaf config sets ``randomnes = dict(seed=3)`` (or
    ``load_form = ...``, meaning ``load_from``). The run is built and
    trains with the base's seed 0 (from random weights): the printed
    numbers are those of another config, and nothing says so.
    ``--cfg-options randomnes.seed=3`` is refused with "not a top-level
    key ... nor one the run reads" (``check_option_keys``); the same key
    written in the file must be refused too, naming it (the README's
    "Config mistakes fail early with the fix")."""
    try:
        runner = _runner(make_config, tmp_path, extra=line)
    except ValueError as error:
        assert key in str(error), str(error)
        return
    pytest.fail(f'{line!r} was accepted: the run has seed {runner.seed} and '
                f'load_from={runner._load_from!r}')


@pytest.mark.parametrize('line,options', [
    ('auto_scale_lr = dict(base_batchsize=8)', None),
    ('', {
        'auto_scale_lr.base_batchsize': 8
    }),
])
def test_a_misspelt_auto_scale_lr_key_is_refused_or_followed(
        make_config, tmp_path, monkeypatch, line, options):
    """A user trains with ``--auto-scale-lr`` and says their lr was tuned
    for a batch of 8, misspelling ``base_batch_size`` (in the config file
    or in ``--cfg-options``). The key merges into the base schedule's
    ``auto_scale_lr = dict(base_batch_size=64, enable=False)`` and nothing
    reads it: the lr is scaled by 8/64 to 4.4e-5. By the linear scaling
    rule (Goyal et al. 2017; docs/get_started.md: "scales it by processes
    x batch_size / auto_scale_lr.base_batch_size") a batch of 8 over a
    base of 8 keeps the config's 3.5e-4. Right: that rate, or a refusal
    naming the key."""
    try:
        runner = _runner(
            make_config,
            tmp_path,
            extra=line,
            options=options,
            auto_scale_lr=True)
        optimizer = _start_training(runner, monkeypatch)
    except ValueError as error:
        assert 'base_batchsize' in str(error), str(error)
        return
    expected = CONFIG_LR * TRAIN_BATCH / TRAIN_BATCH
    lrs = sorted({_base_lr(group) for group in optimizer.param_groups})
    assert lrs == pytest.approx([expected]), (
        f'trains at {lrs}, the config\'s lr x {TRAIN_BATCH} / '
        f'{BASE_SCHEDULE_BATCH} (the base\'s base_batch_size); the key '
        f'given asks for {expected}')


def test_a_misspelt_custom_keys_field_is_refused_or_followed(
        make_config, tmp_path, monkeypatch):
    """A user gives the classifier a x10 learning rate as the AGW schedule
    does, writing ``custom_keys={'head.classifier': dict(lr_mul=10)}``
    (for ``lr_mult``). mmengine's constructor copies the unknown field
    into the parameter group, where the optimizer never reads it, and the
    classifier trains at the base rate 3.5e-4. ``check_paramwise_cfg``
    refuses a misspelt ``paramwise_cfg`` key and a ``custom_keys`` name
    that matches no parameter, as docs/get_started.md promises ("Settings
    the optimizer or schedule would silently not follow are refused"), but
    not a misspelt field inside an entry. Right: the classifier at 10 x
    3.5e-4, or a refusal naming ``lr_mul``."""
    line = ('optim_wrapper = dict(paramwise_cfg=dict(custom_keys='
            "{'head.classifier': dict(lr_mul=10)}))")
    try:
        runner = _runner(make_config, tmp_path, extra=line)
        optimizer = _start_training(runner, monkeypatch)
    except ValueError as error:
        assert 'lr_mul' in str(error), str(error)
        return
    lr = _group_lr(runner, optimizer, 'head.classifier.weight')
    assert lr == pytest.approx(10 * CONFIG_LR), (
        f'head.classifier trains at {lr}, the base lr: lr_mul=10 was kept '
        'in its parameter group and ignored')


def test_the_advised_custom_keys_option_changes_the_rate(
        make_config, tmp_path, monkeypatch):
    """A user of a config with the AGW schedule's
    ``custom_keys={'head.classifier': dict(lr_mult=10)}`` tries a x20
    classifier. The dict literal is refused with the advice "Give its
    fields as dotted keys instead: --cfg-options
    optim_wrapper.paramwise_cfg.custom_keys.head.classifier.lr_mult=20";
    mmengine splits that key at every dot, so it adds an entry ``'head'``
    holding ``classifier=dict(lr_mult=20)``, which no parameter uses as a
    rate (the longer ``'head.classifier'`` wins, and the field is not a
    rate), and the classifier still trains at x10 while the user reports
    x20. Right: the classifier at 20 x 3.5e-4, or a refusal naming the
    option."""
    line = ('optim_wrapper = dict(paramwise_cfg=dict(custom_keys='
            "{'head.classifier': dict(lr_mult=10)}))")
    option = 'optim_wrapper.paramwise_cfg.custom_keys.head.classifier.lr_mult'
    try:
        runner = _runner(
            make_config, tmp_path, extra=line, options={option: 20})
        optimizer = _start_training(runner, monkeypatch)
    except ValueError as error:
        assert 'custom_keys' in str(error), str(error)
        return
    lr = _group_lr(runner, optimizer, 'head.classifier.weight')
    assert lr == pytest.approx(20 * CONFIG_LR), (
        f'head.classifier trains at {lr} (x{lr / CONFIG_LR:.0f}), not x20: '
        f'custom_keys is {runner.cfg.optim_wrapper.paramwise_cfg.custom_keys}')


def test_correctly_spelt_rate_keys_are_followed(make_config, tmp_path,
                                                monkeypatch):
    """The controls of the tests above, through the same path: with
    ``--auto-scale-lr`` and ``auto_scale_lr = dict(base_batch_size=16)``
    a batch of 8 trains at 3.5e-4 x 8 / 16 (the linear scaling rule), and
    ``custom_keys={'head.classifier': dict(lr_mult=10)}`` gives the
    classifier 10 x that rate and the backbone the rate itself."""
    line = ('auto_scale_lr = dict(base_batch_size=16)\n'
            'optim_wrapper = dict(paramwise_cfg=dict(custom_keys='
            "{'head.classifier': dict(lr_mult=10)}))")
    runner = _runner(make_config, tmp_path, extra=line, auto_scale_lr=True)
    optimizer = _start_training(runner, monkeypatch)
    rate = CONFIG_LR * TRAIN_BATCH / 16
    assert _group_lr(runner, optimizer,
                     'backbone.conv1.weight') == pytest.approx(rate)
    assert _group_lr(runner, optimizer,
                     'head.classifier.weight') == pytest.approx(10 * rate)


def test_a_test_dataloader_that_slices_the_test_set_is_refused(
        make_config, tmp_path):
    """A user copies mmengine's debugging option ``num_batch_per_epoch=1``
    into ``test_dataloader`` (or keeps it from a quick run). mmengine
    wraps the dataset in a ``_SlicedDataset`` of 1 x 12 = 12 of the 16
    test images; the loop's every-sample check compares the images
    evaluated with that slice, so it passes, and ``reid/mAP`` is printed
    for 12 images with 2 gallery images missing, under the dataset's
    name. A ``drop_last`` dataloader, which loses samples the same way,
    is refused by the loops (tests/test_engine/
    test_every_sample_evaluated.py); this one must be too, naming the
    key, before any metric is computed."""
    from mmreid.registry import DATASETS
    line = ('test_dataloader = dict(val_dataloader, batch_size=12, '
            'num_batch_per_epoch=1)')
    runner = None
    try:
        runner = _runner(make_config, tmp_path, extra=line, phase='test')
        metrics = runner.test()
    except ValueError as error:
        assert 'num_batch_per_epoch' in str(error), str(error)
        return
    full = DATASETS.build(runner.cfg.val_dataloader.dataset)
    evaluated = len(runner.test_loop.dataloader.dataset)
    pytest.fail(f'metrics of {evaluated} of the {len(full)} test images '
                f'were printed as the test set\'s: {metrics}')


def test_top_level_names_a_config_uses_are_not_refused(tmp_path):
    """The controls of the top-level key check: a variable the config
    reads (``target_dataloader``, close to ``test_dataloader``, as in
    configs/_base_/datasets/dg_dimn.py) is kept, and a misspelt key in a
    base file is refused naming that file and the key it resembles."""
    from mmreid.utils.config.top_level import check_top_level_names
    base = tmp_path / 'base.py'
    base.write_text('randomnes = dict(seed=3)\n')
    leaf = tmp_path / 'leaf.py'
    leaf.write_text('target_dataloader = dict(batch_size=4)\n'
                    'test_dataloader = target_dataloader\n')
    check_top_level_names(str(leaf))
    leaf.write_text("_base_ = ['base.py']\n")
    refused = "base.py:1: 'randomnes'.*'randomness'"
    with pytest.raises(ValueError, match=refused):
        check_top_level_names(str(leaf))


def test_rate_settings_are_checked_field_by_field():
    """An ``auto_scale_lr`` key mmengine does not read (``enabled``) is
    refused with the key it reads; a ``custom_keys`` entry may give the
    optimizer's own settings (``momentum`` for SGD: the parameter group
    follows it), and the advice for a dict literal with a dotted name
    does not offer an option key that mmengine would split at the dot."""
    from mmreid.engine.runner.optim_checks import check_custom_key_fields
    from mmreid.utils.config.options import dict_literal_message
    from mmreid.utils.config.runtime import check_auto_scale_lr
    with pytest.raises(ValueError, match="enabled.*did you mean 'enable'"):
        check_auto_scale_lr(dict(enabled=True, base_batch_size=64))
    check_custom_key_fields({'head': dict(lr_mult=2, momentum=0.5)},
                            dict(type='SGD', lr=0.1))
    message = dict_literal_message('optim_wrapper.paramwise_cfg.custom_keys',
                                   "{'head.classifier':dict(lr_mult=20)}")
    assert 'custom_keys.head.classifier.lr_mult=20' not in message, message
    assert 'config file' in message, message


def test_a_target_dataloader_that_slices_its_dataset_is_refused():
    """A multi-target target's ``num_batch_per_epoch`` evaluates part of
    its query and gallery as ``test_dataloader``'s does: refused naming
    the target's key before any dataset is built."""
    from mmreid.engine.runner import MultiTargetTestLoop
    target = dict(
        name='d3',
        dataloader=dict(batch_size=4, num_batch_per_epoch=1),
        evaluator=dict(type='ReIDMetric'))
    key = r'test_cfg\.targets\.0\.dataloader\.num_batch_per_epoch'
    with pytest.raises(ValueError, match=key + r" \(target 'd3'\)"):
        MultiTargetTestLoop.refuse_dropping_dataloaders([target])
