#!/bin/bash
# The share of its peer that the 2-MLP cut at mixed4's quality keeps, with its 95 % interval from the commands
# (`effir eval --against`: `share`, `share_ci95`, Fieller's interval for a ratio of paired means; `effir bench`'s peer
# table: the same), on the transfer collections and on SciFact, where the d2-mixed4 report derived its intervals by
# hand from `delta_ci95`; and whether the cut's loss depends on query length (bench/loss_by_query_length.py). From
# the repository root; encodes already under runs/llm/systems/ are reused.
set -euo pipefail
R=reports/retention-intervals-2026-12-07 L=runs/llm/rebuilt S=runs/llm/systems
M4=smollm2-ft-3k-mixed4-r64 D4=smollm2-effir-d2-mixed4-r64
make $L/$M4/effir.json $L/$D4/effir.json
mkdir -p $R/scifact $R/transfer

. reports/paired.sh  # paired DATASET RUN AGAINST OUT

SYSTEMS=bm25,$M4=$L/$M4,$D4=$L/$D4
.venv/bin/effir bench --dataset ../shared/data/beir/cranfield --dataset ../shared/data/beir/cisi \
  --out runs/llm/eval-intervals-transfer --work $S --reference $M4 --rounds 0 --threads 2 \
  --systems $SYSTEMS --peer $D4=$M4
cp runs/llm/eval-intervals-transfer/report.{md,json} runs/llm/eval-intervals-transfer/pareto.png $R/transfer/

.venv/bin/effir bench --dataset ../shared/data/beir/scifact --out runs/llm/eval-intervals --work $S \
  --reference $M4 --rounds 0 --threads 2 --systems $SYSTEMS --peer $D4=$M4
cp runs/llm/eval-intervals/report.{md,json} runs/llm/eval-intervals/pareto.png $R/scifact/

for ds in scifact cranfield cisi; do
  dir=$R/$([ $ds = scifact ] && echo scifact || echo transfer)
  paired $ds $D4 $M4 $dir/$ds-d2-mixed4-vs-mixed4.json
  .venv/bin/python bench/loss_by_query_length.py --dataset ../shared/data/beir/$ds --run $S/$ds/$D4/run.test.trec \
    --against $S/$ds/$M4/run.test.trec --model $L/$M4 --json $dir/$ds-loss-by-query-length.json
done
