"""Evaluation dataloader settings that hand the metrics part of a test
set: used by :func:`~mmreid.engine.runner.reid_loops.
check_keeps_every_sample` beside its ``drop_last`` and sampler checks."""
from typing import Optional


def slicing_option(dataloader, key: str) -> Optional[str]:
    """``<key>.num_batch_per_epoch`` where ``dataloader`` evaluates only
    the first batches of its dataset, else None.

    mmengine's ``Runner.build_dataloader`` wraps the dataset of a config
    with ``num_batch_per_epoch`` (a debugging option) in a
    ``_SlicedDataset`` of that many batches; ``len()`` of the built
    dataset is then the slice's, so no count of the samples evaluated can
    tell that the rest of the query and gallery are missing.

    Args:
        dataloader (DataLoader | dict): A dataloader or its config.
        key (str): The dataloader's config key.
    """
    if isinstance(dataloader, dict):
        sliced = dataloader.get('num_batch_per_epoch') is not None
    else:
        dataset = getattr(dataloader, 'dataset', None)
        sliced = type(dataset).__name__ == '_SlicedDataset'
    return f'{key}.num_batch_per_epoch' if sliced else None
