#!/usr/bin/env bash
# Installs what the tests need (Debian packages, npm workspaces) and runs the whole suite.
# This is the second Quickstart command and what CI runs (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
npm test
