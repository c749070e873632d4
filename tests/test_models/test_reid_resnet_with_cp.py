"""ReIDResNet's ``with_cp``: gradient checkpointing of the residual blocks
trades memory for a recomputation and changes nothing else."""
import pytest
import torch

from mmreid.models.backbones.reid_resnet import (ReIDBasicBlock,
                                                 ReIDBottleneck, ReIDResNet)


def _pair(**kwargs):
    """A tiny ReIDResNet without and with ``with_cp``, same weights and
    random running statistics."""
    torch.manual_seed(0)
    plain = ReIDResNet(base_channels=8, stem_channels=8, **kwargs)
    plain.init_weights()
    gen = torch.Generator().manual_seed(1)
    for name, buf in plain.named_buffers():
        if name.endswith('running_mean'):
            buf.copy_(torch.randn(buf.shape, generator=gen))
        elif name.endswith('running_var'):
            buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
        elif name.endswith('num_batches_tracked'):
            buf.fill_(7)
    checkpointed = ReIDResNet(
        base_channels=8, stem_channels=8, with_cp=True, **kwargs)
    checkpointed.load_state_dict(plain.state_dict())
    return plain.train(), checkpointed.train()


def _step(model, x):
    """One training forward and backward; returns the outputs and the
    gradients of the input (None when the stem is frozen: the input of the
    first block then needs no gradient) and of every parameter."""
    x = x.clone().requires_grad_(model.frozen_stages < 0)
    outs = model(x)
    sum((out * torch.arange(out.numel()).view_as(out).sin()).sum()
        for out in outs).backward()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    return outs, x.grad, grads


@pytest.mark.parametrize(
    'kwargs', [
        dict(depth=18),
        dict(depth=50, norm_cfg=dict(type='BN', momentum=None)),
        dict(depth=18, ibn_stages=(True, True, False, False)),
        dict(depth=18, frozen_stages=0, out_indices=(2, 3)),
    ],
    ids=['bn', 'cumulative', 'ibn', 'frozen_stem'])
def test_with_cp_gives_the_outputs_gradients_and_statistics_without_it(kwargs):
    """PyTorch's BatchNorm updates its running statistics once per
    training forward (momentum 0.1, or the cumulative average of
    ``momentum=None`` counted by ``num_batches_tracked``); checkpointing
    recomputes activations and leaves the gradients as they are (Chen et
    al., 2016). So one step with ``with_cp`` gives bit for bit the outputs,
    gradients and buffers of the step without it, also for a stage after a
    frozen stem, whose input needs no gradient."""
    plain, checkpointed = _pair(**kwargs)
    x = torch.randn(4, 3, 32, 16, generator=torch.Generator().manual_seed(2))
    outs, x_grad, grads = _step(plain, x)
    outs_cp, x_grad_cp, grads_cp = _step(checkpointed, x)
    for out, out_cp in zip(outs, outs_cp):
        assert torch.equal(out, out_cp)
    if x_grad is not None:
        assert torch.equal(x_grad, x_grad_cp)
    assert grads.keys() == grads_cp.keys()
    assert any(n.startswith('layer1.') for n in grads)
    for name, grad in grads.items():
        assert grad is not None, name
        assert torch.equal(grad, grads_cp[name]), name
    expected = plain.state_dict()
    for key, value in checkpointed.state_dict().items():
        assert torch.equal(value, expected[key]), key


def test_with_cp_recomputes_the_blocks_in_the_backward_pass():
    """``with_cp`` still checkpoints (the point of it: memory): every block
    runs again in the backward pass of a training step, not when autograd
    does not record."""
    _, checkpointed = _pair(depth=18)
    blocks = [
        m for m in checkpointed.modules()
        if isinstance(m, (ReIDBasicBlock, ReIDBottleneck))
    ]
    assert len(blocks) == 8
    calls = []
    for block in blocks:
        block.conv1.register_forward_hook(lambda *args: calls.append(1))
    x = torch.randn(4, 3, 32, 16)
    outs = checkpointed(x)
    assert len(calls) == 8
    outs[0].sum().backward()
    assert len(calls) == 16
    with torch.no_grad():
        checkpointed(x)
    assert len(calls) == 24
