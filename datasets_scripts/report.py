"""The run report: confusion matrices, t-SNE of real vs generated features, loss and MI curves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.manifold import TSNE  # noqa: E402


def confusion(references, predictions, k: int) -> np.ndarray:
    matrix = np.zeros((k, k), int)
    for r, p in zip(references, predictions):
        matrix[r, p] += 1
    return matrix


def plot_confusion(matrix: np.ndarray, classes: list[str], title: str, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4 + 0.3 * len(classes), 3.5 + 0.3 * len(classes)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    for (i, j), v in np.ndenumerate(matrix):
        ax.text(j, i, str(v), ha="center", va="center", color="black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_report(folder: Path, results: dict, runs: list[dict], final_fit: dict, data, classes: list[str], model) -> None:
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
        plot_confusion(confusion(references, predictions, len(classes)), classes, f"{name}: all test folds", path)
        lines += [f"![confusion {name}]({path.name})", ""]

    # loss and MI curves of the first run
    curves = runs[0]["curves"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    stage1 = curves["stage1"]
    axes[0].plot([c["epoch"] for c in stage1], [c["loss"] for c in stage1])
    axes[0].set_title("stage 1 loss")
    axes[0].set_xlabel("epoch")
    for name, curve in curves.items():
        if name == "stage1":
            continue
        steps = [c["step"] for c in curve]
        axes[1].plot(steps, [c["info"] for c in curve], label=f"{name}: L_info")
        axes[1].plot(steps, [c["q_accuracy"] for c in curve], "--", label=f"{name}: Q-accuracy")
    axes[1].set_title("stage 2 (first fold)")
    axes[1].set_xlabel("step")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(folder / "curves.png", dpi=100)
    plt.close(fig)
    lines += ["![curves](curves.png)", ""]

    # t-SNE of real vs generated features of the final model
    generated = [m for m in final_fit["methods"].values() if m["synthetic"] is not None]
    if generated:
        fake, fake_y = generated[0]["synthetic"]
        d = model.config.projection_dim
        real = final_fit["h_all"].numpy()
        fake = fake[:, :d].numpy()
        n = min(len(fake), len(real))
        points = TSNE(n_components=2, init="pca", random_state=0, perplexity=min(30, (len(real) + n) // 4)).fit_transform(
            np.concatenate([real, fake[:n]]))
        fig, axes = plt.subplots(1, len(classes), figsize=(3 * len(classes), 3), squeeze=False)
        real_y = data.labels.numpy()
        for c, name in enumerate(classes):
            ax = axes[0, c]
            ax.scatter(*points[: len(real)][real_y == c].T, s=6, label="real")
            ax.scatter(*points[len(real):][fake_y.numpy()[:n] == c].T, s=6, marker="x", label="generated")
            ax.set_title(name)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[0, 0].legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / "tsne_real_vs_generated.png", dpi=100)
        plt.close(fig)
        lines += ["t-SNE of real and generated features per class (final model):", "", "![t-SNE](tsne_real_vs_generated.png)", ""]
    if results.get("mi"):
        lines += ["| generator | MI (bits) | Q-accuracy | diversity ratio | Fréchet distance |", "|---|---|---|---|---|"]
        for name, q in results["mi"].items():
            m = q["mean"]
            lines.append(f"| {name} | {m['mi_bits']:.3f} | {m['q_accuracy']:.3f} | {m['diversity_ratio']:.3f} | {m['frechet_distance']:.2f} |")
    (folder / "report.md").write_text("\n".join(lines) + "\n")
