"""Wrong-number hunt: the second day, reusing a trained model.

A researcher fine-tunes a checkpoint on another training set
(``load_from``), freezes a backbone and trains a new head, and evaluates
the result. Each test checks, against docs/get_started.md section 6
("Checkpoints and safety") and the definition of a held-out evaluation,
what the run loads (tensor by tensor) and what it evaluates.
"""
import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmreid.engine.runner import ReIDRunner
from mmreid.registry import DATASETS, MODELS
from ..fixtures.dataset_trees import make_regdb, regdb_dataset


def moved_state(model_cfg, seed=0):
    """The state dict of a built model with every floating-point tensor
    moved away from its initial value, so that a tensor left at its
    initialisation is told apart from a loaded one."""
    torch.manual_seed(seed)
    model = MODELS.build(model_cfg)
    model.init_weights()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.rand_like(tensor) * 0.1)
    return {k: v.clone() for k, v in model.state_dict().items()}


def run_log(work_dir):
    """The text of the single run log in ``work_dir``."""
    (log, ) = glob.glob(osp.join(str(work_dir), '*', '*.log'))
    with open(log, encoding='utf-8') as f:
        return f.read()


def regdb(root, split, trial):
    """RegDB of ``root`` at the tiny model's 32 x 16 inputs."""
    return regdb_dataset(root, split, trial, size=(32, 16))


def trial1_from_trial2(make_config, tmp_path):
    """A training on RegDB trial 1, validated on trial 1's test split, and
    a trial-2 model saved as a training on trial 2 writes it.

    Returns:
        tuple: The config and the trial-2 checkpoint's path.
    """
    root = make_regdb(tmp_path / 'RegDB', images=True)
    config = Config.fromfile(make_config())
    config.train_dataloader.dataset = regdb(root, 'train', 1)
    config.train_dataloader.batch_size = 4
    config.train_dataloader.sampler.batch_size = 4
    for key in ('val_dataloader', 'test_dataloader'):
        config[key].dataset = regdb(root, 'test', 1)
    config.val_evaluator = config.test_evaluator = dict(type='RegDBMetric')
    config.model.head.num_classes = 2
    config.train_cfg.max_epochs = 1
    config.train_cfg.val_interval = 1
    config.randomness.deterministic = False
    trial2 = tmp_path / 'trial2.pth'
    torch.save(
        dict(
            state_dict=moved_state(config.model),
            meta=dict(dataset_meta=dict(dataset_name='regdb', trial=2))),
        trial2)
    return config, trial2


def test_fine_tuning_keeps_the_identities_the_weights_trained_on(
        make_config, tmp_path):
    """A user who runs the ten RegDB trials warm-starts trial 1 from the
    model of trial 2 (``load_from``) to save time, and validates on trial
    1's test split.

    mmreid refuses to evaluate a model on another trial of the split it
    trained on (``check_identity_split``: trial 2 trains on ids 1 and 4,
    trial 1's test ids): tested from the trial-2 checkpoint, trial 1 is
    refused. Fine-tuned from it, the weights have trained on those test
    identities all the same, but the check reads only the current training
    set (``trained_dataset_meta``), so the run validates and prints an
    inflated R1/mAP, and its checkpoints record trial 1 alone
    (``meta['dataset_meta']``), so a later ``tools/test.py`` on trial 1
    passes too. A held-out evaluation needs test identities that no
    training of the weights has seen: the fine-tune's validation must be
    refused naming trial 2 (the checkpoint's ``meta['dataset_meta']``),
    before the first iteration.
    """
    config, trial2 = trial1_from_trial2(make_config, tmp_path)
    config.load_from = str(trial2)
    # Trial 2's classifier (its rows trial 2's people) is refused on its
    # own by default; with a lenient load it is skipped, and the backbone
    # has still trained on trial 1's test identities.
    config.load_strict = False
    config.work_dir = str(tmp_path / 'work')
    runner = ReIDRunner.from_cfg(config)
    with pytest.raises(ValueError, match=r'regdb trial=2'):
        runner.train()
    assert runner.iter == 0
    # Trained without validation, the fine-tune's checkpoint carries trial
    # 2 on (meta['pretrained_dataset_meta']): tested on trial 1, refused.
    config.val_cfg = config.val_dataloader = config.val_evaluator = None
    config.work_dir = str(tmp_path / 'fine_tune')
    ReIDRunner.from_cfg(config).train()
    fine_tuned = tmp_path / 'fine_tune' / 'epoch_1.pth'
    meta = torch.load(fine_tuned, weights_only=False)['meta']
    assert meta['dataset_meta']['trial'] == 1
    assert [m['trial'] for m in meta['pretrained_dataset_meta']] == [2]
    config.load_from = str(fine_tuned)
    config.work_dir = str(tmp_path / 'test')
    with pytest.raises(ValueError, match=r'regdb trial=2'):
        ReIDRunner.from_cfg(config).test()


def test_a_trained_model_an_init_cfg_loads_counts_as_trained_on(
        make_config, tmp_path):
    """The classifier refusal advises ``init_cfg`` for a fine-tune; a
    trial-2 model loaded so (whole model, classifier allowed missing)
    recorded no training set, and trial 1's validation ran on weights
    trained on its test identities. Refused before the first iteration,
    as with ``load_from``."""
    config, trial2 = trial1_from_trial2(make_config, tmp_path)
    config.model.init_cfg = dict(
        type='Pretrained',
        checkpoint=str(trial2),
        allow_missing=['head.classifier.'])
    config.work_dir = str(tmp_path / 'work')
    runner = ReIDRunner.from_cfg(config)
    with pytest.raises(ValueError, match=r'regdb trial=2'):
        runner.train()
    assert runner.iter == 0


def test_load_from_another_training_set_does_not_keep_its_classifier(
        make_config, tmp_path):
    """A user trained BoT on SynthReID domain d0 (4 identities) and
    fine-tunes it on domain d1 (4 other identities) with
    ``--cfg-options load_from=epoch_N.pth``.

    Section 6: a classifier trained on another number of identities is an
    error when training, "where it would restart from random weights";
    ``--resume`` refuses another training set of the same number of
    identities (its metainfo differs). Here the sizes agree, so row k of
    d0's classifier (d0's k-th person) is loaded as d1's k-th person: the
    classifier is silently mismatched, and nothing in the log says so.
    Right: the classifier of another training set (the checkpoint's
    ``meta['dataset_meta']`` differs from the training set's) is refused
    naming ``head.classifier``, or left at its initialisation and named in
    the log.
    """
    config = Config.fromfile(make_config())
    synth = config.train_dataloader.dataset.datasets[1]
    config.train_dataloader.dataset = dict(
        synth, pipeline=config.train_pipeline)
    config.model.head.num_classes = 4
    config.train_cfg.max_epochs = 1
    config.val_cfg = config.val_dataloader = config.val_evaluator = None
    d0 = DATASETS.build(dict(config.train_dataloader.dataset, domain=0))
    state = moved_state(config.model)
    source = tmp_path / 'd0.pth'
    torch.save(
        dict(state_dict=state, meta=dict(dataset_meta=d0.metainfo)), source)
    config.load_from = str(source)
    config.work_dir = str(tmp_path / 'work')
    # At lr 0 the run ends with the weights it started from.
    config.optim_wrapper.optimizer.lr = 0.0
    runner = ReIDRunner.from_cfg(config)
    try:
        runner.train()
    except (RuntimeError, ValueError) as error:
        assert 'head.classifier' in str(error)
        return
    start = runner.model.head.classifier.weight
    assert not torch.equal(start, state['head.classifier.weight'])
    assert any('WARNING' in line and 'head.classifier' in line
               for line in run_log(tmp_path / 'work').splitlines())


@pytest.mark.parametrize('layout', ['module.', 'bare'])
def test_an_ema_config_tests_the_checkpoints_weights_in_any_layout(
        make_config, tmp_path, layout):
    """A user tests a checkpoint with a config that averages weights
    (``custom_hooks = [dict(type='EMAHook')]``). The checkpoint was saved
    from a DataParallel model (``module.`` keys) or as a bare state dict
    (``torch.save(model.state_dict())``), layouts every whole-model loader
    takes (section 6; ``init_model`` loads both).

    mmreid loads the model strictly, but mmengine's ``EMAHook`` copies
    ``checkpoint['state_dict']`` into its averaged model on its own, with
    a lenient load that matches no ``module.`` key, and
    ``before_test_epoch`` swaps those weights in: ``tools/test.py`` prints
    the R1/mAP of the averaged model's initial (random) weights, with no
    word in the log. A bare state dict stops with ``KeyError:
    'state_dict'``, naming no file. Right: the numbers of the checkpoint's
    weights, the same as for the plain ``state_dict`` layout.
    """
    ema = "custom_hooks = [dict(type='EMAHook')]"
    config = make_config(extra=ema)
    model_cfg = Config.fromfile(config).model
    state = moved_state(model_cfg)
    meta = dict(cfg=Config.fromfile(config).pretty_text)
    saved = dict(
        plain=dict(state_dict=state, meta=meta),
        other=dict(
            state_dict={f'module.{k}': v
                        for k, v in state.items()}, meta=meta)
        if layout == 'module.' else state)
    metrics = {}
    for name, checkpoint in saved.items():
        path = tmp_path / f'{name}.pth'
        torch.save(checkpoint, path)
        cfg = Config.fromfile(config)
        cfg.load_from = str(path)
        cfg.work_dir = str(tmp_path / name)
        runner = ReIDRunner.from_cfg(cfg)
        metrics[name] = runner.test()
        # The averaged copy holds the checkpoint's tensors, bit for bit.
        (ema_hook, ) = [
            hook for hook in runner.hooks if type(hook).__name__ == 'EMAHook'
        ]
        averaged = ema_hook.ema_model.module.state_dict()
        for key, value in state.items():
            assert torch.equal(averaged[key], value), (name, key)
    assert metrics['other'] == metrics['plain']


def test_a_frozen_backbone_keeps_the_loaded_weights_and_statistics(
        make_config, tmp_path):
    """A user fine-tunes a new head on a frozen backbone:
    ``load_from=<trained checkpoint>`` with
    ``model.backbone.frozen_stages=4``.

    After an epoch every backbone tensor, BN running statistics included
    (a frozen stage is in eval mode, so its statistics are not updated by
    the new images), is the checkpoint's, bit for bit, and the head has
    trained: the backbone whose features the new head is evaluated on is
    the loaded one.
    """
    config = Config.fromfile(make_config())
    config.model.backbone.frozen_stages = 4
    config.train_cfg.max_epochs = 1
    config.val_cfg = config.val_dataloader = config.val_evaluator = None
    state = moved_state(config.model)
    source = tmp_path / 'trained.pth'
    torch.save(dict(state_dict=state), source)
    config.load_from = str(source)
    config.work_dir = str(tmp_path / 'work')
    runner = ReIDRunner.from_cfg(config)
    runner.train()
    trained = runner.model.state_dict()
    for key, value in state.items():
        if key.startswith('backbone.'):
            assert torch.equal(trained[key], value), key
    assert not torch.equal(trained['head.classifier.weight'],
                           state['head.classifier.weight'])
    assert not torch.equal(trained['head.bnneck.running_mean'],
                           state['head.bnneck.running_mean'])


def test_a_whole_model_initialisation_keeps_all_but_the_new_classifier(
        tmp_path):
    """The fine-tuning recipe of section 6 on a whole ``ReIDModel``:
    ``init_cfg=dict(type='Pretrained', checkpoint=<trained on 4 ids>,
    allow_missing=['head.classifier.'])`` on a model of 6 identities.

    ``init_weights`` initialises the submodules first (the BNNeck to
    weight 1, the classifier to N(0, 0.001)) and loads the checkpoint
    last: every tensor but the classifier, BNNeck and GeM exponent
    included, is the checkpoint's, and the classifier of another shape
    keeps its fresh initialisation.
    """
    model_cfg = dict(
        type='ReIDModel',
        backbone=dict(
            type='ReIDResNet',
            depth=18,
            base_channels=8,
            stem_channels=8),
        neck=dict(type='GeMPool', p=3.0),
        head=dict(type='BNNeckHead', in_channels=64, num_classes=4))
    state = moved_state(model_cfg)
    source = tmp_path / 'trained.pth'
    torch.save(dict(state_dict=state), source)
    model = MODELS.build(
        dict(
            model_cfg,
            head=dict(model_cfg['head'], num_classes=6),
            init_cfg=dict(
                type='Pretrained',
                checkpoint=str(source),
                allow_missing=['head.classifier.'])))
    model.init_weights()
    mine = model.state_dict()
    for key, value in state.items():
        if key != 'head.classifier.weight':
            assert torch.equal(mine[key], value), key
    classifier = mine['head.classifier.weight']
    assert classifier.shape == (6, 64)
    assert 0 < classifier.std() < 0.01
