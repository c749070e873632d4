"""mmreid.utils.config_format: a config's text is formatted once."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmreid.utils import config_format

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def test_the_text_is_yapfs_and_formatted_once(monkeypatch):
    """``Config.pretty_text`` ran yapf on every call (four per runner, about
    a second each for a v2 config). After ``import mmreid`` the text is
    yapf's own, and each statement of a config is formatted once: another
    value of one key formats that key's statement alone."""
    import mmengine.config.config as config_module
    from yapf.yapflib.yapf_api import FormatCode
    assert config_module.FormatCode is config_format.format_code
    cfg = Config(
        dict(
            model=dict(type='M', depth=18, out=[1, 2, 3]),
            train_dataloader=dict(batch_size=32, dataset=dict(root='a/'))))
    formatted = []

    def counting(text, **kwargs):
        formatted.append(text)
        return FormatCode(text, **kwargs)

    monkeypatch.setattr(config_format, '_formatter', lambda: counting)
    config_format._format.cache_clear()
    texts = [cfg.pretty_text for _ in range(3)]
    assert len(set(texts)) == 1
    assert [t.split('=')[0] for t in formatted] == [
        'model', 'train_dataloader'
    ]
    cfg.model.depth = 50  # another text: its model statement is formatted
    assert 'depth=50' in cfg.pretty_text
    assert len(formatted) == 3 and 'depth=50' in formatted[-1]
    cfg.model.depth = 18
    assert cfg.pretty_text == texts[0] and len(formatted) == 3
    # What yapf gives without mmreid.
    monkeypatch.setattr(config_module, 'FormatCode', FormatCode)
    assert cfg.pretty_text == texts[0]


@pytest.mark.parametrize('name', [
    'snr/snr_r18_synthreid-v2.py', 'mbn/mbn-agw_r18_synthreid-vi-v2.py',
    'baseline/bot_r50_1xb64-120e_dimn-protocol.py'
])
def test_shipped_configs_are_formatted_as_yapf_formats_them_whole(name):
    """The text formatted statement by statement is the text yapf gives
    for the whole config: the largest configs, a visible-infrared and a
    multi-target one."""
    import mmengine.config.config as config_module
    from yapf.yapflib.yapf_api import FormatCode
    cfg = Config.fromfile(osp.join(REPO, 'configs', name))
    unformatted = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(config_module, 'FormatCode',
                      lambda text, **kwargs: (unformatted.append(text) or
                                              (text, False)))
        cfg.pretty_text
    (text, ) = unformatted
    statements = config_format._top_level_statements(text)
    assert statements is not None and len(statements) > 10
    style = dict(
        based_on_style='pep8',
        blank_line_before_nested_class_or_def=True,
        split_before_expression_after_opening_paren=True)
    config_format._format.cache_clear()
    assert config_format.format_code(text, style) == FormatCode(
        text, style_config=style)
    assert cfg.pretty_text == FormatCode(text, style_config=style)[0]


def test_text_of_another_shape_is_formatted_whole():
    """yapf puts two blank lines around a top-level ``def`` or ``class``,
    and keeps comments: such text is not split."""
    from yapf.yapflib.yapf_api import FormatCode
    style = dict(based_on_style='pep8')
    # A key holding a carriage return: mmengine quotes keys as '{k}', so
    # the text holds a raw CR, a line break to ast but not to
    # split('\n'); split there, a statement was cut in two and yapf
    # raised where it formats the whole text.
    cr_key = "a=dict(\n    {'''\r''': 0})\nb=[\n    0,\n    ]"
    for text in ('x=1\ndef f():\n  return 1', 'x=1\nclass A:\n  pass',
                 '# note\na=1\nb=2', 'a=1\nb=2\n# end', 'a=1\nb=2\n# end\n',
                 'a=1\n\nb=2', 'a=1; b=2', 'a=1\n\n', '', cr_key):
        assert config_format._top_level_statements(text) is None, text
        assert config_format.format_code(text, style) == FormatCode(
            text, style_config=style), text
    text = "a=dict(s=\'\'\'x\ny\'\'\')\nb={'a b': [1,(2,3)]}\nc=1\n"
    assert config_format._top_level_statements(text) == [
        "a=dict(s=\'\'\'x\ny\'\'\')", "b={'a b': [1,(2,3)]}", 'c=1'
    ]
    assert config_format.format_code(text, style) == FormatCode(
        text, style_config=style)
    # yapf's "changed" flag too: formatted text is unchanged.
    formatted = config_format.format_code(text, style)[0]
    assert config_format.format_code(formatted, style) == (formatted, False)


def test_other_arguments_are_passed_to_yapf(monkeypatch):
    seen = []

    def fake(text, style_config=None, **kwargs):
        seen.append((text, style_config, kwargs))
        return text.upper(), True

    monkeypatch.setattr(config_format, '_formatter', lambda: fake)
    config_format._format.cache_clear()
    assert config_format.format_code('a = 1\n', 'pep8') == ('A = 1\n', True)
    assert config_format.format_code(
        'b = 1\n', dict(x=[1]), lines=[1]) == ('B = 1\n', True)
    # A style that cannot be a cache key.
    unhashable = config_format.format_code('c = 1\n', dict(x=[1]))
    assert unhashable == ('C = 1\n', True)
    assert seen == [('a = 1\n', 'pep8', {}),
                    ('b = 1\n', dict(x=[1]), dict(lines=[1])),
                    ('c = 1\n', dict(x=[1]), {})]


def test_a_plain_style_with_other_arguments_is_passed_to_yapf():
    """``lines`` (yapf formats those lines only) is not dropped for a
    style that could be a cache key."""
    config_format._format.cache_clear()
    style = dict(based_on_style='pep8')
    assert config_format.format_code(
        'a=1\nb=2\n', style, lines=[(1, 1)]) == ('a = 1\nb=2\n', True)
    assert config_format.format_code('a=1\nb=2\n',
                                     style) == ('a = 1\nb = 2\n', True)
