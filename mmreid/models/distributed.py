from mmengine.model import MMDistributedDataParallel

from mmreid.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class CPUAwareDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper that also accepts a model on the CPU.

    mmengine's runner passes ``device_ids=[LOCAL_RANK]``, which torch's DDP
    rejects for a CPU module. For a CPU module the ids are dropped (gloo
    then all-reduces on the CPU); a GPU module is wrapped unchanged.
    ``tools/train.py`` selects this wrapper only when there is no GPU.
    """

    def __init__(self, module, device_ids=None, **kwargs) -> None:
        on_cpu = all(p.device.type == 'cpu' for p in module.parameters())
        super().__init__(
            module=module, device_ids=None if on_cpu else device_ids, **kwargs)
