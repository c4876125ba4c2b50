#!/usr/bin/env bash
# Regenerates the lock files in containers/ from pyproject.toml. Reproducible: uv is pinned,
# the resolution is cut off at EXCLUDE_NEWER (no release after it is considered), the target
# Python and platform are named, and the user's pip/uv configuration is ignored (--no-config).
#   pip install uv==0.13.8 && containers/lock.sh
# Needs PyPI, and the CPU torch wheel (torch-2.13.0+cpu) in $TORCH_CPU_WHEELS (a directory;
# default /opt/wheels) or in containers/wheels/.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.8
EXCLUDE_NEWER=2026-11-28T00:00:00Z
INDEX=https://pypi.org/simple
TORCH_CPU_WHEELS=${TORCH_CPU_WHEELS:-/opt/wheels}

uv=${UV:-uv}
have=$("$uv" --version 2>/dev/null | awk '{print $2}') || true
if [ "$have" != "$UV_VERSION" ]; then
    echo "error: containers/lock.sh needs uv $UV_VERSION (found: ${have:-none}); fix: pip install uv==$UV_VERSION" >&2
    exit 2
fi

compile() {
    "$uv" pip compile --quiet --no-config --generate-hashes --index-url "$INDEX" \
        --exclude-newer "$EXCLUDE_NEWER" --python-platform x86_64-manylinux_2_28 \
        --custom-compile-command "containers/lock.sh" "$@"
}

# CPU image: Debian bookworm, python3 3.11; torch's CPU wheel from a local directory. This
# resolution equals the environment the test suite runs in.
compile pyproject.toml -c containers/constraints.txt -c containers/constraints-cpu.txt \
    --python-version 3.11 --find-links "$TORCH_CPU_WHEELS" --find-links containers/wheels \
    -o containers/requirements-cpu.lock
# CUDA image: torch from PyPI (its CUDA build, with the nvidia-* wheels). Every other package
# is held to the CPU lock's version, so the two images differ only in the torch build and its
# CUDA libraries. One lock serves both CUDA bases: nvidia/cuda on Ubuntu 24.04 (python3 3.12),
# resolved here, and the default local Debian bookworm (3.11), checked to resolve the same.
cpu_pins=containers/.cpu-pins.txt  # a fixed name: it appears in the lock's annotations
cuda_311=$(mktemp)
trap 'rm -f "$cpu_pins" "$cuda_311"' EXIT
grep -E '^[A-Za-z0-9_.-]+==' containers/requirements-cpu.lock | sed -e 's/ \\$//' | grep -v '^torch==' > "$cpu_pins"
compile pyproject.toml -c containers/constraints.txt -c "$cpu_pins" --python-version 3.12 \
    -o containers/requirements.lock
compile pyproject.toml -c containers/constraints.txt -c "$cpu_pins" --python-version 3.11 -o "$cuda_311"
if ! diff <(grep -v '^ *#' containers/requirements.lock) <(grep -v '^ *#' "$cuda_311") >&2; then
    echo "error: the CUDA lock resolves differently for Python 3.11 (Debian) and 3.12 (nvidia/cuda);" \
        "give the Debian base its own lock" >&2
    exit 1
fi
# vLLM image (`harness container build --vllm`): pyproject.toml + containers/vllm.in, with the
# harness's pins except the ones vLLM decides (torch, transformers, numpy, tokenizers). For the
# local Debian base's Python 3.11 only: vLLM bounds setuptools, fastapi, scipy, ... differently
# per Python, so one lock cannot serve 3.11 and 3.12 (the nvidia/cuda base) alike.
vllm_pins=containers/.vllm-pins.txt
trap 'rm -f "$cpu_pins" "$cuda_311" "$vllm_pins"' EXIT
grep -vE '^(torch|transformers|numpy|tokenizers)==' containers/constraints.txt > "$vllm_pins"
compile pyproject.toml containers/vllm.in -c "$vllm_pins" --python-version 3.11 -o containers/requirements-vllm.lock
compile containers/build-tools.in --python-version 3.11 -o containers/build-tools.lock
echo "wrote containers/requirements.lock, containers/requirements-cpu.lock, containers/requirements-vllm.lock," \
    "containers/build-tools.lock"
