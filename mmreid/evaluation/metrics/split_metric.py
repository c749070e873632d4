"""Old home of :class:`DGSplitMetric` and :class:`CUHK03ClassicMetric`.

They live in :mod:`.dg_split_metric` and :mod:`.cuhk03_classic_metric`,
``classic_cmc`` in :mod:`mmreid.evaluation.functional`; this module keeps
the old import paths for one release.
"""
from typing import Any

from mmreid.utils.deprecation import warn_deprecated
from .cuhk03_classic_metric import CUHK03ClassicMetric
from .dg_split_metric import DGSplitMetric

__all__ = ['DGSplitMetric', 'CUHK03ClassicMetric']


def __getattr__(name: str) -> Any:
    """The old paths of classic_cmc, with a ``FutureWarning``."""
    if name == 'classic_cmc':
        warn_deprecated(
            'mmreid.evaluation.metrics.split_metric.classic_cmc moved to '
            'mmreid.evaluation.functional.classic_cmc; the old path will be '
            'removed')
        from ..functional import classic_cmc
        return classic_cmc
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
