"""Old checkpoints removed only once the new one is saved.

mmengine's ``CheckpointHook`` removes the oldest kept checkpoint
(``max_keep_ckpts``) and the previous best one (``save_best``) *before*
it saves the new one: a save that fails (a full disk, a killed job) left
the work dir without any checkpoint, ``last_checkpoint`` naming a deleted
file. Here the hook's removals wait for the next save and are carried out
only when it succeeds (:meth:`~.reid_runner.ReIDRunner.save_checkpoint`);
a failed save drops them, so the previous checkpoints stay.
"""
from typing import Any, List, Tuple

#: A removal the hook asked for: (backend, method name, path).
Removal = Tuple[Any, str, str]


class DeferredRemovals:
    """A ``CheckpointHook``'s file backend whose ``remove`` and ``rmtree``
    are queued on the runner until its next save succeeds; every other
    call goes to the backend.

    Args:
        backend: The hook's file backend.
        pending (list): The runner's queue of :data:`Removal`.
    """

    def __init__(self, backend: Any, pending: List[Removal]) -> None:
        self._backend = backend
        self._pending = pending

    def remove(self, path: str) -> None:
        self._pending.append((self._backend, 'remove', path))

    def rmtree(self, path: str) -> None:
        self._pending.append((self._backend, 'rmtree', path))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)


def defer_removals(hooks, pending: List[Removal]) -> None:
    """Give every ``CheckpointHook`` of ``hooks`` (once its ``before_train``
    has set its file backend) a :class:`DeferredRemovals` backend."""
    from mmengine.hooks import CheckpointHook
    for hook in hooks:
        backend = getattr(hook, 'file_backend', None)
        if isinstance(hook, CheckpointHook) and backend is not None and \
                not isinstance(backend, DeferredRemovals):
            hook.file_backend = DeferredRemovals(backend, pending)


def carry_out(pending: List[Removal], saved: str) -> None:
    """Carry out the queued removals after a successful save of ``saved``
    (never ``saved`` itself: a best checkpoint saved again under its own
    name), and empty the queue."""
    removals = list(pending)
    pending.clear()
    for backend, method, path in removals:
        if path != saved:
            getattr(backend, method)(path)
