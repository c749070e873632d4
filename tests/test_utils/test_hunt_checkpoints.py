"""Wrong-number hunt: every path that gets weights into a model.

Each test builds a tiny model, saves a checkpoint with one deliberate
defect and checks, tensor by tensor, what the path loads against
docs/get_started.md section 6 ("Checkpoints and safety"): every tensor of
the model is either loaded or refused with a message naming it.
"""
import copy
import glob
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmreid.apis import init_model
from mmreid.registry import MODELS
from ..fixtures.processes import load_tool
from ..fixtures.tiny_models import (TINY_BOT_MODEL, TINY_GEM_MODEL,
                                    TINY_SNR_MODEL, TINY_TEST_PIPELINE)

GEM, SNR, PIPELINE = TINY_GEM_MODEL, TINY_SNR_MODEL, TINY_TEST_PIPELINE


def trained_state(model_cfg, seed=0):
    """The state dict of a built model whose every floating-point tensor
    is moved away from its initial value (so a tensor left at its
    initialisation is told apart from a loaded one)."""
    torch.manual_seed(seed)
    model = MODELS.build(copy.deepcopy(model_cfg))
    model.init_weights()
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(torch.rand_like(tensor) + 0.5)
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_publish_refuses_a_numpy_weight_instead_of_dropping_it(tmp_path):
    """A converted GeM checkpoint holds its exponent ``neck.p`` as a NumPy
    array (a conversion that used ``.numpy()``).

    mmreid's loaders refuse such a checkpoint: ``extract_state_dict`` says
    the arrays "would be left out of the load", a silent partial load.
    ``tools/model_converters/publish_model.py`` on the same file keeps only
    ``torch.Tensor`` values, and writes a hashed release without
    ``neck.p`` and without a word. The release is a half-written output:
    loaded with ``strict=False`` it tests GeM with the default ``p``, not
    the trained one. Right: publishing refuses the file (naming
    ``neck.p``), as loading it does, and writes nothing (the tool's
    promise "a kept entry is never dropped in part"; section 6: no silent
    partial load).
    """
    publish_model = load_tool('tools/model_converters/publish_model.py')
    state = trained_state(GEM)
    assert 'neck.p' in state
    state['neck.p'] = state['neck.p'].numpy()
    src = tmp_path / 'gem.pth'
    torch.save(dict(state_dict=state, meta=dict()), src)
    with pytest.raises((ValueError, TypeError), match=r'neck\.p'):
        publish_model.publish(str(src), str(tmp_path / 'gem_release.pth'))
    assert glob.glob(str(tmp_path / 'gem_release*')) == []


def test_pretrained_refuses_a_partly_present_snr_module(tmp_path):
    """A user fine-tunes an SNR model from a trained SNR checkpoint with
    ``model.backbone.init_cfg=dict(type='Pretrained', checkpoint=...,
    prefix='backbone.')``; the checkpoint lacks one tensor of
    ``snr_modules.0`` (its gate's ``fc1.weight``) and holds the other five.

    The load succeeds; ``snr_modules.0`` is a mix of five trained tensors
    and one random one, reported at INFO level as "1 tensors of modules
    added to the pretrained network keep their initialisation:
    snr_modules.0". Section 6 excuses only modules "that are not in the
    pretrained networks" (the checkpoint holds no tensor of them); this
    one is in the checkpoint, so the missing tensor is a partial load and
    must be refused naming it (or be listed in ``allow_missing``).
    """
    state = trained_state(SNR)
    key = 'backbone.snr_modules.0.gate.fc1.weight'
    assert key in state
    del state[key]
    path = tmp_path / 'snr.pth'
    torch.save(dict(state_dict=state), path)
    cfg = copy.deepcopy(SNR)
    cfg['backbone']['init_cfg'] = dict(
        type='Pretrained', checkpoint=str(path), prefix='backbone.')
    model = MODELS.build(cfg)
    with pytest.raises(RuntimeError, match=r'snr_modules\.0\.gate\.fc1'):
        model.init_weights()


def test_pretrained_leaves_an_absent_snr_module_initialised(tmp_path):
    """The documented case the test above must not break: an ImageNet-like
    checkpoint without any SNR tensor initialises the ResNet and leaves
    every SNR module at its own initialisation; every other tensor equals
    the checkpoint's."""
    state = trained_state(SNR)
    plain = {k: v for k, v in state.items() if 'snr_modules' not in k}
    path = tmp_path / 'plain.pth'
    torch.save(dict(state_dict=plain), path)
    cfg = copy.deepcopy(SNR)
    cfg['backbone']['init_cfg'] = dict(
        type='Pretrained', checkpoint=str(path), prefix='backbone.')
    model = MODELS.build(cfg)
    model.init_weights()
    own = model.state_dict()
    for key, value in plain.items():
        if key.startswith('backbone.'):
            assert torch.equal(own[key], value), key


def test_ema_checkpoint_tests_the_state_dict_weights(tmp_path):
    """A checkpoint written with mmengine's ``EMAHook`` holds the averaged
    weights in ``state_dict`` (the hook swaps them in for deployment) and
    the raw ones in ``ema_state_dict``. ``init_model`` must load
    ``state_dict``, tensor by tensor, and ignore ``ema_state_dict``, so
    that it tests what ``tools/test.py`` tests."""
    averaged = trained_state(TINY_BOT_MODEL, seed=1)
    raw = trained_state(TINY_BOT_MODEL, seed=2)
    path = osp.join(tmp_path, 'ema.pth')
    torch.save(
        dict(
            state_dict=averaged,
            ema_state_dict={f'module.{k}': v
                            for k, v in raw.items()},
            meta=dict()), path)
    model = init_model(
        Config(dict(model=TINY_BOT_MODEL, test_pipeline=PIPELINE)), path)
    own = model.state_dict()
    assert set(own) == set(averaged)
    for key, value in averaged.items():
        assert torch.equal(own[key], value), key


def test_dataparallel_fp16_checkpoint_loads_every_tensor_rounded(tmp_path):
    """A half-precision state dict saved from a DataParallel model
    (``module.`` keys) loads into the float32 model: every tensor equals
    the float16 value widened back (IEEE conversion is exact), and no
    tensor keeps its initial value."""
    state = trained_state(TINY_BOT_MODEL)
    half = {
        f'module.{k}': v.half() if v.is_floating_point() else v
        for k, v in state.items()
    }
    path = osp.join(tmp_path, 'dp_fp16.pth')
    torch.save(half, path)
    model = init_model(
        Config(dict(model=TINY_BOT_MODEL, test_pipeline=PIPELINE)), path)
    own = model.state_dict()
    for key, value in state.items():
        expected = value.half().float() if value.is_floating_point() \
            else value
        assert own[key].dtype == value.dtype, key
        assert torch.equal(own[key], expected), key


def test_numpy_weight_is_refused_by_init_model(tmp_path):
    """The load side of the publish test: ``init_model`` refuses a state
    dict holding a NumPy array, naming it, instead of leaving it out."""
    state = trained_state(GEM)
    state['neck.p'] = np.asarray(state['neck.p'].numpy())
    path = osp.join(tmp_path, 'gem_np.pth')
    torch.save(dict(state_dict=state), path)
    with pytest.raises(ValueError, match=r'neck\.p'):
        init_model(Config(dict(model=GEM, test_pipeline=PIPELINE)), path)
