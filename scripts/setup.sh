#!/usr/bin/env bash
# Install what carbench needs, in two layers:
#   bash scripts/setup.sh        the main job: Debian's ffmpeg + libx265 (HEVC-intra) and a
#                                virtual environment in .venv with carbench (editable) and its
#                                Python dependencies
#   bash scripts/setup.sh --dev  also what the tests, the docs and the optional outputs need:
#                                TeX Live (LaTeX tables are compiled), Chromium (HTML reports in a
#                                real browser), poppler (PDF checks), PostgreSQL (study answers),
#                                the codecs' reference command-line tools (cwebp, opj_compress,
#                                avifenc, cjxl, heif-enc) and the [dev] Python extras
set -euo pipefail
cd "$(dirname "$0")/.."
DEV=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    *) echo "setup: unknown argument $arg (use --dev or nothing)" >&2; exit 2 ;;
  esac
done

APT_PACKAGES=(ffmpeg)
missing=()
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
if ((DEV)); then
  APT_PACKAGES+=(texlive-latex-base texlive-latex-recommended texlive-latex-extra chromium
                 poppler-utils fonts-dejavu-core webp libopenjp2-tools postgresql libavif-bin
                 libjxl-tools libheif-examples)
  command -v cwebp >/dev/null 2>&1 || missing+=(webp)
  command -v opj_compress >/dev/null 2>&1 || missing+=(libopenjp2-tools)
  command -v avifenc >/dev/null 2>&1 || missing+=(libavif-bin)
  command -v cjxl >/dev/null 2>&1 || missing+=(libjxl-tools)
  command -v heif-enc >/dev/null 2>&1 || missing+=(libheif-examples)
  command -v pdflatex >/dev/null 2>&1 && kpsewhich multirow.sty >/dev/null 2>&1 || missing+=(texlive)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v pdftotext >/dev/null 2>&1 || missing+=(poppler-utils)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
fi
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  echo "setup: installing Debian packages (${missing[*]} missing)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
    "${APT_PACKAGES[@]}" >/dev/null
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
# pip's and setuptools' own chatter goes to a log, printed only when a step fails.
LOG=.venv/setup-pip.log
: > "$LOG"
pip_install() {
  if ! .venv/bin/python -m pip install -q "$@" >>"$LOG" 2>&1; then
    cat "$LOG" >&2
    echo "setup: pip install $* failed (log above, also in $LOG)" >&2
    exit 1
  fi
}
echo "setup: installing Python packages into .venv (pip log: $LOG)"
pip_install --upgrade pip
# pyiqa needs torchvision; on x86_64 the matching pair is torch 2.14.1 + torchvision 0.29.1.
pip_install 'torch==2.14.1' 'torchvision==0.29.1'
if ((DEV)); then
  pip_install -e '.[dev]'
  # the learned codecs' extra (tests/test_learned_codec.py): compressai 1.2.8 pins numpy<2 but
  # runs with numpy 2, so it goes in without its own requirements
  pip_install 'pytorch-msssim==1.0.0' 'einops==0.8.2' 'torch_geometric==2.8.1'
  pip_install --no-deps 'compressai==1.2.8'
else
  pip_install -e .
fi
# openai-clip (CLIP-IQA) imports pkg_resources, removed in setuptools 81.
pip_install 'setuptools<81'
echo "setup: done ($(.venv/bin/bench --version))"
