"""tools/extract_features.py on a tiny model and a tiny SynthReID."""
import csv
import json
import os
import os.path as osp
import shutil
import signal
import stat
import subprocess

import numpy as np
import pytest
import torch

from mmreid.apis import extract_features, init_model
from mmreid.datasets import generate_synthreid
from mmreid.evaluation.functional import compute_distance, evaluate_rank
from mmreid.registry import DATASETS
from ..fixtures.finished_runs import save_trained_checkpoint
from ..fixtures.processes import (PYTHON, REPO, killed_writers_temp, load_tool,
                                  options_not_taken)
from ..fixtures.tiny_models import randomize_statistics, tiny_model_config

CONFIG = tiny_model_config() + '''\
synth = dict(type='SynthReID', data_root={data_root!r}, num_domains=2,
             size='tiny', seed=0, img_size=(32, 16))
train_dataloader = dict(dataset=dict(
    type='ConcatReIDDataset',
    datasets=[dict(synth, domain=0), dict(synth, domain=1)]))
test_dataloader = dict(dataset=dict(synth, domain=1, split='test',
                                    pipeline=test_pipeline))
'''


def synth_test_set(root, domain):
    """The tiny SynthReID test split of ``domain`` the configs here read."""
    dataset = DATASETS.build(
        dict(
            type='SynthReID',
            data_root=str(root / 'synthreid'),
            num_domains=2,
            domain=domain,
            split='test',
            size='tiny',
            img_size=(32, 16)))
    dataset.full_init()
    return dataset


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools/extract_features.py')


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('extract')
    config = root / 'tiny.py'
    config.write_text(CONFIG.format(data_root=str(root / 'synthreid')))
    # The --images tests read its folders: generate it here, not in the
    # first --split run (under pytest-xdist it may not run first).
    generate_synthreid(
        str(root / 'synthreid'), domains=2, size='tiny', img_size=(32, 16))
    # Non-trivial BatchNorm statistics, so that eval mode matters.
    model = randomize_statistics(init_model(str(config)))
    checkpoint = root / 'epoch_1.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    return root, str(config), str(checkpoint), model


def read_index(out_dir):
    with open(osp.join(out_dir, 'index.csv'), newline='') as f:
        return list(csv.DictReader(f))


def test_split_features_and_index(tool, setup):
    root, config, checkpoint, model = setup
    out = str(root / 'test_split')
    tool.main([
        config, checkpoint, '--split', 'test', '--out-dir', out,
        '--batch-size', '5', '--device', 'cpu'
    ])
    feats = np.load(osp.join(out, 'features.npy'))
    rows = read_index(out)
    dataset = synth_test_set(root, 1)
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    assert feats.dtype == np.float32
    assert feats.shape == (len(infos), 64)
    assert [r['path'] for r in rows] == [i['img_path'] for i in infos]
    assert [int(r['pid']) for r in rows] == [i['pid'] for i in infos]
    assert [int(r['camid']) for r in rows] == [i['camid'] for i in infos]
    assert [r['role'] for r in rows] == [i['role'] for i in infos]
    assert {r['role'] for r in rows} == {'query', 'gallery'}
    assert [int(r['row']) for r in rows] == list(range(len(infos)))
    # The same numbers as the API in one batch (eval mode: batch-size
    # independent).
    expected = extract_features(
        model, [i['img_path'] for i in infos], batch_size=len(infos))
    np.testing.assert_allclose(feats, expected.numpy(), rtol=1e-5, atol=1e-5)
    meta = json.load(open(osp.join(out, 'meta.json')))
    assert meta['num_images'] == len(infos) and meta['feature_dim'] == 64
    assert meta['split'] == 'test' and meta['features'] == 'features.npy'
    assert 'camid 0-based' in meta['labels']
    # The batch size asked for is the one recorded.
    assert meta['batch_size'] == 5


def test_images_folder_and_torch_format(tool, setup):
    root, config, checkpoint, model = setup
    folder = root / 'synthreid' / 'd1' / 'query'
    out = str(root / 'query_folder')
    tool.main([
        config, checkpoint, '--images',
        str(folder), '--out-dir', out, '--format', 'pt'
    ])
    feats = torch.load(osp.join(out, 'features.pt'))
    rows = read_index(out)
    paths = sorted(str(p) for p in folder.iterdir())
    assert [r['path'] for r in rows] == paths
    # Labels from the Market-style names: pid, and the camera 0-based (as
    # the datasets count it: c1 is camid 0).
    for r in rows:
        name = osp.basename(r['path'])
        assert int(r['pid']) == int(name.split('_')[0])
        assert int(r['camid']) == int(name.split('_')[1][1]) - 1
        assert r['modality'] == ''
    with open(osp.join(out, 'meta.json')) as f:
        assert 'camid 0-based' in json.load(f)['labels']
    expected = extract_features(model, paths)
    torch.testing.assert_close(feats, expected, rtol=1e-5, atol=1e-5)


def test_images_and_split_give_the_same_labels(tool, setup):
    """index.csv of ``--images`` on a split's folder and of ``--split``
    can be joined: the same image has the same pid and (0-based) camid,
    and the same features."""
    root, config, checkpoint, _ = setup
    by_split, by_images = str(root / 'join_split'), str(root / 'join_query')
    tool.main([config, checkpoint, '--split', 'test', '--out-dir', by_split])
    tool.main([
        config, checkpoint, '--images',
        str(root / 'synthreid' / 'd1' / 'query'), '--out-dir', by_images
    ])
    split_rows = {r['path']: r for r in read_index(by_split)}
    split_feats = np.load(osp.join(by_split, 'features.npy'))
    image_feats = np.load(osp.join(by_images, 'features.npy'))
    rows = read_index(by_images)
    assert rows and {r['camid'] for r in rows} != {''}
    for r in rows:
        same = split_rows[r['path']]
        assert same['role'] == 'query'
        assert (r['pid'], r['camid']) == (same['pid'], same['camid'])
        np.testing.assert_allclose(
            image_feats[int(r['row'])],
            split_feats[int(same['row'])],
            rtol=1e-5,
            atol=1e-5)


def test_images_keep_market_junk_and_rank_as_the_split(tool, setup, capsys):
    """A gallery folder's junk files (pid -1) are kept, marked by their pid,
    and ``evaluate_rank(junk_rule='market')`` on the folders' rows gives the
    numbers of ``--split test`` (whose dataset dropped the junk)."""
    root, config, checkpoint, _ = setup
    labels, feats = {}, {}
    for folder in ('query', 'bounding_box_test'):
        out = str(root / f'junk_{folder}')
        tool.main([
            config, checkpoint, '--images',
            str(root / 'synthreid' / 'd1' / folder), '--out-dir', out
        ])
        rows = read_index(out)
        labels[folder] = [(int(r['pid']), int(r['camid'])) for r in rows]
        feats[folder] = np.load(osp.join(out, 'features.npy'))
    g_pids = [pid for pid, _ in labels['bounding_box_test']]
    num_junk = g_pids.count(-1)
    assert num_junk > 0, 'the tiny SynthReID gallery has junk files'

    split = str(root / 'junk_split')
    tool.main([config, checkpoint, '--split', 'test', '--out-dir', split])
    split_rows = read_index(split)
    assert all(int(r['pid']) != -1 for r in split_rows)
    split_feats = np.load(osp.join(split, 'features.npy'))

    def metrics(qf, gf, q_labels, g_labels):
        q, g = np.array(q_labels), np.array(g_labels)
        return evaluate_rank(
            compute_distance(
                torch.as_tensor(qf), torch.as_tensor(gf), 'euclidean'),
            q[:, 0], g[:, 0], q[:, 1], g[:, 1])

    by_images = metrics(feats['query'], feats['bounding_box_test'],
                        labels['query'], labels['bounding_box_test'])
    is_query = np.array([r['role'] == 'query' for r in split_rows])
    split_labels = np.array([(int(r['pid']), int(r['camid']))
                             for r in split_rows])
    by_split = metrics(split_feats[is_query], split_feats[~is_query],
                       split_labels[is_query], split_labels[~is_query])
    assert by_images.mAP == pytest.approx(by_split.mAP, rel=1e-6)
    np.testing.assert_allclose(by_images.cmc, by_split.cmc)
    assert (f'{num_junk} of {len(g_pids)} images have pid -1'
            in capsys.readouterr().out)


def test_names_without_a_camera_leave_camid_empty(tool, tmp_path):
    for name in ('0002_c1s1_000451_03.jpg', '0002_c6s2_000001_00.jpg',
                 '0002_c0s1_000001_00.jpg', 'person.jpg'):
        (tmp_path / name).write_bytes(b'')
    labels = {
        osp.basename(r['path']): (r['pid'], r['camid'])
        for r in tool.image_records(str(tmp_path), None)
    }
    assert labels == {
        '0002_c1s1_000451_03.jpg': (2, 0),
        '0002_c6s2_000001_00.jpg': (2, 5),
        '0002_c0s1_000001_00.jpg': (2, None),
        'person.jpg': (None, None)
    }


def test_train_split_of_a_multi_source_config(tool, setup):
    root, config, checkpoint, _ = setup
    out = str(root / 'train_split')
    tool.main([config, checkpoint, '--split', 'train', '--out-dir', out])
    rows = read_index(out)
    assert {r['dataset'] for r in rows} == {'synthreid-d0', 'synthreid-d1'}
    assert {r['role'] for r in rows} == {'train'}
    # The training records carry training labels (relabelled 0..N-1,
    # offset per source), not the files' pids: the column says so.
    assert list(rows[0]) == [
        'row', 'path', 'label', 'camid', 'modality', 'role', 'dataset'
    ]
    labels = {(r['dataset'], int(r['label'])) for r in rows}
    # Identities of the two sources do not collide (offset labels).
    assert len({p for _, p in labels}) == len(labels) == 8
    assert {p for _, p in labels} == set(range(8))
    with open(osp.join(out, 'meta.json')) as f:
        assert 'not the pid of the file' in json.load(f)['labels']


def test_modality_must_match_the_model(tool, setup):
    """--modality for a model without modality-aware layers would be
    ignored by the features yet written into index.csv: refused, as
    pytorch2onnx refuses it."""
    root, config, checkpoint, _ = setup
    out = root / 'modality'
    folder = str(root / 'synthreid' / 'd1' / 'query')
    refusal = r'--modality=1 given.*no modality-aware modules'
    with pytest.raises(ValueError, match=refusal):
        tool.main([
            config, checkpoint, '--images', folder, '--modality', '1',
            '--out-dir',
            str(out)
        ])
    assert not out.exists()


def test_bad_arguments(tool, setup, capsys):
    root, config, checkpoint, _ = setup
    with pytest.raises(SystemExit):
        tool.parse_args([config, checkpoint])  # neither --images nor --split
    with pytest.raises(SystemExit):
        tool.parse_args(
            [config, checkpoint, '--images',
             str(root / 'nowhere')])
    assert 'is not a directory' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tool.parse_args(
            [config, checkpoint, '--split', 'test', '--modality', '1'])
    assert '--modality is for --images' in capsys.readouterr().err


def test_an_interrupted_write_leaves_the_previous_set(tool, setup,
                                                      monkeypatch):
    """features, index.csv and meta.json appear together or not at all:
    a run interrupted while writing (here in index.csv) leaves the
    previous complete set, and no temporary folder."""
    root, config, checkpoint, _ = setup
    out = root / 'interrupted'
    first = root / 'synthreid' / 'd1' / 'query'
    tool.main(
        [config, checkpoint, '--images',
         str(first), '--out-dir',
         str(out)])
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ['features.npy', 'index.csv', 'meta.json']

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt('simulated Ctrl-C while writing index.csv')

    monkeypatch.setattr(tool.csv, 'writer', interrupted)
    with pytest.raises(KeyboardInterrupt):
        tool.main(
            [config, checkpoint, '--split', 'test', '--out-dir',
             str(out)])
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in root.iterdir()
                  if p.name.startswith('.')) == []
    # A complete second run replaces the whole set (no features.npy of the
    # first run left beside the new features.pt), and removes the folder
    # of a run killed while writing.
    killed_writers_temp(root, 'interrupted', is_folder=True)
    tool.main([
        config, checkpoint, '--split', 'test', '--out-dir',
        str(out), '--format', 'pt'
    ])
    assert sorted(p.name for p in out.iterdir()) == [
        'features.pt', 'index.csv', 'meta.json'
    ]
    meta = json.loads((out / 'meta.json').read_text())
    assert meta['split'] == 'test'
    assert len(read_index(str(out))) == meta['num_images'] == \
        torch.load(out / 'features.pt').shape[0]
    assert sorted(p.name for p in root.iterdir()
                  if p.name.startswith('.')) == []


def test_refuses_an_out_dir_with_other_files(tool, setup, capsys):
    """The output folder is replaced as a whole, so a folder holding
    anything else is refused (naming it and the files) before extracting.
    """
    root, config, checkpoint, _ = setup
    out = root / 'shared'
    out.mkdir()
    (out / 'notes.txt').write_text('mine')
    with pytest.raises(SystemExit):
        tool.main(
            [config, checkpoint, '--split', 'test', '--out-dir',
             str(out)])
    err = capsys.readouterr().err
    assert str(out) in err and 'notes.txt' in err
    assert [p.name for p in out.iterdir()] == ['notes.txt']
    (root / 'a_file').write_text('')
    with pytest.raises(SystemExit):
        tool.main([
            config, checkpoint, '--split', 'test', '--out-dir',
            str(root / 'a_file')
        ])
    assert 'a_file' in capsys.readouterr().err
    # The check at writing time too (the folder filled meanwhile).
    with pytest.raises(FileExistsError, match=r'shared.*notes\.txt'):
        tool.write(str(out), torch.zeros(1, 2), [], 'npy', {})


@pytest.mark.parametrize(
    'mask, folder, file', [(0o022, 0o755, 0o644), (0o077, 0o700, 0o600)],
    ids=['umask022', 'umask077'])
def test_outputs_have_the_usual_modes(tool, setup, umask, mask, folder,
                                      file):
    """The folder and files get the modes os.makedirs and open() would
    give them (not the temporary folder's private 0700), and a replaced
    folder keeps its own mode."""
    root, config, checkpoint, _ = setup
    umask(mask)
    out = root / f'modes_{mask:o}'
    args = [config, checkpoint, '--split', 'test', '--out-dir', str(out)]
    tool.main(args)

    def mode(path):
        return stat.S_IMODE(os.stat(path).st_mode)

    assert mode(out) == folder
    assert {p.name: mode(p) for p in out.iterdir()} == dict.fromkeys(
        ['features.npy', 'index.csv', 'meta.json'], file)
    os.chmod(out, 0o750)
    tool.main(args)
    assert mode(out) == 0o750


MULTI_TARGET = '''
def target(name, domain, size):
    return dict(
        name=name,
        dataloader=dict(dataset=dict(synth, domain=domain, split='test',
                                     pipeline=[
            dict(type='ReIDLoadImageFromFile'),
            dict(type='ReIDResize', size=size),
            dict(type='PackReIDInputs')])),
        evaluator=dict(type='ReIDMetric'))
test_dataloader = dict()
test_cfg = dict(type='MultiTargetTestLoop',
                targets=[target('d1', 1, (32, 16)),
                         target('d0', 0, (64, 32))])
'''


def test_multi_target_pipelines_need_a_target(tool, setup):
    """Targets with different test pipelines: refused without --target,
    which chooses the pipeline (and, with --split, the images)."""
    root, _, checkpoint, _ = setup
    config = root / 'multi.py'
    config.write_text(
        CONFIG.format(data_root=str(root / 'synthreid')) + MULTI_TARGET)
    out = str(root / 'multi_d0')
    refusal = r"--target NAME \(one of \['d1', 'd0'\]\)"
    with pytest.raises(ValueError, match=refusal):
        tool.main(
            [str(config), checkpoint, '--split', 'test', '--out-dir', out])
    assert not osp.exists(out)
    tool.main([
        str(config), checkpoint, '--split', 'test', '--target', 'd0',
        '--out-dir', out
    ])
    rows = read_index(out)
    dataset = synth_test_set(root, 0)
    paths = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]
    assert [r['path'] for r in rows] == paths
    assert json.load(open(osp.join(out, 'meta.json')))['target'] == 'd0'
    model = init_model(str(config), checkpoint, target='d0')
    np.testing.assert_allclose(
        np.load(osp.join(out, 'features.npy')),
        extract_features(model, paths).numpy(),
        rtol=1e-5,
        atol=1e-5)
    # d0's pipeline resizes to 64 x 32: not the features of d1's.
    other = init_model(str(config), checkpoint, target='d1')
    assert not torch.allclose(
        extract_features(other, paths[:2]), extract_features(model, paths[:2]))


def test_meta_records_the_ranking_distance(tool, setup):
    """meta.json says how the model ranks the features: AGW's cosine
    (L2-normalised features), the default Euclidean; a model with its own
    distance (GMN's M-Net) is marked features-only."""
    root, config, checkpoint, _ = setup
    folder = str(root / 'synthreid' / 'd1' / 'query')
    text = open(config).read()
    for distance, normalization in (('euclidean', 'none'), ('cosine', 'l2')):
        path = root / f'meta_{distance}.py'
        path.write_text(text + f"model['distance'] = {distance!r}\n")
        out = str(root / f'meta_{distance}')
        tool.main(
            [str(path), checkpoint, '--images', folder, '--out-dir', out])
        with open(osp.join(out, 'meta.json')) as f:
            meta = json.load(f)
        assert meta['ranking_distance'] == distance
        assert meta['feature_normalization'] == normalization
        assert meta['features_only'] is False
    from mmreid.models.reiders.reid_model import feature_ranking
    gmn = init_model(
        config,
        cfg_options={
            'model.type': 'GMNReID',
            'model.head.type': 'GMNHead',
            'model.head.mnet': dict(hidden_channels=8)
        })
    from mmreid.apis.inference import evaluated_ranking
    meta = evaluated_ranking(gmn)
    assert meta == dict(
        ranking_distance='mnet',
        feature_normalization='model',
        features_only=True,
        ranking_source='model.scorers()',
        rerank=None,
        query_expansion=None,
        ranking_note=feature_ranking(gmn)['note'],
        # The config has no test metric: no rank rules to record.
        junk_rule=None,
        tie_policy=None,
        ap_mode=None,
        cmc_mode=None)


def test_cfg_options_change_the_features(tool, setup):
    """--cfg-options reaches the model: the BNNeck's input
    (test_feature=before_bn) is a feature the BNNeck (eval mode) maps to
    the default run's."""
    root, config, checkpoint, model = setup
    folder = str(root / 'synthreid' / 'd1' / 'query')
    after, before = str(root / 'opt_after'), str(root / 'opt_before')
    tool.main([config, checkpoint, '--images', folder, '--out-dir', after])
    tool.main([
        config, checkpoint, '--images', folder, '--out-dir', before,
        '--cfg-options', 'model.head.test_feature=before_bn'
    ])
    f_t = torch.from_numpy(np.load(osp.join(before, 'features.npy')))
    f_i = np.load(osp.join(after, 'features.npy'))
    assert not np.allclose(f_t.numpy(), f_i, atol=1e-3)
    with torch.no_grad():
        np.testing.assert_allclose(
            model.head.bnneck.eval()(f_t).numpy(), f_i, rtol=1e-4, atol=1e-4)


def test_refusals_advise_the_options_this_tool_takes(tool, setup, capsys):
    """A checkpoint whose saved config (meta['cfg']) tests at 32 x 16, run
    at 64 x 32, and a partial one: refused with advice this tool's user
    can follow. It was init_model's (cfg_options={...}, strict=False) and
    the runner's --strict false, which this tool does not take."""
    root, config, checkpoint, _ = setup
    with pytest.raises(SystemExit):
        tool.parse_args(['--help'])
    help_text = capsys.readouterr().out
    state = torch.load(checkpoint, weights_only=True)['state_dict']
    trained = save_trained_checkpoint(root / 'trained.pth', state, config)
    folder = str(root / 'synthreid' / 'd1' / 'query')
    args = [config, trained, '--images', folder, '--out-dir']
    size = 'test_dataloader.dataset.pipeline.1.size'
    with pytest.raises(ValueError, match='was trained with a config') as e:
        tool.main(
            args +
            [str(root / 'advice_64'), '--cfg-options', f'{size}=[64,32]'])
    message = str(e.value)
    assert options_not_taken(message, help_text) == [], message
    fix = f'--cfg-options {size}=[32,16]'
    assert fix in message and 'cfg_options=' not in message, message
    assert 'tools/extract_features.py has no such switch' in message
    # The fix as printed is taken, and loads.
    tool.main(args + [str(root / 'advice_32')] + fix.split())
    assert len(read_index(root / 'advice_32')) == len(os.listdir(folder))
    state.pop('head.bnneck.weight')
    partial = str(root / 'partial.pth')
    torch.save(dict(state_dict=state), partial)
    with pytest.raises(RuntimeError, match='lacks 1 tensors') as e:
        tool.main([
            config, partial, '--images', folder, '--out-dir',
            str(root / 'advice_partial')
        ])
    message = str(e.value)
    assert options_not_taken(message, help_text) == [], message
    assert 'tools/extract_features.py has no such switch' in message


def test_argument_defaults_and_refusals(tool, setup, capsys):
    root, config, checkpoint, _ = setup
    folder = str(root / 'synthreid' / 'd1' / 'query')
    # A trailing slash names the folder, not an empty string.
    args = tool.parse_args([config, checkpoint, '--images', folder + os.sep])
    assert args.out_dir == osp.join('work_dirs', 'features', 'tiny_query')
    # Two targets' features do not replace each other by default.
    args = tool.parse_args(
        [config, checkpoint, '--split', 'test', '--target', 'd3'])
    assert args.out_dir == osp.join('work_dirs', 'features', 'tiny_test_d3')
    with pytest.raises(SystemExit):
        tool.parse_args(
            [config, checkpoint, '--images', folder, '--batch-size', '0'])
    assert '--batch-size must be at least 1, got 0' in capsys.readouterr().err


def test_the_default_out_dir_keeps_another_sources_features(
        tool, setup, tmp_path, monkeypatch, capsys):
    """The default --out-dir is named after base names only: d0's query
    folder after d1's (or another checkpoint) replaced d1's features
    without a word. Refused, naming both; the same command replaces its
    own set."""
    root, config, checkpoint, _ = setup
    monkeypatch.chdir(tmp_path)
    d1, d0 = (str(root / 'synthreid' / d / 'query') for d in ('d1', 'd0'))
    tool.main([config, checkpoint, '--images', d1, '--device', 'cpu'])
    assert tool.parse_args([config, checkpoint, '--images', d1]).out_dir == \
        osp.join('work_dirs', 'features', 'tiny_query')
    other = str(tmp_path / 'epoch_2.pth')
    shutil.copy(checkpoint, other)
    for argv, key in (([checkpoint, '--images', d0], 'images'),
                      ([other, '--images', d1], 'checkpoint')):
        with pytest.raises(SystemExit):
            tool.parse_args([config, *argv])
        assert f'(the default --out-dir) holds the features of {key} ' \
            in capsys.readouterr().err
    # An explicit --out-dir is the user's choice.
    tool.parse_args([
        config, checkpoint, '--images', d0, '--out-dir',
        osp.join('work_dirs', 'features', 'tiny_query')
    ])


def test_an_interrupted_swap_puts_the_previous_set_back(
        tool, setup, monkeypatch):
    """Interrupted between moving the previous set aside and moving the
    new one in: the previous set is back under --out-dir."""
    root, _, _, _ = setup
    out = root / 'swap'
    tool.write(str(out), torch.ones(1, 2), [], 'npy', {})
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    rename = os.rename

    def interrupted(src, dst):
        if str(dst) == str(out) and not str(src).endswith('.old'):
            raise KeyboardInterrupt('simulated Ctrl-C between the renames')
        rename(src, dst)

    monkeypatch.setattr(tool.os, 'rename', interrupted)
    with pytest.raises(KeyboardInterrupt):
        tool.write(str(out), torch.zeros(3, 2), [], 'npy', {})
    monkeypatch.undo()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in root.iterdir() if p.name.startswith('.swap')] \
        == []


KILL_BETWEEN_THE_RENAMES = """
import os, signal, sys
import torch
sys.path.insert(0, {repo!r})
from tests.fixtures.processes import load_tool
tool = load_tool('tools/extract_features.py')
rename = os.rename
def killed(src, dst):
    if dst == {out!r}:  # the new set moving in: the previous one is aside
        os.kill(os.getpid(), signal.SIGKILL)
    rename(src, dst)
tool.os.rename = killed
tool.write({out!r}, torch.zeros(3, 2), [], 'npy', {{}})
"""


def kill_between_the_renames(out):
    """Replace ``out`` in a process SIGKILLed after it moved the previous
    set aside, before it moved its own in."""
    code = KILL_BETWEEN_THE_RENAMES.format(repo=REPO, out=str(out))
    proc = subprocess.run([PYTHON, '-c', code],
                          capture_output=True,
                          text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert not out.exists()


def test_a_set_a_killed_swap_left_aside_is_put_back(tool, tmp_path,
                                                    monkeypatch):
    """A run killed between the two renames left the previous set only as
    a hidden ``.<name>.tmp-...-<hex>.old`` folder, which no later run
    removed or restored: a rerun that failed left no set at all. The next
    run puts it back first; one that succeeds then replaces it, one that
    fails leaves it."""
    out = tmp_path / 'feats'
    tool.write(str(out), torch.ones(1, 2), [], 'npy', {})
    first = {p.name: p.read_bytes() for p in out.iterdir()}
    kill_between_the_renames(out)

    def failing(*args, **kwargs):
        raise RuntimeError('simulated failure while writing the new set')

    with monkeypatch.context() as broken:
        broken.setattr(tool, '_write_set', failing)
        with pytest.raises(RuntimeError, match='simulated failure'):
            tool.write(str(out), torch.full((2, 2), 2.0), [], 'npy', {})
    assert {p.name: p.read_bytes() for p in out.iterdir()} == first
    assert os.listdir(tmp_path) == ['feats']
    # Killed again; a run that succeeds leaves its own set and nothing
    # hidden.
    kill_between_the_renames(out)
    tool.write(str(out), torch.full((2, 2), 2.0), [], 'npy', {})
    np.testing.assert_array_equal(
        np.load(out / 'features.npy'), np.full((2, 2), 2.0, np.float32))
    assert os.listdir(tmp_path) == ['feats']


def test_multi_target_rows_name_their_target(tool, setup):
    """--split test of targets that share a pipeline: the targets' images
    one after the other, each row's dataset the target's name; --split
    train with --target runs that target's pipeline on the training
    images."""
    root, _, checkpoint, _ = setup
    text = CONFIG.format(data_root=str(root / 'synthreid')) + MULTI_TARGET
    same = root / 'multi_same.py'
    same.write_text(
        text.replace("target('d0', 0, (64, 32))", "target('d0', 0, (32, 16))"))
    out = str(root / 'multi_same')
    tool.main([str(same), checkpoint, '--split', 'test', '--out-dir', out])
    sizes = [len(synth_test_set(root, d)) for d in (1, 0)]
    assert [r['dataset'] for r in read_index(out)] == \
        ['d1'] * sizes[0] + ['d0'] * sizes[1]
    differ = root / 'multi_train.py'
    differ.write_text(text)
    out = str(root / 'multi_train')
    tool.main([
        str(differ), checkpoint, '--split', 'train', '--target', 'd0',
        '--out-dir', out
    ])
    rows = read_index(out)
    assert {r['role'] for r in rows} == {'train'}
    assert {r['dataset'] for r in rows} == {'synthreid-d0', 'synthreid-d1'}


def test_the_dataset_column_is_one_rule(tool, setup):
    """index.csv's dataset of a multi-target config's test images is the
    target's name with --target as without (it was the dataset's own
    name, synthreid-d0, with --target: the same image labelled two ways);
    a config without targets labels by the dataset's own name."""
    from mmreid.utils.config import read_config
    root, config, _, _ = setup
    multi = root / 'multi_rule.py'
    multi.write_text(
        CONFIG.format(data_root=str(root / 'synthreid')) + MULTI_TARGET)
    cfg = read_config(str(multi), phase='test')
    every = tool.split_records(cfg, 'test')
    chosen = tool.split_records(cfg, 'test', 'd0')
    d0 = synth_test_set(root, 0)
    assert [r['path'] for r in chosen] == \
        [d0.get_data_info(i)['img_path'] for i in range(len(d0))]
    assert [r['dataset'] for r in chosen] == ['d0'] * len(d0)
    assert [r for r in every if r['dataset'] == 'd0'] == chosen
    # No targets: the test dataloader's dataset, SynthReID domain 1.
    single = tool.split_records(read_config(config, phase='test'), 'test')
    assert {r['dataset'] for r in single} == {'synthreid-d1'}


def test_meta_records_the_ranking_of_the_test_metric(tool, setup):
    """tools/test.py ranks with the config's metric, not the model's
    distance: an evaluator's cosine (also from --cfg-options), its
    re-ranking and a target's own metric are what meta.json says.
    Targets that rank differently are refused without --target."""
    root, config, checkpoint, _ = setup
    folder = str(root / 'synthreid' / 'd1' / 'query')
    text = CONFIG.format(data_root=str(root / 'synthreid'))
    path = root / 'meta_metric.py'
    path.write_text(text + "test_evaluator = dict(type='ReIDMetric')\n")

    def meta_of(name, *extra, config=str(path)):
        out = str(root / name)
        tool.main([config, checkpoint, '--images', folder, '--out-dir', out] +
                  list(extra))
        with open(osp.join(out, 'meta.json')) as f:
            return json.load(f)

    # The model is Euclidean; tools/test.py ranks by cosine.
    meta = meta_of('meta_metric_cos', '--cfg-options',
                   'test_evaluator.distance=cosine')
    assert meta['ranking_distance'] == 'cosine'
    assert meta['feature_normalization'] == 'l2'
    assert meta['rerank'] is None and meta['query_expansion'] is None
    meta = meta_of('meta_metric_euclid')
    assert (meta['ranking_distance'], meta['feature_normalization'],
            meta['ranking_source']) == ('euclidean', 'none', 'test_evaluator')
    meta = meta_of('meta_metric_norm', '--cfg-options',
                   'test_evaluator.normalize=True')
    assert (meta['ranking_distance'], meta['feature_normalization']) == \
        ('euclidean', 'l2')
    meta = meta_of('meta_metric_rr', '--cfg-options',
                   'test_evaluator.rerank.k1=6', 'test_evaluator.rerank.k2=3',
                   'test_evaluator.rerank.lambda_value=0.3')
    assert meta['rerank'] == dict(k1=6, k2=3, lambda_value=0.3)
    # Re-ranking starts from squared Euclidean distances (rerank.py), not
    # from the metric's euclidean: the note said 'euclidean distance,
    # then k-reciprocal re-ranking'.
    assert meta['ranking_distance'] == 'sqeuclidean'
    assert 'euclidean distance' not in meta['ranking_note']
    assert 'from squared Euclidean distances' in meta['ranking_note']
    meta = meta_of('meta_metric_qe', '--cfg-options',
                   'test_evaluator.query_expansion.k=2',
                   'test_evaluator.query_expansion.alpha=3')
    assert meta['query_expansion'] == dict(k=2, alpha=3)
    assert meta['feature_normalization'] == 'l2'
    # Two targets with one pipeline; d0 ranks by cosine.
    multi = root / 'meta_multi.py'
    same = MULTI_TARGET.replace("target('d0', 0, (64, 32))",
                                "target('d0', 0, (32, 16))")
    multi.write_text(text + same + "test_cfg['targets'][1]['evaluator'] = "
                     "dict(type='ReIDMetric', distance='cosine')\n")
    meta = meta_of('meta_d0', '--target', 'd0', config=str(multi))
    assert (meta['ranking_distance'], meta['ranking_source']) == \
        ('cosine', 'test_cfg.targets.1.evaluator')
    meta = meta_of('meta_d1', '--target', 'd1', config=str(multi))
    assert meta['ranking_distance'] == 'euclidean'
    out = str(root / 'meta_both')
    with pytest.raises(ValueError) as info:
        tool.main(
            [str(multi), checkpoint, '--split', 'test', '--out-dir', out])
    message = str(info.value)
    assert "test_cfg.targets.1.evaluator: distance='cosine'" in message
    assert '--target NAME' in message
    assert not osp.exists(out)


def metric_meta(tool, setup, name, *options):
    """meta.json of ``--images`` (a query folder) under the tiny config
    with ``test_evaluator = dict(type='ReIDMetric')`` and ``options``."""
    root, _, checkpoint, _ = setup
    path = root / 'metric_meta.py'
    path.write_text(
        CONFIG.format(data_root=str(root / 'synthreid')) +
        "test_evaluator = dict(type='ReIDMetric')\n")
    out = str(root / name)
    tool.main([
        str(path), checkpoint, '--images',
        str(root / 'synthreid' / 'd1' / 'query'), '--out-dir', out,
        '--device', 'cpu', '--cfg-options', *options
    ])
    with open(osp.join(out, 'meta.json')) as f:
        return json.load(f)


def test_meta_records_the_metrics_rank_rules(tool, setup):
    """meta.json said how tools/test.py ranks the features but not which
    gallery items each query ignores (``junk_rule``), how ties order and
    how AP and CMC are counted: an offline evaluation of a
    junk_rule='none' config took the Market rule."""
    meta = metric_meta(tool, setup, 'meta_rules_none',
                       'test_evaluator.junk_rule=none',
                       'test_evaluator.ap_mode=threshold')
    assert (meta['junk_rule'], meta['tie_policy'], meta['ap_mode'],
            meta['cmc_mode']) == ('none', 'stable', 'threshold', 'standard')
    meta = metric_meta(tool, setup, 'meta_rules_default',
                       'test_evaluator.cmc_mode=dedup')
    assert (meta['junk_rule'], meta['cmc_mode']) == ('market', 'dedup')


def test_meta_records_the_precision_and_fp16_is_refused_off_cuda(
        tool, setup):
    """test_cfg.fp16=True: tools/test.py extracts under autocast (the CPU
    ran bfloat16), this tool in fp32, and meta.json said nothing of it,
    so an fp16 test run was paired with fp32 features. The features'
    precision is recorded; fp16 on the CPU is refused as tools/test.py
    refuses it, before anything is written."""
    root = setup[0]
    meta = metric_meta(tool, setup, 'meta_fp32', 'test_cfg.fp16=False')
    assert meta['fp16'] is False
    with pytest.raises(RuntimeError, match=r'^test_cfg\.fp16=True'):
        metric_meta(tool, setup, 'meta_fp16', 'test_cfg.fp16=True')
    assert not (root / 'meta_fp16').exists()


def test_the_validation_features_are_extracted_as_validated(tool, setup):
    """--split val writes the validation set's features for the
    validation metric: extracted in fp32 (test_cfg.fp16=False) where
    validation runs fp16 (val_cfg.fp16=True), they would not be the
    validated ones. Refused, naming both keys."""
    root, _, checkpoint, _ = setup
    path = root / 'val.py'
    path.write_text(
        CONFIG.format(data_root=str(root / 'synthreid')) +
        'val_dataloader = test_dataloader\n')
    out = root / 'val_fp16'
    with pytest.raises(
            ValueError,
            match=r'--split val: .*\(test_cfg\.fp16=False\), but validation '
            r'extracts them with val_cfg\.fp16=True'):
        tool.main([
            str(path), checkpoint, '--split', 'val', '--out-dir',
            str(out), '--device', 'cpu', '--cfg-options', 'val_cfg.fp16=True'
        ])
    assert not out.exists()


def test_distance_and_its_alias_are_refused_as_tools_test_does(tool, setup):
    """The tiny config's metric says metric='euclidean' (the deprecated
    alias of distance); with test_evaluator.distance=cosine tools/test.py
    refuses the pair, and meta.json recorded ranking_distance 'cosine'."""
    root, _, checkpoint, _ = setup
    path = root / 'alias.py'
    path.write_text(
        CONFIG.format(data_root=str(root / 'synthreid')) +
        "test_evaluator = dict(type='ReIDMetric', metric='euclidean')\n")
    out = root / 'alias_out'
    with pytest.raises(
            ValueError,
            match=r"^test_evaluator got both distance='cosine' and its "
            r"deprecated alias metric='euclidean'; give distance only$"):
        tool.main([
            str(path), checkpoint, '--split', 'test', '--out-dir',
            str(out), '--cfg-options', 'test_evaluator.distance=cosine'
        ])
    assert not out.exists()


MBN_CONFIG = tiny_model_config(
    backbone_extra=",\n                  norm_cfg=dict(type='MBN', "
    "eval_stats='batch')") + '''\
test_dataloader = dict(
    batch_size={batch_size}, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='SynthReIDVI', data_root={data_root!r}, size='tiny',
                 img_size=(32, 16), split='test', pipeline=test_pipeline))
test_evaluator = dict(type='SYSUMetric', mode='all', shot='single')
'''
#: The test dataloader's batch size of MBN_CONFIG: less than the tool's
#: default 64, so that the two batchings differ.
MBN_TEST_BATCH = 10


@pytest.fixture(scope='module')
def mbn_setup(tmp_path_factory):
    """A random-weight MBN model with eval_stats='batch' (its test features
    depend on the batch) on a tiny visible-infrared SynthReID."""
    root = tmp_path_factory.mktemp('extract_mbn')
    config = root / 'mbn.py'
    config.write_text(
        MBN_CONFIG.format(
            data_root=str(root / 'vi'), batch_size=MBN_TEST_BATCH))
    model = init_model(str(config))
    torch.manual_seed(0)
    model.init_weights()
    checkpoint = root / 'epoch_1.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    return root, str(config), str(checkpoint), model


def loop_features(model):
    """Features of the test dataloader's batches, as the test loop forms
    them (one process)."""
    from mmengine.runner import Runner
    loader = Runner.build_dataloader(model.cfg.test_dataloader)
    feats = []
    with torch.no_grad():
        for batch in loader:
            data = model.data_preprocessor(batch, False)
            feats.append(
                model(data['inputs'], data['data_samples'], mode='tensor'))
    return torch.cat(feats).numpy()


def test_batch_dependent_features_are_the_test_loops(tool, mbn_setup):
    """MBN(eval_stats='batch') normalises each test batch with its own
    statistics: the written features are those of the test dataloader's
    batches (tools/test.py's), not of --batch-size's default 64."""
    root, config, checkpoint, model = mbn_setup
    out = str(root / 'test_split')
    tool.main([config, checkpoint, '--split', 'test', '--out-dir', out])
    feats = np.load(osp.join(out, 'features.npy'))
    model.eval()
    expected = loop_features(model)
    # The test set spans several loader batches, so the batching matters.
    assert len(expected) > MBN_TEST_BATCH
    np.testing.assert_allclose(feats, expected, rtol=1e-4, atol=1e-4)
    meta = json.load(open(osp.join(out, 'meta.json')))
    assert meta['batch_dependent'] is True
    assert meta['batch_size'] == {'test_dataloader': MBN_TEST_BATCH}


def test_batch_dependent_features_refuse_other_batches(tool, mbn_setup):
    """A --batch-size other than the loader's, and a folder (which no test
    dataloader batches), cannot give tools/test.py's features."""
    root, config, checkpoint, _ = mbn_setup
    with pytest.raises(
            ValueError,
            match=r"--batch-size 64: .*eval_stats='batch'.*test_dataloader"
            rf'\.batch_size={MBN_TEST_BATCH}\. Leave --batch-size out'):
        tool.main([
            config, checkpoint, '--split', 'test', '--batch-size', '64',
            '--out-dir',
            str(root / 'bs64')
        ])
    folder = str(root / 'vi' / 'SYSU-MM01' / 'cam3' /
                 os.listdir(str(root / 'vi' / 'SYSU-MM01' / 'cam3'))[0])
    # The way out is this config's own key, not an example's.
    with pytest.raises(
            ValueError,
            match=r"--images: .*eval_stats='batch'.*Use --split test.*"
            r'--cfg-options model\.backbone\.norm_cfg\.eval_stats='
            r'modality'):
        tool.main([
            config, checkpoint, '--images', folder, '--modality', '1',
            '--out-dir',
            str(root / 'folder')
        ])
    assert not osp.exists(root / 'bs64') and not osp.exists(root / 'folder')


def test_batch_norms_without_running_statistics_batch_as_the_test_loop(
        tool, mbn_setup):
    """A BatchNorm with track_running_stats=False normalises each test
    batch with its own statistics too: --split test batches as the test
    dataloader (tools/test.py's features), meta.json says so, and
    --images is refused."""
    root, mbn_config, _, _ = mbn_setup
    config = root / 'untracked.py'
    config.write_text(
        open(mbn_config).read().replace(
            "norm_cfg=dict(type='MBN', eval_stats='batch')",
            "norm_cfg=dict(type='BN', track_running_stats=False)"))
    model = init_model(str(config))
    torch.manual_seed(0)
    model.init_weights()
    checkpoint = root / 'untracked.pth'
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    out = str(root / 'untracked_split')
    tool.main([str(config), str(checkpoint), '--split', 'test', '--out-dir',
               out])
    model.eval()
    np.testing.assert_allclose(
        np.load(osp.join(out, 'features.npy')),
        loop_features(model),
        rtol=1e-4,
        atol=1e-4)
    meta = json.load(open(osp.join(out, 'meta.json')))
    assert meta['batch_dependent'] is True
    assert meta['batch_size'] == {'test_dataloader': MBN_TEST_BATCH}
    cam1 = root / 'vi' / 'SYSU-MM01' / 'cam1'
    folder = str(cam1 / os.listdir(str(cam1))[0])
    with pytest.raises(
            ValueError,
            match=r"--images: the model's batch norm layer 'backbone\.bn1' "
            r'keeps no running statistics'):
        tool.main([
            str(config),
            str(checkpoint), '--images', folder, '--out-dir',
            str(root / 'untracked_folder')
        ])


def test_batch_dependent_targets_are_batched_apart(tool):
    """Each multi-target loader batches its own images from the start (5
    and 3 images, batch_size 2 and 4: 2+2+1, then 3); a shuffling sampler
    has no fixed batches."""
    from mmengine.config import Config
    loader = dict(sampler=dict(type='DefaultSampler', shuffle=False))
    cfg = Config(
        dict(
            test_cfg=dict(targets=[
                dict(name='a', dataloader=dict(loader, batch_size=2)),
                dict(name='b', dataloader=dict(loader, batch_size=4))
            ])))
    records = [
        dict(path=f'{key}{i}', loader=f'test_cfg.targets.{key}.dataloader')
        for key, num in ((0, 5), (1, 3)) for i in range(num)
    ]
    batches, sizes = tool.loader_batches(cfg, 'test', records, None, ['bn'])
    assert [[r['path'] for r in b] for b in batches] == [['00', '01'],
                                                         ['02', '03'], ['04'],
                                                         ['10', '11', '12']]
    assert sizes == {
        'test_cfg.targets.0.dataloader': 2,
        'test_cfg.targets.1.dataloader': 4
    }
    cfg.test_cfg.targets[1].dataloader.sampler.shuffle = True
    with pytest.raises(
            ValueError,
            match=r"test_cfg\.targets\.1\.dataloader\.sampler is .*not "
            r"type='DefaultSampler' with shuffle=False"):
        tool.loader_batches(cfg, 'test', records, None, ['bn'])


def test_a_distributed_launch_is_refused(tool, setup, monkeypatch, capsys):
    """Under torchrun every process extracted every image and replaced the
    same --out-dir (one of them could fail with 'Directory not empty');
    the tool is single-process and says so before loading anything."""
    root, config, checkpoint, _ = setup
    argv = [
        config, checkpoint, '--split', 'test', '--out-dir',
        str(root / 'distributed')
    ]
    monkeypatch.setenv('WORLD_SIZE', '2')
    with pytest.raises(SystemExit):
        tool.parse_args(argv)
    err = capsys.readouterr().err
    assert 'WORLD_SIZE=2: tools/extract_features.py runs in one process' \
        in err, err
    monkeypatch.setenv('WORLD_SIZE', '1')  # torchrun --nproc_per_node 1
    assert tool.parse_args(argv).split == 'test'
    assert not (root / 'distributed').exists()
    with pytest.raises(SystemExit):
        tool.parse_args(['--help'])
    help_text = ' '.join(capsys.readouterr().out.split())
    assert 'in one process (no --launcher' in help_text


def test_a_sampler_that_shuffles_by_default_is_refused(tool):
    """mmengine's DefaultSampler shuffles unless told ``shuffle=False``: a
    test loader that leaves it out has no fixed batches either, so the
    batch-dependent features could not be tools/test.py's."""
    from mmengine.config import Config
    records = [
        dict(path=str(i), loader='test_dataloader') for i in range(3)
    ]
    for sampler in (dict(type='DefaultSampler'),
                    dict(type='InfiniteSampler', shuffle=False)):
        cfg = Config(
            dict(test_dataloader=dict(batch_size=2, sampler=sampler)))
        with pytest.raises(
                ValueError,
                match=r"test_dataloader\.sampler is .*not "
                r"type='DefaultSampler' with shuffle=False"):
            tool.loader_batches(cfg, 'test', records, None, ['bn'])
    cfg = Config(
        dict(
            test_dataloader=dict(
                batch_size=2,
                sampler=dict(type='DefaultSampler', shuffle=False))))
    batches, sizes = tool.loader_batches(cfg, 'test', records, None, ['bn'])
    assert [[r['path'] for r in b] for b in batches] == [['0', '1'], ['2']]
    assert sizes == {'test_dataloader': 2}


@pytest.mark.parametrize('name', ['WORLD_SIZE', 'OMPI_COMM_WORLD_SIZE'])
def test_each_launchers_process_count_is_read(tool, name):
    """torchrun says how many processes run in WORLD_SIZE, mpirun in
    OMPI_COMM_WORLD_SIZE: under either, with several processes, each one
    would extract every image and replace the same --out-dir."""
    with pytest.raises(ValueError, match=f'^{name}=4: tools/extract_'):
        tool.check_single_process({name: '4'})
    tool.check_single_process({name: '1'})
    tool.check_single_process({})
