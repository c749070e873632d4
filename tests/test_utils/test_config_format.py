"""mmreid.utils.config_format: a config's text is formatted once."""
from mmengine.config import Config

from mmreid.utils import config_format


def test_the_text_is_yapfs_and_formatted_once(monkeypatch):
    """``Config.pretty_text`` ran yapf on every call (four per runner, about
    a second each for a v2 config). After ``import mmreid`` the text is
    yapf's own, and the same config is formatted once."""
    import mmengine.config.config as config_module
    from yapf.yapflib.yapf_api import FormatCode
    assert config_module.FormatCode is config_format.format_code
    cfg = Config(
        dict(
            model=dict(type='M', depth=18, out=[1, 2, 3]),
            train_dataloader=dict(batch_size=32, dataset=dict(root='a/'))))
    calls = []

    def counting():
        calls.append(1)
        return FormatCode

    monkeypatch.setattr(config_format, '_formatter', counting)
    config_format._format.cache_clear()
    texts = [cfg.pretty_text for _ in range(3)]
    assert len(calls) == 1 and len(set(texts)) == 1
    cfg.model.depth = 50  # another text: formatted again
    assert 'depth=50' in cfg.pretty_text and len(calls) == 2
    cfg.model.depth = 18
    assert cfg.pretty_text == texts[0] and len(calls) == 2
    # What yapf gives without mmreid.
    monkeypatch.setattr(config_module, 'FormatCode', FormatCode)
    assert cfg.pretty_text == texts[0]


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
