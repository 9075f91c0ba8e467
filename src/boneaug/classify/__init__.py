"""boneaug.classify: lesion classifiers, training strategies, evaluation and statistics.

Public face:
- `classify(manifest, strategy, out_dir, config=, bone=, extra=, ratio=, seed=)` -> one
  trained classifier and its predictions on the real test split (`ClassifyReport`);
- `ClassifierConfig`, `STRATEGIES`, `select` (which rows a strategy trains on),
  `build_training_set`, `train_classifier`, `predict`, `load_inputs`;
- metrics (`roc_auc`, `pr_auc`, `sensitivity_at_specificity`, `bootstrap_ci`,
  `delong_test`, `seed_image_bootstrap`) and `summarise` / `format_table` over many runs'
  predictions; `compare` / `goal_check` / `format_goal` for the benchmark's goal.
"""

from boneaug.classify.evaluate import (
    compare,
    format_goal,
    format_table,
    goal_check,
    read_predictions,
    summarise,
)
from boneaug.classify.inputs import classifier_input, load_inputs
from boneaug.classify.metrics import (
    bootstrap_ci,
    delong_test,
    pr_auc,
    roc_auc,
    roc_curve,
    seed_image_bootstrap,
    sensitivity_at_specificity,
)
from boneaug.classify.model import ARCHS, build_classifier
from boneaug.classify.run import ClassifyReport, build_training_set, classify, score_metrics
from boneaug.classify.strategies import STRATEGIES, USES_EXTRA, USES_RATIO, select
from boneaug.classify.train import (
    ClassifierConfig,
    TrainedClassifier,
    TrainingSet,
    predict,
    train_classifier,
)

__all__ = [
    "ARCHS", "STRATEGIES", "USES_EXTRA", "USES_RATIO", "ClassifierConfig", "ClassifyReport",
    "TrainedClassifier", "TrainingSet", "bootstrap_ci", "build_classifier",
    "build_training_set", "classifier_input", "classify", "compare", "delong_test",
    "format_goal", "format_table", "goal_check",
    "load_inputs", "pr_auc", "predict", "read_predictions", "roc_auc", "roc_curve", "select",
    "score_metrics", "seed_image_bootstrap", "sensitivity_at_specificity", "summarise",
    "train_classifier",
]
