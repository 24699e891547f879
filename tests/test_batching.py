"""The shared embedder: every caller gets its own vectors back under concurrency, and errors reach them."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from facetrace.engine import FaceEngine
from facetrace.errors import InvalidParameterError, ModelLoadError
from facetrace.models import create_embedder
from facetrace.models.base import Embedder
from facetrace.models.batching import BatchingEmbedder
from facetrace.types import ModelInfo


@pytest.fixture(scope="module")
def crops(engine: FaceEngine, photos: dict[str, Path]) -> npt.NDArray[np.uint8]:
    """Aligned crops of real faces: the six of t1.jpg, Obama and Biden."""
    found = []
    for name in ("t1.jpg", "obama.jpg", "biden.jpg"):
        _, faces = engine.analyze(photos[name], keep_crops=True)
        found += [face.crop for face in faces if face.crop is not None]
    return np.stack(found)


def call_concurrently(embedder: Embedder, batches: list[npt.NDArray[np.uint8]]) -> list[object]:
    """``embed`` each batch from its own thread, all released at once; the results (or errors) in order."""
    results: list[object] = [None] * len(batches)
    start = threading.Barrier(len(batches))

    def work(index: int) -> None:
        start.wait()
        try:
            results[index] = embedder.embed(batches[index])
        except Exception as exc:
            results[index] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize(("runners", "max_batch"), [(1, 1), (1, 16), (2, 4)])
def test_each_caller_gets_its_own_vectors(crops: npt.NDArray[np.uint8], runners: int, max_batch: int) -> None:
    plain = create_embedder("sface")
    expected = plain.embed(crops)
    shared = BatchingEmbedder(lambda: create_embedder("sface"), runners=runners, max_batch=max_batch)
    try:
        # 16 callers, each a different run of faces (1–3 crops, some overlapping), released together
        spans = [(i % len(crops), 1 + i % 3) for i in range(16)]
        batches = [crops[start : start + count] for start, count in spans]
        results = call_concurrently(shared, batches)
        for (start, count), result in zip(spans, results, strict=True):
            assert isinstance(result, np.ndarray)
            assert result.shape == (len(crops[start : start + count]), 128)
            np.testing.assert_allclose(result, expected[start : start + count], atol=2e-4)
        batches_run, faces = shared.stats
        assert faces == sum(len(batch) for batch in batches)
        if max_batch == 1:
            assert batches_run == len(batches)  # callers' crops are never merged (a caller's own stay together)
        else:
            assert batches_run <= len(batches)
        assert shared.info == plain.info
    finally:
        shared.close()


class Flaky:
    """An embedder that fails on crops whose first pixel is 0, like a model that throws mid-batch."""

    info = ModelInfo(name="flaky", version="1", dim=4)
    input_size = 8

    def embed(self, crops: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        if (crops[:, 0, 0, 0] == 0).any():
            raise ModelLoadError("the model failed on this batch")
        return np.repeat(crops[:, 0, 0, :1].astype(np.float32), 4, axis=1) / 2.0


def test_errors_reach_the_callers_of_the_failing_batch_and_the_runner_goes_on() -> None:
    shared = BatchingEmbedder(Flaky, runners=1, max_batch=1)
    try:
        good = np.full((1, 8, 8, 3), 7, dtype=np.uint8)
        bad = np.zeros((1, 8, 8, 3), dtype=np.uint8)
        results = call_concurrently(shared, [good, bad, good, bad, good])
        assert [type(r).__name__ for r in results] == ["ndarray", "ModelLoadError"] * 2 + ["ndarray"]
        np.testing.assert_array_equal(shared.embed(good), np.full((1, 4), 3.5, dtype=np.float32))
        with pytest.raises(ModelLoadError, match="crops"):
            shared.embed(np.zeros((1, 9, 9, 3), dtype=np.uint8))  # wrong size: refused before queueing
        assert shared.embed(np.zeros((0, 8, 8, 3), dtype=np.uint8)).shape == (0, 4)
    finally:
        shared.close()
    with pytest.raises(ModelLoadError, match="closed"):
        shared.embed(np.full((1, 8, 8, 3), 7, dtype=np.uint8))


def test_settings_are_bounded() -> None:
    with pytest.raises(InvalidParameterError):
        BatchingEmbedder(Flaky, runners=0)
    with pytest.raises(InvalidParameterError):
        BatchingEmbedder(Flaky, max_batch=0)


def test_an_engine_with_a_shared_embedder_gives_the_same_vectors(
    engine: FaceEngine, photos: dict[str, Path]
) -> None:
    shared = FaceEngine.create(embed_runners=1)
    results: list[npt.NDArray[np.float32]] = []

    def work() -> None:
        _, face = shared.largest_face(photos["obama2.jpg"])
        assert face.vector is not None
        results.append(face.vector)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    _, alone = engine.largest_face(photos["obama2.jpg"])
    assert alone.vector is not None
    assert len(results) == 3
    for vector in results:
        np.testing.assert_allclose(vector, alone.vector, atol=1e-5)
