"""Rank a gallery folder for query images and draw the ranked lists.

For each query, the gallery images are sorted by the model's distance and
the top-k are drawn after the query: green frame = same identity, red =
another identity, grey = unknown. Identities are read from Market-style
file names (``0001_c1s1_000151_01.jpg``: pid 1, camera 1); with such names
the gallery images of the query's identity and camera are left out, as in
the Market protocol (``--keep-same-camera`` keeps them); junk images (pid
-1) are always left out.

Example::

    python demo/rank_gallery.py configs/baseline/bot_r18_synthreid.py \\
        work_dirs/bot_r18_synthreid/epoch_8.pth \\
        data/synthreid/d3/query/7520_c1s4_028458_04.jpg \\
        data/synthreid/d3/bounding_box_test --topk 10 --out-dir vis
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

import cv2

from mmreid.apis import init_model, rank_gallery
from mmreid.apis.inference import parse_market_name


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
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument(
        '--keep-same-camera',
        action='store_true',
        help='keep gallery images of the query identity and camera (junk, '
        'pid -1, stays out)')
    parser.add_argument(
        '--query-modality',
        type=int,
        choices=(0, 1),
        help='cross-modality models: 0 visible, 1 infrared')
    parser.add_argument('--gallery-modality', type=int, choices=(0, 1))
    parser.add_argument(
        '--tile-size',
        type=int,
        nargs=2,
        default=(128, 64),
        metavar=('H', 'W'))
    return parser.parse_args(argv)


def read_rgb(path: str):
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise OSError(f'cannot read image {path!r}')
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def label(path: str) -> Optional[str]:
    pid, camid = parse_market_name(path)
    return None if pid is None else f'pid {pid} cam {camid}'


def main(argv: Optional[List[str]] = None) -> List[str]:
    """Run the demo; return the paths of the written pictures."""
    from mmreid.visualization import draw_ranked_list
    args = parse_args(argv)
    queries = []
    for query in args.query:
        queries += sorted(
            osp.join(query, n) for n in os.listdir(query)
            if n.lower().endswith(('.jpg', '.jpeg', '.png', '.bmp'))) \
            if osp.isdir(query) else [query]
    model = init_model(args.config, args.checkpoint, device=args.device)
    results = rank_gallery(
        model,
        queries,
        args.gallery,
        topk=args.topk,
        batch_size=args.batch_size,
        exclude_same_camera=not args.keep_same_camera,
        query_modality=args.query_modality,
        gallery_modality=args.gallery_modality)
    os.makedirs(args.out_dir, exist_ok=True)
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
        stem = osp.splitext(osp.basename(result.query))[0]
        out = osp.join(args.out_dir, f'{stem}_ranked.png')
        cv2.imwrite(out, cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
        hits = '' if result.matches is None else \
            f', {sum(result.matches)} of {len(result.matches)} correct'
        print(f'{result.query}: top-{len(result.gallery)}{hits} -> {out}')
        written.append(out)
    return written


if __name__ == '__main__':
    main()
