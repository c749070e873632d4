import datetime
import warnings

from mmengine import DefaultScope


def register_all_modules(init_default_scope: bool = True) -> None:
    """Import every mmreid module so that its classes are registered.

    Args:
        init_default_scope (bool): Whether to set ``'mmreid'`` as the default
            scope, so that configs may name mmreid classes without a prefix.
            Defaults to True.
    """
    import mmreid.datasets  # noqa: F401,F403
    import mmreid.engine  # noqa: F401,F403
    import mmreid.evaluation  # noqa: F401,F403
    import mmreid.models  # noqa: F401,F403
    import mmreid.structures  # noqa: F401,F403
    import mmreid.visualization  # noqa: F401,F403

    if not init_default_scope:
        return
    current = DefaultScope.get_current_instance()
    if current is None:
        DefaultScope.get_instance('mmreid', scope_name='mmreid')
    elif current.scope_name != 'mmreid':
        warnings.warn(f'The current default scope "{current.scope_name}" is '
                      'not "mmreid"; register_all_modules creates a new '
                      'default scope named "mmreid" for this process.')
        name = f'mmreid-{datetime.datetime.now()}'
        DefaultScope.get_instance(name, scope_name='mmreid')
