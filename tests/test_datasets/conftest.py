import pytest

from ..fixtures.dataset_trees import make_cuhk03_np, make_market1501


@pytest.fixture
def market_root(tmp_path):
    """A Market-1501 tree (see :func:`make_market1501`)."""
    return make_market1501(tmp_path / 'market1501')


@pytest.fixture
def cuhk03_root(tmp_path):
    """A CUHK03-NP tree (see :func:`make_cuhk03_np`)."""
    return make_cuhk03_np(tmp_path / 'cuhk03-np')
