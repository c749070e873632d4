"""tools/dataset_converters/make_dg_splits.py regenerates the shipped
split files exactly (identical on every machine and run)."""
import filecmp
import json
import os.path as osp

from mmreid.datasets.small_dg import SPLIT_DIR, splits_checksum
from ..fixtures.failing_writes import fail_writes
from ..fixtures.processes import load_tool

TOOL = 'tools/dataset_converters/make_dg_splits.py'

FILES = ('prid2011.json', 'viper.json', 'ilids.json')


tool = load_tool(TOOL)


def test_regenerated_splits_equal_shipped_files(tmp_path, capsys):
    assert tool.main(['--out-dir', str(tmp_path)]) == 0
    for name in FILES:
        assert filecmp.cmp(
            osp.join(tmp_path, name), osp.join(SPLIT_DIR, name),
            shallow=False), name
    assert tool.main(['--check']) == 0
    assert capsys.readouterr().out.count(': ok') == 3


def test_a_failing_write_keeps_the_previous_files(tmp_path, monkeypatch):
    """The datasets read these files: a write that fails halfway (a full
    disk) leaves the previous file and no temporary one."""
    import pytest
    for name in FILES:
        (tmp_path / name).write_text('previous\n')
    fail_writes(monkeypatch, tool)
    with pytest.raises(OSError, match='No space left'):
        tool.main(['--out-dir', str(tmp_path)])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(FILES)
    assert all((tmp_path / name).read_text() == 'previous\n'
               for name in FILES)


def test_check_reports_a_difference(tmp_path, capsys):
    assert tool.main(['--out-dir', str(tmp_path)]) == 0
    path = tmp_path / 'viper.json'
    path.write_text(path.read_text().replace('"seed": 3', '"seed": 4', 1))
    assert tool.main(['--out-dir', str(tmp_path), '--check']) == 1
    assert 'viper.json: DIFFERS' in capsys.readouterr().out


def test_documented_procedure():
    """Split i is random.Random(i) applied as the docstring says."""
    import random
    rng = random.Random(7)
    expected = sorted(rng.sample(range(1, 201), 100))
    with open(osp.join(SPLIT_DIR, 'prid2011.json')) as f:
        content = json.load(f)
    assert content['splits'][7]['test_ids'] == expected
    assert content['sha256'] == splits_checksum(content['splits'])
    rng = random.Random(2)
    test = sorted(rng.sample(range(119), 60))
    draws = [rng.randrange(2**31) for _ in range(120)]
    ilids = tool.ilids_split(2)
    assert ilids['test_ids'] == test
    assert ilids['query_draws'] == draws[0::2]
    assert ilids['gallery_draws'] == draws[1::2]
