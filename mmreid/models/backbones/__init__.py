from .reid_resnet import ReIDResNet

__all__ = ['ReIDResNet']
