"""Blending one scene's overlapping tiles, strip by strip, into finished output rows.

Tiles come strip by strip (rows of tiles, see :class:`aerogan.prediction.plan.TileGrid`); each is
weighted by :func:`aerogan.prediction.plan.blend_weights` and accumulated into a strip buffer
(``sum(w * tile) / sum(w)``). When a strip is complete, the rows no later strip can reach are final
and handed to the sink. Memory: one strip (tile rows x scene width), whatever the scene height.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from aerogan.prediction.plan import TileGrid


class SceneAssembler:
    """Blends one scene's tiles strip by strip and hands finished rows to ``write(row0, data, valid)``.

    Strips must arrive in order (tiles within a strip in any order); only strips in ``owned`` are
    written. Buffers: the current strip's weighted sum, weight sum and validity (output pixels).
    """

    def __init__(self, grid: TileGrid, scale: int, owned: set[int], write: Callable[[int, np.ndarray, np.ndarray], None]) -> None:
        self.grid = grid
        self.scale = scale
        self.owned = owned
        self.write = write
        self.strip: int | None = None
        self.received = 0
        self.origin = 0
        self.acc: np.ndarray | None = None
        self.wsum: np.ndarray | None = None
        self.valid: np.ndarray | None = None
        self._col_w = [grid.col_weights(i, scale) for i in range(len(grid.col_starts))]

    def _start(self, strip: int, channels: int) -> None:
        g, s = self.grid, self.scale
        if self.strip is not None and strip != self.strip + 1:
            raise RuntimeError(f"strips arrived out of order: {strip} after {self.strip}")
        origin = g.row_starts[strip] * s
        rows, width = g.tile_h * s, g.width * s
        if self.acc is None or self.acc.shape[0] != channels:
            self.acc = np.zeros((channels, rows, width), dtype=np.float32)
            self.wsum = np.zeros((rows, width), dtype=np.float32)
            self.valid = np.zeros((rows, width), dtype=bool)
        else:  # reuse the strip buffers: move up the partial sums of rows the last strip did not finish
            shift = origin - self.origin
            keep = rows - shift if shift < rows else 0
            for buf in (self.acc[:], self.wsum[None], self.valid[None]):
                if keep > 0:
                    buf[:, :keep] = buf[:, shift:].copy() if shift < keep else buf[:, shift:]
                buf[:, max(keep, 0):] = 0
        self.origin = origin
        self.strip = strip
        self.received = 0

    def add(self, strip: int, first: int, pred: np.ndarray, valid: np.ndarray) -> bool:
        """Add tiles ``first, first+1, ...`` of ``strip``: ``pred`` (B, C, th*s, tw*s), ``valid`` (B, th, tw).

        Returns True when the strip is complete (and its finished rows were written).
        """
        g, s = self.grid, self.scale
        th, tw = g.tile_h * s, g.tile_w * s
        if pred.shape[-2:] != (th, tw):
            raise ValueError(
                f"the model returned tiles of {tuple(pred.shape[-2:])} px for inputs of {g.tile_h}x{g.tile_w}; expected "
                f"{th}x{tw} (data.scale={s}): does the checkpoint's scale match the data's?"
            )
        if strip != self.strip:
            self._start(strip, pred.shape[1])
        wr = g.row_weights(strip, s)
        for k in range(pred.shape[0]):
            i = first + k
            c = g.col_starts[i] * s
            w2 = wr[:, None] * self._col_w[i][None, :]
            self.acc[:, :, c : c + tw] += pred[k] * w2
            self.wsum[:, c : c + tw] += w2
            v = valid[k].repeat(s, 0).repeat(s, 1) if s > 1 else valid[k]
            self.valid[:, c : c + tw] = v
        self.received += pred.shape[0]
        if self.received < len(g.col_starts):
            return False
        self._finish()
        return True

    def _finish(self) -> None:
        a, b = self.grid.strip_rows_done(self.strip)
        if self.strip in self.owned:
            s = self.scale
            lo, hi = a * s - self.origin, b * s - self.origin
            wsum = self.wsum[lo:hi]
            covered = wsum > 0
            data = self.acc[:, lo:hi]
            data /= np.where(covered, wsum, 1.0)  # in place: these rows are final, no strip-sized copy
            self.write(a * s, data, self.valid[lo:hi] & covered)
