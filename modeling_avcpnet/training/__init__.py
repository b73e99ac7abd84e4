"""The training library behind `train_hf.py` (not copied into Hub repositories).

One concern per module:
- `arguments`: `ModelArguments`, `DataArguments`, `parse_arguments` (command line and/or YAML/JSON file);
- `data`: the dataset's splits and label/polarity maps (and MER 2023's cached deep features);
- `dataloader`: what the Trainer's DataLoader is made of for raw clips (seeded augmentation for exact resume, an
  epoch-keyed sampler, a collate function that leaves out clips that failed to decode);
- `model_setup`: fresh model or checkpoint with the dataset's labels, classification-head re-initialisation,
  processor;
- `tasks`: what differs between model types (loss terms, predictions, metrics, report, card);
- `trainer`: `EPCETrainer` (exact gradient accumulation, per-term loss logs, reports, processor saving);
- `metrics`, `reports`, `model_card`: evaluation numbers, files and the Hub card.
"""

from .arguments import DataArguments, ModelArguments, parse_arguments
from .data import dataset_label_maps, load_splits
from .metrics import classification_metrics, compute_metrics_fn, format_results_table
from .model_setup import build_config_and_model, build_processor, classification_heads
from .tasks import TASKS, TrainingTask, get_task
from .trainer import EPCETrainer

__all__ = [
    "DataArguments",
    "EPCETrainer",
    "ModelArguments",
    "TASKS",
    "TrainingTask",
    "build_config_and_model",
    "build_processor",
    "classification_heads",
    "classification_metrics",
    "compute_metrics_fn",
    "dataset_label_maps",
    "format_results_table",
    "get_task",
    "load_splits",
    "parse_arguments",
]
