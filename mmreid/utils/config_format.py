"""One yapf pass per config statement.

mmengine formats a config's text with yapf (``Config.pretty_text``) each
time it is logged, dumped, stored by ``RuntimeInfoHook`` or written by a
visualisation backend: four times for every runner built, about a second
each for a SynthReID v2 config (31 kB of text) on a 2-core machine. The
formatted text is a function of the text and the style only, so
:func:`patch_config_formatting` keeps the results: the same config is
formatted once, and the text written is yapf's, unchanged.

The text ``pretty_text`` formats is one ``key=value`` statement per
top-level key, without blank lines or comments, and yapf formats each
statement on its own (only blank lines between statements depend on
their neighbours, and there are none). Each statement is formatted and
kept on its own: configs that differ in a few keys (a test's paths, a
sweep's learning rate) share the formatting of the others. Text of
another shape is formatted whole.
"""
import ast
import functools
from typing import Any, List, Optional, Tuple

#: The formatted statements kept (a v2 config has about 25; the 84
#: shipped configs have about 290 distinct ones).
CACHE_SIZE = 1024

#: The statements formatted one by one (the others are formatted with
#: their neighbours).
SIMPLE = (ast.Assign, ast.AnnAssign, ast.AugAssign, ast.Expr)

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
    computed once per top-level statement and style (once per text where
    the text is not made of whole statements alone).

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
    statements = _top_level_statements(unformatted_source)
    if statements is None:
        return _format(unformatted_source, style, verify)
    text = ''.join(
        _format(statement + '\n', style, verify)[0]
        for statement in statements)
    return text, text != unformatted_source


def _top_level_statements(text: str) -> Optional[List[str]]:
    """The text of each top-level statement, where they are the whole text
    (one or more lines each, nothing between them), else None.

    None for text that does not parse, text with a carriage return (which
    ast counts as a line break), statements that share a line or
    are not assignments or expressions (yapf puts blank lines around a
    ``def`` or ``class``), and text that the statements do not cover:
    blank lines, comments, surrounding whitespace. That text is formatted
    whole.
    """
    if '\r' in text:
        return None  # a line break to ast, not to split('\n')
    try:
        body = ast.parse(text).body
    except (SyntaxError, ValueError):
        return None
    lines = text.split('\n')
    statements, end = [], 0
    for node in body:
        if not isinstance(node, SIMPLE) or node.col_offset != 0 or (
                node.lineno != end + 1):
            return None
        end = node.end_lineno
        statements.append('\n'.join(lines[node.lineno - 1:end]))
    if not statements or end != len(text.rstrip('\n').split('\n')) or (
            len(text) - len(text.rstrip('\n')) > 1):
        return None
    return statements


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
