"""File, folder and label names are read with ASCII digits only.

``re``'s ``\\d`` matches every Unicode decimal digit and ``int()`` reads
them, so without ``re.ASCII`` a file named ``٠٠٠٢_c2s1_000001_00.jpg``
(Arabic-Indic digits) was silently read as identity 2.
"""
import inspect
import os
import re

import pytest

import mmreid.datasets as datasets
from mmreid.datasets import Market1501
from ..fixtures.files import touch

ARABIC_INDIC = str.maketrans('0123456789', '٠١٢٣٤٥٦٧٨٩')

#: (owner, attribute or index, a name the pattern accepts).
EXAMPLES = [
    ('Market1501', 'NAME_PATTERN', '0002_c2s1_000001_00.jpg'),
    ('DukeMTMCReID', 'NAME_PATTERN', '0005_c2_f0046985.jpg'),
    ('CUHK03NP', 'NAME_PATTERN', '0001_c1_01.png'),
    ('CUHK02', 'NAME_PATTERN', '0001_01.png'),
    ('CUHKSYSU', 'cropped_images', 'p1_s1.jpg'),
    ('CUHKSYSU', 'cropped_image', 'p1_n1_s1_hard0.png'),
    ('MSMT17', 'NAME_PATTERN', '0000_000_01_0303morning_0015_0.jpg'),
    ('PRID2011', 'NAME_PATTERN', 'person_0001.png'),
    ('VIPeR', 'NAME_PATTERN', '000_45.bmp'),
    ('QMULiLIDS', 'NAME_PATTERN', '0001001.jpg'),
    ('GRID', 'NAME_PATTERN', '0001_1_25004_107_32_130_364.jpeg'),
    ('LLCM', 'CAM_DIR_PATTERN', 'cam1'),
    ('LLCM', 'CAM_NAME_PATTERN', '0001_c01_s1_f1.jpg'),
    ('LLCM', 'PID_PATTERN', '0001'),
    ('LLCM', 'TEST_NAME_PATTERN', '0003_c01_s185734_f3195_nir.jpg'),
    ('SYSUMM01', 'CAM_PATTERN', 'cam1'),
    ('SYSUMM01', 'PID_PATTERN', '0001'),
    ('SYSUMM01', 'NAME_PATTERN', '0001.jpg'),
]


def pattern_of(owner, key):
    cls = getattr(datasets, owner)
    if key in getattr(cls, 'PREPARATIONS', {}):
        return cls.PREPARATIONS[key][0]
    return getattr(cls, key)


def digit_patterns():
    """Every compiled pattern with a ``\\d`` that a dataset class holds."""
    found = set()
    for name, cls in vars(datasets).items():
        if not inspect.isclass(cls):
            continue
        for key, value in vars(cls).items():
            values = [(key, value)]
            if isinstance(value, dict):
                values = [(k, v[0] if isinstance(v, tuple) else v)
                          for k, v in value.items()]
            for k, v in values:
                if isinstance(v, re.Pattern) and '\\d' in v.pattern:
                    found.add((name, k))
    return found


def test_every_digit_pattern_has_an_example():
    assert digit_patterns() <= {(o, k) for o, k, _ in EXAMPLES}


@pytest.mark.parametrize('owner,key,name', EXAMPLES)
def test_patterns_take_ascii_digits_only(owner, key, name):
    pattern = pattern_of(owner, key)
    assert pattern.search(name), (owner, key, name)
    assert not pattern.search(name.translate(ARABIC_INDIC)), (owner, key)


def test_market_file_with_other_digits_is_refused(market_root):
    # Read as identity 2 (an extra image of a real identity) before.
    name = '0002_c2s1_000001_00.jpg'.translate(ARABIC_INDIC)
    touch(os.path.join(market_root, 'bounding_box_train'), name)
    with pytest.raises(ValueError, match=name):
        Market1501(data_root=market_root)
