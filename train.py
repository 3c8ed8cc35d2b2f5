"""Train mirgan end to end: encoders -> feature cache -> stage 1 -> stage 2 InfoGAN -> stage 3.

    python train.py                                  # the embedded EmoDB 4-class default
    python train.py --dataset_dir DIR --classes angry happy neutral sad
    python train.py --dataset_name FOLDER_OR_HUB_ID --label_column emotion   # any datasets dataset
    python train.py config.yaml                      # the same arguments from a YAML/JSON file
    torchrun --nproc_per_node 2 train.py ...         # data parallel (CPU: gloo)

The steps live in the library (``modeling_mirgan.train_mirgan``); this script reads the arguments
and the corpus, and hands them over.
"""

from __future__ import annotations

import os

# OpenMP threads that sleep instead of spinning while they wait: on a shared or busy CPU, spinning
# threads made extraction 2x and the GAN loop 4-25x slower (bench/speed.py). Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def setup_logging(disable_tqdm: bool | None = None) -> None:
    """Each message once, not once per torchrun rank: the main process (RANK 0) logs at INFO, the other
    ranks only errors. Python warnings and the transformers/datasets loggers (their own handlers) follow.
    Progress bars (ours and the libraries') only on the main process's terminal, never in a log file."""
    import logging
    import sys

    from datasets.utils import logging as datasets_logging
    from transformers.utils import logging as transformers_logging

    main_process = int(os.environ.get("RANK", "0")) == 0
    logging.basicConfig(level=logging.INFO if main_process else logging.ERROR,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    logging.captureWarnings(True)  # warnings.warn(...) of the libraries goes through the levels above
    if not main_process:
        transformers_logging.set_verbosity_error()
        datasets_logging.set_verbosity_error()
    if not main_process or (disable_tqdm if disable_tqdm is not None else not sys.stderr.isatty()):
        import datasets
        import huggingface_hub

        datasets.disable_progress_bars()
        transformers_logging.disable_progress_bar()
        huggingface_hub.utils.disable_progress_bars()
    from modeling_mirgan.hub import quiet_http_logging

    quiet_http_logging()  # no INFO line per Hub request


def main() -> dict:
    from modeling_mirgan.arguments import parse_args

    # 1. arguments: every flag is checked here, before any audio is read
    try:
        data_args, model_args, train_args = parse_args()
    except ValueError as err:  # a bad flag value: name it and stop, before any audio is read
        raise SystemExit(f"train.py: error: {err}") from None
    setup_logging(train_args.disable_tqdm)

    # 2. corpus: a release layout or an audiofolder with its standard protocol, or any datasets dataset
    from modeling_mirgan.training import load_corpus_from_arguments

    corpus = load_corpus_from_arguments(data_args)

    # 3. transcripts, model, features, cross-validation, final model and outputs
    from modeling_mirgan import train_mirgan

    return train_mirgan(corpus.dataset, corpus.protocol, data_args, model_args, train_args,
                        skipped=corpus.skipped, skipped_examples=corpus.skipped_examples)


if __name__ == "__main__":
    main()
