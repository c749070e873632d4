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
