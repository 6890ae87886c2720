#!/usr/bin/env bash
# Memory-safety check of the C core on fuzz inputs: build the committed tree (git HEAD) with
# gcc's AddressSanitizer + UndefinedBehaviorSanitizer in a scratch copy, then replay every
# corpus input (the seeds and tests/fuzz/work/, which the long runs grew) and run the property
# and malformed-frame tests against that build. The worktree's own build is not touched.
#   bash tests/fuzz/asan.sh            # needs gcc with libasan (Debian: gcc), about 5 minutes
# (libFuzzer's coverage does not work with a preloaded ASan runtime, so ASan runs replay the
# corpora that the coverage-guided runs produced rather than fuzz on their own.)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
PY=${PY:-$ROOT/.venv/bin/python}
DIR=$(mktemp -d /tmp/femtows-asan.XXXXXX)
git archive HEAD | tar -x -C "$DIR"
cd "$DIR"
CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -g" \
LDFLAGS="-fsanitize=address,undefined" "$PY" setup.py build_ext --inplace -q >build.log 2>&1
export LD_PRELOAD="$(gcc -print-file-name=libasan.so)"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export PYTHONPATH="$DIR"
"$PY" -c "import femtows._core.core as c; assert c.__file__.startswith('$DIR'), c.__file__"
for t in frames request response url connect socks; do
  dirs=("tests/fuzz/corpus/$t")
  [ -d "$ROOT/tests/fuzz/work/$t" ] && dirs+=("$ROOT/tests/fuzz/work/$t")
  "$PY" tests/fuzz/run.py "$t" --replay "${dirs[@]}"
done
"$PY" -m pytest -q -p no:cacheprovider tests/test_properties.py tests/test_malformed.py
echo "ASan/UBSan: no error ($DIR)"
