"""One yapf pass per config text.

mmengine formats a config's text with yapf (``Config.pretty_text``) each
time it is logged, dumped, stored by ``RuntimeInfoHook`` or written by a
visualisation backend: four times for every runner built, about a second
each for a SynthReID v2 config (31 kB of text) on a 2-core machine. The
formatted text is a function of the text and the style only, so
:func:`patch_config_formatting` keeps the last few results: the same
config is formatted once, and the text written is yapf's, unchanged.
"""
import functools
from typing import Any, Optional, Tuple

#: The results kept (a run formats one or two configs, a test process
#: a few).
CACHE_SIZE = 16

_PATCHED = False


def _formatter():
    """mmengine's ``FormatCode`` (yapf's), before the patch."""
    from yapf.yapflib.yapf_api import FormatCode
    return FormatCode


@functools.lru_cache(maxsize=CACHE_SIZE)
def _format(text: str, style: Tuple[Tuple[str, Any], ...],
            verify: Optional[bool]) -> Tuple[str, bool]:
    kwargs = {} if verify is None else dict(verify=verify)
    return _formatter()(text, style_config=dict(style), **kwargs)


def format_code(unformatted_source: str,
                style_config: Any = None,
                **kwargs) -> Tuple[str, bool]:
    """yapf's ``FormatCode(unformatted_source, style_config, ...)``,
    computed once per text and style.

    A call with other arguments than ``verify``, or a style that is not a
    dict of plain values, is passed to yapf as it is.

    Returns:
        tuple[str, bool]: The formatted text and whether it changed.
    """
    verify = kwargs.get('verify')
    if set(kwargs) - {'verify'} or not isinstance(style_config, dict):
        return _formatter()(
            unformatted_source, style_config=style_config, **kwargs)
    style = tuple(sorted(style_config.items()))
    try:
        hash(style)
    except TypeError:
        return _formatter()(
            unformatted_source, style_config=style_config, **kwargs)
    return _format(unformatted_source, style, verify)


def patch_config_formatting() -> None:
    """Make ``mmengine.config.Config.pretty_text`` format each text once
    (:func:`format_code`). Idempotent; called when :mod:`mmreid` is
    imported."""
    global _PATCHED
    if _PATCHED:
        return
    import mmengine.config.config as config_module
    config_module.FormatCode = format_code
    _PATCHED = True
