# Sourced by the launchers (dist_*.sh, slurm_*.sh) after they set ROOT:
# sets PYTHON, the interpreter they start. $PYTHON if set; else that of an
# activated virtualenv; else the quick start's environment
# (tools/quickstart.sh installs into $MMREID_VENV, default .venv, without
# activating it in the user's shell), whose python has torch where the
# system's has not; else python on PATH.
VENV_PYTHON="${MMREID_VENV:-$ROOT/.venv}/bin/python"
if [ -z "${PYTHON:-}" ] && [ -z "${VIRTUAL_ENV:-}" ] && [ -x "$VENV_PYTHON" ]; then
    PYTHON=$VENV_PYTHON
    echo "$(basename "$0"): python is $PYTHON (the quick start's" \
        "environment; PYTHON=... chooses another)" >&2
fi
PYTHON=${PYTHON:-python}
