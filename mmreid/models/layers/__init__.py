from .ibn import IBN
from .pooling import GeMPool, GlobalAvgPool

__all__ = ['GlobalAvgPool', 'GeMPool', 'IBN']
