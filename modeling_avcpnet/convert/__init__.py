"""Converters of published backbone weights into AV-CPNet checkpoints (never copied into Hub repositories):
`python -m modeling_avcpnet.convert.video_swin_weights` (Video Swin-T) and `python -m
modeling_avcpnet.convert.resnet_weights` (the audio ResNet)."""
