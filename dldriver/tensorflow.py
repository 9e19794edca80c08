"""`dldriver.tensorflow`: the TensorFlow API (dldriver.frameworks.tensorflow) under a short name."""
from dldriver.frameworks.tensorflow import *  # noqa: F401,F403
from dldriver.frameworks.tensorflow import __all__  # noqa: F401
