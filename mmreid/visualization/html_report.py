"""A self-contained HTML evaluation report: one file, no server, no
external script or style sheet. Plots are inline SVG, images are embedded
as base64 JPEG thumbnails.
"""
import base64
import html
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from mmreid.evaluation.query_analysis import PairStats, QueryAnalysis
from mmreid.evaluation.results_table import ResultRow, inside_bounds
from mmreid.evaluation.sampling_error import SamplingError
from .svg_charts import svg_bar_chart, svg_line_chart
from .tiles import modality_name

#: :attr:`RankedExample.value_name` of values that are ranking positions.
POSITION = 'position'

#: Bins of the rank-of-first-match histogram: (label, low, high) inclusive.
RANK_BINS = (('1', 1, 1), ('2', 2, 2), ('3', 3, 3), ('4', 4, 4), ('5', 5, 5),
             ('6-10', 6, 10), ('11-20', 11, 20), ('21-50', 21, 50),
             ('51-100', 51, 100), ('>100', 101, math.inf))

_STYLE = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Helvetica, Arial,
  sans-serif; margin: 24px auto; max-width: 1180px; color: #222;
  padding: 0 16px; }
h1 { font-size: 24px; margin-bottom: 4px; }
h2 { font-size: 20px; border-bottom: 2px solid #ddd; padding-bottom: 4px;
  margin-top: 36px; }
h3 { font-size: 16px; margin: 22px 0 8px; }
p.meta, p.note { color: #555; font-size: 13px; margin: 4px 0; }
table { border-collapse: collapse; font-size: 13px; margin: 6px 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th { background: #f3f3f3; }
td.name, th.name { text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 18px; }
.chart { border: 1px solid #e3e3e3; border-radius: 4px; padding: 6px; }
svg text { font-family: inherit; }
.ranked-list { margin: 10px 0 16px; }
.ranked-list .caption { font-size: 13px; margin-bottom: 4px; }
.tiles { display: flex; gap: 6px; align-items: flex-start;
  overflow-x: auto; }
figure.tile { margin: 0; text-align: center; font-size: 11px;
  line-height: 1.25; }
figure.tile img { display: block; border: 4px solid #999;
  image-rendering: auto; }
figure.query img { border-color: #005aff; }
figure.match img { border-color: #00b400; }
figure.mismatch img { border-color: #e60000; }
figure.query { margin-right: 14px; }
.legend span { display: inline-block; width: 12px; height: 12px;
  vertical-align: middle; margin: 0 4px 0 12px; }
"""

# Counts the embedded images the browser decoded (tests read it from the
# DOM); the report reads the same without scripts.
_SCRIPT = """
window.addEventListener('load', function () {
  var images = document.images, decoded = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) { decoded++; }
  }
  document.body.setAttribute('data-images', images.length);
  document.body.setAttribute('data-images-decoded', decoded);
});
"""


@dataclass
class RankedExample:
    """One query and its top-k as the report shows them.

    Attributes:
        kind (str): ``'worst'`` or ``'best'``.
        query (dict): ``image`` (H, W, 3) RGB uint8 or None, ``pid``,
            ``camid``, ``modality`` (optional).
        gallery (list[dict]): The top k in rank order, each as ``query``
            plus ``distance`` and ``match`` (bool).
        ap (float): The query's AP (fraction).
        first_rank (int): Rank of its first positive.
        value_name (str): What ``distance`` is: ``'d'``, a distance, or
            :data:`POSITION`, a 0-based position in the ranking (the
            values of a gallery-dependent distance, GMN's top-k rerank).
    """
    kind: str
    query: dict
    gallery: List[dict]
    ap: float
    first_rank: int
    value_name: str = 'd'


@dataclass
class ReportSection:
    """Everything the report shows of one target.

    Attributes:
        name (str): Target name (or ``'test'``).
        analysis (QueryAnalysis): Per-query facts.
        setup (dict): Distance, rules and other settings, shown as given.
        num_gallery (int): Gallery size.
        examples (list[RankedExample]): Worst and best queries.
        notes (list[str]): Lines shown under the title (e.g. how the
            protocol's own numbers differ from this analysis).
        sampling_errors (dict): Row name -> :class:`SamplingError` of the
            query sampling table; empty hides the table.
        cmc_label (str): What the analysis's R1 and CMC are, where the
            metric reports another protocol's (e.g. ``'standard
            protocol'`` beside CUHK03's classic CMC); shown with them.
    """
    name: str
    analysis: QueryAnalysis
    setup: Dict[str, str]
    num_gallery: int
    examples: List[RankedExample] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    sampling_errors: Dict[str, SamplingError] = field(default_factory=dict)
    cmc_label: str = ''


def image_data_uri(image: np.ndarray,
                   size: Tuple[int, int] = (128, 64),
                   quality: int = 85) -> str:
    """A (H, W, 3) RGB uint8 image as a ``data:image/jpeg;base64`` URI,
    resized to ``size`` = (height, width)."""
    height, width = size
    small = cv2.resize(
        image, (width, height),
        interpolation=cv2.INTER_AREA
        if image.shape[0] > height else cv2.INTER_LINEAR)
    ok, buffer = cv2.imencode('.jpg', np.ascontiguousarray(small[..., ::-1]),
                              [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError('cannot encode an image of shape '
                         f'{image.shape} as JPEG')
    return 'data:image/jpeg;base64,' + base64.b64encode(
        buffer.tobytes()).decode('ascii')


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _fmt(value: float, digits: int = 2) -> str:
    """A value with ``digits`` decimals, ``-`` if missing; a value strictly
    inside (0, 100) never shows as a bound it does not reach
    (:func:`~mmreid.evaluation.results_table.inside_bounds`, as in the
    log's results table)."""
    return '-' if value is None or not math.isfinite(value) \
        else inside_bounds(value, digits)


def ap_histogram(ap: np.ndarray,
                 bins: int = 10) -> Tuple[List[str], List[int]]:
    """Counts of valid APs in ``bins`` equal bins of [0, 1] (the last one
    closed)."""
    ap = ap[~np.isnan(ap)]
    # Exact edges (k / bins): linspace's 0.30000000000000004 counted an AP
    # of exactly 0.3 (ranks 1 and 10 give 0.6) in the bar below.
    edges = np.arange(bins + 1) / bins
    counts, edges = np.histogram(ap, bins=edges)
    labels = [
        f'{edges[i]:.1f}-{edges[i + 1]:.1f}'.replace('0.',
                                                     '.').replace('1.0', '1')
        for i in range(bins)
    ]
    return labels, counts.tolist()


def rank_histogram(first_rank: np.ndarray) -> Tuple[List[str], List[int]]:
    """Counts of the rank of the first correct match over ``RANK_BINS``
    (queries without a positive are left out)."""
    ranks = first_rank[first_rank > 0]
    return ([label for label, _, _ in RANK_BINS], [
        int(((ranks >= low) & (ranks <= high)).sum())
        for _, low, high in RANK_BINS
    ])


def _heat(value: float) -> str:
    if not math.isfinite(value):
        return ''
    hue = 120.0 * max(0.0, min(value, 100.0)) / 100.0
    return f' style="background: hsl({hue:.0f}, 65%, 86%)"'


def pair_table(pairs: Dict[Tuple[int, int], PairStats],
               css_class: str,
               row_title: str,
               col_title: str,
               name=str) -> str:
    """Query group x gallery group table of R1 / mAP (and query counts)."""
    if not pairs:
        return ''
    rows = sorted({q for q, _ in pairs})
    cols = sorted({g for _, g in pairs})
    out = [
        f'<table class="{_esc(css_class)}"><tr><th class="name">'
        f'{_esc(row_title)} \\ {_esc(col_title)}</th>'
    ]
    out += [f'<th>{_esc(name(c))}</th>' for c in cols]
    out.append('</tr>')
    for q in rows:
        out.append(f'<tr><th class="name">{_esc(name(q))}</th>')
        for g in cols:
            stats = pairs.get((q, g))
            if stats is None or stats.num_valid == 0:
                out.append('<td title="no query with a positive">-</td>')
                continue
            out.append(
                f'<td{_heat(stats.mAP)} data-r1="{stats.rank1:.4f}" '
                f'data-map="{stats.mAP:.4f}" data-n="{stats.num_valid}" '
                f'title="{stats.num_valid} queries">'
                f'{_fmt(stats.rank1, 1)} / {_fmt(stats.mAP, 1)}'
                f'<br><small>n={stats.num_valid}</small></td>')
        out.append('</tr>')
    out.append('</table>')
    return ''.join(out)


def _label(item: dict) -> str:
    # camid: the datasets' 0-based camera (Market's c1 is camid 0).
    lines = [f'pid {item["pid"]}', f'camid {item["camid"]}']
    if item.get('modality') is not None:
        lines.append(modality_name(item['modality']))
    return '<br>'.join(_esc(line) for line in lines)


def _tile(item: dict, css: str, head: str, size: Tuple[int, int]) -> str:
    height, width = size
    if item.get('image') is not None:
        img = (f'<img src="{image_data_uri(item["image"], size)}" '
               f'width="{width}" height="{height}" alt="{_esc(head)}">')
    else:
        img = (f'<div style="width:{width}px;height:{height}px;'
               'background:#eee;border:4px solid #999">image not found'
               '</div>')
    return (f'<figure class="tile {css}">{img}<figcaption>{_esc(head)}<br>'
            f'{_label(item)}</figcaption></figure>')


def ranked_list_html(example: RankedExample,
                     index: int,
                     size: Tuple[int, int] = (128, 64),
                     rank_of: str = '') -> str:
    """One ranked list: the query, then its top k framed green (same pid)
    or red (other pid); ``rank_of`` follows the rank of the first correct
    match (what list it is a rank in)."""
    in_topk = any(g['match'] for g in example.gallery)
    where = (f'first correct match at rank {example.first_rank}{rank_of}'
             if example.first_rank else 'no correct match in the gallery')
    caption = (f'{example.kind} #{index + 1}: query pid '
               f'{example.query["pid"]}, camid {example.query["camid"]} · AP '
               f'{example.ap:.3f} · {where}')
    if not in_topk and example.first_rank:
        caption += f' (not in the top {len(example.gallery)})'
    tiles = [_tile(example.query, 'query', 'query', size)]
    for rank, item in enumerate(example.gallery, 1):
        css = 'match' if item['match'] else 'mismatch'
        value = (f'{item["distance"]:.0f}' if example.value_name == POSITION
                 else f'{item["distance"]:.3g}')
        tiles.append(
            _tile(item, css, f'#{rank} {example.value_name}={value}', size))
    return (f'<div class="ranked-list {_esc(example.kind)}" '
            f'data-first-rank="{example.first_rank}">'
            f'<div class="caption">{_esc(caption)}</div>'
            f'<div class="tiles">{"".join(tiles)}</div></div>')


def results_table_html(rows: Sequence[ResultRow],
                       columns: Sequence[str]) -> str:
    """The run's reported metrics, as in the log's results table."""
    shown = [c for c in columns if any(c in r.values for r in rows)]
    if not shown:
        return ''
    out = ['<table class="results"><tr><th class="name">row</th>']
    out += [f'<th>{_esc(c)}</th>' for c in shown]
    out.append('</tr>')
    for row in rows:
        name = row.name + (f' (= {row.primary_of})' if row.primary_of else '')
        out.append(f'<tr><td class="name">{_esc(name)}</td>')
        for column in shown:
            text = _fmt(row.values.get(column))
            if column in row.stds:
                text += f' ± {_fmt(row.stds[column])}'
            out.append(f'<td>{_esc(text)}</td>')
        out.append('</tr>')
    out.append('</table>')
    return ''.join(out)


def sampling_error_html(errors: Dict[str, SamplingError]) -> str:
    """How far R1 and mAP would move with another draw of the test set:
    their standard errors over the queries, as independent draws and
    clustered by identity."""
    rows = ''.join(
        f'<tr><td class="name">{_esc(name)}</td><td>{_fmt(e.value)}</td>'
        f'<td>{e.num_queries}</td><td>{e.num_identities}</td>'
        f'<td>{_fmt(e.se_independent)}</td><td>{_fmt(e.se_clustered)}</td>'
        f'<td>{_fmt(e.design_effect, 1)}</td></tr>'
        for name, e in errors.items())
    return ('<h3>Query sampling error (%)</h3>'
            '<table class="sampling-error"><tr><th class="name">metric</th>'
            '<th>value</th><th>queries</th><th>identities</th>'
            '<th>SE, independent queries</th>'
            '<th>SE, clustered by identity</th><th>design effect</th></tr>' +
            rows + '</table>'
            '<p class="note">One standard error of the mean over the valid '
            'queries. The test identities are the sampled units and their '
            'queries tend to succeed or fail together, so the clustered '
            'error is the one to judge a test set by or to put on an '
            'unpaired comparison; it is not the seed-to-seed spread of '
            'training.</p>')


def section_html(section: ReportSection,
                 anchor: str,
                 thumb_size: Tuple[int, int] = (128, 64)) -> str:
    """The HTML of one target."""
    analysis = section.analysis
    valid = analysis.valid
    cmc = 100.0 * analysis.cmc
    ranks = list(range(1, len(cmc) + 1))
    label = f' ({section.cmc_label})' if section.cmc_label else ''
    summary = {
        'queries': len(valid),
        'valid_queries': int(valid.sum()),
        'gallery': section.num_gallery,
        f'R1{label}': _fmt(cmc[0]),
        f'R5{label}': _fmt(cmc[4]) if len(cmc) >= 5 else '-',
        f'R10{label}': _fmt(cmc[9]) if len(cmc) >= 10 else '-',
        'mAP': _fmt(analysis.mAP),
        'mINP': _fmt(analysis.mINP)
    }
    out = [
        f'<section class="target" id="{_esc(anchor)}" '
        f'data-target="{_esc(section.name)}">',
        f'<h2>{_esc(section.name)}</h2>', '<p class="meta">' +
        ' · '.join(f'{_esc(k)}: {_esc(v)}'
                   for k, v in section.setup.items()) + '</p>'
    ]
    out += [f'<p class="note">{_esc(note)}</p>' for note in section.notes]
    out.append('<table class="summary"><tr>' +
               ''.join(f'<th>{_esc(k)}</th>' for k in summary) + '</tr><tr>' +
               ''.join(f'<td>{_esc(v)}</td>'
                       for v in summary.values()) + '</tr></table>')
    if section.sampling_errors:
        out.append(sampling_error_html(section.sampling_errors))
    marks = [r for r in (1, 5, 10, 20) if r <= len(cmc)]
    dedup = analysis.cmc_mode == 'dedup'
    cmc_title = 'CMC curve (distinct identities)' if dedup else 'CMC curve'
    if section.cmc_label:
        cmc_title = f'CMC curve ({section.cmc_label})'
    rank_title = ('First correct match: full-list rank'
                  if dedup else 'Rank of the first correct match')
    out.append('<div class="charts">')
    if valid.any():
        out.append('<div class="chart">' +
                   svg_line_chart(ranks, cmc.tolist(), cmc_title, 'rank',
                                  'matching rate (%)', 'cmc', marks) +
                   '</div>')
    else:
        out.append(f'<p class="note">{_esc(cmc_title)}: no query has a '
                   'positive in its gallery.</p>')
    labels, counts = ap_histogram(analysis.ap)
    out.append('<div class="chart">' + svg_bar_chart(
        labels, counts, 'AP per query', 'average precision', 'ap-hist') +
               '</div>')
    labels, counts = rank_histogram(analysis.first_rank)
    out.append('<div class="chart">' + svg_bar_chart(
        labels, counts, rank_title,
        'rank in the full ranked list' if dedup else 'rank', 'rank-hist') +
               '</div>')
    out.append('</div>')
    if dedup:
        out.append('<p class="note">cmc_mode=dedup: the CMC curve (and R1, '
                   'R5, R10 above) counts each gallery identity once, the '
                   'rank of a first match being 1 + the distinct identities '
                   'ranked before it. The histogram of the first correct '
                   'match, the ranked lists\' "first correct match at rank '
                   'N" and per_query.npz first_rank are positions in the '
                   'full ranked list, not de-duplicated.</p>')
    out.append('<h3>Per query camera × gallery camera (R1 / mAP, %)</h3>')
    # Re-ranked values are the metric's own (its analysis); otherwise the
    # settings line says that they are plain distances ('values').
    whole = [
        key for key in ('rerank', 'query_expansion')
        if section.setup.get(key, 'none') != 'none'
    ] if 'values' not in section.setup else []
    over_whole = (
        f' With {" and ".join(whole)}, which depend on the whole gallery, a '
        'cell is that camera\'s part of the ranking made over the whole '
        'gallery, not a ranking made on that camera\'s images alone.'
        if whole else '')
    out.append('<p class="note">Each query ranked against the gallery '
               'images of one camera only (after the junk rule); n = '
               'queries with a correct match there. camid: the 0-based '
               f'camera of the dataset (Market\'s c1 is camid 0).{over_whole}'
               '</p>')
    out.append(
        pair_table(analysis.camera_pairs, 'camera-pairs', 'query camid',
                   'gallery camid', lambda c: f'camid {c}'))
    if analysis.modality_pairs:
        out.append('<h3>Per query modality × gallery modality '
                   '(R1 / mAP, %)</h3>')
        out.append(
            pair_table(analysis.modality_pairs, 'modality-pairs', 'query',
                       'gallery', modality_name))
    for kind in ('worst', 'best'):
        examples = [e for e in section.examples if e.kind == kind]
        if not examples:
            continue
        out.append(f'<h3>{kind.capitalize()} {len(examples)} queries by AP'
                   '</h3>')
        rank_of = ' of the full ranked list' if dedup else ''
        out += [
            ranked_list_html(e, i, thumb_size, rank_of)
            for i, e in enumerate(examples)
        ]
    out.append('</section>')
    return '\n'.join(out)


def render_report(
    sections: Sequence[ReportSection],
    title: str = 'mmreid evaluation report',
    results: Optional[Sequence[ResultRow]] = None,
    columns: Sequence[str] = ('R1', 'R5', 'R10', 'R20', 'mAP', 'mINP'),
    meta: Sequence[str] = (),
    thumb_size: Tuple[int, int] = (128, 64)
) -> str:
    """The whole report as one HTML document.

    Args:
        sections (Sequence[ReportSection]): One per target, in order.
        title (str): Page title.
        results (Sequence[ResultRow], optional): The run's reported metrics
            (:func:`~mmreid.evaluation.results_table.results_rows`).
        columns (Sequence[str]): Columns of the results table.
        meta (Sequence[str]): Lines under the title (config, checkpoint).
        thumb_size (tuple[int, int]): ``(height, width)`` of a thumbnail.

    Returns:
        str: The document.
    """
    anchors = [f'target-{i}' for i in range(len(sections))]
    out = [
        '<!DOCTYPE html>', '<html lang="en"><head><meta charset="utf-8">',
        f'<title>{_esc(title)}</title>', f'<style>{_STYLE}</style>',
        f'<script>{_SCRIPT}</script>', '</head><body>',
        f'<h1>{_esc(title)}</h1>'
    ]
    out += [f'<p class="meta">{_esc(line)}</p>' for line in meta]
    if results:
        out.append('<h3>Reported metrics</h3>')
        out.append(results_table_html(results, columns))
    if len(sections) > 1:
        out.append('<p class="meta">Targets: ' +
                   ' · '.join(f'<a href="#{a}">{_esc(s.name)}</a>'
                              for a, s in zip(anchors, sections)) + '</p>')
    out.append('<p class="legend">Frames: <span style="background:#005aff">'
               '</span>query <span style="background:#00b400"></span>same '
               'pid <span style="background:#e60000"></span>other pid</p>')
    out += [section_html(s, a, thumb_size) for s, a in zip(sections, anchors)]
    out.append('</body></html>')
    return '\n'.join(out)
