#!/usr/bin/env pwsh
# Restores the pinned .NET tools (Cake), then runs the Cake script with every argument passed through:
#   ./build.ps1 --target=Train --set=train.max_train_steps=100
$ErrorActionPreference = 'Stop'
Set-Location $PSScriptRoot
dotnet tool restore | Out-Null
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
dotnet cake build/build.cake @args
exit $LASTEXITCODE
