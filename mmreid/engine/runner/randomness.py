"""How :class:`~mmreid.engine.runner.ReIDRunner` sets a run's randomness.

mmengine's ``set_randomness``, with three changes a run needs when it
shares its process with other runs (a notebook, a sweep script) or asks
for determinism on CUDA: a seed left to chance is drawn from the system's
entropy, the determinism settings an earlier run turned on are put back
for a run that does not ask for them, and cuBLAS is made deterministic
when asked.
"""
import os

from mmengine.logging import print_log


class RandomnessMixin:
    """``set_randomness`` of :class:`~mmreid.engine.runner.ReIDRunner`
    (a mixin of mmengine's ``Runner``)."""

    def set_randomness(self,
                       seed,
                       diff_rank_seed: bool = False,
                       deterministic: bool = False) -> None:
        """mmengine's, after making cuBLAS deterministic when asked, and
        with a seed left to chance drawn from the system's entropy.

        mmengine's ``deterministic=True`` turns on
        ``torch.use_deterministic_algorithms``, under which older torch
        releases raise on every CUDA GEMM unless ``CUBLAS_WORKSPACE_CONFIG``
        is set (see
        :func:`~mmreid.utils.setup_env.setup_deterministic_cublas`).

        mmengine draws ``seed=None`` from numpy's global state, which an
        earlier run in the process left seeded (``TrainRandomStateHook``
        seeds it every iteration): every later run of a sweep with
        ``seed=None`` drew one and the same seed, a function of the earlier
        run's. It is drawn here from ``secrets`` (rank 0's, broadcast).

        A run with ``deterministic=False`` puts back the determinism
        settings an earlier run of the process turned on
        (:func:`~mmreid.utils.setup_env.follow_run_determinism`).
        """
        if seed is None:
            import secrets

            from mmengine.dist import broadcast_object_list, get_world_size
            drawn = [secrets.randbelow(2**31)]
            if get_world_size() > 1:
                broadcast_object_list(drawn)
            seed = drawn[0]
        from mmreid.utils.setup_env import follow_run_determinism
        if follow_run_determinism(deterministic):
            print_log(
                'randomness.deterministic=False: torch\'s deterministic '
                'algorithms and cuDNN settings, which an earlier run of '
                'this process turned on, are as they were before it.',
                logger='current')
        if deterministic:
            from mmreid.utils.setup_env import (CUBLAS_WORKSPACE_VAR,
                                                setup_deterministic_cublas)
            if setup_deterministic_cublas():
                import torch
                late = (' (CUDA was already initialised in this process: '
                        'if a CUDA matrix product ran before, torch has '
                        'read the variable already; set it before starting '
                        'Python)' if torch.cuda.is_initialized() else '')
                print_log(
                    f'randomness.deterministic=True: set '
                    f'{CUBLAS_WORKSPACE_VAR}='
                    f'{os.environ[CUBLAS_WORKSPACE_VAR]} for deterministic '
                    f'cuBLAS{late}.',
                    logger='current')
        super().set_randomness(
            seed, diff_rank_seed=diff_rank_seed, deterministic=deterministic)
