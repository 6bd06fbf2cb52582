#!/bin/sh
# Usage: sh scripts/check_python.sh PYTHON
# Exit 0 when PYTHON runs and is Python >= 3.11 (what convnet requires); otherwise print one
# line saying what was found and how to choose another interpreter, and exit 1.
# Shell builtins only, so it works with any PATH the Makefile is run under.
py=${1:?usage: sh scripts/check_python.sh PYTHON}
hint="install Python >= 3.11 or choose one with: make PY=/path/to/python3.X"
if ! command -v "$py" >/dev/null 2>&1; then
    echo "make: Python interpreter '$py' not found; $hint" >&2
    exit 1
fi
out=$("$py" --version 2>&1)          # "Python 3.12.1"
nl='
'
out=${out%%"$nl"*}                   # first line only
version=${out#Python }
major=${version%%.*}
rest=${version#*.}
minor=${rest%%.*}
case "$major.$minor" in
    *[!0-9.]*|.*|*.) echo "make: could not read the version of '$py' (it said: $out); $hint" >&2
                     exit 1 ;;
esac
if [ "$major" -lt 3 ] || { [ "$major" -eq 3 ] && [ "$minor" -lt 11 ]; }; then
    echo "make: '$py' is Python $major.$minor but convnet needs >= 3.11; $hint" >&2
    exit 1
fi
