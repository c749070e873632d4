from .bnneck_head import BNNeckHead
from .gmn_head import GMNHead

__all__ = ['BNNeckHead', 'GMNHead']
