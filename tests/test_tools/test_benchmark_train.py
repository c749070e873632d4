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
