#!/usr/bin/env bash
# Fusion and exact re-ranking on SciFact with all-MiniLM-L6-v2, every figure from the CLI:
#   zero-shot MiniLM (Flat), BM25, their RRF; IVF256,PQ48 at several nprobe, with and without --rerank 100.
#   bash bench/scifact_fusion_rerank.sh [DATA] [OUT]     (default ../shared/data/beir/scifact, runs/fusion-rerank)
set -euo pipefail
D=${1:-../shared/data/beir/scifact}
OUT=${2:-runs/fusion-rerank}
E=.venv/bin/effir
Q="--queries $D/queries.jsonl --qrels $D/qrels/test.tsv"
mkdir -p "$OUT"
$E run --dataset "$D" --model minilm --out "$OUT/minilm"
$E bm25 --dataset "$D" --out "$OUT/bm25.trec"
$E fuse --run "$OUT/bm25.trec" --run "$OUT/minilm/run.test.trec" --out "$OUT/rrf.trec"
$E index --shards "$OUT/minilm/shards" --out "$OUT/ivfpq" --factory IVF256,PQ48
for np in 32 128 256; do
  $E search --index "$OUT/ivfpq" -m minilm $Q --k 100 --nprobe $np --out "$OUT/pq-np$np.trec"
  $E search --index "$OUT/ivfpq" -m minilm $Q --k 100 --nprobe $np --rerank 100 --out "$OUT/pq-np$np-rr100.trec"
done
for run in "$OUT/minilm/run.test.trec" "$OUT"/bm25.trec "$OUT"/rrf.trec "$OUT"/pq-*.trec; do
  $E eval --run "$run" --qrels "$D/qrels/test.tsv" | tail -1
done
