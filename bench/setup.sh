#!/usr/bin/env bash
# Install what the build benchmark needs. Idempotent: re-running is cheap.
#   - Hugo from Debian's `hugo` package (if `hugo` is not on PATH)
#   - Pelican + Markdown (+ Pygments, pulled in by Pelican) in bench/.venv-pelican
#   - psutil in the current Python environment (used to sample process-tree RSS)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-python3}"

if ! command -v hugo >/dev/null 2>&1; then
    sudo_cmd=""
    if [ "$(id -u)" != "0" ]; then sudo_cmd="sudo"; fi
    # wait for a concurrent apt/dpkg run instead of failing on its lock
    $sudo_cmd apt-get -o DPkg::Lock::Timeout=600 update
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get -o DPkg::Lock::Timeout=600 install -y hugo
fi

venv="$here/.venv-pelican"
if [ ! -x "$venv/bin/pelican" ]; then
    "$py" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet pelican markdown
fi

if ! "$py" -c 'import psutil' >/dev/null 2>&1; then
    "$py" -m pip install --quiet psutil
fi

echo "hugo:    $(hugo version 2>&1 | head -n1)"
echo "pelican: $("$venv/bin/pelican" --version 2>&1 | head -n1)"
echo "psutil:  $("$py" -c 'import psutil; print(psutil.__version__)')"
