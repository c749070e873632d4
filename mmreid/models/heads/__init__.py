from .bnneck_head import BNNeckHead

__all__ = ['BNNeckHead']
