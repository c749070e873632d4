"""mmreid's names do not shadow OpenMMLab's; the old names warn once."""
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from mmengine.dataset import Compose

import mmreid.registry as mmreid_registry
from mmreid.datasets.transforms import (ReIDColorJitter, ReIDLoadImageFromFile,
                                        ReIDRandomErasing, ReIDRandomFlip)
from mmreid.models.heads import BNNeckHead, GMNHead
from mmreid.models.losses import ReIDCrossEntropyLoss
from mmreid.registry import MODELS, TRANSFORMS
from mmreid.utils import deprecation
from tests.fixtures.processes import tool_env

#: old name -> (registry, new class, arguments of both builds)
RENAMED = {
    'LoadImageFromFile': (TRANSFORMS, ReIDLoadImageFromFile, {}),
    'RandomFlip': (TRANSFORMS, ReIDRandomFlip, dict(prob=0.5)),
    'RandomErasing':
    (TRANSFORMS, ReIDRandomErasing, dict(prob=1.0, fill_mode='random')),
    'ColorJitter':
    (TRANSFORMS, ReIDColorJitter, dict(brightness=0.4, contrast=0.3, hue=0.1)),
    'CrossEntropyLoss': (MODELS, ReIDCrossEntropyLoss,
                         dict(label_smooth_eps=0.1, loss_weight=0.5)),
}


@pytest.fixture
def fresh_warnings(monkeypatch):
    """Forget which aliases have warned (another test may have built one)."""
    monkeypatch.setattr(deprecation, '_WARNED', set())


def apply(obj, seed, tmp_path):
    """Run a transform (on a seeded image) or the loss; return the output."""
    rng = np.random.default_rng(seed)
    if isinstance(obj, ReIDCrossEntropyLoss):
        logits = torch.from_numpy(rng.standard_normal((6, 4)))
        labels = torch.from_numpy(rng.integers(0, 4, 6))
        return obj(logits, labels).numpy()
    img = rng.integers(0, 256, (16, 8, 3), dtype=np.uint8)
    if isinstance(obj, ReIDLoadImageFromFile):
        import cv2
        path = str(tmp_path / f'{seed}.png')
        cv2.imwrite(path, img)
        return obj(dict(img_path=path))['img']
    results = dict(img=img, rng=np.random.default_rng(seed))
    return obj(results)['img']


@pytest.mark.parametrize('old_name', sorted(RENAMED))
def test_old_name_builds_the_new_class_and_warns_once(old_name, tmp_path,
                                                      fresh_warnings):
    registry, new_cls, args = RENAMED[old_name]
    new_name = new_cls.__name__
    assert new_name == 'ReID' + old_name
    with pytest.warns(FutureWarning) as record:
        old = registry.build(dict(type=old_name, **args))
    message = str(record[0].message)
    assert f"type='{old_name}' is deprecated" in message
    assert f"type='{new_name}'" in message
    assert type(old) is new_cls
    new = registry.build(dict(type=new_name, **args))
    assert repr(old) == repr(new)
    for seed in range(3):
        np.testing.assert_array_equal(
            apply(old, seed, tmp_path), apply(new, seed, tmp_path))

    with warnings.catch_warnings():
        warnings.simplefilter('error')  # once: the second build is silent
        registry.build(dict(type=old_name, **args))


@pytest.mark.parametrize('old_name', sorted(RENAMED))
def test_old_name_shows_the_arguments_of_the_new_class(old_name):
    import inspect
    registry, new_cls, _ = RENAMED[old_name]
    assert inspect.signature(registry.get(old_name)) == \
        inspect.signature(new_cls)


def test_old_name_in_a_pipeline(fresh_warnings):
    with pytest.warns(FutureWarning, match='ReIDRandomFlip'):
        pipeline = Compose([dict(type='RandomFlip', prob=1.0)])
    img = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    np.testing.assert_array_equal(pipeline(dict(img=img))['img'], img[:, ::-1])


def test_openmmlab_config_names_the_openmmlab_class():
    from mmpretrain.datasets.transforms import RandomErasing as PretrainErasing
    from mmpretrain.models.losses import CrossEntropyLoss as PretrainCE

    erasing = TRANSFORMS.build(
        dict(type='mmpretrain.RandomErasing', erase_prob=0.25, mode='rand'))
    assert type(erasing) is PretrainErasing
    assert erasing.erase_prob == 0.25
    pipeline = Compose([
        dict(type='mmpretrain.RandomErasing', erase_prob=0.25),
        dict(type='mmpretrain.ColorJitter', brightness=0.1)
    ])
    assert [type(t).__module__.split('.')[0]
            for t in pipeline.transforms] == ['mmpretrain', 'mmpretrain']
    loss = MODELS.build(
        dict(type='mmpretrain.CrossEntropyLoss', use_sigmoid=True))
    assert type(loss) is PretrainCE and loss.use_sigmoid
    load = TRANSFORMS.build(
        dict(type='mmpretrain.LoadImageFromFile', color_type='grayscale'))
    assert type(load).__module__.startswith('mmcv.')


@pytest.mark.parametrize('old_name, foreign_args, foreign_key', [
    ('RandomErasing', dict(erase_prob=0.5), 'erase_prob'),
    ('ColorJitter', dict(brightness=0.1, backend='pillow'), 'backend'),
    ('RandomFlip', dict(prob=0.5, direction='vertical'), 'direction'),
    ('LoadImageFromFile', dict(to_float32=True), 'to_float32'),
    ('CrossEntropyLoss', dict(use_sigmoid=True), 'use_sigmoid'),
])
def test_old_name_with_openmmlab_arguments_says_what_to_write(
        old_name, foreign_args, foreign_key, fresh_warnings):
    registry = RENAMED[old_name][0]
    with pytest.raises(TypeError) as error:
        registry.build(dict(type=old_name, **foreign_args))
    message = str(error.value)
    assert f"type='mmpretrain.{old_name}'" in message, message
    assert f"type='ReID{old_name}'" in message, message
    assert foreign_key in message, message


def test_no_mmreid_name_shadows_an_openmmlab_one():
    """Only the deprecated aliases share a name with mmpretrain/mmengine.

    And ``Pretrained``, which replaces mmengine's on purpose, taking the
    same arguments (it checks the key match, and takes ``allow_missing``
    too), and ``LoggerHook``, a
    subclass of mmengine's with the same arguments (its JSON record keeps
    integer metrics).
    """
    import inspect

    import mmpretrain.registry as pretrain_registry
    from mmengine.model.weight_init import PretrainedInit
    reporting = inspect.signature(
        mmreid_registry.WEIGHT_INITIALIZERS.get('Pretrained')).parameters
    assert set(inspect.signature(PretrainedInit).parameters) <= set(reporting)
    from mmengine.hooks import LoggerHook
    ours = mmreid_registry.HOOKS.get('LoggerHook')
    assert issubclass(ours, LoggerHook) and ours is not LoggerHook
    assert inspect.signature(ours) == inspect.signature(LoggerHook)
    clashes = []
    for attr in mmreid_registry.__all__:
        ours = getattr(mmreid_registry, attr)
        ours.import_from_location()
        theirs = [ours.parent]
        pretrain = getattr(pretrain_registry, attr, None)
        if pretrain is not None:
            pretrain.import_from_location()
            theirs.append(pretrain)
        for name in ours.module_dict:
            if any(name in other.module_dict for other in theirs):
                clashes.append(f'{attr}:{name}')
    assert sorted(clashes) == sorted([
        f'{"MODELS" if old == "CrossEntropyLoss" else "TRANSFORMS"}:{old}'
        for old in RENAMED
    ] + ['WEIGHT_INITIALIZERS:Pretrained', 'HOOKS:LoggerHook'])
    assert deprecation.RENAMED == {old: f'ReID{old}' for old in RENAMED}


@pytest.mark.parametrize('package, old_name', [
    ('mmreid.datasets.transforms', 'RandomErasing'),
    ('mmreid.models.losses', 'CrossEntropyLoss'),
])
def test_old_python_name_warns(package, old_name, fresh_warnings):
    import importlib
    module = importlib.import_module(package)
    with pytest.warns(FutureWarning, match=f'ReID{old_name}'):
        cls = getattr(module, old_name)
    assert cls.__name__ == f'ReID{old_name}'
    with pytest.raises(AttributeError, match='NoSuchThing'):
        getattr(module, 'NoSuchThing')


# ---------------------------------------------------------------------------
# The triplet loss: configured and logged as loss_tri
# ---------------------------------------------------------------------------
class CentreLoss(torch.nn.Module):
    """A triplet-slot loss with a tensor (as a learnt-centre loss has)."""

    def __init__(self):
        super().__init__()
        self.centres = torch.nn.Parameter(torch.randn(3, 4))

    def forward(self, feats, labels):
        return (feats - self.centres[labels]).pow(2).sum(1).mean()


@pytest.fixture
def centre_loss():
    MODELS.register_module(module=CentreLoss, force=True)
    yield
    MODELS.module_dict.pop('CentreLoss')


def head_losses(head, seed=0):
    from mmreid.structures import ReIDDataSample
    torch.manual_seed(seed)
    feats = torch.randn(6, 4)
    samples = [
        ReIDDataSample().set_gt_label(pid) for pid in (0, 0, 1, 1, 2, 2)
    ]
    head.train()
    if hasattr(head, 'dp_enabled'):
        head.dp_enabled = False  # GMN: as GMNDPWarmupHook in the warm-up
    return head.loss(feats, samples)


@pytest.mark.parametrize('head_cls', [BNNeckHead, GMNHead])
def test_loss_tri_is_the_config_and_the_log_name(head_cls):
    head = head_cls(
        in_channels=4,
        num_classes=3,
        loss_tri=dict(type='TripletLoss', margin=None))
    assert 'loss_tri' in head_losses(head)
    assert not hasattr(head, 'loss_triplet')
    off = head_cls(in_channels=4, num_classes=3, loss_tri=None)
    assert 'loss_tri' not in head_losses(off)


@pytest.mark.parametrize('head_cls', [BNNeckHead, GMNHead])
def test_loss_triplet_is_a_deprecated_alias(head_cls):
    torch.manual_seed(0)
    new = head_cls(
        in_channels=4,
        num_classes=3,
        loss_tri=dict(type='TripletLoss', margin=None))
    with pytest.warns(FutureWarning, match='now loss_tri'):
        # The old key wins over the base config's new one.
        old = head_cls(
            in_channels=4,
            num_classes=3,
            loss_tri=dict(type='TripletLoss', margin=0.3),
            loss_triplet=dict(type='TripletLoss', margin=None))
    old.load_state_dict(new.state_dict())
    torch.testing.assert_close(
        head_losses(old)['loss_tri'],
        head_losses(new)['loss_tri'])
    with pytest.warns(FutureWarning):
        off = head_cls(in_channels=4, num_classes=3, loss_triplet=None)
    assert off.loss_tri is None


def test_checkpoint_of_a_loss_saved_as_loss_triplet_loads(centre_loss):
    head = BNNeckHead(
        in_channels=4, num_classes=3, loss_tri=dict(type='CentreLoss'))
    saved = {
        re.sub(r'^loss_tri\.', 'loss_triplet.', k): v.clone() + 1
        for k, v in head.state_dict().items()
    }
    assert 'loss_triplet.centres' in saved
    head.load_state_dict(saved, strict=True)
    torch.testing.assert_close(head.loss_tri.centres,
                               saved['loss_triplet.centres'])


def test_deprecations_are_shown_under_default_warning_filters():
    """A user running ``tools/train.py`` sees every deprecation.

    Python hides a ``DeprecationWarning`` raised inside a library under
    its default filters, so an old config key would build silently until
    the release that removes it. Built here as the tools build them, in a
    fresh interpreter with no ``-W`` option (pytest's own filters would
    show it).
    """
    script = '\n'.join([
        'import torch',
        'from mmreid.registry import HOOKS, METRICS',
        'from mmreid.evaluation.functional import compute_distance',
        "METRICS.build(dict(type='ReIDMetric', metric='cosine'))",
        "HOOKS.build(dict(type='ModelDistanceHook'))",
        "compute_distance(torch.ones(1, 2), torch.ones(1, 2), "
        "metric='euclidean')",
        'from mmreid.evaluation.metrics import split_metric',
        'split_metric.classic_cmc',
    ])
    done = subprocess.run([sys.executable, '-c', script],
                          capture_output=True,
                          text=True,
                          env=tool_env(),
                          timeout=300)
    assert done.returncode == 0, done.stderr
    for shown in ("ReIDMetric(metric=...) is deprecated",
                  'ModelDistanceHook is deprecated',
                  'compute_distance(metric=...) is deprecated',
                  'split_metric.classic_cmc moved'):
        assert shown in done.stderr, done.stderr
