"""`dldriver.torch`: the PyTorch API (dldriver.frameworks.pytorch) under a short name."""
from dldriver.frameworks.pytorch import *  # noqa: F401,F403
from dldriver.frameworks.pytorch import __all__  # noqa: F401
