import pytest


def pytest_collection_modifyitems(config, items):
    """Skip the ``cuda``-marked tests on a machine without CUDA."""
    import torch
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs CUDA (marked cuda)')
    for item in items:
        if item.get_closest_marker('cuda') is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True, scope='session')
def mmreid_scope():
    """Build from configs as the runner does: in the mmreid default scope."""
    from mmreid.utils import register_all_modules
    register_all_modules(init_default_scope=True)
