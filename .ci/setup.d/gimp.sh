#!/usr/bin/env bash
# The GIMP plug-in's tests run a real GIMP 3 in a Debian trixie chroot (tests/gimp_host.py):
# mmdebstrap builds it (once, cached in /var/cache/restora-gimp) and bwrap runs it.
# Idempotent: does nothing when both tools and the trixie archive key are already there.
set -euo pipefail
need=()
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v bwrap >/dev/null || need+=(bubblewrap)
[ -e /usr/share/keyrings/debian-archive-trixie-stable.gpg ] || need+=(debian-archive-keyring)
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}"
fi
