"""Print the fully merged config.

    python tools/misc/print_config.py CONFIG [--cfg-options k=v ...]
"""
import argparse

from mmreid.utils.config import load_config
from mmreid.utils.config.options import ReIDDictAction


def main():
    parser = argparse.ArgumentParser(description='Print the merged config')
    parser.add_argument('config', help='config file path')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=ReIDDictAction,
        help='override config keys before printing')
    args = parser.parse_args()
    cfg = load_config(args.config, args.cfg_options)
    print(cfg.pretty_text)


if __name__ == '__main__':
    main()
