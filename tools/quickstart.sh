#!/usr/bin/env bash
# The README's quick start.
#
#   bash tools/quickstart.sh demo   # install what is missing, then train and
#                                   # evaluate the SynthReID demo config
#   bash tools/quickstart.sh test [PYTEST ARGS]
#                                   # install what is missing, then run pytest
#                                   # (over tests/, or over the given paths)
#   bash tools/quickstart.sh install
#                                   # install what is missing, nothing else
#
# The other commands of the README (tools/train.py, mim, ...) need the same
# environment: `source .venv/bin/activate` first (tools/dist_train.sh and
# dist_test.sh run its python by themselves when PYTHON is not set).
#
# Everything goes into a virtual environment (default: .venv in the
# repository; MMREID_VENV=/path chooses another one). The tested versions in
# requirements/constraints.txt are installed once; later runs find the
# install stamp and skip straight to the job.
set -euo pipefail

# CDPATH= : a cd through CDPATH prints the folder, a second line here.
ROOT="$(CDPATH= cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MMREID_VENV:-$ROOT/.venv}"
STAMP="$VENV/.mmreid-install-stamp"

usage() {
    echo "usage: bash tools/quickstart.sh demo|test|install [extra arguments]" >&2
    exit 2
}

find_python() {
    for candidate in "${PYTHON:-}" python3.11 python3 python; do
        [ -n "$candidate" ] || continue
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 8))' \
                2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "quickstart: no Python >= 3.8 found (set PYTHON=/path/to/python)" >&2
    return 1
}

install_stamp() {
    # Changes whenever a requirement file or setup.py changes.
    cat "$ROOT"/requirements/*.txt "$ROOT/setup.py" | sha256sum | cut -c1-16
}

mmcv_distribution() {
    # "mmcv" when a full mmcv (or mmcv-full) is installed, else "mmcv-lite".
    "$VENV/bin/python" - <<'PY'
from importlib import metadata
full = False
for name in ('mmcv', 'mmcv-full'):
    try:
        full = full or metadata.distribution(name).metadata['Name'].lower() == name
    except metadata.PackageNotFoundError:
        pass
print('mmcv' if full else 'mmcv-lite')
PY
}

ensure_installed() {
    local want
    want="$(install_stamp)"
    if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] &&
        [ "$(cat "$STAMP")" = "$want" ] &&
        "$VENV/bin/python" -c 'import mmreid' >/dev/null 2>&1; then
        return 0
    fi
    echo "quickstart: installing mmreid and its dependencies into $VENV"
    local python
    python="$(find_python)"
    if [ ! -x "$VENV/bin/python" ]; then
        "$python" -m venv "$VENV"
    fi
    local pip=("$VENV/bin/python" -m pip install --quiet --no-compile
        --disable-pip-version-check)
    # setuptools is pinned: mim (tests.txt) needs pkg_resources, which
    # setuptools 82 removed.
    "${pip[@]}" -c "$ROOT/requirements/constraints.txt" --upgrade \
        setuptools wheel
    # mmcv-lite provides `import mmcv` without compiled ops (mmreid needs
    # none); setup.py keeps an existing full mmcv instead. The choice goes by
    # the installed distribution, not by `import mmcv`: mmcv-lite provides
    # that module too, and asking pip for the full mmcv then means a build.
    "${pip[@]}" -c "$ROOT/requirements/constraints.txt" \
        -r "$ROOT/requirements/runtime.txt" \
        -r "$ROOT/requirements/tests.txt" \
        mmengine mmpretrain "$(mmcv_distribution)"
    "${pip[@]}" --no-deps --no-build-isolation -e "$ROOT"
    echo "$want" > "$STAMP"
    echo "quickstart: installed; for the other commands of the README," \
        "activate the environment first: source $VENV/bin/activate"
}

[ $# -ge 1 ] || usage
job=$1
shift
# Jobs (and the launchers they start) run with the environment's python.
export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:$PATH"
case "$job" in
    demo)
        ensure_installed
        cd "$ROOT"
        echo "quickstart: python is $VENV/bin/python; for the README's" \
            "other commands: source $VENV/bin/activate" >&2
        exec "$VENV/bin/python" tools/train.py \
            configs/snr/snr_r18_synthreid-v2.py \
            --work-dir work_dirs/quickstart "$@"
        ;;
    test)
        ensure_installed
        cd "$ROOT"
        # pytest's testpaths (setup.cfg) is tests/ when no path is given.
        # The tests run in one worker per CPU (pytest-xdist; most of the
        # suite's time is tool processes starting up, which overlap well);
        # later arguments win, so `test -n 0` runs them in this process.
        exec "$VENV/bin/python" -m pytest -q -n auto --dist worksteal "$@"
        ;;
    install)
        [ $# -eq 0 ] || usage
        ensure_installed
        ;;
    *)
        usage
        ;;
esac
