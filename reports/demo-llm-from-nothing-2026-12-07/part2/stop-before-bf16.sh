#!/bin/bash
# stop `make demo-llm` (process group $1) when its bench reaches mixed3-bf16's SciFact encode: the 2x cut's encode is
# then finished and recorded, and nothing is left half-encoded when the session ends
while ! grep -aq "== scifact: smollm2-ft-3k-mixed3-r64-bf16$" runs/demo-llm-part2.log; do sleep 5; done
date -u +%FT%TZ > runs/demo-llm-part2.stopped
kill -TERM -- -"$1"
