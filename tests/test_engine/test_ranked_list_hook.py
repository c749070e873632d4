"""RankedListHook: worst/best choice, drawing, and tools/test.py option."""
import errno
import os
import os.path as osp
from types import SimpleNamespace

import mmcv
import numpy as np
import pytest
import torch
from mmengine.fileio import LocalBackend

from mmreid.engine.hooks import RankedListHook, ranked_list_hook
from mmreid.engine.hooks.ranked_list_hook import select_worst_best
from mmreid.evaluation.metrics import ReIDMetric
from mmreid.structures import ReIDDataSample
from mmreid.utils import atomic
from mmreid.visualization.ranked_list import (MATCH_COLOR, MISMATCH_COLOR,
                                              tile_offsets)
from ..fixtures.failing_writes import fail_writes
from ..fixtures.processes import PYTHON, run_tool


def _write_images(root, num):
    paths = []
    for i in range(num):
        path = osp.join(root, f'img_{i}.png')
        mmcv.imwrite(np.full((32, 16, 3), 10 * i, np.uint8), path)
        paths.append(path)
    return paths


def _samples(tmp_path):
    """Three queries with hand-made APs, gallery of four.

    Query q0 (pid 0) ranks its positive first: AP 1. Query q1 (pid 1)
    ranks its positive third: AP 1/3. Query q2 (pid 2) ranks it second:
    AP 1/2. Features are 1-D positions, so distances are |q - g|.
    """
    gallery = [(0, 0.0), (1, 10.0), (2, 20.0), (3, 30.0)]  # (pid, x)
    query = [(0, 0.5), (1, 21.0), (2, 29.0)]
    paths = _write_images(str(tmp_path), len(query) + len(gallery))
    samples = []
    for i, (pid, x) in enumerate(query + gallery):
        sample = ReIDDataSample(
            metainfo=dict(
                role='query' if i < len(query) else 'gallery',
                camid=0 if i < len(query) else 1,
                img_path=paths[i],
                dataset='toy',
                sample_idx=i))
        sample.set_gt_label(pid)
        sample.pred_feature = torch.tensor([x, 0.0])
        samples.append(sample)
    return samples


def test_select_worst_best():
    ap = np.array([0.5, np.nan, 0.1, 0.9, 0.5, 1.0])
    worst, best = select_worst_best(ap, 2)
    assert worst.tolist() == [2, 0]
    assert best.tolist() == [5, 3]
    worst, best = select_worst_best(ap, 10)
    assert worst.tolist() == [2, 0, 4, 3, 5]  # NaN never chosen
    assert best.tolist() == [5, 3, 0, 4, 2]


@pytest.mark.parametrize('key,value', [('gt_label', 1.7), ('camid', 0.5)])
def test_a_fractional_label_is_refused_not_truncated(tmp_path, key, value):
    """The hook draws the pid it ranks with: 1.7 is not read as pid 1 (as
    ReIDMetric, which refuses it too)."""
    samples = [s.to_dict() for s in _samples(tmp_path)]
    samples[0][key] = torch.tensor([value])
    with pytest.raises(ValueError, match=f'{key} of sample .*img_0.png.* '
                       'must be an integer'):
        RankedListHook(num_queries=1, topk=3)._collect(samples)


def test_draw_group_orders_by_ap(tmp_path):
    hook = RankedListHook(num_queries=1, topk=3, tile_size=(32, 16))
    hook._collect([s.to_dict() for s in _samples(tmp_path)])
    pictures = hook.draw_group(hook._records, 'euclidean', False,
                               dict(junk_rule='market'))
    titles = [title for title, _ in pictures]
    assert titles == ['worst_00_ap0.333_pid1', 'best_00_ap1.000_pid0']
    worst = pictures[0][1]
    # q1 at x=21: ranked g2 (20), g3 (30), g1 (10) -> red, red, green
    offsets = tile_offsets(3, (32, 16))
    colours = [tuple(worst[0, x + 8]) for x in offsets[1:]]
    assert colours == [MISMATCH_COLOR, MISMATCH_COLOR, MATCH_COLOR]
    best = pictures[1][1]
    assert tuple(best[0, offsets[1] + 8]) == MATCH_COLOR


def test_hook_matches_metric_ap(tmp_path):
    """The hook's AP is the evaluation's per-query AP."""
    samples = [s.to_dict() for s in _samples(tmp_path)]
    metric = ReIDMetric(max_rank=4, ranks=(1, ))
    metric.process(None, samples)
    metric.compute_metrics(metric.results)
    np.testing.assert_allclose(metric.last_result.all_AP, [1.0, 1 / 3, 0.5])


def _fake_runner(tmp_path, saved):
    visualizer = SimpleNamespace(
        add_image=lambda name, image, step=0: saved.append(name))
    metric = ReIDMetric(distance='euclidean', junk_rule='none')
    return SimpleNamespace(
        log_dir=str(tmp_path / 'log'),
        work_dir=str(tmp_path),
        epoch=3,
        visualizer=visualizer,
        model=torch.nn.Module(),
        test_loop=SimpleNamespace(evaluator=SimpleNamespace(metrics=[metric])),
        val_loop=SimpleNamespace(evaluator=SimpleNamespace(metrics=[metric])))


def test_hook_runs_on_a_fake_runner(tmp_path):
    saved = []
    runner = _fake_runner(tmp_path, saved)
    hook = RankedListHook(
        num_queries=2, topk=2, tile_size=(32, 16), phases=('val', 'test'))
    samples = _samples(tmp_path)
    hook.before_test_epoch(runner)
    hook.after_test_iter(runner, 0, None, samples[:4])
    hook.after_test_iter(runner, 1, None, samples[4:])
    hook.after_test_epoch(runner)
    out = tmp_path / 'log' / 'ranked_lists'
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        'best_00_ap1.000_pid0.jpg', 'best_01_ap0.500_pid2.jpg',
        'worst_00_ap0.333_pid1.jpg', 'worst_01_ap0.500_pid2.jpg'
    ]
    assert len(saved) == 4 and hook._records == []
    # validation writes into a per-epoch folder under a relative out_dir
    hook.out_dir = 'lists'
    hook.before_val_epoch(runner)
    hook.after_val_iter(runner, 0, None, samples)
    hook.after_val_epoch(runner)
    assert len(list((tmp_path / 'lists' / 'val_epoch_3').iterdir())) == 4


@pytest.mark.parametrize('train_loop,expected', [
    (None, ('val_epoch_3', 3)),
    (dict(type='EpochBasedTrainLoop', max_epochs=4), ('val_epoch_3', 3)),
    (dict(type='IterBasedTrainLoop', max_iters=40), ('val_iter_30', 30)),
    (dict(by_epoch=False, max_iters=40), ('val_iter_30', 30)),
])
def test_a_validation_is_named_by_the_training_s_unit(train_loop, expected):
    """An iteration-based loop never advances its epoch: its validations
    are named (and sent to the visualizer) by iteration, or each one
    replaced the last in ``val_epoch_0``."""
    runner = SimpleNamespace(epoch=3, iter=30, _train_loop=train_loop)
    assert ranked_list_hook.validation_step(runner) == expected


def draw_test_lists(runner, samples, out_dir, num_queries):
    """One test of the hook drawing into ``out_dir``."""
    hook = RankedListHook(
        num_queries=num_queries, topk=2, tile_size=(32, 16), out_dir=out_dir)
    hook.before_test_epoch(runner)
    hook.after_test_iter(runner, 0, None, samples)
    hook.after_test_epoch(runner)


def test_a_second_run_replaces_the_earlier_pictures(tmp_path, monkeypatch):
    """Audit s24: two runs into one folder left 4 pictures where the log
    of the second said 2, the first run's worst and best beside them."""
    logged = []
    monkeypatch.setattr(atomic, 'print_log',
                        lambda msg, **kwargs: logged.append(msg))
    runner = _fake_runner(tmp_path, [])
    samples = _samples(tmp_path)
    out = tmp_path / 'lists'
    draw_test_lists(runner, samples, str(out), num_queries=2)
    assert len(os.listdir(out)) == 4
    assert logged == []
    draw_test_lists(runner, samples, str(out), num_queries=1)
    # Worst: q1 (AP 1/3), best: q0 (AP 1), as the first run's _00 lists.
    assert sorted(os.listdir(out)) == [
        'best_00_ap1.000_pid0.jpg', 'worst_00_ap0.333_pid1.jpg'
    ]
    assert len(logged) == 1 and 'best_01_ap0.500_pid2.jpg' in logged[0]
    # No temporary folder left beside it.
    assert not [n for n in os.listdir(tmp_path) if n.startswith('.')]


def test_a_folder_with_other_files_is_refused_before_the_test(tmp_path):
    runner = _fake_runner(tmp_path, [])
    out = tmp_path / 'lists'
    out.mkdir()
    (out / 'notes.txt').write_text('mine')
    hook = RankedListHook(num_queries=1, topk=2, out_dir=str(out))
    with pytest.raises(FileExistsError, match=r"holds \['notes.txt'\]"):
        hook.before_test_epoch(runner)
    assert os.listdir(out) == ['notes.txt']


def test_a_users_picture_in_the_folder_is_refused_not_deleted(tmp_path):
    """A ``.jpg`` of the user's own, named as the hook never names a
    picture, is refused before the test and kept; pictures named as the
    hook's are replaced."""
    runner = _fake_runner(tmp_path, [])
    out = tmp_path / 'lists'
    out.mkdir()
    (out / 'holiday.jpg').write_bytes(b'mine')
    hook = RankedListHook(num_queries=1, topk=2, out_dir=str(out))
    with pytest.raises(FileExistsError, match=r"holds \['holiday.jpg'\]"):
        hook.before_test_epoch(runner)
    assert (out / 'holiday.jpg').read_bytes() == b'mine'


def validate(hook, runner, samples, epoch):
    """One validation epoch of ``hook`` at ``epoch``."""
    runner.epoch = epoch
    hook.before_val_epoch(runner)
    hook.after_val_iter(runner, 0, None, samples)
    hook.after_val_epoch(runner)


def test_each_validation_epoch_keeps_its_own_folder(tmp_path):
    """The second validation draws beside the first one's folder (which
    the hook wrote, so it is not a stranger's file), and a
    ``val_epoch_<n>`` folder holding the user's file is refused before
    that validation, the file kept."""
    runner = _fake_runner(tmp_path, [])
    samples = _samples(tmp_path)
    out = tmp_path / 'lists'
    hook = RankedListHook(
        num_queries=1,
        topk=2,
        tile_size=(32, 16),
        out_dir=str(out),
        phases=('val', ))
    validate(hook, runner, samples, 1)
    validate(hook, runner, samples, 2)
    assert sorted(os.listdir(out)) == ['val_epoch_1', 'val_epoch_2']
    for epoch in (1, 2):
        assert sorted(os.listdir(out / f'val_epoch_{epoch}')) == [
            'best_00_ap1.000_pid0.jpg', 'worst_00_ap0.333_pid1.jpg'
        ]
    (out / 'val_epoch_3').mkdir()
    (out / 'val_epoch_3' / 'notes.txt').write_text('mine')
    runner.epoch = 3
    with pytest.raises(FileExistsError, match=r"holds \['notes.txt'\]"):
        hook.before_val_epoch(runner)
    assert os.listdir(out / 'val_epoch_3') == ['notes.txt']


def test_a_failed_picture_write_leaves_no_cut_picture(tmp_path, monkeypatch):
    """A write that fails halfway (a full disk, as a kill) leaves no
    truncated JPEG among the ranked lists."""

    def half_put(self, obj, filepath):  # the in-place write of mmcv
        os.makedirs(osp.dirname(filepath), exist_ok=True)
        with open(filepath, 'wb') as f:
            f.write(obj[:len(obj) // 2])
        raise OSError(errno.ENOSPC, 'No space left on device (simulated)')

    samples = _samples(tmp_path)
    monkeypatch.setattr(LocalBackend, 'put', half_put)
    fail_writes(monkeypatch, ranked_list_hook)
    runner = _fake_runner(tmp_path, [])
    hook = RankedListHook(num_queries=1, topk=2, tile_size=(32, 16))
    hook.before_test_epoch(runner)
    hook.after_test_iter(runner, 0, None, samples)
    with pytest.raises(OSError, match='No space left'):
        hook.after_test_epoch(runner)
    # Neither the folder (never written before) nor its temporary one.
    assert os.listdir(tmp_path / 'log') == []


def test_bad_arguments():
    with pytest.raises(ValueError, match='phases'):
        RankedListHook(phases=('train', ))
    with pytest.raises(ValueError, match='topk'):
        RankedListHook(topk=0)


def test_tools_test_show_ranked_lists(make_config, tmp_path):
    from mmengine.config import Config

    from mmreid.registry import MODELS
    from mmreid.utils import register_all_modules
    register_all_modules()
    config = make_config()
    model = MODELS.build(Config.fromfile(config).model)
    checkpoint = str(tmp_path / 'init.pth')
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    out_dir = tmp_path / 'lists'
    run_tool([
        PYTHON, 'tools/test.py', config, checkpoint, '--work-dir',
        str(tmp_path / 'work'), '--show-ranked-lists',
        str(out_dir), '--show-num', '2', '--show-topk', '3'
    ])
    names = sorted(p.name for p in out_dir.iterdir())
    assert [n.split('_')[0] for n in names] == ['best'] * 2 + ['worst'] * 2
    image = mmcv.imread(str(out_dir / names[0]))
    assert image.shape[1] == tile_offsets(3)[-1] + 64
    # and the visualizer's LocalVisBackend got them too
    backend = list((tmp_path / 'work').rglob('vis_image/ranked_list_*.png'))
    assert len(backend) == 4


def _runner(tmp_path, metric):
    loop = SimpleNamespace(evaluator=SimpleNamespace(metrics=[metric]))
    return SimpleNamespace(
        log_dir=str(tmp_path / 'log'),
        work_dir=str(tmp_path),
        epoch=0,
        visualizer=SimpleNamespace(add_image=lambda *args, **kwargs: None),
        model=torch.nn.Module(),
        test_loop=loop,
        val_loop=loop)


@pytest.mark.filterwarnings(  # the deprecated set_scorer, kept one release
    'ignore:ReIDMetric.set_scorer:FutureWarning')
def test_ranks_with_the_metrics_scorer(tmp_path):
    """A scorer set on the metric (e.g. by a model hook) is used."""
    metric = ReIDMetric(junk_rule='none')
    # a reversed distance: far is near
    metric.set_scorer(lambda q, g: -torch.cdist(q, g))
    hook = RankedListHook(num_queries=1, topk=4, tile_size=(32, 16))
    scorer, normalize, options = hook._ranking_setup(
        _runner(tmp_path, metric), 'test')
    assert scorer is metric.scorer and options['junk_rule'] == 'none'
    hook._collect(_samples(tmp_path))
    titles = [
        t
        for t, _ in hook.draw_group(hook._records, scorer, normalize, options)
    ]
    # reversed order: q0 (x=0.5) finds its positive (x=0) last -> AP 1/4;
    # q1 (x=21) ranks g0, g1 -> AP 1/2; q2 (x=29) ranks g0, g1, g2 -> 1/3
    assert titles == ['worst_00_ap0.250_pid0', 'best_00_ap0.500_pid1']


def test_datasets_are_ranked_separately(tmp_path):
    samples = _samples(tmp_path)
    other = []
    for sample in _samples(tmp_path):
        sample = sample.clone()
        sample.set_metainfo(dict(dataset='other'))
        other.append(sample)
    runner = _runner(tmp_path, ReIDMetric())
    hook = RankedListHook(num_queries=1, topk=2, tile_size=(32, 16))
    hook.before_test_epoch(runner)
    hook.after_test_iter(runner, 0, None, samples + other)
    hook.after_test_epoch(runner)
    names = sorted(
        p.name for p in (tmp_path / 'log' / 'ranked_lists').iterdir())
    assert names == [
        'other_best_00_ap1.000_pid0.jpg', 'other_worst_00_ap0.333_pid1.jpg',
        'toy_best_00_ap1.000_pid0.jpg', 'toy_worst_00_ap0.333_pid1.jpg'
    ]


def test_ranks_with_the_models_own_distance(tmp_path):
    """The pictures of a GMN model rank by its M-Net (the loops' contract),
    even when the metric has no scorer set and says 'euclidean'."""
    from mmreid.registry import MODELS
    model = MODELS.build(
        dict(
            type='GMNReID',
            backbone=dict(
                type='ReIDResNet', depth=18, base_channels=2, stem_channels=2),
            head=dict(
                type='GMNHead',
                in_channels=16,
                num_classes=4,
                mnet=dict(hidden_channels=8))))
    model.init_weights()
    model.eval()
    runner = _runner(tmp_path, ReIDMetric(distance='euclidean'))
    runner.model = torch.nn.DataParallel(model)
    hook = RankedListHook(num_queries=1, topk=4, tile_size=(32, 16))
    scorer, normalize, _ = hook._ranking_setup(runner, 'test')
    assert callable(scorer) and normalize is False
    feats = torch.nn.functional.normalize(torch.randn(7, 16), dim=1)
    with torch.no_grad():
        z = model.head.mnet(
            (feats[:3, None] - feats[None, 3:]).pow(2).view(-1,
                                                            16)).view(3, 4)
    torch.testing.assert_close(scorer(feats[:3], feats[3:]), -z)


def spy_drawings(monkeypatch):
    """Record the keyword arguments of every ranked list drawn (the
    drawing still happens)."""
    from mmreid.engine.hooks import ranked_list_hook
    calls = []
    draw = ranked_list_hook.draw_ranked_list

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return draw(*args, **kwargs)

    monkeypatch.setattr(ranked_list_hook, 'draw_ranked_list', spy)
    return calls


def test_labels_show_pid_and_camera_and_the_first_match_beyond_topk(
        tmp_path, monkeypatch):
    """Issue 18.4: pid and camera on their own lines; a list without a
    positive in its top-k says at which rank the first one comes."""
    calls = spy_drawings(monkeypatch)
    hook = RankedListHook(num_queries=1, topk=2, tile_size=(32, 16))
    hook._collect([s.to_dict() for s in _samples(tmp_path)])
    pictures = hook.draw_group(hook._records, 'euclidean', False,
                               dict(junk_rule='market'))
    worst, best = calls
    # q1 (pid 1, x=21) ranks g2, g3, then its positive g1: not in the top 2.
    assert worst['note'] == 'first correct match at rank 3'
    # The 0-based camid, named so: a Market name's c1 is camid 0, and the
    # demo labels that file 'camid 0' too.
    assert worst['query_label'] == 'pid 1\ncamid 0'
    assert worst['gallery_labels'] == ['pid 2\ncamid 1', 'pid 3\ncamid 1']
    assert best['note'] is None  # q0's positive is first
    # rank line + two label lines + the note line under the tiles
    assert pictures[0][1].shape[0] == 32 + 4 * 12
    assert pictures[1][1].shape[0] == 32 + 3 * 12


@pytest.mark.parametrize('cmc_mode,where',
                         [('standard', ''),
                          ('dedup', ' of the full ranked list')])
def test_a_dedup_pictures_note_says_its_rank_is_a_full_list_rank(
        tmp_path, monkeypatch, cmc_mode, where):
    """Under cmc_mode='dedup' (SYSU-MM01's) the reported CMC counts each
    gallery identity once, while the note's rank is the position in the
    full list the picture shows: it says so, as the HTML report's lists
    do; a standard CMC's rank is that position, with no label. Both the
    hook's own ranking and the metric's analysis."""
    calls = spy_drawings(monkeypatch)
    hook = RankedListHook(num_queries=1, topk=2, tile_size=(32, 16))
    hook._collect([s.to_dict() for s in _samples(tmp_path)])
    hook.draw_group(hook._records, 'euclidean', False,
                    dict(junk_rule='market', cmc_mode=cmc_mode))
    # q1 (pid 1, x=21) ranks g2, g3, then its positive g1.
    assert calls[0]['note'] == f'first correct match at rank 3{where}'
    calls.clear()
    query = [r for r in hook._records if r['is_query']]
    gallery = [r for r in hook._records if not r['is_query']]
    analysis = SimpleNamespace(
        ap=np.array([1.0, 1 / 3, 1 / 2]),
        first_rank=np.array([1, 3, 2]),
        topk_index=np.array([[0, 1], [2, 3], [3, 2]]),
        topk_distance=np.array([[0.5, 9.5], [1.0, 9.0], [1.0, 9.0]]),
        cmc_mode=cmc_mode)
    hook.draw_analysis(analysis, query, gallery)
    assert calls[0]['note'] == f'first correct match at rank 3{where}'


def test_a_first_match_at_the_last_shown_rank_has_no_note(
        tmp_path, monkeypatch):
    """The note is for a list whose top k holds no positive: a positive at
    rank k is in the picture, so no note, in the hook's own ranking and in
    the metric's analysis."""
    calls = spy_drawings(monkeypatch)
    hook = RankedListHook(num_queries=1, topk=3, tile_size=(32, 16))
    hook._collect([s.to_dict() for s in _samples(tmp_path)])
    hook.draw_group(hook._records, 'euclidean', False,
                    dict(junk_rule='market'))
    # q1 (pid 1, x=21) ranks g2, g3, then its positive g1: rank 3 = k.
    assert [c['note'] for c in calls] == [None, None]
    calls.clear()
    query = [r for r in hook._records if r['is_query']]
    gallery = [r for r in hook._records if not r['is_query']]
    analysis = SimpleNamespace(
        ap=np.array([1.0, 1 / 3, 1 / 2]),
        first_rank=np.array([1, 3, 2]),
        topk_index=np.array([[0, 1, 2], [2, 3, 1], [3, 2, 1]]),
        topk_distance=np.array([[0.5, 9.5, 19.5], [1.0, 9.0, 11.0],
                                [1.0, 9.0, 19.0]]),
        cmc_mode='standard')
    hook.draw_analysis(analysis, query, gallery)
    assert [c['note'] for c in calls] == [None, None]


def test_the_hooks_ranking_takes_the_metrics_cmc_mode(tmp_path, monkeypatch):
    """The hook's own ranking takes the metric's rank rules, cmc_mode
    included: a dedup metric's pictures label the note's rank as a
    full-list rank."""
    calls = spy_drawings(monkeypatch)
    runner = _runner(tmp_path, ReIDMetric(cmc_mode='dedup'))
    hook = RankedListHook(num_queries=1, topk=2, tile_size=(32, 16))
    scorer, normalize, options = hook._ranking_setup(runner, 'test')
    assert options['cmc_mode'] == 'dedup'
    hook._collect([s.to_dict() for s in _samples(tmp_path)])
    hook.draw_group(hook._records, scorer, normalize, options)
    # q1 (pid 1, x=21) ranks g2, g3, then its positive g1.
    assert calls[0]['note'] == \
        'first correct match at rank 3 of the full ranked list'


def test_without_a_metric_the_pictures_use_the_market_rule(tmp_path):
    """An evaluator without a metric that states its rules: the pictures
    rank as the default protocol does, the Market rule (same pid and same
    camera removed, evaluation spec) with stable ties."""
    runner = _runner(tmp_path, None)
    runner.test_loop.evaluator.metrics = []
    _, _, options = RankedListHook()._ranking_setup(runner, 'test')
    assert options == dict(junk_rule='market', tie_policy='stable')


def test_removed_items_are_not_drawn_when_the_gallery_is_short(
        tmp_path, monkeypatch):
    """With fewer kept gallery items than ``topk`` the picture shows the
    kept ones only: the same-pid same-camera image (removed by the Market
    rule, though nearest) is never drawn as a match."""
    calls = spy_drawings(monkeypatch)
    hook = RankedListHook(num_queries=1, topk=5, tile_size=(32, 16))
    paths = _write_images(str(tmp_path), 5)
    # (x, pid, camid): the query, then the gallery by distance.
    items = [(0.0, 1, 0), (0.1, 1, 0), (0.5, 2, 1), (1.0, 1, 1), (2.0, 3, 1)]
    records = [
        dict(
            feature=torch.tensor([x]),
            pid=pid,
            camid=camid,
            is_query=i == 0,
            img_path=path)
        for i, ((x, pid, camid), path) in enumerate(zip(items, paths))
    ]
    hook.draw_group(records, 'euclidean', False, dict(junk_rule='market'))
    assert len(calls) == 2  # the one query's worst and best lists
    kept = ['pid 2\ncamid 1', 'pid 1\ncamid 1', 'pid 3\ncamid 1']
    assert all(call['gallery_labels'] == kept for call in calls)


def tied_samples(gen):
    """31 samples, 7 queries then 24 gallery items, with features of two
    levels per dimension: many exact distance ties."""
    samples = []
    for i in range(31):
        role = 'query' if i < 7 else 'gallery'
        samples.append(
            dict(
                pred_feature=torch.randint(0, 2, (3, ), generator=gen).float(),
                gt_label=int(torch.randint(0, 4, (), generator=gen)),
                camid=int(role == 'gallery'),
                role=role,
                sample_idx=i,
                dataset='d',
                img_path=f'{i}.jpg'))
    return samples


def test_gathered_records_come_back_in_dataset_order(monkeypatch):
    """Two ranks hold interleaved parts of the test set (mmengine's
    samplers deal index i to rank i % 2, padding the last one); the
    gathered records are in dataset order, each sample once, so ties
    break as the metric breaks them whatever the number of processes."""
    import mmreid.engine.hooks.ranked_list_hook as module
    from mmreid.evaluation.query_analysis import analyse_queries
    gen = torch.Generator().manual_seed(0)
    samples = tied_samples(gen)
    world = 2
    dealt = list(range(len(samples))) + [0]  # padded to a multiple of 2
    parts = []
    for rank in range(world):
        hook = RankedListHook()
        hook._collect([samples[i] for i in dealt[rank::world]])
        parts.append(hook._records)
    monkeypatch.setattr(module, 'get_world_size', lambda: world)
    monkeypatch.setattr(module, 'all_gather_object', lambda records: parts)
    hook = RankedListHook()
    records = hook._gather()
    assert [r['sample_idx'] for r in records] == list(range(len(samples)))

    def analysis(items):
        query = [r for r in items if r['is_query']]
        gallery = [r for r in items if not r['is_query']]
        return analyse_queries(
            torch.stack([r['feature'] for r in query]),
            torch.stack([r['feature'] for r in gallery]),
            [r['pid'] for r in query], [r['pid'] for r in gallery],
            [r['camid'] for r in query], [r['camid'] for r in gallery])

    metric = ReIDMetric()
    metric.process(None, samples)
    reported = metric.compute_metrics(metric.results)
    assert analysis(records).mAP == pytest.approx(reported['mAP'])
    # The rank-by-rank order would have broken the ties otherwise.
    by_rank = [r for part in parts for r in part][:len(samples)]
    assert analysis(by_rank).mAP != pytest.approx(reported['mAP'])


def test_one_process_records_of_a_shuffled_loader_come_in_dataset_order():
    """One process, a test loader with ``shuffle=True``: the metric ranks
    its records in dataset order (``sample_idx``), which breaks distance
    ties, but the hook kept the arrival order in one process (it sorted
    only records gathered from several), so its pictures and the report's
    lists broke the ties otherwise and, with many ties, scored another
    mAP than the metric printed."""
    from mmreid.evaluation.query_analysis import analyse_queries
    gen = torch.Generator().manual_seed(0)
    samples = tied_samples(gen)
    arrival = torch.randperm(len(samples), generator=gen).tolist()
    hook = RankedListHook()
    for start in range(0, len(arrival), 4):
        hook._collect([samples[i] for i in arrival[start:start + 4]])
    records = hook._gather()
    assert [r['sample_idx'] for r in records] == list(range(len(samples)))
    query = [r for r in records if r['is_query']]
    gallery = [r for r in records if not r['is_query']]
    drawn = analyse_queries(
        torch.stack([r['feature'] for r in query]),
        torch.stack([r['feature'] for r in gallery]),
        [r['pid'] for r in query], [r['pid'] for r in gallery],
        [r['camid'] for r in query], [r['camid'] for r in gallery])
    metric = ReIDMetric()
    metric.process(None, [samples[i] for i in arrival])
    assert drawn.mAP == pytest.approx(
        metric.compute_metrics(metric.results)['mAP'])


def test_a_float64_scorer_is_drawn_in_its_own_order(tmp_path, monkeypatch):
    """Distances 1e-9 apart are equal in float32: the drawn list follows
    the float64 order the AP was computed from, not a float32 tie."""
    calls = spy_drawings(monkeypatch)

    def scorer(query, gallery):
        row = torch.tensor([1.0, 1.0 - 1e-9, 5.0, 6.0], dtype=torch.float64)
        return row.expand(len(query), -1).clone()

    hook = RankedListHook(num_queries=1, topk=2, tile_size=(32, 16))
    hook._collect([s.to_dict() for s in _samples(tmp_path)])
    hook.draw_group(hook._records, scorer, False, dict(junk_rule='market'))
    # q1 (pid 1): g1 (pid 1) is 1e-9 closer than g0: AP 1, the best list.
    best = calls[1]
    assert best['gallery_labels'] == ['pid 1\ncamid 1', 'pid 0\ncamid 1']


def test_gathered_records_keep_each_target_of_one_dataset(monkeypatch):
    """A multi-target test may evaluate one dataset twice (two targets):
    the second target's records are its own, not the first's padding."""
    import mmreid.engine.hooks.ranked_list_hook as module
    parts = [[], []]
    for target in ('a', 'b'):
        samples = [
            dict(
                pred_feature=torch.ones(2),
                gt_label=i % 2,
                camid=0,
                role='query' if i == 0 else 'gallery',
                sample_idx=i,
                dataset='d',
                img_path=f'{i}.jpg') for i in range(5)
        ]
        dealt = list(range(5)) + [0]  # padded to a multiple of 2
        for rank in range(2):
            hook = RankedListHook()
            hook._target = target
            hook._collect([samples[i] for i in dealt[rank::2]])
            parts[rank] += hook._records
    monkeypatch.setattr(module, 'get_world_size', lambda: 2)
    monkeypatch.setattr(module, 'all_gather_object', lambda records: parts)
    records = RankedListHook()._gather()
    for target in ('a', 'b'):
        mine = [r['sample_idx'] for r in records if r['target'] == target]
        assert mine == [0, 1, 2, 3, 4], target


def test_hooks_of_one_test_merge_their_analysis_requests():
    """The report and the pictures of one test: the metric's analysis is
    long enough for both, whichever hook asks first."""
    from types import SimpleNamespace

    from mmreid.engine.hooks import EvalReportHook
    metric = ReIDMetric()
    runner = SimpleNamespace(
        test_loop=SimpleNamespace(evaluator=SimpleNamespace(metrics=[metric])))
    EvalReportHook(topk=5, max_rank=50).before_test_iter(runner, 0)
    RankedListHook(topk=8).before_test_iter(runner, 0)
    assert metric.analysis_request == dict(topk=8, max_rank=50)


def test_a_gallery_dependent_scorers_positions_are_not_drawn_as_distances(
        tmp_path, monkeypatch):
    """GMN's ``mnet_topk`` ranks with positions (0, 1, 2, ... in each
    query's ranking), which the pictures printed under each tile as its
    distance (``#2: 1``). For such a scorer the tiles show their rank
    only; a pair scorer's distances are still printed."""
    calls = spy_drawings(monkeypatch)

    def positions(query, gallery):
        # The rank of each gallery item by Euclidean distance.
        order = torch.cdist(query, gallery).argsort(dim=1, stable=True)
        return order.argsort(dim=1).float()

    hook = RankedListHook(num_queries=1, topk=3, tile_size=(32, 16))
    hook._collect([s.to_dict() for s in _samples(tmp_path)])
    hook.draw_group(hook._records, positions, False,
                    dict(junk_rule='market'))
    assert calls and all(c['distances'] is not None for c in calls)
    calls.clear()
    positions.gallery_dependent = True
    hook.draw_group(hook._records, positions, False,
                    dict(junk_rule='market'))
    assert calls and all(c['distances'] is None for c in calls)


def _records(tmp_path, items):
    """Hook records of ``(is_query, pid, camid, x)`` items, 1-D features,
    each with its own image."""
    paths = _write_images(str(tmp_path), len(items))
    return [
        dict(
            feature=torch.tensor([x]),
            pid=pid,
            camid=camid,
            is_query=is_query,
            img_path=path)
        for (is_query, pid, camid, x), path in zip(items, paths)
    ]


@pytest.mark.parametrize('negative_first', [False, True])
@pytest.mark.parametrize('tie_policy,matches,ap',
                         [('pessimistic', [False, True, False], 0.5),
                          ('optimistic', [True, False, False], 1.0)])
def test_tied_distances_are_drawn_in_the_order_their_ap_counts(
        tmp_path, monkeypatch, negative_first, tie_policy, matches, ap):
    """Audit s22: the pictures ordered tied distances by gallery index
    while the AP in their file name followed the metric's tie_policy, so
    a 'pessimistic' picture could show the match first and be titled AP
    1/2. Query pid 0 at 0; a positive and a negative tie at 1 (in either
    gallery order), another negative at 5. Pessimistic: the negative
    first (AP 1/2); optimistic: the positive first (AP 1)."""
    calls = spy_drawings(monkeypatch)
    tied = [(False, 0, 1, 1.0), (False, 5, 1, 1.0)]
    records = _records(tmp_path, [(True, 0, 0, 0.0)] +
                       tied[::-1 if negative_first else 1] +
                       [(False, 7, 1, 5.0)])
    hook = RankedListHook(num_queries=1, topk=3, tile_size=(32, 16))
    pictures = hook.draw_group(records, 'euclidean', False,
                               dict(junk_rule='market', tie_policy=tie_policy))
    titles = [title for title, _ in pictures]
    assert titles == [f'worst_00_ap{ap:.3f}_pid0', f'best_00_ap{ap:.3f}_pid0']
    assert [call['matches'] for call in calls] == [matches, matches]


def test_a_query_is_never_drawn_with_its_own_image(tmp_path, monkeypatch):
    """Audit s22: QMUL-iLIDS lists an image that is a query in one split
    and a gallery image in another once per role; ranked against the
    union, the query's own copy (other camid) came first at distance 0,
    drawn as its match with AP 1. No split ranks an image against
    itself: the query (pid 1 at 0) ranks pid 3 at 1, then its match at 2
    (AP 1/2)."""
    calls = spy_drawings(monkeypatch)
    records = _records(tmp_path, [(True, 1, 0, 0.0), (False, 1, 1, 0.0),
                                  (False, 3, 1, 1.0), (False, 1, 1, 2.0)])
    records[1]['img_path'] = records[0]['img_path']
    hook = RankedListHook(num_queries=1, topk=3, tile_size=(32, 16))
    pictures = hook.draw_group(records, 'euclidean', False,
                               dict(junk_rule='market'))
    titles = [title for title, _ in pictures]
    assert titles == ['worst_00_ap0.500_pid1', 'best_00_ap0.500_pid1']
    assert calls[0]['gallery_labels'] == ['pid 3\ncamid 1', 'pid 1\ncamid 1']
    assert calls[0]['distances'] == [1.0, 2.0]


def test_indoor_search_pictures_rank_the_indoor_gallery(tmp_path):
    """Audit s22: SYSUMetric(mode='indoor') ranks cams 1 and 2 of an
    all-search pool; the pictures ranked the whole pool. Query pid 1 at 0
    (cam6): its cam1 match at 1.0 is first among cams 1 and 2 (AP 1),
    third on the pool behind cam5 and cam4 images (AP 1/3)."""
    from mmreid.evaluation.metrics import SYSUMetric
    items = [(True, 1, 5, 0.0), (False, 1, 0, 1.0), (False, 2, 1, 2.0),
             (False, 2, 3, 0.5), (False, 3, 4, 0.2)]
    samples = []
    for i, record in enumerate(_records(tmp_path, items)):
        sample = ReIDDataSample(
            metainfo=dict(
                role='query' if record['is_query'] else 'gallery',
                camid=record['camid'],
                img_path=record['img_path'],
                dataset='toy',
                sample_idx=i))
        sample.set_gt_label(record['pid'])
        sample.pred_feature = record['feature']
        samples.append(sample)
    names = {}
    for mode in ('indoor', 'all'):
        runner = _runner(tmp_path / mode,
                         SYSUMetric(mode=mode, distance='euclidean'))
        hook = RankedListHook(num_queries=1, topk=4, tile_size=(32, 16))
        hook.before_test_epoch(runner)
        hook.before_test_iter(runner, 0)
        hook.after_test_iter(runner, 0, None, samples)
        hook.after_test_epoch(runner)
        out = tmp_path / mode / 'log' / 'ranked_lists'
        names[mode] = sorted(p.name for p in out.iterdir())
    assert names['indoor'] == [
        'best_00_ap1.000_pid1.jpg', 'worst_00_ap1.000_pid1.jpg'
    ]
    assert names['all'] == [
        'best_00_ap0.333_pid1.jpg', 'worst_00_ap0.333_pid1.jpg'
    ]


def test_pictures_and_report_of_one_test_default_to_two_folders(tmp_path):
    """``--show-ranked-lists`` and ``--report`` without folders in one
    test: each hook writes its own folder under the log dir, neither
    refused for the other's files."""
    from mmreid.engine.hooks import EvalReportHook
    runner = _fake_runner(tmp_path, [])
    samples = _samples(tmp_path)
    hooks = [
        RankedListHook(num_queries=1, topk=2, tile_size=(32, 16)),
        EvalReportHook(num_queries=1, topk=2, max_rank=4, thumb_size=(32, 16))
    ]
    for hook in hooks:
        hook.before_test_epoch(runner)
    for hook in hooks:
        hook.before_test_iter(runner, 0)
        hook.after_test_iter(runner, 0, None, samples)
    for hook in hooks:
        hook.after_test_epoch(runner, metrics={})
    log = tmp_path / 'log'
    folders = {
        name: sorted(os.listdir(log / name))
        for name in os.listdir(log)
    }
    assert sorted(folders.values()) == [
        ['best_00_ap1.000_pid0.jpg', 'worst_00_ap0.333_pid1.jpg'],
        ['per_query.npz', 'report.html'],
    ]


def test_two_targets_of_one_dataset_draw_with_their_own_metrics(tmp_path):
    """A multi-target test may evaluate one dataset twice, each target with
    its own metric: each target's pictures (named by the target) rank
    that target's samples with its metric's distance and normalisation.

    Target a (plain Euclidean) is ``_samples`` with g0 at (0, 1) instead
    of (0, 0) (a normalised distance refuses a zero feature): worst q1 (AP
    1/3), best q0 (AP 1). Target b L2-normalises first: every (x > 0, 0)
    becomes (1, 0) and g0 stays (0, 1), so q0 finds its positive g0 last
    (AP 1/4), q1 finds g1 first of three tied (stable order, AP 1)."""
    samples = _samples(tmp_path)
    samples[3].pred_feature = torch.tensor([0.0, 1.0])  # g0
    metrics = {
        'a': ReIDMetric(distance='euclidean'),
        'b': ReIDMetric(distance='euclidean', normalize=True)
    }
    runner = _runner(tmp_path, metrics['a'])
    loop = runner.test_loop
    hook = RankedListHook(num_queries=1, topk=2, tile_size=(32, 16))
    hook.before_test_epoch(runner)
    for target in ('a', 'b'):
        loop.current_target = target
        loop.evaluator = SimpleNamespace(metrics=[metrics[target]])
        hook.before_test_iter(runner, 0)
        hook.after_test_iter(runner, 0, None, samples)
    hook.after_test_epoch(runner)
    names = sorted(
        p.name for p in (tmp_path / 'log' / 'ranked_lists').iterdir())
    assert names == [
        'a_best_00_ap1.000_pid0.jpg', 'a_worst_00_ap0.333_pid1.jpg',
        'b_best_00_ap1.000_pid1.jpg', 'b_worst_00_ap0.250_pid0.jpg'
    ]


def test_the_pictures_take_the_metrics_ap_mode(tmp_path):
    """``ap_mode='threshold'`` scores a tied block as one threshold: a
    positive tied with a negative at rank 1 gives AP 1/2 whatever their
    order, the AP the metric reports; the picture's title says so, not
    the 1 of the cumulative AP with the positive first."""
    records = _records(tmp_path, [(True, 0, 0, 0.0), (False, 0, 1, 1.0),
                                  (False, 5, 1, 1.0), (False, 7, 1, 5.0)])
    hook = RankedListHook(num_queries=1, topk=3, tile_size=(32, 16))
    titles = {}
    for ap_mode in ('cumsum', 'threshold'):
        runner = _runner(tmp_path, ReIDMetric(ap_mode=ap_mode))
        scorer, normalize, options = hook._ranking_setup(runner, 'test')
        pictures = hook.draw_group(records, scorer, normalize, options)
        titles[ap_mode] = [title for title, _ in pictures]
    assert titles == {
        'cumsum': ['worst_00_ap1.000_pid0', 'best_00_ap1.000_pid0'],
        'threshold': ['worst_00_ap0.500_pid0', 'best_00_ap0.500_pid0']
    }


def test_validation_pictures_go_to_the_backends_at_their_epoch(tmp_path):
    """The pictures of a validation reach the visualizer's backends at the
    step of that epoch, so that two epochs' lists are told apart."""
    steps = []
    runner = _fake_runner(tmp_path, [])
    runner.visualizer = SimpleNamespace(
        add_image=lambda name, image, step=0: steps.append((name, step)))
    hook = RankedListHook(
        num_queries=1, topk=2, tile_size=(32, 16), phases=('val', ))
    validate(hook, runner, _samples(tmp_path), 4)
    assert sorted(steps) == [('ranked_list_best_00_ap1.000_pid0', 4),
                             ('ranked_list_worst_00_ap0.333_pid1', 4)]


def test_select_worst_best_keeps_query_order_among_many_ties():
    """Ties keep query order however many queries tie (a default numpy
    sort keeps it only for short arrays): the drawn worst and best lists
    of a run with many equal APs do not depend on the sort algorithm."""
    ap = np.tile([0.5, 0.2, 0.9, 0.2], 10)
    low = list(range(1, 40, 2))  # AP 0.2, in query order
    mid, high = list(range(0, 40, 4)), list(range(2, 40, 4))
    worst, best = select_worst_best(ap, 40)
    assert worst.tolist() == low + mid + high
    assert best.tolist() == high + mid + low
