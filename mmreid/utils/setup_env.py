import datetime
import os
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


#: The variable cuBLAS reads for its workspace, and the two settings under
#: which its GEMMs are deterministic (torch's reproducibility notes).
CUBLAS_WORKSPACE_VAR = 'CUBLAS_WORKSPACE_CONFIG'
DETERMINISTIC_CUBLAS_CONFIGS = (':4096:8', ':16:8')


def setup_deterministic_cublas() -> bool:
    """Set ``CUBLAS_WORKSPACE_CONFIG`` for deterministic cuBLAS GEMMs.

    With ``torch.use_deterministic_algorithms(True)`` (what
    ``randomness = dict(deterministic=True)`` asks of mmengine), older torch
    releases raise on every CUDA matrix product unless this variable holds
    one of :data:`DETERMINISTIC_CUBLAS_CONFIGS` (recent ones no longer
    check it), and torch reads it once per process, at the first GEMM.
    Call this before any CUDA work.

    Returns:
        bool: True if the variable was unset (or empty) and is now
        ``':4096:8'``; False if it already held a deterministic setting.

    Raises:
        ValueError: The variable holds another setting, under which cuBLAS
            is not deterministic.
    """
    value = os.environ.get(CUBLAS_WORKSPACE_VAR, '')
    if value in DETERMINISTIC_CUBLAS_CONFIGS:
        return False
    if value:
        raise ValueError(
            f'randomness.deterministic=True needs deterministic cuBLAS, but '
            f'{CUBLAS_WORKSPACE_VAR}={value!r}; expected one of '
            f'{", ".join(DETERMINISTIC_CUBLAS_CONFIGS)} (or unset: mmreid '
            f'then sets {DETERMINISTIC_CUBLAS_CONFIGS[0]}).')
    os.environ[CUBLAS_WORKSPACE_VAR] = DETERMINISTIC_CUBLAS_CONFIGS[0]
    return True
