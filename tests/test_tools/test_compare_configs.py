import importlib.util
import json
import os.path as osp

from .conftest import REPO


def load_tool():
    path = osp.join(REPO, 'tools', 'analysis_tools', 'compare_configs.py')
    spec = importlib.util.spec_from_file_location('compare_configs', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_reads_the_last_validation_of_the_latest_run(tmp_path):
    tool = load_tool()
    for stamp, r1 in (('20260101_000000', 10.0), ('20260102_000000', 30.0)):
        folder = tmp_path / stamp / 'vis_data'
        folder.mkdir(parents=True)
        records = [
            dict(loss=1.0, epoch=1),
            {'reid/R1': r1 - 5, 'reid/mAP': 1.0},
            dict(loss=0.5, epoch=2),
            {'reid/R1': r1, 'reid/mAP': 2.0, 'reid/num_query': 7},
        ]
        (folder / 'scalars.json').write_text('\n'.join(
            json.dumps(r) for r in records))
    metrics = tool.last_validation(str(tmp_path))
    assert tool.pick(metrics, 'R1') == 30.0
    assert tool.pick(metrics, 'mAP') == 2.0
    assert tool.pick(metrics, 'mINP') is None
    assert tool.last_validation(str(tmp_path / 'missing')) == {}
