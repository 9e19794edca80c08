"""`dldriver.jax`: the JAX API (dldriver.frameworks.jax) under a short name."""
from dldriver.frameworks.jax import *  # noqa: F401,F403
from dldriver.frameworks.jax import __all__  # noqa: F401
