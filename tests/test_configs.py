"""Every config under configs/ builds: its model and its datasets."""
import glob
import os.path as osp
import re

import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator

from mmreid.datasets.synthetic import SYNTHREID_OPTIONS
from mmreid.registry import DATASETS, METRICS, MODELS
from mmreid.utils.pipeline_check import check_pipelines
from .fixtures.dataset_trees import (fake_cuhk03, fake_duke, fake_market,
                                     make_cuhk02, make_grid, make_ilids,
                                     make_llcm, make_msmt17, make_prid,
                                     make_regdb, make_sysu, make_viper)
from .fixtures.files import touch
from .fixtures.processes import load_tool

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(
    p for p in glob.glob(
        osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    if '_base_' not in p)


def redirect_data(cfg, roots):
    """Point every dataset of a config at generated data."""
    if isinstance(cfg, dict):
        kind = cfg.get('type')
        if kind in ('SynthReID', 'SynthReIDVI'):
            vi = kind == 'SynthReIDVI'
            # A folder holds one parameter set: the v1 and v2 generator
            # options get folders of their own. The tiny preset replaces
            # the demo's counts (overrides such as num_ids_test=450).
            options = '-'.join(
                f'{key}={cfg.get(key)}'
                for key in SYNTHREID_OPTIONS if key in cfg)
            cfg['data_root'] = osp.join(roots['synth-vi' if vi else 'synth'],
                                        options or 'default')
            cfg['size'] = 'tiny'
            cfg.pop('overrides', None)
            cfg['num_workers'] = 1
        elif kind in roots:
            cfg['data_root'] = roots[kind]
        for value in cfg.values():
            redirect_data(value, roots)
    elif isinstance(cfg, list):
        for value in cfg:
            redirect_data(value, roots)


@pytest.fixture(scope='module')
def roots(tmp_path_factory):

    def folder(name):
        return str(tmp_path_factory.mktemp(name))

    market = folder('market1501')
    fake_market(market)
    duke = folder('duke')
    fake_duke(duke)
    cuhk_sysu = folder('cuhk_sysu')
    touch(osp.join(cuhk_sysu, 'cropped_images'), 'p1_s1.jpg', 'p2_s2.jpg')
    sysu_mm01 = folder('sysu_mm01')
    make_sysu(sysu_mm01)
    regdb = folder('regdb')
    make_regdb(regdb)
    llcm = folder('llcm')
    make_llcm(llcm)
    return dict(
        Market1501=market,
        DukeMTMCReID=duke,
        MSMT17=make_msmt17(tmp_path_factory.mktemp('msmt17'), version='V1'),
        CUHK02=make_cuhk02(tmp_path_factory.mktemp('cuhk02')),
        CUHK03NP=fake_cuhk03(folder('cuhk03')),
        CUHKSYSU=cuhk_sysu,
        SYSUMM01=sysu_mm01,
        RegDB=regdb,
        LLCM=llcm,
        PRID2011=make_prid(tmp_path_factory.mktemp('prid')),
        VIPeR=make_viper(tmp_path_factory.mktemp('viper')),
        QMULiLIDS=make_ilids(tmp_path_factory.mktemp('ilids'))[0],
        GRID=make_grid(
            tmp_path_factory.mktemp('grid'), [list(range(1, 126))] * 10),
        synth=folder('synth'),
        **{'synth-vi': folder('synth_vi')})


ALL_CONFIG_FILES = sorted(
    glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True))


def test_configs_use_one_style_and_the_current_names():
    """``{{_base_.x}}`` (not ``_base_.x``), ``ReID*`` names, ``loss_tri``."""
    from mmreid.utils.deprecation import RENAMED
    assert len(RENAMED) == 5
    deprecated = re.compile(r"""type=['"](%s)['"]|\bloss_triplet\b""" %
                            '|'.join(RENAMED))
    bare_base = re.compile(r'(?<!\{)\b_base_\.\w+')
    found = []
    for path in ALL_CONFIG_FILES:
        with open(path, encoding='utf-8') as f:
            for number, line in enumerate(f, 1):
                if deprecated.search(line) or bare_base.search(line):
                    found.append(
                        f'{osp.relpath(path, REPO)}:{number}: {line.strip()}')
    assert len(ALL_CONFIG_FILES) > len(CONFIGS)
    assert not found, '\n'.join(found)


def test_no_shipped_config_looks_like_a_misspelt_key():
    """``read_config`` refuses an unused top-level name close to a key
    the run reads (``randomnes``); the shipped configs (loaded with
    ``Config.fromfile`` by the tests below) must pass that check."""
    from mmreid.utils.config.top_level import check_top_level_names
    for path in CONFIGS:
        check_top_level_names(path)


def test_a_dumped_misspelt_key_is_still_refused(tmp_path):
    """The other side of ``test_config_builds``' check of the copy a run
    writes: in such a copy a misspelt key, whose value no other key
    holds, is refused as in the config itself."""
    from mmreid.utils.config.top_level import check_top_level_names
    dumped = tmp_path / 'misspelt.py'
    Config(dict(randomnes=dict(seed=3),
                model=dict(type='X'))).dump(str(dumped))
    with pytest.raises(ValueError, match="'randomnes'.*'randomness'"):
        check_top_level_names(str(dumped))


def test_there_are_configs():
    assert any('bot_r50_1xb64-120e_market1501' in p for p in CONFIGS)
    assert any('bot_r18_synthreid' in p for p in CONFIGS)
    # The SynthReID-vi v2 demos (learnable infrared) are among them.
    for name in ('agw_r18_synthreid-vi-v2', 'mbn-agw_r18_synthreid-vi-v2'):
        assert any(osp.basename(p) == f'{name}.py' for p in CONFIGS), name


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_config_builds(path, roots, tmp_path):
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmreid'
    # A run writes this merged config into its work dir (and
    # vis_data/config.py); tools/test.py, init_model and the analysis tools
    # read that copy back through read_config. There a base's helper
    # variable (`mode = 'all'` of the SYSU-MM01 and SynthReID-vi bases,
    # close to `model`; `target_dataloader`) is a plain top-level name
    # whose value is written out where it was used: the top-level name
    # check refused the own config of every such run.
    from mmreid.utils.config.top_level import check_top_level_names
    cfg.dump(str(tmp_path / osp.basename(path)))
    check_top_level_names(str(tmp_path / osp.basename(path)))
    # The start-up checks are default_hooks (merged key by key), never
    # in custom_hooks, which a config's own list replaces whole.
    assert cfg.default_hooks.setup_check.type == 'TrainSetupCheckHook'
    assert cfg.default_hooks.feature_progress.type == 'FeatureProgressHook'
    assert not [
        h for h in cfg.get('custom_hooks') or []
        if h['type'] in ('TrainSetupCheckHook', 'FeatureProgressHook')
    ]
    model_cfg = cfg.model.to_dict() if hasattr(cfg.model, 'to_dict') \
        else dict(cfg.model)
    model_cfg['backbone'].pop('init_cfg', None)  # never download in tests
    model = MODELS.build(model_cfg)
    assert model.head.num_classes > 0
    # Its pipelines give what the data preprocessor takes (RGB, not
    # normalised, packed by PackReIDInputs), as the runner checks.
    check_pipelines(cfg, model.data_preprocessor)
    datasets = [
        cfg[key]['dataset']
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader')
        if cfg.get(key)
    ]
    # Multi-target loops carry their own dataloaders.
    for key in ('val_cfg', 'test_cfg'):
        for target in (cfg.get(key) or {}).get('targets', []):
            datasets.append(target['dataloader']['dataset'])
    assert datasets
    for dataset_cfg in datasets:
        dataset_cfg = dataset_cfg.to_dict()
        redirect_data(dataset_cfg, roots)
        dataset = DATASETS.build(dataset_cfg)
        assert len(dataset) > 0


RUN_PLANS = load_tool('tools/analysis_tools/run_plans.py')


def dataset_evaluator_pairs(cfg):
    """(dataset config, evaluator config) of every val/test loop."""
    pairs = []
    for stage in ('val', 'test'):
        loader, evaluator = (cfg.get(f'{stage}_dataloader'),
                             cfg.get(f'{stage}_evaluator'))
        if loader and evaluator:
            pairs.append((loader['dataset'], evaluator))
        for target in (cfg.get(f'{stage}_cfg') or {}).get('targets', []):
            pairs.append(
                (target['dataloader']['dataset'], target['evaluator']))
    return pairs


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_config_evaluators_accept_their_datasets(path, roots):
    """Every evaluator accepts the metainfo of the dataset it evaluates,
    as the loops hand it over: a metric that does not implement the
    dataset's protocol (e.g. ReIDMetric on the union of the DG splits or
    on a SYSU-MM01 gallery pool) or of another LLCM direction refuses."""
    cfg = Config.fromfile(path)
    pairs = dataset_evaluator_pairs(cfg)
    assert pairs
    for dataset_cfg, evaluator_cfg in pairs:
        dataset_cfg = dataset_cfg.to_dict()
        redirect_data(dataset_cfg, roots)
        dataset = DATASETS.build(dataset_cfg)
        if hasattr(evaluator_cfg, 'to_dict'):
            evaluator_cfg = evaluator_cfg.to_dict()
        metric_cfgs = (
            evaluator_cfg
            if isinstance(evaluator_cfg, list) else [evaluator_cfg])
        evaluator = Evaluator([METRICS.build(m) for m in metric_cfgs])
        evaluator.dataset_meta = dataset.metainfo
        if getattr(MODELS.get(cfg.model.type), 'has_own_distance', False):
            # The loops hand the model's scorers to every metric, which
            # refuses an option they would ignore. The GMN configs' bases
            # wrote distance='euclidean', ignored (reid/mAP was the
            # M-Net's) until refused.
            for metric in evaluator.metrics:
                metric.check_scorers({'mnet': torch.cdist})
        # compare_configs.py reads the key prefixes from the config before
        # training: they must be the built metrics' (regdb-t2v, ...).
        assert RUN_PLANS._metric_prefixes_of(metric_cfgs) == [
            m.prefix for m in evaluator.metrics
        ]


AGW_REAL_DATA = sorted(
    p for p in CONFIGS if re.search(r'agw_r50_.*(sysu-mm01|regdb)', p))


@pytest.mark.parametrize('path', AGW_REAL_DATA, ids=osp.basename)
def test_agw_configs_resize_as_the_reference(path):
    # The AGW code resizes every SYSU-MM01 and RegDB image to 144 x 288
    # (W x H) with PIL's Lanczos filter when it loads it, then pads 10 and
    # crops back in training (no random erasing). The configs resized
    # with cv2 bilinear, without antialiasing.
    cfg = Config.fromfile(path)
    train = cfg.train_dataloader.dataset.pipeline
    test = cfg.test_dataloader.dataset.pipeline
    for pipeline in (train, test, cfg.val_dataloader.dataset.pipeline):
        (resize, ) = [t for t in pipeline if t['type'] == 'ReIDResize']
        assert tuple(resize['size']) == (288, 144)
        assert resize.get('interpolation') == 'lanczos'
        assert resize.get('backend') == 'pillow'
    types = [t['type'] for t in train]
    assert 'ReIDRandomErasing' not in types
    (crop, ) = [t for t in train if t['type'] == 'PadRandomCrop']
    assert crop['padding'] == 10


def test_agw_real_data_configs_are_found():
    assert len(AGW_REAL_DATA) == 8


BOT_SNR_REAL_DATA = sorted(
    p for p in CONFIGS
    if re.search(r'(bot|snr)_r50_1xb64-120e_', osp.basename(p)))


@pytest.mark.parametrize('path', BOT_SNR_REAL_DATA, ids=osp.basename)
def test_bot_and_snr_configs_resize_as_the_reference(path):
    # reid-strong-baseline (torchvision Resize) and the SNR authors'
    # torchreid code (Random2DTranslation, Resize) resize PIL images with
    # the bilinear filter, which antialiases when it shrinks; the configs
    # resized with cv2, which does not (Duke and MSMT17 images are larger
    # than 256 x 128).
    cfg = Config.fromfile(path)
    pipelines = [cfg.train_dataloader.dataset.pipeline]
    for key in ('val', 'test'):
        loop = cfg.get(f'{key}_cfg', {})
        targets = loop.get('targets') or [
            dict(dataloader=cfg[f'{key}_dataloader'])
        ]
        pipelines += [t['dataloader']['dataset']['pipeline'] for t in targets]
    for pipeline in pipelines:
        (resize, ) = [
            t for t in pipeline
            if t['type'] in ('ReIDResize', 'Random2DTranslation')
        ]
        assert resize.get('backend') == 'pillow', resize
        assert resize.get('interpolation', 'bilinear') == 'bilinear'


def test_bot_and_snr_real_data_configs_are_found():
    assert len(BOT_SNR_REAL_DATA) == 8


@pytest.mark.parametrize('path', BOT_SNR_REAL_DATA, ids=osp.basename)
def test_bot_erasing_is_the_references(path):
    # reid-strong-baseline's RandomErasing draws the aspect ratio uniformly
    # in [0.3, 1/0.3] and fills with (0.485, 0.456, 0.406) after
    # normalisation; mmreid's default draws log-uniformly and fills with
    # the mean pixel.
    from mmreid.datasets.transforms.photometric import BOT_ERASING_FILL_RGB
    cfg = Config.fromfile(path)
    erasing = [
        t for t in cfg.train_dataloader.dataset.pipeline
        if t['type'] == 'ReIDRandomErasing'
    ]
    for t in erasing:
        assert t['aspect_sampling'] == 'uniform'
        assert tuple(t['fill_value']) == pytest.approx(
            BOT_ERASING_FILL_RGB, abs=1e-3)


@pytest.mark.parametrize('name', ['market1501', 'msmt17'])
def test_bot_configs_rank_by_cosine_as_reid_strong_baseline(name):
    """reid-strong-baseline reports BoT with TEST.FEAT_NORM='yes' (the
    after-BN feature L2-normalised: the cosine ranking); the configs
    ranked by Euclidean distance on the raw feature. The model's distance
    agrees, so rank_gallery ranks as the reported numbers."""
    from types import SimpleNamespace

    from mmreid.engine.runner.reid_loops import _ranks_as, check_model_distance
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'baseline', f'bot_r50_1xb64-120e_{name}.py'))
    assert cfg.model.distance == 'cosine'
    for key in ('val_evaluator', 'test_evaluator'):
        metric = METRICS.build(cfg[key])
        assert _ranks_as(metric.distance, metric.normalize) == 'cosine', key
        check_model_distance(
            SimpleNamespace(distance_type=cfg.model.distance),
            Evaluator([metric]), key)


def setup_check_runner(cfg, roots):
    """A runner as TrainSetupCheckHook sees it: the config, the built
    training set, a classifier of its size."""
    from types import SimpleNamespace
    train = cfg.train_dataloader.dataset.to_dict()
    redirect_data(train, roots)
    dataset = DATASETS.build(train)
    dataset.full_init()
    head = SimpleNamespace(num_classes=dataset.metainfo['num_pids'])
    loader = SimpleNamespace(dataset=dataset, batch_size=None, sampler=None)
    return SimpleNamespace(
        cfg=cfg, model=SimpleNamespace(head=head), train_dataloader=loader)


@pytest.mark.parametrize('direction',
                         ['m-ms-cs-to-c3', 'm-cs-c3-to-ms', 'ms-cs-c3-to-m'])
def test_a_p3_leaf_that_sets_only_combine_all_is_refused(
        direction, roots, tmp_path):
    """The baseline README said to set ``combine_all = True`` for
    Protocol-3; a leaf doing only that trained Protocol-2, silently. The
    shipped P3 baselines set the sources and the classifier too."""
    from mmreid.engine.hooks import TrainSetupCheckHook
    base = osp.join(REPO, 'configs', 'gmn',
                    f'baseline_r50_1xb64-60e_{direction}.py')
    leaf = tmp_path / 'p3_trap.py'
    leaf.write_text(f'_base_ = {base!r}\ncombine_all = True\n')
    runner = setup_check_runner(Config.fromfile(str(leaf)), roots)
    sources = runner.train_dataloader.dataset.metainfo['sources']
    assert {s['split_used'] for s in sources} == {'train'}  # the trap
    with pytest.raises(ValueError, match=r'sources_p3'):
        TrainSetupCheckHook().before_train(runner)
    shipped = Config.fromfile(base.replace('.py', '_p3.py'))
    assert shipped.combine_all is True
    assert shipped.model.type == 'ReIDModel'
    assert shipped.model.head.num_classes == shipped.num_classes_p3
    runner = setup_check_runner(shipped, roots)
    sources = runner.train_dataloader.dataset.metainfo['sources']
    # CUHK-SYSU has no test split: always used whole.
    assert {s['name']: s['split_used'] for s in sources}['cuhk-sysu'] == \
        'train'
    assert [s['split_used'] for s in sources].count('all') == 2
    TrainSetupCheckHook().before_train(runner)
    # The Protocol-2 baseline passes as it is.
    TrainSetupCheckHook().before_train(
        setup_check_runner(Config.fromfile(base), roots))


def dataset_roots(node, kind):
    """``data_root`` of every dataset of type ``kind`` in a config."""
    if isinstance(node, dict):
        roots = [node['data_root']] if node.get('type') == kind else []
        return roots + [
            r for value in node.values() for r in dataset_roots(value, kind)
        ]
    if isinstance(node, (list, tuple)):
        return [r for value in node for r in dataset_roots(value, kind)]
    return []


def test_dukemtmc_roots_follow_the_documented_layout():
    """docs/datasets.md and the dataset bases put DukeMTMC-reID in
    data/dukemtmc-reid/DukeMTMC-reID/; three leaves named the parent."""
    base = Config.fromfile(
        osp.join(REPO, 'configs', '_base_', 'datasets', 'dukemtmc.py'))
    with open(osp.join(REPO, 'docs', 'datasets.md'), encoding='utf-8') as f:
        assert base.data_root.rstrip('/') + '/' in f.read()
    found = {}
    for path in CONFIGS:
        for root in dataset_roots(
                Config.fromfile(path).to_dict(), 'DukeMTMCReID'):
            found.setdefault(root, []).append(osp.relpath(path, REPO))
    assert len(found) == 1 and base.data_root in found, found


@pytest.mark.parametrize('name', ['sysu_mm01.py', 'regdb.py'])
def test_cross_modality_bases_train_without_random_erasing(name):
    """AGW trains without random erasing; every AGW leaf removed it, so a
    new leaf of these bases would have inherited it."""
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', '_base_', 'datasets', name))
    for pipeline in (cfg.train_pipeline,
                     cfg.train_dataloader.dataset.pipeline):
        types = [t['type'] for t in pipeline]
        assert 'ReIDRandomErasing' not in types
        assert 'PadRandomCrop' in types


def _recipe(path):
    """A dataset base's training and test recipe: pipelines, batch and
    sampler, with the dataset itself left out."""
    cfg = Config.fromfile(path)
    train, test = cfg.train_dataloader, cfg.test_dataloader
    return dict(
        train_pipeline=train.dataset.pipeline,
        test_pipeline=test.dataset.pipeline,
        batch_size=train.batch_size,
        sampler=train.sampler,
        test_sampler=test.sampler)


@pytest.mark.parametrize('name', ['dukemtmc', 'msmt17', 'cuhk03_np'])
def test_person_reid_dataset_bases_share_the_bot_recipe(name):
    """A leaf trains another single-domain dataset by swapping its dataset
    base. CUHK03-NP's resized with cv2 (no antialiasing), erased with
    mmreid's default aspect and fill and completed each identity's last
    group, where the Market-1501, DukeMTMC and MSMT17 bases follow BoT:
    the same recipe trained another way on one dataset."""
    base = osp.join(REPO, 'configs', '_base_', 'datasets')
    assert _recipe(osp.join(base, f'{name}.py')) == _recipe(
        osp.join(base, 'market1501.py'))


@pytest.mark.parametrize('path', BOT_SNR_REAL_DATA, ids=osp.basename)
def test_bot_and_snr_epochs_drop_the_remainder_as_the_reference(path):
    # Their RandomIdentitySampler cuts n // K groups per identity; mmreid's
    # default completes each identity's last group, so an epoch had more
    # steps and "120 epochs" trained longer than the recipe.
    sampler = Config.fromfile(path).train_dataloader.sampler
    assert sampler['type'] == 'IdentitySampler'
    assert sampler.get('remainder') == 'drop'


@pytest.mark.parametrize(
    'path', CONFIGS, ids=[osp.relpath(p, REPO) for p in CONFIGS])
def test_auto_scale_lr_is_based_on_the_configs_batch(path):
    """Every config's learning rate is tuned for its ``1xb<batch>``:
    ``--auto-scale-lr`` (lr x processes x batch / base) changes it only
    for more processes. The v1 AGW SynthReID-vi demos trained 64 images
    on a base of 32 and doubled the lr on one process."""
    cfg = Config.fromfile(path)
    assert cfg.auto_scale_lr.base_batch_size == \
        cfg.train_dataloader.batch_size
    assert cfg.auto_scale_lr.enable is False


def test_multi_target_configs_leave_the_placeholders_empty():
    """A multi-target loop evaluates its targets only and refuses a
    ``<mode>_dataloader``/``<mode>_evaluator`` that holds something (it
    would be ignored): every shipped multi-target config passes that
    check, so none is refused at its first evaluation."""
    from mmreid.registry import LOOPS
    checked = 0
    for path in CONFIGS:
        cfg = Config.fromfile(path)
        for mode in ('val', 'test'):
            loop = cfg.get(f'{mode}_cfg') or {}
            if 'targets' not in loop:
                continue
            LOOPS.get(loop['type']).refuse_ignored_placeholders(
                loop['targets'],
                dataloader=cfg.get(f'{mode}_dataloader'),
                evaluator=cfg.get(f'{mode}_evaluator'))
            checked += 1
    assert checked >= 50


def mbn_norm_keys(node, key='model'):
    """The ``--cfg-options`` keys of every MBN ``norm_cfg`` of a model."""
    if isinstance(node, dict):
        if str(node.get('type', '')).split('.')[-1] == 'MBN':
            yield key
        for name, value in node.items():
            yield from mbn_norm_keys(value, f'{key}.{name}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from mbn_norm_keys(value, f'{key}.{i}')


def documented_test_variants(model: dict) -> dict:
    """The settings the docs change at test time on one checkpoint, as
    ``--cfg-options`` of each variant, for a shipped ``model``."""
    variants = {}
    if model['type'] == 'GMNReID':
        # configs/gmn/README.md, "test distance": the modes and their
        # options, reported from one checkpoint.
        variants['gmn test distance'] = {
            'model.test_cfg.distance': 'fused',
            'model.test_cfg.fuse_beta': 0.25,
            'model.test_cfg.mnet_topk': 100,
            'model.test_cfg.report_modes': ('mnet', 'fused'),
            'model.test_cfg.memory_budget_mb': 64,
            'model.test_cfg.method': 'direct',
        }
    else:
        # docs/get_started.md: "--cfg-options ...
        # model.head.test_feature=before_bn", flip test-time augmentation
        # "model = dict(test_cfg=dict(flip=True))", model.distance.
        variants['test feature'] = {'model.head.test_feature': 'before_bn'}
        variants['flip'] = {'model.test_cfg.flip': True}
        variants['distance'] = {'model.distance': 'cosine'}
    # configs/mbn/README.md, "test-time statistics": norm_cfg.eval_stats.
    for key in mbn_norm_keys(model):
        for stats in ('batch', 'shared'):
            variants[f'{key} {stats}'] = {f'{key}.eval_stats': stats}
    return variants


@pytest.mark.parametrize('path', CONFIGS, ids=lambda p: osp.relpath(p, REPO))
def test_documented_test_variants_test_the_trained_network(path):
    """Testing a checkpoint of the config with a documented evaluation
    choice is no other network for the test-time check of trained
    checkpoints (mmreid.utils.trained_arch.network_differences), and a
    last stride other than the trained one is."""
    from mmreid.utils.trained_arch import network_differences
    model = Config.fromfile(path).model.to_dict()
    variants = documented_test_variants(model)
    assert variants
    for name, options in variants.items():
        cfg = Config(dict(model=model))
        cfg.merge_from_dict(options)
        assert network_differences(model, cfg.model.to_dict()) == [], name
    stride = model['backbone'].get('last_stride', 1)
    cfg = Config(dict(model=model))
    cfg.merge_from_dict({'model.backbone.last_stride': 3 - stride})
    assert network_differences(model, cfg.model.to_dict()) == [
        (('model', 'backbone', 'last_stride'), stride, 3 - stride)
    ]
