from .checkpoint import (hub_cache_dir, load_trusted_checkpoint,
                         load_weights_from_url, patch_checkpoint_loaders,
                         trusted_checkpoint_globals)
from .setup_env import register_all_modules

__all__ = [
    'register_all_modules', 'patch_checkpoint_loaders',
    'load_trusted_checkpoint', 'load_weights_from_url',
    'trusted_checkpoint_globals', 'hub_cache_dir'
]
