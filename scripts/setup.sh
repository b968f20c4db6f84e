#!/usr/bin/env bash
# Sets up a development environment on a fresh Debian machine: system libraries
# for Qt/OpenGL under Xvfb, a virtualenv, the CPU build of torch, edxtomo with
# its test and Qt extras. Idempotent: re-running only installs what is missing.
set -euo pipefail

VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"

need_apt=()
command -v Xvfb >/dev/null 2>&1 || need_apt+=(xvfb xauth)
for lib in libGL.so.1 libEGL.so.1 libxkbcommon-x11.so.0 libxcb-cursor.so.0 libxcb-icccm.so.4 \
           libxcb-keysyms.so.1 libxcb-render-util.so.0 libxcb-xinerama.so.0 libxcb-image.so.0 \
           libxcb-shape.so.0 libdbus-1.so.3 libfontconfig.so.1; do
    ldconfig -p | grep -q "$lib" || { need_apt+=(libgl1 libegl1 libgl1-mesa-dri libxkbcommon-x11-0 \
        libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-render-util0 libxcb-xinerama0 \
        libxcb-image0 libxcb-shape0 libxcb-randr0 libxcb-xfixes0 libdbus-1-3 libfontconfig1 \
        libglib2.0-0); break; }
done
if ((${#need_apt[@]})); then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing system packages: ${need_apt[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
    else
        echo "setup: missing system packages (${need_apt[*]}); install them with sudo apt-get install" >&2
    fi
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "setup: creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip setuptools wheel
fi

# An unpinned torch would pull a multi-GB CUDA build; the CPU build is pinned
# unless a torch is already there (e.g. a CUDA build on a GPU workstation).
if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
    echo "setup: installing torch==$TORCH_VERSION"
    "$VENV/bin/python" -m pip install -q "torch==$TORCH_VERSION"
fi

echo "setup: installing edxtomo[all] (editable)"
"$VENV/bin/python" -m pip install -q -e ".[all]"
touch "$VENV/.installed"
echo "setup: done ($("$VENV/bin/python" -c 'import torch, napari, hyperspy; print("torch", torch.__version__, "napari", napari.__version__, "hyperspy", hyperspy.__version__)'))"
