"""aerogan: adversarially regularized super-resolution for remote sensing, and the instruments to watch it."""

from aerogan.adversarial import AdversarialRegularization
from aerogan.super_resolution import SuperResolution

__all__ = ["AdversarialRegularization", "SuperResolution"]
__version__ = "0.1.0"
