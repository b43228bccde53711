#!/bin/bash
# the as-is diagnostic again (tests ran beside chain30's first minute)
cd /work/main
until grep -aq "CHAIN30 DONE" runs/chain30.log; do sleep 10; done
FULL=smollm2-ft-3k-mixed3-r64; CUT=smollm2-effir-2x-gact-mixed3-r64; D15=smollm2-effir-d15-mixed3-r64
B=runs/llm/baselines; R=runs/llm/rebuilt
S=$FULL=$R/$FULL,$FULL-bf16=$B/$FULL-bf16,$D15=$R/$D15,$D15-bf16=$B/$D15-bf16,$CUT-bf16=$B/$CUT-bf16
cp /tmp/diag/as-is.json /tmp/diag/as-is-disturbed.json
.venv/bin/python /tmp/diag/first_round.py as-is $S
echo "CHAIN31 DONE $(date)"
