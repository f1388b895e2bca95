"""PxK batch sampler: P landmarks x K images each, so every batch holds positive and negative pairs."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler

__all__ = ["PKSampler"]


class PKSampler(Sampler[list[int]]):
    """Yields batches of dataset indices: ``p`` distinct landmarks, ``k`` images of each (``p * k`` long).

    Landmarks are visited in shuffled cycles (each once per cycle) and a landmark's images likewise, so
    coverage is even rather than left to chance. A landmark with fewer than ``k`` images contributes all of
    them plus draws with replacement (repeats are different views once augmented).

    The batches of an epoch are a pure function of ``(seed, epoch)``; the sampler only tracks where it is,
    so ``state_dict()`` / ``load_state_dict()`` resume mid-epoch exactly. Iterating to the end of an epoch
    moves to the next one (no ``set_epoch`` needed). Behind a prefetching loader the sampler runs ahead of
    the batches actually trained on: save ``{"epoch": e, "position": batches_done}`` from the training loop
    in that case (`load_state_dict` accepts it).

    Args:
        labels: one label per dataset index.
        p: landmarks per batch (at most the number of landmarks).
        k: images per landmark (at least 2).
        seed: decides every draw.
        batches_per_epoch: default ``len(labels) // (p * k)`` (at least 1).
    """

    def __init__(
        self,
        labels: Sequence[Hashable],
        p: int,
        k: int,
        seed: int = 0,
        batches_per_epoch: int | None = None,
    ) -> None:
        members: defaultdict[Hashable, list[int]] = defaultdict(list)
        for index, label in enumerate(labels):
            members[label].append(index)
        if k < 2:
            raise ValueError(f"k must be at least 2 for batches to hold positive pairs, got {k}")
        if not 1 <= p <= len(members):
            raise ValueError(f"p must be between 1 and the number of landmarks ({len(members)}), got {p}")
        self.p, self.k, self.seed = p, k, seed
        self._members = [np.asarray(members[label]) for label in sorted(members, key=repr)]
        self.batches_per_epoch = batches_per_epoch or max(1, len(labels) // (p * k))
        if self.batches_per_epoch < 1:
            raise ValueError(f"batches_per_epoch must be at least 1, got {batches_per_epoch}")
        self.epoch = 0
        self.position = 0

    def __len__(self) -> int:
        return self.batches_per_epoch

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """All batches of ``epoch`` (``batches_per_epoch`` lists of ``p * k`` indices)."""
        rng = np.random.default_rng([self.seed, epoch])
        class_queue: list[int] = []
        image_queues: list[list[int]] = [[] for _ in self._members]
        all_classes = np.arange(len(self._members))
        batches = []
        for _ in range(self.batches_per_epoch):
            batch: list[int] = []
            for c in _take(class_queue, all_classes, self.p, rng):
                pool = self._members[c]
                if len(pool) >= self.k:
                    batch.extend(_take(image_queues[c], pool, self.k, rng))
                else:
                    batch.extend(rng.permutation(pool).tolist())
                    batch.extend(rng.choice(pool, self.k - len(pool)).tolist())
            batches.append(batch)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self.epoch_batches(self.epoch)
        while self.position < len(batches):
            self.position += 1
            yield batches[self.position - 1]
        self.epoch += 1
        self.position = 0

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "p": self.p, "k": self.k, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``; its seed, p and k (where given) must match this sampler's."""
        for name in ("seed", "p", "k"):
            if name in state and state[name] != getattr(self, name):
                raise ValueError(
                    f"sampler state has {name}={state[name]}, this sampler {getattr(self, name)}"
                )
        position = int(state["position"])
        if not 0 <= position <= self.batches_per_epoch:
            raise ValueError(f"position {position} outside an epoch of {self.batches_per_epoch} batches")
        self.epoch, self.position = int(state["epoch"]), position


def _take(queue: list[int], pool: np.ndarray, count: int, rng: np.random.Generator) -> list[int]:
    """``count`` distinct entries of ``pool`` from the front of ``queue``, refilled by fresh permutations."""
    taken = queue[:count]
    del queue[:count]
    if len(taken) < count:
        chosen = set(taken)
        cycle = rng.permutation(pool).tolist()
        fresh = [x for x in cycle if x not in chosen]
        need = count - len(taken)
        taken += fresh[:need]
        # Entries already in this draw go to the back of the new cycle, not lost from it.
        queue[:] = fresh[need:] + [x for x in cycle if x in chosen]
    return taken
