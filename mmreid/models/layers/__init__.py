from .ibn import IBN
from .mnet import MNet
from .pooling import GeMPool, GlobalAvgPool

__all__ = ['GlobalAvgPool', 'GeMPool', 'MNet', 'IBN']
