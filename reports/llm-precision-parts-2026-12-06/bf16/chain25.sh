#!/bin/bash
# After chain24 has both bf16 encodes: stop it (the fp32 parents' quality is committed from earlier runs), time
# timing group 1 again with more queries (its batched-query control read 0.93x), report the bf16 quality, run the tests.
cd /work/main
R=runs/llm/rebuilt; B=runs/llm/baselines
FULL=smollm2-ft-3k-mixed3-r64; CUT=smollm2-effir-2x-gact-mixed3-r64
until [ -f runs/llm/systems/scifact/$CUT-bf16/run.test.trec ]; do sleep 20; done
sleep 20; pkill -f chain24.sh; pkill -f "runs/llm/eval-bf16"; sleep 10
echo "CHAIN24 STOPPED $(date)"
set -x
/usr/bin/time -v .venv/bin/effir bench --dataset ../shared/data/beir/scifact --out runs/llm/speed-precision-g1 --work runs/llm/systems \
  --reference $FULL --control --timing-docs 64 --timing-queries 128 --rounds 5 --threads 2 --speed-only \
  --systems $FULL=$R/$FULL,$FULL-bf16=$B/$FULL-bf16,$FULL-int8-token=$B/$FULL-int8-token,$CUT=$R/$CUT \
  --parent $FULL-bf16=$FULL --parent $FULL-int8-token=$FULL
echo "SPEED G1 DONE rc=$?"
/usr/bin/time -v .venv/bin/effir bench --dataset ../shared/data/beir/scifact --out runs/llm/eval-bf16 --work runs/llm/systems \
  --rounds 0 --threads 2 --systems $FULL-bf16=$B/$FULL-bf16,$CUT-bf16=$B/$CUT-bf16
echo "QUALITY DONE rc=$?"
/usr/bin/time make test > runs/test.log 2>&1
echo "CHAIN25 DONE rc=$?"
