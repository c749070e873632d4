"""Inline SVG charts for the HTML report: no script, no external file."""
import html
from typing import Sequence

from mmreid.evaluation.results_table import inside_bounds


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def svg_line_chart(xs: Sequence[float],
                   ys: Sequence[float],
                   title: str,
                   x_label: str,
                   y_label: str,
                   css_class: str,
                   marks: Sequence[int] = (),
                   width: int = 350,
                   height: int = 280) -> str:
    """An inline SVG line chart, y in [0, 100].

    Args:
        xs, ys: The points.
        title, x_label, y_label: Texts.
        css_class: Class of the ``<svg>`` element.
        marks: x values whose point is labelled with its y.
    """
    left, right, top, bottom = 52, 16, 30, 42
    plot_w, plot_h = width - left - right, height - top - bottom
    x_min, x_max = min(xs), max(xs)
    span = (x_max - x_min) or 1

    def px(x):
        return left + (x - x_min) / span * plot_w

    def py(y):
        return top + (1 - y / 100.0) * plot_h

    parts = [
        f'<svg class="{_esc(css_class)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" role="img" '
        f'aria-label="{_esc(title)}">',
        f'<text x="{width / 2}" y="18" text-anchor="middle" '
        f'font-size="14" font-weight="600">{_esc(title)}</text>'
    ]
    for tick in range(0, 101, 20):
        y = py(tick)
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y}" '
                     f'y2="{y}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4}" text-anchor="end" '
                     f'font-size="11">{tick}</text>')
    x_ticks = sorted({int(x_min), *marks, int(x_max)})
    for tick in x_ticks:
        parts.append(f'<text x="{px(tick)}" y="{top + plot_h + 16}" '
                     f'text-anchor="middle" font-size="11">{tick}</text>')
    parts.append(f'<rect x="{left}" y="{top}" width="{plot_w}" '
                 f'height="{plot_h}" fill="none" stroke="#999"/>')
    points = ' '.join(f'{px(x):.1f},{py(y):.1f}' for x, y in zip(xs, ys))
    parts.append(f'<polyline points="{points}" fill="none" stroke="#005aff" '
                 'stroke-width="2"/>')
    lookup = dict(zip(xs, ys))
    for mark in marks:
        if mark in lookup:
            x, y = px(mark), py(lookup[mark])
            parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" '
                         f'fill="#005aff"><title>{_esc(x_label)} {mark}: '
                         f'{inside_bounds(lookup[mark])}</title></circle>')
            # Below the point, or above it near the x axis.
            text_y = y + 14 if lookup[mark] > 12 else y - 6
            parts.append(f'<text x="{x + 4:.1f}" y="{text_y:.1f}" '
                         f'font-size="11">{inside_bounds(lookup[mark], 1)}'
                         '</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 8}" '
                 f'text-anchor="middle" font-size="12">{_esc(x_label)}'
                 '</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" '
                 f'font-size="12" transform="rotate(-90 14 '
                 f'{top + plot_h / 2})">{_esc(y_label)}</text>')
    parts.append('</svg>')
    return ''.join(parts)


def svg_bar_chart(labels: Sequence[str],
                  counts: Sequence[int],
                  title: str,
                  x_label: str,
                  css_class: str,
                  width: int = 350,
                  height: int = 280) -> str:
    """An inline SVG histogram of counts, each bar labelled with its count
    and its share."""
    left, right, top, bottom = 52, 16, 30, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    total = max(sum(counts), 1)
    peak = max(max(counts, default=0), 1)
    slot = plot_w / max(len(labels), 1)
    parts = [
        f'<svg class="{_esc(css_class)}" xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" role="img" '
        f'aria-label="{_esc(title)}">',
        f'<text x="{width / 2}" y="18" text-anchor="middle" '
        f'font-size="14" font-weight="600">{_esc(title)}</text>',
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" '
        f'y2="{top + plot_h}" stroke="#999"/>'
    ]
    for i, (label, count) in enumerate(zip(labels, counts)):
        bar_h = count / peak * (plot_h - 14)
        x = left + i * slot + slot * 0.12
        y = top + plot_h - bar_h
        share = 100.0 * count / total
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{y:.1f}" '
            f'width="{slot * 0.76:.1f}" height="{bar_h:.1f}" '
            f'fill="#5b8def" data-count="{count}"><title>{_esc(label)}: '
            f'{count} ({share:.1f} %)</title></rect>')
        parts.append(f'<text x="{x + slot * 0.38:.1f}" y="{y - 3:.1f}" '
                     f'text-anchor="middle" font-size="10">{count}</text>')
        label_x, label_y = x + slot * 0.38, top + plot_h + 13
        # Long labels are turned so that neighbours do not overlap.
        turn = (f' transform="rotate(-30 {label_x:.1f} {label_y})"'
                if len(label) > 4 else '')
        anchor = 'end' if turn else 'middle'
        parts.append(f'<text x="{label_x:.1f}" y="{label_y}" '
                     f'text-anchor="{anchor}" font-size="10"{turn}>'
                     f'{_esc(label)}</text>')
    parts.append(f'<text x="{left + plot_w / 2}" y="{height - 8}" '
                 f'text-anchor="middle" font-size="12">{_esc(x_label)}'
                 '</text>')
    parts.append(f'<text x="14" y="{top + plot_h / 2}" text-anchor="middle" '
                 f'font-size="12" transform="rotate(-90 14 '
                 f'{top + plot_h / 2})">queries</text>')
    parts.append('</svg>')
    return ''.join(parts)
