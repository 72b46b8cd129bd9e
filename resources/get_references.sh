#!/usr/bin/env bash
# Fetch public reference files into resources/ (run by hand; nothing in the project downloads).
set -euo pipefail
cd "$(dirname "$0")"
fetch() { [ -s "$2" ] || curl -fL --retry 3 -o "$2" "$1"; }
fetch https://hgdownload.soe.ucsc.edu/goldenPath/hg19/bigZips/hg19.fa.gz hg19.fa.gz
[ -s hg19.fa ] || gunzip -k hg19.fa.gz
fetch https://hgdownload.soe.ucsc.edu/goldenPath/hg19/encodeDCC/wgEncodeMapability/wgEncodeDacMapabilityConsensusExcludable.bed.gz \
      wgEncodeDacMapabilityConsensusExcludable.bed.gz
fetch https://hgdownload.soe.ucsc.edu/goldenPath/hg19/encodeDCC/wgEncodeMapability/wgEncodeDukeMapabilityUniqueness35bp.bigWig \
      wgEncodeDukeMapabilityUniqueness35bp.bigWig
echo "FactorNet's blacklist, GENCODE annotations and HOCOMOCO motifs are in this folder already"
echo "(README.md); DNase bigWigs and peaks come from the ENCODE-DREAM challenge (Synapse syn6131484)."
