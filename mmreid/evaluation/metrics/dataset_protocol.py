"""Which metric a dataset's test protocol needs.

A dataset whose test records are not one query/gallery set declares the
metric of its protocol in its metainfo; :func:`protocol_metric_of` reads
it, and :meth:`~.reid_metric.ReIDMetric.check_dataset_meta` refuses such a
dataset in any other metric.
"""
from typing import Optional, Tuple


def protocol_metric_of(
        dataset_meta: dict) -> Tuple[Optional[str], Optional[str]]:
    """The metric a dataset's test protocol needs, and why.

    A dataset whose test protocol needs a metric of its own declares it
    in its metainfo: ``protocol_metric`` names the metric (SYSU-MM01 and
    LLCM, whose gallery is the pool every trial draws from, set
    ``'SYSUMetric'`` and ``'LLCMMetric'``; the union of the small DG
    targets' splits ``'DGSplitMetric'``; RegDB's test set, whose protocol
    excludes re-ranking and whose keys name the direction,
    ``'RegDBMetric'``). ``dg_splits`` with more than one
    split declares ``'DGSplitMetric'`` too: the records are the union of
    the splits, where an image can be a query of one split and in the
    gallery of another.

    Args:
        dataset_meta: The dataset's metainfo.

    Returns:
        tuple: The metric's class name (None when the test split is one
        query/gallery set) and the reason, for an error message.
    """
    required = dataset_meta.get('protocol_metric')
    splits = dataset_meta.get('dg_splits') or ()
    if required is None and len(splits) > 1:
        required = 'DGSplitMetric'
    if required is None:
        return None, None
    if not isinstance(required, str):
        raise ValueError("dataset_meta['protocol_metric'] must be a metric "
                         f'class name, got {required!r}')
    if len(splits) > 1:
        reason = (f'its records are the union of {len(splits)} splits '
                  "(dataset_meta['dg_splits']), where an image can be a "
                  'query of one split and in the gallery of another')
    else:
        reason = ("it declares protocol_metric="
                  f'{required!r}: its test protocol is that metric\'s '
                  '(e.g. a gallery pool from which each trial draws its '
                  'gallery, or the options and key names RegDB\'s '
                  'protocol fixes)')
    return required, reason
