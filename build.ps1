#!/usr/bin/env pwsh
# Restores the pinned .NET tools (Cake), then runs the Cake script with every argument passed through:
#   ./build.ps1 --target=Train --set=train.max_train_steps=100
$ErrorActionPreference = 'Stop'
# PowerShell reads an unquoted comma list (--set=benchmark.resolution=full,half) as an array and would hand Cake its
# items as separate arguments: join them back into the one argument it was typed as, as build.sh receives it.
$arguments = @(foreach ($argument in $args) { if ($argument -is [array]) { $argument -join ',' } else { $argument } })
# The caller's session keeps its own location (Set-Location in a script would move it into the repository for good).
Push-Location $PSScriptRoot
try {
    dotnet tool restore | Out-Null
    if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
    dotnet cake build/build.cake @arguments
    exit $LASTEXITCODE
}
finally {
    Pop-Location
}
