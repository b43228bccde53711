#!/bin/bash
# This report's measurements, from the repository root after `make train-llm SYSTEM=smollm2-effir-d2-mixed3-r64-s1`:
# the rebuilds, the SciFact bench of the second seed beside the first and their peer, the paired tests, and the
# figures recorded in the artefact's manifest. Encodes already under runs/llm/systems/ are reused.
set -euo pipefail
R=reports/llm-d2-seed1-2026-12-07 L=runs/llm/rebuilt
M=smollm2-ft-3k-mixed3-r64 D=smollm2-effir-d2-mixed3-r64 S=smollm2-effir-d2-mixed3-r64-s1
make $L/$M/effir.json $L/$D/effir.json $L/$S/effir.json
mkdir -p $R/scifact/importance

# paired RUN AGAINST OUT: the paired test and 95 % interval of two systems' SciFact test runs
paired() {
  local runs=runs/llm/systems/scifact
  .venv/bin/effir eval --qrels ../shared/data/beir/scifact/qrels/test.tsv --run $runs/$1/run.test.trec \
    --against $runs/$2/run.test.trec --json $3
}

.venv/bin/effir bench --dataset ../shared/data/beir/scifact --out runs/llm/eval-$S --work runs/llm/systems \
  --reference $M --rounds 0 --threads 2 --systems $M=$L/$M,$D=$L/$D,$S=$L/$S --peer $D=$M --peer $S=$M
cp runs/llm/eval-$S/report.md runs/llm/eval-$S/report.json runs/llm/eval-$S/pareto.png $R/scifact/
cp runs/llm/eval-$S/importance/importance.png $R/scifact/importance/
paired $S $M $R/scifact/s1-vs-mixed3.json
paired $S $D $R/scifact/s1-vs-s0.json

.venv/bin/effir compress record models/$S --metrics runs/llm/systems/scifact/$S/metrics.json
