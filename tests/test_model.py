"""A hypothesis state machine drives a writer and a reader of one RaggedMmap against a Python list model:
extend, append, reopen, refresh, index, slice, gather and pickle, in any order."""

from __future__ import annotations

import pickle
import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from mmap_ninja.ragged import RaggedMmap

shapes = st.lists(st.integers(0, 4), min_size=1, max_size=3).map(tuple)
items = st.builds(lambda shape, fill: np.full(shape, fill, dtype=np.int32), shapes, st.integers(-(2**31), 2**31 - 1))


class RaggedModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp()) / "store"
        self.model: list[np.ndarray] = []
        self.writer = RaggedMmap(self.dir, mode="r+")
        self.reader = RaggedMmap(self.dir)
        self.seen = 0  # the reader's snapshot length

    def teardown(self) -> None:
        shutil.rmtree(self.dir.parent, ignore_errors=True)

    @rule(batch=st.lists(items, max_size=4))
    def extend(self, batch: list[np.ndarray]) -> None:
        self.writer.extend(batch)
        self.model.extend(batch)

    @rule(item=items)
    def append(self, item: np.ndarray) -> None:
        self.writer.append(item)
        self.model.append(item)

    @rule()
    def reopen(self) -> None:
        self.reader = RaggedMmap(self.dir)
        self.seen = len(self.model)

    @rule()
    def refresh(self) -> None:
        assert self.reader.refresh() == len(self.model)
        self.seen = len(self.model)

    @rule()
    def pickle_reader(self) -> None:
        blob = pickle.dumps(self.reader)
        assert len(blob) < 1024
        self.reader = pickle.loads(blob)

    @precondition(lambda self: self.seen > 0)
    @rule(data=st.data())
    def index(self, data: st.DataObject) -> None:
        i = data.draw(st.integers(-self.seen, self.seen - 1))
        want = self.model[: self.seen][i]
        assert np.array_equal(self.reader[i], want) and self.reader[i].shape == want.shape

    @rule(start=st.integers(-6, 6), stop=st.integers(-6, 6) | st.none(), step=st.sampled_from([1, 2, -1]))
    def slice_and_gather(self, start: int, stop: int | None, step: int) -> None:
        window = slice(start, stop, step)
        want = self.model[: self.seen][window]
        for got in (self.reader[window], self.reader.gather(range(self.seen)[window])):
            assert len(got) == len(want)
            assert all(g.shape == w.shape and np.array_equal(g, w) for g, w in zip(got, want, strict=True))

    @invariant()
    def lengths(self) -> None:
        assert len(self.writer) == len(self.model) and len(self.reader) == self.seen


TestRaggedModel = RaggedModel.TestCase
TestRaggedModel.settings = settings(
    max_examples=60, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
