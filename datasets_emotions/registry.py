"""Name -> builder registry behind ``datasets_emotions.load_dataset``.

Entries are ``"module:Class"`` strings imported on first use, so adding a dataset is a one-line edit here (its
builder module lives next to this file and subclasses ``builder_base.EmotionDatasetBuilder``).
"""

BUILDERS = {
    "emotions": "datasets_emotions.emotions:EmotionsBuilder",
    "caer": "datasets_emotions.caer:CaerBuilder",
    "meld": "datasets_emotions.meld:MeldBuilder",
    "ekman6": "datasets_emotions.ekman6:Ekman6Builder",
    "videoemotion8": "datasets_emotions.videoemotion8:VideoEmotion8Builder",
    "sample": "datasets_emotions.sample:SampleBuilder",
    "mer2023": "datasets_emotions.mer2023:Mer2023Builder",
}


def get_builder_class(name: str):
    """The builder class registered as ``name``; an unknown name raises a ``ValueError`` listing the valid ones."""
    import importlib

    if name not in BUILDERS:
        raise ValueError(f"Unknown dataset {name!r}. Valid names: {', '.join(sorted(BUILDERS))}.")
    module_name, class_name = BUILDERS[name].split(":")
    return getattr(importlib.import_module(module_name), class_name)
