"""Every entry point loads a checkpoint with init_model's rules.

tools/test.py (and so tools/dist_test.sh, which runs it), ``load_from`` and
``--resume`` in tools/train.py: a model tensor the checkpoint lacks is an
error naming it and ``--strict false``; a classifier of another size is
skipped with one warning at test time only.
"""
import os.path as osp
import subprocess
from unittest import mock

import pytest
import torch

from mmreid.apis import init_model
from ..fixtures.processes import (PYTHON, REPO, retry_on_port_clash,
                                  run_command, run_tool, tool_env)

BOT = osp.join(REPO, 'configs/baseline/bot_r18_synthreid.py')
SNR = osp.join(REPO, 'configs/snr/snr_r18_synthreid.py')
GMN = osp.join(REPO, 'configs/gmn/gmn_r18_synthreid.py')


def save_model(config, path, **cfg_options):
    """A checkpoint of ``config``'s model as tools/train.py writes it."""
    model = init_model(config, cfg_options=cfg_options or None)
    torch.save(dict(state_dict=model.state_dict(), meta=dict(epoch=8)), path)
    return model


def converted_fastreid_checkpoint(config, tmp_path):
    """``config``'s model saved with fast-reid's key names and Checkpointer
    fields, then converted (``tmp_path/converted.pth``)."""
    from mmreid.utils.key_mapping import convert_checkpoint_file
    model = init_model(config)
    fastreid = {}
    for key, value in model.state_dict().items():
        key = key.replace('head.bnneck.', 'heads.bottleneck.0.')
        fastreid[key.replace('head.classifier.', 'heads.')] = value
    src = tmp_path / 'model_final.pth'
    torch.save(dict(model=fastreid, iteration=100), src)
    dst = tmp_path / 'converted.pth'
    # fast-reid's default ranking, given (not assumed).
    convert_checkpoint_file(
        str(src),
        str(dst),
        'fastreid',
        strict=True,
        input_size=[32, 16],
        distance='cosine')
    return dst


@pytest.fixture(scope='module')
def config_synth_root(tmp_path_factory):
    """SynthReID as the shipped configs generate it (not the tiny test
    config's, which shares ``synth_root``)."""
    return str(tmp_path_factory.mktemp('synthreid_configs'))


def tiny_test_data(root):
    return [
        '--cfg-options', f'test_dataloader.dataset.data_root={root}',
        'test_dataloader.dataset.size=tiny', 'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False'
    ]


@pytest.mark.parametrize('config,missing', [(SNR, 'snr_modules'),
                                            (GMN, 'head.mnet')])
def test_test_py_refuses_a_checkpoint_of_another_model(config, missing,
                                                       tmp_path,
                                                       config_synth_root):
    # A BoT checkpoint tested with the SNR config (its SNR modules would be
    # random) or the GMN config (a random M-Net would score the pairs):
    # mmengine's strict=False loading exited 0 with a plausible R1.
    ckpt = tmp_path / 'bot.pth'
    save_model(BOT, ckpt)
    args = [
        PYTHON, 'tools/test.py', config,
        str(ckpt), '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(tmp_path / 'm.json')
    ]
    code, out = run_command(args + tiny_test_data(config_synth_root))
    assert code != 0, out[-3000:]
    assert 'lacks' in out and missing in out, out[-3000:]
    assert '--strict false' in out
    assert not osp.exists(tmp_path / 'm.json')
    # The documented switch accepts the partial load, with a warning.
    out = run_tool(args + ['--strict', 'false'] +
                   tiny_test_data(config_synth_root))
    assert 'keep their initial values' in out
    assert osp.isfile(tmp_path / 'm.json')


def test_test_py_skips_a_classifier_of_another_size_once(
        make_config, tmp_path):
    config = make_config()
    ckpt = tmp_path / 'other_ids.pth'
    source = save_model(config, ckpt, **{'model.head.num_classes': 11})
    out = run_tool([
        PYTHON, 'tools/test.py', config,
        str(ckpt), '--work-dir',
        str(tmp_path / 'work')
    ])
    assert out.count('trained on another number of identities') == 1
    assert 'head.classifier.weight (11, 64) vs (8, 64)' in out
    assert 'reid/mAP' in out
    del source


def test_load_from_in_training_is_strict(make_config, tmp_path):
    config = make_config()
    partial = tmp_path / 'partial.pth'
    model = init_model(config)
    torch.save(
        {
            k: v
            for k, v in model.state_dict().items() if not k.startswith('head.')
        }, partial)
    args = [
        PYTHON, 'tools/train.py', config, '--work-dir',
        str(tmp_path / 'work'), '--no-validate', '--cfg-options',
        f'load_from={partial}', 'train_cfg.max_epochs=1'
    ]
    code, out = run_command(args)
    assert code != 0
    assert 'lacks' in out and 'head.bnneck.weight' in out
    assert not osp.exists(tmp_path / 'work' / 'epoch_1.pth')
    # A classifier trained on other identities would restart from random
    # weights: refused when training, with the way to fine-tune.
    other = tmp_path / 'other_ids.pth'
    save_model(config, other, **{'model.head.num_classes': 11})
    code, out = run_command(
        args[:-2] + [f'load_from={other}', 'train_cfg.max_epochs=1'])
    assert code != 0
    assert 'head.classifier.weight: (11, 64) in the checkpoint' in out
    assert "prefix='backbone.'" in out
    # --strict false opts out.
    out = run_tool(args + ['--strict', 'false'])
    assert 'keep their initial values' in out
    assert osp.isfile(tmp_path / 'work' / 'epoch_1.pth')


def test_resume_without_checkpoint_starts_at_epoch_1(make_config, tmp_path):
    # Requeue scripts pass --resume on the first start too.
    work = tmp_path / 'fresh'
    out = run_tool([
        PYTHON, 'tools/train.py',
        make_config(), '--work-dir',
        str(work), '--no-validate', '--resume', '--cfg-options',
        'train_cfg.max_epochs=1'
    ])
    assert (f'--resume: no checkpoint found in {work}; training starts '
            'from epoch 1.') in out
    assert 'Auto resumed from the latest checkpoint None' not in out
    assert 'Epoch(train) [1]' in out
    assert osp.isfile(work / 'epoch_1.pth')


def test_test_py_refuses_a_converted_model_of_another_network(
        make_config, tmp_path):
    # A fast-reid checkpoint (its key names, its Checkpointer fields) of the
    # tiny config's network, converted: the config's stem pooling and
    # resizing differ from fast-reid's, and its test metric ranks by the
    # Euclidean distance where fast-reid's ranked by cosine, so
    # tools/test.py refuses and prints the --cfg-options that make the
    # config compute and rank as the source network (the metric's distance
    # under the key the config gives it, the deprecated metric=).
    import re

    config = make_config()
    dst = converted_fastreid_checkpoint(config, tmp_path)
    args = [
        PYTHON, 'tools/test.py', config,
        str(dst), '--work-dir',
        str(tmp_path / 'work')
    ]
    code, out = run_command(args)
    assert code != 0
    assert 'was converted from fastreid' in out
    fix = re.search(r'--cfg-options ([^\n]*)', out).group(1).split()
    assert fix == [
        'model.backbone.stem_pool.padding=0',
        'model.backbone.stem_pool.ceil_mode=True',
        'test_evaluator.metric=cosine',
        'test_dataloader.dataset.pipeline.1.interpolation=bicubic',
        'test_dataloader.dataset.pipeline.1.backend=pillow'
    ]
    out = run_tool(args + ['--cfg-options'] + fix)
    assert 'reid/mAP' in out


def test_dist_test_sh_refuses_a_partial_checkpoint(make_config, tmp_path):
    config = make_config()
    model = init_model(config)
    partial = tmp_path / 'partial.pth'
    torch.save(
        dict(
            state_dict={
                k: v
                for k, v in model.state_dict().items()
                if not k.startswith('head.bnneck.')
            }), partial)
    env = tool_env()

    def launch(port):
        return subprocess.run([
            'bash', 'tools/dist_test.sh', config,
            str(partial), '2', '--work-dir',
            str(tmp_path / 'work'), '--out',
            str(tmp_path / 'm.json')
        ],
                              cwd=REPO,
                              env=dict(env, PORT=str(port)),
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT,
                              text=True,
                              timeout=600)

    proc = retry_on_port_clash(launch)
    assert proc.returncode != 0, proc.stdout[-3000:]
    assert 'lacks 4 tensors of the model: head.bnneck.weight' in proc.stdout
    assert not osp.exists(tmp_path / 'm.json')


def test_runner_val_checks_a_converted_model_against_the_val_pipeline(
        make_config, tmp_path):
    # runner.val() feeds val_dataloader. The check of a converted model
    # read the test pipelines only, so a validation pipeline that resizes
    # otherwise than the source evaluated another network without a word.
    from mmengine.config import Config

    from mmreid.engine.runner import ReIDRunner
    config = make_config(extra='''
model.update(backbone=dict(type='ReIDResNet', depth=18, last_stride=1,
                           base_channels=8, stem_channels=8,
                           stem_pool=dict(padding=0, ceil_mode=True)))
test_dataloader = dict(val_dataloader, dataset=dict(
    val_dataloader['dataset'], pipeline=[
        dict(type='ReIDLoadImageFromFile'),
        dict(type='ReIDResize', size=(32, 16), interpolation='bicubic',
             backend='pillow'),
        dict(type='PackReIDInputs')]))
''')
    dst = converted_fastreid_checkpoint(config, tmp_path)
    cfg = Config.fromfile(config)
    cfg.work_dir = str(tmp_path / 'work')
    cfg.load_from = str(dst)
    runner = ReIDRunner.from_cfg(cfg)
    with pytest.raises(ValueError, match='was converted from fastreid') as e:
        runner.val()
    assert ('val_dataloader.dataset.pipeline.1.interpolation=bicubic'
            in str(e.value))
    assert 'test_dataloader' not in str(e.value)


def trained_checkpoint(config, path):
    """``config``'s model saved as an mmreid run saves it: with the run's
    config as text (``meta['cfg']``, mmengine's ``Config.pretty_text``)."""
    from mmengine.config import Config
    model = init_model(config)
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(epoch=2, cfg=Config.fromfile(config).pretty_text)), path)


def test_a_file_an_old_converter_wrote_from_an_mmreid_checkpoint(
        make_config, tmp_path, monkeypatch):
    """fastreid2mmreid of before the converters refused mmreid checkpoints
    wrote a file from one (its head.bnneck.* unmapped, an identity BNNeck
    and fast-reid's defaults in their place); init_model then blamed the
    config: 'this config computes another network', with fast-reid's stem
    pooling and test size to set. It names what the file is instead."""
    from mmreid.utils import key_mapping
    config = make_config()
    src = tmp_path / 'epoch_2.pth'
    trained_checkpoint(config, src)
    # The converter as it was: no refusal of an mmreid checkpoint.
    monkeypatch.setattr(key_mapping, '_refuse_mmreid_checkpoint',
                        lambda *args: None)
    dst = tmp_path / 'epoch_2_fastreid.pth'
    key_mapping.convert_checkpoint_file(str(src), str(dst), 'fastreid')
    with pytest.raises(ValueError) as info:
        init_model(config, str(dst))
    assert str(info.value) == (
        f"checkpoint {str(dst)!r} is not a fastreid model: an mmreid "
        'converter of before the converters refused mmreid checkpoints '
        "wrote it from the mmreid checkpoint 'epoch_2.pth', dropping "
        "mmreid's own layers (meta['unmapped']: head.bnneck.* (5 tensors)) "
        "and putting fastreid's defaults in their place. Load the original "
        "mmreid checkpoint 'epoch_2.pth' as it is (init_model, "
        'tools/test.py): it needs no conversion.')
    init_model(config, str(src))  # as it says


def resized_config(config, size):
    """``config`` with its test pipeline's ReIDResize at ``size``."""
    from mmengine.config import Config
    cfg = Config.fromfile(config)
    assert cfg.test_dataloader.dataset.pipeline[1].type == 'ReIDResize'
    cfg.test_dataloader.dataset.pipeline[1].size = size
    return cfg


def test_init_model_refuses_another_test_size_than_the_trained_one(
        make_config, tmp_path):
    # The tiny config trains and tests at 32 x 16. A model fed 64 x 32
    # images still gives features, and a wrong number: refused, naming
    # the size the checkpoint's own config (meta['cfg']) tests at.
    config = make_config()
    ckpt = tmp_path / 'trained.pth'
    trained_checkpoint(config, ckpt)
    with pytest.raises(ValueError) as info:
        init_model(resized_config(config, (64, 32)), str(ckpt))
    message = str(info.value)
    assert ("test_dataloader.dataset.pipeline ReIDResize size: the "
            "checkpoint's config has [32, 16], the config [64, 32]"
            in message), message
    fix = "'test_dataloader.dataset.pipeline.1.size': [32, 16]"
    assert f'init_model(..., cfg_options={{{fix}}})' in message
    assert 'strict=False' in message
    # The fix as printed, and the config it was trained with, load.
    init_model(
        resized_config(config, (64, 32)),
        str(ckpt),
        cfg_options={'test_dataloader.dataset.pipeline.1.size': [32, 16]})
    init_model(config, str(ckpt))
    # Another normalisation than the one configured is refused likewise.
    config = make_config(
        extra='model.update(data_preprocessor=dict('
        "type='ReIDDataPreprocessor', mean=[123.675, 116.28, 103.53], "
        'std=[58.395, 57.12, 57.375]))',
        name='normalised.py')
    trained_checkpoint(config, ckpt)
    with pytest.raises(
            ValueError,
            match=r'normalisation mean \(0-255\): '
            r"the checkpoint's config has \[123\.675"):
        init_model(
            config,
            str(ckpt),
            cfg_options={'model.data_preprocessor.mean': [100, 100, 100]})


def test_init_model_strict_off_accepts_another_test_size_with_a_warning(
        make_config, tmp_path):
    config = make_config()
    ckpt = tmp_path / 'trained.pth'
    trained_checkpoint(config, ckpt)
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    with mock.patch.object(logger, 'warning') as warned, \
            mock.patch.object(logger, 'log') as logged:
        init_model(resized_config(config, (64, 32)), str(ckpt), strict=False)
    lines = [str(c) for c in warned.call_args_list + logged.call_args_list]
    assert any('ReIDResize size' in line and 'strict loading is off' in line
               for line in lines), lines


def test_training_from_a_trained_checkpoint_is_not_checked(
        make_config, tmp_path):
    # Fine-tuning at another size (load_from in training) is no test.
    from mmreid.utils.arch_check import check_source_arch
    config = make_config()
    ckpt = tmp_path / 'trained.pth'
    trained_checkpoint(config, ckpt)
    cfg = resized_config(config, (64, 32))
    meta = torch.load(ckpt, weights_only=False)['meta']
    model = init_model(cfg)
    assert check_source_arch(meta, model, cfg, str(ckpt), test=False) == []
    assert check_source_arch(
        dict(meta, cfg=None), model, cfg, str(ckpt), test=True) == []


def test_runner_test_refuses_another_test_size_than_the_trained_one(
        make_config, tmp_path):
    from mmreid.engine.runner import ReIDRunner
    config = make_config()
    ckpt = tmp_path / 'trained.pth'
    trained_checkpoint(config, ckpt)
    cfg = resized_config(config, (64, 32))
    cfg.work_dir = str(tmp_path / 'work')
    cfg.load_from = str(ckpt)
    runner = ReIDRunner.from_cfg(cfg)
    with pytest.raises(ValueError, match='was trained with a config') as e:
        runner.test()
    assert ('--cfg-options test_dataloader.dataset.pipeline.1.size=[32,16]'
            in str(e.value))
    assert '--strict false' in str(e.value)


def test_runner_test_refuses_another_last_stride_than_the_trained_one(
        make_config, tmp_path):
    # tools/test.py CONFIG CKPT --cfg-options model.backbone.last_stride=2:
    # the same tensors, another network than the checkpoint's config says.
    from mmengine.config import Config

    from mmreid.engine.runner import ReIDRunner
    config = make_config()
    ckpt = tmp_path / 'trained.pth'
    trained_checkpoint(config, ckpt)
    cfg = Config.fromfile(config)
    cfg.model.backbone.last_stride = 2
    cfg.work_dir = str(tmp_path / 'work')
    cfg.load_from = str(ckpt)
    runner = ReIDRunner.from_cfg(cfg)
    with pytest.raises(ValueError, match='builds another network') as e:
        runner.test()
    assert ("model.backbone.last_stride: the checkpoint's config has 1, "
            'the config 2' in str(e.value))
    assert '--cfg-options model.backbone.last_stride=1' in str(e.value)
    assert '--strict false' in str(e.value)
