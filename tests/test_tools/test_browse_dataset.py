"""tools/analysis_tools/browse_dataset.py on the tiny SynthReID config."""
import os.path as osp
import re
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

from mmreid.registry import DATASETS
from mmreid.utils import atomic, register_all_modules
from ..fixtures.processes import PYTHON, load_tool, run_tool

TOOL = osp.join('tools', 'analysis_tools', 'browse_dataset.py')


def _test_set(config):
    register_all_modules()
    init_default_scope('mmreid')
    cfg = Config.fromfile(config)
    return DATASETS.build(cfg.test_dataloader.dataset)


def test_single_mode_writes_pipeline_output(make_config, tmp_path):
    config = make_config()
    out = tmp_path / 'single'
    run_tool([
        PYTHON, TOOL, config, '--phase', 'test', '--num', '5', '--mode',
        'single', '--out-dir',
        str(out)
    ])
    # The role first: a folder lists the queries apart from the gallery.
    names = sorted((p.name for p in out.iterdir()),
                   key=lambda name: name.split('_')[1])
    assert len(names) == 5
    dataset = _test_set(config)
    for i, name in enumerate(names):
        data = dataset[i]
        sample = data['data_samples']
        match = re.fullmatch(
                r'(query|gallery)_(\d{4})_pid(-?\d+)_camid(\d+)_mod(\d+)\.png',
                name)
        assert match, name
        assert match.group(1) == sample.role
        assert int(match.group(2)) == i
        assert int(match.group(3)) == int(sample.gt_label)
        assert int(match.group(4)) == sample.camid
        # the written picture is the packed (C, H, W) RGB tensor, as BGR
        written = cv2.imread(str(out / name))
        expected = data['inputs'].permute(1, 2, 0).numpy()[..., ::-1]
        np.testing.assert_array_equal(written, expected)


def test_grid_mode_groups_identities(make_config, tmp_path):
    """Issue 18.4: tiles at a legible size, labels drawn under each."""
    from mmreid.visualization.ranked_list import (BACKGROUND_COLOR,
                                                  TEXT_LINE_HEIGHT)
    config = make_config()
    out = tmp_path / 'grid'
    # in process: the single-mode test already runs the command line
    load_tool(TOOL).main([
        config, '--phase', 'train', '--num', '8', '--out-dir',
        str(out), '--tile-size', '96', '48'
    ])
    files = sorted(out.iterdir())
    assert files
    widths = 0
    background = np.array(BACKGROUND_COLOR[::-1], np.uint8)
    for path in files:
        assert re.fullmatch(
            r'train_pid\d+_label\d+_camid[\d-]+_mod[\d-]+\.png', path.name)
        image = cv2.imread(str(path))
        # a 96 x 48 tile (the 32 x 16 images enlarged 3x) and four text
        # lines (pid, training label, camera, modality) under it
        assert image.shape[0] == 96 + 4 * TEXT_LINE_HEIGHT
        # n tiles of width 48 with 4-pixel gaps
        num = (image.shape[1] + 4) // 52
        assert image.shape[1] == num * 52 - 4
        for i in range(num):
            for line in range(4):
                band = image[96 + line * TEXT_LINE_HEIGHT:96 +
                             (line + 1) * TEXT_LINE_HEIGHT, i * 52:i * 52 + 48]
                assert (band != background).any(), (path.name, i, line)
        widths += num
    assert widths == 8
    # enlarged by pixel repetition: every 3 x 3 block is one source pixel
    tile = image[:96, :48]
    assert (tile == np.repeat(np.repeat(tile[::3, ::3], 3, 0), 3, 1)).all()


def test_draw_tiles_labels_and_errors():
    from mmreid.visualization import draw_tiles, modality_name
    img = np.full((32, 16, 3), 7, np.uint8)
    grid = draw_tiles([img, img], ['pid 8512\ncam 14\ninfrared', 'a'],
                      (128, 64),
                      gap=2)
    assert grid.shape == (128 + 3 * 12, 130, 3)
    assert (grid[:128, :64] == 7).all() and (grid[:128, 64:66] == 255).all()
    assert modality_name(1) == 'infrared' and modality_name(5) == '5'
    with pytest.raises(ValueError, match='labels has 1 entries for 2'):
        draw_tiles([img, img], ['a'])
    with pytest.raises(ValueError, match='at least one image'):
        draw_tiles([])
    # Overlapping tiles, a float image after a good one: refused.
    with pytest.raises(ValueError, match='gap >= 0'):
        draw_tiles([img, img], gap=-1)
    with pytest.raises(ValueError, match=r'images\[1\] must be uint8'):
        draw_tiles([img, img.astype(np.float32)])


def test_to_image_denormalises():
    tool = load_tool(TOOL)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (3, 4, 5)).astype(np.float32)
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    normalised = (torch.from_numpy(rgb) - torch.tensor(mean).view(
        3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    image = tool.to_image(normalised, mean, std)
    assert image.dtype == np.uint8 and image.shape == (4, 5, 3)
    np.testing.assert_array_equal(image, rgb.transpose(1, 2, 0))
    # a [0, 1] float image is scaled, a gray one replicated
    unit = tool.to_image(torch.full((1, 2, 2), 0.5))
    assert unit.shape == (2, 2, 3) and (unit == 128).all()
    with pytest.raises(ValueError, match=r'\(C, H, W\)'):
        tool.to_image(torch.zeros(2, 3))


def test_missing_dataloader_is_a_clear_error(tmp_path):
    tool = load_tool(TOOL)
    with pytest.raises(KeyError, match='val_dataloader.dataset'):
        tool.browse(Config(dict()), 'val', 1, str(tmp_path))


MULTI_TARGET = '''
targets = [
    dict(name='d2', dataloader=dict(val_dataloader, dataset=dict(
        synth, domain=2, split='test', pipeline=test_pipeline))),
    dict(name='d0', dataloader=dict(val_dataloader, dataset=dict(
        synth, domain=0, split='test', pipeline=test_pipeline))),
]
val_dataloader = dict()
test_dataloader = dict()
test_cfg = dict(type='MultiTargetTestLoop', targets=targets)
'''


def test_multi_target_phases_browse_a_named_target(make_config, tmp_path):
    """A multi-target config's test_dataloader is an empty placeholder: the
    test sets are its test_cfg.targets, one chosen with --target."""
    tool = load_tool(TOOL)
    config = make_config(extra=MULTI_TARGET)
    cfg = Config.fromfile(config)
    register_all_modules()
    init_default_scope('mmreid')
    with pytest.raises(
            ValueError, match=r"--target NAME, one of \['d2', 'd0'\]"):
        tool.browse(cfg, 'test', 2, str(tmp_path / 'none'))
    with pytest.raises(ValueError, match=r"--target 'd1' is not a target"):
        tool.browse(cfg, 'test', 2, str(tmp_path / 'none'), target='d1')
    with pytest.raises(ValueError, match='train phase has no multi-target'):
        tool.browse(cfg, 'train', 2, str(tmp_path / 'none'), target='d0')
    assert not (tmp_path / 'none').exists()
    out = tmp_path / 'd0'
    written = tool.browse(cfg, 'test', 3, str(out), mode='single', target='d0')
    assert len(written) == 3
    dataset = DATASETS.build(cfg.test_cfg.targets[1].dataloader.dataset)
    for i, path in enumerate(written):
        expected = dataset[i]['inputs'].permute(1, 2, 0).numpy()[..., ::-1]
        np.testing.assert_array_equal(cv2.imread(path), expected)


def test_tiles_name_the_0_based_camid(make_config, tmp_path, monkeypatch):
    """The dataset's camid is 0-based (Market's c1 is camid 0): labelled
    'camid N', as the ranked lists, the report and the demo label it, not
    'cam N', which reads as the file's 1-based camera."""
    tool = load_tool(TOOL)
    labels = []

    def spy(images, texts, *args, **kwargs):
        labels.extend(texts)
        return np.zeros((8, 8, 3), np.uint8)

    monkeypatch.setattr(tool, 'draw_tiles', spy)
    register_all_modules()
    init_default_scope('mmreid')
    cfg = Config.fromfile(make_config())
    tool.browse(cfg, 'test', 3, str(tmp_path / 'out'))
    dataset = _test_set(make_config())
    assert labels == [
        f'{dataset[i]["data_samples"].role}\n'
        f'pid {int(dataset[i]["data_samples"].gt_label)}\n'
        f'camid {dataset[i]["data_samples"].camid}\nvisible' for i in range(3)
    ]


def test_train_phase_names_the_pid_and_the_training_label(
        tmp_path, monkeypatch):
    """The training split relabels pids 0..N-1: Market's identity 0002 is
    training label 0. The train phase must not call that label 'pid' (pid
    0 is Market's distractor, and 'pid2' of the test phase is another
    identity than the label 2): it shows the dataset's pid and the label,
    in the tiles and the file names."""
    root = tmp_path / 'market'
    files = {
        'bounding_box_train': [
            '0002_c1s1_000451_03.jpg', '0002_c2s1_000551_01.jpg',
            '0007_c3s1_000001_01.jpg', '0010_c6s2_000002_02.jpg'
        ],
        'query': ['0002_c1s1_000001_00.jpg', '0010_c2s1_000002_00.jpg'],
        'bounding_box_test':
        ['0002_c2s1_000003_01.jpg', '0010_c2s1_000004_01.jpg']
    }
    for folder, names in files.items():
        (root / folder).mkdir(parents=True)
        for name in names:
            cv2.imwrite(
                str(root / folder / name), np.full((16, 8, 3), 100, np.uint8))
    pipeline = [
        dict(type='ReIDLoadImageFromFile'),
        dict(type='PackReIDInputs')
    ]
    dataset = dict(type='Market1501', data_root=str(root), pipeline=pipeline)
    cfg = Config(
        dict(
            train_dataloader=dict(dataset=dict(dataset, split='train')),
            test_dataloader=dict(dataset=dict(dataset, split='test'))))
    tool = load_tool(TOOL)
    labels = []
    real_draw_tiles = tool.draw_tiles

    def spy(images, texts, *args, **kwargs):
        labels.extend(texts)
        return real_draw_tiles(images, texts, *args, **kwargs)

    monkeypatch.setattr(tool, 'draw_tiles', spy)
    register_all_modules()
    init_default_scope('mmreid')
    written = tool.browse(cfg, 'train', 4, str(tmp_path / 'train'))
    assert sorted(osp.basename(p) for p in written) == [
        'train_pid10_label2_camid5_mod0.png',
        'train_pid2_label0_camid0-1_mod0.png',
        'train_pid7_label1_camid2_mod0.png'
    ]
    assert labels[0] == 'pid 2\nlabel 0\ncamid 0\nvisible'
    assert labels[3] == 'pid 10\nlabel 2\ncamid 5\nvisible'
    labels.clear()
    labels.clear()
    # Identity 0002's query (c1) and gallery (c2) images: two pictures,
    # each named and labelled with its role, never one of both.
    written = tool.browse(cfg, 'test', 4, str(tmp_path / 'test'))
    assert sorted(osp.basename(p) for p in written) == [
        'gallery_pid10_camid1_mod0.png', 'gallery_pid2_camid1_mod0.png',
        'query_pid10_camid1_mod0.png', 'query_pid2_camid0_mod0.png'
    ]
    assert sorted(labels) == [
        'gallery\npid 10\ncamid 1\nvisible',
        'gallery\npid 2\ncamid 1\nvisible', 'query\npid 10\ncamid 1\nvisible',
        'query\npid 2\ncamid 0\nvisible'
    ]
    written = tool.browse(
        cfg, 'test', 4, str(tmp_path / 'test_single'), mode='single')
    assert sorted('_'.join(osp.basename(p).split('_')[:2])
                  for p in written) == [
                      'gallery_0002', 'gallery_0003', 'query_0000',
                      'query_0001'
                  ]
    written = tool.browse(
        cfg, 'train', 1, str(tmp_path / 'single'), mode='single')
    assert [osp.basename(p)
            for p in written] == ['train_0000_pid2_label0_camid0_mod0.png']


def test_a_second_run_replaces_the_earlier_pictures(make_config, tmp_path,
                                                    capsys, monkeypatch):
    """Audit s24: a second run into one --out-dir kept the first run's
    pictures beside its own, with no mark of which were stale."""
    tool = load_tool(TOOL)
    config, out = make_config(), tmp_path / 'out'
    argv = [config, '--phase', 'test', '--mode', 'single']
    argv += ['--out-dir', str(out)]
    tool.main(argv + ['--num', '5'])
    assert len(list(out.iterdir())) == 5
    logged = []
    monkeypatch.setattr(atomic, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    tool.main(argv + ['--num', '2'])
    names = sorted(p.name for p in out.iterdir())
    assert [name.split('_')[1] for name in names] == ['0000', '0001']
    assert f'wrote 2 images to {out}' in capsys.readouterr().out
    # The log names the earlier run's pictures it replaced.
    assert len(logged) == 1 and '_0004_' in logged[0]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]


def test_a_folder_with_other_files_is_refused(make_config, tmp_path):
    tool = load_tool(TOOL)
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'notes.txt').write_text('mine')
    with pytest.raises(FileExistsError, match=r"holds \['notes.txt'\]"):
        tool.main([make_config(), '--phase', 'test', '--out-dir', str(out)])
    assert [p.name for p in out.iterdir()] == ['notes.txt']


def test_a_users_png_is_refused_not_deleted(make_config, tmp_path):
    """A ``.png`` of the user's own, not named as the tool names its
    pictures, is refused and kept, not replaced with the run's."""
    tool = load_tool(TOOL)
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'diagram.png').write_bytes(b'mine')
    with pytest.raises(FileExistsError, match=r"holds \['diagram.png'\]"):
        tool.main([make_config(), '--phase', 'test', '--out-dir', str(out)])
    assert (out / 'diagram.png').read_bytes() == b'mine'


def test_a_refused_folder_is_refused_before_the_dataset_is_read(
        make_config, tmp_path, monkeypatch):
    """The refusal comes first: no dataset is built or drawn for it."""
    tool = load_tool(TOOL)
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'notes.txt').write_text('mine')
    built = []
    monkeypatch.setattr(tool, 'DATASETS',
                        SimpleNamespace(build=lambda cfg: built.append(cfg)))
    with pytest.raises(FileExistsError, match=r"holds \['notes.txt'\]"):
        tool.main([make_config(), '--phase', 'test', '--out-dir', str(out)])
    assert built == []


def test_num_below_one_is_refused(capsys):
    """--num 0 would draw nothing and still replace --out-dir."""
    tool = load_tool(TOOL)
    with pytest.raises(SystemExit):
        tool.parse_args(['cfg.py', '--num', '0'])
    assert '--num must be >= 1, got 0' in capsys.readouterr().err


def test_to_image_scales_a_unit_image_and_undoes_a_normalize():
    """A float image in [0, 1] is scaled by 255 (its maximum 1.0
    included); with the mean/std of the pipeline's Normalize it is
    de-normalised; a float image with negative values and no Normalize
    to undo is refused (how it was made cannot be told)."""
    tool = load_tool(TOOL)
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    unit = torch.tensor([0.0, 0.2, 1.0]).view(1, 1, 3).expand(3, 1, 3)
    image = tool.to_image(unit)
    np.testing.assert_array_equal(image[0, :, 0], [0, 51, 255])
    ones = tool.to_image(torch.ones(3, 2, 2))
    assert (ones == 255).all()
    image = tool.to_image(unit, mean, std)
    np.testing.assert_array_equal(image[0, :, 0], [124, 135, 182])
    with pytest.raises(ValueError, match='no Normalize'):
        tool.to_image(unit - 0.5)


def test_identity_without_orig_pid_is_named_a_label():
    """A training sample of a dataset that keeps no orig_pid: its target
    is the training label, named 'label', never 'pid'."""
    tool = load_tool(TOOL)
    no_pid = tool._identity(dict(role='train'), 4, 'train')
    assert no_pid == ('label 4', 'label4')
    assert tool._identity(
        dict(role='train', orig_pid=9), 4,
        'train') == ('pid 9\nlabel 4', 'pid9_label4')
    assert tool._identity(dict(role='query'), 9, 'test') == ('pid 9', 'pid9')
    # A training record is named by its label in any phase (a val phase
    # on a training split), and every train-phase record is one, with a
    # role or without.
    train = ('pid 9\nlabel 4', 'pid9_label4')
    assert tool._identity(dict(role='train', orig_pid=9), 4, 'val') == train
    assert tool._identity(dict(orig_pid=9), 4, 'train') == train


class _PackedSamples:
    """A dataset of already packed samples (what the pipeline gives)."""

    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, idx):
        from mmreid.structures import ReIDDataSample
        inputs, pid, camid, role = self.samples[idx]
        sample = ReIDDataSample(metainfo=dict(camid=camid, role=role))
        return dict(inputs=inputs, data_samples=sample.set_gt_label(pid))

    def get_data_info(self, idx):
        return dict(role=self.samples[idx][3])


def _browse_packed(tool, monkeypatch, samples, out, **kwargs):
    monkeypatch.setattr(
        tool, 'DATASETS',
        SimpleNamespace(build=lambda cfg: _PackedSamples(samples)))
    cfg = Config(
        dict(
            test_dataloader=dict(
                dataset=dict(
                    type='Packed', pipeline=kwargs.pop('pipeline', []))),
            model=kwargs.pop('model', {})))
    return tool.browse(cfg, 'test', len(samples) or 1, str(out), **kwargs)


def test_a_normalised_image_is_drawn_with_the_pipelines_mean_std(
        monkeypatch, tmp_path):
    """A float pipeline output (normalised by the pipeline's Normalize) is
    drawn back in its pixels, with that Normalize's mean/std (the model's
    preprocessor normalises later, on the device: its statistics are not
    in the packed images)."""
    tool = load_tool(TOOL)
    rgb = np.random.default_rng(1).integers(0, 256, (3, 6, 4))
    mean, std = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
    normalised = (torch.from_numpy(rgb).float() -
                  torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(
                      3, 1, 1)
    written = _browse_packed(
        tool,
        monkeypatch, [(normalised, 3, 1, 'query')],
        tmp_path / 'out',
        mode='single',
        pipeline=[dict(type='Normalize', mean=mean, std=std, to_rgb=False)],
        model=dict(data_preprocessor=dict(mean=[0, 0, 0], std=[1, 1, 1])))
    assert [osp.basename(p) for p in written] == [
        'query_0000_pid3_camid1_mod0.png'
    ]
    np.testing.assert_array_equal(
        cv2.imread(written[0]), rgb.transpose(1, 2, 0)[..., ::-1])


def test_grid_file_names_list_each_camid_once(monkeypatch, tmp_path):
    """Several images of one identity from one camera: the grid's file
    name lists that camid once (camid0-2, not camid0-0-2)."""
    tool = load_tool(TOOL)
    image = torch.zeros(3, 16, 16, dtype=torch.uint8)
    written = _browse_packed(tool, monkeypatch,
                             [(image, 5, c, 'gallery') for c in (0, 0, 2)],
                             tmp_path / 'out')
    assert [osp.basename(p)
            for p in written] == ['gallery_pid5_camid0-2_mod0.png']


def test_an_empty_dataset_is_refused_naming_its_key(monkeypatch, tmp_path):
    """An empty dataset is an error naming the config key, not a run that
    writes no picture and replaces --out-dir with nothing."""
    tool = load_tool(TOOL)
    out = tmp_path / 'out'
    with pytest.raises(ValueError, match='test_dataloader.dataset is empty'):
        _browse_packed(tool, monkeypatch, [], out)
    assert not out.exists()


def test_shuffle_picks_by_seed(monkeypatch, tmp_path):
    """--shuffle picks random samples: --seed repeats a choice, another
    seed makes another one."""
    tool = load_tool(TOOL)
    image = torch.zeros(3, 16, 16, dtype=torch.uint8)
    samples = [(image, pid, 0, 'gallery') for pid in range(40)]

    def picked(seed, name):
        monkeypatch.setattr(
            tool, 'DATASETS',
            SimpleNamespace(build=lambda cfg: _PackedSamples(samples)))
        cfg = Config(dict(test_dataloader=dict(dataset=dict(type='P'))))
        written = tool.browse(
            cfg,
            'test',
            5,
            str(tmp_path / name),
            mode='single',
            shuffle=True,
            seed=seed)
        return [osp.basename(p).split('_')[2] for p in written]

    first = picked(1, 'a')
    assert picked(1, 'b') == first
    assert picked(2, 'c') != first
    assert first != [f'pid{i}' for i in range(5)]
