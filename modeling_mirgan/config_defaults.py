"""The allowed values and defaults of ``MirganConfig``'s settings, importable without torch or
transformers: ``MirganConfig`` takes its defaults from here, and the command-line help shows them
(``train.py --help`` then loads no model code)."""

LAYER_POOLINGS = ("weighted", "mean", "last")
MODES = ("unimodal", "multimodal")
ADVERSARIAL_LOSSES = ("nonsaturating", "hinge", "wgan-gp")
GENERATOR_CONDITIONINGS = ("concat", "film")
TEXT_CONDITIONS = ("auto", "on", "off")
PAIRED_TEXTS = ("real", "generated")
INFO_TARGETS = ("max", "real", "held_out", "match_held_out")
SAMPLE_SELECTIONS = ("q_confidence", "discriminator")  # how sample_features keeps one of several candidates

CONFIG_DEFAULTS = {
    "audio_encoder_name": "openai/whisper-base",
    "text_encoder_name": "sentence-transformers/all-MiniLM-L6-v2",
    "layer_pooling": "weighted",
    "projection_dim": 256,
    "classifier_dropout": 0.2,
    "mode": "unimodal",
    "noise_dim": 64,
    "generator_noise_scale": 1.0,
    "generator_hidden_sizes": (512, 512),
    "generator_rank": 32,
    "generator_conditioning": "film",
    "generator_text_condition": "auto",
    "paired_text": "real",
    "discriminator_hidden_sizes": (256,),
    "adversarial_loss": "nonsaturating",
    "lambda_mmd": 30.0,
    "lambda_diversity": 0.0,
    "lambda_con": 0.1,
    "lambda_im": 0.1,
    "lambda_info": 1.0,
    "info_target": "match_held_out",
    "lambda_text_info": 0.1,
    "temperature_init": 0.07,
}
