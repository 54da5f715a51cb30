#!/usr/bin/env bash
# Create the peer toolkits' virtual environments under bench/peers/envs/.
#
#   envs/joeynmt  JoeyNMT 2.3.0  (its deps resolved by pip, torch held by a constraints file)
#   envs/opennmt  OpenNMT-py 3.5.1 (installed --no-deps: it pins torch<2.3, we keep 2.13.0)
#   envs/fairseq  fairseq-fixed 0.12.3.1 (fairseq 0.12.2 made to import on Python 3.11) and subword-nmt;
#                 for bench/multi30k.py only, so not part of the default set
#
# Idempotent: an env whose check command already succeeds is left alone.
# torch is always installed first and pinned to the local CPU wheel (torch==2.13.0): a bare
# `torch` or an open range would pull gigabytes of CUDA wheels.
#
# Usage: bash bench/peers/setup.sh [joeynmt|opennmt|fairseq ...]   (default: joeynmt opennmt)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ENVS="$HERE/envs"
PYTHON="${PYTHON:-python3.11}"
TORCH_PIN="torch==2.13.0"
JOEYNMT_PIN="joeynmt==2.3.0"
OPENNMT_PIN="OpenNMT-py==3.5.1"
# PyPI fairseq 0.12.2 installs on Python 3.11 but does not import: its dataclass configs use
# instances as defaults, which Python 3.11 refuses (ValueError: mutable default). fairseq-fixed
# packages fairseq's later main branch with those defaults fixed, on hydra-core 1.3.2 / omegaconf 2.3.0.
FAIRSEQ_PIN="fairseq-fixed==0.12.3.1"
SUBWORD_NMT_PIN="subword-nmt==0.3.8"
# OpenNMT-py 3.5.1's own requirements minus torch (which it caps at <2.3), plus what its
# import path needs at run time (found by running onmt_train -h / onmt_translate -h).
OPENNMT_DEPS=(configargparse "ctranslate2>=4,<5" "pyonmttok>=1.37,<2" flask waitress spacy
  fasttext-wheel rapidfuzz pyahocorasick six sentencepiece sacrebleu pyyaml "tensorboard>=2.3"
  numpy)

log() { echo "[setup] $*"; }
die() { echo "[setup] ERROR: $*" >&2; exit 1; }

mkdir -p "$ENVS"
CONSTRAINTS="$ENVS/constraints.txt"
echo "$TORCH_PIN" >"$CONSTRAINTS"

# check_torch ENV: the env's torch is exactly the pinned version.
check_torch() {
  local want="${TORCH_PIN#torch==}"
  local got
  got="$("$1/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')" \
    || die "torch does not import in $1"
  [[ "$got" == "$want" ]] || die "$1 has torch $got, expected $want (a dependency replaced it)"
  log "$(basename "$1"): torch $got ok"
}

# make_venv NAME: create envs/NAME (if missing) and install the pinned torch into it.
make_venv() {
  local env="$ENVS/$1"
  if [[ ! -x "$env/bin/python" ]]; then
    log "$1: creating venv with $PYTHON"
    "$PYTHON" -m venv "$env"
  fi
  log "$1: pip install $TORCH_PIN"
  "$env/bin/pip" install -q "$TORCH_PIN"
}

joeynmt_ok() {
  [[ -x "$ENVS/joeynmt/bin/python" ]] &&
    "$ENVS/joeynmt/bin/python" -c 'import joeynmt.training, joeynmt.prediction, importlib_metadata, sacrebleu, sentencepiece' 2>/dev/null &&
    "$ENVS/joeynmt/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("joeynmt") != "2.3.0")' 2>/dev/null
}

opennmt_ok() {
  [[ -x "$ENVS/opennmt/bin/onmt_train" ]] &&
    "$ENVS/opennmt/bin/onmt_train" -h >/dev/null 2>&1 &&
    "$ENVS/opennmt/bin/onmt_translate" -h >/dev/null 2>&1 &&
    "$ENVS/opennmt/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("OpenNMT-py") != "3.5.1")' 2>/dev/null
}

fairseq_ok() {
  [[ -x "$ENVS/fairseq/bin/fairseq-train" && -x "$ENVS/fairseq/bin/subword-nmt" ]] &&
    "$ENVS/fairseq/bin/fairseq-train" --help >/dev/null 2>&1 &&
    "$ENVS/fairseq/bin/python" -c 'import importlib.metadata as m, sys; sys.exit(m.version("fairseq-fixed") != "0.12.3.1")' 2>/dev/null
}

setup_joeynmt() {
  if joeynmt_ok; then
    log "joeynmt: already installed, skipping"
  else
    make_venv joeynmt
    log "joeynmt: pip install $JOEYNMT_PIN importlib_metadata psutil (torch held by -c $CONSTRAINTS)"
    "$ENVS/joeynmt/bin/pip" install -q -c "$CONSTRAINTS" "$JOEYNMT_PIN" importlib_metadata psutil
    joeynmt_ok || die "joeynmt installed but does not import (run: $ENVS/joeynmt/bin/python -c 'import joeynmt.training')"
  fi
  check_torch "$ENVS/joeynmt"
}

setup_opennmt() {
  if opennmt_ok; then
    log "opennmt: already installed, skipping"
  else
    make_venv opennmt
    log "opennmt: pip install ${OPENNMT_DEPS[*]} psutil (torch held by -c $CONSTRAINTS)"
    "$ENVS/opennmt/bin/pip" install -q -c "$CONSTRAINTS" "${OPENNMT_DEPS[@]}" psutil
    log "opennmt: pip install --no-deps $OPENNMT_PIN"
    "$ENVS/opennmt/bin/pip" install -q --no-deps "$OPENNMT_PIN"
    if ! opennmt_ok; then
      "$ENVS/opennmt/bin/onmt_train" -h 2>&1 | tail -5 >&2 || true
      die "OpenNMT-py installed but onmt_train -h fails (see the lines above)"
    fi
  fi
  check_torch "$ENVS/opennmt"
}

setup_fairseq() {
  if fairseq_ok; then
    log "fairseq: already installed, skipping"
  else
    make_venv fairseq
    log "fairseq: pip install $FAIRSEQ_PIN $SUBWORD_NMT_PIN (torch held by -c $CONSTRAINTS; builds C extensions, a few minutes)"
    "$ENVS/fairseq/bin/pip" install -q -c "$CONSTRAINTS" "$FAIRSEQ_PIN" "$SUBWORD_NMT_PIN"
    if ! fairseq_ok; then
      "$ENVS/fairseq/bin/fairseq-train" --help 2>&1 | tail -5 >&2 || true
      die "fairseq installed but fairseq-train --help fails (see the lines above)"
    fi
  fi
  check_torch "$ENVS/fairseq"
}

peers=("$@")
[[ ${#peers[@]} -gt 0 ]] || peers=(joeynmt opennmt)
for peer in "${peers[@]}"; do
  case "$peer" in
    joeynmt) setup_joeynmt ;;
    opennmt) setup_opennmt ;;
    fairseq) setup_fairseq ;;
    *) die "unknown peer '$peer' (expected joeynmt, opennmt or fairseq)" ;;
  esac
done
log "done: ${peers[*]}"
