#!/usr/bin/env bash
# Debian tools the data readers call: tesseract (OCR of figure crops) and poppler (PDF text + rendering).
# Installs them with apt-get when missing and we are root; otherwise says what is missing and carries on
# (the tests that need them skip with that reason).
set -u
missing=()
command -v tesseract >/dev/null 2>&1 || missing+=(tesseract-ocr tesseract-ocr-eng)
command -v pdftoppm >/dev/null 2>&1 || missing+=(poppler-utils)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} with apt-get"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null 2>&1 \
    || echo "warning: apt-get could not install ${missing[*]}"
else
  echo "warning: missing ${missing[*]} (install them with apt-get as root)"
fi
exit 0
