"""One system's figures in a report: quality, model cost, index cost, speed and its comparison with other rows.

`to_json()` is the row of report.json (metric names as trec_eval writes them: `ndcg@10`, `recall@100`, `mrr@10`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

METRIC_FIELDS = {"ndcg@10": "ndcg_10", "recall@100": "recall_100", "mrr@10": "mrr_10"}
PRIVATE = ("per_query",)


@dataclass
class SystemResult:
    name: str
    kind: str                                   # bm25 | full | compressed | hybrid
    model: str
    ndcg_10: float | None                       # None in a speed-only report (bench --speed-only)
    recall_100: float | None
    mrr_10: float | None
    queries: int
    per_query: dict = field(default_factory=dict, repr=False)   # qid -> metrics, for significance tests
    run: str | None = None                      # the TREC run file
    # model cost
    params: int | None = None
    params_non_embedding: int | None = None
    flops_per_token: int | None = None
    model_bytes: int | None = None
    precision: str | None = None                # fp32 | fp16 | bf16 | int8-dynamic | int8-token | nf4
    # index and search, measured when each stage first ran
    doc_encode_corpus_s: float | None = None
    index_build_s: float | None = None
    index_bytes: int | None = None
    bytes_per_vector: float | None = None
    bytes_per_doc: float | None = None
    index_peak_memory_bytes: int | None = None
    search_p50_ms: float | None = None
    search_p95_ms: float | None = None
    query_encode_p50_ms: float | None = None
    query_encode_p95_ms: float | None = None
    end_to_end_s: float | None = None
    # provenance and comparison
    trained: str | None = None
    parent: str | None = None
    retention: float | None = None
    retention_ci95: list | None = None          # Fieller's 95 % interval of the share (eval.significance)
    p_value_vs_parent: float | None = None
    peer: str | None = None                     # the parent given this system's own training (--peer)
    retention_vs_peer: float | None = None
    retention_vs_peer_ci95: list | None = None
    p_value_vs_peer: float | None = None
    p_value_vs_full: float | None = None
    flops_ratio: float | None = None            # analytic, documents, against the reference
    query_flops_ratio: float | None = None
    # interleaved timing (speed.figures)
    doc_encode_s: float | None = None
    query_encode_s: float | None = None
    query_batch_encode_s: float | None = None
    docs_per_s: float | None = None
    rounds_s: dict | None = None
    doc_speedup: float | None = None
    doc_speedup_range: list | None = None
    query_speedup: float | None = None
    query_speedup_range: list | None = None
    query_batch_speedup: float | None = None
    query_batch_speedup_range: list | None = None
    timing_group: int | None = None             # the group it was timed in, against that group's reference
    # several collections
    per_dataset: dict | None = None
    average: dict | None = None

    @classmethod
    def from_metrics(cls, name: str, kind: str, model: str, metrics: dict, **rest) -> SystemResult:
        """From `eval.metrics.evaluate`'s dict (trec_eval names) and any other fields."""
        return cls(name=name, kind=kind, model=model, queries=metrics["queries"],
                   **{attr: metrics[key] for key, attr in METRIC_FIELDS.items()}, **rest)

    def metric(self, key: str) -> float:
        return getattr(self, METRIC_FIELDS.get(key, key))

    def update(self, figures: dict) -> None:
        for key, value in figures.items():
            attr = METRIC_FIELDS.get(key, key)
            if not hasattr(self, attr):
                raise AttributeError(f"SystemResult has no field {attr!r}")
            setattr(self, attr, value)

    @classmethod
    def from_json(cls, row: dict) -> SystemResult:
        """A row of report.json back as a SystemResult (without its per-query figures, which report.json omits)."""
        fields = {METRIC_FIELDS.get(key, key): value for key, value in row.items()}
        unknown = sorted(set(fields) - set(cls.__dataclass_fields__))
        if unknown:
            raise KeyError(f"unknown field(s) {', '.join(unknown)}")
        return cls(**fields)

    def to_json(self) -> dict:
        out = {}
        for key, value in asdict(self).items():
            if key not in PRIVATE:
                out[{v: k for k, v in METRIC_FIELDS.items()}.get(key, key)] = value
        return out
