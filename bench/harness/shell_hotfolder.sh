#!/usr/bin/env bash
# Baseline (1): the classic shell hot folder. inotifywait reports each closed or moved-in file, and a
# bash loop uploads it with one curl per file and writes the API's answer as the sidecar.
#   usage: shell_hotfolder.sh BASE_URL DIR...     (token in $USEAPI_TOKEN)
# inotifywait prints "Watches established." on stderr once it is listening.
set -u
url="$1/files/"
shift
inotifywait -m -e close_write -e moved_to --format '%w%f' "$@" | while IFS= read -r f; do
  case "$f" in
    *.png | *.PNG) type=image/png ;;
    *.jpg | *.jpeg | *.webp | *.JPG | *.JPEG | *.WEBP) type=image/jpeg ;;
    *) continue ;;
  esac
  name="${f##*/}"
  case "$name" in .*) continue ;; esac
  curl -sS -f -X POST -H "Authorization: Bearer $USEAPI_TOKEN" -H "Content-Type: $type" \
    --data-binary @"$f" -o "$f.json" "$url" || echo "upload failed: $f" >&2
done
