import os

import cv2
import numpy as np
import pytest

from mmreid.datasets import Market1501
from ..fixtures.processes import load_tool

TOOL = 'tools/analysis_tools/benchmark_train.py'


def test_noise_market_is_a_market_training_set(tmp_path):
    tool = load_tool(TOOL)
    root = str(tmp_path / 'noise_market')
    tool.write_noise_market(root)
    train = Market1501(root, split='train', pipeline=[])
    infos = [train.get_data_info(i) for i in range(len(train))]
    pids = {info['pid'] for info in infos}
    cams = {info['camid'] for info in infos}
    assert len(train) == 751 * 8
    assert len(pids) == 751 and len(cams) == 6
    # A finished folder is reused, not written again.
    marker = os.path.join(root, '.done')
    before = os.path.getmtime(marker)
    tool.write_noise_market(root)
    assert os.path.getmtime(marker) == before


def market_file(root, folder, value):
    path = root / folder / '0001_c1s1_000000_01.jpg'
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((128, 64, 3), value, np.uint8))
    return path


def files(root):
    """{path: bytes} of the files under ``root``."""
    return {p: p.read_bytes() for p in root.rglob('*') if p.is_file()}


def test_noise_market_never_writes_into_an_existing_folder(
        monkeypatch, tmp_path):
    """The help said 'kept when it exists', but a Market-1501-shaped folder
    without the .done marker (a user's real data) was written into: its
    query image replaced by noise, noise added to its training images.
    It is refused, naming it and what to do, and left as it was."""
    tool = load_tool(TOOL)
    monkeypatch.setattr(tool, 'NOISE_MARKET_IDS', 3)
    root = tmp_path / 'market1501'
    for folder in ('bounding_box_train', 'bounding_box_test', 'query'):
        market_file(root, folder, 200)
    before = files(root)
    with pytest.raises(FileExistsError) as error:
        tool.write_noise_market(str(root))
    assert repr(str(root)) in str(error.value)
    assert '--noise-market' in str(error.value)
    assert 'remove' in str(error.value)
    assert files(root) == before
    assert os.listdir(tmp_path) == ['market1501']
    # An empty folder (mktemp -d) holds nothing to keep: it is filled.
    empty = tmp_path / 'empty'
    empty.mkdir()
    tool.write_noise_market(str(empty))
    assert len(Market1501(str(empty), split='train', pipeline=[])) == 3 * 8


def test_an_interrupted_noise_market_leaves_no_folder(monkeypatch, tmp_path):
    """Interrupted while writing, it left a half folder without the
    marker, which the next run then wrote into; now nothing is left under
    DIR and the next run writes it whole."""
    tool = load_tool(TOOL)
    monkeypatch.setattr(tool, 'NOISE_MARKET_IDS', 3)
    written = []
    imwrite = cv2.imwrite

    def interrupted(*args, **kwargs):
        if len(written) == 10:
            raise KeyboardInterrupt('simulated Ctrl-C')
        written.append(args[0])
        return imwrite(*args, **kwargs)

    root = tmp_path / 'noise'
    with monkeypatch.context() as ctrl_c:
        ctrl_c.setattr(cv2, 'imwrite', interrupted)
        with pytest.raises(KeyboardInterrupt):
            tool.write_noise_market(str(root))
    assert os.listdir(tmp_path) == []
    tool.write_noise_market(str(root))
    train = Market1501(str(root), split='train', pipeline=[])
    assert len(train) == 3 * 8
    assert os.listdir(tmp_path) == ['noise']


def test_a_race_with_a_finished_run_or_a_users_folder(monkeypatch, tmp_path):
    """Another run that finished the noise folder meanwhile: its folder is
    used, no error. A user's folder put there meanwhile (no .done): an
    error, the folder left as it was, never the run's noise beside it."""
    tool = load_tool(TOOL)
    monkeypatch.setattr(tool, 'NOISE_MARKET_IDS', 3)
    write = tool._write_noise_images

    def racing(marker):

        def write_while_another_writes(tmp):
            write(tmp)
            market_file(root, 'query', 200)
            if marker:
                (root / '.done').write_bytes(b'')

        return write_while_another_writes

    root = tmp_path / 'finished'
    monkeypatch.setattr(tool, '_write_noise_images', racing(True))
    tool.write_noise_market(str(root))
    assert sorted(os.listdir(root)) == ['.done', 'query']
    root = tmp_path / 'users'
    monkeypatch.setattr(tool, '_write_noise_images', racing(False))
    with pytest.raises(FileExistsError, match='users'):
        tool.write_noise_market(str(root))
    assert os.listdir(root) == ['query']
    assert sorted(os.listdir(tmp_path)) == ['finished', 'users']


def test_noise_market_refuses_other_datasets(monkeypatch, tmp_path):
    tool = load_tool(TOOL)
    monkeypatch.setattr('sys.argv', [
        TOOL, 'configs/baseline/bot_r18_synthreid.py', '--noise-market',
        str(tmp_path / 'nm')
    ])
    with pytest.raises(SystemExit, match='trains on .ConcatReIDDataset.'):
        tool.prepare_cfg(tool.parse_args())
    assert not os.path.exists(tmp_path / 'nm')


def test_data_rate_without_warmup(monkeypatch):
    """--warmup 0 ran both timed loops, then ended the data-only one with
    a TypeError (its start time was set at the end of the warm-up only;
    cross-check audit s19 B1). Without warm-up every batch is timed."""
    from types import SimpleNamespace
    tool = load_tool(TOOL)
    batches = [dict(data_samples=[0] * 4)] * 3
    monkeypatch.setattr(tool.Runner, 'build_dataloader',
                        staticmethod(lambda cfg: batches))
    cfg = SimpleNamespace(train_dataloader={})
    clock = iter(range(100))
    monkeypatch.setattr(tool.time, 'perf_counter', lambda: next(clock))
    # Start at 0, end at 1: all 5 timed batches' 20 images in 1 s.
    args = SimpleNamespace(warmup=0, iters=5)
    assert tool.run_data(cfg, args) == 20
    # With warm-up the first batch is not counted: 4 batches after it.
    clock = iter(range(100))
    args = SimpleNamespace(warmup=1, iters=4)
    assert tool.run_data(cfg, args) == 16


def test_the_framework_row_times_the_runner_tools_train_builds(monkeypatch):
    """The 'mmreid' row timed mmengine's plain Runner, not the ReIDRunner
    of tools/train.py (cross-check audit s19 B2)."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    from mmreid.engine.runner import ReIDRunner
    tool = load_tool(TOOL)
    built = []

    def from_cfg(cls, cfg):
        built.append(cls)
        raise RuntimeError('stop here')

    monkeypatch.setattr(Runner, 'from_cfg', classmethod(from_cfg))
    cfg = Config.fromfile('configs/baseline/bot_r18_synthreid.py')
    args = tool.argparse.Namespace(warmup=0, iters=1, amp=False, device='cpu')
    with pytest.raises(RuntimeError, match='stop here'):
        tool.run_mmreid(cfg, args)
    assert built == [ReIDRunner]


@pytest.mark.parametrize('flag,value,least', [('--iters', '0', 1),
                                              ('--warmup', '-1', 0),
                                              ('--repeats', '0', 1),
                                              ('--num-workers', '-2', 0)])
def test_a_count_out_of_range_is_refused_naming_the_flag(
        monkeypatch, capsys, flag, value, least):
    """--iters 0 ended in a StatisticsError traceback after building the
    model, --warmup -1 in a TypeError; neither named the flag."""
    tool = load_tool(TOOL)
    monkeypatch.setattr('sys.argv', [TOOL, 'cfg.py', flag, value])
    with pytest.raises(SystemExit) as exit_info:
        tool.parse_args()
    assert exit_info.value.code == 2
    assert f'{flag} must be >= {least}, got {value}' in capsys.readouterr().err


def test_noise_market_config_trains_on_the_noise_folder(monkeypatch,
                                                        tmp_path):
    """--noise-market points the Market-1501 config's training set at the
    noise folder (never the real data_root) and drops the backbone's
    pretrained init_cfg (never downloaded: it does not change the
    cost)."""
    from types import SimpleNamespace
    tool = load_tool(TOOL)
    written = []
    monkeypatch.setattr(tool, 'write_noise_market', written.append)
    noise = str(tmp_path / 'noise')
    args = SimpleNamespace(
        config='configs/baseline/bot_r50_1xb64-120e_market1501.py',
        cfg_options=None,
        noise_market=noise,
        num_workers=0)
    cfg = tool.prepare_cfg(args)
    os.rmdir(cfg.work_dir)  # made for the runner; nothing written yet
    assert written == [noise]
    assert cfg.train_dataloader.dataset.data_root == noise
    assert 'init_cfg' not in cfg.model.backbone
    assert cfg.train_dataloader.num_workers == 0
    assert cfg.train_dataloader.persistent_workers is False


class _Clock:
    """perf_counter that advances 1 s per call."""

    def __init__(self):
        self.now = -1.0

    def __call__(self):
        self.now += 1
        return self.now


def test_bare_loop_times_iters_iterations_after_the_warmup(monkeypatch):
    from types import SimpleNamespace

    import torch
    from mmengine.config import Config
    tool = load_tool(TOOL)

    class Model(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(1))
            self.data_preprocessor = lambda data, training: data

        def init_weights(self):
            pass

        def forward(self, x, mode):
            return dict(loss=(self.w * x).sum(), acc=torch.tensor(1.0))

    model = Model()
    monkeypatch.setattr(tool, 'MODELS', SimpleNamespace(build=lambda c: model))
    batches = [dict(x=torch.ones(1))] * 2
    monkeypatch.setattr(tool.Runner, 'build_dataloader',
                        staticmethod(lambda cfg: batches))
    monkeypatch.setattr(tool.time, 'perf_counter', _Clock())
    cfg = Config(
        dict(
            model=dict(),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.5)),
            train_dataloader=dict()))
    args = SimpleNamespace(device='cpu', amp=False, warmup=2, iters=3)
    times = tool.run_bare(cfg, args)
    assert times == [1.0, 1.0, 1.0]
    # Every iteration stepped (warm-up, timed and the one before timing).
    assert model.w.item() == pytest.approx(1 - 0.5 * 6)


def test_framework_loop_times_iters_iterations_after_the_warmup(monkeypatch):
    from types import SimpleNamespace

    from mmengine.config import Config
    tool = load_tool(TOOL)
    ran = []

    class FakeRunner:

        def __init__(self, cfg):
            self.cfg, self.hooks = cfg, []

        def register_hook(self, hook):
            self.hooks.append(hook)

        def train(self):
            for i in range(self.cfg.train_cfg['max_iters']):
                ran.append(i)
                for hook in self.hooks:
                    hook.after_train_iter(self, i)

    monkeypatch.setattr(tool, 'build_runner', FakeRunner)
    monkeypatch.setattr(tool.time, 'perf_counter', _Clock())
    cfg = Config(dict(default_hooks=dict(), optim_wrapper=dict()))
    args = SimpleNamespace(device='cpu', amp=False, warmup=2, iters=3)
    assert tool.run_mmreid(cfg, args) == [1.0, 1.0, 1.0]
    assert len(ran) == 2 + 3 + 1


def test_overhead_is_framework_over_bare(monkeypatch, tmp_path, capsys):
    """overhead = median(mmreid) / median(bare) - 1, per repeat and over
    all; images/s = batch size / median seconds."""
    import json

    from mmengine.config import Config
    tool = load_tool(TOOL)
    mm_runs = iter([[0.3, 0.3], [0.2, 0.2]])
    monkeypatch.setattr(
        tool, 'prepare_cfg',
        lambda args: Config(
            dict(
                train_dataloader=dict(batch_size=4),
                optim_wrapper=dict(optimizer=dict(type='SGD')))))
    monkeypatch.setattr(tool, 'run_mmreid', lambda cfg, args: next(mm_runs))
    monkeypatch.setattr(tool, 'run_bare', lambda cfg, args: [0.1, 0.1])
    monkeypatch.setattr(tool, 'run_data', lambda cfg, args: 99.0)
    out = tmp_path / 'train.json'
    monkeypatch.setattr('sys.argv', [
        TOOL, 'cfg.py', '--repeats', '2', '--device', 'cpu', '--out',
        str(out)
    ])
    tool.main()
    result = json.loads(out.read_text())
    assert result['overhead_pct'] == pytest.approx(150)
    assert result['overhead_pct_per_repeat'] == pytest.approx([200, 100])
    assert result['mmreid_images_per_s'] == pytest.approx(16)
    assert result['bare_images_per_s'] == pytest.approx(40)
    assert 'framework overhead (median): +150.0%' in capsys.readouterr().out


def test_amp_without_cuda_is_refused_before_anything_runs(monkeypatch):
    tool = load_tool(TOOL)
    prepared = []
    monkeypatch.setattr(tool, 'prepare_cfg', prepared.append)
    monkeypatch.setattr('sys.argv',
                        [TOOL, 'cfg.py', '--amp', '--device', 'cpu'])
    with pytest.raises(SystemExit, match='--amp needs --device cuda'):
        tool.main()
    assert prepared == []


def test_bare_loop_steps_the_configs_parameter_groups(monkeypatch):
    """The bare loop's optimizer is the runner's: paramwise_cfg's lr_mult
    reaches it (a plain optimizer over model.parameters() gave every
    parameter the base lr)."""
    from types import SimpleNamespace

    import torch
    from mmengine.config import Config
    tool = load_tool(TOOL)

    class Model(torch.nn.Module):

        def __init__(self):
            super().__init__()
            self.body = torch.nn.Linear(1, 1, bias=False)
            self.head = torch.nn.Linear(1, 1, bias=False)
            self.data_preprocessor = lambda data, training: data

        def init_weights(self):
            for p in self.parameters():
                torch.nn.init.ones_(p)

        def forward(self, x, mode):
            return dict(loss=self.body(x).sum() + self.head(x).sum())

    model = Model()
    monkeypatch.setattr(tool, 'MODELS', SimpleNamespace(build=lambda c: model))
    monkeypatch.setattr(tool.Runner, 'build_dataloader',
                        staticmethod(lambda cfg: [dict(x=torch.ones(1, 1))]))
    cfg = Config(
        dict(
            model=dict(),
            optim_wrapper=dict(
                optimizer=dict(type='SGD', lr=0.5),
                paramwise_cfg=dict(custom_keys={'head': dict(lr_mult=10)})),
            train_dataloader=dict()))
    tool.run_bare(cfg, SimpleNamespace(device='cpu', amp=False, warmup=0,
                                       iters=1))
    # Two steps (the one before timing and one timed), gradient 1 each.
    assert model.body.weight.item() == pytest.approx(1 - 2 * 0.5)
    assert model.head.weight.item() == pytest.approx(1 - 2 * 5.0)


@pytest.mark.parametrize('key, value', [('clip_grad', dict(max_norm=35)),
                                        ('accumulative_counts', 2)])
def test_an_optim_wrapper_the_bare_loop_omits_is_refused(key, value):
    """Gradient clipping or accumulation in the runner's step only: the
    overhead would compare different work."""
    from mmengine.config import Config
    tool = load_tool(TOOL)
    cfg = Config(dict(optim_wrapper={'optimizer': dict(type='SGD'), key:
                                     value}))
    with pytest.raises(SystemExit, match=f'optim_wrapper.{key}='):
        tool.check_bare_loop_equivalent(cfg)
    cfg.optim_wrapper[key] = tool.BARE_LOOP_OMITS[key]
    tool.check_bare_loop_equivalent(cfg)
