"""How :class:`~mmreid.engine.runner.ReIDRunner` sets a run's randomness.

mmengine's ``set_randomness``, with three changes a run needs when it
shares its process with other runs (a notebook, a sweep script) or asks
for determinism on CUDA: a seed left to chance is drawn from the system's
entropy, the determinism settings an earlier run turned on are put back
for a run that does not ask for them, and cuBLAS is made deterministic
when asked. A run's ``env_cfg.cudnn_benchmark`` is followed the same way.
"""
import os


class RandomnessMixin:
    """``set_randomness`` of :class:`~mmreid.engine.runner.ReIDRunner`
    (a mixin of mmengine's ``Runner``), and the part of ``setup_env``
    that sets ``cudnn.benchmark``.

    Both run before mmengine builds the run's logger: what they have to
    say is kept and logged once it is built (:meth:`build_logger`), not
    into the log of the runner built before this one (``'current'``).
    """

    def _note_for_log(self, message: str) -> None:
        """Log ``message`` with the run's logger, or keep it for the
        logger :meth:`build_logger` builds (a resume sets the randomness
        again once the logger is there)."""
        logger = self.__dict__.get('logger')
        if logger is not None:
            logger.info(message)
        else:
            self.__dict__.setdefault('_notes_for_log', []).append(message)

    def build_logger(self, *args, **kwargs):
        """mmengine's; the logger then logs what :meth:`setup_env` and
        :meth:`set_randomness` had to say."""
        logger = super().build_logger(*args, **kwargs)
        for message in self.__dict__.pop('_notes_for_log', []):
            logger.info(message)
        return logger

    def setup_env(self, env_cfg: dict) -> None:
        """mmengine's, after putting back ``cudnn.benchmark`` where an
        earlier run of the process turned it on and this one does not ask
        for it (:func:`~mmreid.utils.setup_env.follow_run_cudnn_benchmark`).
        """
        from mmreid.utils.setup_env import follow_run_cudnn_benchmark
        if follow_run_cudnn_benchmark(bool(env_cfg.get('cudnn_benchmark'))):
            self._note_for_log(
                'env_cfg.cudnn_benchmark=False: cudnn.benchmark, which an '
                'earlier run of this process turned on, is as it was '
                'before it.')
        super().setup_env(env_cfg)

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
            self._note_for_log(
                'randomness.deterministic=False: torch\'s deterministic '
                'algorithms and cuDNN settings, which an earlier run of '
                'this process turned on, are as they were before it.')
        if deterministic:
            from mmreid.utils.setup_env import (CUBLAS_WORKSPACE_VAR,
                                                setup_deterministic_cublas)
            if setup_deterministic_cublas():
                import torch
                late = (' (CUDA was already initialised in this process: '
                        'if a CUDA matrix product ran before, torch has '
                        'read the variable already; set it before starting '
                        'Python)' if torch.cuda.is_initialized() else '')
                self._note_for_log(
                    f'randomness.deterministic=True: set '
                    f'{CUBLAS_WORKSPACE_VAR}='
                    f'{os.environ[CUBLAS_WORKSPACE_VAR]} for deterministic '
                    f'cuBLAS{late}.')
        super().set_randomness(
            seed, diff_rank_seed=diff_rank_seed, deterministic=deterministic)
