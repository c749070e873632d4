import os

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
