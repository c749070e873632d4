"""The model's own distance reaches every metric through the loops.

The reference numbers are computed here from the definition: the M-Net
module itself (not its folded, decomposed test-time form) scores every
query-gallery pair ``(q - g) ** 2`` and the distance is ``-z``.
"""
import collections
import contextlib
import copy
import json
import os.path as osp
import sys

import mmcv
import numpy as np
import pytest
import torch
from mmengine.evaluator import BaseMetric, Evaluator
from mmengine.runner import Runner

from mmreid.engine.runner import (MultiTargetTestLoop, ReIDTestLoop,
                                  hand_model_scorers)
from mmreid.evaluation import ReIDMetric
from mmreid.evaluation.functional import evaluate_rank
from mmreid.registry import METRICS
from mmreid.utils.config import load_config
from ..fixtures.processes import run_tool

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))

# A user's copy of the GMN quick-start config: the hooks list of a BoT
# config (none of its own) replaces GMN's (mmengine replaces lists whole),
# a tiny model and a tiny held-out domain.
USER_CONFIG = '''
_base_ = '{repo}/configs/gmn/gmn_r18_synthreid.py'
custom_hooks = []
synth = dict(type='SynthReID', data_root='{root}', num_domains=3,
             size='tiny', seed=0, img_size=(32, 16))
test_dataloader = dict(
    batch_size=8, num_workers=0, persistent_workers=False,
    dataset=dict(synth, domain=2, split='test',
                 pipeline=[dict(type='ReIDLoadImageFromFile'),
                           dict(type='ReIDResize', size=(32, 16)),
                           dict(type='PackReIDInputs')]))
model = dict(
    backbone=dict(base_channels=8, stem_channels=8),
    head=dict(in_channels=64, mnet=dict(hidden_channels=32)))
randomness = dict(seed=0)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
'''


@pytest.fixture(scope='module')
def user_config(tmp_path_factory):
    folder = tmp_path_factory.mktemp('gmn_user_config')
    path = folder / 'my_gmn.py'
    path.write_text(
        USER_CONFIG.format(repo=REPO, root=str(folder / 'synthreid')))
    return str(path)


def mnet_reference(model, dataloader):
    """mAP (percent) of the M-Net and of the Euclidean distance, from the
    features the model predicts and the M-Net module as defined."""
    model.eval()
    feats, pids, camids, is_query = [], [], [], []
    with torch.no_grad():
        for batch in dataloader:
            data = model.data_preprocessor(batch, False)
            for sample in model(**data, mode='predict'):
                feats.append(sample.pred_feature)
                pids.append(int(sample.gt_label))
                camids.append(int(sample.camid))
                is_query.append(sample.role == 'query')
        feats = torch.stack(feats).float()
        pids, camids = torch.tensor(pids), torch.tensor(camids)
        q = torch.tensor(is_query)
        query, gallery = feats[q], feats[~q]
        pair_feats = (query[:, None] - gallery[None]).pow(2)
        z = model.head.mnet(pair_feats.flatten(0, 1)).view(
            len(query), len(gallery))
    labels = (pids[q], pids[~q], camids[q], camids[~q])
    mnet = evaluate_rank(-z, *labels).mAP * 100
    euclid = evaluate_rank(torch.cdist(query, gallery), *labels).mAP * 100
    return mnet, euclid


@pytest.fixture(scope='module')
def tested(user_config, tmp_path_factory):
    """Run the user's config as tools/test.py would (random weights)."""
    work_dir = str(tmp_path_factory.mktemp('gmn_test_run'))
    cfg = load_config(user_config, work_dir=work_dir, phase='test')
    runner = Runner.from_cfg(cfg)
    metrics = runner.test()
    return runner, metrics


def test_replaced_hooks_still_report_the_mnet(tested):
    """No config line is needed: the loop hands the M-Net to the metric."""
    runner, metrics = tested
    assert isinstance(runner.test_loop, ReIDTestLoop)
    mnet, euclid = mnet_reference(runner.model, runner.test_dataloader)
    # The data tells the two distances apart, so the check means something.
    assert abs(mnet - euclid) > 1.0
    assert metrics['reid/mAP'] == pytest.approx(mnet, abs=1e-4)
    assert metrics['reid/mnet/mAP'] == pytest.approx(mnet, abs=1e-4)
    assert metrics['reid/euclid/mAP'] == pytest.approx(euclid, abs=1e-4)


def test_mmengine_loop_refuses_a_model_with_its_own_distance(
        user_config, tmp_path):
    """mmengine's TestLoop cannot hand the M-Net over: an error, not a
    Euclidean number."""
    cfg = load_config(
        user_config,
        phase='test',
        cfg_options=dict(test_cfg=dict(type='TestLoop')),
        work_dir=str(tmp_path))
    runner = Runner.from_cfg(cfg)
    with pytest.raises(RuntimeError, match='ReIDTestLoop'):
        runner.test()


class NoScorerMetric(BaseMetric):
    """A metric that has no ``set_scorers``."""

    def process(self, data_batch, data_samples):
        pass

    def compute_metrics(self, results):
        return {}


def test_a_metric_that_cannot_take_the_scorers_is_an_error(tested):
    runner, _ = tested
    with pytest.raises(TypeError, match='NoScorerMetric cannot take'):
        hand_model_scorers(runner.model, Evaluator([NoScorerMetric()]), 'test')
    # A model without its own distance resets stale scorers.
    plain = torch.nn.Linear(2, 2)
    metric = ReIDMetric()
    metric.set_scorers({'x': lambda q, g: torch.cdist(q, g)})
    assert hand_model_scorers(plain, Evaluator([metric]), 'test') is None
    assert metric.scorers == {}


def test_multi_target_loop_hands_the_mnet_to_every_target(tested, tmp_path):
    runner, metrics = tested
    target = dict(
        name='d2',
        dataloader=runner.cfg.test_dataloader,
        evaluator=dict(type='ReIDMetric'))
    loop = MultiTargetTestLoop(
        runner, targets=[target, dict(target, name='again')])
    multi = loop.run()
    mnet, euclid = mnet_reference(runner.model, runner.test_dataloader)
    for name in ('d2', 'again'):
        assert multi[f'{name}/mAP'] == pytest.approx(mnet, abs=1e-4)
        assert multi[f'{name}/euclid/mAP'] == pytest.approx(euclid, abs=1e-4)


def count_scorer_calls(runner):
    """Count the query rows each of the model's scorers gets."""
    scored = collections.Counter()
    own_scorers = runner.model.scorers

    def counting_scorers():
        out = {}
        for name, scorer in own_scorers().items():

            def counted(query, gallery, name=name, scorer=scorer):
                scored[name] += len(query)
                return scorer(query, gallery)

            out[name] = counted
        return out

    runner.model.scorers = counting_scorers
    return scored


def test_the_report_ranks_with_the_metrics_mnet_scores_not_its_own(
        user_config, tmp_path):
    """EvalReportHook takes the metric's own whole-gallery analysis: the
    M-Net scores each query once in a test with a report, not twice, and
    the report's per-query APs are the M-Net's."""
    cfg = load_config(
        user_config,
        phase='test',
        cfg_options=dict(custom_hooks=[
            dict(type='EvalReportHook', out_dir=str(tmp_path / 'report'))
        ]),
        work_dir=str(tmp_path))
    runner = Runner.from_cfg(cfg)
    scored = count_scorer_calls(runner)
    metrics = runner.test()
    num_query = metrics['reid/num_query']
    assert scored == {'mnet': num_query, 'euclid': num_query,
                      'fused': num_query}
    mnet, euclid = mnet_reference(runner.model, runner.test_dataloader)
    assert abs(mnet - euclid) > 1.0
    with np.load(tmp_path / 'report' / 'per_query.npz') as arrays:
        (ap_key, ) = [k for k in arrays.files if k.endswith('/ap')]
        ap = arrays[ap_key]
    assert 100 * np.nanmean(ap) == pytest.approx(mnet, abs=1e-4)
    page = (tmp_path / 'report' / 'report.html').read_text()
    assert f'reid/mAP {metrics["reid/mAP"]:.2f} as reported.' in page


def test_ranked_lists_draw_from_the_metrics_mnet_ranking(
        user_config, tmp_path, monkeypatch):
    """RankedListHook (tools/test.py --show-ranked-lists) takes the
    metric's analysis too: the M-Net scores each query once, not twice
    (it ranked every query again), and the pictures are the ones the
    hook's own ranking draws."""
    from mmreid.engine.hooks import RankedListHook

    def test_with_pictures(out, report=False):
        hooks = [dict(type='RankedListHook', out_dir=str(out), num_queries=3)]
        if report:
            hooks.append(
                dict(type='EvalReportHook', out_dir=str(out / 'report')))
        cfg = load_config(
            user_config,
            phase='test',
            cfg_options=dict(custom_hooks=hooks),
            work_dir=str(tmp_path))
        runner = Runner.from_cfg(cfg)
        scored = count_scorer_calls(runner)
        metrics = runner.test()
        pictures = {
            p.name: mmcv.imread(str(p))
            for p in sorted(out.glob('*.jpg'))
        }
        return metrics['reid/num_query'], scored, pictures

    num_query, scored, reused = test_with_pictures(tmp_path / 'reused')
    assert scored == {'mnet': num_query, 'euclid': num_query,
                      'fused': num_query}
    assert len(reused) == 6
    # With the report as well (its analysis is longer): still once.
    _, scored, both = test_with_pictures(tmp_path / 'both', report=True)
    assert scored == {'mnet': num_query, 'euclid': num_query,
                      'fused': num_query}
    assert list(both) == list(reused)
    assert (tmp_path / 'both' / 'report' / 'report.html').is_file()
    # The hook's own ranking (as before, and for trial protocols).
    monkeypatch.setattr(RankedListHook, '_metric_analysis',
                        lambda self, *args: None)
    _, scored, own = test_with_pictures(tmp_path / 'own')
    assert scored['mnet'] >= 2 * num_query  # + the drawn queries again
    assert list(own) == list(reused)
    for name in own:
        assert np.array_equal(own[name], reused[name]), name


def test_tools_test_and_distributed_test_report_the_mnet(
        tested, user_config, tmp_path):
    """tools/test.py and tools/dist_test.sh (2 CPU processes) take the
    same path: the M-Net mAP of the checkpoint, not the Euclidean one."""
    runner, _ = tested
    ckpt = str(tmp_path / 'gmn.pth')
    torch.save(dict(state_dict=runner.model.state_dict(), meta=dict()), ckpt)
    # An odd number of test images makes the distributed sampler pad the
    # last batch; the padded sample must not be counted twice.
    num_test = len(runner.test_dataloader.dataset)
    num_test -= 1 - num_test % 2
    loader_cfg = copy.deepcopy(runner.cfg.test_dataloader)
    loader_cfg.dataset.indices = num_test
    mnet, euclid = mnet_reference(runner.model,
                                  Runner.build_dataloader(loader_cfg))
    assert abs(mnet - euclid) > 1.0
    commands = dict(
        single=[sys.executable, 'tools/test.py', user_config, ckpt],
        dist=['bash', 'tools/dist_test.sh', user_config, ckpt, '2'])
    per_query = dict()
    for name, command in commands.items():
        out = str(tmp_path / f'{name}.json')
        report = tmp_path / f'report_{name}'
        log = run_tool(
            command + [
                '--work-dir',
                str(tmp_path / name), '--out', out, '--report',
                str(report), '--cfg-options',
                f'test_dataloader.dataset.indices={num_test}'
            ],
            env=dict(OMP_NUM_THREADS='1'),
            port_env='PORT')
        with open(out) as f:
            metrics = json.load(f)
        assert metrics['reid/mAP'] == pytest.approx(mnet, abs=1e-4), name
        assert metrics['reid/euclid/mAP'] == pytest.approx(
            euclid, abs=1e-4), name
        # The report takes the metric's analysis, also when the ranks
        # collect their samples in another order than the metric's.
        assert 'ranking the samples again' not in log, name
        with np.load(report / 'per_query.npz') as arrays:
            (prefix, ) = {k.split('/')[0] for k in arrays.files}
            per_query[name] = dict(
                zip(arrays[f'{prefix}/img_path'], arrays[f'{prefix}/ap']))
        assert len(per_query[name]) == metrics['reid/num_query'], name
        assert 100 * np.nanmean(list(per_query[name].values())) == \
            pytest.approx(mnet, abs=1e-4), name
    assert per_query['single'].keys() == per_query['dist'].keys()
    for path, ap in per_query['single'].items():
        np.testing.assert_allclose(
            per_query['dist'][path], ap, rtol=1e-6, err_msg=path)


@pytest.mark.parametrize('evaluator,agrees', [
    (dict(type='ReIDMetric', distance='euclidean'), False),
    (dict(type='ReIDMetric', distance='cosine'), True),
    # Euclidean on L2-normalised features ranks as cosine does.
    (dict(type='ReIDMetric', distance='euclidean', normalize=True), True),
])
def test_a_model_distance_the_metric_ignores_is_refused(
        make_config, tmp_path, monkeypatch, evaluator, agrees):
    """model.distance='cosine' with a Euclidean evaluator printed the
    Euclidean R1 (rank_gallery ranked by cosine): refused before any
    feature is extracted, in the single- and the multi-target loop."""
    from mmreid.models import ReIDModel
    config = make_config()
    extracted = []
    predict = ReIDModel.predict
    monkeypatch.setattr(
        ReIDModel, 'predict',
        lambda self, *a, **k: extracted.append(1) or predict(self, *a, **k))
    options = {
        'model.distance': 'cosine',
        'test_evaluator': dict(evaluator, _delete_=True)
    }
    single = load_config(
        config, cfg_options=options, work_dir=str(tmp_path / 'single'))
    target = dict(
        name='d2', dataloader=single.test_dataloader, evaluator=evaluator)
    multi = load_config(
        config,
        cfg_options=dict(
            options,
            test_cfg=dict(type='MultiTargetTestLoop', targets=[target])),
        work_dir=str(tmp_path / 'multi'))
    # The multi-target loop's placeholders (it refuses what they hold).
    multi.test_dataloader = dict()
    multi.test_evaluator = dict()
    for cfg in (single, multi):
        runner = Runner.from_cfg(cfg)
        assert runner.model.distance_type == 'cosine'
        if agrees:
            assert 'R1' in ' '.join(runner.test())
            continue
        with pytest.raises(ValueError) as info:
            runner.test()
        assert "model.distance='cosine'" in str(info.value)
        assert "distance='euclidean', normalize=False" in str(info.value)
        assert extracted == []


@pytest.mark.parametrize('loop', ['ValLoop', 'TestLoop'])
def test_mmengine_loop_refuses_a_cosine_model(make_config, tmp_path, loop):
    """mmengine's plain loops skip check_model_distance: with a Euclidean
    metric, model.distance='cosine' printed the Euclidean mAP (another
    number than rank_gallery's). Refused at the first step; with
    mmreid's loop the same config reports the cosine mAP."""
    from mmreid.models import ReIDModel
    phase = 'val' if loop == 'ValLoop' else 'test'
    # The config's test_evaluator is a copy of val_evaluator: an option
    # on val_evaluator alone is refused, both are set.
    options = {
        'model.distance': 'cosine',
        'val_evaluator': dict(type='ReIDMetric', _delete_=True),
        'test_evaluator': dict(type='ReIDMetric', _delete_=True),
        f'{phase}_cfg': dict(type=loop)
    }
    cfg = load_config(
        make_config(), cfg_options=options, work_dir=str(tmp_path / 'a'))
    runner = Runner.from_cfg(cfg)
    assert isinstance(runner.model, ReIDModel)
    with pytest.raises(RuntimeError, match=rf"{phase}_step ran in a loop "
                       r"that does not check .*model.distance='cosine'"):
        getattr(runner, phase)()
    # mmreid's loop runs the same model with a metric that agrees.
    options[f'{phase}_cfg'] = dict(type=f'ReID{loop}')
    for key in ('val_evaluator', 'test_evaluator'):
        options[key] = dict(
            type='ReIDMetric', distance='cosine', _delete_=True)
    cfg = load_config(
        make_config(), cfg_options=options, work_dir=str(tmp_path / 'b'))
    runner = Runner.from_cfg(cfg)
    assert 'mAP' in ' '.join(getattr(runner, phase)())


def refused_before_extraction(user_config, tmp_path, option, error,
                              options=None):
    """Test ``user_config`` with the metric ``option`` in the single- and
    (as a second target) the multi-target loop: each refuses it with
    ``error`` before any ``test_step``.

    Returns:
        list[tuple[str, str, Runner]]: ``(consumer, message, runner)`` per
        loop, for the caller's checks of the message.
    """
    options = options or {}
    single = load_config(
        user_config,
        phase='test',
        cfg_options=dict(options, test_evaluator=dict(option, _delete_=True)),
        work_dir=str(tmp_path / 'single'))
    target = dict(
        name='d2',
        dataloader=single.test_dataloader,
        evaluator=dict(type='ReIDMetric'))
    multi = load_config(
        user_config,
        phase='test',
        cfg_options=dict(
            options,
            test_cfg=dict(
                type='MultiTargetTestLoop',
                targets=[target, dict(target, name='bad', evaluator=option)
                         ])),
        work_dir=str(tmp_path / 'multi'))
    # The multi-target loop's placeholders (it refuses what they hold).
    multi.test_dataloader = dict()
    multi.test_evaluator = dict()
    found = []
    for cfg, consumer in ((single, 'ReIDTestLoop'),
                          (multi, 'MultiTargetTestLoop (bad)')):
        runner = Runner.from_cfg(cfg)
        steps = []
        test_step = runner.model.test_step
        runner.model.test_step = lambda data: steps.append(1) or test_step(
            data)
        with pytest.raises(error) as info:
            runner.test()
        assert steps == []
        found.append((consumer, str(info.value), runner))
    return found


@pytest.mark.parametrize('option,model_cfg,message', [
    (dict(normalize=True), {}, 'ReIDMetric(normalize=True)'),
    # Was accepted with an INFO line and ignored (user audit 2, finding 4).
    (dict(distance='cosine'), {},
     "ReIDMetric(distance='cosine') would be ignored: the model ranks with "
     "its own distance (modes ['mnet', "),
    # The metric's default written out was ignored silently: reid/mAP was
    # the M-Net's under a config that says Euclidean (audit s22).
    (dict(distance='euclidean'), {},
     "ReIDMetric(distance='euclidean') would be ignored: the model ranks "
     "with its own distance (modes ['mnet', "),
    (dict(rerank=dict()), {}, 'ReIDMetric(rerank=...)'),
    (dict(query_expansion=dict()), {}, 'ReIDMetric(query_expansion=...)'),
    (dict(verification_fprs=(0.1, )), dict(mnet_topk=3),
     "but scorer 'mnet_top3' is gallery-dependent"),
    (dict(type='CUHK03ClassicMetric'), dict(mnet_topk=3),
     "CUHK03ClassicMetric ranks each sampled sub-gallery"),
])
def test_a_metric_option_the_model_distance_refuses_is_refused_first(
        user_config, tmp_path, option, model_cfg, message):
    """GMN with ReIDMetric(normalize/rerank/query_expansion) or with
    verification_fprs and a top-k M-Net was refused in compute_metrics,
    after every target was extracted (in training: after the first
    epoch). Now before any test_step, in the single- and the multi-target
    loop."""
    option = dict(dict(type='ReIDMetric'), **option)
    options = {'model.test_cfg': model_cfg} if model_cfg else {}
    for consumer, text, _ in refused_before_extraction(
            user_config, tmp_path, option, ValueError, options):
        assert text.startswith(f'{consumer}: ')
        assert message in text


def test_a_metric_that_cannot_take_the_scorers_is_refused_first(
        user_config, tmp_path):
    """A metric without set_scorers on GMN was refused by
    hand_model_scorers, after the whole test set was extracted. Now before
    any test_step, with the same message, in the single- and the
    multi-target loop."""
    METRICS.register_module(name='NoScorerMetric', module=NoScorerMetric)
    try:
        for consumer, text, runner in refused_before_extraction(
                user_config, tmp_path, dict(type='NoScorerMetric'),
                TypeError):
            modes = list(runner.model.scorers())
            assert modes[0] == 'mnet'
            assert text == (
                f'{consumer}: NoScorerMetric cannot take the distance of '
                f'GMNReID (modes {modes}): a metric that '
                'evaluates a model with its own distance needs '
                'set_scorers(scorers, primary), as ReIDMetric has; '
                'without it, it would rank with another distance')
    finally:
        METRICS._module_dict.pop('NoScorerMetric')


@pytest.mark.parametrize('distance,normalize,agrees', [
    ('cosine', False, False),
    ('euclidean', True, False),
    ('euclidean', False, True),
    ('sqeuclidean', False, True),
])
def test_a_squared_euclidean_model_ranks_as_raw_euclidean(
        distance, normalize, agrees):
    """model.distance='sqeuclidean' ranks as Euclidean on raw features (a
    monotone function of it): a metric ranking by cosine would print
    another R1 than rank_gallery's, so it is refused; a raw Euclidean one
    agrees."""
    from types import SimpleNamespace

    from mmreid.engine.runner.reid_loops import check_model_distance
    model = SimpleNamespace(distance_type='sqeuclidean')
    evaluator = Evaluator([ReIDMetric(distance=distance, normalize=normalize)])
    if agrees:
        check_model_distance(model, evaluator, 'ReIDTestLoop')
        return
    with pytest.raises(
            ValueError,
            match=rf"^ReIDTestLoop: model.distance='sqeuclidean' but "
            rf"ReIDMetric\(distance='{distance}', normalize={normalize}\) "
            'ranks by cosine distance'):
        check_model_distance(model, evaluator, 'ReIDTestLoop')


class _Stop(Exception):
    pass


def test_validation_scores_rank0s_buffers(monkeypatch):
    """mmreid trains with broadcast_buffers=False: each rank has its own
    BN statistics, so validation takes rank 0's (the checkpointed model)
    on every rank, with several processes only."""
    from types import SimpleNamespace

    import mmengine.dist

    from mmreid.engine.runner import ReIDValLoop, reid_loops
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    sent = []
    monkeypatch.setattr(mmengine.dist, 'broadcast',
                        lambda tensor, src: sent.append((tensor, src)))
    monkeypatch.setattr(mmengine.dist, 'get_world_size', lambda: 1)
    assert not reid_loops.share_rank0_buffers(model) and sent == []
    monkeypatch.setattr(mmengine.dist, 'get_world_size', lambda: 2)
    assert reid_loops.share_rank0_buffers(model)
    buffers = list(model.buffers())
    assert len(sent) == len(buffers) == 3
    assert all(t is b and src == 0 for (t, src), b in zip(sent, buffers))
    # The validation loop shares them before any feature is extracted,
    # after the before_val(_epoch) hooks (EMAHook swaps its averages in).
    shared, hooks = [], []

    def share(shared_model):
        shared.append((shared_model, list(hooks)))
        raise _Stop

    monkeypatch.setattr(reid_loops, 'share_rank0_buffers', share)
    for name in ('check_not_empty', 'check_model_distance',
                 'check_identity_split', 'check_tracked_statistics',
                 'check_trial_galleries'):
        monkeypatch.setattr(reid_loops, name, lambda *args: None)
    monkeypatch.setattr(reid_loops, 'scorers_handed_by',
                        lambda *args: contextlib.nullcontext())
    loop = ReIDValLoop.__new__(ReIDValLoop)
    loop._runner = SimpleNamespace(model=model, call_hook=hooks.append)
    loop.dataloader = SimpleNamespace(dataset=[0])
    loop.evaluator = None
    with pytest.raises(_Stop):
        loop.run()
    assert shared == [(model, ['before_val', 'before_val_epoch'])]
