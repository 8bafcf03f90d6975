#!/usr/bin/env bash
# Fixes the arguments of this run once, for every later step (sdpipe and Cake read the same ones), and says
# where the base model lives in the Hugging Face cache so the workflow can cache it with the model stage.
#
# In (environment): CONFIG (run profile), OVERRIDES (section.key=value words; quote a value that holds spaces,
#   as on a command line: sample.prompts='["a cat, sitting"]'), DEVICE (cuda or cpu), SDPIPE (the built sdpipe.dll),
#   RUNNER_TEMP, GITHUB_ENV, GITHUB_OUTPUT, and HF_HUB_CACHE / HF_HOME as sdpipe reads them.
# Out: $RUNNER_TEMP/sdpipe.args, one argument a line, named by SDPIPE_ARGS in the job's environment;
#   step outputs hub_repo_dir (the model's folder in the Hub cache; empty unless model.base is hf:...) and
#   hub_repo_on_disk (true when that folder already has snapshots on this runner).
set -euo pipefail

if [ ! -f "${CONFIG:?}" ]; then
  echo "::error::config '$CONFIG' is not a file in the repository (for example configs/sd15.json)"
  exit 2
fi

args_file="${RUNNER_TEMP:?}/sdpipe.args"
{
  printf '%s\n' "--config=$CONFIG" "--device=${DEVICE:-cuda}"
  if [ -n "${OVERRIDES:-}" ]; then
    # xargs splits like a shell (quotes group words) but never expands or runs anything in the input.
    printf '%s' "$OVERRIDES" | xargs -r -n 1 printf '%s\n' | while IFS= read -r override; do
      case "$override" in
        *=*) printf '%s\n' "--set=$override" ;;
        *) echo "::error::override '$override' is not section.key=value" >&2; exit 2 ;;
      esac
    done
  fi
} > "$args_file"
echo "SDPIPE_ARGS=$args_file" >> "${GITHUB_ENV:?}"
echo "sdpipe arguments of this run:"
sed 's/^/  /' "$args_file"

# The effective model.base (after --set), from the effective config sdpipe prints.
mapfile -t args < "$args_file"
base=$(dotnet "${SDPIPE:?}" config "${args[@]}" | sed -n 's/^ *"base": "\(.*\)",\{0,1\}$/\1/p' | head -n 1)
hub_repo_dir=""
if [[ "$base" == hf:* ]]; then
  repo="${base#hf:}"
  repo="${repo%%@*}"
  hub_cache="${HF_HUB_CACHE:-${HF_HOME:-$HOME/.cache/huggingface}/hub}"
  hub_repo_dir="$hub_cache/models--${repo//\//--}"
fi
on_disk=false
if [ -n "$hub_repo_dir" ] && [ -d "$hub_repo_dir/snapshots" ]; then on_disk=true; fi
echo "model.base: ${base:-unknown}; Hub cache folder: ${hub_repo_dir:-none} (on this runner: $on_disk)"
{
  echo "hub_repo_dir=$hub_repo_dir"
  echo "hub_repo_on_disk=$on_disk"
} >> "${GITHUB_OUTPUT:?}"
