"""Wrong-number hunt: extending mmreid from one's own code.

A user registers components of their own package as docs/customize.md
says (a module on ``PYTHONPATH``, imported by the config's
``custom_imports``, registered on mmreid's registries) and relies on
mmreid's promise: a number it prints is right, or it refuses. Each test
writes the user's module in ``tmp_path``, imports it the documented way
(:func:`mmreid.utils.config.read_config` runs ``custom_imports``) and
checks what mmreid does with it against the contract the docs state.

Five tests pin defects the hunt found (each failed on the code before
its fix); two pin behaviour that was right.
"""
import logging
import sys
import textwrap
from types import SimpleNamespace

import pytest
import torch
from mmengine.dataset import DefaultSampler
from mmengine.registry import MODELS as MMENGINE_MODELS
from torch.utils.data import DataLoader

from mmreid.engine.hooks.setup_check_hook import TrainSetupCheckHook
from mmreid.registry import DATASETS, MODELS
from mmreid.utils.config import read_config
from mmreid.utils.registry_suggestions import ShadowedTypeError


def user_module(tmp_path, monkeypatch, name: str, code: str) -> None:
    """Write the user's module ``name`` in ``tmp_path`` (on the path)."""
    (tmp_path / f'{name}.py').write_text(textwrap.dedent(code))
    monkeypatch.syspath_prepend(str(tmp_path))


def config_importing(tmp_path, module: str, body: str = '') -> str:
    """A config whose ``custom_imports`` imports ``module``."""
    path = tmp_path / f'cfg_{module}.py'
    path.write_text(
        "default_scope = 'mmreid'\n"
        f"custom_imports = dict(imports=['{module}'], "
        'allow_failed_imports=False)\n' + textwrap.dedent(body))
    return str(path)


@pytest.fixture
def registered(monkeypatch):
    """Forget the user's classes and modules after the test: ``track(
    registry, name)`` and ``module(name)`` register them for removal."""
    names, modules = [], []
    yield SimpleNamespace(
        track=lambda registry, name: names.append((registry, name)),
        module=modules.append)
    for registry, name in names:
        registry.module_dict.pop(name, None)
    for module in modules:
        sys.modules.pop(module, None)


def tiny_model(loss_tri=None, num_classes: int = 4, plugins=None) -> dict:
    """A tiny BoT model config (ResNet-18, 8 base channels, 64-d)."""
    backbone = dict(
        type='ReIDResNet',
        depth=18,
        last_stride=1,
        base_channels=8,
        stem_channels=8)
    model = dict(
        type='ReIDModel',
        backbone=backbone,
        neck=dict(type='GlobalAvgPool'),
        head=dict(
            type='BNNeckHead',
            in_channels=64,
            num_classes=num_classes,
            loss_tri=loss_tri))
    if plugins is not None:
        backbone['plugins'] = plugins
    return model


class Records(torch.utils.data.Dataset):
    """Training records without images: what the start-up check reads
    (``metainfo``, the sampler's ``get_data_info``)."""

    def __init__(self, pids, metainfo=None):
        self.pids = list(pids)
        self.metainfo = dict(metainfo or {})

    def __len__(self):
        return len(self.pids)

    def __getitem__(self, idx):
        return idx

    def get_data_info(self, idx):
        return dict(pid=self.pids[idx], camid=idx % 2, img_path=f'{idx}.jpg')


def start_up_check(model, dataset, sampler, batch_size: int) -> None:
    """Run the start-up checks of training (``TrainSetupCheckHook``, a
    ``default_hooks`` entry of every mmreid config) on a runner that
    trains ``model`` on ``dataset`` with ``sampler``."""
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler)
    runner = SimpleNamespace(
        model=model,
        train_dataloader=loader,
        cfg=None,
        hooks=[],
        val_loop=None,
        train_loop=None)
    TrainSetupCheckHook().before_train(runner)


# ---------------------------------------------------------------------------
# A custom loss's needs_positives declaration
# ---------------------------------------------------------------------------
#: The user's batch-hard triplet loss as a plain callable class: the head
#: calls ``loss_tri(f_t, pids)``, and "any module with that signature fits"
#: (docs/customize.md). It mines positives within the batch and says so.
CALLABLE_LOSS = '''
import torch

from mmreid.registry import MODELS


@MODELS.register_module()
class CxCallableTriplet:
    """Batch-hard triplet loss, a callable that is no nn.Module."""

    needs_positives = True
    needs_negatives = True

    def __init__(self, margin=0.3):
        self.margin = margin

    def __call__(self, feats, labels):
        dist = torch.cdist(feats, feats)
        same = labels[:, None] == labels[None, :]
        hardest_pos = (dist * same).max(1).values
        hardest_neg = (dist + same * 1e6).min(1).values
        return torch.relu(hardest_pos - hardest_neg + self.margin).mean()


@MODELS.register_module()
class CxModuleTriplet(torch.nn.Module):
    """The same loss as an nn.Module."""

    needs_positives = True
    needs_negatives = True

    def __init__(self, margin=0.3):
        super().__init__()
        self.impl = CxCallableTriplet(margin)

    def forward(self, feats, labels):
        return self.impl(feats, labels)
'''


def _build_with_loss(tmp_path, monkeypatch, registered, loss_type: str):
    """The tiny model with the user's ``loss_tri``, imported as documented,
    and a shuffling sampler over 4 identities x 4 images."""
    user_module(tmp_path, monkeypatch, 'cx_losses', CALLABLE_LOSS)
    registered.module('cx_losses')
    for name in ('CxCallableTriplet', 'CxModuleTriplet'):
        registered.track(MODELS, name)
    read_config(config_importing(tmp_path, 'cx_losses'))
    model = MODELS.build(tiny_model(loss_tri=dict(type=loss_type)))
    dataset = Records([pid for pid in range(4) for _ in range(4)],
                      metainfo=dict(num_pids=4, dataset_name='mine'))
    return model, dataset, DefaultSampler(dataset, shuffle=True, seed=0)


def test_module_loss_needing_positives_refuses_a_shuffling_sampler(
        tmp_path, monkeypatch, registered):
    """A loss module that declares ``needs_positives`` stops training
    under a shuffling sampler.

    docs/customize.md: "A loss that mines positives within the batch
    declares ``needs_positives = True`` ...: training then refuses a
    sampler that does not put at least two images of each identity in a
    batch". With ``DefaultSampler(shuffle=True)`` most anchors of a batch
    have no positive, and batch-hard triplet becomes another loss.
    """
    model, dataset, sampler = _build_with_loss(tmp_path, monkeypatch,
                                               registered, 'CxModuleTriplet')
    with pytest.raises(ValueError, match='CxModuleTriplet mines positives'):
        start_up_check(model, dataset, sampler, batch_size=8)


def test_callable_loss_needing_positives_refuses_a_shuffling_sampler(
        tmp_path, monkeypatch, registered):
    """A callable loss that declares ``needs_positives`` stops training
    under a shuffling sampler, as the same loss as a module does.

    The user registers a batch-hard triplet loss written as a plain
    callable class (the head calls ``loss_tri(f_t, pids)``; the registry
    builds it and the head trains with it) and declares
    ``needs_positives = True`` as docs/customize.md asks. With a
    shuffling sampler training ran (one epoch of the tiny SynthReID
    config printed its R1/mAP): the start-up check looks for the
    declaration in ``model.modules()`` only, and an attribute that is no
    ``nn.Module`` is none of them. The loss optimised is then not batch-
    hard triplet (most anchors have no positive: their hardest positive
    distance is 0), so the run is another one than the config's. Right:
    the same ``ValueError`` as for the module version.
    """
    model, dataset, sampler = _build_with_loss(
        tmp_path, monkeypatch, registered, 'CxCallableTriplet')
    # The head does hold and call the user's loss.
    assert type(model.head.loss_tri).__name__ == 'CxCallableTriplet'
    with pytest.raises(ValueError, match='CxCallableTriplet mines positives'):
        start_up_check(model, dataset, sampler, batch_size=8)


# ---------------------------------------------------------------------------
# A plugin of the user's registered on mmengine's root registry
# ---------------------------------------------------------------------------
ROOT_PLUGIN = '''
import torch.nn as nn
from mmengine.registry import MODELS


@MODELS.register_module(name='SNR')
class MyStyleNormalization(nn.Module):
    """The user's own SNR variant, registered on mmengine's root MODELS."""

    def __init__(self, in_channels, reduction=4):
        super().__init__()
        self.in_channels = in_channels

    def forward(self, x):
        return x


@MODELS.register_module(name='TripletLoss')
class MyTriplet(nn.Module):
    """The user's own triplet loss, on mmengine's root MODELS too."""

    def forward(self, feats, labels):
        return feats.sum() * 0
'''


def _root_registered(tmp_path, monkeypatch, registered) -> None:
    """Import the user's module of root-registered classes as documented
    (the mistake docs/customize.md warns about)."""
    user_module(tmp_path, monkeypatch, 'cx_root_plugin', ROOT_PLUGIN)
    registered.module('cx_root_plugin')
    for name in ('SNR', 'TripletLoss'):
        registered.track(MMENGINE_MODELS, name)
    read_config(config_importing(tmp_path, 'cx_root_plugin'))


def test_root_registered_loss_under_an_mmreid_name_is_refused(
        tmp_path, monkeypatch, registered):
    """The documented refusal, for a loss: the user's ``TripletLoss`` of
    mmengine's root registry is never built in scope ``mmreid``, and the
    build says so (docs/customize.md, first paragraph)."""
    _root_registered(tmp_path, monkeypatch, registered)
    with pytest.raises(ShadowedTypeError, match='MyTriplet'):
        MODELS.build(tiny_model(loss_tri=dict(type='TripletLoss')))


def test_root_registered_plugin_under_an_mmreid_name_is_refused(
        tmp_path, monkeypatch, registered):
    """A stage plugin of the user's, registered on mmengine's root
    ``MODELS`` under a name mmreid uses, is refused as a loss is.

    docs/customize.md: "a class of the root registry under a name mmreid
    also uses (``TripletLoss``) would never be built. Such a build stops
    with a ``ShadowedTypeError`` naming both classes". For a backbone
    plugin (``plugins=[dict(cfg=dict(type='SNR'), ...)]``) the build
    went on with mmreid's SNR in place of the user's module, without a
    word: the run trains and evaluates another network than the one the
    user wrote. Right: the same ``ShadowedTypeError`` naming the user's
    class.
    """
    _root_registered(tmp_path, monkeypatch, registered)
    plugins = [
        dict(
            cfg=dict(type='SNR', reduction=4),
            stages=(False, False, True, False),
            position='after_stage')
    ]
    try:
        model = MODELS.build(
            dict(tiny_model(plugins=plugins), aux_losses=dict(snr=None)))
    except ShadowedTypeError as error:
        assert 'MyStyleNormalization' in str(error)
        return
    built = type(model.backbone.snr_modules['2'])
    pytest.fail(f"plugins type='SNR' built {built.__module__}."
                f'{built.__qualname__}, not the user\'s '
                'MyStyleNormalization, and nothing was refused')


# ---------------------------------------------------------------------------
# A plain mmengine dataset giving pids and camids
# ---------------------------------------------------------------------------
PLAIN_DATASET = '''
from mmengine.dataset import BaseDataset

from mmreid.registry import DATASETS


@DATASETS.register_module()
class CxPlainReID(BaseDataset):
    """4 identities x 4 images, labelled 0..3, as mmengine records."""

    def __init__(self, **kwargs):
        super().__init__(ann_file='', serialize_data=False, **kwargs)

    def load_data_list(self):
        return [
            dict(img_path=f'{pid}_{i}.jpg', pid=pid, camid=i % 2)
            for pid in range(4) for i in range(4)
        ]
'''


def test_classifier_size_checked_for_a_dataset_without_num_pids(
        tmp_path, monkeypatch, registered):
    """The classifier-size check also holds for a training set that gives
    pids without a ``num_pids`` metainfo.

    The user trains on an mmengine ``BaseDataset`` of their own whose
    records give ``pid`` (0..3) and ``camid``; samplers, the head and
    the metric read these keys, and training runs. mmreid's start-up
    check "The classifier must have one row per training identity: ...
    a larger one trains with dead rows" (``TrainSetupCheckHook``) was
    skipped: it reads ``metainfo['num_pids']``, which such a dataset
    does not have, so ``num_classes=12`` for 4 identities trained a
    softmax over 8 classes no image has (the cross-entropy and its label
    smoothing are then another loss than the config's). Right: count
    the identities of the records (or refuse a training set that does
    not say), and raise naming ``model.head.num_classes``.
    """
    user_module(tmp_path, monkeypatch, 'cx_plain', PLAIN_DATASET)
    registered.module('cx_plain')
    registered.track(DATASETS, 'CxPlainReID')
    read_config(config_importing(tmp_path, 'cx_plain'))
    dataset = DATASETS.build(dict(type='CxPlainReID'))
    pids = {dataset.get_data_info(i)['pid'] for i in range(len(dataset))}
    assert len(pids) == 4 and 'num_pids' not in dataset.metainfo
    model = MODELS.build(tiny_model(num_classes=12))
    with pytest.raises(ValueError, match='num_classes'):
        start_up_check(
            model,
            dataset,
            DefaultSampler(dataset, shuffle=True, seed=0),
            batch_size=8)


# ---------------------------------------------------------------------------
# A metric of the user's that subclasses ReIDMetric, in a multi-target test
# ---------------------------------------------------------------------------
SUBCLASS_METRIC = '''
from mmreid.evaluation.metrics import ReIDMetric
from mmreid.registry import METRICS


@METRICS.register_module()
class CxMissedMetric(ReIDMetric):
    """ReIDMetric, plus how many queries miss their match at rank 1."""

    def compute_metrics(self, results):
        metrics = super().compute_metrics(results)
        metrics['missed_at_rank1'] = round(
            metrics['num_valid_query'] * (1 - metrics['R1'] / 100))
        return metrics
'''


class _Embedded(torch.utils.data.Dataset):
    """Test samples with a ready feature: ``(pid, camid, role, x)``."""

    def __init__(self, rows):
        self.rows = list(rows)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, index):
        pid, camid, role, x = self.rows[index]
        return dict(index=index, pid=pid, camid=camid, role=role, x=x)


class _FeatureModel:
    """Hands each sample's 1-d feature ``x`` on as its ``pred_feature``."""

    def eval(self):
        pass

    def test_step(self, batch):
        return [
            dict(
                sample_idx=int(index),
                pred_feature=torch.tensor([float(x)]),
                gt_label=int(pid),
                camid=int(camid),
                role=role,
                img_path=f'{int(index)}.jpg')
            for index, pid, camid, role, x in zip(
                batch['index'], batch['pid'], batch['camid'],
                batch['role'], batch['x'])
        ]


def _target_rows(missed: int, queries: int = 4) -> list:
    """``queries`` queries (camera 0) each with one true match (camera
    1); the first ``missed`` have a wrong identity nearer (1-d features,
    Euclidean distance), so R1 = 100 * (queries - missed) / queries."""
    rows = []
    for pid in range(queries):
        x = 10.0 * pid
        rows.append((pid, 0, 'query', x))
        rows.append((pid, 1, 'gallery', x + (2.0 if pid < missed else 0.5)))
        if pid < missed:
            rows.append((100 + pid, 1, 'gallery', x + 1.0))
    return rows


def test_users_reid_metric_subclass_count_is_not_averaged_over_targets(
        tmp_path, monkeypatch, registered):
    """A count that the user's ``ReIDMetric`` subclass adds is logged per
    target and left out of the mean over targets.

    docs/customize.md ("Testing on targets of your own"): the mean row
    "averages mmreid's metrics; your own metric's keys are logged per
    target and left out of the mean, since only the metric knows whether
    a key is a score or a count (``n``). A metric whose keys are all
    scores says so with a class attribute" (``mean_over_targets``). The
    user's metric subclasses ``ReIDMetric`` (to keep its ranking) and
    adds ``missed_at_rank1``, a count, without that attribute. The loop
    took the subclass for one of mmreid's and printed
    ``mean/missed_at_rank1 = 2.0`` for targets missing 1 and 3 queries,
    a mean of counts over targets of different sizes that is no number
    of either. Right: ``site_a/missed_at_rank1`` and
    ``site_b/missed_at_rank1`` only, no mean of it.
    """
    from mmengine.evaluator import Evaluator

    from mmreid.engine.runner import MultiTargetTestLoop
    from mmreid.registry import METRICS
    user_module(tmp_path, monkeypatch, 'cx_metric', SUBCLASS_METRIC)
    registered.module('cx_metric')
    registered.track(METRICS, 'CxMissedMetric')
    read_config(config_importing(tmp_path, 'cx_metric'))

    def target(name, missed):
        metric = METRICS.build(dict(type='CxMissedMetric'))
        return dict(
            name=name,
            dataloader=DataLoader(
                _Embedded(_target_rows(missed)), batch_size=3),
            evaluator=Evaluator([metric]))

    runner = SimpleNamespace(
        model=_FeatureModel(),
        hooks=[],
        call_hook=lambda *args, **kwargs: None,
        logger=logging.getLogger('cx'),
        visualizer=SimpleNamespace())
    loop = MultiTargetTestLoop(
        runner, targets=[target('site_a', 1),
                         target('site_b', 3)])
    metrics = loop.run()
    # Each target's own numbers are right (the definition of R1).
    assert metrics['site_a/R1'] == pytest.approx(75.0)
    assert metrics['site_b/R1'] == pytest.approx(25.0)
    assert metrics['site_a/missed_at_rank1'] == 1
    assert metrics['site_b/missed_at_rank1'] == 3
    assert 'mean/missed_at_rank1' not in metrics, metrics


# ---------------------------------------------------------------------------
# A transform of the user's that subclasses ReIDRandomFlip
# ---------------------------------------------------------------------------
FLIP_SUBCLASS = '''
import numpy as np

from mmreid.datasets.transforms import ReIDRandomFlip, sample_rng
from mmreid.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CxFlipJitter(ReIDRandomFlip):
    """mmreid's flip, then one random brightness offset in [-20, 20]."""

    def transform(self, results):
        results = super().transform(results)
        offset = sample_rng(results).uniform(-20, 20)
        img = results['img'].astype(np.float32) + offset
        results['img'] = np.clip(img, 0, 255).astype(np.uint8)
        return results
'''


def test_flip_subclass_that_draws_more_is_refused_in_a_test_pipeline(
        tmp_path, monkeypatch, registered):
    """A test pipeline with the user's subclass of ``ReIDRandomFlip`` that
    draws a brightness offset too is refused, ``prob=1`` or not.

    docs/customize.md ("Rules that keep it working"): a random transform
    in a val or test pipeline is refused "unless its ``prob`` is 0, or 1
    for ``ReIDRandomFlip``, whose one draw is whether it flips", since
    evaluation gives no per-sample seeds and the metrics would change
    with ``num_workers``. The user's ``CxFlipJitter(prob=1)`` always
    flips and then draws an offset from ``sample_rng``, which falls back
    to the worker's global random state in evaluation: the same image
    gives another tensor on every pass. It was accepted, because the
    subclass inherits ``draws_only_whether_it_acts = True``. Right: the
    refusal ``prob=0.5`` gets.
    """
    import numpy as np

    from mmreid.registry import TRANSFORMS
    from mmreid.utils.pipeline_check import check_pipeline
    from mmreid.utils.pipeline_source import PipelineSource
    user_module(tmp_path, monkeypatch, 'cx_flip', FLIP_SUBCLASS)
    registered.module('cx_flip')
    registered.track(TRANSFORMS, 'CxFlipJitter')
    read_config(config_importing(tmp_path, 'cx_flip'))
    # It draws at prob=1: without a seeded index (evaluation), one image
    # gives three different outputs (global state seeded for the test).
    flip = TRANSFORMS.build(dict(type='CxFlipJitter', prob=1.0))
    image = np.full((4, 2, 3), 100, np.uint8)
    state = np.random.get_state()
    np.random.seed(0)
    try:
        outputs = {
            int(flip(dict(img=image.copy(), sample_idx=0))['img'][0, 0, 0])
            for _ in range(3)
        }
    finally:
        np.random.set_state(state)
    assert len(outputs) > 1
    preprocessor = MODELS.build(dict(type='ReIDDataPreprocessor'))
    for prob in (0.5, 1.0):
        source = PipelineSource('test_dataloader.dataset.pipeline', [
            dict(type='ReIDLoadImageFromFile'),
            dict(type='CxFlipJitter', prob=prob),
            dict(type='PackReIDInputs')
        ])
        with pytest.raises(ValueError, match='CxFlipJitter'):
            check_pipeline(source, preprocessor, split='test')
