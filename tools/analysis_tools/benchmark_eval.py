"""Time and memory of rank evaluation on Market- and MSMT17-sized inputs.

In one run, for each size and model-strength regime, synthetic
Market-like features (pids spread over cameras, 15 % distractors of pid
0; the regime sets the noise around each pid's centre: ``strong`` gives
mAP ~100, ``medium`` ~45, ``weak`` ~10, the achieved metrics are printed
with every row) and their float32 cosine distance matrix are written to a
temporary folder; then every method runs in a fresh subprocess, while
``--contend N`` busy processes compete for the CPUs if asked; each
subprocess loads its input, records its resident memory,
evaluates, and reports the seconds and the peak resident memory beyond
that baseline: the kernel's peak RSS (``VmHWM``, reset with
``/proc/self/clear_refs`` once the input is loaded and the method warmed
up on 8 queries; ``ru_maxrss`` where that is unavailable) minus the RSS at
that point. Methods:

- ``mmreid``: :func:`evaluate_rank` on the distance matrix;
- ``features``: :func:`evaluate_features` from the features (cosine),
  the matrix is never held;
- ``reference``: the brute-force :func:`reference_evaluate_rank` (full
  stable sort per query; not at the MSMT17 size);
- ``fastreid-py`` / ``fastreid-cy``: fast-reid's ``evaluate_rank``
  loaded by file path from ``--fastreid-dir`` (``fastreid/evaluation/
  rank.py``), and its ``rank_cy.pyx`` compiled into a temporary folder
  when ``--fastreid-cython`` is given and Cython is installed;
- ``rerank``: :func:`k_reciprocal_rerank` (k1=20, k2=6, lambda=0.3) of
  the L2-normalised features, then :func:`evaluate_rank`;
- ``fastreid-rerank``: the same with fast-reid's numpy ``re_ranking``
  (``fastreid/evaluation/rerank.py``, the standard implementation of
  Zhong et al.) on the three full distance matrices, which it needs.

Every method's CMC (ranks 1-50), mAP and mINP are compared with
``mmreid``'s, the re-ranking methods' with ``rerank``'s (which is added to
the run whenever ``fastreid-rerank`` is in it; the two bases show ``-``).
A method whose largest difference exceeds ``--tolerance`` (default 1e-6:
fast-reid's float32 averaging differs by up to ~2e-7) is marked
``DIFFERS`` in the table and ``agrees: false`` in the JSON (so is one
whose ``--repeats`` gave other metrics than its first run), gets no
speed-up (and, if it is ``fastreid-cy``, gives none to the others), and
the tool exits with status 1 after writing its table and JSON. With
``fastreid-cy`` in the run, each row that does not re-rank also gets its
speed-up over it (the two measured side by side, under the same load; a
re-ranking row does more work than it, so it gets none). A NaN metric
never agrees. ``features`` rows report
the share of the distance computation (the GEMM, timed alone in the same
process after the measurement). ``--device cuda`` runs ``mmreid`` and
``features`` on the GPU (inputs moved there before the clock starts, the
device synchronised before it stops, memory = the device's peak
allocation beyond the inputs); the peers stay on the CPU. Example::

    python tools/analysis_tools/benchmark_eval.py --sizes market msmt \\
        --regime strong medium weak --fastreid-dir /tmp/peers/fr \\
        --fastreid-cython --threads 1 --contend 1 \\
        --json work_dirs/benchmark_eval.json
"""
import argparse
import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys
import tempfile
import time

import numpy as np

from mmreid.utils.atomic import open_atomic
from mmreid.utils.profiling import peak_rss_bytes, reset_peak_rss, rss_bytes

# name: (num_query, num_gallery, num_ids, num_cameras)
SIZES = dict(
    tiny=(200, 1000, 50, 6),  # a smoke test of the script itself
    market=(3368, 15913, 751, 6),
    msmt=(11659, 82161, 3060, 15),
)
METHODS = ('mmreid', 'features', 'reference', 'fastreid-py', 'fastreid-cy',
           'rerank', 'fastreid-rerank')
# Methods that re-rank: compared with mmreid's rerank, not with mmreid.
RERANK_METHODS = ('rerank', 'fastreid-rerank')
#: The method each row is compared with: re-ranking or not.
BASES = {False: 'mmreid', True: 'rerank'}
#: Default largest |difference| of a metric (fraction) from its base;
#: fast-reid's float32 averaging gives up to ~2e-7.
TOLERANCE = 1e-6
#: Methods that --device moves off the CPU.
DEVICE_METHODS = ('mmreid', 'features')
# k-reciprocal parameters of the paper (k1, k2, lambda).
RERANK_PARAMS = (20, 6, 0.3)
MAX_RANK = 50
# Noise of a sample around its pid's centre, relative to the spread of the
# centres, per model-strength regime. On the Market size: strong about
# 100 % mAP, medium about 44 % mAP / 87 % R1 (a good in-domain model),
# weak about 9 % mAP / 33 % R1 (a cross-domain model).
REGIMES = dict(strong=1.0, medium=3.7, weak=4.6)
# A busy process for --contend: one core's worth of pure Python work.
# A busy process that stops when the benchmark does, even when the
# benchmark is killed before it can stop it: its parent (whose pid it
# gets as its argument) is then no longer its parent.
BUSY_LOOP = ('import os, sys\n'
             'while os.getppid() == int(sys.argv[1]):\n'
             '    for _ in range(100000):\n'
             '        pass\n')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--sizes',
        nargs='+',
        default=['market'],
        choices=list(SIZES),
        help='input sizes to benchmark')
    parser.add_argument(
        '--regime',
        nargs='+',
        default=['medium'],
        choices=list(REGIMES),
        help='model strengths to benchmark (the noise of the synthetic '
        'features)')
    parser.add_argument(
        '--contend',
        type=int,
        default=0,
        help='busy processes competing for the CPUs while the methods '
        'run (not while the inputs are written)')
    parser.add_argument(
        '--methods',
        nargs='+',
        choices=METHODS,
        help='methods to run (default: mmreid and features, plus '
        'fastreid-py with --fastreid-dir); --reference and '
        '--fastreid-cython add theirs')
    parser.add_argument(
        '--reference',
        action='store_true',
        help='also run the brute-force reference (not at the MSMT17 size)')
    parser.add_argument(
        '--fastreid-dir',
        help='a fast-reid checkout; adds fast-reid\'s Python evaluator')
    parser.add_argument(
        '--fastreid-cython',
        action='store_true',
        help='also compile and run fast-reid\'s rank_cy.pyx (needs Cython)')
    parser.add_argument(
        '--feat-dim', type=int, default=2048, help='feature dimension')
    parser.add_argument(
        '--memory-budget-mb',
        type=float,
        default=None,
        help='memory_budget_mb of evaluate_features (default: its own)')
    parser.add_argument(
        '--threads',
        type=int,
        default=None,
        help='torch threads of every method (default: torch\'s own; '
        'mmreid then caps it at the CPUs the process may use)')
    parser.add_argument(
        '--repeats',
        type=int,
        default=1,
        help='fresh subprocesses per method; the median and the best time '
        'are reported')
    parser.add_argument(
        '--malloc-mmap-threshold',
        type=int,
        default=None,
        help='set MALLOC_MMAP_THRESHOLD_ (bytes) in the subprocesses: a '
        'fixed glibc mmap threshold returns freed chunk buffers to the '
        'system instead of growing the heap')
    parser.add_argument(
        '--device',
        default='cpu',
        help='where mmreid\'s methods (mmreid, features) compute, e.g. '
        'cuda: their inputs are put there before the clock starts and the '
        'device is synchronised before it stops; memory is then the '
        'device\'s peak allocation. The other methods stay on the CPU')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', help='write the results to this file')
    parser.add_argument(
        '--tolerance',
        type=float,
        default=TOLERANCE,
        help='largest |difference| of any CMC rank, mAP or mINP (fractions) '
        'from the base (mmreid, or rerank for re-ranking methods) a method '
        f'may have (default {TOLERANCE:g}); beyond it the row says DIFFERS '
        'and the tool exits with status 1')
    parser.add_argument(
        '--work-dir',
        help='folder for the inputs, made if missing (default: a temp dir)')
    parser.add_argument('--child', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.work_dir and not args.child:
        # The inputs are written in a temporary folder under it.
        if osp.exists(args.work_dir) and not osp.isdir(args.work_dir):
            parser.error(f'--work-dir {args.work_dir!r} is a file, not a '
                         f'folder')
        os.makedirs(args.work_dir, exist_ok=True)
    if args.fastreid_dir:
        # The Cython build and the children run in other folders.
        args.fastreid_dir = osp.abspath(args.fastreid_dir)
    return args


def make_inputs(size, folder, feat_dim, seed, threads, noise):
    """Write labels, features and the cosine distance matrix of a size."""
    import torch

    from mmreid.evaluation.functional import compute_distance
    if threads:
        torch.set_num_threads(threads)
    num_query, num_gallery, num_ids, num_cams = SIZES[size]
    rng = np.random.default_rng(seed)
    # Gallery: 85 % real pids (1..num_ids), 15 % distractors of pid 0, as
    # in Market-1501; queries draw from the real pids only.
    num_distractors = int(0.15 * num_gallery)
    g_pids = np.concatenate([
        np.arange(num_gallery - num_distractors) % num_ids + 1,
        np.zeros(num_distractors, dtype=np.int64)
    ]).astype(np.int64)
    q_pids = (rng.permutation(num_query) % num_ids + 1).astype(np.int64)
    g_camids = rng.integers(0, num_cams, num_gallery).astype(np.int64)
    q_camids = rng.integers(0, num_cams, num_query).astype(np.int64)
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(num_ids + 1, feat_dim, generator=generator)

    def features(pids):
        feats = centers[torch.from_numpy(pids)]
        sample_noise = torch.randn(feats.shape, generator=generator)
        feats.add_(sample_noise, alpha=noise)
        return feats

    query, gallery = features(q_pids), features(g_pids)
    # Distractors get their own random centre each.
    gallery[g_pids == 0] = torch.randn(
        num_distractors, feat_dim, generator=generator)
    np.savez(
        osp.join(folder, 'labels.npz'),
        q_pids=q_pids,
        g_pids=g_pids,
        q_camids=q_camids,
        g_camids=g_camids)
    np.save(osp.join(folder, 'query.npy'), query.numpy())
    np.save(osp.join(folder, 'gallery.npy'), gallery.numpy())
    distmat = np.lib.format.open_memmap(
        osp.join(folder, 'distmat.npy'),
        mode='w+',
        dtype=np.float32,
        shape=(num_query, num_gallery))
    for start in range(0, num_query, 1024):
        distmat[start:start + 1024] = compute_distance(
            query[start:start + 1024], gallery, 'cosine').numpy()
    distmat.flush()
    del distmat


def load_fastreid(fastreid_dir, cython, build_dir):
    """fast-reid's evaluate_rank(..., use_cython) loaded by file path."""
    path = osp.join(fastreid_dir, 'fastreid', 'evaluation', 'rank.py')
    if not cython:
        spec = importlib.util.spec_from_file_location('fastreid_rank', path)
        module = importlib.util.module_from_spec(spec)
        # Its relative import of the Cython module fails here on purpose;
        # the module then falls back to its pure-Python evaluator.
        spec.loader.exec_module(module)
        return lambda *args: module.evaluate_rank(
            *args, max_rank=MAX_RANK, use_cython=False)
    sys.path.insert(0, build_dir)
    import rank_cy
    return lambda *args: rank_cy.evaluate_cy(*args, MAX_RANK, False)


def load_fastreid_rerank(fastreid_dir):
    """fast-reid's numpy re_ranking (the standard implementation of
    Zhong et al.), loaded by file path."""
    path = osp.join(fastreid_dir, 'fastreid', 'evaluation', 'rerank.py')
    spec = importlib.util.spec_from_file_location('fastreid_rerank', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.re_ranking


def build_fastreid_cython(fastreid_dir, build_dir):
    """Compile rank_cy.pyx out of tree; returns an error message or None."""
    try:
        import Cython  # noqa: F401
    except ImportError:
        return 'Cython is not installed'
    source = osp.join(fastreid_dir, 'fastreid', 'evaluation', 'rank_cylib',
                      'rank_cy.pyx')
    if not osp.exists(source):
        return f'{source} not found'
    setup = osp.join(build_dir, 'setup_rank_cy.py')
    with open(setup, 'w') as f:
        f.write('import numpy\n'
                'from Cython.Build import cythonize\n'
                'from setuptools import Extension, setup\n'
                f'setup(ext_modules=cythonize([Extension("rank_cy", '
                f'[{source!r}], include_dirs=[numpy.get_include()])]))\n')
    proc = subprocess.run([sys.executable, setup, 'build_ext', '--inplace'],
                          cwd=build_dir,
                          capture_output=True,
                          text=True)
    if proc.returncode:
        return 'the build failed: ' + proc.stderr[-500:]
    return None


def run_child(args):
    """Run one method in this (fresh) process and print a JSON line."""
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    method, folder = args.child.split(':', 1)
    labels = dict(np.load(osp.join(folder, 'labels.npz')))
    label_args = (labels['q_pids'], labels['g_pids'], labels['q_camids'],
                  labels['g_camids'])
    if method == 'features' or method in RERANK_METHODS:
        inputs = (np.load(osp.join(folder, 'query.npy')),
                  np.load(osp.join(folder, 'gallery.npy')))
    else:
        inputs = (np.load(osp.join(folder, 'distmat.npy')), )
    evaluate = None
    if method == 'fastreid-rerank':
        evaluate = load_fastreid_rerank(args.fastreid_dir)
    elif method.startswith('fastreid'):
        evaluate = load_fastreid(args.fastreid_dir, method == 'fastreid-cy',
                                 folder)
    # Warm up on a few queries first: the first call faults in library
    # code and thread pools, which is resident memory but not the
    # method's working set. Re-ranking's cost is (Q + G)^2, so it warms
    # up on a slice of the gallery too.
    q_pids, g_pids, q_camids, g_camids = label_args
    keep = slice(None)
    if method in RERANK_METHODS:
        # The warm-up queries' own pids plus 64 other items.
        keep = np.isin(g_pids, q_pids[:8]) | (np.arange(len(g_pids)) < 64)
    on_device = args.device != 'cpu' and method in DEVICE_METHODS
    if on_device:
        inputs = tuple(torch.from_numpy(x).to(args.device) for x in inputs)
    measure(method, evaluate,
            (inputs[0][:8], ) + tuple(x[keep] for x in inputs[1:]),
            (q_pids[:8], g_pids[keep], q_camids[:8], g_camids[keep]), args)
    if on_device:
        torch.cuda.synchronize(args.device)
        baseline = torch.cuda.memory_allocated(args.device)
        torch.cuda.reset_peak_memory_stats(args.device)
        peak_was_reset = True
    else:
        baseline = rss_bytes()
        peak_was_reset = reset_peak_rss()
    start = time.perf_counter()
    cmc, mAP, mINP = measure(method, evaluate, inputs, label_args, args)
    if on_device:
        torch.cuda.synchronize(args.device)
    seconds = time.perf_counter() - start
    if on_device:
        peak_over_input = torch.cuda.max_memory_allocated(
            args.device) - baseline
    else:
        peak_over_input = peak_rss_bytes() - baseline
    gemm_seconds = None
    if method == 'features':
        gemm_seconds = time_distances(inputs, args)
    from mmreid.evaluation.functional import count_kernel
    print(
        json.dumps(
            dict(
                seconds=seconds,
                peak_over_input=peak_over_input,
                peak_was_reset=peak_was_reset,
                baseline_rss=baseline,
                gemm_seconds=gemm_seconds,
                device=args.device if on_device else 'cpu',
                rank_backend=('numba' if count_kernel.available()
                              and not on_device else 'torch'),
                cmc=np.asarray(cmc, dtype=float)[:MAX_RANK].tolist(),
                mAP=float(mAP),
                mINP=float(mINP))))


def time_distances(inputs, args):
    """Seconds of evaluate_features' distance computation alone: the same
    query chunks, threads and GEMM, without the ranking."""
    import torch

    from mmreid.evaluation.functional import (DEFAULT_MEMORY_BUDGET_MB,
                                              GalleryDistance,
                                              chunk_rows_for_budget)
    from mmreid.utils.threads import compute_thread_count, torch_threads
    query, gallery = (torch.as_tensor(x) for x in inputs)
    chunk = chunk_rows_for_budget(
        len(gallery), args.memory_budget_mb or DEFAULT_MEMORY_BUDGET_MB)
    cuda = query.device.type == 'cuda'
    start = time.perf_counter()
    with torch_threads(compute_thread_count()):
        distance = GalleryDistance(gallery, 'cosine')
        for begin in range(0, len(query), chunk):
            distance(query[begin:begin + chunk])
    if cuda:
        torch.cuda.synchronize(query.device)
    return time.perf_counter() - start


def measure(method, evaluate, inputs, label_args, args):
    """Evaluate with one method; returns (cmc, mAP, mINP)."""
    import torch

    from mmreid.evaluation.functional import (compute_distance,
                                              evaluate_features, evaluate_rank,
                                              k_reciprocal_rerank,
                                              reference_evaluate_rank)
    if method == 'mmreid':
        result = evaluate_rank(*inputs, *label_args, max_rank=MAX_RANK)
        cmc, mAP, mINP = result.cmc, result.mAP, result.mINP
    elif method == 'features':
        options = {}
        if args.memory_budget_mb:
            options['memory_budget_mb'] = args.memory_budget_mb
        result = evaluate_features(
            *inputs,
            *label_args,
            distance='cosine',
            max_rank=MAX_RANK,
            **options)
        cmc, mAP, mINP = result.cmc, result.mAP, result.mINP
    elif method == 'reference':
        result = reference_evaluate_rank(
            *inputs, *label_args, max_rank=MAX_RANK)
        cmc, mAP, mINP = result['cmc'], result['mAP'], result['mINP']
    elif method in RERANK_METHODS:
        # Cosine features: re-rank their L2-normalised Euclidean distances.
        if method == 'rerank':
            dist = k_reciprocal_rerank(*inputs, *RERANK_PARAMS, normalize=True)
        else:
            query, gallery = (torch.from_numpy(x) for x in inputs)
            q_g, q_q, g_g = (compute_distance(a, b, normalize=True).numpy()
                             for a, b in ((query, gallery), (query, query),
                                          (gallery, gallery)))
            dist = evaluate(q_g, q_q, g_g, *RERANK_PARAMS)
        result = evaluate_rank(dist, *label_args, max_rank=MAX_RANK)
        cmc, mAP, mINP = result.cmc, result.mAP, result.mINP
    else:
        cmc, all_ap, all_inp = evaluate(*inputs, *label_args)
        # fast-reid returns per-query AP and INP lists.
        mAP, mINP = float(np.mean(all_ap)), float(np.mean(all_inp))
    return cmc, mAP, mINP


def run_method_once(args, method, folder):
    """Run one method in a fresh subprocess; returns its JSON record."""
    command = [
        sys.executable,
        osp.abspath(__file__), '--child', f'{method}:{folder}', '--device',
        args.device
    ]
    if args.threads:
        command += ['--threads', str(args.threads)]
    if args.memory_budget_mb:
        command += ['--memory-budget-mb', str(args.memory_budget_mb)]
    if args.fastreid_dir:
        command += ['--fastreid-dir', args.fastreid_dir]
    env = dict(os.environ)
    if args.threads:
        env['OMP_NUM_THREADS'] = str(args.threads)
    if args.malloc_mmap_threshold:
        env['MALLOC_MMAP_THRESHOLD_'] = str(args.malloc_mmap_threshold)
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f'{method} failed:\n{proc.stderr[-2000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def metric_vector(record):
    """CMC ranks, mAP and mINP of a record, as one array."""
    return np.concatenate([record['cmc'], [record['mAP'], record['mINP']]])


def summarize_runs(runs):
    """One record from the repeated runs of a method: median seconds.

    The metrics are the first run's; ``repeat_max_abs_diff`` is the
    largest |difference| of any later run's from them (None for one run):
    a method whose repeats disagree did not compute one result, and
    :func:`compare_with_bases` does not let it agree.
    """
    record = dict(runs[0])
    record['repeat_max_abs_diff'] = None
    if len(runs) > 1 and 'cmc' in record:
        first = metric_vector(record)
        diffs = [
            np.max(np.abs(metric_vector(r) - first))
            if len(r['cmc']) == len(record['cmc']) else np.nan
            for r in runs[1:]
        ]
        record['repeat_max_abs_diff'] = float(np.max(diffs))
    record['seconds'] = float(np.median([r['seconds'] for r in runs]))
    record['best_seconds'] = min(r['seconds'] for r in runs)
    record['all_seconds'] = [r['seconds'] for r in runs]
    record['peak_over_input'] = max(r['peak_over_input'] for r in runs)
    if record.get('gemm_seconds') is not None:
        record['gemm_seconds'] = float(
            np.median([r['gemm_seconds'] for r in runs]))
    return record


def start_contenders(count):
    """Start ``count`` busy processes; returns them (stop with
    :func:`stop_contenders`)."""
    return [
        subprocess.Popen([sys.executable, '-c', BUSY_LOOP,
                          str(os.getpid())]) for _ in range(count)
    ]


def stop_contenders(processes):
    for proc in processes:
        proc.kill()
    for proc in processes:
        proc.wait()


def main():
    args = parse_args()
    if args.child:
        run_child(args)
        return
    # --methods replaces the default pair; --reference and
    # --fastreid-cython always add their method, --fastreid-dir adds
    # fast-reid's (slow) Python evaluator only to the default pair.
    methods = list(args.methods or ['mmreid', 'features'])
    if args.fastreid_dir and not args.methods:
        methods.append('fastreid-py')
    if args.reference:
        methods.append('reference')
    if args.fastreid_cython:
        methods.append('fastreid-cy')
    methods = list(dict.fromkeys(methods))
    methods = order_methods(methods)

    rows = []
    with tempfile.TemporaryDirectory(dir=args.work_dir) as root:
        for size in args.sizes:
            for regime in args.regime:
                rows += run_size(args, methods, root, size, regime)
    print_table(args, rows)
    if args.json:
        with open_atomic(args.json, 'w') as f:
            json.dump(rows, f, indent=2)
    differ = [row for row in rows if not row['agrees']]
    for row in differ:
        diff, repeats = row['max_abs_diff'], row.get('repeat_max_abs_diff')
        what = []
        if diff is not None and not diff <= args.tolerance:
            what.append(f"max abs diff {diff:.1e} from {row['base']}")
        if repeats is not None and not repeats <= args.tolerance:
            what.append(f'its repeats differ by up to {repeats:.1e}')
        print(
            f"DIFFERS: {row['method']} ({row['size']}, {row['regime']}): "
            f"{' and '.join(what)} > --tolerance {args.tolerance:g}",
            file=sys.stderr)
    if differ:
        sys.exit(1)


def order_methods(methods):
    """The methods in run order: each base before the rows it judges.

    ``mmreid`` runs first; ``rerank`` runs before the first other
    re-ranking method (added when not asked for), so that no re-ranking
    method is compared with itself.
    """
    methods = [m for m in methods if m != 'mmreid']
    peers = [
        i for i, m in enumerate(methods)
        if m in RERANK_METHODS and m != 'rerank'
    ]
    if peers and 'rerank' not in methods[:peers[0]]:
        if 'rerank' in methods:
            methods.remove('rerank')
        methods.insert(peers[0], 'rerank')
    return ['mmreid'] + methods


def compare_with_bases(rows, tolerance):
    """Set each row's ``base``, ``max_abs_diff`` and ``agrees``.

    Args:
        rows (list[dict]): One size and regime's records, bases included,
            each with ``method``, ``cmc`` (ranks 1-50), ``mAP`` and
            ``mINP``.
        tolerance (float): Largest |difference| allowed.

    A base (``mmreid``; ``rerank`` for the re-ranking methods) is not
    compared with itself: its ``max_abs_diff`` is None. A row whose
    repeats gave other metrics (``repeat_max_abs_diff`` beyond
    ``tolerance``, see :func:`summarize_runs`) does not agree, a base
    included.
    """
    by_method = {row['method']: row for row in rows}
    for row in rows:
        base_name = BASES[row['method'] in RERANK_METHODS]
        row['base'] = base_name
        repeats = row.get('repeat_max_abs_diff')
        steady = repeats is None or bool(repeats <= tolerance)
        if row['method'] == base_name:
            row['max_abs_diff'], row['agrees'] = None, steady
            continue
        base = by_method[base_name]
        if len(row['cmc']) != len(base['cmc']):
            raise ValueError(
                f"{row['method']} gave {len(row['cmc'])} CMC ranks, "
                f"{base_name} {len(base['cmc'])}: not the same result to "
                'compare')
        diffs = np.abs(metric_vector(row) - metric_vector(base))
        # np.max keeps a NaN (Python's max may drop it, by its order): a
        # method that gave NaN did not compute the base's result.
        row['max_abs_diff'] = float(np.max(diffs))
        row['agrees'] = bool(row['max_abs_diff'] <= tolerance) and steady


def skipped_methods(args, methods, size, folder):
    """Methods that cannot run here, with the reason."""
    skipped = {}
    if 'fastreid-cy' in methods:
        if not args.fastreid_dir:
            skipped['fastreid-cy'] = 'no --fastreid-dir'
        else:
            error = build_fastreid_cython(args.fastreid_dir, folder)
            if error:
                skipped['fastreid-cy'] = error
    if 'fastreid-py' in methods and not args.fastreid_dir:
        skipped['fastreid-py'] = 'no --fastreid-dir'
    elif args.fastreid_dir and not osp.exists(
            osp.join(args.fastreid_dir, 'fastreid', 'evaluation', 'rank.py')):
        for name in ('fastreid-py', 'fastreid-cy'):
            skipped[name] = ('fastreid/evaluation/rank.py not found '
                             f'in {args.fastreid_dir}')
    rerank_file = osp.join(args.fastreid_dir or '', 'fastreid', 'evaluation',
                           'rerank.py')
    if 'fastreid-rerank' in methods and not osp.exists(rerank_file):
        skipped['fastreid-rerank'] = f'{rerank_file} not found'
    if 'reference' in methods and size == 'msmt':
        skipped['reference'] = 'too slow at the MSMT17 size'
    return skipped


def run_size(args, methods, root, size, regime):
    """Write one size's inputs in one regime and run every method."""
    folder = osp.join(root, f'{size}-{regime}')
    os.makedirs(folder)
    start = time.perf_counter()
    # Not timed: use every core.
    make_inputs(size, folder, args.feat_dim, args.seed, None, REGIMES[regime])
    tag = f'[{size} {regime}]'
    print(
        f'{tag} inputs written in {time.perf_counter() - start:.1f} s',
        flush=True)
    skipped = skipped_methods(args, methods, size, folder)
    for method in methods:
        if method in skipped:
            print(f'{tag} {method} skipped: {skipped[method]}')
    methods = [method for method in methods if method not in skipped]
    runs = {method: [] for method in methods}
    contenders = start_contenders(args.contend)
    try:
        # Methods take turns in every repeat, so that a change of the
        # machine's load hits all of them alike.
        for _ in range(args.repeats):
            for method in methods:
                runs[method].append(run_method_once(args, method, folder))
    finally:
        stop_contenders(contenders)
    rows = []
    for method in methods:
        record = summarize_runs(runs[method])
        record.update(size=size, regime=regime, method=method)
        rows.append(record)
        print(
            f"{tag} {method}: {record['seconds']:.2f} s, "
            f"{record['peak_over_input'] / 2**30:.3f} GB",
            flush=True)
    compare_with_bases(rows, args.tolerance)
    fastreid = [
        row for row in rows if row['method'] == 'fastreid-cy' and row['agrees']
    ]
    for row in rows:
        # Speed-up over fast-reid's Cython evaluator, measured in the
        # same run under the same load; none for a wrong result, and none
        # for a re-ranking method, which does other work than it.
        row['speedup_vs_fastreid_cy'] = None
        if fastreid and row['agrees'] and row['method'] not in RERANK_METHODS:
            row['speedup_vs_fastreid_cy'] = (
                fastreid[0]['seconds'] / row['seconds'])
    return rows


def print_table(args, rows):
    num_threads = args.threads or 'default'
    print(f'\nfeature dim {args.feat_dim}, threads {num_threads}, '
          f'device {args.device} (mmreid and features only; memory is '
          'then the device\'s peak allocation), '
          f'{args.contend} competing busy process(es), '
          f'median of {args.repeats} fresh process(es), '
          f'MALLOC_MMAP_THRESHOLD_={args.malloc_mmap_threshold}\n')
    print('| size (Q x G) | regime | method | seconds, median (best) | '
          'x fast-reid Cython | peak GB over input | '
          'R1 / mAP / mINP (%) | max abs diff vs mmreid (rerank), '
          f'tolerance {args.tolerance:g} |')
    print('|---|---|---|---|---|---|---|---|')
    for row in rows:
        num_query, num_gallery = SIZES[row['size']][:2]
        method = row['method']
        if method in ('mmreid', 'features'):
            where = row.get('device', 'cpu')
            where = '' if where == 'cpu' else f', {where}'
            method += f" ({row['rank_backend']}{where})"
        if row.get('gemm_seconds') is not None:
            share = row['gemm_seconds'] / row['seconds'] * 100
            method += f', GEMM {share:.0f} %'
        speedup = row['speedup_vs_fastreid_cy']
        speedup = f'{speedup:.1f}' if speedup is not None else '-'
        diff = row['max_abs_diff']
        diff = '-' if diff is None else f'{diff:.1e}'
        if not row['agrees']:
            diff += ' **DIFFERS**'
        print(f"| {row['size']} ({num_query:,} x {num_gallery:,}) | "
              f"{row['regime']} | {method} | {row['seconds']:.2f} "
              f"({row['best_seconds']:.2f}) | {speedup} | "
              f"{row['peak_over_input'] / 2**30:.3f} | "
              f"{row['cmc'][0] * 100:.2f} / {row['mAP'] * 100:.2f} / "
              f"{row['mINP'] * 100:.2f} | {diff} |")


if __name__ == '__main__':
    main()
