"""The fast engine's key/value cache: allocated once per call and written in place."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class KVCache:
    """Keys and values of every layer for a batch of rows, and the columns each row attends to.

    `store` is (layers, 2 [keys, values], rows, kv heads, columns, head dim); `mask` is
    (rows, columns). Rows are always the first ones of the batch: finished rows leave by `keep`.
    """

    store: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def allocate(cls, *, layers: int, rows: int, kv_heads: int, columns: int, head_dim: int,
                 dtype: torch.dtype) -> KVCache:
        """An empty cache that attends to nothing yet."""
        store = torch.empty((layers, 2, rows, kv_heads, columns, head_dim), dtype=dtype)
        return cls(store, torch.zeros((rows, columns), dtype=torch.bool))

    def write(self, layer: int, keys: torch.Tensor, values: torch.Tensor, columns: slice | int) -> None:
        """Keys and values, (rows, kv heads, [columns,] head dim), of the first rows at `columns`."""
        rows = keys.shape[0]
        self.store[layer, 0, :rows, :, columns] = keys
        self.store[layer, 1, :rows, :, columns] = values

    def read(self, layer: int, rows: int, end: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the first `rows` rows in columns [0, end): (rows, kv heads, end, d)."""
        return self.store[layer, 0, :rows, :, :end], self.store[layer, 1, :rows, :, :end]

    def attend(self, columns: int | slice, rows: int, where: torch.Tensor | bool = True) -> None:
        """The first `rows` rows attend to `columns` from now on (where `where` holds)."""
        self.mask[:rows, columns] = where

    def attention_bias(self, rows: int, end: int, dtype: torch.dtype) -> torch.Tensor:
        """(rows, 1, 1, end): 0 where a row attends to a column, -inf elsewhere."""
        mask = self.mask[:rows, :end]
        bias = torch.zeros(mask.shape, dtype=dtype).masked_fill_(~mask, float("-inf"))
        return bias[:, None, None, :]

    def gather(self, source: torch.Tensor, columns: int) -> None:
        """Row i becomes a copy of row `source[i]` in columns [0, columns), mask included.

        Indexing by a tensor copies, so a row may read a row that is overwritten in the same call.
        """
        self.store[:, :, : len(source), :, :columns] = self.store[:, :, source, :, :columns]
        self.mask[: len(source)] = self.mask[source]

    def keep(self, rows: torch.Tensor, columns: int) -> None:
        """Keep only `rows` (in that order) at the front of the batch; the rest is left behind."""
        self.gather(rows, columns)
