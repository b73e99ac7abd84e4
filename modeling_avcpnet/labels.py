"""Label sets and label -> polarity maps of every dataset the project knows, in one light module.

Nothing here imports torch, transformers or any other package, so dataset preparation (``datasets_emotions``) can use
the constants without loading the model stack. The model files import it relatively (``from .labels import ...``),
so it is copied into Hub repositories with them.

Polarity is what the EP-CE loss compares (paper eq. 9-10): ``positive``, ``neutral`` or ``negative``. Every map below
is a default that a dataset builder (``label2polarity={...}``) or a model config can override. Where the map is a
choice, the source is given:

=============  ======================================================================================================
eMotions       the paper's map (arXiv 2311.17335): excitation, relaxation positive; neutral neutral; the rest negative.
CAER           neutral is a class; surprise neutral (not stated in the paper; surprise has no fixed valence).
MELD emotion   joy positive, neutral neutral, sadness/anger/fear/disgust negative; surprise is ambiguous
               in MELD, neutral by default (MELD's own sentiment labels split it both ways).
MELD sentiment the sentiment itself.
MER 2023       neutral is a class; surprise neutral (as CAER and MELD).
Ekman-6        NO class is neutral: the paper's table 9 note says gamma_neu "doesn't function on Ekman6", so
               surprise is positive: the paper names no side, so this follows the grouping commonly used to binarise
               Plutchik's eight emotions (joy, trust, anticipation, surprise positive). Override for the other reading.
VideoEmotion-8 no neutral class either; surprise positive for the same reasons and so that one label has one
               polarity in both datasets. anticipation and trust positive, the rest negative.
=============  ======================================================================================================
"""

POLARITIES = ("positive", "neutral", "negative")

# eMotions (the paper's section 3): the official index order; the release renames "Sad" to "Sadness".
EMOTIONS_LABELS = ["excitation", "fear", "neutral", "relaxation", "sadness", "tension"]
EMOTIONS_POLARITY = {
    "excitation": "positive",
    "fear": "negative",
    "neutral": "neutral",
    "relaxation": "positive",
    "sadness": "negative",
    "tension": "negative",
}

# MER 2023 (the challenge's labels, Lian et al. 2023).
MER2023_LABELS = ["neutral", "angry", "happy", "sad", "worried", "surprise"]
MER2023_POLARITY = {"neutral": "neutral", "angry": "negative", "happy": "positive", "sad": "negative",
                    "worried": "negative", "surprise": "neutral"}

# CAER (Lee et al., ICCV 2019): 7 classes.
CAER_LABELS = ["anger", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
CAER_POLARITY = {"anger": "negative", "disgust": "negative", "fear": "negative", "happy": "positive",
                 "neutral": "neutral", "sad": "negative", "surprise": "neutral"}

# MELD (Poria et al., ACL 2019): emotion and sentiment targets.
MELD_EMOTION_LABELS = ["neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust"]
MELD_SENTIMENT_LABELS = ["positive", "neutral", "negative"]
MELD_EMOTION_POLARITY = {"neutral": "neutral", "joy": "positive", "sadness": "negative", "anger": "negative",
                         "surprise": "neutral", "fear": "negative", "disgust": "negative"}
MELD_SENTIMENT_POLARITY = {label: label for label in MELD_SENTIMENT_LABELS}

# Ekman-6 (Xu et al., 2018) and VideoEmotion-8 (Jiang et al., AAAI 2014).
EKMAN6_LABELS = ["anger", "disgust", "fear", "joy", "sadness", "surprise"]
EKMAN6_POLARITY = {"anger": "negative", "disgust": "negative", "fear": "negative", "joy": "positive",
                   "sadness": "negative", "surprise": "positive"}  # no neutral class: table 9's note
VIDEOEMOTION8_LABELS = ["anger", "anticipation", "disgust", "fear", "joy", "sadness", "surprise", "trust"]
VIDEOEMOTION8_POLARITY = {"anger": "negative", "anticipation": "positive", "disgust": "negative",
                          "fear": "negative", "joy": "positive", "sadness": "negative", "surprise": "positive",
                          "trust": "positive"}
