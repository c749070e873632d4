from .agw_resnet import AGWResNet
from .reid_resnet import ReIDResNet

__all__ = ['ReIDResNet', 'AGWResNet']
