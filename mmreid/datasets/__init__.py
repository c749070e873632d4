from .base_reid_dataset import BaseReIDDataset, DatasetLayoutError, list_images
from .cuhk02 import CUHK02
from .cuhk03 import CUHK03NP
from .cuhk_sysu import CUHKSYSU
from .dukemtmc import DukeMTMCReID
from .llcm import LLCM
from .market1501 import Market1501
from .msmt17 import MSMT17
from .multi_source import ConcatReIDDataset
from .regdb import RegDB
from .samplers import *  # noqa: F401,F403
from .small_dg import GRID, PRID2011, QMULiLIDS, VIPeR
from .synthetic import SynthReID, generate_synthreid
from .synthetic_vi import SynthReIDVI
from .sysu_mm01 import SYSUMM01
from .transforms import *  # noqa: F401,F403

__all__ = [
    'BaseReIDDataset', 'DatasetLayoutError', 'list_images', 'Market1501',
    'DukeMTMCReID', 'MSMT17', 'CUHK03NP', 'CUHK02', 'CUHKSYSU', 'SYSUMM01',
    'RegDB', 'LLCM', 'PRID2011', 'GRID', 'VIPeR', 'QMULiLIDS',
    'ConcatReIDDataset', 'SynthReID', 'SynthReIDVI', 'generate_synthreid'
]
