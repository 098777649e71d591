"""The few figure types the book reuses. Each returns the matplotlib Figure it drew."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D

from kdutils.analysis.stats import RATE, error_bar, summarize

sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
WIDTH = 7.5  # inches: the book's text width at 100 dpi and more
# Okabe and Ito's colour-blind-safe colours, most distinct first: seaborn's "colorblind" palette
# has two near-identical oranges (C1, C3). A chapter with many series sets it with
# `sns.set_palette(DISTINCT)`.
DISTINCT = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#000000", "#D55E00", "#F0E442")


def _softmax(z: np.ndarray, temperature: float) -> np.ndarray:
    z = np.asarray(z, dtype=float) / temperature
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def temperature_softmax(logits, temperatures=(1, 2, 5, 10), class_names=None) -> plt.Figure:
    """softmax(z / T) of one logit vector for several T, as grouped bars."""
    logits = np.asarray(logits, dtype=float)
    names = class_names or [str(i) for i in range(len(logits))]
    rows = [
        {"class": names[i], "T": f"T = {t:g}", "probability": p}
        for t in temperatures
        for i, p in enumerate(_softmax(logits, t))
    ]
    fig, ax = plt.subplots(figsize=(WIDTH, 3.2))
    sns.barplot(pd.DataFrame(rows), x="class", y="probability", hue="T", ax=ax)
    ax.set(xlabel="class", ylabel="softmax(z / T)", ylim=(0, 1))
    ax.legend(title="temperature", ncols=len(temperatures), loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig


def image_grid(images, labels, class_names, per_class: int = 8, flipped=None) -> plt.Figure:
    """`per_class` example images of each class, one row per class. Flipped labels in red."""
    num_classes = len(class_names)
    fig, axes = plt.subplots(
        num_classes, per_class, figsize=(per_class * 0.7, num_classes * 0.75), squeeze=False
    )
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)[:per_class]
        for j, ax in enumerate(axes[c]):
            ax.set_axis_off()
            if j >= len(idx):
                continue
            image = images[idx[j]]
            ax.imshow(image.squeeze(), cmap="gray_r" if image.shape[-1] == 1 else None)
            if flipped is not None:
                ax.set_title(f"{flipped[idx[j]]}→{c}", fontsize=7, color="tab:red", pad=1)
        axes[c][0].text(
            -0.3,
            0.5,
            class_names[c],
            transform=axes[c][0].transAxes,
            ha="right",
            va="center",
            fontsize=8,
        )
    fig.subplots_adjust(wspace=0.05, hspace=0.3 if flipped is not None else 0.05, left=0.12)
    return fig


def target_comparison(
    probabilities: dict[str, np.ndarray], class_names, image=None, image_title: str = ""
) -> plt.Figure:
    """Side-by-side bars (log scale) of several target distributions for one example, such as
    its one-hot hard target and a teacher's soft targets; the example's image on the right."""
    rows = [
        {"class": class_names[i], "target": name, "probability": p}
        for name, probs in probabilities.items()
        for i, p in enumerate(probs)
    ]
    fig, ax = plt.subplots(figsize=(WIDTH, 3.2))
    sns.barplot(pd.DataFrame(rows), x="class", y="probability", hue="target", ax=ax)
    ax.set(xlabel="class", ylabel="target probability", yscale="log", ylim=(1e-6, 1.5))
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.25),
        ncols=len(probabilities),
        fontsize="small",
        frameon=False,
    )
    fig.subplots_adjust(left=0.09, right=0.8 if image is not None else 0.98, bottom=0.32, top=0.92)
    if image is not None:
        image_ax = fig.add_axes([0.82, 0.32, 0.17, 0.6])
        image_ax.imshow(image.squeeze(), cmap="gray_r" if image.shape[-1] == 1 else None)
        image_ax.set(xticks=[], yticks=[])
        image_ax.set_title(image_title, fontsize=9)
    return fig


def training_curves(histories: dict[str, list[dict]], metrics=("loss", "accuracy")) -> plt.Figure:
    """Per-epoch training (circles, solid) and validation (squares, dashed) curves, one colour
    per labelled run, with one legend under the panels: the runs' colours, then the styles."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(WIDTH, 3.2), squeeze=False)
    validated = False
    for ax, metric in zip(axes[0], metrics, strict=True):
        for i, history in enumerate(histories.values()):
            epochs = np.arange(1, len(history) + 1)
            style = {"color": f"C{i % 10}", "ms": 4}
            ax.plot(epochs, [h[metric] for h in history], "o-", **style)
            if f"val_{metric}" in history[0]:
                values = [h[f"val_{metric}"] for h in history]
                ax.plot(epochs, values, "s--", **style)
                validated = True
        ax.set(xlabel="epoch", ylabel=metric)
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        if len(epochs) == 1:
            ax.set_xticks([1])
    runs = [Line2D([], [], color=f"C{i % 10}", label=label) for i, label in enumerate(histories)]
    styles = [Line2D([], [], color="grey", marker="o", label="training")]
    if validated:
        styles.append(Line2D([], [], color="grey", marker="s", ls="--", label="validation"))
    fig.tight_layout()
    handles = runs + styles if len(runs) > 1 else styles
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncols=min(len(handles), 6),
        fontsize="small",
    )
    return fig


def learning_curves(records: list[dict], title: str = "") -> plt.Figure:
    """Training loss and validation accuracy of a run per seed."""
    fig = training_curves({f"seed {r['config']['seed']}": r["history"] for r in records})
    if title:
        fig.suptitle(title, y=1.02)
    return fig


def accuracy_vs_alpha(
    table: pd.DataFrame,
    value: str = "test_accuracy",
    hue: str = "epochs",
    references: dict[str, dict] | None = None,
    ylabel: str = "test accuracy",
    hue_title: str = "epoch budget",
) -> plt.Figure:
    """Mean over seeds of `value` against alpha, one line per `hue`, with 95% CI bars.

    `references` maps a label to a `stats.mean_ci` summary drawn as a line with a CI band.
    Every `value` here is a share of examples, so its intervals are cut to [0, 1].
    """
    summary = summarize(table, [hue, "alpha"], value, bounds=RATE)
    fig, ax = plt.subplots(figsize=(WIDTH, 4.2))
    levels = sorted(summary[hue].unique())
    for i, level in enumerate(levels):
        part = summary[summary[hue] == level]
        ax.errorbar(
            part["alpha"],
            part["mean"],
            yerr=error_bar(part.to_dict("records")),
            marker="o",
            ms=4,
            capsize=3,
            color=f"C{i}",
            label=f"{level:g}",
        )
    for j, (label, s) in enumerate((references or {}).items()):
        color = ("black", "dimgray", "darkgray")[j % 3]  # apart from every budget's colour
        ax.axhline(s["mean"], color=color, ls=":", label=label)
        if not np.isnan(s["half_width"]):
            ax.axhspan(s["low"], s["high"], color=color, alpha=0.15)
    low, high = ax.get_ylim()
    ax.set_ylim(max(low, 0.0), min(high, 1.0))
    ax.set(xlabel="α (weight on the hard labels)", ylabel=ylabel, xticks=np.linspace(0, 1, 11))
    # Outside the axes, so that it covers no point or bar.
    ax.legend(title=hue_title, fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def benchmark_costs(result: dict) -> plt.Figure:
    """Seconds per epoch against the number of alphas (sequential vs fused) and data size.

    Sequential cost is N times the measured single cached-logits student; fused is measured.
    """
    rows = {r["mode"]: r for r in result["rows"]}
    fused = sorted(result["students_scan"], key=lambda r: r["students"])
    n = np.array([r["students"] for r in fused])
    fig, (left, right) = plt.subplots(1, 2, figsize=(WIDTH, 3.4))
    for mode, label in (("per_step", "per-step teacher"), ("cached_spe", "cached logits")):
        left.plot(n, n * rows[mode]["seconds_per_epoch"], "o--", label=f"sequential, {label}")
    left.plot(n, [r["seconds_per_epoch"] for r in fused], "o-", label="fused, cached logits")
    left.set(xlabel="alphas (students)", ylabel="seconds per epoch", yscale="log")
    left.set_xticks(n)
    left.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.3))
    for mode, label in (("cached_spe", "one student"), ("fused_spe", "fused students")):
        scan = sorted(
            (r for r in result["images_scan"] if r["mode"] == mode), key=lambda r: r["images"]
        )
        sizes = [r["images"] for r in scan]
        right.plot(sizes, [r["seconds_per_epoch"] for r in scan], "o-", label=label)
    right.set(xlabel="training images", ylabel="seconds per epoch", xscale="log", yscale="log")
    right.set_xticks(sizes, [f"{s:,}" for s in sizes], minor=False)
    right.xaxis.set_minor_formatter(plt.NullFormatter())
    right.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.3))
    fig.tight_layout()
    return fig
