"""Resuming refuses a checkpoint that the configured run cannot continue.

mmengine's resume only warns when the training set differs, loads the old
schedulers' state into whatever schedulers the config now builds, and
fails with a bare ``KeyError: 'message_hub'`` on a weights-only file.
"""
import ast
import errno
import glob
import itertools
import os
import os.path as osp
import shutil
import stat

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import LocalBackend

from mmreid.engine.runner import ReIDRunner
from mmreid.utils import load_trusted_checkpoint
from ..fixtures.tiny_config import write_tiny_config

_RUNS = itertools.count()


def build_runner(config, work_dir, **options):
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(options)
    cfg.work_dir = str(work_dir)
    # One name per runner: mmengine keys its logger and message hub by it.
    cfg.experiment_name = f'resume_checks_{next(_RUNS)}'
    return ReIDRunner.from_cfg(cfg)


@pytest.fixture(scope='module')
def trained(tmp_path_factory, synth_root):
    """A tiny two-epoch run: (config, its epoch 1 checkpoint)."""
    root = tmp_path_factory.mktemp('resume_checks')
    config = write_tiny_config(root / 'tiny.py', synth_root)
    build_runner(config, root / 'run').train()
    ckpt = str(root / 'run' / 'epoch_1.pth')
    assert osp.isfile(ckpt)
    return config, ckpt


def resume(config, ckpt, work_dir, **options):
    runner = build_runner(
        config, work_dir, resume=True, load_from=ckpt, **options)
    runner.train()
    return runner


def test_same_config_resumes(trained, tmp_path):
    config, ckpt = trained
    runner = resume(config, ckpt, tmp_path / 'again')
    assert runner.epoch == 2
    assert osp.isfile(tmp_path / 'again' / 'epoch_2.pth')


def test_another_training_set_is_refused(trained, tmp_path):
    config, ckpt = trained
    # Same number of identities (the classifier fits), other domain.
    with pytest.raises(RuntimeError) as info:
        resume(config, ckpt, tmp_path / 'other_data', **{
            'train_dataloader.dataset.datasets.1.domain': 2
        })
    message = str(info.value)
    assert ckpt in message
    assert 'training set' in message
    assert "sources[1].name: 'synthreid-d1' in the checkpoint, " \
        "'synthreid-d2' now" in message
    assert 'load_from' in message
    assert not osp.exists(tmp_path / 'other_data' / 'epoch_2.pth')


def test_another_scheduler_type_is_refused(trained, tmp_path):
    config, ckpt = trained
    cosine = [
        dict(
            type='CosineAnnealingLR',
            T_max=2,
            by_epoch=True,
            begin=0,
            end=2,
            eta_min=1e-6)
    ]
    with pytest.raises(RuntimeError) as info:
        resume(config, ckpt, tmp_path / 'cosine', param_scheduler=cosine)
    message = str(info.value)
    assert ckpt in message
    assert '2 schedulers in the checkpoint (LinearLR, MultiStepLR), 1 in ' \
        'this config (CosineAnnealingLR)' in message
    assert not osp.exists(tmp_path / 'cosine' / 'epoch_2.pth')
    # The same number of schedulers: the saved MultiStepLR state would be
    # loaded into the cosine scheduler (mmengine updates its __dict__).
    warmup = dict(
        type='LinearLR',
        start_factor=0.1,
        by_epoch=True,
        begin=0,
        end=1,
        convert_to_iter_based=True)
    with pytest.raises(RuntimeError) as info:
        resume(
            config,
            ckpt,
            tmp_path / 'cosine2',
            param_scheduler=[warmup] + cosine)
    assert 'param_scheduler[1] (CosineAnnealingLR): a MultiStepLR in the ' \
        'checkpoint' in str(info.value)
    # No scheduler at all: mmengine skipped the saved ones with a warning.
    with pytest.raises(RuntimeError, match=r'\(LinearLR, MultiStepLR\), '
                       'this config has none'):
        resume(config, ckpt, tmp_path / 'none', param_scheduler=None)


def test_a_setting_restated_as_another_number_type_resumes(trained, tmp_path):
    """end_factor=1 is LinearLR's default 1.0: the same schedule, which
    the check refused as "end_factor 1.0 in the checkpoint, 1 in this
    config"; a bool is still no number."""
    from mmreid.engine.runner.resume_checks import _same
    config, ckpt = trained
    resume(config, ckpt, tmp_path / 'int', **{
        'param_scheduler.0.end_factor': 1,
    })
    assert osp.exists(tmp_path / 'int' / 'epoch_2.pth')
    assert _same(np.float64(0.1), 0.1) and not _same(True, 1)
    assert not _same(0, 1e-9) and not _same('1', 1)


def test_another_scheduler_setting_is_refused(trained, tmp_path):
    config, ckpt = trained
    with pytest.raises(RuntimeError) as info:
        resume(
            config, ckpt, tmp_path / 'milestones', **{
                'param_scheduler.1.milestones': [1],
            })
    message = str(info.value)
    assert 'param_scheduler[1] (MultiStepLR)' in message
    assert 'milestones' in message
    # The learning rate the schedule starts from is part of it.
    with pytest.raises(RuntimeError, match='base_values'):
        resume(config, ckpt, tmp_path / 'lr',
               **{'optim_wrapper.optimizer.lr': 1e-3})
    # A scheduler without `end` ends at max_epochs: resuming would keep
    # the checkpoint's end, not the longer run's.
    with pytest.raises(RuntimeError) as info:
        resume(config, ckpt, tmp_path / 'longer',
               **{'train_cfg.max_epochs': 3})
    assert 'end 2 in the checkpoint, 3 in this config' in str(info.value)
    # The option that resumes with the checkpoint's schedule is given.
    assert 'Resume with the schedule of that run (--cfg-options ' \
        'train_cfg.max_epochs=2), or start a new run' in str(info.value)
    # A scheduler whose `end` the config gives gets no such hint.
    with pytest.raises(RuntimeError) as info:
        resume(config, ckpt, tmp_path / 'warm_up',
               **{'param_scheduler.0.end': 2})
    assert 'param_scheduler[0] (LinearLR): end 5 in the checkpoint, 10 in ' \
        'this config' in str(info.value)
    assert 'without `end`' not in str(info.value)


def test_resuming_a_finished_run_says_it_trained_nothing(trained, tmp_path):
    """mmengine's loop trains while the epoch is below max_epochs: the
    last checkpoint of a finished run resumes into a run that trains
    nothing. The log ends with a line that says so and what trains more
    (the tiny config's MultiStepLR has no `end`, so a longer max_epochs
    is refused on resume)."""
    config, ckpt = trained
    last = osp.join(osp.dirname(ckpt), 'epoch_2.pth')
    runner = resume(config, last, tmp_path / 'finished')
    assert runner.epoch == 2
    assert not osp.exists(tmp_path / 'finished' / 'epoch_3.pth')
    log = osp.join(runner.log_dir, f'{runner.timestamp}.log')
    with open(log) as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    assert ' - INFO - nothing trained: ' in lines[-1]
    assert (f'{last} is at epoch 2 of 2 (train_cfg.max_epochs=2), the end '
            "of this run's schedule") in lines[-1]
    assert f'--cfg-options load_from={last} (without --resume' in lines[-1]
    assert 'param_scheduler[1] ends at train_cfg.max_epochs' in lines[-1]
    # Schedulers that give their own `end` allow a longer resumed run.
    runner = resume(config, last, tmp_path / 'own_end',
                    **{'param_scheduler.1.end': 2})
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        lines = [line for line in f.read().splitlines() if line.strip()]
    assert ('or resume with a larger train_cfg.max_epochs (every scheduler '
            'of this config gives its own `end`).') in lines[-1]
    # A resume with steps left says nothing of the kind.
    runner = resume(config, ckpt, tmp_path / 'unfinished')
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        assert 'nothing trained' not in f.read()


def test_another_optimizer_setting_is_refused(trained, tmp_path):
    """torch would take every param-group hyperparameter from the file."""
    config, ckpt = trained
    with pytest.raises(RuntimeError) as info:
        resume(config, ckpt, tmp_path / 'wd',
               **{'optim_wrapper.optimizer.weight_decay': 0})
    message = str(info.value)
    assert ckpt in message
    assert 'optimizer.param_groups[0].weight_decay: 0.0005 in the ' \
        'checkpoint, 0 in this config' in message
    assert f'load_from={ckpt}' in message
    assert not osp.exists(tmp_path / 'wd' / 'epoch_2.pth')
    with pytest.raises(RuntimeError) as info:
        resume(config, ckpt, tmp_path / 'betas',
               **{'optim_wrapper.optimizer.betas': (0.5, 0.999)})
    assert 'param_groups[0].betas: (0.9, 0.999) in the checkpoint, ' \
        '(0.5, 0.999) in this config' in str(info.value)


def test_another_optimizer_type_is_refused(trained, tmp_path):
    """Not a bare ``KeyError: 'momentum'`` at the first step."""
    config, ckpt = trained
    with pytest.raises(RuntimeError) as info:
        resume(
            config, ckpt, tmp_path / 'sgd', **{
                'optim_wrapper.optimizer.type': 'SGD',
                'optim_wrapper.optimizer.momentum': 0.9
            })
    message = str(info.value)
    assert 'optimizer type: Adam in the checkpoint, SGD in this config' \
        in message
    assert 'param_groups[0].betas: (0.9, 0.999) in the checkpoint, absent' \
        in message
    assert not osp.exists(tmp_path / 'sgd' / 'epoch_2.pth')


def test_changed_lr_without_schedulers_is_refused(trained, tmp_path):
    """Without schedulers no base_values check sees the learning rate."""
    config, ckpt = trained
    checkpoint = load_trusted_checkpoint(ckpt)
    del checkpoint['param_schedulers']
    plain = str(tmp_path / 'no_schedulers.pth')
    torch.save(checkpoint, plain)
    saved_lr = checkpoint['optimizer']['param_groups'][0]['lr']
    with pytest.raises(RuntimeError) as info:
        resume(
            config,
            plain,
            tmp_path / 'lr',
            param_scheduler=None,
            **{'optim_wrapper.optimizer.lr': 0.01})
    assert f'optimizer.param_groups[0].lr: {saved_lr!r} in the ' \
        'checkpoint, 0.01 in this config' in str(info.value)
    assert not osp.exists(tmp_path / 'lr' / 'epoch_2.pth')
    # Per-parameter groups (paramwise_cfg) against the file's one group
    # (with schedulers, their base_values tell it first).
    with pytest.raises(RuntimeError) as info:
        resume(
            config,
            plain,
            tmp_path / 'paramwise',
            param_scheduler=None,
            **{'optim_wrapper.paramwise_cfg': dict(bias_decay_mult=0.)})
    assert 'optimizer.param_groups: 1 groups in the checkpoint' \
        in str(info.value)


def test_metainfo_differences_name_what_either_side_lacks():
    """A source dropped from the list, or a key only this training set
    has (another trial), is another training set."""
    from mmreid.engine.runner.resume_checks import metainfo_differences
    saved = dict(num_pids=8, sources=[dict(name='a'), dict(name='b')])
    assert metainfo_differences(saved, dict(saved)) == []
    trial = dict(saved, trial=2)
    assert metainfo_differences(
        saved, trial) == ['trial: absent in the checkpoint, 2 now']
    fewer = dict(saved, sources=[dict(name='a')])
    assert metainfo_differences(
        saved, fewer) == ['sources: 2 entries in the checkpoint, 1 now']


def test_param_group_differences_compare_what_schedulers_start_from():
    from mmreid.engine.runner.resume_checks import param_group_differences
    saved = [
        dict(
            params=[0, 1],
            lr=0.01,
            initial_lr=0.1,
            momentum=0.8,
            initial_momentum=0.9,
            betas=(0.8, 0.999),
            eps=1e-8)
    ]
    # Same settings in another state of the schedule; a list for a tuple.
    same = [
        dict(
            params=[5, 6],
            lr=0.1,
            initial_lr=0.1,
            momentum=0.9,
            initial_momentum=0.9,
            betas=[0.9, 0.999],
            eps=1e-8)
    ]
    assert param_group_differences(saved, same, {'lr', 'momentum'}) == []
    # Without schedulers the value itself is the setting.
    assert param_group_differences(saved, same) == [
        'optimizer.param_groups[0].lr: 0.01 in the checkpoint, 0.1 in '
        'this config',
        'optimizer.param_groups[0].momentum: 0.8 in the checkpoint, 0.9 '
        'in this config',
        'optimizer.param_groups[0].betas: (0.8, 0.999) in the checkpoint, '
        '[0.9, 0.999] in this config'
    ]
    other = [dict(same[0], initial_lr=0.2, betas=(0.9, 0.99), params=[1])]
    assert param_group_differences(saved, other, {'lr', 'momentum'}) == [
        'optimizer.param_groups[0]: 2 parameters in the checkpoint, 1 in '
        'this config',
        'optimizer.param_groups[0].initial_lr: 0.1 in the checkpoint, 0.2 '
        'in this config',
        'optimizer.param_groups[0].betas[1]: [0.999] in the checkpoint, '
        '[0.99] in this config'
    ]


def half_put(self, obj, filepath):
    """mmengine's ``LocalBackend.put`` cut short, as on a full disk or a
    lost node."""
    with open(filepath, 'wb') as f:
        f.write(obj[:len(obj) // 2])
    raise OSError(errno.ENOSPC, 'No space left on device (simulated)')


def test_interrupted_save_keeps_the_previous_checkpoint(
        trained, tmp_path, monkeypatch):
    config, ckpt = trained
    work_dir = tmp_path / 'run'
    runner = build_runner(config, work_dir)
    target = work_dir / 'epoch_1.pth'
    shutil.copy(ckpt, target)
    before = target.read_bytes()
    monkeypatch.setattr(LocalBackend, 'put', half_put)
    with pytest.raises(OSError, match='No space left'):
        runner.save_checkpoint(
            str(work_dir),
            'epoch_1.pth',
            save_optimizer=False,
            save_param_scheduler=False)
    assert target.read_bytes() == before
    assert not [p for p in os.listdir(work_dir) if '.tmp-' in p]
    monkeypatch.undo()
    # A save that completes replaces it, with a plain open()'s mode.
    runner.save_checkpoint(
        str(work_dir),
        'epoch_1.pth',
        save_optimizer=False,
        save_param_scheduler=False)
    assert 'optimizer' not in load_trusted_checkpoint(str(target))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~umask
    assert not [p for p in os.listdir(work_dir) if '.tmp-' in p]


def test_save_best_rewrite_interrupted_leaves_a_resumable_run(
        trained, tmp_path, monkeypatch):
    """With save_best, mmengine writes epoch_N.pth again after the
    validation, when last_checkpoint already names it."""
    config, ckpt = trained
    work_dir = tmp_path / 'best'

    def put(self, obj, filepath):
        # The second write of epoch_2.pth (in place or not) fails.
        name = osp.basename(filepath)
        if 'epoch_2.pth' in name and 'best' not in name and \
                osp.isfile(work_dir / 'epoch_2.pth'):
            return half_put(self, obj, filepath)
        return real_put(self, obj, filepath)

    real_put = LocalBackend.put
    monkeypatch.setattr(LocalBackend, 'put', put)
    with pytest.raises(OSError, match='No space left'):
        resume(
            config, ckpt, work_dir, **{
                'default_hooks.checkpoint.save_best': 'reid/mAP',
                'default_hooks.checkpoint.rule': 'greater'
            })
    monkeypatch.undo()
    assert glob.glob(str(work_dir / 'best_reid_mAP_epoch_2.pth'))
    latest = (work_dir / 'last_checkpoint').read_text()
    assert latest == str(work_dir / 'epoch_2.pth')
    # The run can go on: the checkpoint last_checkpoint names is whole.
    assert load_trusted_checkpoint(latest)['meta']['epoch'] == 2
    assert not [p for p in os.listdir(work_dir) if '.tmp-' in p]


#: The best checkpoint kept by reid/mAP.
SELECTING = {
    'default_hooks.checkpoint.save_best': 'reid/mAP',
    'default_hooks.checkpoint.rule': 'greater'
}


def selecting_checkpoint(ckpt,
                         path,
                         save_best='reid/mAP',
                         rule='greater',
                         best_score=None,
                         best_ckpt=None,
                         validated=None):
    """Write ``ckpt`` to ``path`` as a checkpoint of a run that validated
    and kept its best checkpoint by ``save_best`` (None: kept none).

    Args:
        best_score (float, optional): The best score so far of its message
            hub (``best_score``, as mmengine's CheckpointHook keeps it).
        best_ckpt (str, optional): The best checkpoint's path it records.
        validated (float, optional): A validation result of ``reid/mAP``
            recorded in the message hub.
    """
    from mmengine.logging import HistoryBuffer
    checkpoint = load_trusted_checkpoint(ckpt)
    if save_best is not None:
        hook = "type='CheckpointHook'"
        assert hook in checkpoint['meta']['cfg']
        checkpoint['meta']['cfg'] = checkpoint['meta']['cfg'].replace(
            hook, f'{hook}, save_best={save_best!r}, rule={rule!r}', 1)
    hub = checkpoint['message_hub']
    if best_score is not None:
        hub['runtime_info']['best_score'] = best_score
    if best_ckpt is not None:
        hub['runtime_info']['best_ckpt'] = best_ckpt
    if validated is not None:
        buffer = HistoryBuffer()
        buffer.update(validated)
        hub['log_scalars']['val/reid/mAP'] = buffer
    torch.save(checkpoint, str(path))
    return str(path)


@pytest.mark.parametrize('saved,options,expected,fix', [
    (dict(best_score=30.0), {
        'default_hooks.checkpoint.save_best': 'reid/R1'
    }, "its run selected the best checkpoint by save_best='reid/mAP' "
     "(rule 'greater') (its meta['cfg']), this config by "
     "save_best='reid/R1' (rule 'greater'). mmengine resumes the best "
     'score so far whatever the key and rule',
     "Resume with default_hooks.checkpoint.save_best='reid/mAP', "
     "rule='greater' (or save_best=None"),
    (dict(rule='less', best_score=10.0), {},
     "save_best='reid/mAP' (rule 'less') (its meta['cfg']), this config "
     "by save_best='reid/mAP' (rule 'greater')",
     "Resume with default_hooks.checkpoint.save_best='reid/mAP', "
     "rule='less'"),
    (dict(save_best=None, validated=30.0), {},
     "its run selected the best checkpoint by no save_best (its "
     "meta['cfg']), this config by save_best='reid/mAP' (rule 'greater')."
     ' The best would be chosen among the epochs after the resume only',
     'Resume without save_best (default_hooks.checkpoint.save_best=None)'),
])
def test_another_save_best_is_refused_once_validated(trained, tmp_path, saved,
                                                     options, expected, fix):
    """mmengine resumed the best score under a name without its key or
    rule: another key was compared with the old key's best (no best
    checkpoint saved, or a worse one, deleting the other's), another rule
    kept the worst epoch."""
    config, ckpt = trained
    ckpt = selecting_checkpoint(ckpt, tmp_path / 'selected.pth', **saved)
    with pytest.raises(RuntimeError) as info:
        resume(config, ckpt, tmp_path / 'other_key', **{
            **SELECTING,
            **options
        })
    message = str(info.value)
    assert message.startswith(f'cannot resume from {ckpt!r}: ')
    assert expected in message
    assert fix in message and f'load_from={ckpt}' in message
    assert not osp.exists(tmp_path / 'other_key' / 'epoch_2.pth')


def test_save_best_may_change_before_the_first_validation(trained, tmp_path):
    """The checkpoint of a run that has not validated holds no best score
    yet: any selection goes on from it (and dropping one always may)."""
    config, ckpt = trained
    ckpt = selecting_checkpoint(ckpt, tmp_path / 'early.pth')
    runner = resume(
        config, ckpt, tmp_path / 'early', **{
            'default_hooks.checkpoint.save_best': 'reid/R1',
            'default_hooks.checkpoint.rule': 'greater'
        })
    assert runner.epoch == 2
    assert osp.isfile(tmp_path / 'early' / 'best_reid_R1_epoch_2.pth')


@pytest.mark.parametrize('copied', [True, False])
def test_resume_elsewhere_never_removes_the_other_folders_best(
        trained, tmp_path, copied):
    """mmengine resumed the best checkpoint's absolute path and removed that
    file when an epoch scored better: resuming a copied work dir (or
    another folder's checkpoint) deleted the original's best checkpoint.
    The copy's own file of that name is used instead; without one, none."""
    config, ckpt = trained
    orig = tmp_path / 'orig'
    orig.mkdir()
    best = orig / 'best_reid_mAP_epoch_1.pth'
    shutil.copy(ckpt, best)
    # Any epoch beats a best score of -1.
    selecting_checkpoint(
        ckpt, orig / 'epoch_1.pth', best_score=-1.0, best_ckpt=str(best))
    (orig / 'last_checkpoint').write_text(str(orig / 'epoch_1.pth'))
    there = tmp_path / 'there'
    if copied:
        shutil.copytree(orig, there)
        runner = build_runner(config, there, resume=True, **SELECTING)
        runner.train()
    else:
        there.mkdir()
        shutil.copy(orig / 'epoch_1.pth', there / 'epoch_1.pth')
        runner = resume(config, str(there / 'epoch_1.pth'), there, **SELECTING)
    assert runner.epoch == 2
    assert best.is_file()
    assert osp.isfile(there / 'best_reid_mAP_epoch_2.pth')
    # The copy's own previous best was replaced by the better one.
    assert not osp.exists(there / best.name)
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        log = f.read()
    said = (f'its file of that name, {there / best.name}, is kept'
            if copied else f'which holds no {best.name}: it stays where it is')
    assert f'was resumed as {best}, outside this run\'s folder' in log
    assert said in log


def test_weights_only_checkpoint_is_refused_with_its_name(trained, tmp_path):
    config, ckpt = trained
    full = load_trusted_checkpoint(ckpt)
    published = str(tmp_path / 'published.pth')
    torch.save(dict(state_dict=full['state_dict'], meta=full['meta']),
               published)
    with pytest.raises(RuntimeError) as info:
        resume(config, published, tmp_path / 'pub')
    message = str(info.value)
    assert published in message
    assert 'message_hub' in message
    assert f'load_from={published}' in message


def test_checkpoint_records_the_number_of_processes(trained):
    _, ckpt = trained
    assert load_trusted_checkpoint(ckpt)['meta']['world_size'] == 1


def test_resume_restores_a_drawn_sampler_seed(trained, tmp_path):
    """With diff_rank_seed and no seed, mmengine gives the sampler a draw
    of its own that meta['seed'] does not give back."""
    config, ckpt = trained
    checkpoint = load_trusted_checkpoint(ckpt)
    checkpoint['meta']['sampler_seed'] = 123456
    drawn = str(tmp_path / 'drawn.pth')
    torch.save(checkpoint, drawn)
    runner = resume(
        config, drawn, tmp_path / 'drs', **{
            'randomness': dict(seed=None, diff_rank_seed=True),
            'train_cfg.val_interval': 100
        })
    assert runner.train_dataloader.sampler.seed == 123456
    again = load_trusted_checkpoint(str(tmp_path / 'drs' / 'epoch_2.pth'))
    assert again['meta']['sampler_seed'] == 123456
    # The work dir's config copy and the new checkpoint's config record
    # the checkpoint's seeds, not the ones drawn for this start.
    for recorded in (Config.fromfile(
            str(tmp_path / 'drs' / osp.basename(config))),
                     Config.fromstring(again['meta']['cfg'], '.py')):
        assert recorded.train_dataloader.sampler.seed == 123456
        assert recorded.randomness.seed == again['meta']['seed']


def test_another_batch_or_sampler_is_refused(trained, tmp_path):
    """They decide the steps of an epoch and the identities of each."""
    config, ckpt = trained
    assert load_trusted_checkpoint(ckpt)['meta']['train_loader'] == dict(
        batch_size=8,
        sampler=dict(type='IdentitySampler', batch_size=8, num_instances=2))
    with pytest.raises(RuntimeError) as info:
        resume(
            config, ckpt, tmp_path / 'k4', **{
                'train_dataloader.sampler.num_instances': 4,
            })
    message = str(info.value)
    assert 'train_dataloader.sampler.num_instances: 2 in the checkpoint, ' \
        '4 now' in message and f'load_from={ckpt}' in message
    with pytest.raises(RuntimeError, match='train_dataloader.batch_size: 8 '
                       'in the checkpoint, 16 now'):
        resume(
            config, ckpt, tmp_path / 'b16', **{
                'train_dataloader.batch_size': 16,
                'train_dataloader.sampler.batch_size': 16,
            })
    assert not osp.exists(tmp_path / 'k4' / 'epoch_2.pth')
    # The loading side of the loader may change: workers are not steps;
    # and 'mmreid.IdentitySampler' builds what 'IdentitySampler' builds.
    runner = resume(
        config, ckpt, tmp_path / 'workers', **{
            'train_dataloader.num_workers': 1,
            'train_dataloader.sampler.type': 'mmreid.IdentitySampler'
        })
    assert runner.epoch == 2


def with_accumulation(ckpt, path, counts):
    """``ckpt`` as if its run had accumulated ``counts`` batches per
    update: its ``meta['cfg']`` gives ``optim_wrapper.accumulative_counts``.
    """
    checkpoint = load_trusted_checkpoint(ckpt)
    text = checkpoint['meta']['cfg']
    assert 'accumulative_counts' not in text
    checkpoint['meta']['cfg'] = text.replace(
        'optim_wrapper = dict(',
        f'optim_wrapper = dict(accumulative_counts={counts}, ', 1)
    assert f'accumulative_counts={counts}' in checkpoint['meta']['cfg']
    torch.save(checkpoint, path)
    return str(path)


def test_another_gradient_accumulation_is_refused(trained, tmp_path):
    """A user resumes with another ``optim_wrapper.accumulative_counts``
    (gradient accumulation) than the run was trained with. It resumed
    silently: the rest of the run updated once per another number of
    batches (another batch per update, another number of updates per
    epoch) while the config copy credited every epoch to the new value.
    Right: refused like the batch size, naming the file, the key and both
    values; restating the value the run had (1, mmengine's default, where
    its config gives none) resumes."""
    config, ckpt = trained
    with pytest.raises(RuntimeError) as info:
        resume(config, ckpt, tmp_path / 'acc2',
               **{'optim_wrapper.accumulative_counts': 2})
    message = str(info.value)
    assert ckpt in message
    assert 'optim_wrapper.accumulative_counts: 1 in the checkpoint, 2 now' \
        in message
    assert f'load_from={ckpt}' in message
    assert 'Resume with --cfg-options optim_wrapper.accumulative_counts=1' \
        in message
    assert not osp.exists(tmp_path / 'acc2' / 'epoch_2.pth')
    # A run that accumulated 2 batches, resumed without accumulation.
    two = with_accumulation(ckpt, tmp_path / 'acc2.pth', 2)
    with pytest.raises(
            RuntimeError,
            match='optim_wrapper.accumulative_counts: 2 in the checkpoint, '
            '1 now'):
        resume(config, two, tmp_path / 'acc1')
    assert not osp.exists(tmp_path / 'acc1' / 'epoch_2.pth')
    # The same value, given or left to the default, resumes.
    runner = resume(config, ckpt, tmp_path / 'same',
                    **{'optim_wrapper.accumulative_counts': 1})
    assert runner.epoch == 2


def test_a_resume_between_accumulated_updates_is_refused(trained, tmp_path):
    """With ``accumulative_counts=2`` and epochs of 5 steps, ``epoch_1.pth``
    (iteration 5) is saved between two updates, without the gradient of
    iteration 5: refused, naming the file, the iteration, the setting and
    the checkpoints that resume. With 5 (an update at iteration 5) it
    resumes."""
    config, ckpt = trained
    two = with_accumulation(ckpt, tmp_path / 'acc2.pth', 2)
    with pytest.raises(RuntimeError) as info:
        resume(config, two, tmp_path / 'acc2',
               **{'optim_wrapper.accumulative_counts': 2})
    message = str(info.value)
    assert f'cannot resume from {two!r}: it was saved at iteration 5' \
        in message
    assert 'optim_wrapper.accumulative_counts=2' in message
    assert 'an epoch_K.pth with K a multiple of 2' in message
    assert f'load_from={two}' in message
    assert not osp.exists(tmp_path / 'acc2' / 'epoch_2.pth')
    five = with_accumulation(ckpt, tmp_path / 'acc5.pth', 5)
    # The tiny config's 5-iteration warm-up holds one update of 5 steps,
    # which a run's start refuses (schedule_checks); the doctored
    # checkpoint stands for such a run, resumed after its warm-up.
    from mmreid.engine.runner import schedule_checks
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(schedule_checks, 'check_schedulers_span_updates',
                      lambda entries: None)
        runner = resume(config, five, tmp_path / 'acc5',
                        **{'optim_wrapper.accumulative_counts': 5})
    assert runner.epoch == 2


def test_update_settings_are_compared_with_their_defaults():
    """What a resume compares of the weight updates: a setting left to
    its default is the default (``clip_grad`` ``type='norm'``,
    ``norm_type=2``; the ``EMAHook``'s and its averaged model's defaults;
    ``mmengine.EMAHook`` is ``EMAHook``; ``strict_load`` only loads), in
    ``custom_hooks`` or ``default_hooks``; another value differs."""
    from mmreid.engine.runner.resuming import ema_plan, update_plan
    optim = dict(optimizer=dict(type='Adam', lr=1e-3))
    assert update_plan(optim) == {
        'optim_wrapper.accumulative_counts': 1,
        'optim_wrapper.clip_grad': None
    }
    assert update_plan(dict(optim, clip_grad=dict(max_norm=35))) == \
        update_plan(dict(optim, clip_grad=dict(
            type='norm', max_norm=35, norm_type=2)))
    assert update_plan(dict(optim, clip_grad=dict(max_norm=35))) != \
        update_plan(dict(optim, clip_grad=dict(max_norm=35, norm_type=1)))
    plain = ema_plan([dict(type='EMAHook')], None)
    assert plain['EMAHook']['momentum'] == 0.0002
    assert ema_plan(
        [dict(type='mmengine.EMAHook', momentum=0.0002, strict_load=True)],
        dict(checkpoint=dict(type='CheckpointHook'))) == plain
    assert ema_plan([], dict(ema=dict(type='EMAHook'))) == plain
    assert ema_plan([dict(type='EMAHook', momentum=0.5)], None) != plain
    assert ema_plan(None, dict(checkpoint=dict(type='CheckpointHook'))) == {}


def with_world_size(ckpt, path, world_size):
    checkpoint = load_trusted_checkpoint(ckpt)
    checkpoint['meta']['world_size'] = world_size
    torch.save(checkpoint, path)
    return str(path)


def test_another_number_of_processes_is_refused(trained, tmp_path):
    config, ckpt = trained
    # As if trained by tools/dist_train.sh CONFIG 2; resumed on one.
    two = with_world_size(ckpt, tmp_path / 'two.pth', 2)
    with pytest.raises(RuntimeError) as info:
        resume(config, two, tmp_path / 'one')
    message = str(info.value)
    assert two in message
    assert 'trained on 2 processes, this run has 1' in message
    assert 'resume_world_size_check=False' in message
    assert not osp.exists(tmp_path / 'one' / 'epoch_2.pth')


def test_another_number_of_processes_resumes_when_accepted(trained, tmp_path):
    config, ckpt = trained
    two = with_world_size(ckpt, tmp_path / 'two.pth', 2)
    runner = resume(
        config, two, tmp_path / 'accepted', resume_world_size_check=False)
    assert runner.epoch == 2
    # The checkpoints it writes record the processes it ran on.
    again = load_trusted_checkpoint(str(tmp_path / 'accepted' / 'epoch_2.pth'))
    assert again['meta']['world_size'] == 1


@pytest.fixture(scope='module')
def trained_on_two(tmp_path_factory, synth_root):
    """The tiny run as 2 processes would train it: (config, its epoch 1
    checkpoint).

    The sampler shares each epoch among 2 processes (monkeypatched world
    size: 3 steps per epoch instead of 5), and the checkpoint records 2
    processes.
    """
    from mmreid.datasets.samplers import epoch_plan_sampler
    root = tmp_path_factory.mktemp('resume_two')
    config = write_tiny_config(root / 'tiny.py', synth_root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(epoch_plan_sampler, 'get_dist_info', lambda: (0, 2))
        runner = build_runner(config, root / 'run',
                              **{'train_cfg.max_epochs': 1})
        runner.train()
    assert len(runner.train_dataloader) == 3
    ckpt = with_world_size(root / 'run' / 'epoch_1.pth', root / 'two.pth', 2)
    return config, ckpt


def test_another_steps_per_epoch_is_refused_with_its_reason(
        trained_on_two, tmp_path):
    """resume_world_size_check=False cannot finish a 2-process run on one
    when its epochs change length (mmengine's iteration counter and the
    converted warm-up count the old steps)."""
    config, ckpt = trained_on_two
    with pytest.raises(RuntimeError) as info:
        resume(
            config,
            ckpt,
            tmp_path / 'one',
            resume_world_size_check=False,
            **{'train_cfg.max_epochs': 1})
    message = str(info.value)
    assert f"cannot resume from '{ckpt}': its epochs had 3 steps, this " \
        "run's have 5 (len(train_dataloader))" in message
    assert 'trained on 2 processes and this run has 1' in message
    assert f'load_from={ckpt}' in message
    # Not the schedule's or the resume point's symptoms.
    assert 'without `end`' not in message and 'middle' not in message
    assert not osp.exists(tmp_path / 'one' / 'epoch_1.pth')


def test_steps_per_epoch_of_a_checkpoint():
    from mmreid.engine.runner.resume_checks import \
        steps_per_epoch_in_checkpoint as steps

    def checkpoint(train_cfg, max_iters, max_epochs):
        return dict(
            meta=dict(cfg=f'train_cfg = {train_cfg}\n'),
            message_hub=dict(
                runtime_info=dict(max_iters=max_iters, max_epochs=max_epochs)))

    assert steps(checkpoint('dict(by_epoch=True, max_epochs=4)', 20, 4)) == 5
    # An iteration-based run's max_iters is not an epoch's.
    assert steps(
        checkpoint("dict(type='IterBasedTrainLoop', max_iters=20)", 20,
                   1)) is None
    assert steps(checkpoint('dict(by_epoch=False, max_iters=20)', 20,
                            1)) is None
    assert steps(dict(meta=dict())) is None


def test_the_saved_config_is_parsed_once_per_resume(trained, tmp_path,
                                                    monkeypatch):
    """The steps, schedule and optimizer checks all read ``meta['cfg']``;
    each parsed the text again."""
    config, ckpt = trained
    text = load_trusted_checkpoint(ckpt)['meta']['cfg']
    parses = []
    parse = ast.parse

    def counting_parse(source, *args, **kwargs):
        if source == text:
            parses.append(source)
        return parse(source, *args, **kwargs)

    monkeypatch.setattr(ast, 'parse', counting_parse)
    # Refused by the optimizer check, which runs after the other two.
    with pytest.raises(RuntimeError, match='weight_decay'):
        resume(config, ckpt, tmp_path / 'wd',
               **{'optim_wrapper.optimizer.weight_decay': 0})
    assert len(parses) == 1


def test_refused_start_keeps_the_config_copy(trained, tmp_path):
    """A refused or failed start does not overwrite ``<work_dir>/tiny.py``.

    It is the record of the run whose checkpoints sit next to it
    (tools/test.py reads it, compare_configs too); mmengine dumped the
    config of every attempt there when the runner was built.
    """
    config, ckpt = trained
    work_dir = tmp_path / 'run'
    work_dir.mkdir()
    copy = work_dir / 'tiny.py'
    shutil.copy(osp.join(osp.dirname(ckpt), 'tiny.py'), copy)
    before = copy.read_bytes()
    missing = str(tmp_path / 'missing.pth')
    # A schedule that the checkpoint cannot continue.
    with pytest.raises(RuntimeError, match='learning rate schedule'):
        resume(config, ckpt, work_dir, **{'train_cfg.max_epochs': 3})
    assert copy.read_bytes() == before
    # --resume naming a file that is not there.
    with pytest.raises(FileNotFoundError):
        resume(config, missing, work_dir)
    assert copy.read_bytes() == before
    # A --cfg-options typo that breaks the training loop.
    with pytest.raises(TypeError, match='max_epoch'):
        build_runner(config, work_dir, **{'train_cfg.max_epoch': 1}).train()
    assert copy.read_bytes() == before
    # tools/test.py of a checkpoint that is not there.
    with pytest.raises(FileNotFoundError):
        build_runner(config, work_dir, load_from=missing).test()
    assert copy.read_bytes() == before
    assert Config.fromfile(str(copy)).train_cfg.max_epochs == 2
    # The log folder keeps the attempt's config (mmengine's, unchanged).
    assert glob.glob(str(work_dir / '*' / 'vis_data' / 'config.py'))


def test_started_runs_write_the_config_copy(trained, tmp_path):
    """A training, a resume and a test write it, whole and readable; a
    test keeps the copy a training left in its work dir."""
    config, ckpt = trained
    trained_copy = osp.join(osp.dirname(ckpt), 'tiny.py')
    assert Config.fromfile(trained_copy).train_cfg.max_epochs == 2

    work_dir = tmp_path / 'test'
    work_dir.mkdir()
    copy = work_dir / 'tiny.py'
    build_runner(config, work_dir, load_from=ckpt).test()
    assert Config.fromfile(str(copy)).load_from == ckpt
    copy.write_text('# the copy of the training run\n')
    build_runner(config, work_dir, load_from=ckpt).test()
    assert copy.read_text() == '# the copy of the training run\n'
    copy.unlink()
    build_runner(config, work_dir, load_from=ckpt).test()
    # Written through a temporary file that is gone, with the
    # permissions of a plain open().
    assert sorted(p.name for p in work_dir.iterdir()
                  if not p.is_dir()) == ['tiny.py']
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(copy).st_mode) == 0o666 & ~umask

    # A resume that is accepted writes it too.
    resumed = tmp_path / 'resumed'
    resumed.mkdir()
    (resumed / 'tiny.py').write_text('# the copy of an earlier run\n')
    resume(config, ckpt, resumed, **{'train_cfg.val_interval': 100})
    assert Config.fromfile(str(resumed / 'tiny.py')).resume is True


@pytest.mark.parametrize('content', ['', 'epoch_1.p'])
def test_a_cut_last_checkpoint_is_named(trained, tmp_path, content):
    """mmengine writes last_checkpoint in place: a kill during the write
    left it empty or cut, and --resume failed with "checkpoint file ''
    does not exist"."""
    config, ckpt = trained
    work_dir = tmp_path / 'cut'
    work_dir.mkdir()
    shutil.copy(ckpt, work_dir / 'epoch_1.pth')
    (work_dir / 'last_checkpoint').write_text(content)
    runner = build_runner(config, work_dir, resume=True)
    with pytest.raises(FileNotFoundError) as info:
        runner.train()
    message = str(info.value)
    assert message.startswith(
        f"--resume: {work_dir / 'last_checkpoint'} names {content!r}, "
        'which is not a file')
    assert message.endswith(f"--resume {work_dir / 'epoch_1.pth'}.")
    assert runner.iter == 0


def test_a_cut_last_checkpoint_names_the_last_checkpoint_by_step(tmp_path):
    """The advice names the run's last checkpoint by its step: by file
    time it named a best_*.pth, or an early epoch of a copied work dir
    (epoch_2 written after epoch_10), and by name epoch_2 sorts last."""
    from mmreid.utils.checkpoint import last_run_checkpoint
    for when, name in enumerate(['epoch_9.pth', 'epoch_10.pth', 'epoch_2.pth',
                                 'best_R1_epoch_9.pth', 'notes.pth']):
        (tmp_path / name).write_bytes(b'')
        os.utime(tmp_path / name, (1000 + when, 1000 + when))
    (tmp_path / 'last_checkpoint').write_text('epoch_1')
    with pytest.raises(FileNotFoundError) as info:
        last_run_checkpoint(str(tmp_path))
    assert ('(last: epoch_2.pth, epoch_9.pth, epoch_10.pth), tools/train.py '
            f"CONFIG --resume {tmp_path / 'epoch_10.pth'}.") in str(info.value)


def test_a_remote_last_checkpoint_is_left_to_the_loader(tmp_path):
    """With a remote out_dir (s3, petrel) mmengine writes the checkpoint's
    URL into the local last_checkpoint: it is no local file, and was
    refused as a cut one (the review's reproducer resumed normally with
    the check bypassed)."""
    from mmreid.utils.checkpoint import last_run_checkpoint
    url = 's3://bucket/run/epoch_1.pth'
    (tmp_path / 'last_checkpoint').write_text(url)
    assert last_run_checkpoint(str(tmp_path)) == url
    (tmp_path / 'last_checkpoint').write_text('')
    with pytest.raises(FileNotFoundError, match="names '', which is not"):
        last_run_checkpoint(str(tmp_path))


def test_a_copied_work_dir_resumes_from_its_own_checkpoint(trained, tmp_path):
    """mmengine writes the checkpoint's absolute path into last_checkpoint:
    --resume of a copied work dir resumed the original folder's
    checkpoint, and once that file was gone refused "a run killed while
    writing it" although the copy held it. The copy's own file of that
    name is resumed."""
    config, ckpt = trained
    final = osp.join(osp.dirname(ckpt), 'epoch_2.pth')  # resumes nothing
    original = tmp_path / 'orig'
    original.mkdir()
    shutil.copy(final, original / 'epoch_2.pth')
    (original / 'last_checkpoint').write_text(str(original / 'epoch_2.pth'))
    copy = tmp_path / 'copy'
    shutil.copytree(original, copy)
    # The original folder's file is now another one: weights only, which
    # a resume of it refuses.
    full = load_trusted_checkpoint(final)
    torch.save(
        dict(state_dict=full['state_dict'], meta=full['meta']),
        original / 'epoch_2.pth')
    runner = build_runner(config, copy, resume=True)
    runner.train()
    assert runner._resumed_from == str(copy / 'epoch_2.pth')
    assert runner.epoch == 2
    # The original folder's file gone.
    (original / 'epoch_2.pth').unlink()
    runner = build_runner(config, copy, resume=True)
    runner.train()
    assert runner._resumed_from == str(copy / 'epoch_2.pth')
    # Without the file in the copy, both paths are named.
    (copy / 'epoch_2.pth').unlink()
    shutil.copy(ckpt, copy / 'epoch_1.pth')
    with pytest.raises(FileNotFoundError) as info:
        build_runner(config, copy, resume=True).train()
    message = str(info.value)
    assert message.startswith(f"--resume: {copy / 'last_checkpoint'} names "
                              f"{str(original / 'epoch_2.pth')!r}, outside "
                              'the work dir')
    assert str(copy / 'epoch_2.pth') in message
    assert f"--resume {copy / 'epoch_1.pth'}" in message


def test_steps_per_epoch_need_an_epoch_based_record():
    """A loop with max_iters (whatever its type is called) is
    iteration-based, and max_iters that epochs do not divide is no
    epoch-based run's record: neither tells the steps of an epoch."""
    from mmreid.engine.runner.resume_checks import \
        steps_per_epoch_in_checkpoint as steps

    def checkpoint(train_cfg, max_iters, max_epochs):
        return dict(
            meta=dict(cfg=f'train_cfg = {train_cfg}\n'),
            message_hub=dict(
                runtime_info=dict(max_iters=max_iters, max_epochs=max_epochs)))

    assert steps(checkpoint("dict(type='MyLoop', max_iters=20)", 20,
                            1)) is None
    assert steps(checkpoint('dict(by_epoch=True, max_epochs=4)', 21,
                            4)) is None
    assert steps(checkpoint("dict(type='MyLoop', max_epochs=4)", 20, 4)) == 5


def test_steps_per_epoch_not_read_from_a_loop_that_is_not_by_epoch():
    """A loop of its own type with ``by_epoch=False`` is iteration-based
    whatever its length is called: its ``max_iters`` over the one epoch
    mmengine records is no epoch's length, and reading it as one would
    refuse (or accept) a resume for epochs that run never had."""
    from mmreid.engine.runner.resume_checks import \
        steps_per_epoch_in_checkpoint as steps
    checkpoint = dict(
        meta=dict(cfg="train_cfg = dict(type='MyLoop', by_epoch=False, "
                  'max_steps=20)\n'),
        message_hub=dict(runtime_info=dict(max_iters=20, max_epochs=1)))
    assert steps(checkpoint) is None


def test_the_saved_selection_counts_a_checkpoint_hook_in_custom_hooks():
    """A run that picked its best checkpoint with a ``CheckpointHook`` of
    ``custom_hooks`` selected by that key too: read from its saved
    config, or a resume that drops or changes it goes unrefused."""
    from mmreid.engine.runner.resume_checks import selection_in_config_text
    text = ("default_hooks = dict(checkpoint=dict(type='CheckpointHook', "
            'interval=1))\n'
            "custom_hooks = [dict(type='EMAHook'), "
            "dict(type='CheckpointHook', save_best='reid/mAP', "
            "rule='greater')]\n")
    assert selection_in_config_text(text) == [('reid/mAP', 'greater')]
    text = text.replace("'CheckpointHook', save_best", "'EMAHook', save_best")
    assert selection_in_config_text(text) == []


def test_a_saved_config_value_is_read_only_as_a_literal():
    """A checkpoint's config is read, never run: ``dict(key=...)`` calls
    and literals are values; a ``dict`` call that merges another mapping
    (``dict(base, lr=0.1)``) is not read as its keywords alone, which
    would drop the merged keys and compare a wrong saved setting."""
    from mmreid.engine.runner.resume_checks import (config_literal,
                                                    config_text_value)
    text = ("base = dict(lr=0.1)\n"
            "optim = dict(type='SGD', lr=0.1, betas=(0.9, 0.99))\n"
            'merged = dict(base, momentum=0.9)\n'
            'named = base\n')
    assert config_literal(config_text_value(text, 'optim')) == dict(
        type='SGD', lr=0.1, betas=(0.9, 0.99))
    for name in ('merged', 'named'):
        with pytest.raises(ValueError):
            config_literal(config_text_value(text, name))


def test_a_scheduler_whose_state_keys_are_a_subset_is_another_type():
    """An ExponentialLR's state keys are a subset of a MultiStepLR's: it
    is still another type, named as such, not read as a MultiStepLR."""
    from mmengine.optim.scheduler import ExponentialLR, MultiStepLR

    from mmreid.engine.runner.resume_checks import scheduler_differences
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    saved = [ExponentialLR(optimizer, gamma=0.9).state_dict()]
    current = MultiStepLR(optimizer, milestones=[1], gamma=0.9)
    found = scheduler_differences(saved, [current], ['ExponentialLR'])
    assert len(found) == 1
    assert found[0].text == ('param_scheduler[0] (MultiStepLR): a '
                             'ExponentialLR in the checkpoint')
    assert found[0].scheduler is current and found[0].key is None


def test_scheduler_lists_per_optimizer_are_compared_both_ways():
    """An optimizer whose schedulers only the checkpoint has, and a
    checkpoint with one list against a config with one per optimizer
    (or the reverse), are differences."""
    from mmengine.optim.scheduler import MultiStepLR

    from mmreid.engine.runner.resume_checks import scheduler_differences
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = MultiStepLR(optimizer, milestones=[1])
    state = scheduler.state_dict()
    found = scheduler_differences(
        dict(a=[state], b=[state]), dict(a=[scheduler]), None)
    assert [d.text for d in found] == [
        "param_scheduler['b']: 1 schedulers in the checkpoint, 0 in this "
        'config ()'
    ]
    whole = ('the checkpoint and the config disagree on whether each '
             'optimizer has its own schedulers')
    found = scheduler_differences([state], dict(a=[scheduler]), None)
    assert [d.text for d in found] == [whole]
    found = scheduler_differences(dict(a=[state]), [scheduler], None)
    assert [d.text for d in found] == [whole]


def test_metainfo_tuples_and_lists_compare_by_entries():
    """A tuple saved and a list now (or the reverse) with the same entries
    are the same metainfo; an entry that differs is named by index."""
    from mmreid.engine.runner.resume_checks import metainfo_differences
    assert metainfo_differences(
        dict(classes=('a', 'b')), dict(classes=['a', 'b'])) == []
    assert metainfo_differences(
        dict(classes=('a', 'b')), dict(classes=['a', 'c'])) == [
            "classes[1]: 'b' in the checkpoint, 'c' now"
        ]


def test_checkpoints_in_the_hooks_out_dir_are_resumed(trained, tmp_path):
    """CheckpointHook(out_dir=...) saves into ``<out_dir>/<work dir
    name>`` and names that file in the work dir's last_checkpoint: --resume
    refused it as a copied work dir's (the hook's own folder, not a
    copy's original), so a run with its checkpoints on other storage could
    not go on. The folder the config names for them is read."""
    config, _ = trained
    store = tmp_path / 'store'
    hook = {'default_hooks.checkpoint.out_dir': str(store)}
    build_runner(config, tmp_path / 'run', **hook).train()
    saved = store / 'run' / 'epoch_2.pth'
    assert osp.isfile(saved)
    assert not osp.exists(tmp_path / 'run' / 'epoch_2.pth')
    runner = build_runner(config, tmp_path / 'run', resume=True, **hook)
    runner.train()
    assert runner._resumed_from == str(saved)
    assert runner.epoch == 2
    # Without the out_dir in the config, the file is outside the work dir
    # as a copied work dir's is: refused, the file named.
    with pytest.raises(FileNotFoundError, match='outside the work dir'):
        build_runner(config, tmp_path / 'run', resume=True).train()


def started_by_train_tool(config, work_dir, monkeypatch, *options):
    """tools/train.py CONFIG --work-dir WORK_DIR OPTIONS, in this process,
    up to the first training step: the runner's ``train()`` builds the
    loop, loads or resumes, and returns without iterating.

    Returns:
        ReIDRunner: The runner, its model as training would start.
    """
    from mmreid.engine.runner import build_runner as real_build
    from ..fixtures.processes import load_tool
    tool = load_tool('tools/train.py')
    built = []

    def build(cfg):
        cfg.experiment_name = f'resume_checks_{next(_RUNS)}'
        runner = real_build(cfg)
        runner.train_loop.run = lambda: runner.model
        built.append(runner)
        return runner

    monkeypatch.setattr(tool, 'build_runner', build)
    monkeypatch.setattr(
        'sys.argv',
        ['train.py', config, '--work-dir',
         str(work_dir), *options])
    tool.main()
    return built[0]


def model_equals(runner, checkpoint_file):
    state = load_trusted_checkpoint(checkpoint_file)['state_dict']
    model = runner.model.state_dict()
    return model.keys() == state.keys() and all(
        torch.equal(model[k].cpu(), state[k]) for k in state)


def test_resume_without_a_checkpoint_starts_from_load_from(
        trained, tmp_path, monkeypatch):
    """--resume without a path set load_from=None: the first start of a
    requeued fine-tuning job (docs: always pass --resume) trained from
    random weights instead of load_from's. Where the work dir has no
    checkpoint, load_from's weights are loaded as a new run loads them;
    where it has one, the run goes on from it."""
    config, ckpt = trained
    final = osp.join(osp.dirname(ckpt), 'epoch_2.pth')
    runner = started_by_train_tool(config, tmp_path / 'new', monkeypatch,
                                   '--resume', '--cfg-options',
                                   f'load_from={final}')
    assert model_equals(runner, final)
    # Loaded, not resumed: the run starts at epoch 1 of its schedule.
    assert runner._resumed_from is None and runner.iter == 0
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        assert (f'training starts with the weights of load_from {final} '
                '(loaded, not resumed)') in f.read()
    # The work dir of a run that was preempted after epoch 1.
    work_dir = tmp_path / 'requeued'
    work_dir.mkdir()
    shutil.copy(ckpt, work_dir / 'epoch_1.pth')
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_1.pth'))
    runner = started_by_train_tool(config, work_dir, monkeypatch, '--resume',
                                   '--cfg-options', f'load_from={final}')
    assert runner._resumed_from == str(work_dir / 'epoch_1.pth')
    assert runner.epoch == 1
    assert model_equals(runner, ckpt)


def test_checkpoints_without_last_checkpoint_are_not_trained_over(
        trained, tmp_path):
    """A work dir holding checkpoints but no last_checkpoint (deleted, or
    not copied) was read as empty: --resume trained from epoch 1 and
    overwrote epoch_1.pth. It is refused, with the --resume of the last
    checkpoint, in the work dir or the hook's out_dir."""
    config, ckpt = trained
    work_dir = tmp_path / 'run'
    work_dir.mkdir()
    for name in ('epoch_1.pth', 'epoch_2.pth', 'epoch_10.pth'):
        shutil.copy(ckpt, work_dir / name)
    before = (work_dir / 'epoch_1.pth').read_bytes()
    runner = build_runner(config, work_dir, resume=True)
    with pytest.raises(FileNotFoundError) as info:
        runner.train()
    message = str(info.value)
    assert message.startswith(f'--resume: {work_dir} holds 3 checkpoints')
    assert 'no last_checkpoint' in message
    assert message.endswith(
        '(last: epoch_1.pth, epoch_2.pth, epoch_10.pth), tools/train.py '
        f"CONFIG --resume {work_dir / 'epoch_10.pth'}.")
    assert runner.iter == 0
    assert (work_dir / 'epoch_1.pth').read_bytes() == before
    # Checkpoints only in CheckpointHook's out_dir (<out_dir>/<work dir
    # name>).
    from mmreid.utils.checkpoint import last_run_checkpoint
    stored = tmp_path / 'store' / 'other'
    stored.mkdir(parents=True)
    (stored / 'iter_4.pth').write_bytes(b'')
    (tmp_path / 'other').mkdir()
    with pytest.raises(
            FileNotFoundError, match=f"--resume {stored / 'iter_4.pth'}.$"):
        last_run_checkpoint(
            str(tmp_path / 'other'), out_dir=str(tmp_path / 'store'))
    # An empty work dir still starts from the beginning.
    assert last_run_checkpoint(str(tmp_path / 'other')) is None


def test_another_seed_is_refused(trained, tmp_path):
    """mmengine resumed with the checkpoint's seed and only warned, while
    the config copy, vis_data/config.py and meta['cfg'] recorded the
    config's."""
    config, ckpt = trained
    work_dir = tmp_path / 'seed5'
    with pytest.raises(RuntimeError) as info:
        resume(config, ckpt, work_dir, **{'randomness.seed': 5})
    message = str(info.value)
    assert ckpt in message
    assert 'randomness.seed=0' in message and 'randomness.seed=5' in message
    assert not osp.exists(work_dir / 'epoch_2.pth')
    assert not osp.exists(work_dir / 'tiny.py')
    # The checkpoint's own seed resumes.
    runner = resume(config, ckpt, tmp_path / 'seed0', **{
        'randomness.seed': 0,
        'train_cfg.val_interval': 100
    })
    assert runner.epoch == 2


def test_a_drawn_seed_records_the_checkpoints_seed(trained, tmp_path):
    """randomness.seed=None: the resume goes on with the checkpoint's seed
    (0), but vis_data/config.py and the banner showed the seed drawn for
    the start, which no step used."""
    config, ckpt = trained
    work_dir = tmp_path / 'drawn'
    runner = build_runner(
        config,
        work_dir,
        resume=True,
        load_from=ckpt,
        **{
            'randomness.seed': None,
            'train_cfg.val_interval': 100
        })
    drawn = runner.seed
    runner.train()
    assert runner.seed == 0
    assert Config.fromfile(str(work_dir / 'tiny.py')).randomness.seed == 0
    recorded = osp.join(runner.log_dir, 'vis_data', 'config.py')
    assert Config.fromfile(recorded).randomness.seed == 0
    assert load_trusted_checkpoint(str(work_dir /
                                       'epoch_2.pth'))['meta']['seed'] == 0
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        log = f.read()
    assert 'random seed: 0, restored from the resumed checkpoint' in log
    assert f'the seed drawn for this start ({drawn}) is not used' in log
    # The banner (printed before the checkpoint is read) marks the draw.
    banner = [line for line in log.splitlines() if f'seed: {drawn}' in line]
    assert banner and all(
        f'{drawn} (' in line and 'drawn for this start' in line
        for line in banner), banner


def test_auto_resume_with_load_from_needs_a_reid_runner(trained, tmp_path):
    """mmengine's Runner reads resume with a load_from as the checkpoint
    to resume: --resume without a path would resume load_from."""
    from mmreid.engine.runner import build_runner as build_from_cfg
    config, ckpt = trained
    cfg = Config.fromfile(config)
    cfg.merge_from_dict(
        dict(
            runner_type='Runner',
            resume='auto',
            load_from=ckpt,
            work_dir=str(tmp_path / 'run'),
            experiment_name=f'resume_checks_{next(_RUNS)}'))
    with pytest.raises(ValueError, match="runner_type='Runner' builds a "
                       'Runner, which would resume load_from'):
        build_from_cfg(cfg)


@pytest.mark.parametrize('option,shown', [
    ({'model.backbone.last_stride': 2},
     'model.backbone.last_stride: 1 in the checkpoint, 2 now'),
    ({'model.head.triplet_feat': 'bn'}, 'model.head.triplet_feat'),
])
def test_another_model_is_refused(trained, tmp_path, option, shown):
    """A resume after the model or loss was edited went on silently (the
    tensors fit), and the config copy and the analysis tools credited
    every epoch, those before the resume too, to the edited config."""
    config, ckpt = trained
    with pytest.raises(RuntimeError) as info:
        resume(config, ckpt, tmp_path / 'edited', **option)
    message = str(info.value)
    assert message.startswith(f"cannot resume from {ckpt!r}: the config's "
                              'model differs')
    assert shown in message
    assert f'load_from={ckpt}' in message


def test_a_deeper_backbone_is_refused_as_a_model_change(trained, tmp_path):
    """It was refused as an optimizer of another number of parameters."""
    config, ckpt = trained
    with pytest.raises(RuntimeError, match=r"model differs .*"
                       r'model.backbone.depth: 18 in the checkpoint, 34 now'):
        resume(config, ckpt, tmp_path / 'deeper',
               **{'model.backbone.depth': 34})


def test_another_training_pipeline_is_refused(trained, tmp_path):
    """A resume with another training pipeline went on silently, and the
    work dir's config copy then described every epoch, those before the
    resume too, with the new augmentation."""
    config, ckpt = trained
    flipped = [
        dict(type='ReIDLoadImageFromFile'),
        dict(type='ReIDResize', size=(32, 16)),
        dict(type='ReIDRandomFlip', prob=0.5),
        dict(type='PackReIDInputs'),
    ]
    with pytest.raises(RuntimeError) as info:
        resume(config, ckpt, tmp_path / 'flip',
               **{'train_dataloader.dataset.pipeline': flipped})
    message = str(info.value)
    assert message.startswith(f'cannot resume from {ckpt!r}: the training '
                              'pipeline differs')
    assert 'train_dataloader.dataset.pipeline' in message
    assert 'ReIDRandomFlip' in message
    # The same pipeline spelt with the scope resumes.
    scoped = [dict(t, type=f"mmreid.{t['type']}") for t in flipped[:2]]
    pipeline = scoped + [dict(type='PackReIDInputs')]
    runner = resume(config, ckpt, tmp_path / 'scoped',
                    **{'train_dataloader.dataset.pipeline': pipeline})
    assert runner.epoch == 2


def test_a_finished_resume_runs_the_last_validation(tmp_path, synth_root):
    """A checkpoint is written before its epoch's validation: a requeued
    job killed during the last validation resumed into 'nothing trained'
    and exit 0, with that validation never run and the best checkpoint
    of an earlier epoch. The last validation now runs again."""
    config = write_tiny_config(tmp_path / 'tiny.py', synth_root)
    # As a kill during the last validation leaves it: the last
    # checkpoint, no validation of it (val_begin past the end).
    build_runner(config, tmp_path / 'run',
                 **{'train_cfg.val_begin': 3}).train()
    ckpt = str(tmp_path / 'run' / 'epoch_2.pth')
    runner = resume(config, ckpt, tmp_path / 'run', **{
        'default_hooks.checkpoint.save_best': 'reid/mAP'
    })
    assert runner.epoch == 2
    validated = [
        key for key in runner.message_hub.log_scalars
        if key.startswith('val/')
    ]
    assert validated, 'the last epoch was not validated'
    # As the uninterrupted run: the last epoch is the only one validated,
    # so the best checkpoint is its.
    assert osp.isfile(tmp_path / 'run' / 'best_reid_mAP_epoch_2.pth')
    # Without a validation at the end, nothing runs.
    quiet = resume(config, ckpt, tmp_path / 'quiet',
                   **{'train_cfg.val_begin': 3})
    assert not [k for k in quiet.message_hub.log_scalars
                if k.startswith('val/')]


def validations(runner):
    """``(epoch, metrics)`` of every validation a runner logged."""
    import json
    path = osp.join(runner.log_dir, 'vis_data', 'scalars.json')
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [(r['step'], {k: v
                         for k, v in r.items() if '/' in k})
            for r in records if any('/' in k for k in r)]


def test_a_resume_validates_the_epoch_it_resumes_from(trained, tmp_path):
    """A run killed during the validation of epoch 1 of 2 (its checkpoint
    is written before that validation) resumed at epoch 2: epoch 1 was
    never validated, and the best checkpoint was chosen without it. It is
    validated again now, and the run ends as the uninterrupted one: the
    same validations, weights and best checkpoint."""
    config, ckpt = trained  # epoch 1's checkpoint, written before any
    # validation: that of every schedule below, as a kill leaves it.
    schedule = {
        'train_cfg.val_interval': 1,
        'default_hooks.checkpoint.save_best': 'reid/mAP',
        'default_hooks.checkpoint.rule': 'greater'
    }
    straight = build_runner(config, tmp_path / 'straight', **schedule)
    straight.train()
    resumed = resume(config, ckpt, tmp_path / 'killed', **schedule)
    expected = validations(straight)
    assert [step for step, _ in expected] == [1, 2]
    assert validations(resumed) == expected
    best = sorted(
        osp.basename(p) for p in glob.glob(str(tmp_path / '*' / 'best_*')))
    assert len(best) == 2 and best[0] == best[1], best
    final = [
        load_trusted_checkpoint(str(tmp_path / run / 'epoch_2.pth'))
        for run in ('straight', 'killed')
    ]
    differ = [
        key for key, value in final[0]['state_dict'].items()
        if not torch.equal(final[1]['state_dict'][key], value)
    ]
    assert not differ, differ[:3]
    # A resume at an epoch the schedule does not validate validates
    # nothing before training.
    quiet = resume(config, ckpt, tmp_path / 'quiet', **{
        **schedule, 'train_cfg.val_interval': 2
    })
    assert [step for step, _ in validations(quiet)] == [2]


def test_a_second_training_on_a_work_dir_is_refused(trained, tmp_path):
    """Two trainings on one work dir (two jobs of an array, a requeued job
    while the first still runs) overwrote each other's checkpoints, best
    checkpoint and config copy, and compare_configs printed one run's
    numbers as the other's. A training holds the work dir's lock."""
    import os

    from mmreid.engine.runner.work_dir_lock import (LOCK_NAME, lock_work_dir,
                                                    unlock_work_dir)
    config, _ = trained
    work_dir = tmp_path / 'shared'
    held = lock_work_dir(str(work_dir))  # as the first run's process
    try:
        with pytest.raises(RuntimeError) as info:
            build_runner(config, work_dir).train()
        message = str(info.value)
        assert message.startswith('another training run is using the work '
                                  f'dir {str(work_dir)!r} (pid {os.getpid()}')
        assert '--work-dir' in message
        assert not glob.glob(str(work_dir / '*.pth'))
        assert not osp.exists(work_dir / 'last_checkpoint')
    finally:
        unlock_work_dir(held)
    # Once the first has ended (the system releases its lock when its
    # process ends, killed or not), the work dir trains, and a run after it
    # too.
    build_runner(config, work_dir).train()
    assert osp.isfile(work_dir / 'epoch_2.pth')
    assert osp.isfile(work_dir / LOCK_NAME)
    unlock_work_dir(lock_work_dir(str(work_dir)))


def test_every_resumed_best_checkpoint_is_kept_in_this_runs_folder(tmp_path):
    """With several ``save_best`` keys mmengine resumes one path per key
    (``best_ckpt_<key>``): each one outside this run's folder is read as
    this folder's file of that name, or dropped, so that a better epoch
    never deletes the other folder's best checkpoint of any key. A remote
    path is left to mmengine."""
    from types import SimpleNamespace

    from mmengine.logging import MessageHub

    from mmreid.engine.runner.resuming import ResumeMixin
    other, here = tmp_path / 'other', tmp_path / 'here'
    other.mkdir()
    here.mkdir()
    (here / 'best_reid_mAP_epoch_1.pth').write_bytes(b'')
    hub = MessageHub.get_instance(f'resume_checks_best_{next(_RUNS)}')
    hub.update_info('best_ckpt_reid/mAP',
                    str(other / 'best_reid_mAP_epoch_1.pth'))
    hub.update_info('best_score_reid/mAP', 40.0)
    hub.update_info('best_ckpt_reid/R1',
                    str(other / 'best_reid_R1_epoch_1.pth'))
    hub.update_info('best_score_reid/R1', 60.0)
    hub.update_info('best_ckpt', 's3://bucket/run/best_reid_mAP_epoch_1.pth')
    logged = []
    runner = SimpleNamespace(
        message_hub=hub,
        work_dir=str(here),
        _checkpoint_out_dir=lambda: None,
        logger=SimpleNamespace(info=logged.append))
    ResumeMixin._keep_best_checkpoints_here(runner)
    assert hub.get_info('best_ckpt_reid/mAP') == str(
        here / 'best_reid_mAP_epoch_1.pth')
    assert 'best_ckpt_reid/R1' not in hub.runtime_info
    # The best scores so far stay.
    assert hub.get_info('best_score_reid/R1') == 60.0
    assert hub.get_info('best_score_reid/mAP') == 40.0
    assert hub.get_info('best_ckpt') == \
        's3://bucket/run/best_reid_mAP_epoch_1.pth'
    assert len(logged) == 2


@pytest.mark.parametrize('dropped', ['iter', 'epoch'])
def test_a_checkpoint_without_its_step_is_refused_with_its_name(
        trained, tmp_path, dropped):
    """mmengine resumes ``meta['epoch']`` and ``meta['iter']``: a
    checkpoint that lacks either (an edited or converted one) failed with
    a bare ``KeyError`` after loading, or went on from the wrong step. It
    is refused before anything is loaded, naming the file and what it
    lacks."""
    config, ckpt = trained
    checkpoint = load_trusted_checkpoint(ckpt)
    del checkpoint['meta'][dropped]
    edited = str(tmp_path / 'edited.pth')
    torch.save(checkpoint, edited)
    with pytest.raises(RuntimeError) as info:
        resume(config, edited, tmp_path / 'run')
    message = str(info.value)
    assert message.startswith(f'cannot resume from {edited!r}: it lacks '
                              "the training state (meta['epoch'] and "
                              "meta['iter']")
    assert f'load_from={edited}' in message
    assert not osp.exists(tmp_path / 'run' / 'epoch_2.pth')


def test_a_best_checkpoint_in_the_hooks_out_dir_stays_resumed(tmp_path):
    """With ``default_hooks.checkpoint.out_dir`` a run saves into
    ``<out_dir>/<work dir name>``: a best checkpoint resumed there is this
    run's own and stays, so a better epoch replaces it (not a second best
    file left next to it); a path outside that folder is dropped."""
    from types import SimpleNamespace

    from mmengine.logging import MessageHub

    from mmreid.engine.runner.resuming import ResumeMixin
    store, work_dir = tmp_path / 'store', tmp_path / 'runs' / 'run'
    (store / 'run').mkdir(parents=True)
    work_dir.mkdir(parents=True)
    own = store / 'run' / 'best_reid_mAP_epoch_1.pth'
    own.write_bytes(b'')
    hub = MessageHub.get_instance(f'resume_checks_best_{next(_RUNS)}')
    hub.update_info('best_ckpt', str(own))
    hub.update_info('best_score', 40.0)
    hub.update_info('best_ckpt_reid/R1',
                    str(tmp_path / 'elsewhere' / 'best_reid_R1_epoch_1.pth'))
    logged = []
    runner = SimpleNamespace(
        message_hub=hub,
        work_dir=str(work_dir),
        _checkpoint_out_dir=lambda: str(store),
        logger=SimpleNamespace(info=logged.append))
    ResumeMixin._keep_best_checkpoints_here(runner)
    assert hub.get_info('best_ckpt') == str(own)
    assert 'best_ckpt_reid/R1' not in hub.runtime_info
    assert len(logged) == 1 and str(store / 'run') in logged[0]


def test_a_resume_records_the_checkpoints_sampler_seed_in_vis_data(
        trained, tmp_path):
    """diff_rank_seed with a given ``randomness.seed`` but no sampler seed:
    a resume goes on with the checkpoint's ``meta['sampler_seed']``, so
    ``vis_data/config.py`` must record that one, not the seed drawn for
    this start (or None)."""
    config, ckpt = trained
    checkpoint = load_trusted_checkpoint(ckpt)
    checkpoint['meta']['sampler_seed'] = 123456
    drawn = str(tmp_path / 'drawn.pth')
    torch.save(checkpoint, drawn)
    runner = build_runner(
        config, tmp_path / 'run', resume=True, load_from=drawn, **{
            'randomness': dict(seed=0, diff_rank_seed=True),
        })
    runner.train_loop  # builds the training dataloader, as train() does
    runner.load_or_resume()
    recorded = Config.fromfile(
        osp.join(runner.log_dir, 'vis_data', 'config.py'))
    assert recorded.train_dataloader.sampler.seed == 123456
    assert recorded.randomness.seed == 0


def test_a_failed_training_releases_the_work_dir(trained, tmp_path):
    """A training that fails (here a --resume of a missing file) releases
    the work dir's lock when it raises, not when its process ends: a
    notebook or a script that keeps the error and starts the run again
    in the same process was refused its own work dir."""
    from mmreid.engine.runner.work_dir_lock import (lock_work_dir,
                                                    unlock_work_dir)
    config, _ = trained
    work_dir = tmp_path / 'run'
    missing = str(tmp_path / 'missing.pth')
    with pytest.raises(FileNotFoundError) as info:
        resume(config, missing, work_dir)
    # The error, its traceback and the failed runner's frames are kept.
    assert info.value.__traceback__ is not None
    unlock_work_dir(lock_work_dir(str(work_dir)))


@pytest.mark.parametrize('dropped',
                         ['world_size', 'train_loader', 'seed', 'cfg'])
def test_an_older_checkpoint_without_a_recorded_key_resumes(
        trained, tmp_path, dropped):
    """Checkpoints written before ``meta['world_size']``,
    ``meta['train_loader']`` (or without ``meta['seed']``, or without the
    ``meta['cfg']`` the model, pipeline and ``accumulative_counts`` checks
    read) are not checked on them, as documented: the same config resumes
    them."""
    config, ckpt = trained
    checkpoint = load_trusted_checkpoint(ckpt)
    del checkpoint['meta'][dropped]
    older = str(tmp_path / 'older.pth')
    torch.save(checkpoint, older)
    runner = build_runner(
        config, tmp_path / 'run', resume=True, load_from=older)
    runner.train_loop  # builds the training dataloader, as train() does
    runner.load_or_resume()
    assert runner.epoch == 1 and runner.iter == checkpoint['meta']['iter']


@pytest.mark.parametrize('saved,current,save_best,refused', [
    ('', 'abc', 'mean/mAP', True),
    (", aggregate_prefix='avg'", 'ab', 'mean/mAP', True),
    ('', 'ba', 'mean/mAP', False),
    ('', 'ac', 'a/mAP', False),
])
def test_a_best_mean_resumes_over_the_same_targets_only(
        saved, current, save_best, refused):
    """mmengine resumes the best ``mean/mAP`` whatever targets it was the
    mean of (specs/evaluation.md section 7: over the targets evaluated): a
    resume that adds, drops or renames targets, or averages them under
    another prefix, would compare the new means with another number. The
    order of the targets does not change the mean, and a target's own key
    is not a mean."""
    from types import SimpleNamespace

    from mmengine.hooks import CheckpointHook

    from mmreid.engine.runner.mean_resume_check import check_mean_targets
    from mmreid.engine.runner.resume_checks import config_ast
    runner = SimpleNamespace(
        hooks=[CheckpointHook(save_best=save_best, rule='greater')],
        _val_loop=dict(
            type='MultiTargetValLoop',
            targets=[dict(name=name) for name in current]))
    checkpoint = dict(message_hub=dict(runtime_info=dict(best_score=50.0)))
    # The checkpoint's run: targets a and b.
    saved_cfg = config_ast("val_cfg = dict(type='MultiTargetValLoop', "
                           f"targets=[dict(name='a'), dict(name='b')]{saved})")
    if not refused:
        check_mean_targets(runner, checkpoint, 'iter_2.pth', saved_cfg)
        return
    with pytest.raises(RuntimeError) as info:
        check_mean_targets(runner, checkpoint, 'iter_2.pth', saved_cfg)
    message = str(info.value)
    assert message.startswith("cannot resume from 'iter_2.pth': ")
    assert f'the mean over the targets {sorted(current)}' in message
    assert "the mean over the targets ['a', 'b']" in message
    assert 'save_best=None' in message
