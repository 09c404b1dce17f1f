#!/usr/bin/env bash
# Fetches PyPI's scipy-openblas32 wheel (the newest OpenBLAS as a shared library, symbols
# prefixed scipy_) into .build/scipy-openblas and prints the line that selects it:
#   export CONJURE_SCIPY_OPENBLAS=.../libscipy_openblas.so   then  --backend scipy-openblas
# Optional: neither the build nor the tests need it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-python3}
dest=.build/scipy-openblas
mkdir -p "$dest"
"$PY" -m pip download --no-deps --only-binary=:all: -d "$dest" "scipy-openblas32${SCIPY_OPENBLAS_VERSION:+==$SCIPY_OPENBLAS_VERSION}" >&2
wheel=$(ls -t "$dest"/scipy_openblas32-*.whl | head -1)
"$PY" -m zipfile -e "$wheel" "$dest" >&2
echo "export CONJURE_SCIPY_OPENBLAS=$PWD/$dest/scipy_openblas32/lib/libscipy_openblas.so"
