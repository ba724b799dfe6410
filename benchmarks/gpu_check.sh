#!/usr/bin/env bash
# The check to run the day a GPU is lent: the whole scoring path on random weights in the
# SmolLM2 shapes, on a machine with no package index and no network (benchmarks/gpu_check.py
# says what each step measures). Within 6 minutes on one H100; nothing downloaded.
#
#   make gpu-bundle                                               # here, once (git-ignored)
#   bash benchmarks/gpu_check.sh --bundle gpu_bundle --out DIR    # there (carry gpu_bundle)
#   bash benchmarks/gpu_check.sh --bundle gpu_bundle --out DIR --cpu-smoke   # CPU, toy sizes
#
# Installs the bundle's wheels into a temporary folder (--no-index; the interpreter's own
# packages untouched), records the interpreter's real package list in DIR/pip_list.txt, and
# writes DIR/gpu_check.json and DIR/gpu_check.log. PYTHON selects the interpreter (default
# python3). Exit status: 0 when every step is ok, 1 when one failed, 2 on a usage error.
set -euo pipefail
shopt -s nullglob
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
bundle="" out=""
arguments=("$@")
while (($#)); do
    case "$1" in
        --bundle) bundle=${2:-}; shift ;;
        --out) out=${2:-}; shift ;;
    esac
    shift
done
if [[ -z "$bundle" || -z "$out" ]]; then
    echo "usage: gpu_check.sh --bundle DIR --out DIR [--cpu-smoke] [--steps a,b]" >&2
    exit 2
fi
if [[ ! -f "$bundle/manifest.json" ]]; then
    echo "gpu_check.sh: $bundle holds no manifest.json; run make gpu-bundle first" >&2
    exit 2
fi
mkdir -p "$out"
"$PYTHON" -m pip list --format=freeze >"$out/pip_list.txt" 2>/dev/null || true
site=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check_site.XXXXXX")
trap 'rm -rf "$site"' EXIT
# the bundle's wheels of the packages this interpreter lacks (all of them on the GPU image)
mapfile -t wheels < <("$PYTHON" - "$bundle"/wheels/*.whl <<'PY'
import importlib.metadata, re, sys
for wheel in sys.argv[1:]:
    name = re.sub(r"[-_.]+", "-", wheel.rsplit("/", 1)[-1].split("-")[0]).lower()
    try:
        importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        print(wheel)
PY
)
if ((${#wheels[@]})); then
    echo "gpu_check.sh: installing ${#wheels[@]} wheels from $bundle (no index) into $site"
    PIP_NO_INDEX=1 "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile \
        --disable-pip-version-check --target "$site" "${wheels[@]}"
fi
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
"$PYTHON" benchmarks/gpu_check.py "${arguments[@]}" 2>&1 | tee "$out/gpu_check.log"
