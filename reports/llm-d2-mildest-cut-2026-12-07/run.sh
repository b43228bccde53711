#!/bin/bash
# This report's measurements, from the repository root after `make train-llm SYSTEM=smollm2-effir-d2-mixed3-r64`:
# the rebuilds, the bf16 copies, the SciFact bench and its paired tests (scifact/), the timing, alone (speed/), and
# Cranfield / CISI (transfer/). Encodes already under runs/llm/systems/ are reused.
set -euo pipefail
R=reports/llm-d2-mildest-cut-2026-12-07 L=runs/llm/rebuilt B=runs/llm/baselines
M=smollm2-ft-3k-mixed3-r64 D=smollm2-effir-d2-mixed3-r64 D4=smollm2-effir-d4-mixed3-r64 D15=smollm2-effir-d15-mixed3-r64
make $L/$M/effir.json $L/$D4/effir.json $L/$D15/effir.json $L/$D/effir.json \
  $B/$M-bf16/effir.json $B/$D4-bf16/effir.json $B/$D-bf16/effir.json
mkdir -p $R/scifact/importance $R/speed $R/transfer/importance

. reports/paired.sh  # paired DATASET RUN AGAINST OUT

.venv/bin/effir bench --dataset ../shared/data/beir/scifact --out runs/llm/eval-$D --work runs/llm/systems \
  --reference $M --rounds 0 --threads 2 \
  --systems $M=$L/$M,$D=$L/$D,$D4=$L/$D4,$D15=$L/$D15,$M-bf16=$B/$M-bf16,$D-bf16=$B/$D-bf16,$D4-bf16=$B/$D4-bf16 \
  --peer $D=$M --peer $D4=$M --peer $D15=$M --parent $M-bf16=$M --parent $D-bf16=$D --parent $D4-bf16=$D4
cp runs/llm/eval-$D/report.md runs/llm/eval-$D/report.json runs/llm/eval-$D/pareto.png $R/scifact/
cp runs/llm/eval-$D/importance/importance.png $R/scifact/importance/
paired scifact $D $M $R/scifact/d2-vs-mixed3.json
paired scifact $D $D4 $R/scifact/d2-vs-d4.json
paired scifact $D-bf16 $D $R/scifact/d2-bf16-vs-d2.json
paired scifact $D-bf16 $M $R/scifact/d2-bf16-vs-mixed3.json
paired scifact $D-bf16 $D4-bf16 $R/scifact/d2-bf16-vs-d4-bf16.json

.venv/bin/effir bench --speed-only --dataset ../shared/data/beir/scifact --out runs/llm/speed-$D --work runs/llm/systems \
  --reference $M --control --timing-docs 64 --timing-queries 64 --rounds 5 --threads 2 \
  --systems $M=$L/$M,$D=$L/$D,$M-bf16=$B/$M-bf16,$D-bf16=$B/$D-bf16,$D4-bf16=$B/$D4-bf16
cp runs/llm/speed-$D/report.md runs/llm/speed-$D/report.json $R/speed/

.venv/bin/effir bench --dataset ../shared/data/beir/cranfield --dataset ../shared/data/beir/cisi \
  --out runs/llm/eval-$D-transfer --work runs/llm/systems --reference $M --rounds 0 --threads 2 \
  --systems bm25,$M=$L/$M,$D=$L/$D,$D4=$L/$D4,$D15=$L/$D15 --peer $D=$M --peer $D4=$M --peer $D15=$M
cp runs/llm/eval-$D-transfer/report.md runs/llm/eval-$D-transfer/report.json runs/llm/eval-$D-transfer/pareto.png $R/transfer/
cp runs/llm/eval-$D-transfer/importance/importance.png $R/transfer/importance/
for ds in cranfield cisi; do
  paired $ds $D $M $R/transfer/$ds-d2-vs-mixed3.json
  paired $ds $D $D4 $R/transfer/$ds-d2-vs-d4.json
done

.venv/bin/effir compress record models/$D --metrics runs/llm/systems/scifact/$D/metrics.json
