"""`paretoserve import vllm`: turn vLLM `bench serve` results (and their metric CSVs) into a sweep directory."""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

from paretoserve.cli import examples
from paretoserve.cli.common import UsageError
from paretoserve.results.store import StoreError, SweepStore
from paretoserve.sweep.import_vllm import (
    CONCURRENCY_SOURCE,
    VllmImportError,
    environment,
    import_runs,
    kv_bytes_per_token,
    load_model_config,
)


def add_parser(subparsers, help: str) -> None:
    p = subparsers.add_parser("import", help=help, description=help,
                              epilog=examples("paretoserve import vllm vllm-results/ --out sweep-vllm "
                                              "--model-config config.json"))
    kinds = p.add_subparsers(dest="source", required=True, metavar="SOURCE")
    vllm_help = "vLLM bench serve result JSONs, one run folder per point"
    v = kinds.add_parser("vllm", help=vllm_help, description=vllm_help,
                         epilog=examples("paretoserve import vllm vllm-results/ --out sweep-vllm "
                                         "--model-config config.json"))
    v.add_argument("paths", nargs="+", metavar="PATH",
                   help="result JSONs, run folders, or trees of them; each run folder (a folder holding a bench "
                        "serve JSON) becomes one point, its batch cap from the launch record (config-*.txt, "
                        "--max-num-seqs) or the max of num_requests_running in metrics_engine*.csv")
    v.add_argument("--out", type=Path, required=True, help="sweep directory to create")
    kv = v.add_mutually_exclusive_group()
    kv.add_argument("--model-config", type=Path, default=None,
                    help="the model's Hugging Face config.json (geometry for KV bytes per token: the KV blocks of "
                         "cache_config*.txt become bytes through it or --kv-bytes-per-token)")
    kv.add_argument("--kv-bytes-per-token", type=int, default=None, help="KV cache bytes per token, explicitly")
    v.add_argument("--gpu-name", default=None, help="GPU the runs used, when the data does not say")
    v.add_argument("--gpu-memory-gb", type=float, default=None, help="its memory in GB (1e9 bytes)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.kv_bytes_per_token is not None and args.kv_bytes_per_token <= 0:
        raise UsageError(f"--kv-bytes-per-token must be a positive integer; got {args.kv_bytes_per_token}")
    if args.gpu_memory_gb is not None and args.gpu_memory_gb <= 0:
        raise UsageError(f"--gpu-memory-gb must be positive; got {args.gpu_memory_gb}")
    try:
        config = load_model_config(args.model_config) if args.model_config else None
        per_token = args.kv_bytes_per_token or (kv_bytes_per_token(config) if config else None)
        records = import_runs(args.paths, args.kv_bytes_per_token, config)
    except VllmImportError:
        raise  # a UserError that names the flag or file, before the broader ValueError below
    except OSError as exc:
        raise UsageError(f"cannot read {exc.filename or 'an input file'}: {exc.strerror or exc}") from exc
    except (ValueError, csv.Error) as exc:  # a metric CSV or cache_config that is not what vLLM writes
        raise UsageError(f"an input file is malformed: {exc}") from exc
    spec = {"imported_from": "vllm", "paths": [str(Path(p).resolve()) for p in args.paths],
            "model_config": str(args.model_config.resolve()) if args.model_config else None,
            "kv_bytes_per_token": per_token,
            "model": sorted({str(r.get("model_id")) for r in records if r.get("model_id")})}
    memory = int(args.gpu_memory_gb * 1e9) if args.gpu_memory_gb else None
    store = SweepStore(args.out)
    try:
        store.open(spec, environment(args.gpu_name, memory), resume=False)
    except StoreError as exc:
        raise UsageError(f"--out: {exc}") from exc
    for record in records:
        store.append(record)
    csv_path = store.export_csv(store.dir / "points.csv")
    guessed = sum(r.get("max_batch_source") == CONCURRENCY_SOURCE for r in records)
    said = f"; the batch cap of {guessed} of them is {CONCURRENCY_SOURCE}" if guessed else ""
    print(f"import vllm: {len(records)} points{said}; {store.points_path}, {csv_path}")
    return 0
