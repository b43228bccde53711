#!/bin/bash
# This report's measurements, from the repository root after `make train-llm SYSTEM=smollm2-ft-3k-mixed4-r64`: the
# rebuilds, the SciFact bench of the fourth pass beside the third (scifact/), the same on Cranfield and CISI (never
# trained on; transfer/), the paired tests, and the figures recorded in the artefact's manifest. Encodes already
# under runs/llm/systems/ are reused.
set -euo pipefail
R=reports/llm-mixed4-r64-2026-12-07 L=runs/llm/rebuilt
M3=smollm2-ft-3k-mixed3-r64 M4=smollm2-ft-3k-mixed4-r64
make $L/$M3/effir.json $L/$M4/effir.json
mkdir -p $R/scifact/importance $R/transfer/importance

. reports/paired.sh  # paired DATASET RUN AGAINST OUT

.venv/bin/effir bench --dataset ../shared/data/beir/scifact --out runs/llm/eval-$M4 --work runs/llm/systems \
  --reference $M3 --rounds 0 --threads 2 --systems $M3=$L/$M3,$M4=$L/$M4 --parent $M4=$M3
cp runs/llm/eval-$M4/report.md runs/llm/eval-$M4/report.json runs/llm/eval-$M4/pareto.png $R/scifact/
cp runs/llm/eval-$M4/importance/importance.png $R/scifact/importance/
paired scifact $M4 $M3 $R/scifact/mixed4-vs-mixed3.json
paired scifact $M4 bm25 $R/scifact/mixed4-vs-bm25.json
# the 2-MLP cut (trained as mixed3 was: two seeds, and seed 0 in bf16) set against mixed4, one pass longer trained
D=smollm2-effir-d2-mixed3-r64 S=runs/llm/systems/scifact
paired scifact $D $M4 $R/scifact/d2-vs-mixed4.json
paired scifact $D-bf16 $M4 $R/scifact/d2-bf16-vs-mixed4.json
.venv/bin/effir eval --qrels ../shared/data/beir/scifact/qrels/test.tsv --run $S/$D/run.test.trec \
  --run $S/$D-s1/run.test.trec --against $S/$M4/run.test.trec --json $R/scifact/d2-two-seeds-vs-mixed4.json

.venv/bin/effir bench --dataset ../shared/data/beir/cranfield --dataset ../shared/data/beir/cisi \
  --out runs/llm/eval-$M4-transfer --work runs/llm/systems --reference $M3 --rounds 0 --threads 2 \
  --systems bm25,$M3=$L/$M3,$M4=$L/$M4 --parent $M4=$M3
cp runs/llm/eval-$M4-transfer/report.md runs/llm/eval-$M4-transfer/report.json \
  runs/llm/eval-$M4-transfer/pareto.png $R/transfer/
cp runs/llm/eval-$M4-transfer/importance/importance.png $R/transfer/importance/
for ds in cranfield cisi; do
  paired $ds $M4 $M3 $R/transfer/$ds-mixed4-vs-mixed3.json
done

cp runs/llm/$M4.work/log.jsonl $R/$M4-train.log.jsonl
.venv/bin/effir compress record models/$M4 --metrics runs/llm/systems/scifact/$M4/metrics.json
