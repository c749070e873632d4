"""Multi-target evaluation through tools/train.py, test.py, dist_test.sh."""
import glob
import json
import os.path as osp

from mmengine.config import Config

from mmreid.registry import DATASETS
from ..fixtures.multi_target import COUNTING_METRIC, MULTI_TARGET
from ..fixtures.processes import PYTHON, run_tool


def odd_sizes(config):
    """Options that give every target an odd number of samples, so the
    distributed sampler pads each target's last batch."""
    cfg = Config.fromfile(config, import_custom_modules=False)
    options = []
    for i, target in enumerate(cfg.test_cfg.targets):
        size = len(DATASETS.build(target.dataloader.dataset))
        if size % 2 == 0:
            options.append(
                f'test_cfg.targets.{i}.dataloader.dataset.indices={size - 1}')
    return options


def read_metrics(path):
    with open(path) as f:
        return json.load(f)


def test_multi_target_train_test_and_distributed_test(make_config, tmp_path):
    user_code = tmp_path / 'user_code'
    user_code.mkdir()
    (user_code / 'counting_metric.py').write_text(COUNTING_METRIC)
    env = dict(PYTHONPATH=str(user_code))
    config = make_config(extra=MULTI_TARGET)
    work_dir = tmp_path / 'train'
    log = run_tool(
        [PYTHON, 'tools/train.py', config, '--work-dir',
         str(work_dir)],
        env=env)
    # Validation during training reports every target; the best
    # checkpoint is selected on an explicit target key.
    assert "val target 'd2'" in log and "val target 'd0'" in log
    assert 'Epoch(val) [1]' in log and 'd2/mAP' in log and 'mean/mAP' in log
    assert osp.isfile(work_dir / 'best_d2_mAP_epoch_1.pth')
    ckpt = str(work_dir / 'epoch_1.pth')

    options = odd_sizes(config)
    single = tmp_path / 'single.json'
    log = run_tool(
        [
            PYTHON, 'tools/test.py', config, ckpt, '--work-dir',
            str(tmp_path / 'test1'), '--out',
            str(single)
        ] + (['--cfg-options'] + options if options else []),
        env=env)
    assert 'test metrics of 2 targets:' in log
    assert 'extracting features (test, d0)' in log
    dist = tmp_path / 'dist.json'
    log = run_tool(
        [
            'bash', 'tools/dist_test.sh', config, ckpt, '2', '--work-dir',
            str(tmp_path / 'test2'), '--out',
            str(dist)
        ] + (['--cfg-options'] + options if options else []),
        env=env,
        port_env='PORT')
    assert 'Distributed training: True' in log

    m1, m2 = read_metrics(single), read_metrics(dist)
    assert m1.keys() == m2.keys()
    for name in ('d2', 'd0', 'mean'):
        assert f'{name}/mAP' in m1 and f'{name}/R1' in m1
    assert not any(key.startswith('reid/') for key in m1)
    for key in m1:
        assert abs(m1[key] - m2[key]) < 1e-4, (key, m1[key], m2[key])
    # Each target collected exactly its own samples: the padding that the
    # distributed sampler added to the odd-sized dataset was dropped
    # before the metric (whose own duplicate guard would hide it).
    cfg = Config.fromfile(config, import_custom_modules=False)
    num_d2 = len(DATASETS.build(cfg.test_cfg.targets[0].dataloader.dataset))
    expected = num_d2 - 1 if num_d2 % 2 == 0 else num_d2
    assert m1['d2/num_records'] == m2['d2/num_records'] == expected
    # The test run's own JSON record (<stamp>/<stamp>.json, what the
    # analysis tools read) keeps the integer counts: mmengine's LoggerHook
    # dropped numpy integers there as null.
    logged, = glob.glob(str(tmp_path / 'test1' / '*' / '2*.json'))
    logged = read_metrics(logged)
    assert logged['d2/num_records'] == expected
    assert logged['d0/num_query'] == m1['d0/num_query'] > 0
    for key in m1:
        assert abs(logged[key] - m1[key]) < 1e-4, (key, logged[key])
