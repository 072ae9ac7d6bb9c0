#!/usr/bin/env bash
# Optional: MBROLA voices for the corpus (docs/dataset.md "MBROLA voices"). Debian ships the databases in its
# non-free component; their licence allows synthesising speech with the mbrola program and forbids selling them or
# building them into a product sold (we train on speech they render; neither ships). Needs root. Safe to re-run.
# Usage: scripts/install-mbrola.sh [DATABASE ...]   (default: models/corpus/mbrola.py's USABLE)
set -euo pipefail
DATABASES=${*:-"us1 us2 us3 en1 de1 de2 de3 de5 fr1 fr2 fr3 fr4 fr5 fr6 fr7 nl2 sw1 sw2 cr1 cz2 hu1 id1"}
if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
. /etc/os-release
if [ "${ID:-}" != debian ]; then
    echo "install-mbrola: Debian only (this is ${ID:-unknown}); install mbrola and mbrola-<database> your own way" >&2
    exit 1
fi
first=${DATABASES%% *}
$sudo apt-get update -q
# mbrola is in contrib, the databases in non-free: add both where the machine lists neither
if ! apt-cache show "mbrola-$first" >/dev/null 2>&1; then
    # apt refuses one archive listed with two different Signed-By values: copy the main entry's
    keyring=$(grep -rhos '^Signed-By: .*' /etc/apt/sources.list.d/debian.sources | head -n 1 || true)
    printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: contrib non-free\n%s\n' \
        "$VERSION_CODENAME" "$keyring" | $sudo tee /etc/apt/sources.list.d/backchannel-non-free.sources >/dev/null
    $sudo apt-get update -q
fi
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q mbrola $(for d in $DATABASES; do echo "mbrola-$d"; done)
echo "install-mbrola: installed$(for d in $DATABASES; do printf ' %s' "$d"; done)"
