"""The learning rates a run logs are those it trains with."""
import logging

import pytest
import torch
from mmengine.optim import OptimWrapperDict, build_optim_wrapper
from mmengine.optim.scheduler import LinearLR

from mmreid.engine.runner import ReIDRunner


class TinyNet(torch.nn.Module):

    def __init__(self):
        super().__init__()
        self.backbone = torch.nn.Linear(4, 4)
        self.classifier = torch.nn.Linear(4, 2)


def scaling_runner(batch_size, world_size=1):
    """Just what ``Runner.scale_lr`` reads of a runner: the train loader's
    batch size, the world size, a logger and unbuilt schedulers."""
    runner = ReIDRunner.__new__(ReIDRunner)
    runner._train_dataloader = dict(batch_size=batch_size)
    runner._world_size = world_size
    runner.logger = logging.getLogger('test_scaled_lr')
    runner.param_schedulers = None
    return runner


def wrapper(lr=0.01):
    """SGD with a x10 classifier: two parameter groups, so mmengine keeps
    ``base_param_settings`` and logs ``base_lr``."""
    return build_optim_wrapper(
        TinyNet(),
        dict(
            optimizer=dict(type='SGD', lr=lr, momentum=0.9),
            paramwise_cfg=dict(custom_keys={'classifier': dict(lr_mult=10)})))


@pytest.mark.parametrize('enable', [True, False])
def test_logged_base_lr_is_the_scaled_rate(enable):
    """Cross-check audit (s19 T1): with --auto-scale-lr the log said
    base_lr 3.5e-4, the config's, while every group without a multiplier
    trained at 1.75e-4 (batch 8 / base 16). By definition base_lr is the
    config's lr x 8 / 16 x the schedule's factor, the rate of those
    groups."""
    optim = wrapper(lr=0.01)
    scaling_runner(batch_size=8).scale_lr(
        optim, dict(base_batch_size=16, enable=enable))
    ratio = 8 / 16 if enable else 1.0
    lrs = optim.get_lr()
    assert sorted(set(lrs['lr'])) == pytest.approx([0.01 * ratio, 0.1 * ratio])
    assert lrs['base_lr'] == pytest.approx([0.01 * ratio], rel=1e-12)
    # Schedulers built afterwards scale both alike.
    scheduler = LinearLR(optim, start_factor=0.5, end=4)
    assert optim.get_lr()['base_lr'] == pytest.approx([0.005 * ratio])
    scheduler.step()
    assert optim.get_lr()['base_lr'][0] == pytest.approx(
        min(optim.get_lr()['lr']))


def test_each_wrapper_of_a_dict_is_scaled():
    optims = OptimWrapperDict(a=wrapper(0.01), b=wrapper(0.02))
    scaling_runner(
        batch_size=8,
        world_size=4).scale_lr(optims, dict(base_batch_size=16, enable=True))
    assert optims['a'].get_lr()['base_lr'] == pytest.approx([0.02])
    assert optims['b'].get_lr()['base_lr'] == pytest.approx([0.04])
