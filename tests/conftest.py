import pytest


@pytest.fixture(autouse=True, scope='session')
def mmreid_scope():
    """Build from configs as the runner does: in the mmreid default scope."""
    from mmreid.utils import register_all_modules
    register_all_modules(init_default_scope=True)
