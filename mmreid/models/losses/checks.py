"""Argument checks shared by the losses."""
import math
import numbers
from typing import Any


def check_weight(owner: str, name: str, value: Any) -> float:
    """A loss weight: a finite real number >= 0.

    A negative weight would maximise the term (its gradient reversed) and
    a NaN or infinite one make every step's loss NaN or infinite; 0 turns
    the term off and is kept.

    Args:
        owner: The loss or model, for the message.
        name: The argument's name, for the message.
        value: The weight.

    Returns:
        float: The weight.

    Raises:
        ValueError: Names the owner, the argument and the value.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f'{owner}: {name} must be a finite number >= 0, '
                         f'got {value!r}')
    return float(value)
