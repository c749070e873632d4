"""mmengine's ``LoggerHook`` with a JSON record that keeps integer metrics."""
import numpy as np
from mmengine.hooks import LoggerHook as _MMEngineLoggerHook

from mmreid.registry import HOOKS


def _plain(value):
    """``value`` with numpy scalars as Python numbers (recursively)."""
    if isinstance(value, dict):
        return type(value)((k, _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


@HOOKS.register_module(name='LoggerHook')
class LoggerHook(_MMEngineLoggerHook):
    """mmengine's ``LoggerHook``, registered under the same name in mmreid.

    After a test, mmengine writes the metrics to ``<stamp>/<stamp>.json``
    but drops every value that is neither a Python number nor an array: an
    integer metric (``num_query``, ``num_valid_query``, a count) arrives as
    a numpy integer from the message hub and was written as ``null``. This
    hook converts numpy scalars to Python numbers first; everything else is
    mmengine's. Configs keep ``dict(type='LoggerHook', ...)``: with
    ``default_scope='mmreid'`` the registry finds this class first.
    """

    @staticmethod
    def _process_tags(tags: dict):
        return _MMEngineLoggerHook._process_tags(_plain(tags))
