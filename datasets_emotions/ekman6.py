"""Ekman-6 (Xu et al., 2018): 1,637 web videos of 6 basic emotions, in the layouts of ``split_lists`` (CTEN's
release: lowercase class folders and videos renamed to numbers, ``anger/1000``).

Columns: the core ``video`` (video file or frames folder), ``audio`` (mp3 or ``""``), ``label``, ``polarity``,
``video_id`` (``Class/video_id`` as listed). Polarity: ``modeling_avcpnet.labels.EKMAN6_POLARITY``; no class is
neutral (the paper's table 9 note), surprise is positive by default (override with
``label2polarity={"surprise": "negative"}``).
"""

import datasets

from modeling_avcpnet.labels import EKMAN6_LABELS, EKMAN6_POLARITY

from .split_lists import SplitListBuilder


class Ekman6Builder(SplitListBuilder):
    LABELS = tuple(EKMAN6_LABELS)
    LABEL_ALIASES = {"angry": "anger", "sad": "sadness", "happy": "joy", "happiness": "joy"}
    DEFAULT_POLARITY = EKMAN6_POLARITY
    LAYOUT = SplitListBuilder.layout_text("Anger, Disgust, Fear, Joy, Sadness, Surprise; any case")

    def _info(self):
        return datasets.DatasetInfo(description="Ekman-6: user videos of six basic emotions.",
                                    features=self.core_features())
