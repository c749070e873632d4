from ..modality_routing import (modality_aware_modules, modality_context,
                                set_modality)
from .ibn import IBN
from .mbn import MBN, convert_mbn_to_bn
from .mnet import MNet
from .non_local import AGWNonLocal
from .pooling import GeMPool, GlobalAvgPool

__all__ = [
    'MBN', 'set_modality', 'modality_context', 'modality_aware_modules',
    'convert_mbn_to_bn', 'AGWNonLocal', 'GlobalAvgPool', 'GeMPool', 'MNet',
    'IBN'
]
