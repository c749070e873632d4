import warnings

from .version import __version__, version_info

# mmcv-lite has no compiled ops by design; mmcv warns about the one it cannot
# import when mmpretrain loads its transformer bricks. mmreid needs no ops.
warnings.filterwarnings(
    'ignore', message='Fail to import ``MultiScaleDeformableAttention``')


#: The warnings ``import mmreid`` showed (a dependency out of the tested
#: range), for the run's log file: they are shown before a tool can keep
#: warnings (:func:`mmreid.utils.logged_warnings.record_warnings`).
IMPORT_WARNINGS: list = []


def _check_versions() -> None:
    """Warn (never fail at import) when a dependency is out of range."""
    from importlib import metadata

    def parse(version: str) -> tuple:
        parts = []
        for part in version.split('+')[0].split('.')[:3]:
            digits = ''.join(c for c in part if c.isdigit())
            parts.append(int(digits or 0))
        return tuple(parts)

    ranges = {
        ('mmengine', 'mmengine-lite'): ('0.10.7', '1.0.0'),
        ('mmcv', 'mmcv-lite', 'mmcv-full'): ('2.0.0', '2.4.0'),
        ('mmpretrain', ): ('1.2.0', '1.3.0'),
    }
    for dists, (low, high) in ranges.items():
        for dist in dists:
            try:
                version = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
            if not parse(low) <= parse(version) < parse(high):
                message = (f'mmreid is tested with {dist}>={low},<{high}, '
                           f'found {dist}=={version}; things may break.')
                warnings.warn(message)
                IMPORT_WARNINGS.append(message)
            break


_check_versions()

from .utils.checkpoint import patch_checkpoint_loaders  # noqa: E402
from .utils.config_format import patch_config_formatting  # noqa: E402

patch_checkpoint_loaders()
patch_config_formatting()

__all__ = ['__version__', 'version_info']
