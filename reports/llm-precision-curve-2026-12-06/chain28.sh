#!/bin/bash
# After chain27: EffiR's depth-only cut (d15 of mixed2, trained as mixed3) in bf16: its quality against itself in fp32,
# and one timing group beside the full model and the 2x cut in bf16 (reference: mixed3 in fp32); then the tests.
cd /work/main
until grep -q "CHAIN27 DONE" runs/chain27.log; do sleep 15; done
R=runs/llm/rebuilt; B=runs/llm/baselines
FULL=smollm2-ft-3k-mixed3-r64; CUT=smollm2-effir-2x-gact-mixed3-r64; D15=smollm2-effir-d15-mixed3-r64
set -x
make THREADS=2 $B/$D15-bf16/effir.json
/usr/bin/time -v .venv/bin/effir bench --dataset ../shared/data/beir/scifact --out runs/llm/eval-d15-bf16 --work runs/llm/systems \
  --reference $FULL --rounds 0 --threads 2 \
  --systems $D15-bf16=$B/$D15-bf16,$D15=$R/$D15,$FULL=$R/$FULL \
  --parent $D15-bf16=$D15 --peer $D15=$FULL
echo "QUALITY DONE rc=$?"
/usr/bin/time -v .venv/bin/effir bench --dataset ../shared/data/beir/scifact --out runs/llm/speed-bf16-curve --work runs/llm/systems \
  --reference $FULL --control --timing-docs 64 --timing-queries 128 --rounds 5 --threads 2 --speed-only \
  --systems $FULL=$R/$FULL,$FULL-bf16=$B/$FULL-bf16,$D15=$R/$D15,$D15-bf16=$B/$D15-bf16,$CUT-bf16=$B/$CUT-bf16 \
  --parent $FULL-bf16=$FULL --parent $D15-bf16=$D15 --peer $D15=$FULL
echo "SPEED DONE rc=$?"
/usr/bin/time make test > runs/test.log 2>&1
echo "CHAIN28 DONE rc=$?"
