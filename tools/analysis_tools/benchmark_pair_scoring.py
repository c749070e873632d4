"""Speed, memory and accuracy of GMN's exact M-Net pair scoring.

One run, on synthetic L2-normalised features clustered by identity and a
random M-Net whose logit falls with the feature distance (so rankings are
meaningful), measures at one memory budget:

- ``direct``: the naive chunked scoring (``method='direct'``), which
  builds the squared differences of every pair;
- ``decomposed``: mmreid's exact decomposed scoring (one
  ``(Qc * H, D) @ (D, G)`` GEMM per query chunk);
- ``matmul ceiling``: plain ``torch.mm`` calls of exactly the decomposed
  GEMM shapes and FLOPs, with preallocated operands: what the machine's
  matmul reaches, the upper bound of the decomposed form;
- ``streamed``: ``evaluate_features(distance=make_mnet_scorer(...))``,
  scoring and ranking per query chunk without the Q x G matrix;
- ``top-k rerank``: ``mnet_distances(topk=k)``, the M-Net on the k nearest
  Euclidean candidates only, with its mAP / Rank-1 difference from the
  full ``mnet`` ranking;
- ``3 modes, one by one``: what GMN's evaluation did before: ``'mnet'``,
  ``'euclid'`` and ``'fused'`` (GMN's default report modes) each streamed
  by ``evaluate_features`` with its own scorer, so the M-Net scores every
  pair twice;
- ``3 modes, one pass``: ``evaluate_features_multi`` with the scorers of
  ``share_mnet_logits`` (what ``ReIDMetric`` now does with GMN's scorers):
  every query chunk scored once by the M-Net for ``'mnet'`` and
  ``'fused'``. Its metrics must equal the one-by-one row's, to the bit.

Only exact scoring is timed as such: the run exits with status 1, after
writing its table and JSON (``exactness``), when the decomposed logits
differ from the direct ones by more than ``--logit-tolerance`` (default
1e-4, the unit tests' bound), the streamed metrics from those of the
decomposed logits by more than ``--metric-tolerance`` (default 1e-6), or
the one-pass metrics from the one-by-one ones at all; a NaN never agrees.

FLOP/s count ``2 Q G D H`` (the first layer) for every full-scoring row
(once for the two 3-mode rows: the work needed) and ``2 Q k D H`` for the
top-k row. Peak memory is the peak beyond the memory
held before the method ran: on CUDA ``torch.cuda.max_memory_allocated``;
on CPU the kernel's peak RSS (``VmHWM``, reset through
``/proc/self/clear_refs`` before each method, as in ``benchmark_eval.py``;
``ru_maxrss`` where that is unavailable, then only growth is seen). Every
method first runs once on two queries (not measured), so that no row's
time or peak holds one-time costs (imports, thread pools, the numba rank
kernel's load) that the row before it did not pay. The
methods run in turn for ``--repeat`` rounds (so load changes on a shared
machine hit all of them); the best time is reported, with the median.
Example::

    python tools/analysis_tools/benchmark_pair_scoring.py --preset cpu \\
        --out work_dirs/benchmark_pair_scoring.json
"""
import argparse
import json
import math
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from mmreid.evaluation.functional import (evaluate_features,
                                          evaluate_features_multi,
                                          evaluate_rank, make_mnet_scorer,
                                          mnet_distances, mnet_pair_logits)
from mmreid.evaluation.functional.distance import exact_fp32_matmul
from mmreid.evaluation.functional.mnet_distance import MNetPairScorer
from mmreid.evaluation.functional.mnet_logits import decomposed_chunk_shape
from mmreid.evaluation.functional.mnet_shared_logits import share_mnet_logits
from mmreid.utils.atomic import open_atomic
from mmreid.utils.profiling import peak_rss_bytes, reset_peak_rss, rss_bytes

# name: (num_query, num_gallery)
PRESETS = dict(
    cpu=(64, 2048),
    market1501=(3368, 15913),
    msmt17=(11659, 82161),
)
#: GMN's default report modes.
MODES = ('mnet', 'euclid', 'fused')
# Noise around an identity's centre, relative to the centre's norm: about
# 66 % mAP and 97 % Rank-1 (Euclidean) on the cpu preset.
NOISE = 4.0


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--preset',
        choices=list(PRESETS),
        help='sizes (Q x G): cpu 64 x 2048, market1501 3368 x 15913, '
        'msmt17 11659 x 82161; --num-query/--num-gallery override them')
    parser.add_argument('--num-query', type=int, help='Q (default 64)')
    parser.add_argument('--num-gallery', type=int, help='G (default 2048)')
    parser.add_argument('--dim', type=int, default=2048, help='D')
    parser.add_argument('--hidden', type=int, default=512, help='H')
    parser.add_argument(
        '--memory-budget-mb',
        type=float,
        default=128,
        help='memory_budget_mb of the scoring functions')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument(
        '--repeat', type=int, default=3, help='timed runs per method')
    parser.add_argument('--topk', type=int, default=100, help='k of rerank')
    parser.add_argument(
        '--threads', type=int, default=None, help='torch CPU threads')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--logit-tolerance',
        type=float,
        default=1e-4,
        help='largest |z_direct - z_decomposed| of an exact run')
    parser.add_argument(
        '--metric-tolerance',
        type=float,
        default=1e-6,
        help='largest |metric difference| (fraction) of the streamed '
        'ranking from the decomposed logits\' ranking')
    parser.add_argument('--out', help='write the results to this JSON file')
    args = parser.parse_args(argv)
    preset = PRESETS[args.preset or 'cpu']
    if args.num_query is None:
        args.num_query = preset[0]
    if args.num_gallery is None:
        args.num_gallery = preset[1]
    for name in ('num_query', 'num_gallery', 'dim', 'hidden', 'repeat',
                 'topk'):
        if getattr(args, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be >= 1, got '
                         f'{getattr(args, name)}')
    for name in ('logit_tolerance', 'metric_tolerance'):
        value = getattr(args, name)
        if not value >= 0 or math.isinf(value):
            parser.error(f'--{name.replace("_", "-")} must be a finite '
                         f'number >= 0, got {value}')
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda but CUDA is not available')
    return args


def largest(*values) -> float:
    """The largest of ``values``; NaN if one of them is (Python's ``max``
    keeps or drops a NaN by its position)."""
    values = [float(v) for v in values]
    return math.nan if any(map(math.isnan, values)) else max(values)


def metric_diff(result, other) -> float:
    """Largest |difference| of two rank results' mAP, mINP and CMC."""
    return largest(
        abs(result.mAP - other.mAP), abs(result.mINP - other.mINP),
        *(abs(result.cmc - other.cmc).reshape(-1).tolist()))


def exactness_failures(exactness: dict, args) -> list:
    """What an exact run must hold and this one did not (``exactness``:
    the summary's entry; a NaN fails every bound)."""
    checks = [
        ('max |z_direct - z_decomposed|', exactness['max_abs_logit_error'],
         args.logit_tolerance),
        ('streamed - full: max |metric diff|',
         exactness['streamed_metric_diff'], args.metric_tolerance),
        ('3 modes one pass - one by one: max |metric diff|',
         exactness['one_pass_metric_diff'], 0.0),
    ]
    return [
        f'{what} = {value:.2e}, above {bound:g}'
        for what, value, bound in checks if not value <= bound
    ]


class PeakMemory:
    """Peak memory beyond the memory held when the block starts."""

    def __init__(self, device):
        self.device = torch.device(device)
        self.peak = 0
        self.exact = True

    def __enter__(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
        else:
            self.baseline = rss_bytes()
            self.exact = reset_peak_rss()
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
        else:
            peak = peak_rss_bytes()
        self.peak = max(0, peak - self.baseline)
        return False


def make_inputs(num_query, num_gallery, dim, hidden, seed, device):
    """Identity-clustered features and a distance-aware random M-Net."""
    generator = torch.Generator().manual_seed(seed)
    num_ids = max(1, min(num_query // 2, num_gallery // 8))
    q_pids = torch.arange(num_query) % num_ids
    g_pids = torch.arange(num_gallery) % num_ids
    # 10 % of the gallery are distractors with identities of their own.
    num_distractors = num_gallery // 10
    g_pids[:num_distractors] = num_ids + torch.arange(num_distractors)
    q_camids = torch.randint(0, 6, (num_query, ), generator=generator)
    g_camids = torch.randint(0, 6, (num_gallery, ), generator=generator)
    centers = F.normalize(
        torch.randn(num_ids + num_distractors, dim, generator=generator),
        dim=1)

    def features(pids):
        noise = torch.randn(len(pids), dim, generator=generator)
        return F.normalize(centers[pids] + noise * (NOISE / dim**0.5), dim=1)

    query, gallery = features(q_pids), features(g_pids)
    # M-Net: weights with a positive mean make W f_sp grow with the
    # distance; thresholds (bias) make it piecewise linear; a negative
    # output weight makes z fall with the distance. The random part of W
    # re-weights the dimensions, so its ranking is not the Euclidean one.
    weight = (1 + 0.5 * torch.randn(hidden, dim, generator=generator))
    bias = -2 * torch.rand(hidden, generator=generator)
    out_weight = -torch.rand(hidden, generator=generator) * (4 / hidden)
    out_bias = torch.tensor(1.0)
    labels = (q_pids.numpy(), g_pids.numpy(), q_camids.numpy(),
              g_camids.numpy())
    params = tuple(t.to(device) for t in (weight, bias, out_weight, out_bias))
    return query.to(device), gallery.to(device), params, labels


def timed_round_robin(methods, repeat, device):
    """Time methods in turn, ``repeat`` rounds of one run each.

    Interleaving the rounds spreads load changes of a shared machine over
    all methods instead of biasing whichever ran during a busy spell.

    Args:
        methods (dict): name -> zero-argument callable.
        repeat (int): Rounds.
        device (str): Where they run (for synchronisation and memory).

    Returns:
        dict: name -> (result of the last round, seconds of every round,
        peak bytes over all rounds, whether the peak was reset exactly).
    """
    device = torch.device(device)
    stats = {name: [None, [], 0, True] for name in methods}
    for _ in range(repeat):
        for name, fn in methods.items():
            entry = stats[name]
            entry[0] = None  # free the previous result before measuring
            with PeakMemory(device) as memory:
                start = time.perf_counter()
                entry[0] = fn()
                if device.type == 'cuda':
                    torch.cuda.synchronize(device)
                entry[1].append(time.perf_counter() - start)
            entry[2] = max(entry[2], memory.peak)
            entry[3] = entry[3] and memory.exact
    return {name: tuple(entry) for name, entry in stats.items()}


def matmul_ceiling(query, gallery, hidden, budget, device):
    """Plain mm calls with exactly the decomposed GEMM shapes."""
    num_query, dim = query.shape
    num_gallery = len(gallery)
    query_block, gallery_block = decomposed_chunk_shape(
        num_gallery, dim, hidden, budget)
    rows = min(query_block, num_query) * hidden
    left = torch.randn(rows, dim, device=device)
    right = gallery.t()
    out = torch.empty(rows * gallery_block, device=device)

    def run():
        with exact_fp32_matmul(torch.device(device)):
            for q_start in range(0, num_query, query_block):
                num_rows = min(query_block, num_query - q_start) * hidden
                for g_start in range(0, num_gallery, gallery_block):
                    num_g = min(gallery_block, num_gallery - g_start)
                    torch.mm(
                        left[:num_rows],
                        right[:, g_start:g_start + num_g],
                        out=out[:num_rows * num_g].view(num_rows, num_g))
        return (min(query_block, num_query), gallery_block)

    return run


def write_json_atomic(path, data):
    with open_atomic(path, 'w') as f:
        json.dump(data, f, indent=2)


def warm_subset(query, labels, count=2):
    """The first ``count`` queries with a positive in the gallery.

    Args:
        query (Tensor): Query features, shape (Q, D).
        labels (tuple): ``(q_pids, g_pids, q_camids, g_camids)`` arrays.
        count (int): Queries to keep.

    Returns:
        tuple: ``(query, labels)`` of those queries; the gallery labels
        unchanged. (Under the junk rule a positive is a gallery image of
        the pid from another camera; a warm-up of queries without one
        would stop with "no query has a positive".)
    """
    q_pids, g_pids, q_camids, g_camids = labels
    keep = [
        i for i in range(len(q_pids))
        if ((g_pids == q_pids[i]) & (g_camids != q_camids[i])).any()
    ][:count] or [0]
    return query[keep], (q_pids[keep], g_pids, q_camids[keep], g_camids)


def metrics_of(result):
    return dict(mAP=float(result.mAP), R1=float(result.cmc[0]))


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device
    num_query, num_gallery = args.num_query, args.num_gallery
    dim, hidden, budget = args.dim, args.hidden, args.memory_budget_mb
    k = min(args.topk, num_gallery)
    query, gallery, params, labels = make_inputs(num_query, num_gallery, dim,
                                                 hidden, args.seed, device)

    pair_flops = 2 * num_query * num_gallery * dim * hidden
    rows = []

    def record(name, seconds, peak, exact, flops, **extra):
        row = dict(
            method=name,
            seconds=min(seconds),
            median_seconds=statistics.median(seconds),
            all_seconds=seconds,
            flops=flops,
            flop_per_s=flops / min(seconds) if flops else None,
            peak_bytes=peak,
            peak_exact=exact,
            **extra)
        rows.append(row)
        print(f"{name}: {row['seconds']:.3f} s", flush=True)
        return row

    scorer = make_mnet_scorer(
        *params, memory_budget_mb=budget, gallery=gallery)
    names = ('direct (naive chunked)', 'decomposed (mmreid)', 'matmul ceiling',
             'streamed (evaluate_features)', f'top-{k} rerank',
             '3 modes, one by one', '3 modes, one pass (mmreid)')

    def build_methods(query, labels):
        """name -> zero-argument callable timed on ``query``."""

        def mode_scorers():
            # Built per round, as the loops build them per evaluation.
            return {
                mode:
                MNetPairScorer(
                    *params, distance=mode, memory_budget_mb=budget)
                for mode in MODES
            }

        def one_by_one():
            return {
                mode:
                evaluate_features(
                    query,
                    gallery,
                    *labels,
                    distance=scorer,
                    memory_budget_mb=budget)
                for mode, scorer in mode_scorers().items()
            }

        def one_pass():
            return evaluate_features_multi(
                query,
                gallery,
                *labels,
                distances=share_mnet_logits(mode_scorers()),
                memory_budget_mb=budget)

        return dict(
            zip(names, [
                lambda: mnet_pair_logits(
                    query,
                    gallery,
                    *params,
                    method='direct',
                    memory_budget_mb=budget),
                lambda: mnet_pair_logits(
                    query,
                    gallery,
                    *params,
                    method='decomposed',
                    memory_budget_mb=budget),
                matmul_ceiling(query, gallery, hidden, budget, device),
                lambda: evaluate_features(
                    query,
                    gallery,
                    *labels,
                    distance=scorer,
                    memory_budget_mb=budget),
                lambda: mnet_distances(
                    query, gallery, *params, topk=k, memory_budget_mb=budget),
                one_by_one,
                one_pass,
            ]))

    # Warm up every timed code path (thread pools, imports, the numba rank
    # kernel) on a few queries: a method's first call must not put their
    # one-time cost into its time or peak memory.
    for fn in build_methods(*warm_subset(query, labels)).values():
        fn()
    methods = build_methods(query, labels)
    stats = timed_round_robin(methods, args.repeat, device)
    results = {name: stats[name][0] for name in names}
    stats = {name: stats[name][1:] for name in names}

    direct, decomposed = results[names[0]], results[names[1]]
    # torch's max keeps a NaN.
    max_abs_dz = (direct - decomposed).abs().max().item()
    full = evaluate_rank(-decomposed, *labels)
    euclid = evaluate_rank(
        mnet_distances(query, gallery, *params, distance='euclid'), *labels)
    streamed = results[names[3]]
    topk = evaluate_rank(results[names[4]], *labels)
    by_mode, shared = results[names[5]], results[names[6]]
    chunk_shape = results[names[2]]
    del direct, decomposed, results

    record(names[0], *stats[names[0]], pair_flops)
    record(names[1], *stats[names[1]], pair_flops)
    ceiling = record(names[2], *stats[names[2]], pair_flops)
    record(
        names[3],
        *stats[names[3]],
        pair_flops,
        **metrics_of(streamed),
        max_abs_metric_diff=metric_diff(streamed, full))
    record(
        names[4],
        *stats[names[4]],
        2 * num_query * k * dim * hidden,
        **metrics_of(topk),
        mAP_diff=float(topk.mAP - full.mAP),
        R1_diff=float(topk.cmc[0] - full.cmc[0]))
    record(names[5], *stats[names[5]], pair_flops,
           **metrics_of(by_mode['mnet']))
    record(
        names[6],
        *stats[names[6]],
        pair_flops,
        **metrics_of(shared['mnet']),
        max_abs_metric_diff=largest(*(metric_diff(shared[m], by_mode[m])
                                      for m in MODES)))
    for row in rows:
        row['ratio_to_ceiling'] = (
            ceiling['seconds'] /
            row['seconds'] if row['flops'] == pair_flops else None)

    summary = dict(
        num_query=num_query,
        num_gallery=num_gallery,
        dim=dim,
        hidden=hidden,
        topk=k,
        memory_budget_mb=budget,
        device=(torch.cuda.get_device_name(device) if device == 'cuda' else
                platform.processor() or platform.machine()),
        threads=torch.get_num_threads(),
        repeat=args.repeat,
        decomposed_chunk=dict(
            queries=chunk_shape[0], gallery_columns=chunk_shape[1]),
        max_abs_logit_error=max_abs_dz,
        exactness=dict(
            max_abs_logit_error=max_abs_dz,
            streamed_metric_diff=rows[3]['max_abs_metric_diff'],
            one_pass_metric_diff=rows[6]['max_abs_metric_diff'],
            logit_tolerance=args.logit_tolerance,
            metric_tolerance=args.metric_tolerance),
        full_mnet=metrics_of(full),
        euclid=metrics_of(euclid),
        rows=rows)
    print(f'\nQ x G = {num_query:,} x {num_gallery:,}, D = {dim}, H = '
          f'{hidden}, device {summary["device"]} ({device}), threads '
          f'{summary["threads"]}, memory_budget_mb {budget}, decomposed '
          f'chunk {chunk_shape[0]} queries x {chunk_shape[1]} gallery, '
          f'best of {args.repeat}\n')
    print('| method | seconds (best / median) | GFLOP/s | vs matmul '
          'ceiling | peak MB over input | mAP / R1 (%) |')
    print('|---|---|---|---|---|---|')
    for row in rows:
        ratio = ('-' if row['ratio_to_ceiling'] is None else
                 f"{row['ratio_to_ceiling'] * 100:.0f} %")
        quality = ('-' if 'mAP' not in row else
                   f"{row['mAP'] * 100:.2f} / {row['R1'] * 100:.2f}")
        peak = f"{row['peak_bytes'] / 2**20:.1f}"
        if not row['peak_exact']:
            peak += ' (growth)'
        print(f"| {row['method']} | {row['seconds']:.3f} / "
              f"{row['median_seconds']:.3f} | "
              f"{row['flop_per_s'] / 1e9:.1f} | {ratio} | {peak} | "
              f'{quality} |')
    print(f"\nfull mnet: mAP {full.mAP * 100:.2f} %, R1 "
          f"{full.cmc[0] * 100:.2f} %; euclid: mAP {euclid.mAP * 100:.2f} %,"
          f" R1 {euclid.cmc[0] * 100:.2f} %; top-{k} - full: mAP "
          f"{rows[4]['mAP_diff'] * 100:+.2f}, R1 "
          f"{rows[4]['R1_diff'] * 100:+.2f} points; max |z_direct - "
          f'z_decomposed| = {max_abs_dz:.2e}; streamed - full: max '
          f"|metric diff| = {rows[3]['max_abs_metric_diff']:.1e}; 3 modes "
          f'one pass - one by one: max |metric diff| = '
          f"{rows[6]['max_abs_metric_diff']:.1e}")
    failures = exactness_failures(summary['exactness'], args)
    summary['exactness']['agrees'] = not failures
    if args.out:
        write_json_atomic(args.out, summary)
    if failures:
        # Written first, so the numbers can be read; but a time of a
        # scoring that is not exact is not a result.
        print('\nNOT EXACT: ' + '; '.join(failures), file=sys.stderr)
        sys.exit(1)
    return summary


if __name__ == '__main__':
    main()
