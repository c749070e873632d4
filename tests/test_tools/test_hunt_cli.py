"""What ``tools/test.py`` prints and writes, checked against the protocol.

A black-box hunt for plausible but wrong numbers in the outputs of
``tools/test.py`` and ``tools/train.py``: the metrics of ``--out`` against
CMC, mAP and mINP computed here from the model's features, the printed
results table against the metrics, and ``--cfg-options`` that the run
would silently ignore.
"""
import json
import os.path as osp
import re

import numpy as np
import pytest
import torch

from ..fixtures.multi_target import TWO_DISTANCE_TARGETS
from ..fixtures.processes import (PYTHON, REPO, load_tool, run_command,
                                  run_main, run_tool)

#: The quick-start style multi-target config: every target's evaluator is
#: built from the variable ``reid_evaluator`` of its base
#: (``configs/_base_/datasets/synthreid.py``).
SNR_V2 = osp.join(REPO, 'configs', 'snr', 'snr_r18_synthreid-v2.py')


def random_checkpoint(config: str, path) -> str:
    """Save the config's model with its random initial weights as a
    checkpoint (no training: the metrics only need some ranking)."""
    from mmreid.apis import init_model
    torch.manual_seed(0)
    model = init_model(config)
    torch.save({'state_dict': model.state_dict()}, str(path))
    return str(path)


def reference_metrics(feats: torch.Tensor, records: list,
                      distance: str) -> dict:
    """R1/R5/R10/R20, mAP and mINP (percent) by their definitions.

    Market-1501 protocol: each query ranks the whole gallery by ascending
    distance, the gallery images of its own identity and camera are
    removed (junk), and a query without a true match left is not counted.
    CMC@k is the fraction of queries with a true match in the first k;
    AP is the mean of the precisions at the ranks of the true matches;
    INP is (number of true matches) / (rank of the last true match)
    (Ye et al., "Deep Learning for Person Re-identification", 2021).
    """
    feats = feats.double().numpy()
    if distance == 'cosine':
        feats = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    query = [i for i, r in enumerate(records) if r['role'] == 'query']
    gallery = [i for i, r in enumerate(records) if r['role'] == 'gallery']
    cmc, aps, inps = [], [], []
    for q in query:
        kept = [
            g for g in gallery if not (records[g]['pid'] == records[q]['pid']
                                       and records[g]['camid']
                                       == records[q]['camid'])
        ]
        diff = feats[kept] - feats[q]
        if distance == 'cosine':
            dist = -feats[kept] @ feats[q]
        else:
            dist = np.sqrt((diff**2).sum(axis=1))
        order = np.argsort(dist, kind='stable')
        match = np.array([
            records[kept[i]]['pid'] == records[q]['pid'] for i in order
        ])
        if not match.any():
            continue
        ranks = np.flatnonzero(match) + 1  # 1-based ranks of the hits
        cmc.append([float(ranks[0] <= k) for k in (1, 5, 10, 20)])
        aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks))
        inps.append(len(ranks) / ranks[-1])
    cmc = 100.0 * np.mean(cmc, axis=0)
    return {
        'R1': cmc[0],
        'R5': cmc[1],
        'R10': cmc[2],
        'R20': cmc[3],
        'mAP': 100.0 * np.mean(aps),
        'mINP': 100.0 * np.mean(inps),
    }


def printed_table(log: str, header: str) -> dict:
    """The rows of the results table printed after ``header``:
    ``{row name: {column: cell text}}``."""
    lines = log[log.index(header):].splitlines()[1:]
    columns = [c.strip() for c in lines[0].split('|')]
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.split('|')]
        if len(cells) != len(columns):
            break
        rows[cells[0]] = dict(zip(columns[1:], cells[1:]))
    return rows


def test_out_and_table_of_a_multi_target_test_follow_the_definitions(
        make_config, tmp_path):
    """``tools/test.py CONFIG CKPT --out m.json`` on a config with two
    targets (one Euclidean, one cosine): every ``<target>/<metric>`` of the
    json is CMC/mAP/mINP of the model's features by their definitions
    (Market-1501 junk rule), ``mean/<metric>`` is their mean over the
    targets, and every cell of the printed table is the json value rounded
    to its two decimals."""
    from mmengine.config import Config

    from mmreid.apis import extract_features, init_model
    from mmreid.registry import DATASETS
    config = make_config(extra=TWO_DISTANCE_TARGETS.format(first='d2'))
    ckpt = random_checkpoint(config, tmp_path / 'random.pth')
    out = tmp_path / 'metrics.json'
    log = run_tool([
        PYTHON, 'tools/test.py', config, ckpt, '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(out)
    ])
    metrics = json.loads(out.read_text())

    cfg = Config.fromfile(config)
    model = init_model(config, ckpt)
    expected = {}
    for target in cfg.test_cfg.targets:
        dataset = DATASETS.build(target.dataloader.dataset)
        records = [dataset.get_data_info(i) for i in range(len(dataset))]
        feats = extract_features(model, [r['img_path'] for r in records])
        reference = reference_metrics(feats, records,
                                      target.evaluator.distance)
        for key, value in reference.items():
            expected[f'{target.name}/{key}'] = value
    for key in ('R1', 'R5', 'R10', 'R20', 'mAP', 'mINP'):
        expected[f'mean/{key}'] = np.mean(
            [expected[f'{t.name}/{key}'] for t in cfg.test_cfg.targets])
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-6), key

    table = printed_table(log, 'test metrics of 2 targets:')
    assert set(table) == {'d2', 'd0', 'mean'}
    for row, cells in table.items():
        for column, text in cells.items():
            assert text == f'{metrics[f"{row}/{column}"]:.2f}', (row, column)


def test_a_target_named_like_a_split_is_in_the_table_or_refused(
        make_config, tmp_path):
    """A user names the targets of a multi-target config after the
    protocol's partitions (``split0``; RegDB's ``trial1`` ... ``trial10``
    read the same way) and runs ``tools/test.py``. The loop accepts the
    name (only ``/`` and ``mean`` are refused) and evaluates the target,
    and the ``mean`` row averages it, but the printed table (and the
    report's, the same rows) has no row for it: ``results_rows`` drops
    every key with a ``split<i>``/``trial<t>`` part as a single partition
    of a split-based protocol. The user reads a table whose mean is not
    the mean of its rows. Right: the target's row is printed (its metrics
    are a target's, not a partition's), or the name is refused before the
    evaluation, as ``mean`` is."""
    config = make_config(extra=TWO_DISTANCE_TARGETS.format(first='split0'))
    ckpt = random_checkpoint(config, tmp_path / 'random.pth')
    out = tmp_path / 'metrics.json'
    args = [
        PYTHON, 'tools/test.py', config, ckpt, '--work-dir',
        str(tmp_path / 'work'), '--out',
        str(out)
    ]
    code, output = run_command(args)
    if code != 0:
        assert "target name 'split0' is the name of a protocol partition" \
            in output[-3000:], output[-3000:]
        assert not out.exists()
        return
    metrics = json.loads(out.read_text())
    assert 'split0/mAP' in metrics  # evaluated, and in the mean
    table = printed_table(output, 'test metrics of 2 targets:')
    assert 'split0' in table, (
        f'the printed table has the rows {sorted(table)}; its mean row '
        f'{table["mean"]["mAP"]} (mAP) averages split0 '
        f'{metrics["split0/mAP"]:.2f} and d0 {metrics["d0/mAP"]:.2f}')


def run_test_main(monkeypatch, tmp_path, *options):
    """``tools/test.py SNR_V2 CKPT OPTIONS``, up to the runner: the config
    the runner would be built from, or the ``SystemExit``/``ValueError``
    of a refused option."""
    ckpt = tmp_path / 'epoch_1.pth'
    ckpt.write_bytes(b'not read: the runner is replaced')
    return run_main(
        load_tool('tools/test.py'), monkeypatch, SNR_V2, str(ckpt),
        '--work-dir', str(tmp_path / 'work'), *options)


def test_a_new_field_of_a_substituted_variable_is_applied_or_refused(
        monkeypatch, tmp_path):
    """The quick-start style configs build every target's evaluator from
    one variable, ``reid_evaluator = dict(type='ReIDMetric')``
    (``configs/_base_/datasets/synthreid.py``). A user runs ``tools/test.py
    configs/snr/snr_r18_synthreid-v2.py CKPT --cfg-options
    reid_evaluator.distance=cosine`` to rank every target by cosine
    distance. The option is accepted, but the targets were built from the
    variable when the file was read, so every target still ranks by the
    default Euclidean distance and the printed numbers are those of the
    distance the user switched away from. mmreid refuses an override of
    a substituted variable whose old value other keys keep
    (``reid_evaluator.type=...``, ``synth.seed=3``: docs/get_started.md,
    mmreid/utils/config/overrides.py); a field the variable does not have
    yet slips through. Right: refused, naming the keys to set
    (``test_cfg.targets.<i>.evaluator.distance``), or applied to them."""
    try:
        cfg = run_test_main(monkeypatch, tmp_path, '--cfg-options',
                            'reid_evaluator.distance=cosine')
    except (SystemExit, ValueError) as error:
        assert 'reid_evaluator' in str(error)
        return
    distances = [
        target['evaluator'].get('distance')
        for target in cfg.test_cfg.targets
    ]
    assert distances == ['cosine'] * len(distances), (
        f'--cfg-options reid_evaluator.distance=cosine accepted, but the '
        f'targets evaluate with distance {distances} (None: euclidean)')


def test_a_bool_field_of_a_substituted_variable_is_applied_or_refused(
        monkeypatch, tmp_path):
    """``configs/snr/snr_r18_synthreid-v2.py`` builds every dataset (the
    training domains and each test target) from ``synth = dict(...,
    style_control=True)``. ``--cfg-options synth.style_control=False`` is
    accepted, but every dataset keeps ``style_control=True``: the check of
    substituted variables skips any field whose old value is a bool
    (``isinstance(old, (bool, dict))`` in
    ``mmreid/utils/config/overrides.py``), while ``synth.seed=3`` on the
    same variable is refused with the keys to set. The run evaluates
    (and trains on) other data than the one the user asked for, without
    a word. Right: refused, naming the keys, or applied to them."""
    try:
        cfg = run_test_main(monkeypatch, tmp_path, '--cfg-options',
                            'synth.style_control=False')
    except (SystemExit, ValueError) as error:
        assert 'synth' in str(error)
        return
    kept = [
        target['name'] for target in cfg.test_cfg.targets
        if target['dataloader']['dataset'].get('style_control') is True
    ]
    assert not kept, (
        f'--cfg-options synth.style_control=False accepted, but the test '
        f'targets {kept} keep style_control=True')


def test_a_refused_option_on_a_substituted_variable_names_it(
        monkeypatch, tmp_path):
    """The neighbouring behaviour that holds: an existing field of the
    same variable (``reid_evaluator.type``) is refused, naming the keys
    that keep the old value, before anything is built."""
    with pytest.raises(ValueError, match='reid_evaluator') as info:
        run_test_main(monkeypatch, tmp_path, '--cfg-options',
                      'reid_evaluator.type=CUHK03ClassicMetric')
    assert 'test_cfg.targets.0.evaluator' in str(info.value)


def test_the_table_does_not_round_an_imperfect_rank_to_100():
    """SYSU-MM01 style: a rank averaged over 10 gallery trials of 3803
    queries, where one query misses the top 20 in one trial. Its mean is
    ``100 - 100 / 38030 = 99.9974`` (``summarize_partitions``, as the
    trial metrics report it), which the printed table
    (``format_results_table``, what ``tools/test.py`` logs, and the
    report's table) shows as ``100.00±0.01``: a perfect R20 whose spread is
    not zero. At the other end, an R1 of one hit in 38030 prints as
    ``0.00``. Rounding to the shown precision may not reach the bounds of
    the range that the value does not reach: right is a cell below
    ``100.00`` for a value below 100 and above ``0.00`` for a value above
    0 (more decimals, or rounding towards the inside there)."""
    from mmreid.evaluation.functional.protocols import summarize_partitions
    from mmreid.evaluation.results_table import format_results_table
    queries = 3803
    trials = [dict(R1=0.0, R20=100.0) for _ in range(9)]
    trials.append(
        dict(R1=100.0 / queries, R20=100.0 * (queries - 1) / queries))
    summary = summarize_partitions(trials)
    assert 0 < summary['R1'] and summary['R20'] < 100
    metrics = {f'sysu/{key}': value for key, value in summary.items()}
    table = format_results_table(metrics)
    row = [line for line in table.splitlines() if line.startswith('sysu')][0]
    r1, r20 = [cell.strip().split('±')[0] for cell in row.split('|')[1:]]
    assert float(r20) < 100, f'R20 {summary["R20"]!r} printed as {r20}'
    assert float(r1) > 0, f'R1 {summary["R1"]!r} printed as {r1}'
    assert (r1, r20) == ('0.003', '99.997')


def test_out_of_a_refused_amp_run_is_not_written(make_config, tmp_path):
    """``tools/test.py ... --amp --out m.json`` on a machine without CUDA
    is refused (docs/get_started.md: an error, not a silent fp32 run)
    before anything is evaluated: no metrics file, no work dir."""
    if torch.cuda.is_available():
        pytest.skip('checks the CPU refusal')
    config = make_config()
    ckpt = tmp_path / 'epoch_1.pth'
    ckpt.write_bytes(b'not read: the option is refused first')
    out = tmp_path / 'm.json'
    code, output = run_command([
        PYTHON, 'tools/test.py', config,
        str(ckpt), '--amp', '--out',
        str(out), '--work-dir',
        str(tmp_path / 'work')
    ])
    assert code != 0
    assert re.search(r'--amp needs a CUDA device', output)
    assert not out.exists()
    assert not (tmp_path / 'work').exists()
