"""Training curves: every line drawn is explained by the legend."""

import matplotlib

matplotlib.use("Agg")

from kdutils.analysis.plots import training_curves


def legend_labels(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def test_legend_names_every_run_and_both_styles():
    # validation accuracy only, as the sweep's students record it
    history = [{"loss": 1.0, "accuracy": 0.5, "val_accuracy": 0.6}] * 3
    fig = training_curves({"seed 0": history, "seed 1": history})
    assert legend_labels(fig) == ["seed 0", "seed 1", "training", "validation"]
    assert len(fig.axes[1].lines) == 4 and len(fig.axes[0].lines) == 2


def test_one_run_without_validation_names_only_its_style():
    fig = training_curves({"teacher": [{"loss": 1.0, "accuracy": 0.5}] * 2})
    assert legend_labels(fig) == ["training"]
