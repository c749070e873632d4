"""The tools' output files appear complete or not at all."""
import ast
import glob
import os.path as osp

from ..fixtures.processes import REPO


def plain_writes_of_arguments(path):
    """``open(args.X, 'w'...)`` calls in the file at ``path``."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), path)
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == 'open'):
            continue
        target = node.args[0] if node.args else None
        mode = node.args[1] if len(node.args) > 1 else next(
            (k.value for k in node.keywords if k.arg == 'mode'), None)
        if isinstance(target, ast.Attribute) and isinstance(
                target.value, ast.Name) and target.value.id == 'args' and \
                isinstance(mode, ast.Constant) and \
                set(str(mode.value)) & set('wax'):
            found.append(f'{osp.relpath(path, REPO)}:{node.lineno} '
                         f'open(args.{target.attr}, {mode.value!r})')
    return found


def test_no_tool_writes_an_output_argument_in_place():
    """An ``--out``-like file opened with ``open(..., 'w')`` is truncated
    first: an interrupted or failing write leaves a half-written file in
    place of the previous one. The tools write through ``open_atomic``.
    """
    found = []
    for path in sorted(
            glob.glob(osp.join(REPO, 'tools', '**', '*.py'), recursive=True)):
        found += plain_writes_of_arguments(path)
    assert found == [], 'write these through mmreid.utils.atomic.' \
        'open_atomic:\n' + '\n'.join(found)
