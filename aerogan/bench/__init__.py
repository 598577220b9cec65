"""Benchmarks of aerogan: ``python -m aerogan.bench --out results.json`` or ``aerogan bench``.

Entry points: :func:`aerogan.bench.suite.run` (returns the results) and :func:`aerogan.bench.suite.main`.

1. training-step overhead of the aerogan LightningModule + Trainer against a plain PyTorch loop doing the
   same computation (:mod:`aerogan.bench.step`);
2. overhead of the monitoring callbacks at their default cadence (:mod:`aerogan.bench.monitoring`);
   both run fits through :mod:`aerogan.bench.fit`, on the pieces of :mod:`aerogan.bench.common`;
3. tiled scene prediction throughput against the raw generator forward, and peak memory against scene
   size (:mod:`aerogan.bench.predict`);
4. scaling of step and validation time with batch size, patch size and validation samples
   (:mod:`aerogan.bench.scaling`);
5. whole Sentinel-2 products (T2 + S6): peak RSS and s per output Mpx at 1x, 4x and 16x the area against the raw
   generator forward on the same tiles (:mod:`aerogan.bench.product`; ``--only product``, part of the GPU script).

On a GPU: ``python -m aerogan.bench --device cuda --out gpu.json`` (or ``python -m aerogan.bench.gpu``):
bf16 autocast and channels_last measured with and without. Every comparison is a ratio measured side by
side in one process (alternating blocks), so it holds on a busy machine where absolute times do not.
"""

__all__: list[str] = []  # the entry points live in aerogan.bench.suite (run, main); nothing imported here
