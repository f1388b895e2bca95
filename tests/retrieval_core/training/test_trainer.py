import dataclasses

import numpy as np
import pytest
import torch

from retrieval_core.datasets.collection import read_collection
from retrieval_core.datasets.synthetic import write_collection
from retrieval_core.features.global_ import GlobalDescriptorExtractor
from retrieval_core.models.embedding import EmbeddingConfig, build_embedding_net
from retrieval_core.training import TrainConfig, TrainEvent, ValidationSet, train
from retrieval_core.training.checkpoint import checkpoint_embedding_config
from retrieval_core.training.validation import score_validation

CONFIG = TrainConfig(
    recipe="e3", epochs=2, steps_per_epoch=2, p=2, k=4, image_size=64, workers=1, device="cpu", seed=3
)


@pytest.fixture(autouse=True)
def _two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """Landmarks 0-3 train; 4-5 validate: view 0 is the query, views 1-4 and two train views the index."""
    root = tmp_path_factory.mktemp("synthetic")
    write_collection(root, n_landmarks=6, views_per_landmark=5, seed=0, image_size=(72, 96))
    items = read_collection(root)
    train_items = [item for item in items if item.landmark < "landmark_004"]
    held_out = [item for item in items if item.landmark >= "landmark_004"]
    queries = [item for item in held_out if item.relpath.endswith("view_000.jpg")]
    index = [item for item in held_out if item not in queries] + train_items[:2]
    return train_items, ValidationSet(queries, index)


def _run(config, collection, out_dir, **kwargs):
    events: list[TrainEvent] = []
    train_items, validation = collection
    result = train(config, train_items, validation, out_dir, progress=events.append, **kwargs)
    return result, events


def _losses(events):
    return [e.loss for e in events if e.kind == "step"]


def test_resuming_a_stopped_run_repeats_the_uninterrupted_run_exactly(collection, tmp_path):
    full, full_events = _run(CONFIG, collection, tmp_path / "full")
    assert not full.stopped and full.steps == 4

    calls = 0

    def stop_after_three_steps() -> bool:
        nonlocal calls
        calls += 1
        return calls > 3  # polled before each step: the 4th step (mid epoch 2) is never taken

    stopped, first_events = _run(CONFIG, collection, tmp_path / "split", should_stop=stop_after_three_steps)
    assert stopped.stopped and stopped.steps == 3 and len(stopped.history) == 1
    resumed, rest_events = _run(
        dataclasses.replace(CONFIG, workers=2), collection, tmp_path / "split", resume=stopped.last_checkpoint
    )
    assert not resumed.stopped and resumed.steps == 4

    assert _losses(first_events) + _losses(rest_events) == _losses(full_events)
    assert resumed.history == full.history and resumed.best_epoch == full.best_epoch
    a = torch.load(full.last_checkpoint, weights_only=True)["state_dict"]
    b = torch.load(resumed.last_checkpoint, weights_only=True)["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    with pytest.raises(ValueError, match="lr"):
        _run(dataclasses.replace(CONFIG, lr=1e-3), collection, tmp_path / "x", resume=stopped.last_checkpoint)


def test_best_checkpoint_is_the_best_validation_epoch_and_loads_into_build_embedding_net(
    collection, tmp_path
):
    config = dataclasses.replace(CONFIG, lr=3e-4)
    result, events = _run(config, collection, tmp_path)
    scores = [result.initial_map] + [h["validation_map"] for h in result.history]
    assert result.best_map == max(scores) and result.best_epoch == scores.index(max(scores))
    epoch_events = [e for e in events if e.kind == "epoch"]
    assert [e.validation_map for e in epoch_events] == scores[1:]

    best = result.best_checkpoint
    checkpoint = torch.load(best, weights_only=True)
    assert checkpoint["epoch"] == result.best_epoch and checkpoint["metrics"]["best_map"] == result.best_map
    assert checkpoint["config"] == config.to_dict()

    embedding = checkpoint_embedding_config(best)
    assert embedding == EmbeddingConfig(weights=str(best), image_size=64)
    net = build_embedding_net(embedding)
    saved = checkpoint["state_dict"]
    assert all(torch.equal(net.state_dict()[k], saved[k]) for k in saved)

    # The product's extractor on the loaded net reproduces the score the trainer recorded.
    _, validation = collection
    extractor = GlobalDescriptorExtractor(net, embedding, "cpu")
    queries = extractor.extract_paths([item.path for item in validation.queries]).vectors
    index = extractor.extract_paths([item.path for item in validation.index]).vectors
    ranked = np.argsort(-(queries @ index.T), axis=1)
    same = np.array(
        [
            [validation.index[j].landmark == q.landmark for j in row]
            for q, row in zip(validation.queries, ranked, strict=True)
        ]
    )
    aps = [np.mean([(hits[: r + 1].sum() / (r + 1)) for r in np.flatnonzero(hits)]) for hits in same]
    assert float(np.mean(aps)) == pytest.approx(result.best_map, abs=1e-3)
    # score_validation (decoding afresh, no cache) agrees with the trainer's cached scoring.
    assert score_validation(net, validation, embedding) == pytest.approx(result.best_map, abs=1e-6)


def test_progress_events_and_learning_rate_schedule(collection, tmp_path):
    config = dataclasses.replace(CONFIG, epochs=1, steps_per_epoch=3, warmup_fraction=0.34)
    result, events = _run(config, collection, tmp_path)
    steps = [e for e in events if e.kind == "step"]
    assert [e.step for e in steps] == [1, 2, 3] and all(e.total_steps == 3 for e in steps)
    assert all(e.epoch == 1 and e.images_per_s > 0 and np.isfinite(e.loss) for e in steps)
    # warmup of 1 step at the peak lr, then cosine: 1e-4, 1e-4 * 0.5 * (1 + cos(pi/2)), ...
    assert [e.lr for e in steps] == pytest.approx([1e-4, 1e-4, 5e-5])
    assert events[-1].kind == "epoch" and events[-1].epoch == 1
    assert result.history[0]["loss"] == pytest.approx(np.mean([e.loss for e in steps]))


def test_stop_before_the_first_step_leaves_a_resumable_checkpoint(collection, tmp_path):
    config = dataclasses.replace(CONFIG, epochs=1, steps_per_epoch=1)
    stopped, events = _run(config, collection, tmp_path, should_stop=lambda: True)
    assert stopped.stopped and stopped.steps == 0 and not _losses(events)
    assert stopped.best_checkpoint is not None and stopped.best_epoch == 0  # the starting weights
    resumed, events = _run(config, collection, tmp_path, resume=stopped.last_checkpoint)
    assert resumed.steps == 1 and len(_losses(events)) == 1
    assert resumed.initial_map == stopped.initial_map


def test_e2_classifier_then_e4_from_its_checkpoint_with_arcface(collection, tmp_path):
    e2 = dataclasses.replace(CONFIG, recipe="e2", epochs=1)
    first, events = _run(e2, collection, tmp_path / "e2")
    assert len(_losses(events)) == 2 and np.isfinite(_losses(events)).all()

    e4 = dataclasses.replace(e2, recipe="e4", init_weights=str(first.last_checkpoint), arcface=True)
    second, _ = _run(e4, collection, tmp_path / "e4")
    # E4 starts from E2's final weights: same starting score as E2's last epoch.
    assert second.initial_map == pytest.approx(first.history[-1]["validation_map"], abs=1e-6)

    with pytest.raises(ValueError, match="e4"):
        TrainConfig(recipe="e4")


def test_a_run_without_loss_scaling_resumes_where_fp16_needs_it(collection, tmp_path, monkeypatch):
    """A bf16 or CPU run saves an empty loss-scaler state; resumed on a card without bf16 (fp16 with loss
    scaling) it continues with a fresh scaler instead of failing to load the empty one."""
    from retrieval_core.training import trainer

    config = dataclasses.replace(CONFIG, amp=True, epochs=1)
    stopped, _ = _run(config, collection, tmp_path / "run", should_stop=iter([False, True]).__next__)
    assert stopped.stopped and torch.load(stopped.last_checkpoint, weights_only=True)["scaler"] == {}

    monkeypatch.setattr(trainer, "autocast_dtype", lambda device: torch.float16)
    resumed, events = _run(config, collection, tmp_path / "run", resume=stopped.last_checkpoint)
    assert not resumed.stopped and resumed.steps == 2
    assert all(np.isfinite(_losses(events)))
    assert torch.load(resumed.last_checkpoint, weights_only=True)["scaler"]["scale"] > 0
