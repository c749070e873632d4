from .backbones import *  # noqa: F401,F403
from .data_preprocessors import *  # noqa: F401,F403
from .distributed import CPUAwareDistributedDataParallel
from .heads import *  # noqa: F401,F403
from .layers import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .plugins import *  # noqa: F401,F403
from .reiders import *  # noqa: F401,F403
from .weight_init import ReportingPretrainedInit, load_pretrained

__all__ = [
    'CPUAwareDistributedDataParallel', 'ReportingPretrainedInit',
    'load_pretrained'
]
