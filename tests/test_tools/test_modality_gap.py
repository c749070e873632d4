"""tools/analysis_tools/modality_gap.py: gaps computed by hand."""
import json
import math
import sys

import pytest
import torch
import torch.nn as nn

from mmreid.models.layers import MBN
from tests.fixtures.finished_runs import save_trained_checkpoint
from tests.fixtures.processes import REPO, load_tool
from tests.fixtures.tiny_config import write_tiny_vi_config

TOOL = 'tools/analysis_tools/modality_gap.py'


def offset_batch(offsets, scales=None):
    """4 visible maps with values +-1 (mean 0, std 1 per channel); the 4
    infrared maps are the same times ``scales`` plus ``offsets``."""
    channels = len(offsets)
    sign = torch.tensor([1., -1.]).repeat(8)  # 16 pixels: 8 of each sign
    visible = sign.view(1, 1, 4, 4).expand(4, channels, 4, 4).clone()
    visible[1::2] *= -1  # not the same map in every sample
    scales = torch.ones(channels) if scales is None else torch.tensor(scales)
    infrared = visible * scales.view(1, -1, 1, 1) + torch.tensor(offsets).view(
        1, -1, 1, 1)
    return torch.cat([visible, infrared]), [0] * 4 + [1] * 4


def test_gap_statistics_by_hand():
    tool = load_tool(TOOL)
    x, labels = offset_batch([0.5, 2.0, 0.0], scales=[1.0, 1.0, 3.0])
    stats = tool.gap_statistics(x, torch.tensor(labels))
    # Channel 0/1: equal stds 1, means 0 and 0.5 / 2 -> d = 0.5 / 2.
    # Channel 2: means 0 and 0, stds 1 and 3 -> d = 0, |log 3|.
    assert stats['gap'].tolist() == pytest.approx([0.5, 2.0, 0.0])
    assert stats['log_std'].tolist() == pytest.approx([0.0, 0.0, math.log(3)])
    assert stats['const'] == 0
    # Pooled std: sqrt((1 + 9) / 2) for a mean shift with unequal spreads.
    x, labels = offset_batch([1.0], scales=[3.0])
    stats = tool.gap_statistics(x, torch.tensor(labels))
    assert stats['gap'].item() == pytest.approx(1 / math.sqrt(5))
    # A channel constant at one value in both modalities is left out (NaN,
    # counted).
    x = torch.zeros(4, 2, 3)
    x[:, 1] = torch.arange(12.).view(4, 3)
    stats = tool.gap_statistics(x, torch.tensor([0, 0, 1, 1]))
    assert stats['const'] == 1 and math.isnan(stats['gap'][0].item())
    # Channel 1: vis 0..5 (mean 2.5, var 35/12), ir 6..11 (mean 8.5).
    assert stats['gap'][1].item() == pytest.approx(6 / math.sqrt(35 / 12))


def test_a_channel_constant_in_one_modality_is_counted_not_infinite():
    """A channel constant in one modality only made log_std = |log 0| =
    inf and the layer's mean inf, and went uncounted (user audit 2,
    finding 10). By the definition its gap is finite and counts; its log
    std ratio is undefined: left out of the mean, counted in one_const."""
    tool = load_tool(TOOL)
    # (N=4, C=3, L=2): visible samples 0, 1; infrared 2, 3.
    x = torch.zeros(4, 3, 2)
    # Channel 0: infrared constant 1, visible 0 0 2 2 (mean 1, var 1).
    x[:2, 0] = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    x[2:, 0] = 1.0
    # Channel 1: visible 0 1 2 3 (mean 1.5, var 1.25), infrared twice that
    # plus 1 (mean 4, var 5): d = 2.5 / sqrt(3.125), |log 2|.
    x[:2, 1] = torch.arange(4.).view(2, 2)
    x[2:, 1] = 2 * x[:2, 1] + 1
    # Channel 2: constant in both.
    stats = tool.gap_statistics(x, torch.tensor([0, 0, 1, 1]))
    assert (stats['const'], stats['one_const']) == (1, 1)
    # Channel 0: means 1 and 1 -> d = 0 (pooled std sqrt(1/2) > 0).
    assert stats['gap'][0].item() == pytest.approx(0.0)
    assert math.isnan(stats['log_std'][0].item())
    assert stats['log_std'][1].item() == pytest.approx(math.log(2))

    class Bn(nn.Module):

        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm1d(3)

        def forward(self, inputs):
            return self.bn(inputs)

    (row, ) = tool.measure_modality_gap(Bn().train(), x, [0, 0, 1, 1])
    assert row['gap'] == pytest.approx((0 + 2.5 / math.sqrt(3.125)) / 2)
    assert row['log_std'] == pytest.approx(math.log(2))
    assert (row['const'], row['one_const']) == (1, 1)
    assert '| 0.693 | - | 1 | 1 |' in tool.format_table([row])


def test_a_channel_constant_at_two_values_has_an_infinite_gap():
    """Visible all 0, infrared all 1: the channel tells the modalities
    apart perfectly, |d| / 0 = inf. It was counted as a constant channel
    and left out of the layer's mean, which then showed the small gap of
    the other channels; ``gap_effect.py`` refuses to average it."""
    tool = load_tool(TOOL)
    x = torch.zeros(4, 2, 3)
    x[2:, 0] = 1.0
    x[:, 1] = torch.arange(12.).view(4, 3)
    stats = tool.gap_statistics(x, torch.tensor([0, 0, 1, 1]))
    assert math.isinf(stats['gap'][0].item()) and stats['const'] == 0
    assert math.isnan(stats['log_std'][0].item())
    (row, ) = tool.measure_modality_gap(
        nn.Sequential(nn.BatchNorm1d(2)).train(), x, [0, 0, 1, 1])
    assert row['gap'] == math.inf and row['const'] == 0
    effect = load_tool('tools/analysis_tools/gap_effect.py')
    with pytest.raises(ValueError, match='bn is infinite'):
        effect.summarise([dict(layer='bn', gap=math.inf)], 'bn', 'run')


class TwoLayers(nn.Module):
    """First norm, a positive per-channel scale, second BN."""

    def __init__(self, first):
        super().__init__()
        self.first = first
        self.second = nn.BatchNorm2d(2)
        self.register_buffer('scale', torch.tensor([2.0, 0.5]))

    def forward(self, x):
        return self.second(self.first(x) * self.scale.view(1, -1, 1, 1))


def test_bn_passes_the_gap_on_and_mbn_removes_it():
    tool = load_tool(TOOL)
    x, labels = offset_batch([0.5, 2.0])
    model = TwoLayers(nn.BatchNorm2d(2)).train()
    rows = tool.measure_modality_gap(model, x, labels)
    assert [r['layer'] for r in rows] == ['first', 'second']
    # Mean over channels of 0.5 and 2.0 at the input; BN normalises the
    # mixed batch with one mean/std per channel (an affine map), which
    # leaves the standardised difference unchanged.
    for row in rows:
        assert row['gap'] == pytest.approx(1.25, rel=1e-6)
        assert row['gap_max'] == pytest.approx(2.0, rel=1e-6)
        assert row['channels'] == 2 and row['const'] == 0
        # The two halves of the visible maps have equal moments.
        assert row['floor'] == pytest.approx(0, abs=1e-6)
    # MBN normalises each modality on its own: no gap after it (up to
    # eps), and the MBN's inner BNs are not listed.
    model = TwoLayers(MBN(2)).train()
    rows = tool.measure_modality_gap(model, x, labels)
    assert [(r['layer'], r['type'])
            for r in rows] == [('first', 'MBN'), ('second', 'BatchNorm2d')]
    assert rows[0]['gap'] == pytest.approx(1.25, rel=1e-6)
    assert rows[1]['gap'] < 1e-4
    # The labels are cleared afterwards.
    assert model.first.modality is None
    table = tool.format_table(rows)
    assert '| first | MBN | 2 | 1.250 | 2.000 |' in table


class OneModalityBranch(nn.Module):

    def __init__(self):
        super().__init__()
        self.visible_bn = nn.BatchNorm2d(1)
        self.unused_bn = nn.BatchNorm2d(1)

    def forward(self, x):
        return self.visible_bn(x[:4])


def test_floor_is_the_gap_between_the_two_halves_of_the_visible_rows():
    """``floor``: the mean over channels of the standardised mean
    difference (population variances) between the first and the second
    half of the visible samples, in batch order."""
    tool = load_tool(TOOL)
    gen = torch.Generator().manual_seed(0)
    visible = torch.randn(8, 3, generator=gen)
    visible[:2] += 2.0  # the first quarter differs
    infrared = torch.randn(8, 3, generator=gen) + 1.0
    # Interleaved: visible rows are the even ones.
    x = torch.stack([visible, infrared], dim=1).reshape(16, 3)
    rows = tool.measure_modality_gap(
        nn.Sequential(nn.BatchNorm1d(3)), x, [0, 1] * 8)
    first, second = visible[:4].double(), visible[4:].double()
    var_first, var_second = (
        half.var(0, unbiased=False) for half in (first, second))
    pooled = ((var_first + var_second) / 2).sqrt()
    smd = (first.mean(0) - second.mean(0)).abs() / pooled
    assert rows[0]['floor'] == pytest.approx(float(smd.mean()), rel=1e-9)


def test_layers_without_a_gap_are_marked():
    tool = load_tool(TOOL)
    x, labels = offset_batch([1.0])
    rows = tool.measure_modality_gap(OneModalityBranch().train(), x, labels)
    assert rows[0]['gap'] is None
    assert rows[0]['note'] == 'sees 4 of 8 samples (one modality)'
    assert rows[1]['gap'] is None
    assert rows[1]['note'] == 'not reached by the forward'


def test_refuses_a_batch_without_both_modalities():
    tool = load_tool(TOOL)
    x, _ = offset_batch([1.0])
    with pytest.raises(ValueError, match='both modalities'):
        tool.measure_modality_gap(nn.BatchNorm2d(1), x, [0] * 8)
    with pytest.raises(ValueError, match='7 modality labels'):
        tool.measure_modality_gap(nn.BatchNorm2d(1), x, [0, 1] * 3 + [0])


def tiny_config(tmp_path, name='agw'):
    """``configs/mbn/{name}_r18_synthreid-vi-v2.py`` on a tiny folder."""
    return write_tiny_vi_config(tmp_path, name)


def test_command_line_on_the_agw_demo(tmp_path, monkeypatch, capsys):
    """The tool end to end: AGW (two-stream) and its MBN twin, random
    init, on a tiny SynthReID-vi v2 folder."""
    tool = load_tool(TOOL)
    rows = {}
    for name in ('agw', 'mbn-agw'):
        config = tiny_config(tmp_path, name)
        out = tmp_path / f'{name}.json'
        monkeypatch.setattr(sys, 'argv', [
            'modality_gap.py',
            str(config), '--num-per-modality', '4', '--out',
            str(out)
        ])
        tool.main()
        printed = capsys.readouterr().out
        assert '4 visible + 4 infrared training images' in printed
        rows[name] = {
            r['layer']: r
            for r in json.loads(out.read_text())['rows']
        }
    for model_rows in rows.values():
        # Each stem sees one modality only; the shared trunk sees both.
        assert model_rows['backbone.stems.0.bn1']['gap'] is None
        assert 'one modality' in model_rows['backbone.stems.0.bn1']['note']
        assert model_rows['backbone.layer1.0.bn1']['gap'] > 0
        assert model_rows['head.bnneck']['channels'] == 512
    assert rows['mbn-agw']['backbone.layer1.0.bn1']['type'] == 'MBN'
    # MBN's output has equal per-modality moments: the next layer's input
    # (after a ReLU and a conv) is much closer across modalities than with
    # plain BN at the same random init.
    assert rows['mbn-agw']['backbone.layer1.0.bn2']['gap'] < \
        rows['agw']['backbone.layer1.0.bn2']['gap']


def test_random_init_is_seeded_like_training(tmp_path, monkeypatch, capsys):
    """Without a checkpoint two runs print the same gaps whatever the
    global RNG held before: the model is built after the config's
    ``randomness.seed`` is set, as mmengine's Runner builds it. (The r18
    configs' ``init_cfg=None`` leaves the trunk's convs at the
    constructor's draw, which was unseeded.)"""
    tool = load_tool(TOOL)
    config = tiny_config(tmp_path)
    runs = []
    for i in range(2):
        out = tmp_path / f'run{i}.json'
        monkeypatch.setattr(sys, 'argv', [
            'modality_gap.py',
            str(config), '--num-per-modality', '4', '--out',
            str(out)
        ])
        torch.manual_seed(100 + i)  # whatever ran before in the process
        tool.main()
        runs.append((json.loads(out.read_text()), capsys.readouterr().out))
    assert runs[0][0]['rows'] == runs[1][0]['rows']
    assert runs[0][0]['init_seed'] == 0 and runs[0][0]['seed'] == 0
    assert 'draw seed 0' in runs[0][1]
    assert 'random init (init seed 0)' in runs[0][1]
    # --init-seed overrides the config's seed: another network.
    model, seed = tool.build_start_model(str(config), init_seed=1)
    other = model.state_dict()
    model, seed = tool.build_start_model(str(config))
    assert seed == 0
    key = 'backbone.layer1.0.conv1.weight'
    assert not torch.equal(other[key], model.state_dict()[key])


def test_random_init_equals_trainings_starting_point(tmp_path):
    """The tool's random init is the model ``tools/train.py`` starts
    from: a ReIDRunner built from the same config, captured after its
    ``init_weights`` when the train loop begins."""
    import copy

    from mmengine.config import Config
    from mmengine.hooks import Hook

    from mmreid.engine.runner.reid_runner import ReIDRunner
    from mmreid.utils import register_all_modules
    register_all_modules()
    tool = load_tool(TOOL)
    config = tiny_config(tmp_path)

    class Stop(Exception):
        pass

    class Capture(Hook):

        def before_train(self, runner):
            self.state = copy.deepcopy(runner.model.state_dict())
            raise Stop

    cfg = Config.fromfile(str(config))
    cfg.work_dir = str(tmp_path / 'work')
    torch.manual_seed(123)
    runner = ReIDRunner.from_cfg(cfg)
    capture = Capture()
    runner.register_hook(capture, 'VERY_HIGH')
    with pytest.raises(Stop):
        runner.train()
    torch.manual_seed(7)
    model, seed = tool.build_start_model(str(config))
    start = model.state_dict()
    assert seed == 0 and list(start) == list(capture.state)
    assert [k for k in start
            if not torch.equal(start[k], capture.state[k])] == []


def test_ir_gap_enlarges_the_gap_the_shared_trunk_meets():
    """``ir_gap`` exists to give MBN a larger gap to act on: at the random
    init training starts from, the two-stream AGW trunk's norm inputs
    (after the per-modality stems) must see a larger modality gap as
    ``ir_gap`` grows. The first ``ir_gap`` (halo, blur, fixed-pattern
    noise, warm backgrounds) shrank it (0.16 -> 0.12 at 128 + 128 images),
    which this test catches."""
    import cv2
    import numpy as np

    from mmreid.apis import init_model
    from mmreid.datasets.synthetic_render import (get_domain_styles,
                                                  render_image)
    from mmreid.utils import register_all_modules
    register_all_modules()
    tool = load_tool(TOOL)
    model = init_model(f'{REPO}/configs/mbn/agw_r18_synthreid-vi-v2.py')
    style = get_domain_styles(1, 0)[0]
    draw = np.random.default_rng(0)
    jobs = [(k, int(draw.integers(1, 400)),
             int(draw.choice((3, 6) if k else (1, 2, 4, 5))),
             int(draw.integers(0, 8))) for k in (0, 1) for _ in range(64)]

    def mean_gap(ir_gap):
        images = []
        for k, pid, cam, index in jobs:
            img = render_image(0, 0, pid, cam, index, (128, 64),
                               None if k else style, bool(k), ir_mode='dye',
                               ir_luminance=0.5, ir_gap=ir_gap if k else 0)
            if img.ndim == 2:
                img = np.repeat(img[..., None], 3, 2)
            images.append(cv2.resize(img, (32, 64),
                                     interpolation=cv2.INTER_LINEAR))
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float()
        pre = model.data_preprocessor
        torch.manual_seed(0)
        model.init_weights()
        model.train()
        rows = tool.measure_modality_gap(model, (x - pre.mean) / pre.std,
                                         [k for k, *_ in jobs],
                                         model.extract_feat)
        trunk = [r['gap'] for r in rows
                 if r['layer'].startswith('backbone.layer')]
        assert len(trunk) == 19 and None not in trunk
        return sum(trunk) / len(trunk)

    gaps = [mean_gap(g) for g in (0.0, 0.5, 1.0)]
    assert gaps[0] < gaps[1] < gaps[2]
    assert gaps[2] > 1.3 * gaps[0]


def test_a_refusal_advises_the_options_this_tool_takes(tmp_path, monkeypatch,
                                                       capsys):
    """A checkpoint whose saved config tests at 64 x 32, measured with a
    config at 32 x 16: the refusal advised init_model(..., cfg_options=...)
    and strict=False, which a user of this command cannot give."""

    from mmreid.apis import init_model
    from tests.fixtures.processes import options_not_taken
    tool = load_tool(TOOL)
    monkeypatch.setattr(sys, 'argv', ['modality_gap.py', '--help'])
    with pytest.raises(SystemExit):
        tool.parse_args()
    help_text = capsys.readouterr().out
    config = tiny_config(tmp_path, 'agw')
    trained = save_trained_checkpoint(tmp_path / 'trained.pth',
                                      init_model(str(config)).state_dict(),
                                      config)
    size = 'test_dataloader.dataset.pipeline.1.size'
    argv = [
        'modality_gap.py',
        str(config),
        str(trained), '--num-per-modality', '2', '--cfg-options'
    ]
    monkeypatch.setattr(sys, 'argv', argv + [f'{size}=[32,16]'])
    with pytest.raises(ValueError, match='was trained with a config') as e:
        tool.main()
    message = str(e.value)
    assert options_not_taken(message, help_text) == [], message
    fix = f'--cfg-options {size}=[64,32]'
    assert fix in message and 'cfg_options=' not in message, message
    assert 'modality_gap.py has no such switch' in message
    # The fix as printed is taken, and measures.
    monkeypatch.setattr(sys, 'argv', argv + [f'{size}=[64,32]'])
    tool.main()
    assert 'head.bnneck' in capsys.readouterr().out


def test_a_bgr_test_pipeline_is_refused(tmp_path, monkeypatch):
    """The gap is measured on the test pipeline's images. With mmcv's BGR
    loader ('mmpretrain.LoadImageFromFile') the model, which takes RGB,
    met swapped channels and the tool printed their gaps; tools/test.py
    refuses that pipeline, and so does this tool, naming its key."""
    tool = load_tool(TOOL)
    config = tiny_config(tmp_path)
    monkeypatch.setattr(sys, 'argv', [
        'modality_gap.py',
        str(config), '--num-per-modality', '4', '--out',
        str(tmp_path / 'gap.json'), '--cfg-options',
        'test_dataloader.dataset.pipeline.0.type='
        'mmpretrain.LoadImageFromFile'
    ])
    with pytest.raises(ValueError) as info:
        tool.main()
    assert str(info.value).startswith(
        'test_dataloader.dataset.pipeline[0] loads the images with '
        "type='mmpretrain.LoadImageFromFile'")
    assert not (tmp_path / 'gap.json').exists()


def test_an_explicit_init_seed_of_zero_is_used():
    """``--init-seed 0`` is a seed like any other: on a config whose
    ``randomness.seed`` is 5 it must give seed 0's network, not silently
    fall back to the config's seed (0 is falsy)."""
    from mmengine.config import Config
    tool = load_tool(TOOL)
    cfg = Config(dict(randomness=dict(seed=5)))
    assert tool.init_seed_of(cfg) == 5
    assert tool.init_seed_of(cfg, 0) == 0
    assert tool.init_seed_of(cfg, 3) == 3
    with pytest.raises(ValueError, match='randomness.seed is not set'):
        tool.init_seed_of(Config(dict(randomness=dict(seed=None))))
    assert tool.init_seed_of(Config(dict()), 0) == 0


@pytest.mark.parametrize('num, refused', [('1', True), ('2', False)])
def test_num_per_modality_below_two_is_refused(monkeypatch, capsys, num,
                                               refused):
    """BN statistics (and a variance per modality) need two images of each
    modality at least: ``--num-per-modality 1`` must be refused by the
    parser, naming the value; 2 is accepted."""
    tool = load_tool(TOOL)
    monkeypatch.setattr(
        sys, 'argv', ['modality_gap.py', 'cfg.py', '--num-per-modality', num])
    if refused:
        with pytest.raises(SystemExit):
            tool.parse_args()
        assert '--num-per-modality must be >= 2' in capsys.readouterr().err
    else:
        assert tool.parse_args().num_per_modality == 2


class CalledTwice(nn.Module):
    """One BN called on the mixed batch, then on a batch whose infrared
    rows are copies of the visible ones (no gap at all)."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(1)

    def forward(self, x):
        self.bn(x)
        return self.bn(torch.cat([x[:4], x[:4]]))


def test_a_layer_called_twice_reports_its_first_input():
    """A norm layer the forward calls twice is measured on its first
    call (the mixed batch the network feeds it), not overwritten by a
    later call on other data."""
    tool = load_tool(TOOL)
    # Visible 1, -1, 1, -1 (mean 0, var 1); infrared 3, 1, 3, 1 (mean 2,
    # var 1): d = |0 - 2| / sqrt((1 + 1) / 2) = 2.
    visible = torch.tensor([1.0, -1.0, 1.0, -1.0])
    x = torch.cat([visible, visible + 2.0]).view(8, 1)
    (row, ) = tool.measure_modality_gap(CalledTwice().train(), x,
                                        [0] * 4 + [1] * 4)
    assert row['gap'] == pytest.approx(2.0)
    assert row['gap_max'] == pytest.approx(2.0)


class FakeModalityDataset:
    """3 visible and 2 infrared records; item ``i`` is its index."""

    modalities = [0, 1, 0, 1, 0]

    def __len__(self):
        return len(self.modalities)

    def get_data_info(self, index):
        return dict(modality=self.modalities[index])

    def __getitem__(self, index):
        return index


@pytest.mark.parametrize('num, refused', [(2, False), (3, True)])
def test_a_draw_of_every_image_of_a_modality_is_accepted(
        monkeypatch, num, refused):
    """``--num-per-modality`` equal to the number of infrared images draws
    all of them (without replacement): accepted; one more is refused,
    naming the dataset, the modality and both counts."""
    from mmengine.config import Config

    import mmreid.utils.pipeline_check as pipeline_check
    from mmreid.registry import DATASETS
    tool = load_tool(TOOL)
    monkeypatch.setattr(DATASETS, 'build',
                        lambda cfg: FakeModalityDataset())
    monkeypatch.setattr(pipeline_check, 'check_pipeline',
                        lambda *args, **kwargs: None)
    cfg = Config(
        dict(
            train_dataloader=dict(dataset=dict(type='Fake')),
            test_dataloader=dict(dataset=dict(pipeline=[]))))
    if refused:
        with pytest.raises(ValueError,
                           match='FakeModalityDataset has 2 images of '
                           'modality 1, fewer than --num-per-modality 3'):
            tool.mixed_batch(cfg, num, 0, None)
    else:
        batch = tool.mixed_batch(cfg, num, 0, None)
        # Visible first; every infrared record (1 and 3) drawn once.
        assert len(batch) == 4
        assert set(batch[:2]) <= {0, 2, 4} and len(set(batch[:2])) == 2
        assert sorted(batch[2:]) == [1, 3]
