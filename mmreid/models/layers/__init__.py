from .pooling import GeMPool, GlobalAvgPool

__all__ = ['GlobalAvgPool', 'GeMPool']
