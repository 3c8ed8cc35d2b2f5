"""Push a saved mirgan model, or a saved ``datasets`` folder, to the Hugging Face Hub.

Models: ``push_model(model_dir, repo_id)`` uploads the folder ``train.py`` writes (``save_pretrained``
of the model and processor plus ``card.write_model_card``): config.json, model.safetensors, the
processor/feature-extractor and tokenizer files, the custom code files that ``auto_map`` points to
(so ``trust_remote_code=True`` works without this package) and the README.md model card, rewritten
so that its "How to use" code names ``repo_id`` (``card.retarget_card``), all in one commit.
``model.push_to_hub(repo_id)`` goes through ``push_model_object``: the model, its processor (given,
or the one saved beside the folder the model was loaded from) and the mirgan card (that folder's,
one written from ``results``, or one from what the config knows), never the blank transformers card.

Datasets: ``push_dataset(folder, repo_id)`` loads a ``save_to_disk`` folder and pushes it with
``push_to_hub``, i.e. as Parquet shards under ``data/`` plus a README.md whose ``configs`` and
``dataset_info`` metadata ``datasets`` generates. If the folder has its own README.md dataset card, its
metadata and text are merged into that README (the generated ``configs``/``dataset_info`` keys win, as
they describe the pushed files). Pull it back with ``datasets.load_dataset(repo_id)`` (a
``DatasetDict``; a pushed ``Dataset`` becomes its ``train`` split). The Arrow files of the
``save_to_disk`` folder are not uploaded: Parquet is what the Hub viewer and ``load_dataset`` read.

CLI::

    python -m modeling_mirgan.hub push --model outputs/emodb4-unimodal/model --repo_id user/mirgan-emodb4
    python -m modeling_mirgan.hub push-dataset --folder features/ --repo_id user/emodb4-features

Authentication: ``token`` or, when omitted, ``HF_TOKEN`` / the token saved by ``hf auth login``.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import re
import tempfile
from pathlib import Path

from huggingface_hub import HfApi

logger = logging.getLogger(__name__)
HTTP_LOGGERS = ("httpx", "httpx2", "httpcore", "httpcore2", "urllib3", "huggingface_hub", "filelock")
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


def quiet_http_logging(level: int = logging.WARNING) -> None:
    """Hub and HTTP client loggers at WARNING: no ``INFO HTTP Request: ...`` line per Hub call when the
    application logs at INFO (call it after ``logging.basicConfig``)."""
    for name in HTTP_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.getLogger(name).level))

# Never uploaded from a model folder: pickled weights/training state, caches, editor and OS files.
MODEL_IGNORE_PATTERNS = ["*.bin", "*.pt", "*.pth", "*.pkl", "*.ckpt", "optimizer*", "scheduler*", "rng_state*",
                         "checkpoints/*", "runs/*", "__pycache__/*", "*.pyc", ".*", "*.tmp"]


def _auto_map_modules(folder: Path) -> set[str]:
    """Python files the ``auto_map`` entries of the folder's JSON configs point to."""
    modules = set()

    def walk(obj):
        if isinstance(obj, dict):
            for key, value in obj.items():
                if key == "auto_map" and isinstance(value, dict):
                    for ref in value.values():
                        for item in ref if isinstance(ref, (list, tuple)) else [ref]:
                            if isinstance(item, str) and "--" not in item:  # "repo--module.Class" lives elsewhere
                                modules.add(item.rsplit(".", 1)[0] + ".py")
                else:
                    walk(value)
        elif isinstance(obj, list):
            for value in obj:
                walk(value)

    for file in folder.glob("*.json"):
        try:
            walk(json.loads(file.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return modules


def check_model_folder(model_dir: str | Path) -> Path:
    """The folder, after checking it holds a loadable safetensors model; raises ValueError otherwise."""
    folder = Path(model_dir)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a directory (expected a save_pretrained folder)")
    if not (folder / "config.json").is_file():
        raise ValueError(f"{folder}: no config.json; is this a save_pretrained folder?")
    if not (list(folder.glob("*.safetensors")) or (folder / "model.safetensors.index.json").is_file()):
        raise ValueError(f"{folder}: no *.safetensors weights (pickled .bin/.pt weights are not uploaded)")
    missing = sorted(m for m in _auto_map_modules(folder) if not (folder / m).is_file())
    if missing:
        raise ValueError(f"{folder}: auto_map refers to {missing}, which are not in the folder; "
                         "trust_remote_code=True loading would fail")
    if not (folder / "README.md").is_file():
        logger.warning("%s has no README.md: the model is pushed without a model card", folder)
    if not any((folder / name).is_file() for name in PROCESSOR_FILES):
        logger.warning("%s has no processor (%s): pipeline() on the pushed repo will find no feature extractor; "
                       "save it with processor.save_pretrained(folder)", folder, " or ".join(PROCESSOR_FILES))
    return folder


def _model_files(folder: Path) -> list[Path]:
    files = []
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and not any(fnmatch.fnmatch(relative, p) or fnmatch.fnmatch(path.name, p)
                                      for p in MODEL_IGNORE_PATTERNS):
            files.append(path)
    return files


def _push_folder(folder: Path, repo_id: str, token=None, private: bool | None = False, commit_message: str | None = None,
                 commit_description: str | None = None, revision: str | None = None, create_pr: bool = False,
                 tags: list[str] | None = None):
    """One commit of a checked model folder, its README.md card retargeted to the repo id; a CommitInfo."""
    from huggingface_hub import CommitOperationAdd

    from .card import retarget_card

    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model").repo_id
    operations = []
    for path in _model_files(folder):
        relative = path.relative_to(folder).as_posix()
        if relative == "README.md":
            card = retarget_card(path.read_text(encoding="utf-8"), repo_id)
            if tags:
                card = _add_tags(card, tags)
            operations.append(CommitOperationAdd(path_in_repo=relative, path_or_fileobj=card.encode("utf-8")))
        elif relative == "config.json":
            operations.append(CommitOperationAdd(path_in_repo=relative, path_or_fileobj=_public_config(path)))
        else:
            operations.append(CommitOperationAdd(path_in_repo=relative, path_or_fileobj=str(path)))
    return api.create_commit(repo_id, operations, commit_message=commit_message or f"Upload mirgan model from {folder.name}",
                             commit_description=commit_description, repo_type="model", revision=revision,
                             create_pr=create_pr)


def _public_config(path: Path) -> bytes | str:
    """config.json without the local folders the encoders were read from (their sub-configs'
    ``_name_or_path``): the file itself when it has none, else the rewritten bytes."""
    from .card import public_config_dict

    config = json.loads(path.read_text(encoding="utf-8"))
    public = public_config_dict(config)
    if public == config:
        return str(path)
    return (json.dumps(public, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _add_tags(card_text: str, tags: list[str]) -> str:
    from huggingface_hub import ModelCard

    card = ModelCard(card_text)
    card.data.tags = list(dict.fromkeys([*(card.data.tags or []), *tags]))
    return str(card)


def push_model(model_dir: str | Path, repo_id: str, token: str | None = None, private: bool = False,
               commit_message: str | None = None, revision: str | None = None, create_pr: bool = False) -> str:
    """Create ``repo_id`` if needed and upload a saved model folder in one commit; returns the commit URL.

    The folder's README.md is uploaded with its "How to use" code naming ``repo_id`` and config.json
    without local paths (``card.public_config_dict``); the local files are left as they are."""
    folder = check_model_folder(model_dir)
    info = _push_folder(folder, repo_id, token, private, commit_message, revision=revision, create_pr=create_pr)
    return info.pr_url or info.commit_url


def push_model_object(model, repo_id: str, *, processor=None, results: dict | None = None, commit_message: str | None = None,
                      commit_description: str | None = None, private: bool | None = None, token=None,
                      revision: str | None = None, create_pr: bool = False, max_shard_size="50GB",
                      tags: list[str] | str | None = None, **unused):
    """What ``MirganForEmotionClassification.push_to_hub`` does: save the model, its processor and its
    mirgan card into a temporary folder and push that folder in one commit. Returns the CommitInfo.

    processor: default, the processor saved in the folder the model was loaded from (``name_or_path``).
    The card: that folder's README.md when it is a mirgan card, else one written from ``results``
    (a ``results.json`` dict), else one from what the config knows (no metrics)."""
    from .card import basic_model_card, write_model_card

    if unused:
        logger.warning("push_to_hub: ignoring unsupported arguments %s", sorted(unused))
    source = Path(str(getattr(model, "name_or_path", "") or "")).expanduser()
    source = source if str(source) not in ("", ".") and source.is_dir() else None
    if processor is None and source is not None and any((source / n).is_file() for n in PROCESSOR_FILES):
        from transformers import AutoProcessor

        processor = AutoProcessor.from_pretrained(str(source))
    if processor is None:
        logger.warning("push_to_hub: no processor given and none saved beside the model; pass processor=...")
    with tempfile.TemporaryDirectory(prefix="mirgan-push-") as tmp:
        folder = Path(tmp) / repo_id.split("/")[-1]
        if getattr(model.config, "architectures", None) is None:
            model.config.architectures = [type(model).__name__]
        model.save_pretrained(folder, max_shard_size=max_shard_size)
        if processor is not None:
            processor.save_pretrained(folder)
        card_file = folder / "README.md"
        local_card = source / "README.md" if source is not None else None
        if results is not None:
            write_model_card(folder, results, repo_id=repo_id)
        elif local_card is not None and local_card.is_file() and "mirgan" in local_card.read_text(encoding="utf-8"):
            card_file.write_text(local_card.read_text(encoding="utf-8"), encoding="utf-8")
        else:
            card_file.write_text(basic_model_card(model.config, repo_id), encoding="utf-8")
        check_model_folder(folder)
        return _push_folder(folder, repo_id, token, private, commit_message, commit_description, revision, create_pr,
                            [tags] if isinstance(tags, str) else tags)


def _merge_cards(pushed_text: str, local_text: str) -> str:
    """The local card with the ``configs``/``dataset_info`` metadata ``push_to_hub`` generated."""
    from huggingface_hub import DatasetCard, DatasetCardData

    pushed, local = DatasetCard(pushed_text), DatasetCard(local_text)
    metadata = local.data.to_dict()
    generated = pushed.data.to_dict()
    for key in ("configs", "dataset_info"):
        if key in generated:
            metadata[key] = generated[key]
    local.data = DatasetCardData(**metadata)
    return str(local)


def push_dataset(folder: str | Path, repo_id: str, token: str | None = None, private: bool = False,
                 commit_message: str | None = None) -> str:
    """Push a ``save_to_disk`` folder (Dataset or DatasetDict) and its README.md card to a dataset repo.

    Returns the URL of the last commit. See the module docstring for the layout on the Hub."""
    import datasets
    from huggingface_hub import hf_hub_download

    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a directory (expected a datasets save_to_disk folder)")
    try:
        data = datasets.load_from_disk(str(folder))
    except FileNotFoundError as err:
        raise ValueError(f"{folder}: not a datasets save_to_disk folder ({err})") from err
    api = HfApi(token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="dataset")
    repo_id = repo_url.repo_id
    info = data.push_to_hub(repo_id, token=token, private=private,
                            commit_message=commit_message or f"Upload dataset from {folder.name}")
    commit_url = getattr(info, "commit_url", None) or str(repo_url)
    card_file = folder / "README.md"
    if not card_file.is_file():
        logger.warning("%s has no README.md: only the card datasets generates is pushed", folder)
        return commit_url
    pushed_path = hf_hub_download(repo_id, "README.md", repo_type="dataset", token=token,
                                  revision=getattr(info, "oid", None))
    card = _merge_cards(Path(pushed_path).read_text(encoding="utf-8"), card_file.read_text(encoding="utf-8"))
    info = api.upload_file(path_or_fileobj=card.encode("utf-8"), path_in_repo="README.md", repo_id=repo_id,
                           repo_type="dataset", commit_message="Add dataset card")
    return info.commit_url or commit_url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m modeling_mirgan.hub", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    model = sub.add_parser("push", help="push a saved model folder to a model repo")
    model.add_argument("--model", required=True, help="folder written by save_pretrained (+ processor, card)")
    data = sub.add_parser("push-dataset", help="push a datasets save_to_disk folder to a dataset repo")
    data.add_argument("--folder", required=True, help="folder written by Dataset(Dict).save_to_disk (+ README.md)")
    for p in (model, data):
        p.add_argument("--repo_id", required=True, help="namespace/name on the Hub")
        p.add_argument("--token", default=None, help="default: HF_TOKEN or the saved login")
        p.add_argument("--private", action="store_true")
        p.add_argument("--commit_message", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    quiet_http_logging()
    if not re.fullmatch(r"[\w.-]+/[\w.-]+|[\w.-]+", args.repo_id):
        parser.error(f"--repo_id {args.repo_id!r}: expected namespace/name")
    try:
        if args.command == "push":
            url = push_model(args.model, args.repo_id, args.token, args.private, args.commit_message)
        else:
            url = push_dataset(args.folder, args.repo_id, args.token, args.private, args.commit_message)
    except ValueError as err:
        parser.exit(2, f"error: {err}\n")
    print(url)


if __name__ == "__main__":
    main()
