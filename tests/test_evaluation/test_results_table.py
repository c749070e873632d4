"""The results table: rows = targets / distance modes, fixed columns."""
import logging

import numpy as np
import pytest
import torch

from mmreid.engine.hooks import ResultsTableHook
from mmreid.evaluation.results_table import format_results_table, results_rows

COLUMNS = ['row', 'R1', 'R5', 'R10', 'R20', 'mAP', 'mINP']


def mode_metrics(r1, mAP):
    return {
        'R1': r1,
        'R5': r1 + 1,
        'R10': r1 + 2,
        'R20': r1 + 3,
        'mAP': mAP,
        'mINP': mAP - 10,
        'num_query': 9
    }


def prefixed(prefix, metrics):
    return {f'{prefix}/{k}': v for k, v in metrics.items()}


def parse(table):
    lines = table.splitlines()
    header = [c.strip() for c in lines[0].split('|')]
    rows = {}
    for line in lines[2:]:
        if '|' not in line:
            continue
        cells = [c.strip() for c in line.split('|')]
        rows[cells[0]] = dict(zip(header[1:], cells[1:]))
    return header, rows, lines


def test_single_metric_is_one_row_without_counts():
    table = format_results_table(prefixed('reid', mode_metrics(91.234, 80.0)))
    header, rows, lines = parse(table)
    assert header == COLUMNS
    assert list(rows) == ['reid']
    assert rows['reid'] == dict(
        R1='91.23',
        R5='92.23',
        R10='93.23',
        R20='94.23',
        mAP='80.00',
        mINP='70.00')
    assert len(lines) == 3


def test_gmn_modes_are_rows_and_the_primary_is_not_repeated():
    metrics = {}
    metrics.update(prefixed('reid/mnet', mode_metrics(60.0, 50.0)))
    metrics.update(prefixed('reid/euclid', mode_metrics(40.0, 30.0)))
    metrics.update(prefixed('reid/fused', mode_metrics(65.0, 55.0)))
    metrics.update(prefixed('reid', mode_metrics(60.0, 50.0)))  # primary
    header, rows, lines = parse(format_results_table(metrics))
    assert list(rows) == ['reid/mnet *', 'reid/euclid', 'reid/fused']
    assert rows['reid/euclid']['mAP'] == '30.00'
    assert rows['reid/fused']['R1'] == '65.00'
    assert lines[-1] == '* reid/mnet is also reported as reid/<metric>'


def test_parent_that_differs_from_every_mode_keeps_its_row():
    metrics = prefixed('reid/a', mode_metrics(60.0, 50.0))
    metrics.update(prefixed('reid', mode_metrics(61.0, 50.0)))
    rows = results_rows(metrics)
    assert [r.name for r in rows] == ['reid/a', 'reid']
    assert all(r.primary_of is None for r in rows)


def test_trials_give_mean_and_std_and_no_trial_rows():
    metrics = {}
    for trial, r1 in enumerate((50.0, 70.0)):
        metrics.update(prefixed(f'sysu/trial{trial}', mode_metrics(r1, r1)))
    metrics.update(prefixed('sysu', mode_metrics(60.0, 60.0)))
    metrics.update({'sysu/R1_std': 10.0, 'sysu/mAP_std': 10.0})
    header, rows, _ = parse(format_results_table(metrics))
    assert list(rows) == ['sysu']
    assert rows['sysu']['R1'] == '60.00±10.00'
    assert rows['sysu']['mAP'] == '60.00±10.00'
    assert rows['sysu']['R5'] == '61.00'


def test_a_trial_row_equal_to_its_mode_row_keeps_its_spread():
    """A trial protocol that also reports its primary distance mode
    (``sysu/cosine``) gives the same means twice, but only the protocol's
    row carries the ``±std`` over the trials: it is no mere repeat, so
    both rows stay and the mode row is not marked as the primary."""
    metrics = prefixed('sysu', mode_metrics(50.0, 40.0))
    metrics.update({'sysu/R1_std': 2.0, 'sysu/mAP_std': 1.0})
    metrics.update(prefixed('sysu/cosine', mode_metrics(50.0, 40.0)))
    header, rows, lines = parse(format_results_table(metrics))
    assert list(rows) == ['sysu', 'sysu/cosine']
    assert rows['sysu']['R1'] == '50.00±2.00'
    assert rows['sysu']['mAP'] == '40.00±1.00'
    assert rows['sysu/cosine']['R1'] == '50.00'
    assert not any(line.startswith('*') for line in lines)


def test_multi_target_rows_in_report_order_with_the_mean_last():
    metrics = {}
    metrics.update(prefixed('d3', mode_metrics(80.0, 70.0)))
    metrics.update(prefixed('prid/split0', mode_metrics(50.0, 40.0)))
    metrics.update(prefixed('prid', {'R1': 50.0, 'mAP': 40.0}))
    metrics['prid/mAP_std'] = 2.5
    metrics.update(prefixed('mean', {'R1': 65.0, 'mAP': 55.0}))
    header, rows, _ = parse(format_results_table(metrics, precision=1))
    assert list(rows) == ['d3', 'prid', 'mean']
    assert rows['prid'] == dict(
        R1='50.0', R5='-', R10='-', R20='-', mAP='40.0±2.5', mINP='-')
    assert rows['mean']['mAP'] == '55.0'


def test_unprefixed_keys_and_columns_nobody_reports():
    table = format_results_table({'R1': 1.0, 'mAP': 2.0}, default_name='test')
    header, rows, _ = parse(table)
    assert header == ['row', 'R1', 'mAP']
    assert rows == {'test': {'R1': '1.00', 'mAP': '2.00'}}
    assert format_results_table({'reid/num_query': 3}) == ''


class FakeRunner:

    def __init__(self, loop):
        self.test_loop = loop
        self.logger = logging.getLogger('results_table_test')


def test_hook_logs_after_test_and_leaves_it_to_a_printing_loop(caplog):
    hook = ResultsTableHook()
    metrics = prefixed('reid', mode_metrics(91.0, 80.0))
    with caplog.at_level(logging.INFO, logger='results_table_test'):
        hook.after_test_epoch(FakeRunner(object()), metrics)
    assert 'test results:\nrow ' in caplog.text
    assert '91.00' in caplog.text
    caplog.clear()

    class PrintingLoop:
        prints_results_table = True

    with caplog.at_level(logging.INFO, logger='results_table_test'):
        hook.after_test_epoch(FakeRunner(PrintingLoop()), metrics)
    assert caplog.text == ''


@pytest.mark.parametrize(
    'value', ['n/a', None, True,
              torch.tensor([5.0, 6.0])])
def test_non_numbers_are_left_out(value):
    rows = results_rows({'reid/R1': value, 'reid/mAP': 5.0})
    assert rows[0].values == {'mAP': 5.0}


def test_only_a_direct_mode_row_stands_for_its_parent():
    """A row equal to its parent is the parent's primary distance mode only
    when it is one level below (``reid/mnet`` of ``reid``); a deeper row
    with the same numbers (``reid/a/b``) is another result: both stay."""
    metrics = prefixed('reid/a/b', mode_metrics(60.0, 50.0))
    metrics.update(prefixed('reid', mode_metrics(60.0, 50.0)))
    rows = results_rows(metrics)
    assert [r.name for r in rows] == ['reid/a/b', 'reid']
    assert all(r.primary_of is None for r in rows)


def test_a_spread_without_its_value_makes_no_row():
    """A prefix that reports only ``_std`` keys has no value to show: no
    row (a row of '-' would read as a result)."""
    rows = results_rows({'reid/R1': 50.0, 'other/R1_std': 2.0})
    assert [r.name for r in rows] == ['reid']
    header, rows, _ = parse(
        format_results_table({
            'reid/R1': 50.0,
            'other/R1_std': 2.0
        }))
    assert list(rows) == ['reid']


class FakeValRunner:

    def __init__(self, loop):
        self.val_loop = loop
        self.logger = logging.getLogger('results_table_test')


def test_hook_logs_after_validation_as_validation(caplog):
    """After a validation the table is titled as the validation's, and a
    validation loop that prints it itself is not printed twice."""
    hook = ResultsTableHook()
    metrics = prefixed('reid', mode_metrics(91.0, 80.0))
    with caplog.at_level(logging.INFO, logger='results_table_test'):
        hook.after_val_epoch(FakeValRunner(object()), metrics)
    assert 'val results:\nrow ' in caplog.text
    assert 'test results' not in caplog.text
    caplog.clear()

    class PrintingLoop:
        prints_results_table = True

    with caplog.at_level(logging.INFO, logger='results_table_test'):
        hook.after_val_epoch(FakeValRunner(PrintingLoop()), metrics)
    assert caplog.text == ''


def test_the_docstring_table_is_printed_exactly():
    """Names are left-aligned and numbers right-aligned under their
    header, with the column separators lined up."""
    table = format_results_table({
        'reid/R1': 91.2,
        'reid/mAP': 80.1,
        'reid/num_query': 3368
    })
    assert table == ('row  |    R1 |   mAP\n'
                     '-----+-------+------\n'
                     'reid | 91.20 | 80.10')


def test_a_split_or_trial_past_nine_makes_no_row():
    """A protocol of more than ten splits or trials (``split10``,
    ``trial12``) reports single partitions too: they are no rows of
    their own beside the mean."""
    metrics = prefixed('prid', mode_metrics(60.0, 50.0))
    metrics.update(prefixed('prid/split10', mode_metrics(10.0, 5.0)))
    metrics.update(prefixed('sysu/trial12', mode_metrics(20.0, 15.0)))
    assert [row.name for row in results_rows(metrics)] == ['prid']


def test_a_row_holds_the_table_columns_only():
    """Counts (``num_query``) and other keys are no values of a row (the
    HTML report shows a row's values)."""
    rows = results_rows({
        'reid/R1': 50.0,
        'reid/num_query': 9,
        'reid/num_valid_query': 8,
        'reid/TPR@FPR=1e-4': 3.0
    })
    assert rows[0].values == {'R1': 50.0}


def test_hook_uses_its_columns_and_precision(caplog):
    """A hook configured with its own columns and decimals prints those,
    not the defaults."""
    hook = ResultsTableHook(columns=('mAP', 'R1'), precision=3)
    metrics = prefixed('reid', mode_metrics(91.0, 80.0))
    with caplog.at_level(logging.INFO, logger='results_table_test'):
        hook.after_test_epoch(FakeRunner(object()), metrics)
    table = caplog.text.split('test results:\n', 1)[1]
    header, rows, _ = parse(table)
    assert header == ['row', 'mAP', 'R1']
    assert rows['reid'] == {'mAP': '80.000', 'R1': '91.000'}


def test_a_nan_prints_as_the_html_report_prints_it():
    """A user's metric that reports NaN (no query it could score) printed
    ``nan`` in the log's table and ``±nan`` as its spread, where the HTML
    report shows the same rows with ``-``: both now show ``-``, the mark
    of a value the row does not have, and never a number."""
    metrics = {
        'my/R1': float('nan'),
        'my/mAP': 40.0,
        'my/mAP_std': float('nan'),
        'my/mINP': float('inf'),
    }
    header, rows, _ = parse(format_results_table(metrics))
    assert header == ['row', 'R1', 'mAP', 'mINP']
    assert rows['my'] == dict(R1='-', mAP='40.00±-', mINP='-')


def test_a_parent_with_a_nan_still_folds_into_its_primary_mode():
    """A metric reports its primary mode twice (``reid/mINP`` and
    ``reid/mnet/mINP``) as NaN numpy floats: NaN != NaN kept the parent as
    a row of its own beside the mode row, unmarked; the two rows hold the
    same values, so the mode row is the primary, marked ``*``."""
    metrics = prefixed('reid/mnet', mode_metrics(60.0, 50.0))
    metrics.update(prefixed('reid', mode_metrics(60.0, 50.0)))
    metrics['reid/mnet/mINP'] = np.float64('nan')
    metrics['reid/mINP'] = np.float64('nan')
    rows = results_rows(metrics)
    assert [(r.name, r.primary_of) for r in rows] == [('reid/mnet', 'reid')]


def test_every_mode_equal_to_the_parent_is_marked():
    """GMN's ``reid/mnet`` and ``reid/euclid`` can tie (the same ranking on
    a small test set); the unprefixed ``reid/...`` keys equal both. The
    ``*`` went to the first mode only, naming it the primary though the
    numbers cannot tell which of the two the metric reports unprefixed.
    Every tied mode is marked, and the note says the primary is one of
    them; a mode that differs is not marked."""
    metrics = {}
    metrics.update(prefixed('reid/mnet', mode_metrics(60.0, 50.0)))
    metrics.update(prefixed('reid/euclid', mode_metrics(60.0, 50.0)))
    metrics.update(prefixed('reid/fused', mode_metrics(65.0, 55.0)))
    metrics.update(prefixed('reid', mode_metrics(60.0, 50.0)))
    rows = results_rows(metrics)
    marks = [(r.name, r.primary_of) for r in rows]
    assert marks == [('reid/mnet', 'reid'), ('reid/euclid', 'reid'),
                     ('reid/fused', None)]
    header, table_rows, lines = parse(format_results_table(metrics))
    assert list(table_rows) == ['reid/mnet *', 'reid/euclid *', 'reid/fused']
    notes = [line for line in lines if line.startswith('*')]
    assert notes == [
        '* reid/mnet, reid/euclid are equal; one of them is also reported '
        'as reid/<metric>'
    ]
