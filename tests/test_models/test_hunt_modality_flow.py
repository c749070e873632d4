"""Black-box hunt: the modality label's path through VI-ReID models.

Each sample's modality (0 visible, 1 infrared) goes from the dataset record
through ``PackReIDInputs``, the collate and the data preprocessor to the
model, whose modality-aware modules (the AGW stems, MBN layers) treat each
sample by it (spec ``mbn_vireid.md`` sections 2.2-2.4 and 2.8). References
are computed here from the definitions, not from mmreid's code.
"""
import os

import pytest
import torch

from mmreid.models import ReIDModel
from mmreid.registry import MODELS
from mmreid.structures import ReIDDataSample
from ..fixtures.dataset_trees import make_regdb
from ..fixtures.tiny_models import TINY_AGW_MBN_MODEL


def _samples(modalities, pids=None):
    """Data samples carrying ``modalities`` (and identities)."""
    out = []
    for i, modality in enumerate(modalities):
        sample = ReIDDataSample()
        if pids is not None:
            sample.set_gt_label(pids[i])
        sample.set_metainfo(dict(modality=modality))
        out.append(sample)
    return out


def _agw_mbn_model():
    """A tiny two-stream AGW model, MBN in the trunk and the BNNeck, with
    different stems and per-modality statistics (so a sample routed to
    the wrong modality gets another feature)."""
    model = MODELS.build(
        dict(
            TINY_AGW_MBN_MODEL,
            head=dict(
                TINY_AGW_MBN_MODEL['head'], norm_cfg=dict(type='MBN',
                                                          dims=1))))
    torch.manual_seed(0)
    model.init_weights()
    with torch.no_grad():
        for param in model.backbone.stems[1].parameters():
            param.add_(0.3 * torch.randn_like(param))
        for name, tensor in model.state_dict().items():
            if name.endswith('running_mean'):
                tensor.uniform_(-0.5, 0.5)
            elif name.endswith('running_var'):
                tensor.uniform_(0.5, 1.5)
    return model.eval()


# ---------------------------------------------------------------------------
# Defect: the model's own routing converts non-integer labels
# ---------------------------------------------------------------------------
@pytest.mark.parametrize('labels', [
    [0.7, 1.0, 1.4],
    torch.tensor([0.7, 1.0, 1.4]),
    [True, False, True],
])
def test_explicit_non_integer_modality_is_refused_by_the_model(labels):
    """A fractional or bool ``modality=`` passed to the model is refused.

    What the user does: in tensor mode without data samples, as
    ``configs/mbn/README.md`` ("Tensor mode") says, calls
    ``model(x, mode='tensor', modality=labels)`` with labels computed as
    floats (e.g. a mean of per-image flags, a float tensor) or as bools.

    What they get: features. ``ReIDModel.route_modality`` runs
    ``torch.as_tensor(modality).long()``, so 0.7 is routed as visible and
    1.4 as infrared, and ``True`` as infrared; the integer check of
    ``set_modality`` / ``check_modality_labels`` (which refuses exactly
    these labels with "must be integers") never sees the original dtype.

    What is right: the spec (section 2.1) defines ``m`` in {0, 1}; mmreid's
    promise is that a mislabelled value is refused, not converted, as
    ``set_modality`` and ``check_modality_labels`` already refuse it and as
    ``mmreid.apis.extract_features`` refuses ``modality=0.5``.
    """
    model = _agw_mbn_model()
    x = torch.randn(3, 3, 32, 16)
    with pytest.raises((TypeError, ValueError), match='integer'):
        with torch.no_grad():
            model(x, mode='tensor', modality=labels)


def test_non_integer_modality_in_data_samples_is_refused_by_the_model():
    """A data sample whose ``metainfo['modality']`` is 0.7 is refused.

    What the user does: builds data samples for ``model(x, samples,
    mode='predict')`` (or a custom pipeline that sets the metainfo) with a
    fractional modality.

    What they get: ``route_modality`` appends ``int(value)`` to the labels,
    so 0.7 goes through the visible stem and the visible MBN statistics,
    silently; the same label given to ``set_modality`` directly is refused.

    What is right: modality is an integer label in {0, 1} (spec 2.1, 2.8);
    a non-integer is refused naming the value (mmreid's ``integer_label``
    rule: "int() would make 0.5 0").
    """
    model = _agw_mbn_model()
    x = torch.randn(3, 3, 32, 16)
    with pytest.raises((TypeError, ValueError), match='integer'):
        with torch.no_grad():
            model(x, _samples([0.7, 1, 1.4]), mode='predict')


# ---------------------------------------------------------------------------
# Test gaps: behaviour that is right, pinned end to end
# ---------------------------------------------------------------------------
def test_mbn_running_stats_of_a_model_follow_each_sample_modality():
    """Per-modality running statistics after training steps of a model.

    A one-stream ResNet with MBN everywhere (the stem ``bn1`` included,
    ``momentum=0.2`` from ``norm_cfg``) trains three steps through
    ``model(x, samples, mode='loss')`` on batches whose modalities are
    shuffled. The stem MBN's running mean and (unbiased) variance of each
    modality equal the momentum recursion over that modality's samples of
    the ``conv1`` output (spec 2.3): ``r <- (1 - m) r + m stat_k``.
    """
    model = ReIDModel(
        backbone=dict(
            type='ReIDResNet',
            depth=18,
            last_stride=1,
            base_channels=8,
            stem_channels=8,
            norm_cfg=dict(type='MBN', momentum=0.2)),
        neck=dict(type='GlobalAvgPool'),
        head=dict(type='BNNeckHead', in_channels=64, num_classes=4))
    torch.manual_seed(0)
    model.init_weights()
    model.train()
    mean = [torch.zeros(8), torch.zeros(8)]
    var = [torch.ones(8), torch.ones(8)]
    for _ in range(3):
        labels = torch.tensor([1, 0, 0, 1, 1, 0, 1, 0])[torch.randperm(8)]
        x = torch.randn(8, 3, 32, 16) + 2 * labels.view(-1, 1, 1, 1)
        with torch.no_grad():
            stem = model.backbone.conv1(x)
        for k in range(2):
            values = stem[labels == k].transpose(0, 1).reshape(8, -1)
            mean[k] = 0.8 * mean[k] + 0.2 * values.mean(1)
            var[k] = 0.8 * var[k] + 0.2 * values.var(1, unbiased=True)
        pids = [i % 4 for i in range(8)]
        losses = model(x, _samples(labels.tolist(), pids), mode='loss')
        sum(v for k, v in losses.items() if 'loss' in k).backward()
    bn1 = model.backbone.bn1
    for k in range(2):
        torch.testing.assert_close(bn1.bns[k].running_mean, mean[k])
        torch.testing.assert_close(bn1.bns[k].running_var, var[k])
        assert int(bn1.bns[k].num_batches_tracked) == 3


def test_eval_features_do_not_depend_on_batch_composition():
    """Eval-mode features of an MBN-AGW model are per sample.

    With ``eval_stats='modality'`` every sample is normalised with its own
    modality's running statistics (spec 2.4) and the stems and non-local
    blocks are per sample, so a sample's feature is the same alone (one
    modality, given as an int) as in a mixed, unsorted batch routed from
    the data samples; and giving it the other modality changes it (the
    label is used, not ignored).
    """
    model = _agw_mbn_model()
    torch.manual_seed(1)
    x = torch.randn(6, 3, 32, 16)
    modalities = [1, 0, 1, 0, 0, 1]
    with torch.no_grad():
        mixed = model(x, _samples(modalities), mode='tensor')
        for i, modality in enumerate(modalities):
            alone = model(x[i:i + 1], mode='tensor', modality=modality)
            torch.testing.assert_close(alone[0], mixed[i])
            other = model(x[i:i + 1], mode='tensor', modality=1 - modality)
            assert (other[0] - mixed[i]).abs().max() > 1e-3


def test_loader_batches_carry_each_image_own_modality(tmp_path, mmreid_scope):
    """A training batch's modality labels are its images' own.

    RegDB (thermal images in ``Thermal/``, drawn darker by the fixture)
    goes through the cross-modality sampler, a flipping pipeline, the
    default collate and the data preprocessor. For every sample of every
    batch, ``metainfo['modality']`` is 1 exactly when its ``img_path`` is
    in ``Thermal/`` (RegDB's layout), and the image in that position of
    the batch tensor is the one loaded from that path (nothing is
    reordered between the images and their labels).
    """
    import numpy as np
    from mmengine.runner import Runner
    from PIL import Image

    from mmreid.models.data_preprocessors import ReIDDataPreprocessor
    root = make_regdb(str(tmp_path / 'RegDB'), images=True)
    loader = Runner.build_dataloader(
        dict(
            batch_size=8,
            num_workers=0,
            sampler=dict(
                type='CrossModalityIdentitySampler',
                batch_size=8,
                num_instances=2,
                seed=0),
            collate_fn=dict(type='default_collate'),
            dataset=dict(
                type='RegDB',
                data_root=root,
                trial=1,
                pipeline=[
                    dict(type='ReIDLoadImageFromFile'),
                    dict(type='PackReIDInputs')
                ])))
    prep = ReIDDataPreprocessor(mean=[0, 0, 0], std=[1, 1, 1])
    seen = 0
    for batch in loader:
        data = prep(batch)
        for image, sample in zip(data['inputs'], data['data_samples']):
            path = sample.metainfo['img_path']
            rel = os.path.relpath(path, root)
            assert sample.metainfo['modality'] == int(
                rel.startswith('Thermal'))
            own = np.array(Image.open(path).convert('RGB'))
            assert torch.equal(image,
                               torch.from_numpy(own).permute(2, 0, 1).float())
            seen += 1
        labels = [s.metainfo['modality'] for s in data['data_samples']]
        assert labels.count(0) == labels.count(1) == 4
    assert seen >= 8
