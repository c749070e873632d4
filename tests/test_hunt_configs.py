"""The shipped configs against their READMEs and specs, read as
``tools/train.py`` reads them (:func:`mmreid.utils.config.load_config`).

Each expected value is the definition of the spec or README the config
claims to follow (``/work/shared/specs/*.md``, ``configs/*/README.md``),
computed here, never read back from mmreid's code.
"""
import os.path as osp

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import PARAM_SCHEDULERS

from mmreid.utils.config import load_config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


def _config(name):
    """The absolute path of a config under ``configs/``."""
    return osp.join(REPO, 'configs', name)


def _at(cfg, dotted):
    """The value of a merged config at a dotted key, list indices too."""
    value = cfg
    for part in dotted.split('.'):
        value = value[int(part)] if isinstance(value, (list, tuple)) \
            else value[part]
    return value


def _data_roots(value, found=None):
    """Every ``data_root`` of a config section, nested datasets too."""
    found = [] if found is None else found
    if isinstance(value, dict):
        for key, item in value.items():
            if key == 'data_root':
                found.append(item)
            else:
                _data_roots(item, found)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _data_roots(item, found)
    return found


# A sweep leaf sets the key its parent built from a variable; the variable
# is still a top-level key of the merged config, holding the parent's
# value.
_OVERRIDDEN_VARIABLES = [
    # GMN's lambda sweep: the leaf sets model.head.pic.weight = 100.0 and
    # the base's pic_weight stays 10.0.
    ('gmn/gmn_r18_synthreid-v2_pic-w100.py', 'pic_weight', 30.0,
     'model.head.pic.weight'),
    # Baseline-A-IN: the leaf lists its plugin stages, the base's
    # snr_stages stays (True, True, True, True).
    ('snr/baseline-a-in_r18_synthreid.py', 'snr_stages',
     (False, True, True, True), 'model.backbone.plugins.0.stages'),
]


@pytest.mark.parametrize('name,variable,new,key', _OVERRIDDEN_VARIABLES)
def test_option_on_a_variable_its_leaf_overrode_acts_or_is_refused(
        name, variable, new, key):
    """``--cfg-options pic_weight=30`` on the lambda-100 sweep config.

    The user: ``tools/train.py configs/gmn/gmn_r18_synthreid-v2_pic-w100.py
    --cfg-options pic_weight=30`` (``pic_weight`` is the variable the GMN
    model base names lambda with, and the GMN README says to "set
    ``pic_weight``"), or ``snr_stages=...`` on Baseline-A-IN. They get a
    run that trains with lambda = 100 (IN after stages 1-3) and prints its
    numbers as those of the option's value: the option is merged into a
    top-level variable nothing reads any more.

    Right: mmreid's promise, kept for every other substituted variable
    (``--cfg-options pic_weight=...`` on the lambda-10 config is refused,
    naming ``model.head.pic.weight``): an option that would change
    nothing is refused, or it acts. Either the load raises, or the key
    the run reads holds the new value.
    """
    try:
        cfg = load_config(_config(name), {variable: new})
    except ValueError as error:
        assert variable in str(error)
        return
    assert _at(cfg, key) == new, (
        f'--cfg-options {variable}={new!r} on {name} was accepted, but '
        f'{key} (what the run reads) is {_at(cfg, key)!r}')


@pytest.mark.parametrize('name', [
    'gmn/gmn_r50_1xb64-60e_m-ms-cs-to-c3.py',
    'gmn/baseline_r50_1xb64-60e_ms-cs-c3-to-m_p3.py',
])
def test_leave_one_out_data_root_option_acts_or_is_refused(name):
    """``--cfg-options data_root=/datasets/`` on a leave-one-out config.

    The GMN README describes the dataset bases ``dg_loo_*.py`` as "one
    ``data_root``, per-dataset roots below it", so a user whose datasets
    live elsewhere sets ``data_root``. The option is accepted and every
    source and the target still read ``data/...``: with a copy there
    (another CUHK03-NP variant, an older MSMT17) the run trains and tests
    on it and prints its numbers as those of ``/datasets/``.

    Right: every dataset of the run under the new root, or a refusal
    naming the keys to set (as ``data_root`` of ``market1501.py`` is
    refused).
    """
    new = '/datasets/'
    try:
        cfg = load_config(_config(name), {'data_root': new})
    except ValueError as error:
        assert 'data_root' in str(error)
        return
    roots = _data_roots([
        cfg.train_dataloader, cfg.val_dataloader, cfg.test_dataloader
    ])
    assert roots
    stale = [root for root in roots if not root.startswith(new)]
    assert not stale, (
        f'--cfg-options data_root={new!r} on {name} was accepted, but '
        f'these datasets still read {stale}')


def _lr_per_epoch(cfg, epochs, epoch_length=3):
    """The learning rate of every parameter group at the first iteration
    of each epoch, stepped as mmengine's ``ParamSchedulerHook`` steps them
    (iteration schedulers after each iteration, epoch schedulers after
    each epoch).

    Args:
        cfg (Config): A merged config (``optim_wrapper``,
            ``param_scheduler``).
        epochs (int): How many epochs to run.
        epoch_length (int): Iterations per epoch.

    Returns:
        dict: ``group name -> [lr at epoch 0, 1, ...]``.
    """
    model = torch.nn.Module()
    model.backbone = torch.nn.Linear(2, 2)
    model.head = torch.nn.Module()
    model.head.bnneck = torch.nn.BatchNorm1d(2)
    model.head.classifier = torch.nn.Linear(2, 2, bias=False)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    optimizer = wrapper.optimizer
    names = {id(p): n for n, p in model.named_parameters()}
    groups = [names[id(g['params'][0])] for g in optimizer.param_groups]
    iter_based, epoch_based = [], []
    for scheduler in cfg.param_scheduler:
        scheduler = dict(scheduler)
        kind = PARAM_SCHEDULERS.get(scheduler.pop('type'))
        if scheduler.pop('convert_to_iter_based', False):
            iter_based.append(
                kind.build_iter_from_epoch(
                    optimizer, epoch_length=epoch_length, **scheduler))
        elif scheduler.get('by_epoch', True):
            epoch_based.append(kind(optimizer, **scheduler))
        else:
            iter_based.append(kind(optimizer, **scheduler))
    lrs = {name: [] for name in groups}
    for _ in range(epochs):
        for name, group in zip(groups, optimizer.param_groups):
            lrs[name].append(group['lr'])
        for _ in range(epoch_length):
            optimizer.step()
            for scheduler in iter_based:
                scheduler.step()
        for scheduler in epoch_based:
            scheduler.step()
    return lrs


@pytest.mark.parametrize('name', [
    'mbn/agw_r50_1xb64-81e_sysu-mm01-all.py',
    'mbn/mbn-agw_r50_1xb64-81e_regdb-v2t.py',
])
def test_agw_schedule_is_the_references_epoch_by_epoch(name):
    """The AGW configs train with the reference's learning rates.

    Spec ``mbn_vireid.md`` section 3.3 (AGW ``train.py`` ``adjust_learning
    _rate``): lr 0.1 for the BNNeck and classifier, 0.01 for the rest;
    epochs 0-9 ``lr * (e + 1) / 10``, 10-19 ``lr``, 20-49 ``0.1 lr``, from
    50 ``0.01 lr``; 81 epochs. Computed here from that definition and
    compared with the rate each parameter group has in every epoch.
    """
    cfg = load_config(_config(name))
    assert cfg.train_cfg.max_epochs == 81

    def reference(base, epoch):
        if epoch < 10:
            return base * (epoch + 1) / 10
        if epoch < 20:
            return base
        if epoch < 50:
            return base * 0.1
        return base * 0.01

    lrs = _lr_per_epoch(cfg, 81)
    for group, got in lrs.items():
        base = 0.1 if group.startswith(('head.bnneck',
                                        'head.classifier')) else 0.01
        want = [reference(base, e) for e in range(81)]
        assert got == pytest.approx(want, rel=1e-9), group


@pytest.mark.parametrize('name,milestones,epochs', [
    ('snr/snr_r50_1xb64-120e_market1501-to-dukemtmc.py', (40, 70), 120),
    ('snr/baseline_r50_1xb64-120e_dukemtmc-to-market1501.py', (40, 70),
     120),
    ('snr/snr_r50_1xb64-120e_dimn-protocol.py', (40, 70), 120),
    ('baseline/bot_r50_1xb64-120e_market1501.py', (40, 70), 120),
    ('gmn/gmn_r50_1xb64-60e_ms-cs-c3-to-m.py', (30, 50), 60),
    ('gmn/baseline_r50_1xb64-60e_m-ms-cs-to-c3_p3.py', (30, 50), 60),
])
def test_adam_warmup_schedule_is_the_specs(name, milestones, epochs):
    """The BoT, SNR and GMN R50 configs follow their recipe's schedule.

    SNR spec section 4 and GMN spec section 10 (the BoT recipe): Adam, lr
    3.5e-4, weight decay 5e-4, a linear warm-up over 10 epochs from 0.1 x
    lr (per iteration: 3.5e-5 at the first iteration, the full lr from
    epoch 10), then x0.1 at each milestone; 120 (SNR, BoT) or 60 (GMN)
    epochs. Checked at the first iteration of every epoch against that
    definition, so a milestone off by one epoch or a warm-up that ends
    elsewhere fails.
    """
    cfg = load_config(_config(name))
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'Adam'
    assert optimizer.weight_decay == pytest.approx(5e-4)
    assert cfg.train_cfg.max_epochs == epochs
    base = 3.5e-4

    def reference(epoch):
        if epoch == 0:
            return base * 0.1
        decay = 0.1**sum(epoch >= m for m in milestones)
        return base * decay if epoch >= 10 else None

    (got, ) = _lr_per_epoch(cfg, epochs).values()
    assert got[0] == pytest.approx(base * 0.1, rel=1e-9)
    assert all(a < b for a, b in zip(got[:10], got[1:11]))
    for epoch in range(10, epochs):
        assert got[epoch] == pytest.approx(reference(epoch), rel=1e-9), epoch


# Published identity counts (datasets.md and the datasets' papers): train
# / test identities.
_IDS = dict(
    market=(751, 750),
    msmt=(1041, 3060),
    cuhk03=(767, 700),
    cuhk_sysu=(11934, 0),
    duke=(702, 1110),
    cuhk02=(1816, 0))


@pytest.mark.parametrize('name,sources,combine_all', [
    ('gmn/gmn_r50_1xb64-60e_m-ms-cs-to-c3.py', 'market msmt cuhk_sysu',
     False),
    ('gmn/gmn_r50_1xb64-60e_m-cs-c3-to-ms.py', 'market cuhk_sysu cuhk03',
     False),
    ('gmn/gmn_r50_1xb64-60e_ms-cs-c3-to-m.py', 'msmt cuhk_sysu cuhk03',
     False),
    ('gmn/gmn_r50_1xb64-60e_m-ms-cs-to-c3_p3.py', 'market msmt cuhk_sysu',
     True),
    ('gmn/baseline_r50_1xb64-60e_m-cs-c3-to-ms_p3.py',
     'market cuhk_sysu cuhk03', True),
    ('gmn/baseline_r50_1xb64-60e_ms-cs-c3-to-m_p3.py',
     'msmt cuhk_sysu cuhk03', True),
    ('snr/snr_r50_1xb64-120e_dimn-protocol.py',
     'market duke cuhk02 cuhk03 cuhk_sysu', True),
])
def test_classifier_has_one_class_per_source_identity(name, sources,
                                                      combine_all):
    """The classifier of a multi-source config is sized for its sources.

    GMN spec section 9 (Protocol-2: train splits; Protocol-3: train +
    query + gallery, CUHK-SYSU whole) and SNR spec section 5.2 (DIMN: all
    images of every source, 18,530 ids), with per-source pid offsets
    (datasets.md section 4): the classes are the sum of each source's
    identities, from the published counts. A leaf that inherited a P2
    count into a P3 config trains a classifier with unused rows and no
    error from the data at hand.
    """
    cfg = load_config(_config(name))
    want = sum(
        _IDS[s][0] + (_IDS[s][1] if combine_all else 0)
        for s in sources.split())
    assert cfg.model.head.num_classes == want
    kinds = [
        d.get('dataset', d)['type']
        for d in cfg.train_dataloader.dataset.datasets
    ]
    assert len(kinds) == len(sources.split())


def test_dimn_protocol_cuhk03_is_detected_and_every_source_combined():
    """The CUHK03-NP variant of each protocol is the spec's default.

    SNR spec section 5.2: the DIMN protocol trains on all images of each
    source and takes CUHK03's detected boxes; GMN spec section 9 (and
    section 12, item 14) tests on the labeled ones. Detected and labeled
    boxes give different numbers, and the READMEs report which; read from
    the merged configs.
    """
    cfg = load_config(_config('snr/snr_r50_1xb64-120e_dimn-protocol.py'))
    sources = cfg.train_dataloader.dataset.datasets
    wrapped = [s for s in sources if 'dataset' in s]
    assert all(s['combine_all'] for s in wrapped)
    (cuhk03, ) = [
        s['dataset'] for s in wrapped if s['dataset']['type'] == 'CUHK03NP'
    ]
    assert cuhk03['variant'] == 'detected'
    gmn = load_config(_config('gmn/gmn_r50_1xb64-60e_m-ms-cs-to-c3.py'))
    assert gmn.test_dataloader.dataset.variant == 'labeled'
