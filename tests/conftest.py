"""Shared test settings. Tests make all their media themselves; nothing is downloaded."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


class ListDataset(torch.utils.data.Dataset):
    """A map-style dataset over a list of ready examples (dicts of tensors), for a `Trainer` or `DataLoader`."""

    def __init__(self, examples):
        self.examples = examples

    def __len__(self):
        return len(self.examples)

    def __getitem__(self, index):
        return self.examples[index]


@pytest.fixture(scope="session")
def list_dataset():
    """`list_dataset(examples)` -> a `torch.utils.data.Dataset` over the list."""
    return ListDataset


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tiny AV-CPNet (`AVCPNetConfig.tiny()`, seed 0, eval mode) saved with its processor as a complete pipeline
    folder: {"folder": path, "model": model, "processor": processor}. Shared by the session: do not modify."""
    from modeling_avcpnet import AVCPNetConfig, AVCPNetForVideoClassification, AVCPNetProcessor
    from modeling_avcpnet.pipeline_avcpnet import save_for_pipeline

    torch.manual_seed(0)
    config = AVCPNetConfig.tiny()
    model = AVCPNetForVideoClassification(config).eval()
    processor = AVCPNetProcessor.from_model_config(config)
    folder = save_for_pipeline(model, processor, tmp_path_factory.mktemp("tiny_checkpoint") / "checkpoint")
    return {"folder": str(folder), "model": model, "processor": processor}
