#!/bin/bash
# The 2-MLP cut at mixed4's quality (smollm2-effir-d2-mixed4-r64) taught, label-free, to imitate its peer mixed4 on
# the texts of CISI's and Cranfield's corpora (-corpora), and its control, the same imitation on SciFact's (-scifact);
# with mixed4 and the cut itself, on Cranfield, CISI and SciFact; and which two MLPs the greedy drift order drops when
# measured on CISI's documents instead of SciFact's. From the repository root; encodes already under
# runs/llm/systems/ are reused. The artefacts were made by `make train-llm SYSTEM=<system>`.
set -euo pipefail
R=reports/llm-d2-corpus-imitation-2026-12-08 L=runs/llm/rebuilt S=runs/llm/systems D=../shared/data/beir
M4=smollm2-ft-3k-mixed4-r64 D4=smollm2-effir-d2-mixed4-r64
DC=smollm2-effir-d2-mixed4-r64-corpora DS=smollm2-effir-d2-mixed4-r64-scifact
make $L/$M4/effir.json $L/$D4/effir.json $L/$DC/effir.json $L/smollm2-ft-3k-mixed3-r64/effir.json
# the control waits under models/pending/ (not scored on SciFact), where make's rebuild rule does not look
[ -f $L/$DS/effir.json ] || .venv/bin/effir compress rebuild models/pending/$DS --out $L/$DS
mkdir -p $R/scifact $R/transfer $R/calibration

. reports/paired.sh  # paired DATASET RUN AGAINST OUT

.venv/bin/effir bench --dataset $D/cranfield --dataset $D/cisi --out runs/corpus-distill/transfer --work $S \
  --reference $M4 --rounds 0 --threads 2 --systems bm25,$M4=$L/$M4,$D4=$L/$D4,$DC=$L/$DC,$DS=$L/$DS \
  --peer $D4=$M4 --peer $DC=$M4 --peer $DS=$M4
cp runs/corpus-distill/transfer/report.{md,json} runs/corpus-distill/transfer/pareto.png $R/transfer/

.venv/bin/effir bench --dataset $D/scifact --out runs/corpus-distill/scifact --work $S \
  --reference $M4 --rounds 0 --threads 2 --systems bm25,$M4=$L/$M4,$D4=$L/$D4,$DC=$L/$DC \
  --peer $D4=$M4 --peer $DC=$M4
cp runs/corpus-distill/scifact/report.{md,json} runs/corpus-distill/scifact/pareto.png $R/scifact/

for ds in cranfield cisi; do
  paired $ds $DC $DS $R/transfer/$ds-corpora-vs-scifact.json
done

# the drift order of mixed3 (the cut's parent) on 32 of CISI's documents (SciFact's 16 chose 17, then 14)
.venv/bin/effir compress analyze -m $L/smollm2-ft-3k-mixed3-r64 --dataset $D/cisi --calibration 32 --drift-texts 32 \
  --drift-steps 2 --threads 2 --out runs/calib/cisi-32
.venv/bin/python -c "import json, sys; d = json.load(open(sys.argv[1])); \
json.dump({k: d[k] for k in ('model', 'texts', 'tokens', 'mlp', 'mlp_drift')}, open(sys.argv[2], 'w'), indent=1)" \
  runs/calib/cisi-32/importance.json $R/calibration/cisi-drift.json
