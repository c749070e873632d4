"""Rank a gallery folder for query images and draw the ranked lists.

For each query, the gallery images are sorted by the model's distance and
the top-k are drawn after the query: green frame = same identity, red =
another identity, grey = unknown. Identities are read from Market-style
file names (``0001_c1s1_000151_01.jpg``: pid 1, camera ``c1``, drawn as
``camid 0``, the 0-based camera the datasets and the other pictures
show); with such names the gallery images of the query's identity and
camera are left out, as in the Market protocol, where the config's test
metric does so (its ``junk_rule``: ``'market'``, the default; ``'none'``
keeps them, another rule is refused; ``--keep-same-camera`` keeps them
whatever the rule); junk images (pid -1) are always left out.

A query folder gives its images as the datasets list them
(:func:`mmreid.apis.list_images`: image extensions, macOS ``._`` files
skipped). Each picture is ``{query file stem}_ranked.png`` in
``--out-dir``, written atomically; queries whose pictures would have the
same name (one file name in two folders) are refused before anything is
computed.

Encoding the gallery is the long step and shows no progress: a line
before it says how many images are encoded.

A refused input ends the demo with one line ``error: ...`` (exit status
1), naming the demo's options (``--batch-size``), not the API's
arguments.

Example::

    python demo/rank_gallery.py configs/baseline/bot_r18_synthreid.py \\
        work_dirs/bot_r18_synthreid/epoch_8.pth \\
        data/synthreid/d3/query/7520_c1s4_028458_04.jpg \\
        data/synthreid/d3/bounding_box_test --topk 10 --out-dir vis
"""
import argparse
import os.path as osp
from collections import defaultdict
from typing import List, Optional

from mmreid.apis import init_model, list_images, rank_gallery
from mmreid.apis.inference import market_camid, parse_market_name
from mmreid.apis.inference_inputs import ArgumentError
from mmreid.datasets.transforms.loading import read_image_rgb
from mmreid.evaluation.functional.junk_rules import JUNK_PID
from mmreid.utils.atomic import write_image
from mmreid.utils.config.options import ReIDDictAction

#: The option of this demo that sets each argument of ``rank_gallery``, to
#: name it in the API's refusals (:meth:`ArgumentError.spelled`).
OPTIONS = dict(
    topk='--topk',
    batch_size='--batch-size',
    query_modality='--query-modality',
    gallery_modality='--gallery-modality')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint path or URL')
    parser.add_argument(
        'query', nargs='+', help='query image(s) or a folder of them')
    parser.add_argument('gallery', help='gallery folder')
    parser.add_argument('--topk', type=int, default=10)
    parser.add_argument('--out-dir', default='ranked_lists')
    parser.add_argument('--device', default='cpu')
    parser.add_argument(
        '--batch-size',
        type=int,
        default=None,
        help='images per forward (default: 32; for a model whose features '
        "depend on the batch, MBN eval_stats='batch', the queries in one "
        'forward and the gallery in another)')
    parser.add_argument(
        '--keep-same-camera',
        action='store_true',
        help='keep gallery images of the query identity and camera (junk, '
        'pid -1, stays out); without it they are left out as the '
        "config's test metric does (junk_rule='market' leaves them out, "
        "'none' keeps them)")
    parser.add_argument(
        '--query-modality',
        type=int,
        choices=(0, 1),
        help='cross-modality models: 0 visible, 1 infrared')
    parser.add_argument('--gallery-modality', type=int, choices=(0, 1))
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=ReIDDictAction,
        help='override config settings, as tools/test.py does, e.g. '
        'model.distance=cosine')
    parser.add_argument(
        '--tile-size',
        type=int,
        nargs=2,
        default=(128, 64),
        metavar=('H', 'W'))
    return parser.parse_args(argv)


def read_rgb(path: str):
    """The image the model was fed (``ReIDLoadImageFromFile``'s decode),
    RGB, for the picture."""
    return read_image_rgb(path)


def label(path: str) -> Optional[str]:
    """``pid P`` and ``camid C`` of a Market-style name on two lines, the
    camid 0-based (``c1`` is camid 0) as the datasets, the ranked-list hook
    and the report show it; None for other names.

    One line each, as the report draws them: ``pid 7499 camid 5`` on one
    line does not fit a 64-pixel tile, and the camid was cut off.
    """
    pid, camera = parse_market_name(path)
    if pid is None:
        return None
    camid = market_camid(camera)
    return f'pid {pid}' if camid is None else f'pid {pid}\ncamid {camid}'


def list_queries(queries: List[str]) -> List[str]:
    """The query images: files as given, folders' images as
    :func:`mmreid.apis.list_images` lists them.

    Raises:
        ValueError: A folder without images.
    """
    paths = []
    for query in queries:
        if osp.isdir(query):
            names = list_images(query)
            if not names:
                raise ValueError(f'query folder {query!r} has no images')
            paths += [osp.join(query, name) for name in names]
        else:
            paths.append(query)
    return paths


def output_paths(queries: List[str], out_dir: str) -> List[str]:
    """``{stem}_ranked.png`` in ``out_dir`` for each query.

    Raises:
        ValueError: Two queries would write the same picture (one file
            name in two folders, or a query given twice), naming them.
    """
    outs = [
        osp.join(out_dir, f'{osp.splitext(osp.basename(q))[0]}_ranked.png')
        for q in queries
    ]
    by_out = defaultdict(list)
    for query, out in zip(queries, outs):
        by_out[out].append(query)
    clashes = {out: qs for out, qs in by_out.items() if len(qs) > 1}
    if clashes:
        out, qs = next(iter(clashes.items()))
        raise ValueError(
            f'{len(clashes)} picture name(s) would be written for more than '
            f'one query, e.g. {out!r} for {qs}: one would overwrite the '
            'other. Rank queries with the same file name in separate runs '
            '(another --out-dir)')
    return outs


def main(argv: Optional[List[str]] = None) -> List[str]:
    """Run the demo; return the paths of the written pictures.

    Raises:
        SystemExit: ``error: ...`` (exit status 1) for a refused input,
            an argument of ``rank_gallery`` named as this demo's option.
    """
    args = parse_args(argv)
    try:
        return rank_and_draw(args)
    except ArgumentError as error:
        raise SystemExit(f'error: {error.spelled(OPTIONS)}')
    except (ValueError, OSError) as error:
        raise SystemExit(f'error: {error}')
    except RuntimeError as error:
        # The loader's refusals of a checkpoint (a partial load); anything
        # else is a bug, shown with its traceback.
        if 'checkpoint' not in str(error):
            raise
        raise SystemExit(f'error: {error}')


def announce(num_queries: int, gallery: str, device: str) -> None:
    """Say how many images are about to be encoded, before the long
    silent step: the API shows no progress, and a 10,570-image gallery
    takes minutes on a CPU. Junk (pid -1), which is never ranked, is not
    counted. Nothing is said for a gallery that is not a folder (the API
    refuses it)."""
    if not osp.isdir(gallery):
        return
    names = list_images(gallery)
    junk = sum(parse_market_name(name)[0] == JUNK_PID for name in names)
    skipped = f' ({junk:,} junk, pid {JUNK_PID}, left out)' if junk else ''
    # Flushed: with the output in a log file the line would otherwise
    # appear only when the demo ends.
    print(
        f'encoding {num_queries:,} query and {len(names) - junk:,} gallery '
        f'images on {device}{skipped}; no progress is shown until the '
        'ranked lists are written',
        flush=True)


def rank_and_draw(args: argparse.Namespace) -> List[str]:
    """Rank the gallery for the queries of ``args`` and write the
    pictures; return their paths."""
    from mmreid.visualization import draw_ranked_list
    queries = list_queries(args.query)
    outs = dict(zip(queries, output_paths(queries, args.out_dir)))
    model = init_model(
        args.config,
        args.checkpoint,
        device=args.device,
        cfg_options=args.cfg_options,
        command='demo/rank_gallery.py')
    announce(len(queries), args.gallery, args.device)
    results = rank_gallery(
        model,
        queries,
        args.gallery,
        topk=args.topk,
        batch_size=args.batch_size,
        # Otherwise as the config's metric (its junk_rule) leaves them out.
        exclude_same_camera=False if args.keep_same_camera else None,
        query_modality=args.query_modality,
        gallery_modality=args.gallery_modality)
    written = []
    for result in results:
        gallery_labels = [label(p) or osp.basename(p) for p in result.gallery]
        canvas = draw_ranked_list(
            read_rgb(result.query), [read_rgb(p) for p in result.gallery],
            matches=result.matches,
            distances=result.distances.tolist(),
            tile_size=tuple(args.tile_size),
            query_label=label(result.query) or 'query',
            gallery_labels=gallery_labels)
        out = outs[result.query]
        write_image(out, canvas)
        hits = '' if result.matches is None else \
            f', {sum(result.matches)} of {len(result.matches)} correct'
        print(f'{result.query}: top-{len(result.gallery)}{hits} -> {out}')
        written.append(out)
    return written


if __name__ == '__main__':
    main()
