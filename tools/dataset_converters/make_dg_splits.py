"""Generate the fixed splits of PRID2011, VIPeR and QMUL-iLIDS.

    python tools/dataset_converters/make_dg_splits.py [--out-dir DIR]
        [--check]

Writes ``prid2011.json``, ``viper.json`` and ``ilids.json`` (by default
into ``mmreid/datasets/splits/``, where mmreid ships them). Split ``i`` is
drawn with ``random.Random(i)`` (seed = split index) from facts about the
releases only, so no data is needed and every machine gets the same files:

* PRID2011: ``test_ids = sorted(rng.sample(range(1, 201), 100))``; query =
  ``cam_a/person_<id>.png`` of the test ids, gallery = ``cam_b`` images of
  the test ids and of ids 201-749; ``train_ids`` = the other ids of 1-200.
* VIPeR: ``test_pairs = sorted(rng.sample(range(632), 316))``, 0-based
  positions of the (cam_a, cam_b) pairs in sorted file-name order;
  ``train_pairs`` = the others.
* QMUL-iLIDS: ``test_ids = sorted(rng.sample(range(119), 60))``, 0-based
  positions in sorted pid order, ``train_ids`` = the others; then, per
  test id in that order, ``query_draw = rng.randrange(2**31)`` and
  ``gallery_draw = rng.randrange(2**31)`` (see
  :class:`mmreid.datasets.QMULiLIDS` for how they pick the images).

Each file stores ``sha256``, the checksum of its ``splits``
(:func:`mmreid.datasets.small_dg.splits_checksum`), which the loaders check.
``--check`` compares freshly generated splits with the files in
``--out-dir`` instead of writing them (exit status 1 on a difference).
GRID needs nothing: it uses its official partitions.
"""
import argparse
import json
import os
import os.path as osp
import random
import sys
from typing import Callable, Dict, List

from mmreid.datasets.small_dg import NUM_SPLITS, SPLIT_DIR, splits_checksum
from mmreid.utils.atomic import open_atomic

PRID_PAIRED_IDS = 200
PRID_CAM_B_IDS = 749
PRID_TEST_IDS = 100
VIPER_PAIRS = 632
ILIDS_IDS = 119
ILIDS_TEST_IDS = 60
DRAW_RANGE = 2**31


def prid2011_split(seed: int) -> dict:
    """Split ``seed`` of PRID2011 single-shot."""
    rng = random.Random(seed)
    test_ids = sorted(rng.sample(range(1, PRID_PAIRED_IDS + 1), PRID_TEST_IDS))
    test = set(test_ids)
    gallery_ids = test_ids + list(
        range(PRID_PAIRED_IDS + 1, PRID_CAM_B_IDS + 1))
    return dict(
        seed=seed,
        test_ids=test_ids,
        train_ids=[i for i in range(1, PRID_PAIRED_IDS + 1) if i not in test],
        query=[f'cam_a/person_{i:04d}.png' for i in test_ids],
        gallery=[f'cam_b/person_{i:04d}.png' for i in gallery_ids])


def viper_split(seed: int) -> dict:
    """Split ``seed`` of VIPeR (pairs by sorted position)."""
    rng = random.Random(seed)
    test = sorted(rng.sample(range(VIPER_PAIRS), VIPER_PAIRS // 2))
    chosen = set(test)
    return dict(
        seed=seed,
        test_pairs=test,
        train_pairs=[i for i in range(VIPER_PAIRS) if i not in chosen])


def ilids_split(seed: int) -> dict:
    """Split ``seed`` of QMUL-iLIDS, image draws included."""
    rng = random.Random(seed)
    test = sorted(rng.sample(range(ILIDS_IDS), ILIDS_TEST_IDS))
    chosen = set(test)
    query_draws, gallery_draws = [], []
    for _ in test:
        query_draws.append(rng.randrange(DRAW_RANGE))
        gallery_draws.append(rng.randrange(DRAW_RANGE))
    return dict(
        seed=seed,
        test_ids=test,
        train_ids=[i for i in range(ILIDS_IDS) if i not in chosen],
        query_draws=query_draws,
        gallery_draws=gallery_draws)


GENERATORS: Dict[str, Callable[[int], dict]] = dict(
    prid2011=prid2011_split, viper=viper_split, ilids=ilids_split)


def make_split_file(dataset: str) -> dict:
    """The content of ``<dataset>.json``: ten splits and their checksum."""
    splits: List[dict] = [
        GENERATORS[dataset](seed) for seed in range(NUM_SPLITS)
    ]
    return dict(
        dataset=dataset,
        generator='tools/dataset_converters/make_dg_splits.py',
        seed_rule='split i uses random.Random(i)',
        num_splits=NUM_SPLITS,
        splits=splits,
        sha256=splits_checksum(splits))


def dump(content: dict) -> str:
    """The file text: JSON with one split per line (sorted keys)."""
    header = {k: v for k, v in content.items() if k != 'splits'}
    lines = [json.dumps(header, sort_keys=True)[:-1] + ', "splits": [']
    splits = [json.dumps(s, sort_keys=True) for s in content['splits']]
    lines.append(',\n'.join(splits))
    lines.append(']}')
    return '\n'.join(lines) + '\n'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out-dir', default=SPLIT_DIR)
    parser.add_argument(
        '--check',
        action='store_true',
        help='compare with the files in --out-dir instead of writing')
    args = parser.parse_args(argv)
    status = 0
    for dataset in GENERATORS:
        path = osp.join(args.out_dir, f'{dataset}.json')
        text = dump(make_split_file(dataset))
        if args.check:
            same = osp.isfile(path) and open(path).read() == text
            print(f'{path}: {"ok" if same else "DIFFERS"}')
            status |= not same
        else:
            os.makedirs(args.out_dir, exist_ok=True)
            # The datasets read these files: never half of one.
            with open_atomic(path, 'w', encoding='utf-8') as f:
                f.write(text)
            print(f'wrote {path}')
    return int(status)


if __name__ == '__main__':
    sys.exit(main())
