"""Convert an ImageNet ResNet (torchvision or mmpretrain) to mmreid keys.

torchvision ``resnet18/34/50/101/152`` state dicts (``conv1``, ``bn1``,
``layer1-4``; the ImageNet classifier ``fc`` is dropped) and mmpretrain/mmcls
``ImageClassifier`` checkpoints (``backbone.*``, the ``ResNetV1c/V1d`` deep
stem and average-pool shortcuts included; ``head.fc`` is dropped) become
``backbone.*`` keys of an mmreid ``ReIDModel``; load the result with
``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='backbone.')``
(and ``deep_stem=True``, for V1d also ``avg_down=True``, in the backbone).
A backbone tensor that no rule maps is refused by name (exit status 1,
nothing written): mmreid would build the backbone without that layer. The
classifier is reported as dropped and recorded in ``meta['dropped']``, not
as unmapped, so ``--strict`` converts an ImageNet checkpoint.

Example::

    python tools/model_converters/resnet2mmreid.py resnet50-11ad3fa6.pth \\
        checkpoints/r50_in1k_mmreid.pth --source torchvision
"""
import argparse
import sys

from mmreid.utils.key_mapping import convert_checkpoint_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('src', help='source checkpoint')
    parser.add_argument('dst', help='output mmreid checkpoint')
    parser.add_argument(
        '--source',
        choices=('torchvision', 'mmpretrain'),
        default=None,
        help='key layout of the source; guessed from the keys if omitted '
        '(mmpretrain keys start with "backbone.")')
    parser.add_argument(
        '--strict',
        action='store_true',
        help='exit with status 1 (and write nothing) if a key is not mapped '
        '(the ImageNet classifier is dropped, not unmapped)')
    args = parser.parse_args()
    source = args.source
    try:
        if source is None:
            source = guess_source(args.src)
        convert_checkpoint_file(args.src, args.dst, source, args.strict)
    except (ValueError, KeyError, FileNotFoundError) as e:
        print(f'error: {e}', file=sys.stderr)
        sys.exit(1)


def guess_source(path: str) -> str:
    """``'mmpretrain'`` if any key starts with ``backbone.``."""
    from mmreid.models.weight_init import extract_state_dict
    from mmreid.utils.checkpoint import load_trusted_checkpoint
    keys = extract_state_dict(
        load_trusted_checkpoint(path, 'cpu'), source=path)
    return 'mmpretrain' if any(k.startswith('backbone.')
                               for k in keys) else 'torchvision'


if __name__ == '__main__':
    main()
