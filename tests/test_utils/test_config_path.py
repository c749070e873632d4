import pytest

from mmreid.utils.config import load_config


@pytest.mark.parametrize('path,suggested', [
    ('configs/baseline/bot_r18_synthreid_typo.py',
     "'configs/baseline/bot_r18_synthreid.py'"),
    ('configs/basline/bot_r18_synthreid.py',
     "'configs/baseline/bot_r18_synthreid.py'"),
])
def test_a_missing_config_suggests_the_closest_names(path, suggested):
    with pytest.raises(FileNotFoundError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f'config file {path!r} does not exist; '
                              f'did you mean {suggested}')
    assert '_base_' not in message


def test_nothing_close_is_suggested_as_nothing(tmp_path):
    path = str(tmp_path / 'nothing_like_it.py')
    with pytest.raises(FileNotFoundError) as info:
        load_config(path)
    assert str(info.value) == f'config file {path!r} does not exist'
