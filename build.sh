#!/usr/bin/env bash
# Restores the pinned .NET tools (Cake), then runs the Cake script with every argument passed through:
#   ./build.sh --target=Train --set train.max_train_steps=100
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
dotnet tool restore >/dev/null
exec dotnet cake build/build.cake "$@"
