import re

import pytest

from mmreid.visualization.svg_charts import svg_bar_chart, svg_line_chart


def _attrs(svg, tag):
    """The attributes of every ``<tag ...>`` of ``svg``, as dicts."""
    return [
        dict(re.findall(r'([\w-]+)="([^"]*)"', m))
        for m in re.findall(rf'<{tag}\s([^>]*)>', svg)
    ]


def _titles(svg):
    return re.findall(r'<title>([^<]*)</title>', svg)


def test_line_chart_spans_the_plot_and_labels_the_marks():
    """Rank 1 and the last rank sit on the plot's left and right edges,
    0 % on its bottom and 100 % on its top; a mark is labelled with the
    curve's value there."""
    ys = [0., 25., 62.5, 100.]
    svg = svg_line_chart([1, 2, 3, 4], ys, 'CMC', 'rank', '%', 'cmc', (2, 3))
    (plot, ) = _attrs(svg, 'rect')
    left, top = float(plot['x']), float(plot['y'])
    right, bottom = left + float(plot['width']), top + float(plot['height'])
    (line, ) = _attrs(svg, 'polyline')
    points = [tuple(map(float, p.split(','))) for p in line['points'].split()]
    assert [x for x, _ in points][::3] == [left, right]
    assert [y for _, y in points][::3] == [bottom, top]
    # 25 % is a quarter of the way up.
    assert points[1][1] == round(bottom - (bottom - top) / 4, 1)
    texts = re.findall(r'font-size="11">([^<]*)</text>', svg)
    assert '25.0' in texts and '62.5' in texts and '100' in texts
    assert _titles(svg) == ['rank 2: 25.00', 'rank 3: 62.50']


def test_bar_chart_gives_each_count_and_its_share():
    svg = svg_bar_chart(['1', '2', '3'], [1, 3, 0], 'ranks', 'rank', 'hist')
    assert _titles(svg) == ['1: 1 (25.0 %)', '2: 3 (75.0 %)', '3: 0 (0.0 %)']
    heights = [float(bar['height']) for bar in _attrs(svg, 'rect')]
    assert heights[1] == pytest.approx(3 * heights[0], abs=0.2)
    assert heights[2] == 0
    # No query at all (no valid query): empty bars, not a division by 0.
    svg = svg_bar_chart(['1', '2'], [0, 0], 'ranks', 'rank', 'hist')
    assert _titles(svg) == ['1: 0 (0.0 %)', '2: 0 (0.0 %)']
