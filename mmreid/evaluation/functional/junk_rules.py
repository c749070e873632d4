"""Per-query gallery removal ("junk") rules.

A rule sees one chunk of queries at a time and returns which gallery items
each query must ignore, so that a protocol can be added without touching
the rank computation. Removed items are neither positives nor negatives.

Labels come first: pid ``-1`` marks a junk image (Market-1501's label, which
mmreid's datasets drop at parsing). Under the ``'market'`` rule a gallery
item of pid ``-1`` is ignored by every query, as in Market-1501's own
evaluation; the other rules have no junk label, so they refuse one, and a
query of pid ``-1`` (no identity to find) is refused under every rule.
See :func:`junk_label_gallery`.
"""
from typing import Callable, Optional, Union

import torch

# (same_pid (Qc, G) bool, q_camids (Qc,), g_camids (G,)) -> (Qc, G) bool
# mask of removed items, or None when nothing is removed.
JunkRule = Callable[[torch.Tensor, torch.Tensor, torch.Tensor],
                    Optional[torch.Tensor]]


def market_junk(same_pid: torch.Tensor, q_camids: torch.Tensor,
                g_camids: torch.Tensor) -> torch.Tensor:
    """Remove items of the query's pid seen by the query's camera.

    Used by Market1501, DukeMTMC, MSMT17, CUHK03-NP, the DG small sets and
    LLCM: a same-camera match of the same person is too easy to count.

    Args:
        same_pid: Whether gallery and query pids match, shape (Qc, G).
        q_camids: Query camids, shape (Qc,).
        g_camids: Gallery camids, shape (G,).

    Returns:
        torch.Tensor: Removal mask, shape (Qc, G).
    """
    return same_pid & (q_camids[:, None] == g_camids[None, :])


def no_junk(same_pid: torch.Tensor, q_camids: torch.Tensor,
            g_camids: torch.Tensor) -> None:
    """Remove nothing (RegDB: query and gallery cameras never coincide)."""
    return None


# SYSU-MM01 camera numbers are 1-based in file names; mmreid camids are
# 0-based, so the IR camera 3 is camid 2 and the RGB camera 2 is camid 1.
SYSU_IR_INDOOR_CAMID = 2
SYSU_RGB_SAME_ROOM_CAMID = 1


def sysu_junk(same_pid: torch.Tensor, q_camids: torch.Tensor,
              g_camids: torch.Tensor) -> torch.Tensor:
    """SYSU-MM01: cam3 queries ignore every cam2 item, of any pid.

    Cameras 2 and 3 film the same room, so the official protocol drops the
    whole location for cam3 probes; nothing is removed for other cameras.

    Args:
        same_pid: Whether gallery and query pids match, shape (Qc, G).
        q_camids: Query camids (0-based), shape (Qc,).
        g_camids: Gallery camids (0-based), shape (G,).

    Returns:
        torch.Tensor: Removal mask, shape (Qc, G).
    """
    return ((q_camids == SYSU_IR_INDOOR_CAMID)[:, None]
            & (g_camids == SYSU_RGB_SAME_ROOM_CAMID)[None, :])


JUNK_RULES = dict(market=market_junk, none=no_junk, sysu=sysu_junk)

#: The pid of a junk image (Market-1501's ``-1_c...`` files).
JUNK_PID = -1


def junk_label_gallery(rule: Union[str, JunkRule], q_pids: torch.Tensor,
                       g_pids: torch.Tensor) -> Optional[torch.Tensor]:
    """Gallery items that every query ignores for their junk pid label.

    Market-1501's evaluation ignores its junk images (pid ``-1``) like the
    same-pid same-camera items; its pid ``0`` distractors stay negatives
    (pid ``0`` is an ordinary pid: a query of pid 0, as in MSMT17's
    0-based labels, has them as positives).

    Args:
        rule: The junk rule, a name or a :data:`JunkRule`.
        q_pids: Query pids, shape (Q,).
        g_pids: Gallery pids, shape (G,).

    Returns:
        torch.Tensor | None: Bool mask of the ignored items, shape (G,),
        under ``'market'`` when the gallery has pid ``-1`` items, else
        None.

    Raises:
        ValueError: A query has pid ``-1``, or the gallery has one under
            a rule other than ``'market'`` (which would count it as a
            negative).
    """
    junk_query = (q_pids == JUNK_PID).nonzero().flatten().tolist()
    if junk_query:
        raise ValueError(
            f'query {_some(junk_query)} of {len(q_pids)} has pid '
            f'{JUNK_PID}, the junk label: a junk image has no identity to '
            f'find. Leave pid {JUNK_PID} images out of the query set')
    is_junk = g_pids == JUNK_PID
    if not bool(is_junk.any()):
        return None
    if rule in ('market', market_junk):
        return is_junk
    name = rule if isinstance(rule, str) else getattr(rule, '__name__',
                                                      repr(rule))
    raise ValueError(
        f'gallery items {_some(is_junk.nonzero().flatten().tolist())} of '
        f'{len(g_pids)} have pid {JUNK_PID}, the junk label that only '
        f"junk_rule='market' ignores; junk_rule={name!r} would count them "
        f'as negatives. Leave them out of the gallery, or use '
        "junk_rule='market'")


def rule_with_junk_label(rule: Union[str, JunkRule], q_pids: torch.Tensor,
                         g_pids: torch.Tensor) -> JunkRule:
    """A removal rule that also removes the junk-labelled gallery items.

    For the code that applies a rule to (Qc, G) masks itself; the rank
    metrics drop those items' columns instead (:func:`junk_label_gallery`).

    Args:
        rule: ``'market'``, ``'none'``, ``'sysu'`` or a :data:`JunkRule`.
        q_pids: Query pids, shape (Q,).
        g_pids: Gallery pids, shape (G,).

    Returns:
        JunkRule: ``rule`` itself when no gallery item is junk-labelled.

    Raises:
        ValueError: As :func:`junk_label_gallery`.
    """
    base = get_junk_rule(rule)
    junk = junk_label_gallery(rule, torch.as_tensor(q_pids),
                              torch.as_tensor(g_pids))
    if junk is None:
        return base

    def with_junk(same_pid: torch.Tensor, q_camids: torch.Tensor,
                  g_camids: torch.Tensor) -> torch.Tensor:
        removed = junk.to(same_pid.device)[None, :].expand_as(same_pid)
        own = base(same_pid, q_camids, g_camids)
        return removed.clone() if own is None else own | removed

    return with_junk


def _some(indices: list, shown: int = 5) -> str:
    """Up to ``shown`` indices of a list, then how many more."""
    text = ', '.join(str(i) for i in indices[:shown])
    more = len(indices) - shown
    return text + (f' (and {more} more)' if more > 0 else '')


# (q_camids (Qc,), item_camids (Qc, S)) -> (Qc, S) bool mask or None: a
# rule restricted to the S gallery items that share each query's pid.
SamePidForm = Callable[[torch.Tensor, torch.Tensor], Optional[torch.Tensor]]


def _market_same_pid(q_camids: torch.Tensor,
                     item_camids: torch.Tensor) -> torch.Tensor:
    """:func:`market_junk` on the same-pid items: their camera matches."""
    return q_camids[:, None] == item_camids


def _none_same_pid(q_camids: torch.Tensor, item_camids: torch.Tensor) -> None:
    """:func:`no_junk` on the same-pid items."""
    return None


# The rules that never remove an item of another pid, with their form on
# the same-pid items; the rank computation then skips the (Qc, G) masks.
_SAME_PID_FORMS = {market_junk: _market_same_pid, no_junk: _none_same_pid}


def same_pid_form(rule: JunkRule) -> Optional[SamePidForm]:
    """The form of a rule on same-pid items, if it only removes those.

    Args:
        rule: A :data:`JunkRule`.

    Returns:
        SamePidForm | None: None for rules that may remove items of other
        pids (``'sysu'``) and for user callables, which always get the
        full (Qc, G) masks.
    """
    return _SAME_PID_FORMS.get(rule)


def get_junk_rule(rule: Union[str, JunkRule]) -> JunkRule:
    """Look up a removal rule by name; callables are returned as is.

    Args:
        rule: ``'market'``, ``'none'``, ``'sysu'`` or a :data:`JunkRule`.

    Returns:
        JunkRule: The rule function.
    """
    if callable(rule):
        return rule
    if rule not in JUNK_RULES:
        raise ValueError(f'junk_rule must be one of {tuple(JUNK_RULES)} or '
                         f'a callable, got {rule!r}')
    return JUNK_RULES[rule]
