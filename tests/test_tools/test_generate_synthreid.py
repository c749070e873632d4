"""tools/dataset_converters/generate_synthreid.py --config: the folders a
config reads, written ahead of time with the parameters training uses."""
import json
import os.path as osp
import re

import numpy as np
import pytest
from mmengine.config import Config

from mmreid.datasets.synthetic import get_domain_styles
from mmreid.datasets.synthetic_store import MANIFEST
from ..fixtures.processes import REPO, load_tool

TOOL = 'tools/dataset_converters/generate_synthreid.py'


def test_finds_the_folders_of_the_v2_configs():
    tool = load_tool(TOOL)
    visible = tool.config_datasets(
        Config.fromfile(osp.join(REPO, 'configs/snr/snr_r18_synthreid-v2.py')))
    # Three training domains and four targets, one folder; the top-level
    # helper variable `synth` is not read by training and is not counted.
    assert len(visible) == 1
    assert visible[0]['data_root'] == 'data/synthreid-v2.1/'
    assert visible[0]['style_control'] is True
    assert visible[0]['overrides'] == dict(
        num_ids_test=[700, 100, 100, 700],
        num_ids_test_added=[1050, 0, 0, 1050])
    vi = tool.config_datasets(
        Config.fromfile(
            osp.join(REPO, 'configs/mbn/agw_r18_synthreid-vi-v2.py')))
    # The train and test splits share one folder and its parameters.
    assert [d['data_root'] for d in vi] == ['data/synthreid-vi-v2.2/']
    assert vi[0]['ir_mode'] == 'dye' and vi[0]['ir_luminance'] == 0.7
    assert vi[0]['overrides'] == dict(num_ids_test=450, num_ids_test_added=700)


@pytest.mark.parametrize('config, data_root, ir_luminance', [
    ('mbn/agw_r18_synthreid-vi-v2.py', 'data/synthreid-vi-v2.2/', 0.7),
    ('mbn/mbn-agw_r18_synthreid-vi-v2.py', 'data/synthreid-vi-v2.2/', 0.7),
    ('mbn/agw_r18_synthreid-vi-v2_ir-luminance-0.5.py',
     'data/synthreid-vi-v2.1/', 0.5),
    ('mbn/mbn-agw_r18_synthreid-vi-v2_ir-luminance-0.5.py',
     'data/synthreid-vi-v2.1/', 0.5),
    ('mbn/agw_r18_synthreid-vi-v2_unbalanced.py', 'data/synthreid-vi-v2.1/',
     0.5),
    ('mbn/mbn-agw_r18_synthreid-vi-v2_unbalanced.py',
     'data/synthreid-vi-v2.1/', 0.5),
    ('mbn/agw_r18-onestream_synthreid-vi-v2.py', 'data/synthreid-vi-v2.1/',
     0.5),
    ('mbn/mbn-agw_r18-onestream_synthreid-vi-v2_ir-contrast-0.5.py',
     'data/synthreid-vi-v2.1-ir-contrast-0.5/', 0.5),
    ('mbn/agw_r18_synthreid-vi-v2_ir-gap-1.0.py',
     'data/synthreid-vi-v2.1-ir-gap-1.0/', 0.5),
    ('mbn/mbn-agw_r18_synthreid-vi-v2_ir-gap-0.5.py',
     'data/synthreid-vi-v2.1-ir-gap-0.5/', 0.5),
])
def test_the_mbn_experiments_read_the_data_they_were_measured_on(
        config, data_root, ir_luminance):
    # The demo pair moved to v2.2 (ir_luminance 0.7); the ablations measured
    # on v2.1 (docs/benchmarks.md) keep reading v2.1's images.
    tool = load_tool(TOOL)
    found = tool.config_datasets(
        Config.fromfile(osp.join(REPO, 'configs', config)))
    assert [d['data_root'] for d in found] == [data_root]
    assert found[0]['ir_luminance'] == ir_luminance


def test_refuses_one_folder_with_two_parameter_sets(tmp_path):
    tool = load_tool(TOOL)
    synth = dict(type='SynthReID', data_root=str(tmp_path), size='tiny')
    cfg = Config(
        dict(
            train_dataloader=dict(dataset=dict(synth, split='train')),
            val_dataloader=dict(dataset=dict(synth, split='test', seed=1))))
    with pytest.raises(ValueError, match=r'val_dataloader\.dataset reads'):
        tool.config_datasets(cfg)
    with pytest.raises(ValueError, match='has no SynthReID'):
        tool.config_datasets(Config(dict(train_dataloader=dict())))


def test_writes_the_folder_training_reads(tmp_path, capsys):
    tool = load_tool(TOOL)
    root = tmp_path / 'synth'
    config = tmp_path / 'tiny.py'
    config.write_text(f"""
default_scope = 'mmreid'
synth = dict(type='SynthReID', data_root={str(root)!r}, num_domains=2,
             size='tiny', style_control=True,
             overrides=dict(num_ids_test=[2, 3]))
train_dataloader = dict(dataset=dict(
    type='ConcatReIDDataset',
    datasets=[dict(synth, domain=0, split='train')], pipeline=[]))
val_cfg = dict(targets=[
    dict(name='d1-d0style', dataloader=dict(
        dataset=dict(synth, domain='d1-d0style', split='test'))),
])
""")
    tool.main(['--config', str(config)])
    with open(root / MANIFEST) as f:
        params = json.load(f)['params']
    assert params['style_control'] is True
    assert params['num_ids_test'] == [2, 3]
    assert params['domains'] == 2
    assert f'SynthReID at {root}' in capsys.readouterr().out
    # A ROOT and --config together, or --cfg-options without --config, are
    # refused rather than half-applied.
    with pytest.raises(SystemExit, match='either ROOT or --config'):
        tool.main([str(root), '--config', str(config)])
    with pytest.raises(SystemExit, match='needs --config'):
        tool.main([str(root), '--cfg-options', 'a=1'])


def test_set_takes_one_count_per_domain(tmp_path, capsys):
    tool = load_tool(TOOL)
    root = tmp_path / 'synth'
    tool.main([
        str(root), '--size', 'tiny', '--domains', '2', '--img-size', '32',
        '16', '--set', 'num_ids_test=2,3', 'num_ids_test_added=0,1',
        'num_ids_train=3'
    ])
    with open(root / MANIFEST) as f:
        params = json.load(f)['params']
    assert params['num_ids_test'] == [2, 3]
    assert params['num_ids_test_added'] == [0, 1]
    assert params['num_ids_train'] == 3


@pytest.mark.parametrize('args, match', [
    (['--set', 'foo'], r"--set 'foo': expected KEY=N with KEY one of"),
    (['--set', 'num_ids_tset=2'], r"--set 'num_ids_tset=2': expected KEY=N"),
    (['--set', 'num_ids_test=a'], r"--set 'num_ids_test=a': expected an "
     r'integer, or for num_ids_test and num_ids_test_added one integer per '
     r'domain separated by commas'),
    (['--set', 'num_ids_test=1,,2'], r"--set 'num_ids_test=1,,2': expected"),
    (['--set', 'num_ids_train=1.5'], r"'num_ids_train=1.5': expected an"),
    (['--set', 'num_ids_train=1,2'], r"'num_ids_train=1,2': only "
     r'num_ids_test and num_ids_test_added with --modality visible'),
    (['--modality', 'vi', '--set', 'num_ids_test=1,2'
      ], r"'num_ids_test=1,2': only num_ids_test"),
    (['--set', 'num_junk=1', 'num_junk=2'], r'num_junk is given twice'),
])
def test_set_refuses_a_malformed_item(tmp_path, capsys, args, match):
    tool = load_tool(TOOL)
    with pytest.raises(SystemExit) as error:
        tool.main([str(tmp_path / 'synth'), '--size', 'tiny'] + args)
    # argparse's error: usage and message on stderr, exit status 2, no
    # traceback.
    assert error.value.code == 2
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / 'synth').exists()


@pytest.mark.parametrize('args, match', [
    (['--train-domains', '4'], r'--train-domains 4: out of range for 4 '
     r'domains \(expected -4 to 3\)'),
    (['--domains', '2', '--train-domains', '-3'], r'-3: out of range for 2'),
    (['--train-domains', '1', '-3'], r'domain d1 is given twice'),
    (['--epochs', '0'], r'--epochs 0: expected an integer >= 1'),
])
def test_check_refuses_bad_proxy_options_before_rendering(
        tmp_path, capsys, args, match):
    """--check options that cannot train as asked are usage errors, before
    the folder is rendered: an index out of range, a domain given twice
    (-3 is d1 of four, counted from the end as the datasets' ``domain``)
    or no epoch."""
    tool = load_tool(TOOL)
    with pytest.raises(SystemExit) as error:
        tool.main([str(tmp_path / 'synth'), '--size', 'tiny', '--check'] +
                  args)
    assert error.value.code == 2
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / 'synth').exists()


def test_check_proxy_scores_follow_the_market_rule():
    """--check prints rank-1 and mAP: a gallery image of the query's pid
    and camera must be ignored, AP must average the precision at each
    match, and a query with no match must not count as a miss; otherwise
    the calibration proxy prints a wrong number."""
    tool = load_tool(TOOL)
    g_pids = np.array([1, 2, 1, 3, 1])
    g_cams = np.array([1, 2, 2, 3, 3])
    q_pids, q_cams = np.array([1, 2, 9]), np.array([1, 1, 1])
    dist = np.array([
        # Query pid 1 cam 1: the same-camera pid 1 at distance 0 is
        # ignored; its matches then rank 2nd and 4th: AP (1/2 + 2/4) / 2.
        [0.0, 0.1, 0.2, 0.3, 0.4],
        # Query pid 2 cam 1: its one match ranks first.
        [0.5, 0.0, 0.6, 0.7, 0.8],
        # Query pid 9: no match in the gallery; skipped.
        [0.1, 0.2, 0.3, 0.4, 0.5],
    ])
    rank1, mean_ap = tool.market_rank1_map(dist, q_pids, q_cams, g_pids,
                                           g_cams)
    assert rank1 == pytest.approx(0.5)
    assert mean_ap == pytest.approx(0.75)


def test_printed_styles_are_those_of_the_seed(tmp_path, capsys):
    """The style lines printed after generation describe the folder just
    written: those of its seed, not of seed 0."""
    tool = load_tool(TOOL)
    root = tmp_path / 'synth'
    tool.main([
        str(root), '--size', 'tiny', '--domains', '2', '--seed', '3',
        '--img-size', '32', '16', '--set', 'num_ids_train=1',
        'num_ids_test=1', 'num_distractors=0', 'num_junk=0'
    ])
    out = capsys.readouterr().out
    styles = get_domain_styles(2, 3)
    assert styles != get_domain_styles(2, 0)
    for style in styles:
        assert f'  style {style["name"]}: {style}' in out


@pytest.mark.parametrize('option', [['--size', 'tiny'], ['--seed', '3'],
                                    ['--set', 'num_ids_train=50'],
                                    ['--check']])
def test_config_refuses_the_options_it_would_ignore(option, capsys):
    """``--config CONFIG --size tiny`` rendered the config's full-size
    folders: the generation options were ignored without a word (the help
    said they "do not apply"). Refused, naming the option and
    ``--cfg-options``; ``--config`` alone is accepted."""
    tool = load_tool(TOOL)
    config = osp.join(REPO, 'configs/snr/snr_r18_synthreid-v2.py')
    with pytest.raises(SystemExit):
        tool.parse_args(['--config', config] + option)
    assert f'--{option[0][2:]} would be ignored' in capsys.readouterr().err
    assert tool.parse_args(['--config', config]).config == config
