"""The run report: confusion matrices, real vs generated features per class, training curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion(references, predictions, k: int) -> np.ndarray:
    matrix = np.zeros((k, k), int)
    for r, p in zip(references, predictions):
        matrix[r, p] += 1
    return matrix


def plot_confusion(matrix: np.ndarray, classes: list[str], title: str, path: Path) -> None:
    """Counts with each row's recall; UA (mean recall) in the title."""
    recall = matrix.diagonal() / np.maximum(matrix.sum(1), 1)
    fig, ax = plt.subplots(figsize=(4.5 + 0.3 * len(classes), 3.8 + 0.3 * len(classes)))
    ax.imshow(matrix / np.maximum(matrix.sum(1, keepdims=True), 1), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), [f"{c} (recall {r:.2f})" for c, r in zip(classes, recall)])
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", color="black")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"{title}\nUA {recall.mean():.3f}, WA {matrix.diagonal().sum() / max(matrix.sum(), 1):.3f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curves(run: dict, path: Path) -> None:
    """One panel per curve of one fold run: stage-1 loss (and validation UA), G/D losses, L_info, Q-accuracy."""
    curves = run["curves"]
    gans = {k: v for k, v in curves.items() if k not in ("stage1", "stage1_candidates") and v}
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    stage1 = curves["stage1"]
    axes[0].plot([c["epoch"] for c in stage1], [c["loss"] for c in stage1], label="training loss L_1")
    checks = [c for c in stage1 if "validation_ua" in c]
    if checks:
        twin = axes[0].twinx()
        twin.plot([c["epoch"] for c in checks], [c["validation_ua"] for c in checks], "o-", color="tab:orange", ms=3, label="validation UA")
        twin.set_ylabel("validation UA")
        twin.legend(fontsize=7, loc="center right")
    axes[0].set(title=f"stage 1 (selection fit, {run['fold']})", xlabel="epoch", ylabel="loss")
    axes[0].legend(fontsize=7, loc="upper right")
    for name, curve in gans.items():
        steps = [c["step"] for c in curve]
        axes[1].plot(steps, [c["d_loss"] for c in curve], label=f"{name}: D loss")
        axes[1].plot(steps, [c["g_adv"] for c in curve], "--", label=f"{name}: G adversarial loss")
        axes[2].plot(steps, [c["info"] for c in curve], label=name)
        axes[3].plot(steps, [c["q_accuracy"] for c in curve], label=name)
    axes[1].set(title=f"stage 2 GAN losses ({run['fold']})", xlabel="GAN step", ylabel="loss")
    axes[2].set(title=f"stage 2 L_info ({run['fold']})", xlabel="GAN step", ylabel="L_info (nats)")
    axes[3].set(title=f"stage 2 Q-accuracy ({run['fold']})", xlabel="GAN step", ylabel="share of batch", ylim=(0, 1.05))
    for ax in axes[1:]:
        if gans:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_real_vs_generated(real, real_y, fake, fake_y, classes, c2st_by_class: dict, path: Path) -> None:
    """t-SNE of real and generated features of each class in one shared embedding per class."""
    from sklearn.manifold import TSNE

    fig, axes = plt.subplots(1, len(classes), figsize=(3.3 * len(classes), 3.4), squeeze=False)
    for c, name in enumerate(classes):
        r, f = real[real_y == c], fake[fake_y == c]
        ax = axes[0, c]
        if len(r) + len(f) > 5:
            points = TSNE(n_components=2, init="pca", random_state=0,
                          perplexity=max(2, min(30, (len(r) + len(f)) // 4))).fit_transform(np.concatenate([r, f]))
            ax.scatter(*points[: len(r)].T, s=7, label="real (training rows)")
            ax.scatter(*points[len(r):].T, s=7, marker="x", label="generated")
        score = c2st_by_class.get(c)
        ax.set_title(f"{name}: C2ST {score:.2f}" if score is not None else name, fontsize=9)
        ax.set_xlabel("t-SNE 1")
        ax.set_ylabel("t-SNE 2")
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("final model: real vs generated h per class (C2ST: fold mean vs held-out speakers; 0.5 = indistinguishable)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(folder: Path, results: dict, runs: list[dict], final_fit, data, classes: list[str], model, final_method: str) -> None:
    import torch

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"# mirgan run report: {results['dataset']} ({results['mode']})", "", results["protocol"]["description"], "",
             "| method | UA | WA | macro-F1 |", "|---|---|---|---|"]
    for name, m in results["methods"].items():
        lines.append(f"| {name} | {m['ua_mean']:.3f} ± {m['ua_std']:.3f} | {m['wa_mean']:.3f} ± {m['wa_std']:.3f} | {m['f1_mean']:.3f} ± {m['f1_std']:.3f} |")
    lines.append("")
    references = [r for run in runs for r in run["references"]]
    for name in results["methods"]:
        predictions = [p for run in runs for p in run["methods"][name]["predictions"]]
        path = folder / f"confusion_{name}.png"
        plot_confusion(confusion(references, predictions, len(classes)), classes, f"{name}: all held-out folds", path)
        lines += [f"![confusion {name}]({path.name})", ""]
    plot_curves(runs[0], folder / "curves.png")
    lines += ["![curves](curves.png)", ""]
    entry = final_fit.methods.get(final_method, {})
    if entry.get("gan"):
        rows = torch.arange(len(data))
        h = final_fit.h_all.numpy()
        labels = data.labels
        fake = model.sample_features(labels, final_fit.u_all if model.generator.uses_text else None, seed=0)
        per_fold = results.get("mi", {}).get(final_method, {}).get("per_fold", [])
        c2st = {c: float(np.nanmean([q["per_class"][str(c)]["c2st"] for q in per_fold if str(c) in q.get("per_class", {})]))
                for c in range(len(classes)) if any(str(c) in q.get("per_class", {}) for q in per_fold)}
        plot_real_vs_generated(h[rows], labels.numpy(), fake[:, : model.config.projection_dim].numpy(), labels.numpy(),
                               classes, c2st, folder / "tsne_real_vs_generated.png")
        lines += ["Real and generated features per class (final model):", "", "![t-SNE](tsne_real_vs_generated.png)", ""]
    if results.get("mi"):
        keys = ("c2st", "c2st_floor", "precision", "recall", "frechet_ratio", "nn_ratio", "memorisation", "q_accuracy", "real_accuracy", "mi_bits")
        lines += ["Generator realism against held-out validation speakers (mean over folds):", "",
                  "| generator | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name, q in results["mi"].items():
            lines.append(f"| {name} | " + " | ".join(f"{q['mean'].get(k, float('nan')):.3f}" for k in keys) + " |")
    (folder / "report.md").write_text("\n".join(lines) + "\n")
