import io
import os.path as osp
from types import SimpleNamespace

import pytest

from mmreid.engine.hooks import FeatureProgressHook, TrainSetupCheckHook
from mmreid.engine.hooks.progress_hook import _Progress


class FakeSampler:

    def __init__(self, batch_size):
        self.batch_size = batch_size

    def check_batch_size(self, batch_size):
        if batch_size != self.batch_size:
            raise ValueError(f'{batch_size} != {self.batch_size}')


def fake_runner(num_classes, num_pids, loader_bs=8, sampler_bs=8):
    dataset = SimpleNamespace(
        metainfo=dict(num_pids=num_pids, dataset_name='toy'))
    loader = SimpleNamespace(
        dataset=dataset, batch_size=loader_bs, sampler=FakeSampler(sampler_bs))
    model = SimpleNamespace(head=SimpleNamespace(num_classes=num_classes))
    return SimpleNamespace(model=model, train_dataloader=loader)


def test_setup_check_passes_and_names_the_fix():
    hook = TrainSetupCheckHook()
    hook.before_train(fake_runner(10, 10))
    with pytest.raises(ValueError, match='num_classes=12'):
        hook.before_train(fake_runner(10, 12))
    with pytest.raises(ValueError, match='16 != 8'):
        hook.before_train(fake_runner(10, 10, loader_bs=16))


def test_progress_bar_logs_fractions_without_tty():
    stream = io.StringIO()
    bar = _Progress(20, 'extracting', stream=stream, log_fraction=0.25)
    for _ in range(20):
        bar.update()
    lines = stream.getvalue().strip().split('\n')
    assert len(lines) == 4  # every 5 of 20 batches
    assert lines[-1].startswith('extracting [')
    assert '20/20' in lines[-1] and 'ETA' in lines[-1]
    # Fewer batches than 1 / log_fraction: a line for every batch.
    stream = io.StringIO()
    bar = _Progress(5, 'extracting', stream=stream, log_fraction=0.1)
    for _ in range(5):
        bar.update()
    assert stream.getvalue().count('\n') == 5


def test_progress_hook_counts_test_iterations(monkeypatch, capsys):
    hook = FeatureProgressHook(log_fraction=0.5)
    runner = SimpleNamespace(test_loop=SimpleNamespace(dataloader=[0] * 4))
    hook.before_test_epoch(runner)
    for i in range(4):
        hook.after_test_iter(runner, i)
    out = capsys.readouterr().out
    assert 'extracting features (test)' in out and '4/4' in out


def test_progress_bar_logs_the_last_batch_off_the_step():
    """Without a tty a line is written every ``step`` batches: when the
    batch count is no multiple of the step, the last batches were never
    reported and the log ended at 6/7."""
    stream = io.StringIO()
    bar = _Progress(7, 'extracting', stream=stream, log_fraction=0.5)
    for _ in range(7):
        bar.update()
    lines = stream.getvalue().strip().split('\n')
    assert [line.split('] ')[1].split(',')[0] for line in lines] == [
        '3/7', '6/7', '7/7'
    ]


def test_progress_bar_rate_and_eta_follow_the_clock(monkeypatch):
    """The rate is batches per second so far and the ETA the batches left
    at that rate: 4 of 10 batches in 8 s is 0.5 batch/s, 12 s to go."""
    from mmreid.engine.hooks import progress_hook
    now = [100.0]
    monkeypatch.setattr(progress_hook.time, 'perf_counter', lambda: now[0])
    stream = io.StringIO()
    bar = _Progress(10, 'extracting', stream=stream, log_fraction=0.4)
    now[0] = 108.0
    for _ in range(4):
        bar.update()
    line = stream.getvalue().strip()
    assert line.endswith('4/10, 0.5 batch/s, elapsed 8s, ETA 12s')


class FakeTerminal(io.StringIO):

    def isatty(self):
        return True


def test_progress_bar_on_a_terminal_redraws_then_ends_its_line():
    """On a terminal every batch redraws the line in place (``\\r``) and
    the last one ends it, so the next log line does not overwrite the
    bar; a batch past the total never draws a bar longer than 30."""
    stream = FakeTerminal()
    bar = _Progress(3, 'extracting', stream=stream)
    for _ in range(3):
        bar.update()
    text = stream.getvalue()
    assert text.count('\r') == 2 and text.count('\n') == 1
    assert text.endswith('\n') and '3/3' in text.split('\r')[-1]
    bar.update()
    last = stream.getvalue()[len(text):]
    assert '[' + '>' * 30 + ']' in last


def test_progress_bar_is_printed_by_rank0_only(monkeypatch, capsys):
    """Every process of a distributed test extracted its own batches: each
    printed a bar, interleaved with rank 0's."""
    from mmreid.engine.hooks import progress_hook
    monkeypatch.setattr(progress_hook, 'is_main_process', lambda: False)
    hook = FeatureProgressHook(log_fraction=0.5)
    runner = SimpleNamespace(test_loop=SimpleNamespace(dataloader=[0] * 4))
    hook.before_test_epoch(runner)
    for i in range(4):
        hook.before_test_iter(runner, i)
        hook.after_test_iter(runner, i)
    assert capsys.readouterr().out == ''


@pytest.mark.parametrize('sampler,refused', [
    ('identity', False),
    ('one_per_identity', True),
    ('shuffle', True),
])
def test_losses_that_mine_positives_need_a_pk_sampler(sampler, refused):
    """A BoT config trained with a shuffling sampler left most anchors
    without a positive: the triplet loss then took the anchor itself as
    its positive and only pushed negatives, silently."""
    import torch
    from mmengine.dataset import DefaultSampler

    from mmreid.datasets import IdentitySampler
    from mmreid.models import TripletLoss

    class Toy(list):
        metainfo = dict(num_pids=4, dataset_name='toy')

        def get_data_info(self, i):
            return self[i]

    dataset = Toy(dict(pid=i // 4, camid=i % 2) for i in range(16))
    samplers = dict(
        identity=lambda: IdentitySampler(dataset, 8, num_instances=2),
        one_per_identity=lambda: IdentitySampler(dataset, 4, num_instances=1),
        shuffle=lambda: DefaultSampler(dataset, shuffle=True))
    built = samplers[sampler]()
    loader = SimpleNamespace(
        dataset=dataset,
        batch_size=getattr(built, 'batch_size', 8),
        sampler=built)
    model = torch.nn.Module()
    model.head = torch.nn.Module()
    model.head.num_classes = 4
    model.head.loss_tri = TripletLoss()
    runner = SimpleNamespace(model=model, train_dataloader=loader)
    if not refused:
        TrainSetupCheckHook().before_train(runner)
        return
    with pytest.raises(ValueError) as info:
        TrainSetupCheckHook().before_train(runner)
    message = str(info.value)
    assert message.startswith('TripletLoss mines positives within a batch')
    assert type(loader.sampler).__name__ in message
    assert "sampler=dict(type='IdentitySampler'" in message


def pk_runner(loss, batch_size, num_instances, sampler_type='identity'):
    """A runner of a P x K sampler over 8 identities of 8 images each and a
    model whose head holds ``loss``."""
    import torch

    from mmreid.datasets import CrossModalityIdentitySampler, IdentitySampler

    class Toy(list):
        metainfo = dict(num_pids=8, dataset_name='toy')

        def get_data_info(self, i):
            return self[i]

    dataset = Toy(
        dict(pid=i // 8, camid=i % 2, modality=(i // 2) % 2)
        for i in range(64))
    sampler_class = dict(
        identity=IdentitySampler,
        cross=CrossModalityIdentitySampler)[sampler_type]
    sampler = sampler_class(dataset, batch_size, num_instances=num_instances)
    loader = SimpleNamespace(
        dataset=dataset, batch_size=batch_size, sampler=sampler)
    model = torch.nn.Module()
    model.head = torch.nn.Module()
    model.head.num_classes = 8
    model.head.loss = loss
    return SimpleNamespace(model=model, train_dataloader=loader)


def negative_mining_losses():
    from mmreid.models import (DualCausalityLoss, PairVerificationLoss,
                               TripletLoss, WRTLoss)
    return [
        TripletLoss(),
        WRTLoss(),
        DualCausalityLoss(),
        PairVerificationLoss()
    ]


@pytest.mark.parametrize('index', range(4))
def test_losses_that_mine_negatives_need_two_identities(index):
    """A BoT config run with batch 16 and num_instances=16 trained with a
    triplet loss of exactly 0: one identity per batch has no negative."""
    loss = negative_mining_losses()[index]
    name = type(loss).__name__
    TrainSetupCheckHook().before_train(pk_runner(loss, 16, 8))  # P = 2
    with pytest.raises(ValueError) as info:
        TrainSetupCheckHook().before_train(pk_runner(loss, 16, 16))
    message = str(info.value)
    assert message.startswith(f'{name} mines negatives within a batch')
    assert ('P = 1 identity: train_dataloader.batch_size 16 / K = '
            'train_dataloader.sampler.num_instances 16') in message
    assert '--cfg-options train_dataloader.sampler.num_instances=8' in message


def test_one_identity_of_two_modalities_is_refused():
    # K visible + K infrared images: P = 8 / (2 x 4) = 1.
    from mmreid.models import TripletLoss
    with pytest.raises(ValueError) as info:
        TrainSetupCheckHook().before_train(
            pk_runner(TripletLoss(), 8, 4, 'cross'))
    assert ('batch_size 8 / 8 images = 2 x '
            'train_dataloader.sampler.num_instances 4') in str(info.value)
    assert 'num_instances=2' in str(info.value)


def test_an_odd_batch_of_one_identity_is_fixed_by_doubling_the_batch():
    # batch 3 / K 3: P = 1, and no K divides 3 into two identities; two
    # identities of K = 3 need a batch of 2 x 3 = 6.
    from mmreid.models import TripletLoss
    with pytest.raises(ValueError) as info:
        TrainSetupCheckHook().before_train(pk_runner(TripletLoss(), 3, 3))
    message = str(info.value)
    assert ('P = 1 identity: train_dataloader.batch_size 3 / K = '
            'train_dataloader.sampler.num_instances 3') in message
    assert ('--cfg-options train_dataloader.batch_size=6 '
            'train_dataloader.sampler.batch_size=6') in message


def test_a_sampler_without_identities_per_batch_is_not_checked():
    """A sampler that does not draw K images per identity (mmengine's
    DefaultSampler) gives no P to check: the run goes on."""
    from mmreid.engine.hooks import setup_check_hook
    from mmreid.models import TripletLoss
    loader = SimpleNamespace(batch_size=16, sampler=SimpleNamespace())
    assert setup_check_hook.check_identities_per_batch([TripletLoss()],
                                                       loader) is None


def test_a_loss_without_negatives_accepts_one_identity():
    # PICLoss pulls pairs of one pair-identity together: defined (and not
    # zero) with one identity per batch; cross-entropy needs no batch.
    from mmreid.models import PICLoss, ReIDCrossEntropyLoss
    for loss in (PICLoss(), ReIDCrossEntropyLoss()):
        TrainSetupCheckHook().before_train(pk_runner(loss, 16, 16))


def combine_all_runner(combine_all, split_used):
    runner = fake_runner(10, 10)
    runner.train_dataloader.dataset.metainfo['sources'] = [
        dict(name=f'source{i}', split_used=split)
        for i, split in enumerate(split_used)
    ]
    runner.cfg = dict(combine_all=combine_all)
    return runner


@pytest.mark.parametrize('combine_all,split_used,refused', [
    (True, ['all', 'all', 'train'], None),
    (False, ['train', 'train', 'train'], None),
    (True, ['train', 'train', 'train'], 'no source'),
    (False, ['all', 'train', 'train'], 'source0 also train'),
])
def test_combine_all_must_match_the_training_set(combine_all, split_used,
                                                 refused):
    """A Protocol-3 leaf that only set ``combine_all = True`` trained
    Protocol-2: mmengine does not re-evaluate the base file, so the base's
    ``sources_p3 if combine_all else sources_p2`` stayed P2."""
    hook = TrainSetupCheckHook()
    runner = combine_all_runner(combine_all, split_used)
    if refused is None:
        hook.before_train(runner)
        return
    with pytest.raises(ValueError, match=refused) as info:
        hook.before_train(runner)
    message = str(info.value)
    assert f'combine_all = {combine_all}' in message
    assert 'source1 (' in message
    if combine_all:
        assert '{{_base_.sources_p3}}' in message
        assert 'num_classes={{_base_.num_classes_p3}}' in message


def test_combine_all_is_checked_before_the_classifier_size():
    """A P3 leaf that set the P3 classifier but not the sources is told to
    set the sources, not to shrink the classifier back to P2."""
    runner = combine_all_runner(True, ['train'])
    runner.model.head.num_classes = 12
    with pytest.raises(ValueError, match='combine_all = True'):
        TrainSetupCheckHook().before_train(runner)
    # No top-level combine_all, or no config (a fake runner): unchecked.
    runner = combine_all_runner(None, ['all'])
    TrainSetupCheckHook().before_train(runner)
    del runner.cfg
    TrainSetupCheckHook().before_train(runner)


def test_a_config_with_its_own_hooks_keeps_the_setup_check(
        make_config, tmp_path):
    """``custom_hooks = [...]`` in a config (as docs/customize.md shows)
    replaces the base's list whole: when the check lived there, such a
    config trained with a classifier of 20 rows for 8 identities."""
    from mmreid.engine.runner import ReIDRunner
    from mmreid.utils.config import load_config
    config = make_config(extra='\n'.join([
        "custom_hooks = [dict(type='EmptyCacheHook')]",
        "model['head']['num_classes'] = 20",
    ]))
    cfg = load_config(config, work_dir=str(tmp_path / 'work'))
    runner = ReIDRunner.from_cfg(cfg)
    assert 'EmptyCacheHook' in [type(h).__name__ for h in runner.hooks]
    with pytest.raises(
            ValueError,
            match='num_classes is 20 but the '
            r'training set .* has 8 identities'):
        runner.train()


def test_a_config_restating_the_default_hooks_registers_them_once(
        make_config, tmp_path):
    """Configs written when the checks lived in ``custom_hooks`` list them
    there: each is registered once (not two checks, two progress bars)."""
    from mmreid.engine.runner import ReIDRunner
    from mmreid.utils.config import load_config
    config = make_config(extra='\n'.join([
        "custom_hooks = [dict(type='TrainSetupCheckHook'), "
        "dict(type='mmreid.FeatureProgressHook'), "
        "dict(type='EmptyCacheHook')]",
    ]))
    cfg = load_config(config, work_dir=str(tmp_path / 'work'))
    names = [type(h).__name__ for h in ReIDRunner.from_cfg(cfg).hooks]
    assert names.count('TrainSetupCheckHook') == 1
    assert names.count('FeatureProgressHook') == 1
    assert names.count('EmptyCacheHook') == 1
    # A hook of a default's type with its own arguments is the config's:
    # kept, as mmengine keeps it.
    config = make_config(
        extra="custom_hooks = [dict(type='FeatureProgressHook', "
        "log_fraction=0.5), dict(type='CheckpointHook', interval=2, "
        "out_dir='elsewhere')]",
        name='own.py')
    cfg = load_config(config, work_dir=str(tmp_path / 'own'))
    hooks = ReIDRunner.from_cfg(cfg).hooks
    progress = [h for h in hooks if type(h).__name__ == 'FeatureProgressHook']
    assert sorted(h.log_fraction for h in progress) == [0.1, 0.5]
    assert [type(h).__name__ for h in hooks].count('CheckpointHook') == 2


def test_a_default_hook_set_to_none_is_left_out(make_config, tmp_path):
    """mmengine documents ``None`` in ``default_hooks`` as "leave it out"
    but failed on a bare ``assert`` for a name it does not add itself:
    ``setup_check=None`` could not switch the start-up checks off."""
    from mmreid.engine.runner import ReIDRunner
    from mmreid.utils.config import load_config
    config = make_config(extra='\n'.join([
        'default_hooks = dict(setup_check=None, timer=None)',
        "model['head']['num_classes'] = 20",
    ]))
    cfg = load_config(config, work_dir=str(tmp_path / 'work'))
    runner = ReIDRunner.from_cfg(cfg)
    names = [type(h).__name__ for h in runner.hooks]
    assert 'TrainSetupCheckHook' not in names
    assert 'IterTimerHook' not in names
    assert 'FeatureProgressHook' in names and 'CheckpointHook' in names


def save_best_runner(make_config,
                     tmp_path,
                     save_best,
                     rule='greater',
                     extra=''):
    """A runner of the tiny config that validates after its one epoch
    and keeps the best checkpoint by ``save_best``; ``extra`` lines
    come last."""
    from mmreid.engine.runner import ReIDRunner
    from mmreid.utils.config import load_config
    config = make_config(extra='\n'.join([
        'train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)',
        f'default_hooks = dict(checkpoint=dict(save_best={save_best!r}, '
        f'rule={rule!r}))',
        extra,
    ]))
    cfg = load_config(config, work_dir=str(tmp_path / 'work'))
    # A logger of its own (see test_the_environment_banner_...).
    cfg.experiment_name = f'save_best_{tmp_path.name}'
    return ReIDRunner.from_cfg(cfg)


@pytest.mark.parametrize('save_best,expected', [
    ('auto', "save_best='auto' selects by the first key"),
    ('d3/mAP', "save_best='d3/mAP' is not a key validation reports: "
     "every key of this validation (ReIDValLoop) begins with 'reid/'"),
    ('mAP', "save_best='mAP' is not a key validation reports"),
])
def test_a_save_best_no_validation_reports_is_refused_before_training(
        make_config, tmp_path, save_best, expected):
    """mmengine failed only at the first validation (40 epochs into a
    shipped schedule) with a bare KeyError, or for 'auto' with "Cannot
    infer the rule for key reid/R1"."""
    runner = save_best_runner(make_config, tmp_path, save_best)
    with pytest.raises(ValueError) as info:
        runner.train()
    assert str(info.value).startswith('default_hooks.checkpoint.' + expected)
    assert runner.iter == 0


def test_a_save_best_validation_did_not_report_names_the_reported_keys(
        make_config, tmp_path):
    """The refusal comes after the validation is logged: it came before
    LoggerHook's turn, and the metrics of that validation were in
    neither the log nor scalars.json."""
    runner = save_best_runner(make_config, tmp_path, 'reid/mAPX')
    with pytest.raises(ValueError) as info:
        runner.train()
    message = str(info.value)
    assert message.startswith("default_hooks.checkpoint.save_best="
                              "'reid/mAPX' is not a key validation "
                              'reported; it reported: ')
    assert 'reid/R1, ' in message and 'reid/mAP, ' in message
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        logged = [line for line in f if 'Epoch(val) [1][' in line]
    assert len(logged) == 1 and 'reid/mAP: ' in logged[0]
    with open(osp.join(runner.log_dir, 'vis_data', 'scalars.json')) as f:
        assert sum('"reid/mAP"' in line for line in f) == 1


@pytest.mark.parametrize('extra,expected', [
    ('val_cfg = None\nval_dataloader = None\nval_evaluator = None',
     'but this run does not validate (val_cfg, val_dataloader or '
     'val_evaluator is None)'),
    ("train_cfg['val_begin'] = 2",
     'but train_cfg.val_begin=2 comes after the last epoch '
     '(train_cfg.max_epochs=1)'),
])
def test_a_save_best_without_validation_is_refused_before_training(
        make_config, tmp_path, extra, expected):
    """mmengine selects at each validation: without one it kept no best
    checkpoint, without a word."""
    runner = save_best_runner(make_config, tmp_path, 'reid/mAP', extra=extra)
    with pytest.raises(ValueError) as info:
        runner.train()
    assert str(info.value).startswith(
        "default_hooks.checkpoint.save_best='reid/mAP' selects the best "
        'checkpoint at each validation, ' + expected)
    assert 'save_best=None' in str(info.value)
    assert runner.iter == 0


@pytest.mark.parametrize('val_begin,refused', [(50, False), (100, False),
                                               (101, True)])
def test_save_best_of_an_iteration_based_run_compares_iterations(
        val_begin, refused):
    """``IterBasedTrainLoop``: ``val_begin`` is an iteration, to compare
    with ``max_iters``, not with the loop's nominal one epoch; else a run
    validating from iteration 50 of 100 was refused."""
    from mmengine.hooks import CheckpointHook
    from mmengine.runner import IterBasedTrainLoop

    from mmreid.engine.hooks.setup_check_hook import check_save_best_validates
    loop = object.__new__(IterBasedTrainLoop)
    loop._max_iters, loop._max_epochs = 100, 1
    loop.val_begin = val_begin
    hooks = [CheckpointHook(save_best='reid/mAP', by_epoch=False)]
    if not refused:
        check_save_best_validates(hooks, object(), loop)
        return
    with pytest.raises(ValueError,
                       match=r'val_begin=101 comes after the last iter '
                       r'\(train_cfg.max_iters=100\)'):
        check_save_best_validates(hooks, object(), loop)


@pytest.mark.parametrize(
    'key,rule,refused',
    [
        ('reid/mAP', 'greater', None),
        ('reid/mAP', None, None),
        ('reid/mnet/R1', 'greater', None),
        ('reid/mAP', 'less',
         "rule='less' would keep the epoch of the lowest mAP"),
        ('reid/mINP', 'less', 'the lowest mINP'),
        ('reid/TPR@FPR=1e-04', 'less', 'the lowest TPR@FPR=1e-04'),
        # mmengine infers 'greater' for both (substrings 'map' and 'top').
        ('prid/mAP_std', None, "standard deviation over the splits or trials, "
         "not a score: select by 'prid/mAP'"),
        ('laptop/num_query', None, "a count, not a score: select by a score, "
         "e.g. 'laptop/mAP'"),
        ('reid/num_valid_query', 'greater', 'a count, not a score'),
        ('prid/split3/mAP', 'greater', "one split (split3) of the protocol, "
         "whose number is the mean over them: select by 'prid/mAP'"),
        ('sysu/trial0/R1', 'greater', "one trial (trial0) of the protocol, "
         "whose number is the mean over them: select by 'sysu/R1'"),
    ])
def test_save_best_must_be_a_score_higher_is_better(key, rule, refused):
    """Every score of mmreid's metrics is higher-is-better: rule='less'
    kept the worst epoch. A count, a spread or one split's score is no
    selection at all (mmengine's rule guess took them as 'greater')."""
    from mmengine.hooks import CheckpointHook

    from mmreid.engine.hooks.setup_check_hook import check_save_best
    metrics = [
        SimpleNamespace(prefix=p) for p in ('reid', 'prid', 'laptop', 'sysu')
    ]
    loop = SimpleNamespace(evaluator=SimpleNamespace(metrics=metrics))
    hooks = [CheckpointHook(save_best=key, rule=rule)]
    if refused is None:
        check_save_best(hooks, loop)
        return
    with pytest.raises(ValueError) as info:
        check_save_best(hooks, loop)
    assert str(
        info.value).startswith(f'default_hooks.checkpoint.save_best={key!r}')
    assert refused in str(info.value)


@pytest.mark.parametrize('key,refused', [
    ('d3/mAP', False),
    ('mean/mAP', False),
    ('d3/mnet/mAP', False),
    ('reid/mAP', True),
    ('d3', True),
])
def test_save_best_of_a_multi_target_loop_begins_with_a_target(key, refused):
    from mmengine.hooks import CheckpointHook

    from mmreid.engine.hooks.setup_check_hook import check_save_best
    loop = SimpleNamespace(
        targets=[SimpleNamespace(name='d3'),
                 SimpleNamespace(name='d0')],
        aggregate_prefix='mean')
    hooks = [CheckpointHook(save_best=key, rule='greater')]
    if not refused:
        check_save_best(hooks, loop)
        return
    with pytest.raises(
            ValueError,
            match="begins with 'd3/' or 'd0/' or "
            "'mean/', e.g. 'd3/mAP'"):
        check_save_best(hooks, loop)


def test_evaluation_keys_are_logged_as_computed_not_averaged(
        make_config, tmp_path):
    """mmengine's default mean_pattern matched 'nighttime/mAP' (a target
    named with 'time'): its logged value was the mean of the last 10
    validations. Only training keys (no '/') are averaged."""
    from mmreid.engine.runner import ReIDRunner
    from mmreid.utils.config import load_config
    cfg = load_config(make_config(), work_dir=str(tmp_path / 'work'))
    runner = ReIDRunner.from_cfg(cfg)
    for value in (33.0, 35.0):
        runner.message_hub.update_scalar('val/nighttime/mAP', value)
        runner.message_hub.update_scalar('val/reid/mAP', value)
    tag, _ = runner.log_processor.get_log_after_epoch(runner, 1, 'val')
    assert tag['nighttime/mAP'] == 35.0 and tag['reid/mAP'] == 35.0
    pattern = runner.log_processor.mean_pattern
    for key in ('loss', 'loss_cls', 'time', 'data_time', 'grad_norm'):
        assert pattern.search(key), key


def test_the_environment_banner_names_the_world_size(make_config, tmp_path):
    """mmengine logs the number of processes as 'GPU number', which a
    CPU-only run showed as 'GPU number: 1'. ReIDRunner names it as what
    it is; the rest of the banner stays."""
    from mmengine.dist import get_world_size

    from mmreid.engine.runner import ReIDRunner
    from mmreid.utils.config import load_config
    cfg = load_config(make_config(), work_dir=str(tmp_path / 'work'))
    # A logger of its own: mmengine reuses the logger (and the stream it
    # was given) of an earlier runner of the same name, i.e. built in the
    # same second.
    cfg.experiment_name = f'banner_{tmp_path.name}'
    runner = ReIDRunner.from_cfg(cfg)
    log_file = osp.join(runner.log_dir, f'{runner.timestamp}.log')
    with open(log_file, encoding='utf-8') as f:
        out = f.read()
    assert f'Processes (world size): {get_world_size()}' in out
    assert 'GPU number' not in out
    for line in ('System environment:', 'Runtime environment:',
                 'Distributed training: False', 'seed: ', 'Config:'):
        assert line in out, line


def test_save_best_of_a_metric_without_prefix_is_not_refused_early():
    """A metric with prefix=None reports keys without a head ('mAP'), so
    no key can be refused before the first validation."""
    from mmengine.hooks import CheckpointHook

    from mmreid.engine.hooks.setup_check_hook import check_save_best
    metrics = [SimpleNamespace(prefix=None), SimpleNamespace(prefix='cos')]
    loop = SimpleNamespace(evaluator=SimpleNamespace(metrics=metrics))
    check_save_best([CheckpointHook(save_best='mAP', rule='greater')], loop)


def test_logged_json_keeps_numpy_integers():
    """mmengine's LoggerHook wrote numpy integers (num_query, counts) to
    the test's JSON record as null."""
    import numpy as np

    from mmreid.engine.hooks.logger_hook import LoggerHook
    tags = {
        'd0/num_query': np.int64(3),
        'd0/mAP': np.float32(0.5),
        'd0/counts': [np.int32(1), np.int64(2)],
        'mode': 'test'
    }
    assert dict(LoggerHook._process_tags(tags)) == {
        'd0/num_query': 3,
        'd0/mAP': 0.5,
        'd0/counts': [1, 2],
        'mode': 'test'
    }


def checkpoint_runner(save_checkpoint, **args):
    """:func:`fake_runner` with a ``CheckpointHook`` given ``args`` in
    ``default_hooks.checkpoint`` and the runner's ``save_checkpoint``."""
    from mmreid.registry import HOOKS
    checkpoint = dict(type='CheckpointHook', interval=8, **args)
    runner = fake_runner(10, 10)
    runner.hooks = [HOOKS.build(checkpoint)]
    runner.save_checkpoint = save_checkpoint
    runner.cfg = dict(default_hooks=dict(checkpoint=checkpoint))
    return runner


@pytest.mark.parametrize('argument,close', [
    ('intervall', 'interval'),
    ('save_bset', 'save_best'),
    ('max_keep_ckpt', 'max_keep_ckpts'),
])
def test_a_checkpoint_argument_save_checkpoint_does_not_take_is_refused(
        argument, close):
    """mmengine's CheckpointHook takes ``**kwargs`` and passes them to
    ``runner.save_checkpoint``: a misspelt argument built, and the run
    failed at its first save, after a whole epoch, without a checkpoint."""
    from types import MethodType

    from mmreid.engine.runner import ReIDRunner
    runner = checkpoint_runner(
        MethodType(ReIDRunner.save_checkpoint, object()), **{argument: 1})
    with pytest.raises(ValueError) as info:
        TrainSetupCheckHook().before_train(runner)
    message = str(info.value)
    assert message.startswith(
        f"default_hooks.checkpoint (type='CheckpointHook') gives "
        f'{argument}=1, which CheckpointHook does not take.\n'
        f'Did you mean {close}')
    assert 'CheckpointHook takes interval, by_epoch, ' in message
    assert 'ReIDRunner.save_checkpoint, which takes none besides' in message


def test_a_checkpoint_argument_save_checkpoint_takes_is_accepted():
    """A runner whose ``save_checkpoint`` takes more arguments gets them
    from the hook, as mmengine passes them."""

    def save_checkpoint(out_dir,
                        filename,
                        file_client_args=None,
                        save_optimizer=True,
                        save_param_scheduler=True,
                        meta=None,
                        by_epoch=True,
                        backend_args=None,
                        compress=False):
        pass

    runner = checkpoint_runner(save_checkpoint, compress=True)
    TrainSetupCheckHook().before_train(runner)
    runner = checkpoint_runner(save_checkpoint, compres=True)
    with pytest.raises(ValueError, match='which takes only compress besides'):
        TrainSetupCheckHook().before_train(runner)


def test_a_save_checkpoint_with_kwargs_takes_any_argument():
    """A runner whose ``save_checkpoint`` takes ``**kwargs`` takes every
    argument the hook passes on: refusing one would stop a valid run."""

    def save_checkpoint(out_dir, filename, **kwargs):
        pass

    runner = checkpoint_runner(save_checkpoint, compress=True)
    TrainSetupCheckHook().before_train(runner)


def test_an_argument_the_hook_gives_itself_is_refused():
    """``meta`` is an argument of ``save_checkpoint`` that the hook already
    gives it: passing it again fails at the first save."""

    def save_checkpoint(out_dir, filename, meta=None, by_epoch=True):
        pass

    runner = checkpoint_runner(save_checkpoint, meta=dict(a=1))
    with pytest.raises(ValueError, match='gives meta='):
        TrainSetupCheckHook().before_train(runner)


def test_a_misspelt_checkpoint_argument_stops_the_run_before_training(
        make_config, tmp_path):
    """The real runner: refused at start-up, not at the first save."""
    from mmreid.engine.runner import ReIDRunner
    from mmreid.utils.config import load_config
    config = make_config(extra='\n'.join([
        'train_cfg = dict(by_epoch=True, max_epochs=1, val_interval=1)',
        'default_hooks = dict(checkpoint=dict(intervall=1))',
    ]))
    runner = ReIDRunner.from_cfg(
        load_config(config, work_dir=str(tmp_path / 'work')))
    with pytest.raises(ValueError, match='gives intervall=1'):
        runner.train()
    assert runner.iter == 0


@pytest.mark.parametrize('auto_scale_lr, batch, expected', [
    (dict(base_batch_size=32, enable=False), 32,
     'lr 0.00035 as in the config (auto_scale_lr off; base_batch_size 32 = '
     'this batch)'),
    (dict(base_batch_size=32, enable=False), 64,
     'lr 0.00035 as in the config (auto_scale_lr off; base_batch_size 32 != '
     'this batch 64: --auto-scale-lr (auto_scale_lr.enable=True) would '
     'scale it to 0.0007)'),
    (dict(base_batch_size=32, enable=True), 64,
     "lr 0.0007 = the config's 0.00035 x 64 / 32 (auto_scale_lr on: this "
     'batch / base_batch_size 32)'),
    (None, 64, 'lr 0.00035 as in the config (no auto_scale_lr.base_batch_size'
     ': not scaled with the batch)'),
])
def test_the_batch_line_says_how_the_lr_relates_to_it(auto_scale_lr, batch,
                                                      expected, monkeypatch):
    """'batch per step' said nothing of the lr: 64 images a step at the lr
    of a 32-image base was silent. Scaled lr = lr x batch / base (Goyal et
    al.'s linear rule, mmengine's Runner.scale_lr)."""
    import mmengine.dist

    from mmreid.engine.hooks import setup_check_hook
    monkeypatch.setattr(mmengine.dist, 'get_world_size', lambda: 2)
    runner = fake_runner(10, 10, loader_bs=batch // 2, sampler_bs=batch // 2)
    runner.cfg = dict(
        optim_wrapper=dict(optimizer=dict(type='Adam', lr=3.5e-4)))
    if auto_scale_lr is not None:
        runner.cfg['auto_scale_lr'] = auto_scale_lr
    logged = []
    monkeypatch.setattr(setup_check_hook, 'print_log',
                        lambda message, **kwargs: logged.append(message))
    TrainSetupCheckHook().before_train(runner)
    line = [m for m in logged if m.startswith('batch per step')]
    assert line == [
        f'batch per step: {batch // 2} images per process x 2 '
        f'processes = {batch}; {expected}'
    ]


def test_the_batch_line_says_paramwise_rates_were_logged_unscaled(monkeypatch):
    """mmengine logs each paramwise group's rate when it builds the
    optimizer, before auto_scale_lr scales it (cross-check audit s19: its
    line said lr=0.0035 for a classifier trained at 0.00175); the batch
    line says so where both apply."""
    import mmengine.dist

    from mmreid.engine.hooks import setup_check_hook
    monkeypatch.setattr(mmengine.dist, 'get_world_size', lambda: 1)
    logged = []
    monkeypatch.setattr(setup_check_hook, 'print_log',
                        lambda message, **kwargs: logged.append(message))
    for enable, paramwise in ((True, True), (True, False), (False, True)):
        runner = fake_runner(10, 10, loader_bs=8, sampler_bs=8)
        runner.cfg = dict(
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
            auto_scale_lr=dict(base_batch_size=16, enable=enable))
        if paramwise:
            runner.cfg['optim_wrapper']['paramwise_cfg'] = dict(
                custom_keys=dict(classifier=dict(lr_mult=10)))
        TrainSetupCheckHook().before_train(runner)
        line = [m for m in logged if m.startswith('batch per step')][-1]
        assert ('paramwise_options lines above are before this scaling'
                in line) == (
                    enable and paramwise)


def test_an_auto_scale_lr_without_enable_is_off():
    """mmengine's ``Runner.scale_lr`` scales only where ``enable`` is set
    and true: a base_batch_size alone leaves the lr."""
    from mmreid.engine.hooks.setup_check_hook import lr_text
    assert lr_text(3.5e-4, dict(base_batch_size=32), 64) == (
        'lr 0.00035 as in the config (auto_scale_lr off; base_batch_size 32 '
        '!= this batch 64: --auto-scale-lr (auto_scale_lr.enable=True) would '
        'scale it to 0.0007)')


def test_an_integer_lr_is_shown_as_a_number():
    """``lr=1`` is one number as ``lr=1.0`` is (not "the config's lr")."""
    from mmreid.engine.hooks.setup_check_hook import _config_lr, lr_text
    cfg = dict(optim_wrapper=dict(optimizer=dict(type='SGD', lr=1)))
    assert _config_lr(cfg) == 1.0
    assert lr_text(_config_lr(cfg), dict(base_batch_size=32, enable=True),
                   64) == ("lr 2 = the config's 1 x 64 / 32 (auto_scale_lr "
                           'on: this batch / base_batch_size 32)')


def test_batch_statistics_mbn_is_refused_before_distributed_training(
        monkeypatch):
    """MBN(eval_stats='batch') refuses a test batch in several processes,
    which a 2-process training hit at its first validation, after the
    training epochs (audit s23). The setup check refuses it before the
    first step, naming the option and the keys to set."""
    import mmengine.dist
    import torch.nn as nn

    from mmreid.models.layers.mbn import MBN
    runner = fake_runner(10, 10)
    runner.model = nn.Sequential(
        nn.Conv2d(3, 4, 1), MBN(4, eval_stats='batch'), MBN(4))
    runner.cfg = dict(
        model=dict(
            backbone=dict(norm_cfg=dict(type='MBN', eval_stats='batch'))))
    hook = TrainSetupCheckHook()
    monkeypatch.setattr(mmengine.dist, 'get_world_size', lambda: 2)
    hook.before_train(runner)  # no validation: nothing to refuse
    runner.val_loop = SimpleNamespace()
    with pytest.raises(
            ValueError,
            match=r"MBN\(eval_stats='batch'\) normalises each test batch.*"
            r"2 processes.*layers '1'\).*Train with one process, or use "
            r"eval_stats='modality' \(--cfg-options "
            r'model\.backbone\.norm_cfg\.eval_stats=modality\)'):
        hook.before_train(runner)
    monkeypatch.setattr(mmengine.dist, 'get_world_size', lambda: 1)
    hook.before_train(runner)  # one process: MBN evaluates it
    monkeypatch.setattr(mmengine.dist, 'get_world_size', lambda: 2)
    runner.model[1].eval_stats = 'modality'
    hook.before_train(runner)


def test_a_measurement_a_batch_leaves_out_is_not_shown_stale(monkeypatch):
    """GMN leaves ``mnet_pos_acc`` out of a batch without a positive pair
    (configs/gmn/README.md: "so the logged average is over the iterations
    that had such pairs"). Logged as the iteration's own, the line of an
    iteration without it showed an earlier iteration's value as this
    one's (0.0 here). It is a mean over the window's iterations that
    logged it (0.5), as the losses are, and so are the SNR terms; keys
    logged every iteration as their own (``accuracy``) stay so."""
    from types import SimpleNamespace

    from mmengine.logging import MessageHub

    from mmreid.engine.runner import ReIDLogProcessor
    from mmreid.engine.runner import log_processor as module
    monkeypatch.setattr(module, 'print_log', lambda *args, **kwargs: None)
    hub = MessageHub.get_instance('measurement_left_out')
    for step, pos_acc in enumerate((1.0, 0.0, None)):
        hub.update_scalar('train/loss', 1.0)
        hub.update_scalar('train/lr', 0.1)
        hub.update_scalar('train/time', 1.0)
        hub.update_scalar('train/data_time', 0.1)
        hub.update_scalar('train/accuracy', float(step))
        hub.update_scalar('train/snr_stage2_pos_ap', float(step))
        if pos_acc is not None:
            hub.update_scalar('train/mnet_pos_acc', pos_acc)
    hub.update_info('eta', 4.0)
    loop = SimpleNamespace(dataloader=[None] * 5)
    runner = SimpleNamespace(
        message_hub=hub, train_loop=loop, _train_loop=loop, epoch=0,
        iter=2, max_epochs=2, max_iters=10)
    processor = ReIDLogProcessor(mean_pattern=module.TRAINING_MEAN_PATTERN)
    tag, _ = processor.get_log_after_iter(runner, 2, 'train')
    assert tag['mnet_pos_acc'] == 0.5
    assert tag['snr_stage2_pos_ap'] == 1.0
    assert tag['accuracy'] == 2.0


def test_the_batch_line_counts_an_update_batch():
    """With accumulation the lr is compared with the update batch, and no
    --auto-scale-lr rate is offered: the flag refuses accumulation."""
    from mmreid.engine.hooks.setup_check_hook import lr_text
    base = dict(base_batch_size=64)
    same = lr_text(3.5e-4, base, 64, accumulated=8)
    assert same == ('lr 0.00035 as in the config (auto_scale_lr off; '
                    'base_batch_size 64 = this update batch)')
    other = lr_text(3.5e-4, base, 128, accumulated=8)
    assert other == ('lr 0.00035 as in the config (auto_scale_lr off; '
                     'base_batch_size 64 != this update batch 128: set the '
                     'rate for it yourself, --auto-scale-lr refuses '
                     'accumulation)')
    assert 'no one update batch' in lr_text(3.5e-4, base, 8, accumulated=None)


def test_accumulation_is_read_per_optimizer():
    import torch
    import torch.nn as nn
    from mmengine.optim import OptimWrapper, OptimWrapperDict

    from mmreid.engine.hooks.accumulation_checks import (accumulation_text,
                                                         accumulative_counts)

    def wrapper(counts):
        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
        return OptimWrapper(optimizer, accumulative_counts=counts)

    assert accumulative_counts(None) == {'optim_wrapper': 1}
    assert accumulation_text(8, {'optim_wrapper': 1}, ['TripletLoss'], 8) == ''
    counts = accumulative_counts(OptimWrapperDict(a=wrapper(2), b=wrapper(1)))
    assert counts == {'optim_wrapper.a': 2, 'optim_wrapper.b': 1}
    text = accumulation_text(8, counts, [], 8)
    assert text == (' (optim_wrapper.a.accumulative_counts=2, '
                    'optim_wrapper.b.accumulative_counts=1)')
