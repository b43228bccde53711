#!/bin/bash
# This report's measurements, from the repository root after `make train-llm SYSTEM=smollm2-effir-d2-mixed3-r64-s1`:
# the rebuilds, the SciFact bench of the second seed beside the first and their peer, the paired tests, the same
# three on Cranfield and CISI (never trained on; transfer/), and the figures recorded in the artefact's manifest.
# Encodes already under runs/llm/systems/ are reused.
set -euo pipefail
R=reports/llm-d2-seed1-2026-12-07 L=runs/llm/rebuilt
M=smollm2-ft-3k-mixed3-r64 D=smollm2-effir-d2-mixed3-r64 S=smollm2-effir-d2-mixed3-r64-s1
make $L/$M/effir.json $L/$D/effir.json $L/$S/effir.json
mkdir -p $R/scifact/importance $R/transfer/importance

. reports/paired.sh  # paired DATASET RUN AGAINST OUT

.venv/bin/effir bench --dataset ../shared/data/beir/scifact --out runs/llm/eval-$S --work runs/llm/systems \
  --reference $M --rounds 0 --threads 2 --systems $M=$L/$M,$D=$L/$D,$S=$L/$S --peer $D=$M --peer $S=$M
cp runs/llm/eval-$S/report.md runs/llm/eval-$S/report.json runs/llm/eval-$S/pareto.png $R/scifact/
cp runs/llm/eval-$S/importance/importance.png $R/scifact/importance/
paired scifact $S $M $R/scifact/s1-vs-mixed3.json
paired scifact $S $D $R/scifact/s1-vs-s0.json

.venv/bin/effir bench --dataset ../shared/data/beir/cranfield --dataset ../shared/data/beir/cisi \
  --out runs/llm/eval-$S-transfer --work runs/llm/systems --reference $M --rounds 0 --threads 2 \
  --systems bm25,$M=$L/$M,$D=$L/$D,$S=$L/$S --peer $D=$M --peer $S=$M
cp runs/llm/eval-$S-transfer/report.md runs/llm/eval-$S-transfer/report.json runs/llm/eval-$S-transfer/pareto.png \
  $R/transfer/
cp runs/llm/eval-$S-transfer/importance/importance.png $R/transfer/importance/
for ds in cranfield cisi; do
  paired $ds $S $M $R/transfer/$ds-s1-vs-mixed3.json
  paired $ds $S $D $R/transfer/$ds-s1-vs-s0.json
done

# both seeds against their peer: each query's mean over the two trainings, paired with mixed3's
for ds in scifact cranfield cisi; do
  runs=runs/llm/systems/$ds out=$R/transfer/$ds-two-seeds-vs-mixed3.json
  [ $ds = scifact ] && out=$R/scifact/two-seeds-vs-mixed3.json
  .venv/bin/effir eval --qrels ../shared/data/beir/$ds/qrels/test.tsv --run $runs/$D/run.test.trec \
    --run $runs/$S/run.test.trec --against $runs/$M/run.test.trec --json $out
done

.venv/bin/effir compress record models/$S --metrics runs/llm/systems/scifact/$S/metrics.json
