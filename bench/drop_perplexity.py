"""What dropping MLP sublayers does to the language model itself, before any retrieval training.

Loads the model with its language-model head, removes MLP sublayers exactly as `effir compress drop` does
(`architecture.mlps_dropped`), and prints the perplexity on 24 SciFact corpus texts (128 tokens each, as the plain
tokenizer cuts them) for: the full model, every single MLP dropped alone (drop-one), the cuts `effir compress
analyze`'s cosine importance chooses (the d-least-important), the cuts the drop-one perplexities choose, and, when
the importance file has it (`analyze --drift-steps`), the cuts of the greedy output-drift order. Each cut also gets
its output drift D (`importance.drift_sum`), measured on these texts rather than on analyze's calibration texts. A
sublayer the cosine score calls unimportant can still hold the model up: this shows which, and how far a cut is from
what training must repair.

    .venv/bin/python bench/drop_perplexity.py --importance runs/llm/importance/importance.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--importance", required=True, help="importance.json of `effir compress analyze` on the model")
    ap.add_argument("--dataset", default="../shared/data/beir/scifact")
    ap.add_argument("--texts", type=int, default=24)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--cuts", default="4,8,15", help="numbers of MLP sublayers to drop")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=None, help="also write the figures as JSON here")
    args = ap.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from effir.compression.importance import drift_sum, least_important, mlp_to_drop
    from effir.core.data import BeirDataset, sample_texts
    from effir.core.device import configure_threads
    from effir.core.models import resolve
    from effir.encoder import architecture

    configure_threads(args.threads)
    path = resolve(args.model).path
    tokenizer = AutoTokenizer.from_pretrained(path)
    full = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    texts = sample_texts(BeirDataset(args.dataset).corpus(), args.texts, seed=1)
    batches = [tokenizer(t, return_tensors="pt", truncation=True, max_length=args.max_length) for t in texts]

    def forward(dropped: list[int]) -> tuple[float, list]:
        """(perplexity, last hidden states per text) with these MLPs dropped."""
        total = tokens = 0.0
        hidden = []
        with torch.no_grad(), architecture.mlps_dropped(full.model, dropped):
            for ids in batches:
                out = full(**ids, labels=ids["input_ids"], output_hidden_states=True)
                n = ids["input_ids"].shape[1] - 1  # predicted tokens
                total += out.loss.item() * n
                tokens += n
                hidden.append(out.hidden_states[-1][0])
        return round(math.exp(total / tokens), 1), hidden

    full_perplexity, reference = forward([])
    n_tokens = sum(x["input_ids"].shape[1] for x in batches)

    def measure(dropped: list[int]) -> tuple[float, float]:
        """(perplexity, output drift D against the full model)."""
        p, hidden = forward(dropped)
        return p, round(sum(drift_sum(h, r) for h, r in zip(hidden, reference)) / n_tokens, 4)

    scores = json.loads(Path(args.importance).read_text())
    cosine = scores["mlp"]
    layers = len(cosine)
    result = {"model": args.model, "full": full_perplexity}
    print(f"{args.model}: perplexity on {args.texts} SciFact texts ({args.max_length} tokens): full {result['full']}")
    result["drop_one"] = {i: measure([i])[0] for i in range(layers)}
    print("dropped alone: " + ", ".join(f"MLP {i} {p}" for i, p in result["drop_one"].items()))
    by_drop_one = sorted(range(layers), key=lambda i: result["drop_one"][i])
    result["cuts"] = []
    for n in (int(c) for c in args.cuts.split(",")):
        rankings = [("cosine importance", sorted(least_important(cosine, n))),
                    ("drop-one perplexity", sorted(by_drop_one[:n]))]
        if "mlp_drift" in scores:
            rankings.append(("greedy output drift", mlp_to_drop(scores, n)))
        for ranking, chosen in rankings:
            p, d = measure(chosen)
            result["cuts"].append({"dropped": n, "ranking": ranking, "layers": chosen, "perplexity": p, "drift": d})
            print(f"drop {n:2d} by {ranking:<20} {chosen}: perplexity {p}, output drift {d}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
