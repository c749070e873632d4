"""load_model_state: the rules every whole-model load follows."""
import pytest
import torch
from mmengine.config import Config

from mmreid.apis import init_model
from mmreid.registry import MODELS
from mmreid.utils.model_state import load_model_state
from ..fixtures.tiny_models import (TINY_BOT_MODEL, TINY_GEM_MODEL,
                                    TINY_SNR_MODEL, TINY_TEST_PIPELINE)

BASE = TINY_BOT_MODEL
GEM, SNR, PIPELINE = TINY_GEM_MODEL, TINY_SNR_MODEL, TINY_TEST_PIPELINE


def save(model_cfg, path):
    model = MODELS.build(model_cfg)
    model.init_weights()
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return str(path)


def test_checkpoint_of_another_neck_is_refused(tmp_path):
    # Trained with GeM (p=6), tested with the average-pooling config: strict
    # loading gave one warning and the features of another network.
    ckpt = save(GEM, tmp_path / 'gem.pth')
    cfg = Config(dict(model=BASE, test_pipeline=PIPELINE))
    with pytest.raises(RuntimeError) as info:
        init_model(cfg, ckpt)
    message = str(info.value)
    assert ckpt in message
    assert 'neck.p' in message
    assert 'not in the model' in message
    assert 'Is it the checkpoint of this config?' in message
    assert 'strict=False' in message
    # The opt-out still loads, with the warning.
    model = init_model(cfg, ckpt, strict=False)
    assert isinstance(model.neck, MODELS.get('GlobalAvgPool'))


def test_unexpected_tensors_are_named_then_counted(tmp_path):
    ckpt = save(SNR, tmp_path / 'snr.pth')
    model = MODELS.build(BASE)
    checkpoint = torch.load(ckpt)
    with pytest.raises(RuntimeError) as info:
        load_model_state(
            model, checkpoint, ckpt, opt_out='`--strict false`')
    message = str(info.value)
    assert '24 tensors that are not in the model' in message
    assert 'backbone.snr_modules.0.in_norm.weight' in message
    assert '(14 more)' in message
    assert '`--strict false`' in message
    report = load_model_state(model, checkpoint, ckpt, strict=False)
    assert len(report['unexpected']) == 24


def test_missing_and_unexpected_are_one_error(tmp_path):
    ckpt = save(BASE, tmp_path / 'plain.pth')
    checkpoint = torch.load(ckpt)
    checkpoint['state_dict'] = {
        k.replace('head.bnneck.', 'head.bn.'): v
        for k, v in checkpoint['state_dict'].items()
    }
    with pytest.raises(RuntimeError) as info:
        load_model_state(MODELS.build(BASE), checkpoint, ckpt)
    message = str(info.value)
    assert 'lacks 4 tensors of the model: head.bnneck.weight' in message
    assert ('holds 4 tensors that are not in the model: head.bn.weight'
            in message)


def test_num_batches_tracked_differences_are_harmless(tmp_path):
    ckpt = save(BASE, tmp_path / 'plain.pth')
    checkpoint = torch.load(ckpt)
    state = checkpoint['state_dict']
    # A norm without the counter in the checkpoint (fast-reid) or in the
    # model (the counter is not a weight).
    state.pop('backbone.bn1.num_batches_tracked')
    state['head.extra.num_batches_tracked'] = torch.tensor(3)
    report = load_model_state(MODELS.build(BASE), checkpoint, ckpt)
    assert report['missing'] == [] and report['unexpected'] == []


def test_shape_error_names_the_checkpoints_own_config(tmp_path):
    # A checkpoint trained twice as wide (base_channels 16, so 128 features)
    # tested with the narrow config: 20+ shape mismatches and no word that
    # its own config (meta['cfg']) says base_channels=16, in_channels=128.
    wide = dict(
        BASE,
        backbone=dict(BASE['backbone'], base_channels=16, stem_channels=16),
        head=dict(BASE['head'], in_channels=128))
    model = MODELS.build(wide)
    meta = dict(cfg=Config(dict(model=wide)).pretty_text)
    ckpt = str(tmp_path / 'wide.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=meta), ckpt)
    # An initialisation differs too, but a checkpoint replaces it.
    narrow = dict(
        BASE,
        backbone=dict(
            BASE['backbone'],
            init_cfg=dict(type='Pretrained', checkpoint='r18.pth')))
    cfg = Config(dict(model=narrow, test_pipeline=PIPELINE))
    # Testing it is refused before the tensors are compared, with the keys
    # that differ from its own config (trained_arch.network_differences).
    with pytest.raises(ValueError) as info:
        init_model(cfg, ckpt)
    assert ("model.backbone.base_channels: the checkpoint's config has 16, "
            'the config 8' in str(info.value))
    assert 'init_cfg' not in str(info.value)
    # Accepting another network (strict=False) does not make the tensors
    # fit: the shape error names the same keys.
    with pytest.raises(RuntimeError) as info:
        init_model(cfg, ckpt, strict=False)
    message = str(info.value)
    assert 'does not fit the model' in message
    assert ('model.backbone.base_channels: 16 in the checkpoint, 8 now'
            in message)
    assert 'model.backbone.stem_channels: 16 in the checkpoint, 8 now' \
        in message
    assert 'model.head.in_channels: 128 in the checkpoint, 64 now' in message
    assert 'init_cfg' not in message
    assert '--cfg-options' in message


def test_shape_error_lists_ten_tensors_and_the_differing_model_parts(tmp_path):
    """The shape error names the first 10 tensors, then how many more;
    the saved config's differences are those of the model parts whose
    tensors do not fit (not the data preprocessor's, nor init_cfg)."""
    wide = dict(
        BASE,
        backbone=dict(BASE['backbone'], base_channels=16, stem_channels=16),
        head=dict(BASE['head'], in_channels=128),
        data_preprocessor=dict(type='ReIDDataPreprocessor', mean=[1, 2, 3]))
    model = MODELS.build(wide)
    narrow = MODELS.build(BASE)
    # The classifier is skipped at test time (another identity count).
    mismatched = [
        k for k, v in model.state_dict().items()
        if v.shape != narrow.state_dict()[k].shape and 'classifier' not in k
    ]
    assert len(mismatched) > 10
    ckpt = str(tmp_path / 'wide.pth')
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(cfg=Config(dict(model=wide)).pretty_text)), ckpt)
    with pytest.raises(RuntimeError) as info:
        load_model_state(
            narrow,
            torch.load(ckpt),
            ckpt,
            cfg=Config(dict(model=dict(BASE, data_preprocessor=None))))
    message = str(info.value)
    shown = [f'{k}: ' for k in mismatched]
    assert all(k in message for k in shown[:10])
    assert not any(k in message for k in shown[10:])
    assert f'; ... ({len(mismatched) - 10} more). ' in message
    assert 'model.backbone.base_channels: 16 in the checkpoint, 8 now' \
        in message
    assert 'data_preprocessor' not in message


def test_ten_unexpected_tensors_are_all_named_without_a_count():
    model = MODELS.build(BASE)
    state = model.state_dict()
    extra = [f'head.extra{i}' for i in range(10)]
    state.update({k: torch.zeros(1) for k in extra})
    with pytest.raises(RuntimeError) as info:
        load_model_state(model, dict(state_dict=state), 'ten.pth')
    assert f'holds 10 tensors that are not in the model: {", ".join(extra)}' \
        ' (the model would' in str(info.value)


def test_a_classifier_error_keeps_the_saved_config_note():
    """Loaded to train (the classifier is not skipped), a wider checkpoint
    names both its config's differences and the classifier's fix."""
    wide = dict(
        BASE,
        backbone=dict(BASE['backbone'], base_channels=16, stem_channels=16),
        head=dict(BASE['head'], in_channels=128))
    model = MODELS.build(wide)
    checkpoint = dict(
        state_dict=model.state_dict(),
        meta=dict(cfg=Config(dict(model=wide)).pretty_text))
    with pytest.raises(RuntimeError) as info:
        load_model_state(
            MODELS.build(BASE),
            checkpoint,
            'wide.pth',
            skip_other_classifier=False,
            cfg=Config(dict(model=BASE)))
    message = str(info.value)
    assert 'model.head.in_channels: 128 in the checkpoint, 64 now' in message
    assert 'A classifier trained on another number of identities' in message


def test_a_classifier_of_another_training_set_is_one_of_other_ids():
    """Loaded to train on another training set (``other_training_set``),
    a classifier of the same shape is refused as one of another number of
    identities, or, where such a classifier is skipped, left at the
    model's initialisation (the rest loads)."""
    trained = MODELS.build(BASE)
    checkpoint = dict(
        state_dict={
            k: v + 1 if v.is_floating_point() else v
            for k, v in trained.state_dict().items()
        })
    other = "dataset_name: 'd0' in the checkpoint, 'd1' now"
    with pytest.raises(
            RuntimeError,
            match=r'head\.classifier\.weight: trained on the identities of '
            r'another training set \(dataset_name'):
        load_model_state(
            MODELS.build(BASE),
            checkpoint,
            'd0.pth',
            skip_other_classifier=False,
            other_training_set=other)
    model = MODELS.build(BASE)
    start = model.head.classifier.weight.detach().clone()
    report = load_model_state(
        model, checkpoint, 'd0.pth', other_training_set=other)
    assert report['skipped'] == ['head.classifier.weight']
    assert torch.equal(model.head.classifier.weight, start)
    loaded = model.state_dict()
    for key, value in checkpoint['state_dict'].items():
        if key != 'head.classifier.weight':
            assert torch.equal(loaded[key], value), key


def test_nested_trained_model_loads_keep_the_mappings_off():
    # init_mappings_on: off while any trained_model_load block runs (the
    # depth of the blocks), on again only after the outermost ends.
    from mmreid.models.init_mappings import (init_mappings_on,
                                             trained_model_load)
    assert init_mappings_on()
    with trained_model_load():
        with trained_model_load():
            assert not init_mappings_on()
        assert not init_mappings_on()
    assert init_mappings_on()


def test_a_converted_imagenet_backbone_is_told_to_be_an_init_cfg(
        tmp_path, capsys):
    """resnet2mmreid's output holds a backbone only: given to init_model
    (or load_from) it is refused as a backbone checkpoint, with the
    ``Pretrained`` init_cfg the converter prints, not steered to a partial
    load with ``strict=False``; that init_cfg loads it."""
    from mmreid.utils.key_mapping import convert_checkpoint_file
    trained = MODELS.build(BASE)
    trained.init_weights()
    imagenet = {
        k[len('backbone.'):]: v
        for k, v in trained.state_dict().items() if k.startswith('backbone.')
    }
    imagenet['fc.weight'] = torch.rand(10, 64)
    imagenet['fc.bias'] = torch.rand(10)
    src = tmp_path / 'resnet18_tiny.pth'
    torch.save(imagenet, src)
    dst = str(tmp_path / 'r18_mmreid.pth')
    convert_checkpoint_file(str(src), dst, 'torchvision')
    advice = ("model.backbone.init_cfg=dict(type='Pretrained', "
              f"checkpoint={dst!r}, prefix='backbone.')")
    assert advice in capsys.readouterr().out
    cfg = Config(dict(model=BASE, test_pipeline=PIPELINE))
    with pytest.raises(RuntimeError) as info:
        init_model(cfg, dst)
    message = str(info.value)
    assert 'is a backbone checkpoint' in message
    assert advice in message
    assert 'head.bnneck.weight' in message
    assert 'strict=False' not in message
    model_cfg = dict(
        BASE,
        backbone=dict(
            BASE['backbone'],
            init_cfg=dict(
                type='Pretrained', checkpoint=dst, prefix='backbone.')))
    model = MODELS.build(model_cfg)
    model.init_weights()
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(value, imagenet[key]), key


def mutated(tmp_path, change):
    """A checkpoint of BASE whose state dict ``change`` edits in place."""
    model = MODELS.build(BASE)
    model.init_weights()
    state = dict(model.state_dict())
    wrapper = dict(state_dict=state, meta=dict())
    change(state, wrapper)
    path = str(tmp_path / 'mutated.pth')
    torch.save(wrapper, path)
    return path


CONV = 'backbone.conv1.weight'


@pytest.mark.parametrize('change,error,match', [
    (lambda s, w: s.update({'module.' + CONV: s[CONV] + 1}), ValueError,
     "holds 'backbone.conv1.weight' both with and without the "
     "DataParallel prefix 'module.'"),
    (lambda s, w: w.update(model=dict(s)), ValueError,
     "holds weights under both 'state_dict' and 'model'"),
    (lambda s, w: s.update({CONV: s[CONV].numpy()}), ValueError,
     r"holds NumPy arrays where tensors are expected \(1: "
     r"\['backbone.conv1.weight'\]\)"),
    (lambda s, w: s.update({CONV: (s[CONV] * 100).long()}), RuntimeError,
     'the first backbone.conv1.weight: torch.int64 in the checkpoint, '
     'torch.float32 in the model'),
    (lambda s, w: s.update({CONV: s[CONV].to(torch.complex64) + 0.5j}),
     RuntimeError, 'torch.complex64 in the checkpoint'),
    (lambda s, w: s.update({'backbone.bn1.weight': s['backbone.bn1.weight'] >
                            1}), RuntimeError, 'torch.bool in the checkpoint'),
])
def test_a_checkpoint_whose_load_would_be_a_guess_is_refused(
        tmp_path, change, error, match):
    """These loaded under strict, changing the features without a word:
    the last of two copies of a tensor won, an ndarray was dropped
    (the error then blamed the architecture), integers became weights and
    an imaginary part was dropped with a warning torch prints once per
    process."""
    path = mutated(tmp_path, change)
    cfg = Config(dict(model=BASE, test_pipeline=PIPELINE))
    with pytest.raises(error, match=match):
        init_model(cfg, path)


def test_other_float_precisions_and_equal_copies_load(tmp_path):
    """fp16/fp64 weights are converted; a 'module.' copy equal to its
    twin is the same tensor."""
    def change(state, wrapper):
        state[CONV] = state[CONV].double()
        state['backbone.bn1.weight'] = state['backbone.bn1.weight'].half()
        state['module.' + CONV] = state[CONV].clone()

    path = mutated(tmp_path, change)
    init_model(Config(dict(model=BASE, test_pipeline=PIPELINE)), path)
