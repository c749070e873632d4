import datetime
import os
import warnings
from typing import Optional

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


#: torch's determinism settings before a run of this process asked for
#: determinism (None: none did, or a later run put them back).
_BEFORE_DETERMINISTIC: Optional[dict] = None


def follow_run_determinism(deterministic: bool) -> bool:
    """Before a runner sets its randomness: keep torch's determinism
    settings where the run asks for determinism, and put them back where
    it does not but an earlier run of this process turned them on.

    mmengine's ``randomness.deterministic=True`` turns on
    ``torch.use_deterministic_algorithms`` and ``cudnn.deterministic``
    (``cudnn.benchmark`` off) and nothing turns them off: a later run of a
    sweep or notebook with ``deterministic=False`` ran under them (on CUDA
    another cuDNN algorithm choice and speed, and an error for an op
    without a deterministic kernel) while its log said
    ``deterministic: False``. Settings the user made before any such run
    are left as they were.

    Args:
        deterministic (bool): The run's ``randomness.deterministic``.

    Returns:
        bool: True where the settings were put back.
    """
    import torch
    global _BEFORE_DETERMINISTIC
    cudnn = torch.backends.cudnn
    if deterministic:
        if _BEFORE_DETERMINISTIC is None:
            warn_only = torch.is_deterministic_algorithms_warn_only_enabled
            # Where this run's or an earlier run's env_cfg turned
            # cudnn.benchmark on, the value before it is the user's.
            benchmark = (cudnn.benchmark if _BEFORE_BENCHMARK is None else
                         _BEFORE_BENCHMARK)
            _BEFORE_DETERMINISTIC = dict(
                algorithms=torch.are_deterministic_algorithms_enabled(),
                warn_only=warn_only(),
                cudnn_deterministic=cudnn.deterministic,
                cudnn_benchmark=benchmark)
        return False
    if _BEFORE_DETERMINISTIC is None:
        return False
    before, _BEFORE_DETERMINISTIC = _BEFORE_DETERMINISTIC, None
    torch.use_deterministic_algorithms(
        before['algorithms'], warn_only=before['warn_only'])
    cudnn.deterministic = before['cudnn_deterministic']
    # This run's env_cfg.cudnn_benchmark may have turned it on already.
    cudnn.benchmark = before['cudnn_benchmark'] or cudnn.benchmark
    return True


#: ``cudnn.benchmark`` before a run of this process turned it on through
#: ``env_cfg.cudnn_benchmark`` (None: none did, or a later run put it back).
_BEFORE_BENCHMARK: Optional[bool] = None


def follow_run_cudnn_benchmark(benchmark: bool) -> bool:
    """Before a runner sets up its environment: keep ``cudnn.benchmark``
    where the run asks for it, and put it back where it does not but an
    earlier run of this process turned it on.

    mmengine's ``env_cfg.cudnn_benchmark=True`` turns ``cudnn.benchmark``
    on and nothing turns it off: a later run of a sweep or notebook with
    ``cudnn_benchmark=False`` (mmreid's default) chose its cuDNN
    algorithms by timing them, which may differ from run to run, while
    its config said False. A value the user set before any such run is
    left as it was.

    Args:
        benchmark (bool): The run's ``env_cfg.cudnn_benchmark``.

    Returns:
        bool: True where the setting was put back.
    """
    import torch
    global _BEFORE_BENCHMARK
    cudnn = torch.backends.cudnn
    if benchmark:
        if _BEFORE_BENCHMARK is None:
            _BEFORE_BENCHMARK = bool(cudnn.benchmark)
        return False
    if _BEFORE_BENCHMARK is None:
        return False
    before, _BEFORE_BENCHMARK = _BEFORE_BENCHMARK, None
    changed = cudnn.benchmark != before
    cudnn.benchmark = before
    return changed
