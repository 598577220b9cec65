"""The adversarial weight λ(t) over training: generator-only pretraining, then a constant, linear or cosine ramp.

SR GANs are usually started from a pretrained (supervised) generator and brought under adversarial
pressure gradually (ESRGAN, ESA OpenSR's SRGAN): a sudden full-weight adversarial term on a fresh critic
destabilises training. The schedule gives the weight of the adversarial term at a batch ``t`` (the
module's ``batches_seen`` counter, restored from checkpoints, so a resumed run continues on the same curve):

* ``t < pretrain_steps``: 0 (pretraining; the module also skips the critic);
* ``constant``: ``lambda_adv`` from ``lambda_ramp_start`` on (0 before);
* ``linear`` / ``cosine``: 0 until ``lambda_ramp_start``, rising to ``lambda_adv`` over ``lambda_ramp_steps``
  batches (progress ``p = (t - start) / steps`` clipped to [0, 1]; ``p`` or ``(1 - cos(pi p)) / 2``), then constant.

It is evaluated on the host from the host batch counter, so it adds no host-device synchronisation.
"""

from __future__ import annotations

import math
from typing import Literal, get_args

__all__ = ["LAMBDA_SCHEDULES", "AdversarialWeightSchedule", "LambdaScheduleName"]

#: The schedule names, the one definition of them.
LambdaScheduleName = Literal["constant", "linear", "cosine"]
LAMBDA_SCHEDULES: tuple[str, ...] = get_args(LambdaScheduleName)


class AdversarialWeightSchedule:
    """λ(t) = ``lambda_adv`` · ramp(t), 0 during pretraining; see the module docstring for the curves.

    Args take the names of the module arguments they come from, and ``prefix`` (e.g. ``"model."``) is put
    before those names in the errors, so a message names the setting to change.

    Raises:
        ValueError: an unknown schedule name, a negative weight or step count, a ramp with no length
            (``linear``/``cosine`` with ``lambda_ramp_steps < 1``) or a length given to ``constant``, or a ramp
            starting before pretraining ends (its beginning would be cut off and λ would jump).
    """

    def __init__(
        self,
        lambda_adv: float,
        lambda_schedule: LambdaScheduleName = "constant",
        lambda_ramp_start: int = 0,
        lambda_ramp_steps: int = 0,
        pretrain_steps: int = 0,
        prefix: str = "",
    ) -> None:
        if lambda_schedule not in LAMBDA_SCHEDULES:
            raise ValueError(f"{prefix}lambda_schedule={lambda_schedule!r} is not one of {', '.join(LAMBDA_SCHEDULES)}")
        if not lambda_adv >= 0:
            raise ValueError(f"{prefix}lambda_adv={lambda_adv!r} must be a weight >= 0")
        for name, value in (("lambda_ramp_start", lambda_ramp_start), ("lambda_ramp_steps", lambda_ramp_steps),
                            ("pretrain_steps", pretrain_steps)):
            if value < 0:
                raise ValueError(f"{prefix}{name}={value!r} must be a number of batches >= 0")
        if lambda_schedule == "constant" and lambda_ramp_steps != 0:
            raise ValueError(
                f"{prefix}lambda_ramp_steps={lambda_ramp_steps} needs a ramp: set {prefix}lambda_schedule to linear or "
                f"cosine, or lambda_ramp_steps to 0 (constant: lambda_adv from {prefix}lambda_ramp_start on)"
            )
        if lambda_schedule != "constant":
            if lambda_ramp_steps < 1:
                raise ValueError(
                    f"{prefix}lambda_ramp_steps={lambda_ramp_steps}: a {lambda_schedule} ramp ends before it starts; "
                    "expected the ramp length in batches, >= 1"
                )
            if lambda_ramp_start < pretrain_steps:
                raise ValueError(
                    f"{prefix}lambda_ramp_start={lambda_ramp_start} lies inside the pretraining "
                    f"({prefix}pretrain_steps={pretrain_steps}), which would cut the ramp short; expected "
                    f"{prefix}lambda_ramp_start >= {pretrain_steps} (the ramp counts from batch 0, not from the end of pretraining)"
                )
        self.lambda_adv = float(lambda_adv)
        self.lambda_schedule = lambda_schedule
        self.lambda_ramp_start = int(lambda_ramp_start)
        self.lambda_ramp_steps = int(lambda_ramp_steps)
        self.pretrain_steps = int(pretrain_steps)

    def pretraining(self, step: int) -> bool:
        """Whether batch ``step`` is in the generator-only pretraining (no critic update, λ = 0)."""
        return step < self.pretrain_steps

    def active(self, step: int) -> bool:
        """Whether the adversarial term is part of the generator loss at batch ``step`` (after pretraining
        and from the ramp's start on; its weight may still be 0 at the very first batch of a ramp)."""
        return step >= self.pretrain_steps and step >= self.lambda_ramp_start

    def value(self, step: int) -> float:
        """λ at batch ``step`` (0-based count of the batches trained before it)."""
        if not self.active(step):
            return 0.0
        if self.lambda_schedule == "constant" or step >= self.lambda_ramp_start + self.lambda_ramp_steps:
            return self.lambda_adv
        progress = (step - self.lambda_ramp_start) / self.lambda_ramp_steps
        if self.lambda_schedule == "cosine":
            progress = 0.5 * (1.0 - math.cos(math.pi * progress))
        return self.lambda_adv * progress

    @property
    def varies(self) -> bool:
        """False when λ is ``lambda_adv`` at every batch (the default): then there is nothing to log."""
        return self.lambda_schedule != "constant" or self.lambda_ramp_start > 0 or self.pretrain_steps > 0

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(lambda_adv={self.lambda_adv:g}, lambda_schedule={self.lambda_schedule!r}, "
                f"lambda_ramp_start={self.lambda_ramp_start}, lambda_ramp_steps={self.lambda_ramp_steps}, "
                f"pretrain_steps={self.pretrain_steps})")
