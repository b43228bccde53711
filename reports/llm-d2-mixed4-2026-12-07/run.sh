#!/bin/bash
# This report's measurements, from the repository root after `make train-llm SYSTEM=smollm2-effir-d2-mixed4-r64`:
# the rebuilds, the SciFact bench of the 2-MLP cut trained as mixed4 was beside its peer mixed4 (and beside the cut
# trained as mixed3 was, with its peer mixed3), the cut in bf16, the same systems in fp32 on Cranfield and CISI (never
# trained on; transfer/), the paired tests, and the figures recorded in the artefact's manifest. Encodes already under
# runs/llm/systems/ are reused.
set -euo pipefail
R=reports/llm-d2-mixed4-2026-12-07 L=runs/llm/rebuilt B=runs/llm/baselines
M3=smollm2-ft-3k-mixed3-r64 M4=smollm2-ft-3k-mixed4-r64
D3=smollm2-effir-d2-mixed3-r64 D4=smollm2-effir-d2-mixed4-r64
make $L/$M3/effir.json $L/$M4/effir.json $L/$D3/effir.json $L/$D4/effir.json $B/$D4-bf16/effir.json
mkdir -p $R/scifact/importance $R/transfer/importance

. reports/paired.sh  # paired DATASET RUN AGAINST OUT

SYSTEMS=$M3=$L/$M3,$M4=$L/$M4,$D3=$L/$D3,$D4=$L/$D4
PEERS="--peer $D3=$M3 --peer $D4=$M4"
.venv/bin/effir bench --dataset ../shared/data/beir/scifact --out runs/llm/eval-$D4 --work runs/llm/systems \
  --reference $M4 --rounds 0 --threads 2 --systems bm25,$SYSTEMS,$D4-bf16=$B/$D4-bf16 $PEERS --parent $M4=$M3
cp runs/llm/eval-$D4/report.md runs/llm/eval-$D4/report.json runs/llm/eval-$D4/pareto.png $R/scifact/
cp runs/llm/eval-$D4/importance/importance.png $R/scifact/importance/
paired scifact $D4 $M4 $R/scifact/d2-mixed4-vs-mixed4.json
paired scifact $D4-bf16 $M4 $R/scifact/d2-mixed4-bf16-vs-mixed4.json
paired scifact $D4-bf16 $D4 $R/scifact/d2-mixed4-bf16-vs-d2-mixed4.json
paired scifact $D4 $D3 $R/scifact/d2-mixed4-vs-d2-mixed3.json
paired scifact $D4 bm25 $R/scifact/d2-mixed4-vs-bm25.json

.venv/bin/effir bench --dataset ../shared/data/beir/cranfield --dataset ../shared/data/beir/cisi \
  --out runs/llm/eval-$D4-transfer --work runs/llm/systems --reference $M4 --rounds 0 --threads 2 \
  --systems bm25,$SYSTEMS $PEERS --parent $M4=$M3
cp runs/llm/eval-$D4-transfer/report.md runs/llm/eval-$D4-transfer/report.json \
  runs/llm/eval-$D4-transfer/pareto.png $R/transfer/
cp runs/llm/eval-$D4-transfer/importance/importance.png $R/transfer/importance/
for ds in cranfield cisi; do
  paired $ds $D4 $M4 $R/transfer/$ds-d2-mixed4-vs-mixed4.json
  paired $ds $D4 $D3 $R/transfer/$ds-d2-mixed4-vs-d2-mixed3.json
done

cp runs/llm/$D4/plan.json $R/scifact/cut-plan.json
cp runs/llm/$D4/work-3/log.jsonl $R/$D4-train.log.jsonl
.venv/bin/effir compress record models/$D4 --metrics runs/llm/systems/scifact/$D4/metrics.json
