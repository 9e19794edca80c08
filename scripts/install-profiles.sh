#!/usr/bin/env bash
# Make `snakemake --profile slurm` work as typed: Snakemake looks up a bare profile name in ./,
# ~/.config/snakemake/ and /etc/xdg/snakemake/ only, never in ./profiles/. Link profiles/slurm there
# (a link, so edits to the repository's profile apply at once). Idempotent; an existing profile of
# another origin is left alone with a warning.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dest=${XDG_CONFIG_HOME:-$HOME/.config}/snakemake
mkdir -p "$dest"
for name in slurm; do
  src=$repo/profiles/$name
  link=$dest/$name
  if [ -L "$link" ] || [ ! -e "$link" ]; then
    ln -sfn "$src" "$link"
    echo "profile $name -> $link"
  elif [ "$(cd "$link" && pwd -P)" != "$(cd "$src" && pwd -P)" ]; then
    echo "warning: $link exists and is not a link to $src; left as it is" >&2
  fi
done
