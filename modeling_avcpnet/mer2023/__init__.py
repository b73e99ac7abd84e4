"""The parts of the MER 2023 system that are not the model (never copied into Hub repositories): the challenge
metric (`metrics`, used by the training task), decision-level fusion (`decision_fusion`), the face-crop stage
(`face_crop`) and the MER-NOISE training augmentation (`augmentation`). The model, its config, feature extractor,
processor and pipeline are the Hub files `*_mer2023.py` of `modeling_avcpnet/`."""
