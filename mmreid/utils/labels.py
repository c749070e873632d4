"""Integer labels (modality, source index) read from a custom dataset's
records or given by a caller: an integer is taken, anything ``int()``
would change is refused."""
import numbers
from typing import Any

import numpy as np


def integer_label(value: Any, where: str) -> int:
    """``value`` as an int, refusing what ``int()`` would change.

    ``int()`` truncates 0.5 to 0 (a modality of 0.5 became visible, a
    source 1.7 merged with source 1) and takes ``True`` as 1 and ``'1'``
    as 1.

    Args:
        value: An integer (Python or NumPy), or an integral float
            (``1.0``).
        where (str): What the value is, for the error, e.g.
            ``"record 3 of MyDataset has modality"``.

    Returns:
        int: The value.

    Raises:
        ValueError: A bool, a string, ``None``, or a number that is not
            an integer, named with ``where``.
    """
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (bool, np.bool_)):
        integral = False
    elif isinstance(value, numbers.Integral):
        integral = True
    else:
        integral = isinstance(value,
                              numbers.Real) and float(value).is_integer()
    if not integral:
        raise ValueError(f'{where}={value!r}: not an integer; it is not '
                         'converted (int() would make 0.5 0 and True 1)')
    return int(value)
