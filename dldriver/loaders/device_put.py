"""Host batches onto JAX devices at a few microseconds of CPU each, as jax.device_put would put them.

jax.device_put spends ~50 us of Python per call (pytree flattening, avals, sharding checks, primitive
binding) before it reaches jaxlib's `batched_device_put`, and under a loaded 2-core machine that grows
to ~0.2 ms (measured with thread_time, the reading threads running): at 1 MiB batches it was a third of
the CPU the reads took. A batch stream repeats one shape and one placement, so `DevicePut` asks
jax.device_put once per (shape, dtype) and keeps what it did (the array's aval, sharding, committed flag,
and each addressable shard's device and index), then hands the next batches of that shape straight to
`batched_device_put` with the same arguments, inside jax.device_put's explicit-transfer scope (so
jax.transfer_guard treats them alike): ~5 us, the same array (zero copy of an aligned host array on the
CPU device, as before). Where that entry point is missing or refuses the call (another jaxlib),
where jax changed the dtype (x64 canonicalisation) or for what is not one numpy array (ragged samples come
as a list), it stays with jax.device_put.
"""
from __future__ import annotations

from collections import deque
from typing import Any, Callable, Iterable, Iterator, Optional

import numpy as np

__all__ = ["DevicePut", "put_ahead"]


def put_ahead(puts: Iterable, depth: int) -> Iterator:
    """The items of `puts` (a generator that puts each batch as it is asked for the next), each handed out
    once `depth` more have been put: a put only dispatches its transfer, so those ahead overlap with the
    caller's step, with no thread of their own."""
    ahead: deque = deque()  # put on the device, not yet handed out
    for item in puts:
        ahead.append(item)
        if len(ahead) > depth:
            yield ahead.popleft()
    while ahead:
        yield ahead.popleft()


def _jaxlib_put() -> Optional[tuple[Callable, Callable, Any]]:
    """(jaxlib's batched_device_put, what jax.device_put of a numpy array ends in; the context jax.device_put
    calls it in, which marks the transfer explicit for jax.transfer_guard; the host-to-device guard's
    setting), or None where any is absent."""
    try:
        from jax._src import config
        from jax._src.lib import xla_client
    except ImportError:
        return None
    found = (getattr(xla_client, "batched_device_put", None), getattr(config, "explicit_device_put_scope", None),
             getattr(config, "transfer_guard_host_to_device", None))
    return found if None not in found else None


class _Placement:
    """How jax.device_put placed one batch of a shape: what batched_device_put needs to do it again."""

    @classmethod
    def of(cls, array, batch: np.ndarray) -> Optional["_Placement"]:
        """The placement of `array` (jax.device_put of `batch`), or None where it cannot be repeated:
        jax changed the dtype, or its array lacks what this jax's arrays had."""
        try:
            return cls(array) if array.dtype == batch.dtype else None
        except AttributeError:
            return None

    def __init__(self, array):
        self.aval = array.aval
        self.sharding = array.sharding
        self.committed = array.committed
        shards = array.addressable_shards        # in the array's own buffer order
        self.devices = [s.device for s in shards]
        self.indices = [s.index for s in shards]
        self.whole = all(all(i == slice(None) for i in index) for index in self.indices)


class DevicePut:
    """`put(batch)`: the batch as jax.device_put(batch, sharding) gives it (sharding None: the default
    device, uncommitted), at jaxlib's cost after the first batch of each shape."""

    def __init__(self, sharding=None):
        self.sharding = sharding
        self._jaxlib = _jaxlib_put()
        self._placements: dict[tuple, Optional[_Placement]] = {}
        self.slow_puts = 0   # calls of jax.device_put (one per shape, or each batch where it must)

    def __getstate__(self):  # jaxlib's functions do not pickle: a copy finds them again
        return {"sharding": self.sharding}

    def __setstate__(self, state):
        self.__init__(state["sharding"])

    def put(self, batch: Any):
        if self._jaxlib is not None and type(batch) is np.ndarray:
            key = (batch.shape, batch.dtype)
            placement = self._placements.get(key, False)
            if placement:
                return self._again(placement, batch)
            if placement is False:  # the first batch of this shape: jax places it, and shows how
                return self._first(key, batch)
        return self._device_put(batch)

    def _first(self, key: tuple, batch: np.ndarray):
        import jax

        array = self._device_put(batch)
        self._placements[key] = _Placement.of(array, batch) if isinstance(array, jax.Array) else None
        return array

    def _again(self, placement: _Placement, batch: np.ndarray):
        put, explicit, guard = self._jaxlib
        shards = [batch] * len(placement.devices) if placement.whole else [batch[i] for i in placement.indices]
        try:
            if guard.value in (None, "allow"):  # no guard: the explicit scope (~1.5 us) changes nothing
                return put(placement.aval, placement.sharding, shards, placement.devices, placement.committed)
            with explicit():
                return put(placement.aval, placement.sharding, shards, placement.devices, placement.committed)
        except (TypeError, ValueError):  # another jaxlib's signature: jax.device_put from now on
            self._jaxlib = None
            return self._device_put(batch)

    def _device_put(self, batch):
        import jax

        self.slow_puts += 1
        return jax.device_put(batch, self.sharding)
