"""Metric tag names: the one spelling shared by the modules that log them and every reader.

:class:`aerogan.SuperResolution` and :class:`aerogan.AdversarialRegularization` log their metrics under these
names; ``aerogan report``, the study, trust and compare runners and ``aerogan sharpen`` read them back through
the same constants and :func:`tag`, so a writer and a reader cannot disagree on a spelling. The monitors of
``callbacks/`` have their own module (:mod:`callbacks.tags`).

A tag is ``<stage>/<metric>[_bicubic][/<band>]``: ``val/rmse``, ``test/rmse_bicubic``, ``test/rmse/B05``,
``test/consistency/rmse``, ``test/correctness/hallucination``.
"""

from __future__ import annotations

#: Stages.
TRAIN = "train"
VAL = "val"
TEST = "test"

#: Suffix of the bicubic baseline's twin of a metric.
BICUBIC = "_bicubic"

#: Losses (every stage).
LOSS = "loss"
#: The generator's whole loss (logged on diagnostic steps) and the adversarial weight of a varying schedule.
GENERATOR_LOSS = "generator_loss"
LAMBDA_ADV = "lambda_adv"

#: Image metrics against the truth (``aerogan.metrics.image``).
PSNR = "psnr"
PSNR_GAIN = "psnr_gain"
SSIM = "ssim"
RMSE = "rmse"
SRE = "sre"
ERGAS = "ergas"

#: The "trustworthy pixels" metrics (consistency with the input, synthesis, per-pixel correctness).
CONSISTENCY = "consistency"
CONSISTENCY_RMSE = "consistency/rmse"
CONSISTENCY_L1 = "consistency/l1"
CONSISTENCY_SAM = "consistency/sam"
CONSISTENCY_SHIFT = "consistency/shift"
SYNTHESIS_L1 = "synthesis/l1"
CORRECTNESS = "correctness"
IMPROVEMENT = "correctness/improvement"
OMISSION = "correctness/omission"
HALLUCINATION = "correctness/hallucination"


def tag(stage: str, metric: str, *, bicubic: bool = False, band: str | None = None) -> str:
    """``<stage>/<metric>``, with ``_bicubic`` for the baseline's twin and ``/<band>`` for one band's value."""
    name = f"{stage}/{metric}{BICUBIC if bicubic else ''}"
    return name if band is None else f"{name}/{band}"


#: Tags read by the runners and the report.
VAL_RMSE = tag(VAL, RMSE)
VAL_PSNR = tag(VAL, PSNR)
VAL_LOSS = tag(VAL, LOSS)
TRAIN_LOSS = tag(TRAIN, LOSS)
TEST_RMSE = tag(TEST, RMSE)
TEST_RMSE_BICUBIC = tag(TEST, RMSE, bicubic=True)
TEST_SRE = tag(TEST, SRE)
TEST_SRE_BICUBIC = tag(TEST, SRE, bicubic=True)
TEST_CONSISTENCY_RMSE = tag(TEST, CONSISTENCY_RMSE)
TEST_HALLUCINATION = tag(TEST, HALLUCINATION)
